//! `GET /api/videos`, `GET /api/videos/{id_or_filename}`: listing, metadata, streaming with
//! byte ranges (local store and S3, redirect and proxy), traversal attempts, and the trace a
//! range request leaves.

use std::time::Duration;

use axum::body::Bytes;
use reqwest::StatusCode;
use reqwest::header;
use vidscope_core::config::{S3StreamMode, Settings};
use vidscope_core::domain::Role;
use vidscope_core::storage::{ObjectKey, ObjectStore, StoreKind};
use vidscope_core::videos::{self, Filename, NewVideo, Video, VideoId};
use vidscope_testkit::otlp::CapturedSpan;
use vidscope_testkit::s3::S3TestServer;
use vidscope_testkit::{TestApp, TestUser, TraceResponse, spawn_app, spawn_app_with};

use crate::helpers::{app_with_admin_and_viewer, app_with_user};

const WAIT: Duration = Duration::from_secs(10);

/// Bytes that start like an MP4 (an `ftyp` box) followed by a position-dependent pattern, so
/// any misplaced range shows up as different bytes.
pub(crate) fn mp4_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 0x18];
    v.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    v.extend((v.len()..len).map(|i| (i % 251) as u8));
    v.truncate(len);
    v
}

/// `GET path` as `user` for the bytes a `Range` header value (`bytes=0-99`) names.
async fn get_range(app: &TestApp, path: &str, user: &TestUser, range: &str) -> reqwest::Response {
    app.get_with(path, &[("cookie", &user.cookie), ("range", range)])
        .await
}

/// A video row plus its object, put in directly (the upload route has its own tests).
pub(crate) async fn seed_video(app: &TestApp, filename: &str, bytes: &[u8]) -> Video {
    let id = VideoId::generate();
    let filename = Filename::parse(filename).unwrap();
    let key = videos::object_key(&id, &filename).unwrap();
    app.state
        .store
        .put_bytes(&key, Bytes::copy_from_slice(bytes), "video/mp4")
        .await
        .unwrap();
    videos::insert(
        &app.state.db,
        &NewVideo {
            id: &id,
            filename: &filename,
            title: "A lesson",
            content_type: "video/mp4",
            size_bytes: bytes.len() as i64,
            uploaded_by: None,
        },
    )
    .await
    .unwrap()
}

/// Asserts the JSON error shape and returns the code.
pub(crate) async fn error_code(resp: reqwest::Response) -> String {
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    assert!(body["error"]["message"].is_string(), "{body}");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}

fn child_named<'a>(
    spans: &'a [CapturedSpan],
    parent: &CapturedSpan,
    name: &str,
) -> &'a CapturedSpan {
    spans
        .iter()
        .find(|s| s.name == name && s.parent_span_id.as_deref() == Some(parent.span_id.as_str()))
        .unwrap_or_else(|| {
            let names: Vec<_> = spans
                .iter()
                .map(|s| (s.name.as_str(), s.parent_span_id.clone()))
                .collect();
            panic!("no {name:?} child of {:?}; spans: {names:?}", parent.name)
        })
}

#[tokio::test]
async fn listing_and_metadata_need_a_session() {
    // Arrange
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let first = seed_video(&app, "first.mp4", &mp4_bytes(100)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = seed_video(&app, "second.mp4", &mp4_bytes(200)).await;

    // Anonymous: 401 with the JSON body, for the list and for metadata.
    for path in [
        "/api/videos".to_owned(),
        format!("/api/videos/{}", first.id),
    ] {
        let resp = app.get(&path).await;
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(error_code(resp).await, "unauthorized", "{path}");
    }

    // Viewer and admin: newest first, with the public fields.
    for user in [&viewer, &admin] {
        let resp = app.get_as("/api/videos", user).await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        let list = body["videos"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{body}");
        assert_eq!(list[0]["id"], second.id.as_str());
        assert_eq!(list[1]["id"], first.id.as_str());
        let v = &list[1];
        assert_eq!(v["filename"], "first.mp4");
        assert_eq!(v["title"], "A lesson");
        assert_eq!(v["status"], "uploaded");
        assert_eq!(v["size_bytes"], 100);
        assert_eq!(v["content_type"], "video/mp4");
        assert!(v["duration_seconds"].is_null());
        assert!(v["thumbnail_url"].is_null());
        assert_eq!(
            v["stream_url"],
            format!("/api/videos/{}/first.mp4", v["id"].as_str().unwrap())
        );
        assert!(v["created_at"].as_i64().unwrap() > 0);
    }

    // Metadata by id; an unknown id is a JSON 404.
    let resp = app
        .get_as(&format!("/api/videos/{}", first.id), &viewer)
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/json",
        "metadata, not the stream"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["filename"], "first.mp4");
    let resp = app
        .get_as(&format!("/api/videos/{}", VideoId::generate()), &viewer)
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");
    app.stop().await;
}

#[tokio::test]
async fn a_range_request_is_traced_from_server_span_to_storage() {
    // Arrange
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let bytes = mp4_bytes(10_000);
    let video = seed_video(&app, "lesson-1.mp4", &bytes).await;

    // Act
    let resp = get_range(&app, "/api/videos/lesson-1.mp4", &viewer, "bytes=100-199").await;

    // Assert: the response
    assert_eq!(resp.status(), 206);
    let trace = TraceResponse::of(resp.headers()).trace_id;
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes 100-199/10000");
    assert_eq!(resp.bytes().await.unwrap(), &bytes[100..200]);

    // ... and its trace: server span -> api.videos.stream -> db + storage spans. Spans are
    // awaited (the scheduled export delivers them) before any forced flush: under load a
    // `flush_telemetry` racing a scheduled export has been seen to lose a whole batch.
    let server = app
        .span_in(&trace, "GET /api/videos/{id_or_filename}")
        .await;
    assert_eq!(
        server.attr_str("http.route"),
        Some("/api/videos/{id_or_filename}")
    );
    assert_eq!(server.attr_str("api.category"), Some("video"));
    assert_eq!(server.attr_i64("http.response.status_code"), Some(206));
    assert_eq!(server.attr_str("user.id"), Some(viewer.user.id.as_str()));
    app.otlp
        .wait_until(
            |o| {
                let names: Vec<_> = o
                    .spans_in_trace(&trace)
                    .into_iter()
                    .map(|s| s.name)
                    .collect();
                [
                    "api.videos.stream",
                    "SELECT videos",
                    "s3.head_object",
                    "s3.get_object",
                ]
                .iter()
                .all(|n| names.iter().any(|m| m == n))
            },
            WAIT,
        )
        .await
        .unwrap();
    app.flush_telemetry().await;
    let spans = app.otlp.spans_in_trace(&trace);
    let stream = child_named(&spans, &server, "api.videos.stream");
    assert_eq!(stream.attr_str("video.filename"), Some("lesson-1.mp4"));
    assert_eq!(stream.attr_str("video.id"), Some(video.id.as_str()));
    assert_eq!(stream.attr_i64("video.size"), Some(10_000));
    assert_eq!(stream.attr_str("video.content_type"), Some("video/mp4"));
    assert_eq!(stream.attr_str("video.delivery"), Some("local"));
    assert_eq!(stream.attr_str("video.range.outcome"), Some("partial"));

    let access = stream
        .event("video.access_check")
        .expect("access check event");
    assert_eq!(access.attr_str("filename"), Some("lesson-1.mp4"));
    assert_eq!(access.attr_bool("hasSession"), Some(true));
    let range = stream.event("video.range_request").expect("range event");
    assert_eq!(range.attr_i64("start"), Some(100));
    assert_eq!(range.attr_i64("end"), Some(199));
    assert_eq!(range.attr_i64("totalSize"), Some(10_000));

    let db = child_named(&spans, stream, "SELECT videos");
    assert_eq!(db.attr_str("db.collection.name"), Some("videos"));
    assert!(
        db.attr_str("db.query.text")
            .unwrap()
            .contains("WHERE filename = $1")
    );
    let head = child_named(&spans, stream, "s3.head_object");
    assert_eq!(head.attr_str("storage.backend"), Some("local"));
    let get = child_named(&spans, stream, "s3.get_object");
    assert_eq!(get.attr_str("s3.range"), Some("bytes=100-199"));
    // An integer attribute, not a string (a `u64` field would be exported as one).
    assert_eq!(
        get.attr_i64("s3.size"),
        Some(100),
        "{:?}",
        get.attr("s3.size")
    );
    assert_eq!(
        head.attr_i64("s3.size"),
        Some(10_000),
        "{:?}",
        head.attr("s3.size")
    );
    let key = video.object_key().unwrap();
    assert_eq!(get.attr_str("s3.key"), Some(key.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn range_matrix() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let size = 1000usize;
    let bytes = mp4_bytes(size);
    seed_video(&app, "matrix.mp4", &bytes).await;
    let path = "/api/videos/matrix.mp4";

    // The ETag is needed for the If-Range cases.
    let full = app.get_as(path, &viewer).await;
    assert_eq!(full.status(), 200);
    let h = full.headers().clone();
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(h[header::CONTENT_LENGTH], "1000");
    assert!(h.get(header::CONTENT_RANGE).is_none());
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    let last_modified = h[header::LAST_MODIFIED].to_str().unwrap().to_owned();
    assert!(
        last_modified.ends_with(" GMT"),
        "an HTTP-date: {last_modified}"
    );
    assert_eq!(full.bytes().await.unwrap(), &bytes[..]);
    // A date is a strong validator only once it is a second old (RFC 9110 §8.8.2.2).
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // (why, Range, If-Range, status, expected body range, Content-Range)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        u16,
        Option<(usize, usize)>,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("no Range", None, None, 200, Some((0, size)), None),
        (
            "first bytes",
            Some("bytes=0-99"),
            None,
            206,
            Some((0, 100)),
            Some("bytes 0-99/1000"),
        ),
        (
            "middle",
            Some("bytes=500-599"),
            None,
            206,
            Some((500, 600)),
            Some("bytes 500-599/1000"),
        ),
        (
            "last byte",
            Some("bytes=999-999"),
            None,
            206,
            Some((999, 1000)),
            Some("bytes 999-999/1000"),
        ),
        (
            "suffix",
            Some("bytes=-300"),
            None,
            206,
            Some((700, 1000)),
            Some("bytes 700-999/1000"),
        ),
        (
            "suffix longer than the file",
            Some("bytes=-5000"),
            None,
            206,
            Some((0, 1000)),
            Some("bytes 0-999/1000"),
        ),
        (
            "open-ended",
            Some("bytes=100-"),
            None,
            206,
            Some((100, 1000)),
            Some("bytes 100-999/1000"),
        ),
        (
            "end past the size is clamped",
            Some("bytes=900-5000"),
            None,
            206,
            Some((900, 1000)),
            Some("bytes 900-999/1000"),
        ),
        (
            "start at the size",
            Some("bytes=1000-"),
            None,
            416,
            None,
            Some("bytes */1000"),
        ),
        (
            "start past the size",
            Some("bytes=5000-6000"),
            None,
            416,
            None,
            Some("bytes */1000"),
        ),
        (
            "empty suffix",
            Some("bytes=-0"),
            None,
            416,
            None,
            Some("bytes */1000"),
        ),
        (
            "malformed: letters",
            Some("bytes=abc"),
            None,
            200,
            Some((0, size)),
            None,
        ),
        (
            "malformed: first > last",
            Some("bytes=50-10"),
            None,
            200,
            Some((0, size)),
            None,
        ),
        (
            "malformed: unknown unit",
            Some("items=0-10"),
            None,
            200,
            Some((0, size)),
            None,
        ),
        (
            "malformed: no unit",
            Some("0-10"),
            None,
            200,
            Some((0, size)),
            None,
        ),
        (
            "multi-range served in full",
            Some("bytes=0-1,5-6"),
            None,
            200,
            Some((0, size)),
            None,
        ),
        (
            "If-Range matches",
            Some("bytes=0-9"),
            Some(&etag),
            206,
            Some((0, 10)),
            Some("bytes 0-9/1000"),
        ),
        (
            "If-Range mismatch",
            Some("bytes=0-9"),
            Some("\"stale\""),
            200,
            Some((0, size)),
            None,
        ),
        (
            "If-Range weak tag",
            Some("bytes=0-9"),
            Some("W/\"x\""),
            200,
            Some((0, size)),
            None,
        ),
        (
            "If-Range date equal to Last-Modified",
            Some("bytes=0-9"),
            Some(&last_modified),
            206,
            Some((0, 10)),
            Some("bytes 0-9/1000"),
        ),
        (
            "If-Range other date",
            Some("bytes=0-9"),
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            200,
            Some((0, size)),
            None,
        ),
        (
            "If-Range without Range",
            None,
            Some("\"stale\""),
            200,
            Some((0, size)),
            None,
        ),
    ];
    for (why, range, if_range, status, body, content_range) in cases {
        let mut headers = vec![("cookie", viewer.cookie.as_str())];
        if let Some(r) = range {
            headers.push(("range", r));
        }
        if let Some(r) = if_range {
            headers.push(("if-range", r));
        }
        let resp = app.get_with(path, &headers).await;
        assert_eq!(resp.status().as_u16(), status, "{why}");
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_RANGE)
                .map(|v| v.to_str().unwrap()),
            content_range,
            "{why}"
        );
        match body {
            Some((from, to)) => {
                assert_eq!(resp.headers()[header::ACCEPT_RANGES], "bytes", "{why}");
                assert_eq!(resp.headers()[header::ETAG], etag.as_str(), "{why}");
                assert_eq!(
                    resp.headers()[header::CONTENT_LENGTH],
                    (to - from).to_string().as_str(),
                    "{why}"
                );
                let got = resp.bytes().await.unwrap();
                assert!(
                    got == bytes[from..to],
                    "{why}: wrong bytes ({} received)",
                    got.len()
                );
            }
            None => assert_eq!(error_code(resp).await, "range_not_satisfiable", "{why}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn traversal_attempts_never_leave_the_store() {
    // Arrange: a secret video-named file next to the store root, and a real video inside.
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let StoreKind::Local { root } = &app.settings.store.kind else {
        panic!("the default test store is local");
    };
    let secret = b"TOP-SECRET-CONTENT";
    let outside = root.parent().unwrap();
    std::fs::write(outside.join("secret.mp4"), secret).unwrap();
    std::fs::write(outside.join(".env"), secret).unwrap();
    std::fs::write(root.join("loose.mp4"), secret).unwrap();
    let video = seed_video(&app, "real.mp4", &mp4_bytes(50)).await;

    // Act / Assert: every one is a JSON 400 or 404 and none returns the secret.
    let attempts = [
        "..%2Fsecret.mp4",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2Fsecret.mp4",
        "%2E%2E%2Fsecret.mp4",
        "..%5Csecret.mp4",
        "%2Fetc%2Fpasswd",
        "a%2F..%2F..%2Fsecret.mp4",
        ".env",
        "%2Eenv",
        ".secret.mp4",
        "secret.mp4%00.mp4",
        "loose.mp4",
        "..",
        "...mp4",
    ];
    for attempt in attempts {
        let resp = app.get_as(&format!("/api/videos/{attempt}"), &viewer).await;
        let status = resp.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{attempt}: {status}"
        );
        let body = resp.bytes().await.unwrap();
        assert!(
            !body.windows(secret.len()).any(|w| w == secret),
            "{attempt} leaked"
        );
        let json: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{attempt}: not JSON: {body:?}"));
        assert!(json["error"]["code"].is_string(), "{attempt}: {json}");
    }
    // The object key of a real video is not a filename either.
    let key = video.object_key().unwrap().as_str().replace('/', "%2F");
    let resp = app.get_as(&format!("/api/videos/{key}"), &viewer).await;
    assert_eq!(resp.status(), 400);

    // Raw requests, so no client normalises the dots away first.
    for raw in [
        "/api/videos/../../secret.mp4",
        "/api/videos/%2e%2e/secret.mp4",
        "/api/videos/..%2f..%2fsecret.mp4",
        "/api/videos/./../secret.mp4",
    ] {
        let (status, body) = raw_get(&app, raw, &viewer.cookie).await;
        assert!(status == 400 || status == 404, "{raw}: {status}");
        assert!(
            !body.windows(secret.len()).any(|w| w == secret),
            "{raw} leaked"
        );
    }
    app.stop().await;
}

/// A GET written by hand on a TCP socket: status and body bytes.
async fn raw_get(app: &TestApp, path: &str, cookie: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn streaming_needs_a_session_and_an_existing_file() {
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let bytes = mp4_bytes(300);
    seed_video(&app, "known.mp4", &bytes).await;

    // Anonymous: 401, with auth.failed on the server span and hasSession=false.
    let resp = app.get("/api/videos/known.mp4").await;
    assert_eq!(resp.status(), 401);
    let trace = TraceResponse::of(resp.headers()).trace_id;
    assert_eq!(error_code(resp).await, "unauthorized");
    // A cookie that is not a session is also 401.
    let resp = app
        .get_with(
            "/api/videos/known.mp4",
            &[("cookie", "vidscope_session=nope")],
        )
        .await;
    assert_eq!(resp.status(), 401);

    // Viewer and admin both stream; an unknown file is a JSON 404.
    for user in [&viewer, &admin] {
        let resp = app.get_as("/api/videos/known.mp4", user).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap(), &bytes[..]);
    }
    let resp = app.get_as("/api/videos/unknown.mp4", &viewer).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");

    let server = app.span_where(|s| s.trace_id == trace && s.kind == 2).await;
    let failed = server
        .event("auth.failed")
        .expect("auth.failed on the server span");
    assert_eq!(failed.attr_str("reason"), Some("no_session"));
    let stream = app.span_in(&trace, "api.videos.stream").await;
    let access = stream.event("video.access_check").unwrap();
    assert_eq!(access.attr_bool("hasSession"), Some(false));
    assert_eq!(access.attr_str("filename"), Some("known.mp4"));
    app.stop().await;
}

/// An app storing in a fresh bucket of the test S3 server, its settings changed by `tweak`.
pub(crate) async fn s3_app(tweak: impl FnOnce(&mut Settings) + 'static) -> TestApp {
    let store = S3TestServer::get().fresh_bucket().await;
    spawn_app_with(move |s| {
        s.store = store;
        tweak(s);
    })
    .await
}

#[tokio::test]
async fn s3_redirects_to_a_presigned_url_that_never_reaches_telemetry() {
    // Arrange
    let app = s3_app(|s| s.api.s3_stream = S3StreamMode::Redirect).await;
    assert!(matches!(app.state.store, ObjectStore::S3(_)));
    let viewer = app.create_user(Role::Viewer).await;
    let bytes = mp4_bytes(5_000);
    let video = seed_video(&app, "cloud.mp4", &bytes).await;

    // Act
    let resp = get_range(&app, "/api/videos/cloud.mp4", &viewer, "bytes=0-99").await;

    // Assert: a 302 to a presigned URL for the video's key, which S3 honours.
    assert_eq!(resp.status(), 302);
    let trace = TraceResponse::of(resp.headers()).trace_id;
    let location = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let key = video.object_key().unwrap();
    assert!(
        location.starts_with(&S3TestServer::get().endpoint),
        "{location}"
    );
    assert!(location.contains(key.as_str()), "{location}");
    let url = reqwest::Url::parse(&location).unwrap();
    let signature = url
        .query_pairs()
        .find(|(k, _)| k == "X-Amz-Signature")
        .map(|(_, v)| v.into_owned())
        .expect("a presigned URL has X-Amz-Signature");
    assert!(signature.len() >= 32, "{signature}");
    let fetched = reqwest::get(url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap(), &bytes[..]);

    // The redirect is traced (event with the key) ...
    let stream = app.span_in(&trace, "api.videos.stream").await;
    assert_eq!(stream.attr_str("video.delivery"), Some("redirect"));
    assert_eq!(stream.attr_str("storage.backend"), Some("s3"));
    let redirect = stream
        .event("video.s3_redirect")
        .expect("s3_redirect event");
    assert_eq!(redirect.attr_str("s3Key"), Some(key.as_str()));
    app.span_in(&trace, "s3.get_signed_url").await;
    // ... but neither the signature nor the URL is anywhere in what was exported or logged.
    app.flush_telemetry().await;
    assert!(
        !app.otlp.raw_contains(signature.as_bytes()),
        "signature leaked to OTLP"
    );
    assert!(
        !app.otlp.raw_contains(location.as_bytes()),
        "URL leaked to OTLP"
    );
    assert!(
        !app.logs.contents().contains(&signature),
        "signature leaked to stdout"
    );
    app.stop().await;
}

#[tokio::test]
async fn s3_proxy_mode_streams_ranges_through_the_api() {
    let app = s3_app(|s| s.api.s3_stream = S3StreamMode::Proxy).await;
    let viewer = app.create_user(Role::Viewer).await;
    let bytes = mp4_bytes(20_000);
    seed_video(&app, "proxied.mp4", &bytes).await;

    let cases: [(Option<&str>, u16, std::ops::Range<usize>); 5] = [
        (Some("bytes=1000-1999"), 206, 1000..2000),
        (Some("bytes=-500"), 206, 19_500..20_000),
        (Some("bytes=19000-"), 206, 19_000..20_000),
        (Some("bytes=0-1,5-6"), 200, 0..20_000),
        (None, 200, 0..20_000),
    ];
    let mut last_trace = String::new();
    for (range, status, expect) in cases {
        let mut headers = vec![("cookie", viewer.cookie.as_str())];
        if let Some(r) = range {
            headers.push(("range", r));
        }
        let resp = app.get_with("/api/videos/proxied.mp4", &headers).await;
        assert_eq!(resp.status().as_u16(), status, "{range:?}");
        assert!(resp.headers().get(header::ETAG).is_some());
        if range == Some("bytes=1000-1999") {
            last_trace = TraceResponse::of(resp.headers()).trace_id;
        }
        assert_eq!(resp.bytes().await.unwrap(), &bytes[expect], "{range:?}");
    }
    let resp = get_range(&app, "/api/videos/proxied.mp4", &viewer, "bytes=20000-").await;
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */20000");

    let get = app.span_in(&last_trace, "s3.get_object").await;
    assert_eq!(get.attr_str("storage.backend"), Some("s3"));
    assert_eq!(get.attr_str("s3.range"), Some("bytes=1000-1999"));
    let stream = app.span_in(&last_trace, "api.videos.stream").await;
    assert_eq!(stream.attr_str("video.delivery"), Some("proxy"));
    assert_eq!(get.parent_span_id.as_deref(), Some(stream.span_id.as_str()));
    let range = stream.event("video.range_request").unwrap();
    assert_eq!(range.attr_i64("totalSize"), Some(20_000));
    app.stop().await;
}

/// The bytes of the thumbnails tests record: a JPEG's magic and a word.
const THUMBNAIL: &[u8] = b"\xFF\xD8\xFFjpeg";

/// Records a thumbnail of `video` as the worker does: the image stored, then the video marked
/// ready with its key. True when the video's row was updated.
pub(crate) async fn record_thumbnail(app: &TestApp, video: &Video) -> bool {
    let key = ObjectKey::parse(&format!("thumbnails/{}.jpg", video.id)).unwrap();
    app.state
        .store
        .put_bytes(&key, Bytes::from_static(THUMBNAIL), "image/jpeg")
        .await
        .unwrap();
    let id = VideoId::parse(&video.id).unwrap();
    videos::mark_ready(&app.state.db, &id, &key).await.unwrap()
}

#[tokio::test]
async fn thumbnails_are_served_once_recorded() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let video = seed_video(&app, "thumbed.mp4", &mp4_bytes(10)).await;
    let path = format!("/api/videos/{}/thumbnail", video.id);

    let resp = app.get_as(&path, &viewer).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_code(resp).await, "not_found");

    assert!(record_thumbnail(&app, &video).await);

    let resp = app.get_as(&path, &viewer).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(resp.bytes().await.unwrap(), THUMBNAIL);
    let resp = app
        .get_as(&format!("/api/videos/{}", video.id), &viewer)
        .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["thumbnail_url"], path.as_str());
    assert_eq!(app.get(&path).await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn worker_updates_show_in_the_metadata() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let video = seed_video(&app, "probed.mp4", &mp4_bytes(10)).await;
    let id = VideoId::parse(&video.id).unwrap();
    assert!(
        videos::set_status(&app.state.db, &id, videos::VideoStatus::Ready)
            .await
            .unwrap()
    );
    // As the probe job records it (inside its transaction there; a plain connection here).
    let mut conn = app.state.db.pool().acquire().await.unwrap();
    let probe = videos::ProbeResult {
        duration_seconds: Some(12.5),
        ..Default::default()
    };
    assert!(
        videos::record_probe(&mut conn, app.state.db.backend(), &id, &probe)
            .await
            .unwrap()
    );
    drop(conn);
    assert!(
        !videos::set_status(
            &app.state.db,
            &VideoId::generate(),
            videos::VideoStatus::Failed
        )
        .await
        .unwrap()
    );
    let got = videos::get_by_filename(&app.state.db, &Filename::parse("probed.mp4").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.status, videos::VideoStatus::Ready);
    let resp = app
        .get_as(&format!("/api/videos/{}", video.id), &viewer)
        .await;
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["duration_seconds"], 12.5);
    app.stop().await;
}

/// The `cache.get` span of the video-metadata lookup in the trace of `resp`.
async fn metadata_cache_get(app: &TestApp, resp: &reqwest::Response, key: &str) -> CapturedSpan {
    let trace = TraceResponse::of(resp.headers()).trace_id;
    let key = key.to_owned();
    app.flush_telemetry().await;
    app.span_where(move |s| {
        s.trace_id == trace && s.name == "cache.get" && s.attr_str("cache.key") == Some(&key)
    })
    .await
}

#[tokio::test]
async fn video_metadata_is_cached_until_invalidated() {
    for backend in ["memory", "redis"] {
        // Arrange
        let app = match backend {
            "redis" => TestApp::builder().with_redis().spawn().await,
            _ => spawn_app().await,
        };
        let viewer = app.create_user(Role::Viewer).await;
        let video = seed_video(&app, "cached.mp4", &mp4_bytes(10)).await;
        let id = VideoId::parse(&video.id).unwrap();
        let path = format!("/api/videos/{id}");
        let key = format!("video:{id}");
        let headers = [("cookie", viewer.cookie.as_str())];
        let get = || app.get_with(&path, &headers);

        // Act: two reads, then a change behind the cache's back, then an invalidation.
        let first = get().await;
        let first_span = metadata_cache_get(&app, &first, &key).await;
        let second = get().await;
        let second_span = metadata_cache_get(&app, &second, &key).await;
        videos::set_status(&app.state.db, &id, videos::VideoStatus::Ready)
            .await
            .unwrap();
        let stale: serde_json::Value = get().await.json().await.unwrap();
        vidscope_api::cache::invalidate_video(&app.state.cache, &id).await;
        let fresh = get().await;
        let fresh_span = metadata_cache_get(&app, &fresh, &key).await;

        // Assert
        assert_eq!(first.status(), 200, "{backend}");
        assert_eq!(
            first_span.attr_bool("cache.hit"),
            Some(false),
            "{backend}: first read is a miss"
        );
        assert_eq!(first_span.attr_str("cache.backend"), Some(backend));
        let (trace, wanted) = (first_span.trace_id.clone(), key.clone());
        app.otlp
            .wait_for_span(
                move |s| {
                    s.trace_id == trace
                        && s.name == "cache.set"
                        && s.attr_str("cache.key") == Some(wanted.as_str())
                },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("{backend}: the miss fills the cache: {e}"));
        assert_eq!(
            second_span.attr_bool("cache.hit"),
            Some(true),
            "{backend}: second read is a hit"
        );
        let body: serde_json::Value = second.json().await.unwrap();
        assert_eq!(body["id"], video.id.as_str(), "{backend}");
        assert_eq!(
            stale["status"], "uploaded",
            "{backend}: within the TTL the cached row answers"
        );
        assert_eq!(
            fresh_span.attr_bool("cache.hit"),
            Some(false),
            "{backend}: invalidated"
        );
        let body: serde_json::Value = fresh.json().await.unwrap();
        assert_eq!(body["status"], "ready", "{backend}");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_listing_pages_with_limit_and_next() {
    // Arrange: 101 rows, one more than the default page.
    let (app, viewer) = app_with_user(Role::Viewer).await;
    for n in 0..101 {
        let id = VideoId::generate();
        videos::insert(
            &app.state.db,
            &NewVideo {
                id: &id,
                filename: &Filename::parse(&format!("page-{n}.mp4")).unwrap(),
                title: "A lesson",
                content_type: "video/mp4",
                size_bytes: 1,
                uploaded_by: None,
            },
        )
        .await
        .unwrap();
    }
    let list = |query: String| {
        let (app, cookie) = (&app, viewer.cookie.clone());
        async move {
            let resp = app
                .get_with(&format!("/api/videos{query}"), &[("cookie", &cookie)])
                .await;
            (
                resp.status(),
                resp.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };

    // Act / Assert: the default page holds 100 and points at the rest.
    let (status, first) = list(String::new()).await;
    assert_eq!(status, 200);
    assert_eq!(first["videos"].as_array().unwrap().len(), 100);
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    let (_, rest) = list(format!("?cursor={next}")).await;
    assert_eq!(rest["videos"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], serde_json::Value::Null);

    // Small pages walk the same listing without gaps or repeats.
    let (_, all) = list("?limit=500".into()).await;
    let expected: Vec<_> = all["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(expected.len(), 101);
    let mut seen = Vec::new();
    let mut query = "?limit=40".to_owned();
    loop {
        let (_, page) = list(query).await;
        seen.extend(
            page["videos"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].clone()),
        );
        match page["next"].as_str() {
            Some(n) => query = format!("?limit=40&cursor={n}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // Bad parameters are a 400 naming them.
    for (query, name) in [
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=many", "limit"),
        ("?limit=", "limit"),
        ("?cursor=garbage", "cursor"),
        ("?limit=5&cursor=1_x", "cursor"),
    ] {
        let (status, body) = list(query.into()).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(name), "{query}: {message}");
    }
    app.stop().await;
}

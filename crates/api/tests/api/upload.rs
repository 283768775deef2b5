//! `POST /api/upload`: authorization, the streamed upload and its trace, the size limit and the
//! content type check, and that a rejected upload leaves nothing behind (local store and S3).

use std::time::Duration;

use reqwest::header;
use vidscope_core::domain::Role;
use vidscope_core::storage::{ObjectKey, StoreKind};
use vidscope_core::videos::{self, Filename, VideoId};
use vidscope_testkit::{TestApp, TraceResponse, expect_error, spawn_app_with};

use crate::helpers::{app_with_admin_and_viewer, app_with_user};
use crate::videos::{error_code, mp4_bytes, s3_app};

const WAIT: Duration = Duration::from_secs(10);
const BOUNDARY: &str = "vidscope-test-boundary-7MA4YWxkTrZu0gW";

/// One part of a hand-built `multipart/form-data` body.
pub(crate) struct Part<'a> {
    name: &'a str,
    filename: Option<&'a str>,
    content_type: Option<&'a str>,
    data: &'a [u8],
}

pub(crate) fn file<'a>(filename: &'a str, data: &'a [u8]) -> Part<'a> {
    Part {
        name: "file",
        filename: Some(filename),
        content_type: Some("video/mp4"),
        data,
    }
}

fn text<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        filename: None,
        content_type: None,
        data: value.as_bytes(),
    }
}

pub(crate) fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = p.filename {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(t) = p.content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub(crate) async fn upload(
    app: &TestApp,
    cookie: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/upload"))
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    req.send().await.unwrap()
}

pub(crate) use vidscope_testkit::files::files_under;

pub(crate) fn local_root(app: &TestApp) -> std::path::PathBuf {
    match &app.settings.store.kind {
        StoreKind::Local { root } => root.clone(),
        StoreKind::S3 { .. } => panic!("expected the local store"),
    }
}

/// The video objects in the app's local store (their `~meta` sidecars left out).
fn stored_objects(app: &TestApp) -> Vec<std::path::PathBuf> {
    files_under(&local_root(app))
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("~meta"))
        .collect()
}

pub(crate) async fn video_count(app: &TestApp) -> usize {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM videos")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    usize::try_from(n).unwrap()
}

#[tokio::test]
async fn only_admins_upload() {
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let data = mp4_bytes(2_000);

    let resp = upload(&app, None, form(&[file("a.mp4", &data)])).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(error_code(resp).await, "unauthorized");
    let resp = upload(&app, Some(&viewer.cookie), form(&[file("a.mp4", &data)])).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(error_code(resp).await, "forbidden");
    assert_eq!(video_count(&app).await, 0);

    let resp = upload(&app, Some(&admin.cookie), form(&[file("a.mp4", &data)])).await;
    assert_eq!(resp.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_streams_into_the_store_and_is_traced() {
    // Arrange: progress every MiB, a file of a bit over 5 MiB (past the global 1 MiB limit).
    const MIB: i64 = 1024 * 1024;
    let app = spawn_app_with(|s| s.api.upload_progress_every = MIB as u64).await;
    let admin = app.create_user(Role::Admin).await;
    let viewer = app.create_user(Role::Viewer).await;
    let data = mp4_bytes(5 * 1024 * 1024 + 123);

    // Act
    let resp = upload(
        &app,
        Some(&admin.cookie),
        form(&[
            file("intro-lesson.mp4", &data),
            text("title", "  Intro lesson  "),
        ]),
    )
    .await;

    // Assert: 201 with the video, which lists and streams back byte for byte.
    assert_eq!(resp.status(), 201);
    let trace = TraceResponse::of(resp.headers()).trace_id;
    let id = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .trim_start_matches("/api/videos/")
        .to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["filename"], "intro-lesson.mp4");
    assert_eq!(body["title"], "Intro lesson");
    assert_eq!(body["status"], "uploaded");
    assert_eq!(body["content_type"], "video/mp4");
    assert_eq!(body["size_bytes"], data.len());
    let row = videos::get(&app.state.db, &VideoId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.uploaded_by.as_deref(), Some(admin.user.id.as_str()));
    let resp = app.get_as("/api/videos/intro-lesson.mp4", &viewer).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap() == data[..], "bytes differ");

    // The trace: POST /api/upload -> api.upload (metadata, progress) -> s3.put_object, INSERT.
    let server = app.span_in(&trace, "POST /api/upload").await;
    assert_eq!(server.attr_str("api.category"), Some("upload"));
    assert_eq!(server.attr_i64("http.response.status_code"), Some(201));
    let span = app.span_in(&trace, "api.upload").await;
    assert_eq!(
        span.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    assert_eq!(span.attr_str("upload.filename"), Some("intro-lesson.mp4"));
    assert_eq!(span.attr_i64("upload.size"), Some(data.len() as i64));
    assert_eq!(span.attr_str("upload.content_type"), Some("video/mp4"));
    assert_eq!(
        span.attr_str("upload.declared_content_type"),
        Some("video/mp4")
    );
    assert_eq!(span.attr_str("video.id"), Some(id.as_str()));
    let progress: Vec<i64> = span
        .events
        .iter()
        .filter(|e| e.name == "upload.progress")
        .map(|e| e.attr_i64("bytes").unwrap())
        .collect();
    // One event per MiB crossed, reporting the bytes received when it was crossed (chunks are
    // far smaller than a MiB).
    assert_eq!(progress.len(), 5, "{progress:?}");
    for (i, bytes) in progress.iter().enumerate() {
        let mark = (i as i64 + 1) * MIB;
        assert!((mark..mark + MIB).contains(bytes), "{progress:?}");
    }
    for name in ["s3.put_object", "INSERT videos"] {
        let child = app
            .span_where(|s| s.trace_id == trace && s.name == name)
            .await;
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(span.span_id.as_str()),
            "{name}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_leaves_nothing() {
    let app = spawn_app_with(|s| s.api.upload_max_bytes = 256 * 1024).await;
    let admin = app.create_user(Role::Admin).await;

    // Just over the limit (so the streaming check, not a header, decides), and far over.
    for size in [256 * 1024 + 1, 2 * 1024 * 1024] {
        let data = mp4_bytes(size);
        let resp = upload(&app, Some(&admin.cookie), form(&[file("big.mp4", &data)])).await;
        assert_eq!(resp.status(), 413, "{size}");
        assert_eq!(error_code(resp).await, "payload_too_large");
        assert_eq!(video_count(&app).await, 0);
        let left = files_under(&local_root(&app));
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    // Exactly the limit is fine.
    let data = mp4_bytes(256 * 1024);
    let resp = upload(&app, Some(&admin.cookie), form(&[file("fits.mp4", &data)])).await;
    assert_eq!(resp.status(), 201);
    app.stop().await;
}

/// A body announced over the limit is refused before any of it is read: 3 GB announced and
/// nothing sent answers 413 at once (it used to wait for the body, then answer 408), and so
/// does one byte more than the limit plus the form's allowance.
#[tokio::test]
async fn a_body_announced_over_the_limit_is_413_before_it_is_read() {
    let app = spawn_app_with(|s| {
        s.api.upload_max_bytes = 256 * 1024;
        // Longer than the answer may take: a server waiting for the body times out later.
        s.api.upload_idle_timeout = Duration::from_secs(60);
    })
    .await;
    let admin = app.create_user(Role::Admin).await;
    let allowance = 256 * 1024 + vidscope_api::routes::upload::post::FORM_OVERHEAD;
    for declared in [3_000_000_000, allowance + 1] {
        let started = std::time::Instant::now();
        let (status, answer) = raw_upload(&app, &admin.cookie, declared, b"").await;
        eprintln!(
            "{declared} bytes announced: {status} after {:?}",
            started.elapsed()
        );
        assert_eq!(status, 413, "{declared} bytes announced: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
        assert_eq!(
            answer["error"]["message"], "the upload exceeds the limit of 262144 bytes",
            "{answer}"
        );
    }
    assert_eq!(video_count(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_type_is_checked_by_content() {
    let (app, admin) = app_with_user(Role::Admin).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR and then some more image bytes".repeat(10);
    let cases: [(&str, &[u8], &[&str]); 3] = [
        ("a PNG named .mp4", &png, &["image/png", "video/mp4"]),
        (
            "plain text",
            b"hello, this is not a video at all, just text",
            &["not a recognised type", "video/mp4"],
        ),
        ("an empty file", b"", &["not a recognised type"]),
    ];
    for (why, data, mentions) in cases {
        let resp = upload(&app, Some(&admin.cookie), form(&[file("x.mp4", data)])).await;
        let body = expect_error(resp, 415, "unsupported_media_type", why).await;
        let message = body["error"]["message"].as_str().unwrap();
        for m in mentions {
            assert!(message.contains(m), "{why}: {message}");
        }
    }
    assert_eq!(video_count(&app).await, 0);
    assert!(files_under(&local_root(&app)).is_empty());

    // WebM and QuickTime are recognised and stored with the detected type.
    let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
    webm.extend_from_slice(b"webm");
    webm.extend_from_slice(&[7; 500]);
    let mut mov = vec![0, 0, 0, 0x14];
    mov.extend_from_slice(b"ftypqt  ");
    mov.extend_from_slice(&[9; 500]);
    for (name, data, detected) in [
        ("clip.webm", &webm, "video/webm"),
        ("clip.mov", &mov, "video/quicktime"),
    ] {
        let resp = upload(&app, Some(&admin.cookie), form(&[file(name, data)])).await;
        assert_eq!(resp.status(), 201, "{name}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["content_type"], detected);
    }
    app.stop().await;
}

/// Issue 28: a file name is not a key. Two uploads of `lesson.mp4` are two lessons, each with
/// its own object (nothing overwritten) and its own stream URL; the legacy by-name URL keeps
/// serving the first.
#[tokio::test]
async fn two_lessons_may_come_from_files_of_the_same_name() {
    let (app, admin, viewer) = app_with_admin_and_viewer().await;
    let (one, two) = (mp4_bytes(1_000), mp4_bytes(3_000));
    let mut bodies = Vec::new();
    for data in [&one, &two] {
        let resp = upload(&app, Some(&admin.cookie), form(&[file("lesson.mp4", data)])).await;
        assert_eq!(resp.status(), 201);
        bodies.push(resp.json::<serde_json::Value>().await.unwrap());
    }
    assert_ne!(bodies[0]["id"], bodies[1]["id"]);
    for (body, data) in bodies.iter().zip([&one, &two]) {
        let url = body["stream_url"].as_str().unwrap();
        assert_eq!(
            url,
            format!("/api/videos/{}/lesson.mp4", body["id"].as_str().unwrap())
        );
        let resp = app.get_with(url, &[("cookie", &viewer.cookie)]).await;
        assert_eq!(resp.status(), 200, "{url}");
        assert_eq!(&resp.bytes().await.unwrap()[..], &data[..], "{url}");
        // Signed out: the same 401 as every video route.
        assert_eq!(app.get(url).await.status(), 401, "{url}");
    }
    let resp = app
        .get_with("/api/videos/lesson.mp4", &[("cookie", &viewer.cookie)])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        &one[..],
        "legacy URL: the first"
    );
    // The id decides and the name must match; a bad id or name is a 400.
    let id = bodies[1]["id"].as_str().unwrap();
    for (path, status) in [
        (format!("/api/videos/{id}/other.mp4"), 404),
        (
            "/api/videos/33333333-3333-4333-8333-333333333333/lesson.mp4".to_owned(),
            404,
        ),
        ("/api/videos/not-an-id/lesson.mp4".to_owned(), 400),
        (format!("/api/videos/{id}/..%2Fevil.mp4"), 400),
    ] {
        let resp = app.get_with(&path, &[("cookie", &viewer.cookie)]).await;
        assert_eq!(resp.status(), status, "{path}");
    }
    assert_eq!(video_count(&app).await, 2);
    let files = stored_objects(&app);
    assert_eq!(files.len(), 2, "one object per lesson: {files:?}");
    app.stop().await;
}

#[tokio::test]
async fn bad_uploads_get_a_4xx_json_answer() {
    let (app, admin) = app_with_user(Role::Admin).await;
    let data = mp4_bytes(1_000);
    let resp = upload(&app, Some(&admin.cookie), form(&[file("taken.mp4", &data)])).await;
    assert_eq!(resp.status(), 201);

    let long_title = "t".repeat(201);
    let named = |name: &str| form(&[file(name, &data)]);
    let unnamed = Part {
        filename: None,
        ..file("x", &data)
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "traversal in the filename",
            named("../evil.mp4"),
            400,
            "invalid_filename",
        ),
        (
            "encoded traversal",
            named("..%2Fevil.mp4"),
            400,
            "invalid_filename",
        ),
        ("dotfile", named(".evil.mp4"), 400, "invalid_filename"),
        ("no extension", named("evil"), 400, "invalid_filename"),
        (
            "wrong extension",
            named("evil.exe"),
            400,
            "invalid_filename",
        ),
        ("no filename", form(&[unnamed]), 400, "invalid_filename"),
        (
            "no file part",
            form(&[text("title", "x")]),
            400,
            "missing_file",
        ),
        (
            "two file parts",
            form(&[file("one.mp4", &data), file("two.mp4", &data)]),
            400,
            "duplicate_part",
        ),
        (
            "unknown part",
            form(&[text("colour", "red"), file("c.mp4", &data)]),
            400,
            "unexpected_part",
        ),
        (
            "title too long",
            form(&[text("title", &long_title), file("t.mp4", &data)]),
            400,
            "invalid_title",
        ),
        (
            "truncated body",
            named("cut.mp4")[..600].to_vec(),
            400,
            "invalid_multipart",
        ),
        (
            "not multipart at all",
            b"--nope--".to_vec(),
            400,
            "invalid_multipart",
        ),
    ];
    for (why, body, status, code) in cases {
        let resp = upload(&app, Some(&admin.cookie), body).await;
        assert_eq!(resp.status().as_u16(), status, "{why}");
        assert_eq!(error_code(resp).await, code, "{why}");
    }
    // A JSON body instead of a form.
    let resp = app
        .client
        .post(app.url("/api/upload"))
        .header(header::COOKIE, &admin.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"file":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(error_code(resp).await, "unsupported_media_type");

    // Only the first upload left anything behind: one row, one object.
    assert_eq!(video_count(&app).await, 1);
    let files = stored_objects(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("taken.mp4"));
    app.stop().await;
}

#[tokio::test]
async fn s3_uploads_use_multipart_and_rejections_leave_nothing() {
    let app = s3_app(|s| s.api.upload_max_bytes = 10 * 1024 * 1024).await;
    let admin = app.create_user(Role::Admin).await;

    // Over 8 MiB: the store switches to a multipart upload.
    let data = mp4_bytes(9 * 1024 * 1024);
    let resp = upload(&app, Some(&admin.cookie), form(&[file("big.mp4", &data)])).await;
    assert_eq!(resp.status(), 201);
    let trace = TraceResponse::of(resp.headers()).trace_id;
    let body: serde_json::Value = resp.json().await.unwrap();
    let id = VideoId::parse(body["id"].as_str().unwrap()).unwrap();
    let key = videos::object_key(&id, &Filename::parse("big.mp4").unwrap()).unwrap();
    assert_eq!(
        app.state.store.head(&key).await.unwrap().size,
        data.len() as u64
    );
    let put = app.span_in(&trace, "s3.put_object").await;
    assert_eq!(put.attr_str("storage.backend"), Some("s3"));
    assert_eq!(put.attr_bool("s3.multipart"), Some(true));

    // Over the limit (by a byte, so the streaming check decides after the multipart upload
    // has begun, not the announced length): 413 and no object under the key it was given.
    let data = mp4_bytes(10 * 1024 * 1024 + 1);
    let resp = upload(&app, Some(&admin.cookie), form(&[file("huge.mp4", &data)])).await;
    assert_eq!(resp.status(), 413);
    let trace = TraceResponse::of(resp.headers()).trace_id;
    let span = app.span_in(&trace, "api.upload").await;
    assert_eq!(span.attr_str("upload.rejected"), Some("too_large"));
    let id = VideoId::parse(span.attr_str("video.id").unwrap()).unwrap();
    let key: ObjectKey = videos::object_key(&id, &Filename::parse("huge.mp4").unwrap()).unwrap();
    let err = app.state.store.head(&key).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(video_count(&app).await, 1);
    app.stop().await;
}

/// Sends the request line, headers and `sent` bytes of a `total`-byte upload body on a raw
/// connection, then goes silent, and returns the status line and body the server answers
/// with (reqwest cannot stall half-way through a body).
async fn stalled_upload(app: &TestApp, cookie: &str, body: &[u8], sent: usize) -> (u16, String) {
    raw_upload(app, cookie, body.len() as u64, &body[..sent]).await
}

/// An upload declaring `Content-Length: declared` of which only `sent` goes out; the status
/// and body of the answer.
async fn raw_upload(app: &TestApp, cookie: &str, declared: u64, sent: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(sent).await.unwrap();
    let mut answer = Vec::new();
    // The server answers and closes (it cannot read the rest of a body it gave up on).
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled upload within 20 s");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn a_stalled_upload_is_abandoned_with_408_and_leaves_nothing() {
    let app = spawn_app_with(|s| s.api.upload_idle_timeout = Duration::from_secs(1)).await;
    let admin = app.create_user(Role::Admin).await;
    let data = mp4_bytes(512 * 1024);
    let body = form(&[file("stalled.mp4", &data)]);

    // Silent before the type could be sniffed, then silent in the middle of the stored part.
    for sent in [120, 300 * 1024] {
        let started = std::time::Instant::now();
        let (status, answer) = stalled_upload(&app, &admin.cookie, &body, sent).await;
        assert_eq!(status, 408, "after {sent} bytes: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {answer}"));
        assert_eq!(answer["error"]["code"], "request_timeout", "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(video_count(&app).await, 0);
        let left = files_under(&local_root(&app));
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    // The spans say why: the one stalled in the part's headers knows no file name yet, the
    // one stalled in the file does.
    app.flush_telemetry().await;
    let idle = |s: &vidscope_testkit::otlp::CapturedSpan| {
        s.name == "api.upload" && s.attr_str("upload.rejected") == Some("idle_timeout")
    };
    app.otlp
        .wait_for_span(|s| idle(s) && s.attr_str("upload.filename").is_none(), WAIT)
        .await
        .expect("an api.upload span rejected for idleness before the file");
    app.otlp
        .wait_for_span(
            |s| idle(s) && s.attr_str("upload.filename") == Some("stalled.mp4"),
            WAIT,
        )
        .await
        .expect("an api.upload span rejected for idleness in the file");
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_s3_multipart_upload_is_aborted() {
    let app = s3_app(|s| s.api.upload_idle_timeout = Duration::from_secs(1)).await;
    let admin = app.create_user(Role::Admin).await;
    let data = mp4_bytes(12 * 1024 * 1024);
    let body = form(&[file("stalled.mp4", &data)]);

    // Past the first 8 MiB part, so a multipart upload is under way when the client stops.
    let (status, answer) = stalled_upload(&app, &admin.cookie, &body, 9 * 1024 * 1024).await;
    assert_eq!(status, 408, "{answer}");
    assert_eq!(video_count(&app).await, 0);
    let span = app
        .otlp
        .wait_for_span(
            |s| s.name == "api.upload" && s.attr_str("upload.rejected") == Some("idle_timeout"),
            WAIT,
        )
        .await
        .expect("an api.upload span rejected for idleness");
    let id = VideoId::parse(span.attr_str("video.id").unwrap()).unwrap();
    let key = videos::object_key(&id, &Filename::parse("stalled.mp4").unwrap()).unwrap();
    let err = app.state.store.head(&key).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // The multipart upload itself was aborted, not left to accumulate parts.
    let abort = app
        .otlp
        .wait_for_span(
            |s| s.trace_id == span.trace_id && s.name.contains("abort"),
            WAIT,
        )
        .await;
    assert!(
        abort.is_ok(),
        "no multipart abort span in the upload's trace"
    );
    app.stop().await;
}

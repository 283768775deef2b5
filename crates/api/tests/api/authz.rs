//! The authorization matrix: anonymous / viewer / another viewer / admin × every route of the
//! router, and the one rule the matrix cannot show by status codes alone: a user only ever
//! reads and writes their own progress.

use axum::body::Bytes;
use reqwest::header;
use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_core::storage::ObjectKey;
use vidscope_core::videos::{self, VideoId};
use vidscope_testkit::{TestApp, TestUser, spawn_app};

use crate::videos::{mp4_bytes, seed_video};

const WHO: [&str; 4] = ["anonymous", "viewer", "other viewer", "admin"];
const BOUNDARY: &str = "authz-boundary-5b7c1e";

#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    /// A registration with an e-mail nobody has used yet.
    FreshRegistration,
    /// A multipart upload of a small MP4 under a name nobody has used yet.
    FreshUpload,
    /// The headers of a WebSocket handshake.
    WebSocket,
}

struct Case {
    /// The route's template, as in the OpenAPI document.
    route: &'static str,
    method: &'static str,
    path: String,
    body: Body,
    /// Expected status for anonymous, viewer, other viewer, admin.
    expect: [u16; 4],
}

fn case(
    method: &'static str,
    route: &'static str,
    path: impl Into<String>,
    body: Body,
    expect: [u16; 4],
) -> Case {
    Case {
        route,
        method,
        path: path.into(),
        body,
        expect,
    }
}

fn upload_form() -> Vec<u8> {
    let name = format!("authz-{}.mp4", VideoId::generate());
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&mp4_bytes(64));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn send(app: &TestApp, cookie: Option<&str>, c: &Case) -> reqwest::Response {
    let mut req = app
        .client
        .request(c.method.parse().unwrap(), app.url(&c.path));
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    req = match &c.body {
        Body::None => req,
        Body::Json(v) => req.json(v),
        Body::FreshRegistration => req.json(&json!({
            "email": format!("new-{}@example.com", VideoId::generate()),
            "password": "long enough password",
        })),
        Body::FreshUpload => req
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(upload_form()),
        Body::WebSocket => req
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="),
    };
    req.send()
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", c.method, c.path))
}

/// A video with a thumbnail, so every video route has something to answer with.
async fn video_with_thumbnail(app: &TestApp) -> videos::Video {
    let video = seed_video(app, "authz.mp4", &mp4_bytes(100)).await;
    let key = ObjectKey::parse(&format!("thumbnails/{}.jpg", video.id)).unwrap();
    app.state
        .store
        .put_bytes(&key, Bytes::from_static(b"\xFF\xD8\xFFjpeg"), "image/jpeg")
        .await
        .unwrap();
    videos::mark_ready(&app.state.db, &VideoId::parse(&video.id).unwrap(), &key)
        .await
        .unwrap();
    video
}

/// Two viewers and an admin, the cast of both tests here.
async fn accounts(app: &TestApp) -> [TestUser; 3] {
    [
        app.create_user(Role::Viewer).await,
        app.create_user(Role::Viewer).await,
        app.create_user(Role::Admin).await,
    ]
}

#[tokio::test]
async fn every_route_answers_each_role_as_specified() {
    // Arrange
    let app = spawn_app().await;
    let [viewer, other, admin] = accounts(&app).await;
    // An account the admin routes act on (a temporary password ends its sessions).
    let spare = app.create_user(Role::Viewer).await;
    let video = video_with_thumbnail(&app).await;
    let (id, filename) = (video.id.as_str(), video.filename.as_str());
    let progress = json!({"videoId": id, "positionSeconds": 1.0, "watchTime": 1.0});
    let batch = json!({"videoId": id, "events": [{"name": "video.buffering"}]});
    let login = json!({"email": viewer.user.email, "password": viewer.password});
    // Lessons only admins manage (issue 28): one to reprocess (failed), one to delete.
    let failed = seed_video(&app, "authz-failed.mp4", &mp4_bytes(100)).await;
    let failed_id = VideoId::parse(&failed.id).unwrap();
    videos::set_status(&app.state.db, &failed_id, videos::VideoStatus::Failed)
        .await
        .unwrap();
    let doomed = seed_video(&app, "authz-doomed.mp4", &mp4_bytes(100)).await;
    let admin_only = |s| [401, 403, 403, s];
    let all = |s| [s; 4];
    let signed_in = |s| [401, s, s, s];

    let cases = [
        case("GET", "/healthz", "/healthz", Body::None, all(200)),
        case("GET", "/readyz", "/readyz", Body::None, all(200)),
        case(
            "GET",
            "/api/test-otel",
            "/api/test-otel",
            Body::None,
            all(200),
        ),
        case(
            "GET",
            "/api/openapi.json",
            "/api/openapi.json",
            Body::None,
            all(200),
        ),
        case(
            "POST",
            "/api/auth/login",
            "/api/auth/login",
            Body::Json(login),
            all(200),
        ),
        case(
            "GET",
            "/api/auth/session",
            "/api/auth/session",
            Body::None,
            signed_in(200),
        ),
        case(
            "POST",
            "/api/auth/register",
            "/api/auth/register",
            Body::FreshRegistration,
            all(201),
        ),
        case(
            "GET",
            "/api/videos",
            "/api/videos",
            Body::None,
            signed_in(200),
        ),
        case(
            "GET",
            "/api/videos/{id_or_filename}",
            format!("/api/videos/{id}"),
            Body::None,
            signed_in(200),
        ),
        case(
            "GET",
            "/api/videos/{id_or_filename}",
            format!("/api/videos/{filename}"),
            Body::None,
            signed_in(200),
        ),
        case(
            "GET",
            "/api/videos/{id_or_filename}/{filename}",
            format!("/api/videos/{id}/{filename}"),
            Body::None,
            signed_in(200),
        ),
        case(
            "GET",
            "/api/videos/{id_or_filename}/thumbnail",
            format!("/api/videos/{id}/thumbnail"),
            Body::None,
            signed_in(200),
        ),
        case(
            "POST",
            "/api/upload",
            "/api/upload",
            Body::FreshUpload,
            [401, 403, 403, 201],
        ),
        case(
            "POST",
            "/api/progress",
            "/api/progress",
            Body::Json(progress),
            signed_in(200),
        ),
        case(
            "GET",
            "/api/progress/{video_id}",
            format!("/api/progress/{id}"),
            Body::None,
            signed_in(200),
        ),
        case(
            "POST",
            "/api/telemetry/player",
            "/api/telemetry/player",
            Body::Json(batch),
            signed_in(200),
        ),
        case("GET", "/api/ws", "/api/ws", Body::WebSocket, signed_in(101)),
        // The trace viewer is for admins; an unknown trace is a 404 only they can see.
        case(
            "GET",
            "/trace-viewer",
            "/trace-viewer",
            Body::None,
            [303, 403, 403, 200],
        ),
        case(
            "GET",
            "/api/trace-viewer/traces",
            "/api/trace-viewer/traces",
            Body::None,
            [401, 403, 403, 200],
        ),
        case(
            "GET",
            "/api/trace-viewer/traces/{trace_id}",
            "/api/trace-viewer/traces/0af7651916cd43dd8448eb211c80319c",
            Body::None,
            [401, 403, 403, 404],
        ),
        case("GET", "/login", "/login", Body::None, all(200)),
        // Registration is on in tests (off by default).
        case("GET", "/signup", "/signup", Body::None, all(200)),
        case(
            "GET",
            "/account",
            "/account",
            Body::None,
            [303, 200, 200, 200],
        ),
        case("GET", "/users", "/users", Body::None, [303, 403, 403, 200]),
        // The pages' scripts and styles: public, like the sign-in page that loads them.
        case(
            "GET",
            "/assets/{name}",
            "/assets/login.js",
            Body::None,
            all(200),
        ),
        // Pages redirect instead of answering 401; the front page always redirects.
        case("GET", "/", "/", Body::None, all(303)),
        case(
            "GET",
            "/videos",
            "/videos",
            Body::None,
            [303, 200, 200, 200],
        ),
        case(
            "GET",
            "/player/{video_id}",
            format!("/player/{id}"),
            Body::None,
            [303, 200, 200, 200],
        ),
        case(
            "PATCH",
            "/api/videos/{id_or_filename}",
            format!("/api/videos/{id}"),
            Body::Json(json!({"title": "Renamed"})),
            admin_only(200),
        ),
        case(
            "POST",
            "/api/videos/{id_or_filename}/reprocess",
            format!("/api/videos/{}/reprocess", failed.id),
            Body::None,
            admin_only(202),
        ),
        case(
            "DELETE",
            "/api/videos/{id_or_filename}",
            format!("/api/videos/{}", doomed.id),
            Body::None,
            admin_only(204),
        ),
        // Accounts (issue 28): only admins manage accounts, the viewer's own included; the
        // account routes act on the caller's own account (they take no id to name another's).
        case(
            "GET",
            "/api/users",
            "/api/users",
            Body::None,
            admin_only(200),
        ),
        case(
            "PATCH",
            "/api/users/{id}",
            format!("/api/users/{}", viewer.user.id),
            Body::Json(json!({"disabled": false})),
            admin_only(200),
        ),
        case(
            "POST",
            "/api/users/{id}/temporary-password",
            format!("/api/users/{}/temporary-password", spare.user.id),
            Body::Json(json!({"password": "a temporary password"})),
            admin_only(204),
        ),
        case(
            "POST",
            "/api/account/password",
            "/api/account/password",
            Body::Json(json!({
                "current_password": viewer.password,
                "new_password": "changed in the matrix",
            })),
            signed_in(204),
        ),
        // Last two: they end the sessions the other cases use.
        case(
            "DELETE",
            "/api/account/sessions",
            "/api/account/sessions",
            Body::None,
            signed_in(204),
        ),
        case(
            "POST",
            "/api/auth/logout",
            "/api/auth/logout",
            Body::None,
            all(204),
        ),
    ];
    for (method, route) in crate::openapi::routes() {
        assert!(
            cases.iter().any(|c| c.method == method && c.route == route),
            "the matrix has no case for {method} {route}"
        );
    }

    // Act
    let cookies = [
        None,
        Some(viewer.cookie.as_str()),
        Some(other.cookie.as_str()),
        Some(admin.cookie.as_str()),
    ];
    let mut wrong = Vec::new();
    for c in &cases {
        for (i, cookie) in cookies.iter().enumerate() {
            let resp = send(&app, *cookie, c).await;
            let status = resp.status().as_u16();
            let code = match status {
                401 | 403 => resp
                    .json::<Value>()
                    .await
                    .ok()
                    .map(|b| b["error"]["code"].clone()),
                _ => None,
            };
            if status != c.expect[i] {
                wrong.push(format!(
                    "{} {} as {}: got {status}, expected {}",
                    c.method, c.path, WHO[i], c.expect[i]
                ));
            }
            // Refusals are the JSON error body with the matching code.
            match (status, code) {
                (401, Some(code)) => assert_eq!(code, "unauthorized", "{} {}", c.method, c.path),
                (403, Some(code)) => assert_eq!(code, "forbidden", "{} {}", c.method, c.path),
                (401 | 403, None) => {
                    panic!("{} {}: {status} without a JSON error", c.method, c.path)
                }
                _ => {}
            }
        }
    }

    // Assert
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.stop().await;
}

async fn save(app: &TestApp, user: &TestUser, body: Value) -> reqwest::Response {
    app.post_json_as("/api/progress", user, &body).await
}

async fn resume_position(app: &TestApp, user: &TestUser, video_id: &str) -> Value {
    let resp = app.get_as(&format!("/api/progress/{video_id}"), user).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_user_never_reads_or_writes_another_users_progress() {
    // Arrange
    let app = spawn_app().await;
    let [owner, other, admin] = accounts(&app).await;
    let video = seed_video(&app, "mine.mp4", &mp4_bytes(100)).await;
    let id = video.id.as_str();
    let saved = save(
        &app,
        &owner,
        json!({"videoId": id, "positionSeconds": 42.0, "watchTime": 50.0}),
    )
    .await;
    assert_eq!(saved.status(), 200);

    // Act: the other viewer names the owner in the body, which the API must ignore.
    let smuggled = save(
        &app,
        &other,
        json!({"videoId": id, "userId": owner.user.id, "positionSeconds": 7.0, "watchTime": 7.0}),
    )
    .await;
    assert_eq!(smuggled.status(), 200);

    // Assert
    let mine = resume_position(&app, &owner, id).await;
    assert_eq!(mine["positionSeconds"], 42.0, "{mine}");
    let theirs = resume_position(&app, &other, id).await;
    assert_eq!(
        theirs["positionSeconds"], 7.0,
        "their own save, not the owner's: {theirs}"
    );
    let admins = resume_position(&app, &admin, id).await;
    assert_eq!(
        admins["positionSeconds"], 0.0,
        "admins read their own too: {admins}"
    );
    assert_eq!(admins["updatedAt"], Value::Null);
    app.stop().await;
}

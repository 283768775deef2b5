//! The authorization matrix: anonymous / viewer / another viewer / admin × every route of the
//! router, and the one rule the matrix cannot show by status codes alone: a user only ever
//! reads and writes their own progress.

use reqwest::header;
use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_core::videos::{self, VideoId};
use vidscope_testkit::{TestApp, TestUser, spawn_app};

use crate::videos::{mp4_bytes, record_thumbnail, seed_video};

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

/// `method route` with `body`, on the route itself: [`Case::at`] names the path of a route with
/// parameters.
fn on(method: &'static str, route: &'static str, body: Body, expect: [u16; 4]) -> Case {
    Case {
        route,
        method,
        path: route.to_owned(),
        body,
        expect,
    }
}

/// `GET route` without a body.
fn get(route: &'static str, expect: [u16; 4]) -> Case {
    on("GET", route, Body::None, expect)
}

impl Case {
    /// The case on `path`, an instance of its route's template.
    fn at(self, path: impl Into<String>) -> Case {
        Case {
            path: path.into(),
            ..self
        }
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
    assert!(record_thumbnail(app, &video).await);
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
        get("/healthz", all(200)),
        get("/readyz", all(200)),
        get("/api/test-otel", all(200)),
        get("/api/openapi.json", all(200)),
        on("POST", "/api/auth/login", Body::Json(login), all(200)),
        get("/api/auth/session", signed_in(200)),
        on(
            "POST",
            "/api/auth/register",
            Body::FreshRegistration,
            all(201),
        ),
        get("/api/videos", signed_in(200)),
        get("/api/videos/{id_or_filename}", signed_in(200)).at(format!("/api/videos/{id}")),
        get("/api/videos/{id_or_filename}", signed_in(200)).at(format!("/api/videos/{filename}")),
        get("/api/videos/{id_or_filename}/{filename}", signed_in(200))
            .at(format!("/api/videos/{id}/{filename}")),
        get("/api/videos/{id_or_filename}/thumbnail", signed_in(200))
            .at(format!("/api/videos/{id}/thumbnail")),
        on(
            "POST",
            "/api/upload",
            Body::FreshUpload,
            [401, 403, 403, 201],
        ),
        on(
            "POST",
            "/api/progress",
            Body::Json(progress),
            signed_in(200),
        ),
        get("/api/progress/{video_id}", signed_in(200)).at(format!("/api/progress/{id}")),
        on(
            "POST",
            "/api/telemetry/player",
            Body::Json(batch),
            signed_in(200),
        ),
        on("GET", "/api/ws", Body::WebSocket, signed_in(101)),
        // The trace viewer is for admins; an unknown trace is a 404 only they can see.
        get("/trace-viewer", [303, 403, 403, 200]),
        get("/api/trace-viewer/traces", [401, 403, 403, 200]),
        get("/api/trace-viewer/traces/{trace_id}", [401, 403, 403, 404])
            .at("/api/trace-viewer/traces/0af7651916cd43dd8448eb211c80319c"),
        get("/login", all(200)),
        // Registration is on in tests (off by default).
        get("/signup", all(200)),
        get("/account", [303, 200, 200, 200]),
        get("/users", [303, 403, 403, 200]),
        // The pages' scripts and styles: public, like the sign-in page that loads them.
        get("/assets/{name}", all(200)).at("/assets/login.js"),
        // Pages redirect instead of answering 401; the front page always redirects.
        get("/", all(303)),
        get("/videos", [303, 200, 200, 200]),
        get("/player/{video_id}", [303, 200, 200, 200]).at(format!("/player/{id}")),
        on(
            "PATCH",
            "/api/videos/{id_or_filename}",
            Body::Json(json!({"title": "Renamed"})),
            admin_only(200),
        )
        .at(format!("/api/videos/{id}")),
        on(
            "POST",
            "/api/videos/{id_or_filename}/reprocess",
            Body::None,
            admin_only(202),
        )
        .at(format!("/api/videos/{}/reprocess", failed.id)),
        on(
            "DELETE",
            "/api/videos/{id_or_filename}",
            Body::None,
            admin_only(204),
        )
        .at(format!("/api/videos/{}", doomed.id)),
        // Accounts (issue 28): only admins manage accounts, the viewer's own included; the
        // account routes act on the caller's own account (they take no id to name another's).
        get("/api/users", admin_only(200)),
        on(
            "PATCH",
            "/api/users/{id}",
            Body::Json(json!({"disabled": false})),
            admin_only(200),
        )
        .at(format!("/api/users/{}", viewer.user.id)),
        on(
            "POST",
            "/api/users/{id}/temporary-password",
            Body::Json(json!({"password": "a temporary password"})),
            admin_only(204),
        )
        .at(format!("/api/users/{}/temporary-password", spare.user.id)),
        on(
            "POST",
            "/api/account/password",
            Body::Json(json!({
                "current_password": viewer.password,
                "new_password": "changed in the matrix",
            })),
            signed_in(204),
        ),
        // Last two: they end the sessions the other cases use.
        on(
            "DELETE",
            "/api/account/sessions",
            Body::None,
            signed_in(204),
        ),
        on("POST", "/api/auth/logout", Body::None, all(204)),
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

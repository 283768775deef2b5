//! Router-level tests: each builds the real router over its own database and object store
//! (`vidscope_testkit::router`) and calls it with `tower::ServiceExt::oneshot`. No server, no
//! port, no OTLP receiver, no global subscriber: they run in parallel and take milliseconds.
//! What they pin is the HTTP contract: pages and their redirects, routing answers, validation
//! errors naming the field, 401/403/413/415 and health. Telemetry is asserted by the server
//! tests in `tests/api/`.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, header};
use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_core::videos::VideoId;
use vidscope_testkit::router::{TestRouter, test_router, test_router_with};

/// What a call answered, body read.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("ASCII header")
    }

    /// Asserts the API's JSON error body: status, `error.code`, and a message containing
    /// `message_part` (the field at fault, for validation errors).
    fn assert_error(&self, status: u16, code: &str, message_part: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(
            self.header("content-type").starts_with("application/json"),
            "{:?}",
            self.headers
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().expect("a message");
        assert!(
            message.contains(message_part),
            "{message:?} does not contain {message_part:?}"
        );
    }

    fn assert_html(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.text());
        assert_eq!(self.header("content-type"), "text/html; charset=utf-8");
        let html = self.text();
        assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
        html
    }

    fn assert_redirect(&self, location: &str) {
        assert_eq!(self.status, 303, "{}", self.text());
        assert_eq!(self.header("location"), location);
    }
}

async fn call(
    app: &TestRouter,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(t) = content_type {
        req = req.header(header::CONTENT_TYPE, t);
    }
    let resp = app.send(req.body(body.into()).expect("request")).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 16 * 1024 * 1024)
        .await
        .expect("read body");
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &TestRouter, path: &str, cookie: Option<&str>) -> Answer {
    call(app, Method::GET, path, cookie, None, Body::empty()).await
}

async fn post_json(app: &TestRouter, path: &str, cookie: Option<&str>, body: Value) -> Answer {
    call(
        app,
        Method::POST,
        path,
        cookie,
        Some("application/json"),
        body.to_string(),
    )
    .await
}

/// A video row with a 60 s duration.
async fn insert_video(app: &TestRouter, title: &str, status: &str) -> String {
    let id = VideoId::generate();
    sqlx::query(
        "INSERT INTO videos (id, filename, title, content_type, size_bytes, status, \
         duration_seconds, created_at, updated_at) \
         VALUES ($1, $2, $3, 'video/mp4', 1000, $4, 60.0, 0, 0)",
    )
    .bind(id.as_str())
    .bind(format!("{id}.mp4"))
    .bind(title)
    .bind(status)
    .execute(app.state.db.pool())
    .await
    .expect("insert test video");
    id.as_str().to_owned()
}

async fn viewer(app: &TestRouter) -> String {
    app.create_user(Role::Viewer).await.cookie
}

const SOME_VIDEO: &str = "/player/0b5a6f8e-0000-4000-8000-000000000001";

// ---- Pages, anonymous: a redirect to the login page that remembers the path ----

#[tokio::test]
async fn anonymous_home_goes_to_login() {
    let app = test_router().await;
    get(&app, "/", None).await.assert_redirect("/login?next=/");
}

#[tokio::test]
async fn anonymous_videos_page_goes_to_login() {
    let app = test_router().await;
    get(&app, "/videos", None)
        .await
        .assert_redirect("/login?next=/videos");
}

#[tokio::test]
async fn anonymous_player_goes_to_login_with_its_path() {
    let app = test_router().await;
    get(&app, SOME_VIDEO, None)
        .await
        .assert_redirect(&format!("/login?next={SOME_VIDEO}"));
}

#[tokio::test]
async fn anonymous_trace_viewer_goes_to_login() {
    let app = test_router().await;
    get(&app, "/trace-viewer?video=x", None)
        .await
        .assert_redirect("/login?next=/trace-viewer");
}

#[tokio::test]
async fn an_unknown_session_is_anonymous_for_pages() {
    let app = test_router().await;
    let unknown = format!("vidscope_session={}", "ab".repeat(32));
    get(&app, "/videos", Some(&unknown))
        .await
        .assert_redirect("/login?next=/videos");
}

#[tokio::test]
async fn a_malformed_session_cookie_is_anonymous_for_pages() {
    let app = test_router().await;
    get(&app, "/", Some("vidscope_session=nope"))
        .await
        .assert_redirect("/login?next=/");
}

#[tokio::test]
async fn the_login_page_needs_no_session() {
    let app = test_router().await;
    let html = get(&app, "/login", None).await.assert_html();
    assert!(
        html.contains("/api/auth/login"),
        "the form posts to the API"
    );
}

#[tokio::test]
async fn a_player_url_without_a_uuid_is_a_400_before_the_login_detour() {
    let app = test_router().await;
    get(&app, "/player/not-a-uuid", None).await.assert_error(
        400,
        "invalid_parameter",
        "videoId must be a UUID",
    );
}

// ---- Pages, signed in ----

#[tokio::test]
async fn signed_in_home_goes_to_the_lesson_list() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    get(&app, "/", Some(&cookie))
        .await
        .assert_redirect("/videos");
}

#[tokio::test]
async fn signed_in_videos_page_is_html() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let html = get(&app, "/videos", Some(&cookie)).await.assert_html();
    assert!(html.contains("id=\"videos\""));
}

#[tokio::test]
async fn signed_in_player_of_a_ready_video_is_html_with_its_escaped_title() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "Fractions <b>&</b>", "ready").await;
    let html = get(&app, &format!("/player/{id}"), Some(&cookie))
        .await
        .assert_html();
    // askama writes numeric character references (`&#60;` is `<`).
    assert!(html.contains("Fractions &#60;b&#62;&#38;&#60;/b&#62;"));
    assert!(html.contains(&id));
}

#[tokio::test]
async fn signed_in_player_of_an_unknown_video_is_a_404() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    get(&app, SOME_VIDEO, Some(&cookie))
        .await
        .assert_error(404, "not_found", "not found");
}

#[tokio::test]
async fn signed_in_player_of_a_video_in_processing_is_a_409() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "Later", "processing").await;
    get(&app, &format!("/player/{id}"), Some(&cookie))
        .await
        .assert_error(409, "not_ready", "status: processing");
}

#[tokio::test]
async fn the_trace_viewer_page_is_html_for_admins() {
    let app = test_router().await;
    let admin = app.create_user(Role::Admin).await;
    get(&app, "/trace-viewer", Some(&admin.cookie))
        .await
        .assert_html();
}

#[tokio::test]
async fn the_trace_viewer_page_is_a_403_for_viewers() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    get(&app, "/trace-viewer", Some(&cookie))
        .await
        .assert_error(403, "forbidden", "admins");
}

// ---- Routing: unknown routes and wrong methods get the JSON error body ----

#[tokio::test]
async fn an_unknown_route_is_a_json_404_naming_it() {
    let app = test_router().await;
    get(&app, "/no/such/page", None).await.assert_error(
        404,
        "route_not_found",
        "no route for GET /no/such/page",
    );
}

#[tokio::test]
async fn an_unknown_api_route_is_a_json_404_for_any_method() {
    let app = test_router().await;
    post_json(&app, "/api/nothing", None, json!({}))
        .await
        .assert_error(404, "route_not_found", "no route for POST /api/nothing");
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let app = test_router().await;
    let a = call(
        &app,
        Method::DELETE,
        "/api/auth/login",
        None,
        None,
        Body::empty(),
    )
    .await;
    a.assert_error(405, "method_not_allowed", "Allow");
    assert_eq!(a.header("allow"), "POST");
}

#[tokio::test]
async fn get_on_a_post_route_is_a_405() {
    let app = test_router().await;
    let a = get(&app, "/api/progress", None).await;
    a.assert_error(405, "method_not_allowed", "Allow");
    assert_eq!(a.header("allow"), "POST");
}

#[tokio::test]
async fn post_on_a_page_is_a_405() {
    let app = test_router().await;
    let a = post_json(&app, "/videos", None, json!({})).await;
    a.assert_error(405, "method_not_allowed", "Allow");
    assert_eq!(a.header("allow"), "GET,HEAD");
}

#[tokio::test]
async fn the_upload_route_405_is_json_too() {
    let app = test_router().await;
    let a = get(&app, "/api/upload", None).await;
    a.assert_error(405, "method_not_allowed", "Allow");
    assert_eq!(a.header("allow"), "POST");
}

// ---- Health and the document ----

#[tokio::test]
async fn liveness_is_ok() {
    let app = test_router().await;
    let a = get(&app, "/healthz", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn readiness_checks_the_database_and_the_store_only_without_redis() {
    let app = test_router().await;
    let a = get(&app, "/readyz", None).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json(),
        json!({"status": "ready", "checks": {"database": {"status": "ok"}, "store": {"status": "ok"}}})
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_anonymously() {
    let app = test_router().await;
    let a = get(&app, "/api/openapi.json", None).await;
    assert_eq!(a.status, 200);
    let doc = a.json();
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    assert!(doc["paths"]["/api/auth/login"].is_object());
}

// ---- 401 for every API route without a session ----

async fn assert_401(app: &TestRouter, method: Method, path: &str, body: Value) {
    let a = call(
        app,
        method,
        path,
        None,
        Some("application/json"),
        body.to_string(),
    )
    .await;
    a.assert_error(401, "unauthorized", "POST /api/auth/login");
}

#[tokio::test]
async fn the_session_route_is_a_401_without_a_session() {
    let app = test_router().await;
    assert_401(&app, Method::GET, "/api/auth/session", json!(null)).await;
}

#[tokio::test]
async fn the_video_list_is_a_401_without_a_session() {
    let app = test_router().await;
    assert_401(&app, Method::GET, "/api/videos", json!(null)).await;
}

#[tokio::test]
async fn progress_is_a_401_without_a_session() {
    let app = test_router().await;
    let body = json!({"videoId": "v", "positionSeconds": 1, "watchTime": 1});
    assert_401(&app, Method::POST, "/api/progress", body).await;
    assert_401(&app, Method::GET, "/api/progress/v", json!(null)).await;
}

#[tokio::test]
async fn player_telemetry_is_a_401_without_a_session() {
    let app = test_router().await;
    let body = json!({"videoId": "v", "events": [{"name": "video.buffering"}]});
    assert_401(&app, Method::POST, "/api/telemetry/player", body).await;
}

#[tokio::test]
async fn upload_is_a_401_without_a_session() {
    let app = test_router().await;
    assert_401(&app, Method::POST, "/api/upload", json!({})).await;
}

#[tokio::test]
async fn the_trace_api_is_a_401_without_a_session() {
    let app = test_router().await;
    assert_401(&app, Method::GET, "/api/trace-viewer/traces", json!(null)).await;
}

#[tokio::test]
async fn an_unknown_session_is_a_401_for_the_api() {
    let app = test_router().await;
    let unknown = format!("vidscope_session={}", "cd".repeat(32));
    get(&app, "/api/auth/session", Some(&unknown))
        .await
        .assert_error(401, "unauthorized", "log in");
}

// ---- Sessions ----

#[tokio::test]
async fn the_session_route_names_the_signed_in_user() {
    let app = test_router().await;
    let user = app.create_user(Role::Viewer).await;
    let a = get(&app, "/api/auth/session", Some(&user.cookie)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["user"]["email"], user.user.email.as_str());
}

#[tokio::test]
async fn logout_without_a_session_is_a_204_that_clears_the_cookie() {
    let app = test_router().await;
    let a = call(
        &app,
        Method::POST,
        "/api/auth/logout",
        None,
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(a.status, 204);
    assert!(a.header("set-cookie").contains("Max-Age=0"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let a = call(
        &app,
        Method::POST,
        "/api/auth/logout",
        Some(&cookie),
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(a.status, 204);
    get(&app, "/api/auth/session", Some(&cookie))
        .await
        .assert_error(401, "unauthorized", "log in");
}

// ---- Login validation ----

#[tokio::test]
async fn login_without_fields_names_both() {
    let app = test_router().await;
    post_json(&app, "/api/auth/login", None, json!({}))
        .await
        .assert_error(400, "credentials_missing", "email and password required");
}

#[tokio::test]
async fn login_without_a_password_names_it() {
    let app = test_router().await;
    post_json(
        &app,
        "/api/auth/login",
        None,
        json!({"email": "a@example.com"}),
    )
    .await
    .assert_error(400, "credentials_missing", "password required");
}

#[tokio::test]
async fn login_with_a_blank_email_names_it() {
    let app = test_router().await;
    let body = json!({"email": "  ", "password": "correct horse"});
    let a = post_json(&app, "/api/auth/login", None, body).await;
    a.assert_error(400, "credentials_missing", "email required");
}

#[tokio::test]
async fn login_with_a_malformed_email_is_a_400() {
    let app = test_router().await;
    let body = json!({"email": "not-an-address", "password": "correct horse"});
    post_json(&app, "/api/auth/login", None, body)
        .await
        .assert_error(400, "invalid", "email is not a valid address");
}

#[tokio::test]
async fn login_with_a_field_of_the_wrong_type_names_it() {
    let app = test_router().await;
    let body = json!({"email": 5, "password": "correct horse"});
    post_json(&app, "/api/auth/login", None, body)
        .await
        .assert_error(400, "invalid_json", "email");
}

#[tokio::test]
async fn login_with_malformed_json_is_a_400() {
    let app = test_router().await;
    call(
        &app,
        Method::POST,
        "/api/auth/login",
        None,
        Some("application/json"),
        "{\"email\":",
    )
    .await
    .assert_error(400, "invalid_json", "EOF");
}

#[tokio::test]
async fn login_with_a_wrong_password_is_a_401() {
    let app = test_router().await;
    let user = app.create_user(Role::Viewer).await;
    let body = json!({"email": user.user.email, "password": "wrong password"});
    post_json(&app, "/api/auth/login", None, body)
        .await
        .assert_error(401, "invalid_credentials", "wrong");
}

#[tokio::test]
async fn login_with_the_right_password_sets_the_session_cookie() {
    let app = test_router().await;
    let user = app.create_user(Role::Viewer).await;
    let body = json!({"email": user.user.email, "password": user.password});
    let a = post_json(&app, "/api/auth/login", None, body).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.header("set-cookie").starts_with("vidscope_session="));
    assert_eq!(a.json()["user"]["email"], user.user.email.as_str());
}

#[tokio::test]
async fn login_is_throttled_per_account() {
    let app = test_router_with(|mut s| {
        s.api.login_max_failures = 2;
        s
    })
    .await;
    let user = app.create_user(Role::Viewer).await;
    let body = json!({"email": user.user.email, "password": "wrong password"});
    for _ in 0..2 {
        let a = post_json(&app, "/api/auth/login", None, body.clone()).await;
        assert_eq!(a.status, 401);
    }
    let a = post_json(&app, "/api/auth/login", None, body).await;
    a.assert_error(429, "too_many_requests", "retry in");
    assert!(a.header("retry-after").parse::<u64>().is_ok());
}

#[tokio::test]
async fn login_with_a_non_json_content_type_is_a_415() {
    let app = test_router().await;
    call(
        &app,
        Method::POST,
        "/api/auth/login",
        None,
        Some("text/plain"),
        json!({"email": "a@example.com", "password": "x"}).to_string(),
    )
    .await
    .assert_error(
        415,
        "unsupported_media_type",
        "Content-Type: application/json",
    );
}

#[tokio::test]
async fn a_json_body_over_one_mib_is_a_413() {
    let app = test_router().await;
    let big = json!({"email": "a".repeat(vidscope_api::limits::BODY_LIMIT), "password": "x"});
    post_json(&app, "/api/auth/login", None, big)
        .await
        .assert_error(413, "payload_too_large", "1048576 bytes");
}

// ---- Registration ----

#[tokio::test]
async fn register_creates_a_signed_in_viewer() {
    let app = test_router().await;
    let body = json!({"email": "New@Example.com", "password": "long enough"});
    let a = post_json(&app, "/api/auth/register", None, body).await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert!(a.header("set-cookie").starts_with("vidscope_session="));
    let user = a.json();
    assert_eq!(user["user"]["email"], "new@example.com");
    assert_eq!(user["user"]["role"], "viewer");
}

#[tokio::test]
async fn register_rejects_a_malformed_email() {
    let app = test_router().await;
    let body = json!({"email": "nobody@nowhere", "password": "long enough"});
    post_json(&app, "/api/auth/register", None, body)
        .await
        .assert_error(400, "invalid", "email");
}

#[tokio::test]
async fn register_rejects_a_short_password() {
    let app = test_router().await;
    let body = json!({"email": "short@example.com", "password": "1234567"});
    post_json(&app, "/api/auth/register", None, body)
        .await
        .assert_error(400, "invalid", "password must be between 8 and 128");
}

#[tokio::test]
async fn register_rejects_a_long_password() {
    let app = test_router().await;
    let body = json!({"email": "long@example.com", "password": "x".repeat(129)});
    post_json(&app, "/api/auth/register", None, body)
        .await
        .assert_error(400, "invalid", "password must be between 8 and 128");
}

#[tokio::test]
async fn register_without_a_password_names_the_field() {
    let app = test_router().await;
    post_json(
        &app,
        "/api/auth/register",
        None,
        json!({"email": "x@example.com"}),
    )
    .await
    .assert_error(400, "invalid_json", "missing field `password`");
}

#[tokio::test]
async fn register_with_a_taken_email_is_a_409() {
    let app = test_router().await;
    let user = app.create_user(Role::Viewer).await;
    let body = json!({"email": user.user.email, "password": "long enough"});
    post_json(&app, "/api/auth/register", None, body)
        .await
        .assert_error(409, "conflict", "already exists");
}

#[tokio::test]
async fn register_is_a_403_when_registration_is_off() {
    let app = test_router_with(|mut s| {
        s.api.registration_enabled = false;
        s
    })
    .await;
    let body = json!({"email": "off@example.com", "password": "long enough"});
    post_json(&app, "/api/auth/register", None, body)
        .await
        .assert_error(403, "forbidden", "registration is disabled");
}

// ---- Progress validation ----

async fn save(app: &TestRouter, cookie: &str, body: Value) -> Answer {
    post_json(app, "/api/progress", Some(cookie), body).await
}

#[tokio::test]
async fn progress_with_a_bad_video_id_names_it() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "a b", "positionSeconds": 1, "watchTime": 1});
    save(&app, &cookie, body)
        .await
        .assert_error(400, "invalid", "videoId must be 1-128 printable");
}

#[tokio::test]
async fn progress_with_a_negative_position_names_it() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "T", "ready").await;
    let body = json!({"videoId": id, "positionSeconds": -1, "watchTime": 1});
    save(&app, &cookie, body).await.assert_error(
        400,
        "invalid",
        "positionSeconds must not be negative",
    );
}

#[tokio::test]
async fn progress_with_a_position_over_a_week_names_it() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "v1", "positionSeconds": 604801, "watchTime": 1});
    save(&app, &cookie, body)
        .await
        .assert_error(400, "invalid", "positionSeconds is out of range");
}

#[tokio::test]
async fn progress_beyond_the_duration_names_the_position() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "T", "ready").await;
    let body = json!({"videoId": id, "positionSeconds": 100, "watchTime": 1});
    save(&app, &cookie, body).await.assert_error(
        400,
        "invalid",
        "positionSeconds 100 is beyond the video's duration",
    );
}

#[tokio::test]
async fn progress_with_a_negative_watch_time_names_it() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "v1", "positionSeconds": 1, "watchTime": -3});
    save(&app, &cookie, body)
        .await
        .assert_error(400, "invalid", "watchTime must not be negative");
}

#[tokio::test]
async fn progress_without_a_position_names_the_field() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "v1", "watchTime": 1});
    save(&app, &cookie, body).await.assert_error(
        400,
        "invalid_json",
        "missing field `positionSeconds`",
    );
}

#[tokio::test]
async fn progress_for_an_unknown_video_is_a_404() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "no-such-video", "positionSeconds": 1, "watchTime": 1});
    save(&app, &cookie, body)
        .await
        .assert_error(404, "not_found", "video not found");
}

#[tokio::test]
async fn progress_is_saved_for_a_known_video() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "T", "ready").await;
    let body = json!({"videoId": id, "positionSeconds": 12.5, "watchTime": 13});
    let a = save(&app, &cookie, body).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let saved = a.json();
    assert_eq!(saved["saved"], true);
    assert_eq!(saved["progress"]["positionSeconds"], 12.5);
}

#[tokio::test]
async fn progress_with_a_form_content_type_is_a_415() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    call(
        &app,
        Method::POST,
        "/api/progress",
        Some(&cookie),
        Some("application/x-www-form-urlencoded"),
        "videoId=v1",
    )
    .await
    .assert_error(415, "unsupported_media_type", "application/json");
}

#[tokio::test]
async fn reading_progress_with_an_overlong_video_id_names_it() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    get(
        &app,
        &format!("/api/progress/{}", "v".repeat(129)),
        Some(&cookie),
    )
    .await
    .assert_error(400, "invalid", "videoId must be 1-128");
}

// ---- Player telemetry validation ----

async fn batch(app: &TestRouter, cookie: &str, body: Value) -> Answer {
    post_json(app, "/api/telemetry/player", Some(cookie), body).await
}

#[tokio::test]
async fn player_telemetry_names_an_unknown_event() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "v1", "events": [{"name": "video.buffering"}, {"name": "video.exploded"}]});
    batch(&app, &cookie, body)
        .await
        .assert_error(400, "invalid_player_event", "events[1].name");
}

#[tokio::test]
async fn player_telemetry_names_a_value_out_of_range() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "v1", "events": [{"name": "video.loaded", "loadTimeMs": 1e9}]});
    batch(&app, &cookie, body).await.assert_error(
        400,
        "invalid_player_event",
        "events[0].loadTimeMs",
    );
}

#[tokio::test]
async fn player_telemetry_refuses_an_empty_batch() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    batch(&app, &cookie, json!({"videoId": "v1", "events": []}))
        .await
        .assert_error(400, "invalid_player_event", "events must hold 1 to 100");
}

#[tokio::test]
async fn player_telemetry_refuses_a_malformed_traceparent() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body =
        json!({"videoId": "v1", "traceparent": "00-zz-1", "events": [{"name": "video.buffering"}]});
    batch(&app, &cookie, body)
        .await
        .assert_error(400, "invalid_traceparent", "traceparent");
}

#[tokio::test]
async fn player_telemetry_refuses_malformed_json() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    call(
        &app,
        Method::POST,
        "/api/telemetry/player",
        Some(&cookie),
        Some("application/json"),
        "[1,",
    )
    .await
    .assert_error(400, "invalid_json", "invalid batch");
}

#[tokio::test]
async fn player_telemetry_over_64_kib_is_a_413() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let body = json!({"videoId": "v1", "events": [{"name": "video.buffering", "pad": "x".repeat(70_000)}]});
    batch(&app, &cookie, body)
        .await
        .assert_error(413, "payload_too_large", "at most 65536 bytes");
}

#[tokio::test]
async fn player_telemetry_takes_a_text_plain_beacon() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "T", "ready").await;
    let body =
        json!({"videoId": id, "events": [{"name": "video.page_hidden", "finalPosition": 30}]});
    let a = call(
        &app,
        Method::POST,
        "/api/telemetry/player",
        Some(&cookie),
        Some("text/plain;charset=UTF-8"),
        body.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let answer = a.json();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["progress"]["positionSeconds"], 30.0);
}

#[tokio::test]
async fn player_telemetry_page_hidden_beyond_the_duration_names_the_event() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    let id = insert_video(&app, "T", "ready").await;
    let body =
        json!({"videoId": id, "events": [{"name": "video.page_hidden", "finalPosition": 90}]});
    batch(&app, &cookie, body).await.assert_error(
        400,
        "invalid",
        "events[0].finalPosition 90 is beyond",
    );
}

// ---- Upload ----

#[tokio::test]
async fn upload_by_a_viewer_is_a_403() {
    let app = test_router().await;
    let cookie = viewer(&app).await;
    call(
        &app,
        Method::POST,
        "/api/upload",
        Some(&cookie),
        Some("multipart/form-data; boundary=x"),
        "--x--\r\n",
    )
    .await
    .assert_error(403, "forbidden", "admin role");
}

#[tokio::test]
async fn upload_without_multipart_is_a_415() {
    let app = test_router().await;
    let admin = app.create_user(Role::Admin).await;
    call(
        &app,
        Method::POST,
        "/api/upload",
        Some(&admin.cookie),
        Some("application/json"),
        "{}",
    )
    .await
    .assert_error(415, "unsupported_media_type", "multipart/form-data");
}

#[tokio::test]
async fn upload_without_a_file_part_is_a_400() {
    let app = test_router().await;
    let admin = app.create_user(Role::Admin).await;
    let form = "--x\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n--x--\r\n";
    call(
        &app,
        Method::POST,
        "/api/upload",
        Some(&admin.cookie),
        Some("multipart/form-data; boundary=x"),
        form,
    )
    .await
    .assert_error(400, "missing_file", "`file` part");
}

#[tokio::test]
async fn upload_without_a_boundary_is_a_400() {
    let app = test_router().await;
    let admin = app.create_user(Role::Admin).await;
    call(
        &app,
        Method::POST,
        "/api/upload",
        Some(&admin.cookie),
        Some("multipart/form-data"),
        "",
    )
    .await
    .assert_error(400, "invalid_multipart", "boundary");
}

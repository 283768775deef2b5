//! Seed 001's auth flow: sessions, the auth events, throttling, page redirects.

use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_testkit::{TestApp, TraceResponse, spawn_app, spawn_app_with};

use crate::helpers::app_with_user;

pub(crate) fn cookie_of(resp: &reqwest::Response) -> String {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("Set-Cookie")
        .to_str()
        .unwrap()
        .to_owned();
    set.split(';').next().unwrap().to_owned()
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The first event called `name` on any span of the trace `resp` names in `traceresponse`.
async fn trace_event(
    app: &TestApp,
    resp: &reqwest::Response,
    name: &str,
) -> vidscope_testkit::otlp::CapturedEvent {
    let server = server_span(app, resp).await;
    let wanted = name.to_owned();
    let trace = server.trace_id.clone();
    let span = app
        .span_where(move |s| s.trace_id == trace && s.event(&wanted).is_some())
        .await;
    span.events.into_iter().find(|e| e.name == name).unwrap()
}

/// The server span of the request answered with `resp`, via its `traceresponse` header.
async fn server_span(
    app: &TestApp,
    resp: &reqwest::Response,
) -> vidscope_testkit::otlp::CapturedSpan {
    let TraceResponse {
        trace_id: trace,
        span_id: span,
        ..
    } = TraceResponse::of(resp.headers());
    app.flush_telemetry().await;
    app.span_where(move |s| s.trace_id == trace && s.span_id == span)
        .await
}

pub(crate) async fn login(
    app: &TestApp,
    email: &impl serde::Serialize,
    password: &impl serde::Serialize,
) -> reqwest::Response {
    let body = json!({"email": email, "password": password});
    post_json(app, "/api/auth/login", body).await
}

#[tokio::test]
async fn register_session_logout_round_trip() {
    let app = spawn_app().await;
    let register = |email: &str| {
        let account = json!({"email": email, "password": "long enough pw"});
        post_json(&app, "/api/auth/register", account)
    };
    let resp = register("New@Example.com").await;
    assert_eq!(resp.status(), 201);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "Secure is off by default: {set}");
    let cookie = cookie_of(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], "new@example.com");
    assert_eq!(body["user"]["role"], "viewer");

    let me = app
        .get_with("/api/auth/session", &[("cookie", &cookie)])
        .await;
    assert_eq!(me.status(), 200);
    let server = server_span(&app, &me).await;
    assert_eq!(
        server.attr_str("user.id"),
        body["user"]["id"].as_str(),
        "user.id on the server span once known"
    );

    let out = app
        .client
        .post(app.url("/api/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let me = app
        .get_with("/api/auth/session", &[("cookie", &cookie)])
        .await;
    assert_eq!(me.status(), 401, "the session is gone server-side");

    // Same e-mail again: conflict.
    assert_eq!(register("new@example.com").await.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn login_success_and_failures_emit_the_seed_events() {
    let (app, u) = app_with_user(Role::Admin).await;

    let ok = login(&app, &u.user.email, &u.password).await;
    assert_eq!(ok.status(), 200);
    let span = server_span(&app, &ok).await;
    trace_event(&app, &ok, "auth.session.created").await;
    assert_eq!(span.attr_str("user.id"), Some(u.user.id.as_str()));
    assert_eq!(span.attr_str("api.category"), Some("auth"));

    let wrong = login(&app, &u.user.email, &"not-the-password-xyz").await;
    assert_eq!(wrong.status(), 401);
    let ev = trace_event(&app, &wrong, "auth.failed").await;
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_credentials");
    assert_eq!(ev.attr_str("reason"), Some("wrong_password"));
    assert_eq!(ev.attr_bool("hasCookie"), Some(false));

    let unknown = login(&app, &"nobody@example.com", &"whatever123").await;
    assert_eq!(unknown.status(), 401, "same answer as a wrong password");
    let ev = trace_event(&app, &unknown, "auth.failed").await;
    assert_eq!(ev.attr_str("reason"), Some("unknown_email"));

    let missing = post_json(&app, "/api/auth/login", json!({"email": u.user.email})).await;
    assert_eq!(missing.status(), 400);
    trace_event(&app, &missing, "auth.credentials.missing").await;
    let body: Value = missing.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );

    // No password ever reaches telemetry.
    app.flush_telemetry().await;
    assert!(!app.otlp.raw_contains(u.password.as_bytes()));
    assert!(!app.otlp.raw_contains(b"not-the-password-xyz"));
    app.stop().await;
}

#[tokio::test]
async fn login_is_throttled_per_account_with_retry_after() {
    let app = spawn_app_with(|s| s.api.login_max_failures = 2).await;
    let u = app.create_user(Role::Viewer).await;
    for _ in 0..2 {
        let r = login(&app, &u.user.email, &"wrong-password-1").await;
        assert_eq!(r.status(), 401);
    }
    // Even the right password is refused until the window passes.
    let r = login(&app, &u.user.email, &u.password).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    let ev = trace_event(&app, &r, "auth.failed").await;
    assert_eq!(ev.attr_str("reason"), Some("rate_limited"));
    app.stop().await;
}

#[tokio::test]
async fn anonymous_api_gets_401_and_pages_redirect_to_login() {
    let app = spawn_app().await;
    let r = app.get("/api/auth/session").await;
    assert_eq!(r.status(), 401);
    let ev = trace_event(&app, &r, "auth.failed").await;
    assert_eq!(ev.attr_bool("hasCookie"), Some(false));
    assert_eq!(ev.attr_str("reason"), Some("no_session"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let r = app
        .get_with(
            "/api/auth/session",
            &[("cookie", &format!("vidscope_session={}", "f".repeat(64)))],
        )
        .await;
    assert_eq!(r.status(), 401);
    let ev = trace_event(&app, &r, "auth.failed").await;
    assert_eq!(ev.attr_bool("hasCookie"), Some(true));
    assert_eq!(ev.attr_str("reason"), Some("invalid_session"));

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/");
    let ev = trace_event(&app, &r, "middleware.redirect").await;
    assert_eq!(ev.attr_str("to"), Some("/login"));
    assert_eq!(app.get("/login").await.status(), 200);

    let u = app.create_user(Role::Viewer).await;
    let r = no_redirects
        .get(app.url("/"))
        .header("cookie", &u.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        303,
        "signed in: the front page is the lesson list"
    );
    assert_eq!(r.headers()["location"], "/videos");
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_and_disabled_registration_get_clear_errors() {
    let app = spawn_app_with(|s| s.api.registration_enabled = false).await;
    let json = Some("application/json");
    let cases = [
        (
            "/api/auth/register",
            json,
            json!({"email": "a@example.com", "password": "long enough pw"}).to_string(),
            (403, "forbidden"),
        ),
        (
            "/api/auth/login",
            json,
            "{not json".to_owned(),
            (400, "invalid_json"),
        ),
        (
            "/api/auth/login",
            None,
            "email=a".to_owned(),
            (415, "unsupported_media_type"),
        ),
        (
            "/api/auth/login",
            json,
            json!({"email": "not-an-email", "password": "x"}).to_string(),
            (400, "invalid"),
        ),
    ];
    for (path, content_type, body, (status, code)) in cases {
        let mut req = app.client.post(app.url(path)).body(body.clone());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{path} {body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code, "{path} {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn session_lookups_go_through_the_cache_with_hit_or_miss_spans() {
    let (app, u) = app_with_user(Role::Viewer).await;
    let mut hits = Vec::new();
    for _ in 0..2 {
        let r = app.get_as("/api/auth/session", &u).await;
        assert_eq!(r.status(), 200);
        let trace = TraceResponse::of(r.headers()).trace_id;
        app.flush_telemetry().await;
        let get = app
            .span_where(move |s| s.trace_id == trace && s.name == "cache.get")
            .await;
        assert_eq!(get.attr_str("cache.backend"), Some("memory"));
        let key = get.attr_str("cache.key").unwrap().to_owned();
        assert!(key.starts_with("session:") && key.len() == 20, "{key}");
        assert!(
            !u.cookie.contains(&key["session:".len()..]),
            "the label is not the token"
        );
        hits.push(get.attr_bool("cache.hit"));
    }
    assert_eq!(hits, [Some(false), Some(true)], "miss, then hit");
    app.stop().await;
}

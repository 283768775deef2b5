//! The HTML pages without a browser: redirects, the player's answers for bad, unknown and
//! unready videos, what the player page embeds (its own trace context, the escaped title), and a
//! page-hide beacon that carries the page's trace in its body. The browser tests
//! (`crates/cli/tests/browser.rs`) drive the same pages in Chromium.

use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_core::videos::VideoId;
use vidscope_testkit::db::insert_video_row;
use vidscope_testkit::{TestApp, spawn_app};

use crate::helpers::app_with_user;
use crate::progress::{stored_progress, warm_up};

async fn insert(app: &TestApp, id: &str, title: &str, status: &str) {
    insert_video_row(&app.state.db, id, title, status, Some(60.0)).await;
}

#[tokio::test]
async fn anonymous_page_requests_go_to_login_and_come_back() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/videos",
        "/player/0b5a6f8e-0000-4000-8000-000000000001",
    ] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(
            resp.headers()["location"],
            format!("/login?next={path}").as_str(),
            "{path}"
        );
    }
    // A URL that can never name a player is a 400 without the detour through the login page.
    let resp = app.get("/player/not-a-uuid").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_parameter");
    let viewer = app.create_user(Role::Viewer).await;
    let resp = app.get_as("/", &viewer).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/videos");
    let resp = app.get_as("/videos", &viewer).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("id=\"videos\""));
}

#[tokio::test]
async fn the_player_names_what_is_wrong_with_the_video() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    // A lesson not ready yet is a page, not an error (the router tests cover it).
    let cases = [
        (
            "/player/not-a-uuid".to_owned(),
            400,
            "videoId must be a UUID",
        ),
        (format!("/player/{}", VideoId::generate()), 404, "not found"),
    ];
    for (path, status, message) in cases {
        let resp = app.get_as(&path, &viewer).await;
        assert_eq!(resp.status(), status, "{path}");
        let body: Value = resp.json().await.unwrap();
        let got = body["error"]["message"].as_str().unwrap_or_default();
        assert!(got.contains(message), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_player_page_carries_its_own_trace_and_an_escaped_title() {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let id = VideoId::generate();
    let title = "Fractions </script><script>alert(1)</script> & \"more\"";
    insert(&app, id.as_str(), title, "ready").await;

    let resp = app.get_as(&format!("/player/{id}"), &viewer).await;

    assert_eq!(resp.status(), 200);
    let traceresponse = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
    let html = resp.text().await.unwrap();
    // The meta tag is in the response's trace (the handler's span, a child of the server span).
    let meta = html
        .split("<meta name=\"traceparent\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a traceparent meta tag");
    let trace_of = |tp: &str| tp.split('-').nth(1).map(str::to_owned);
    assert_eq!(
        trace_of(meta),
        trace_of(&traceresponse),
        "{meta} vs {traceresponse}"
    );
    assert_eq!(meta.len(), 55, "{meta}");
    // The title cannot end the script element or open a tag.
    assert!(!html.contains("<script>alert(1)"), "unescaped title");
    assert!(
        html.contains("Fractions &#60;/script&#62;"),
        "askama's escape of `<`, `>`"
    );
    let data = html
        .split("<script id=\"page-data\" type=\"application/json\">")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("page data");
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["videoId"], id.as_str());
    assert_eq!(data["title"], title);
    assert_eq!(data["streamUrl"], format!("/api/videos/{id}/{id}.mp4"));
}

#[tokio::test]
async fn a_beacon_carries_the_pages_trace_in_its_body() {
    // Arrange: what `navigator.sendBeacon` sends on page hide: text/plain, no traceparent
    // header, the page's context in the body.
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let id = VideoId::generate();
    insert(&app, id.as_str(), "Beacon", "ready").await;
    warm_up(&app, &viewer).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let page_span = "00f067aa0ba902b7";
    let body = json!({"videoId": id.as_str(), "traceparent": format!("00-{trace_id}-{page_span}-01"),
        "events": [{"name": "video.page_hidden", "finalPosition": 42.5, "watchTime": 40}]});

    // Act
    let resp = app
        .client
        .post(app.url("/api/telemetry/player"))
        .header("cookie", &viewer.cookie)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();

    // Assert: saved, and the session span continues the page's trace.
    assert_eq!(resp.status(), 200);
    let stored: Value = stored_progress(&app, &viewer, id.as_str()).await;
    assert_eq!(stored["positionSeconds"], 42.5, "{stored}");
    app.flush_telemetry().await;
    let session = app.span_named("video.session").await;
    assert_eq!(session.trace_id, trace_id);
    assert_eq!(session.parent_span_id.as_deref(), Some(page_span));

    // A malformed body traceparent is refused, naming the field; nothing is saved.
    let mut bad = body.clone();
    bad["traceparent"] = json!("00-nope");
    bad["events"][0]["finalPosition"] = json!(1.0);
    let resp = app
        .client
        .post(app.url("/api/telemetry/player"))
        .header("cookie", &viewer.cookie)
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("traceparent"),
        "{err}"
    );
    let stored: Value = stored_progress(&app, &viewer, id.as_str()).await;
    assert_eq!(stored["positionSeconds"], 42.5, "{stored}");
}

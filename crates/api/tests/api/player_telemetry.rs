//! `POST /api/telemetry/player` (seed 000's player metrics and events).

use serde_json::{Value, json};
use vidscope_testkit::{TestApp, TestUser};

use crate::progress::{NO_SUCH_VIDEO, V1, stored_progress, viewer_and_lesson, warm_up};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PAGE_SPAN_ID: &str = "b7ad6b7169203331";

async fn post_batch(
    app: &TestApp,
    user: &TestUser,
    body: &Value,
    traceparent: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/telemetry/player"))
        .header("cookie", &user.cookie)
        .json(body);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    req.send().await.expect("POST /api/telemetry/player")
}

#[tokio::test]
async fn a_valid_batch_becomes_events_on_video_session_in_the_pages_trace_and_metrics() {
    // Arrange
    let (app, viewer) = viewer_and_lesson(Some(600.0)).await;
    let batch = json!({"videoId": V1, "events": [
        {"name": "video.loaded", "videoId": V1, "loadTimeMs": 850},
        {"name": "video.resume_attempt", "success": false, "expected": 120, "actual": 0,
         "resumeTimeMs": 300},
        {"name": "video.resume_position_mismatch", "expected": 120, "actual": 0},
        {"name": "video.buffering", "durationMs": 1200},
        {"name": "video.buffering"},
        {"name": "video.page_hidden", "finalPosition": 131.5, "watchTime": 140},
    ]});
    warm_up(&app, &viewer).await;

    // Act
    let resp = post_batch(
        &app,
        &viewer,
        &batch,
        Some(&format!("00-{TRACE_ID}-{PAGE_SPAN_ID}-01")),
    )
    .await;

    // Assert: accepted, and the page-hide position was persisted (seed 000's "missing
    // persistence").
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["accepted"], 6, "{body}");
    assert_eq!(body["progress"]["positionSeconds"], 131.5, "{body}");
    let stored: Value = stored_progress(&app, &viewer, V1).await;
    assert_eq!(stored["positionSeconds"], 131.5, "{stored}");
    assert_eq!(stored["watchTime"], 140.0, "{stored}");

    app.flush_telemetry().await;
    let session = app.span_named("video.session").await;
    assert_eq!(session.trace_id, TRACE_ID, "continues the page's trace");
    assert_eq!(
        session.parent_span_id.as_deref(),
        Some(PAGE_SPAN_ID),
        "child of the page's span"
    );
    assert_eq!(session.attr_str("user.id"), Some(viewer.user.id.as_str()));
    assert_eq!(session.attr_str("video.id"), Some(V1));
    let names: Vec<&str> = session.events.iter().map(|e| e.name.as_str()).collect();
    for expected in [
        "video.loaded",
        "video.resume_attempt",
        "video.resume_position_mismatch",
        "video.buffering",
        "video.page_hidden",
        "progress.saved",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    assert_eq!(
        session
            .event("video.loaded")
            .unwrap()
            .attr_f64("loadTimeMs"),
        Some(850.0)
    );
    let resume = session.event("video.resume_attempt").unwrap();
    assert_eq!(resume.attr_bool("success"), Some(false));
    assert_eq!(resume.attr_f64("expected"), Some(120.0));
    assert_eq!(resume.attr_f64("actual"), Some(0.0));
    assert_eq!(
        session
            .event("video.page_hidden")
            .unwrap()
            .attr_f64("finalPosition"),
        Some(131.5)
    );
    // The progress save's database statement is inside the session span.
    app.span_where(|s| {
        s.name == "INSERT progress" && s.parent_span_id.as_deref() == Some(session.span_id.as_str())
    })
    .await;

    for (metric, check) in [
        ("video.load_time_ms", 1.0),
        ("video.resume_time_ms", 1.0),
        ("video.buffering_events_total", 2.0),
        ("video.resume_failures_total", 1.0),
        ("progress.updates_total", 1.0),
    ] {
        app.metric_point(metric, |p| {
            p.value.as_number().or(p.value.count().map(|c| c as f64)) == Some(check)
        })
        .await;
    }
    let resume_time = app.otlp.metric_points("video.resume_time_ms");
    assert!(
        resume_time
            .iter()
            .any(|p| p.attr_bool("success") == Some(false)),
        "{resume_time:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_batches_are_400s_naming_the_event_index_and_field() {
    // Arrange
    let (app, viewer) = viewer_and_lesson(Some(100.0)).await;
    let ok = json!({"name": "video.buffering"});
    let cases = [
        (
            json!({"name": "video.exploded"}),
            "events[1].name",
            "unknown event",
        ),
        (
            json!({"name": "video.loaded", "loadTimeMs": -1}),
            "events[1].loadTimeMs",
            "negative load time",
        ),
        (
            json!({"name": "video.loaded", "loadTimeMs": 1e9}),
            "events[1].loadTimeMs",
            "absurd load time",
        ),
        (
            json!({"name": "video.resume_attempt", "success": true, "expected": 1}),
            "events[1].actual",
            "missing field",
        ),
        (
            json!({"name": "video.buffering", "durationMs": "slow"}),
            "events[1].durationMs",
            "not a number",
        ),
        (
            json!({"name": "video.page_hidden", "finalPosition": 500}),
            "events[1].finalPosition",
            "beyond the video's duration",
        ),
    ];
    for (bad, field, case) in cases {
        // Act
        let resp = post_batch(
            &app,
            &viewer,
            &json!({"videoId": V1, "events": [ok, bad]}),
            None,
        )
        .await;
        // Assert
        assert_eq!(resp.status(), 400, "{case}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{case}: {message}");
    }

    let too_many: Vec<Value> = (0..101).map(|_| ok.clone()).collect();
    let resp = post_batch(
        &app,
        &viewer,
        &json!({"videoId": V1, "events": too_many}),
        None,
    )
    .await;
    assert_eq!(resp.status(), 400, "more than 100 events");

    let padding = "x".repeat(70 * 1024);
    let resp = post_batch(
        &app,
        &viewer,
        &json!({"videoId": V1, "events": [ok], "padding": padding}),
        None,
    )
    .await;
    assert_eq!(resp.status(), 413, "over 64 KiB");

    let resp = post_batch(
        &app,
        &viewer,
        &json!({"videoId": NO_SUCH_VIDEO, "events": [ok]}),
        None,
    )
    .await;
    assert_eq!(resp.status(), 404, "unknown video");

    // Nothing of the refused batches was recorded.
    app.flush_telemetry().await;
    assert!(app.otlp.spans_named("video.session").is_empty());
    assert!(
        app.otlp
            .metric_points("video.buffering_events_total")
            .iter()
            .all(|p| p.value.as_i64() == Some(0)),
    );
    app.stop().await;
}

#[tokio::test]
async fn a_page_hide_beacon_with_text_plain_saves_the_final_position() {
    // navigator.sendBeacon sends its string body as text/plain.
    let (app, viewer) = viewer_and_lesson(None).await;

    let resp = app
        .client
        .post(app.url("/api/telemetry/player"))
        .header("cookie", &viewer.cookie)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(
            json!({"videoId": V1, "events": [
                {"name": "video.page_hidden", "finalPosition": 77}
            ]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    let stored: Value = stored_progress(&app, &viewer, V1).await;
    assert_eq!(stored["positionSeconds"], 77.0, "{stored}");
    assert_eq!(stored["watchTime"], 0.0, "no watch time known yet");
    app.stop().await;
}

//! `POST /api/progress` and `GET /api/progress/{videoId}` (seeds 000/001).

use std::time::Duration;

use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_testkit::db::insert_video_row;
use vidscope_testkit::{TestApp, TestUser, expect_error, spawn_app};

use crate::helpers::{app_with_user, span_with_event};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Ids of the videos tests insert (video ids are UUIDs).
pub(crate) const V1: &str = "00000000-0000-4000-8000-0000000000a1";
const SHORT: &str = "00000000-0000-4000-8000-0000000000a2";
const LONG: &str = "00000000-0000-4000-8000-0000000000a3";
/// A well-formed id no test inserts.
pub(crate) const NO_SUCH_VIDEO: &str = "00000000-0000-4000-8000-0000000000ff";

/// Inserts a ready video straight into the database.
pub(crate) async fn insert_video(app: &TestApp, id: &str, duration_seconds: Option<f64>) {
    insert_video_row(&app.state.db, id, "Lesson", "ready", duration_seconds).await;
}

/// A running app with a signed-in viewer and the ready lesson [`V1`], `duration_seconds` long:
/// what the progress, player and socket tests start from.
pub(crate) async fn viewer_and_lesson(duration_seconds: Option<f64>) -> (TestApp, TestUser) {
    let (app, viewer) = app_with_user(Role::Viewer).await;
    insert_video(&app, V1, duration_seconds).await;
    (app, viewer)
}

/// One authenticated request before the one under test. On SQLite the server span of an
/// app's first database-touching request is now and then never exported (reproduced with
/// `GET /api/auth/session` alone, not with Postgres; reported to the lead), so tests that
/// assert on a request's spans make it the second one.
pub(crate) async fn warm_up(app: &TestApp, user: &TestUser) {
    let resp = app.get_as("/api/auth/session", user).await;
    assert_eq!(resp.status(), 200);
}

pub(crate) async fn post_progress(
    app: &TestApp,
    user: &TestUser,
    body: Value,
) -> reqwest::Response {
    app.post_json_as("/api/progress", user, &body).await
}

/// Saves `position` seconds into `video_id` after `watch_time` seconds of watching.
async fn save_at(
    app: &TestApp,
    user: &TestUser,
    video_id: &str,
    position: f64,
    watch_time: f64,
) -> reqwest::Response {
    let body = json!({"videoId": video_id, "positionSeconds": position, "watchTime": watch_time});
    post_progress(app, user, body).await
}

pub(crate) async fn get_progress(
    app: &TestApp,
    user: &TestUser,
    video_id: &str,
) -> reqwest::Response {
    app.get_as(&format!("/api/progress/{video_id}"), user).await
}

/// The caller's progress on `video_id`, as `GET /api/progress/{video_id}` answers it.
pub(crate) async fn stored_progress(app: &TestApp, user: &TestUser, video_id: &str) -> Value {
    get_progress(app, user, video_id)
        .await
        .json()
        .await
        .unwrap()
}

async fn stored_updated_at(app: &TestApp, user: &TestUser, video_id: &str) -> i64 {
    sqlx::query_scalar("SELECT updated_at FROM progress WHERE user_id = $1 AND video_id = $2")
        .bind(&user.user.id)
        .bind(video_id)
        .fetch_one(app.state.db.pool())
        .await
        .expect("progress row")
}

#[tokio::test]
async fn a_repeat_save_within_five_seconds_is_not_written_and_is_traced() {
    // Arrange
    let (app, viewer) = viewer_and_lesson(Some(600.0)).await;
    let body = json!({"videoId": V1, "positionSeconds": 42.0, "watchTime": 40.0});
    warm_up(&app, &viewer).await;

    // Act: the player's two trackers fire the same save back to back.
    let first = post_progress(&app, &viewer, body.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let written_at = stored_updated_at(&app, &viewer, V1).await;
    let second = post_progress(&app, &viewer, body).await;

    // Assert
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["saved"], true, "{first}");
    assert_eq!(second["saved"], false, "{second}");
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(second["progress"]["positionSeconds"], 42.0);
    assert_eq!(
        stored_updated_at(&app, &viewer, V1).await,
        written_at,
        "the duplicate was not written"
    );

    // A real move is written again at once.
    let moved = save_at(&app, &viewer, V1, 52.0, 50.0).await;
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(moved["saved"], true, "{moved}");

    let skipped = span_with_event(&app, "api.progress.update", "progress.duplicate_skipped").await;
    assert_eq!(skipped.attr_str("user.id"), Some(viewer.user.id.as_str()));
    assert_eq!(skipped.attr_str("video.id"), Some(V1));
    let received = skipped.event("progress.data_received").unwrap();
    assert_eq!(received.attr_f64("positionSeconds"), Some(42.0));
    assert_eq!(received.attr_f64("watchTime"), Some(40.0));
    assert_eq!(received.attr_bool("completed"), Some(false));
    let saves = app.otlp.spans_named("api.progress.update");
    assert_eq!(
        saves
            .iter()
            .filter(|s| s.event("progress.duplicate_skipped").is_some())
            .count(),
        1,
        "only the repeat is a duplicate"
    );
    app.metric_point("progress.updates_total", |p| {
        p.attr_str("outcome") == Some("duplicate") && p.value.as_i64() == Some(1)
    })
    .await;
    app.metric_point("progress.updates_total", |p| {
        p.attr_str("outcome") == Some("saved") && p.value.as_i64() == Some(2)
    })
    .await;
    app.metric_point("progress.save_time_ms", |p| {
        p.attr_str("outcome") == Some("saved") && p.value.count() == Some(2)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn reaching_95_percent_marks_the_video_completed() {
    // Arrange
    let (app, viewer) = app_with_user(Role::Viewer).await;
    insert_video(&app, SHORT, Some(100.0)).await;
    insert_video(&app, LONG, Some(100.0)).await;
    warm_up(&app, &viewer).await;

    // Act
    let done = save_at(&app, &viewer, SHORT, 95.0, 96.0).await;
    let not_yet = save_at(&app, &viewer, LONG, 94.0, 94.0).await;

    // Assert
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["autoCompleted"], true, "{done}");
    assert_eq!(done["progress"]["completed"], true, "{done}");
    let not_yet: Value = not_yet.json().await.unwrap();
    assert_eq!(not_yet["progress"]["completed"], false, "{not_yet}");
    let stored: Value = stored_progress(&app, &viewer, SHORT).await;
    assert_eq!(stored["completed"], true, "{stored}");
    assert_eq!(stored["positionSeconds"], 95.0);

    // Rewatching from the start keeps the lesson completed.
    let again: Value = save_at(&app, &viewer, SHORT, 3.0, 99.0)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["progress"]["completed"], true, "{again}");
    assert_eq!(again["progress"]["positionSeconds"], 3.0);

    let span = span_with_event(
        &app,
        "api.progress.update",
        "progress.auto_complete_triggered",
    )
    .await;
    let event = span.event("progress.auto_complete_triggered").unwrap();
    assert_eq!(event.attr_f64("positionSeconds"), Some(95.0));
    assert_eq!(event.attr_f64("durationSeconds"), Some(100.0));
    assert_eq!(span.attr_str("video.id"), Some(SHORT));
    assert_eq!(
        app.otlp
            .spans_where(|s| s.event("progress.auto_complete_triggered").is_some())
            .len(),
        1,
        "94 % and a client already completed do not trigger it"
    );
    app.stop().await;
}

#[tokio::test]
async fn another_viewer_can_neither_read_nor_overwrite_my_progress() {
    // Arrange
    let (app, me) = viewer_and_lesson(Some(600.0)).await;
    let other = app.create_user(Role::Viewer).await;
    let mine = save_at(&app, &me, V1, 30.0, 30.0).await;
    assert_eq!(mine.status(), 200);

    // Act: the other viewer reads the video and saves, even naming my user id in the body.
    let seen: Value = stored_progress(&app, &other, V1).await;
    let write = post_progress(
        &app,
        &other,
        json!({"videoId": V1, "positionSeconds": 500.0, "watchTime": 500.0,
               "userId": me.user.id, "user_id": me.user.id}),
    )
    .await;

    // Assert
    assert_eq!(seen["positionSeconds"], 0.0, "{seen}");
    assert_eq!(seen["updatedAt"], Value::Null, "{seen}");
    assert_eq!(write.status(), 200);
    let still_mine: Value = stored_progress(&app, &me, V1).await;
    assert_eq!(still_mine["positionSeconds"], 30.0, "{still_mine}");
    let theirs: Value = stored_progress(&app, &other, V1).await;
    assert_eq!(theirs["positionSeconds"], 500.0, "{theirs}");
    app.stop().await;
}

#[tokio::test]
async fn invalid_saves_are_400s_naming_the_field() {
    // Arrange
    let (app, viewer) = viewer_and_lesson(Some(100.0)).await;
    let cases = [
        (
            json!({"videoId": V1, "positionSeconds": -1.0, "watchTime": 1.0}),
            "positionSeconds",
            "negative position",
        ),
        (
            json!({"videoId": V1, "positionSeconds": 1.0, "watchTime": -3.0}),
            "watchTime",
            "negative watch time",
        ),
        (
            json!({"videoId": V1, "positionSeconds": 1e12, "watchTime": 1.0}),
            "positionSeconds",
            "absurd position",
        ),
        (
            json!({"videoId": V1, "positionSeconds": 150.0, "watchTime": 1.0}),
            "positionSeconds",
            "beyond the duration",
        ),
        (
            json!({"videoId": "", "positionSeconds": 1.0, "watchTime": 1.0}),
            "videoId",
            "empty video id",
        ),
        (
            json!({"positionSeconds": 1.0, "watchTime": 1.0}),
            "videoId",
            "missing video id",
        ),
        (
            json!({"videoId": V1, "positionSeconds": "ten", "watchTime": 1.0}),
            "positionSeconds",
            "position not a number",
        ),
    ];
    for (body, field, case) in cases {
        // Act
        let resp = post_progress(&app, &viewer, body).await;
        // Assert
        assert_eq!(resp.status(), 400, "{case}");
        let err: Value = resp.json().await.unwrap();
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{case}: {message}");
    }

    // NaN is not JSON: the body is refused as such.
    let nan = app
        .client
        .post(app.url("/api/progress"))
        .header("cookie", &viewer.cookie)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"videoId": "{V1}", "positionSeconds": NaN, "watchTime": 1}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(nan.status(), 400);

    let unknown = save_at(&app, &viewer, NO_SUCH_VIDEO, 1.0, 1.0).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        get_progress(&app, &viewer, NO_SUCH_VIDEO).await.status(),
        404
    );

    app.flush_telemetry().await;
    app.metric_point("progress.updates_total", |p| {
        p.attr_str("outcome") == Some("rejected") && p.value.as_i64() >= Some(5)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn resume_position_defaults_to_zero_before_any_save() {
    let (app, viewer) = viewer_and_lesson(None).await;

    let resp = get_progress(&app, &viewer, V1).await;

    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"videoId": V1, "positionSeconds": 0.0, "watchTime": 0.0,
               "completed": false, "updatedAt": null})
    );
    app.stop().await;
}

#[tokio::test]
async fn anonymous_callers_get_401_on_every_route() {
    let app = spawn_app().await;
    insert_video(&app, V1, Some(10.0)).await;
    let c = &app.client;
    let requests = [
        (
            "POST /api/progress",
            c.post(app.url("/api/progress"))
                .json(&json!({"videoId": V1, "positionSeconds": 1.0, "watchTime": 1.0})),
        ),
        (
            "GET /api/progress/{id}",
            c.get(app.url(&format!("/api/progress/{V1}"))),
        ),
        (
            "POST /api/telemetry/player",
            c.post(app.url("/api/telemetry/player"))
                .json(&json!({"videoId": V1, "events": [{"name": "video.buffering"}]})),
        ),
        (
            "GET /api/ws (upgrade)",
            c.get(app.url("/api/ws"))
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ),
        ("GET /api/ws (plain)", c.get(app.url("/api/ws"))),
    ];
    for (name, request) in requests {
        let resp = request.send().await.unwrap();
        expect_error(resp, 401, "unauthorized", name).await;
    }
    app.stop().await;
}

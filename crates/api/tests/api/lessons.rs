//! Admins manage lessons (issue 28): edit the title and description, delete a lesson with its
//! progress and pending jobs (its objects go through the worker's `video.purge` job, tested in
//! the worker's `tests/jobs/lessons.rs`), reprocess a failed one. Bad input is a 400 naming
//! the field.

use reqwest::header;
use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_core::jobs::NewJob;
use vidscope_core::jobs::probe::ProbePayload;
use vidscope_core::outbox;
use vidscope_core::videos::{self, VideoId, VideoStatus};
use vidscope_testkit::{TestApp, TestUser, expect_error};

use crate::helpers::{app_with_user, span_with_event};
use crate::videos::{mp4_bytes, seed_video};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> reqwest::Response {
    app.request(method, path, Some(&user.cookie), body.as_ref())
        .await
}

async fn patch(app: &TestApp, id: &str, user: &TestUser, body: Value) -> reqwest::Response {
    send(
        app,
        reqwest::Method::PATCH,
        &format!("/api/videos/{id}"),
        user,
        Some(body),
    )
    .await
}

async fn delete(app: &TestApp, id: &str, user: &TestUser) -> reqwest::Response {
    send(
        app,
        reqwest::Method::DELETE,
        &format!("/api/videos/{id}"),
        user,
        None,
    )
    .await
}

const PROGRESS_ROWS: &str = "SELECT COUNT(*) FROM progress WHERE video_id = $1";
const QUEUED_JOBS: &str = "SELECT COUNT(*) FROM jobs WHERE payload LIKE $1";

/// How many rows `sql` (a `COUNT(*)` with one parameter) counts.
async fn count(app: &TestApp, sql: &'static str, param: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(param)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

/// A running app, an admin and one seeded lesson: what every test here starts from.
async fn admin_and_lesson(filename: &str) -> (TestApp, TestUser, videos::Video) {
    let (app, admin) = app_with_user(Role::Admin).await;
    let video = seed_video(&app, filename, &mp4_bytes(100)).await;
    (app, admin, video)
}

async fn outbox_kinds(app: &TestApp, id: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM outbox WHERE payload LIKE $1 ORDER BY created_at, id")
        .bind(format!("%{id}%"))
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_edits_a_lessons_title_and_description() {
    let (app, admin, video) = admin_and_lesson("edit.mp4").await;
    let viewer = app.create_user(Role::Viewer).await;
    let id = video.id.as_str();
    // Read once, so the cached metadata must be dropped by the edit.
    let before = app.get_json_as(&format!("/api/videos/{id}"), &viewer).await;
    assert_eq!(before["description"], "");

    let resp = patch(
        &app,
        id,
        &admin,
        json!({"title": "  Fractions, part 1 ", "description": "What a half is.\nAnd a third."}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["title"], "Fractions, part 1");
    assert_eq!(body["description"], "What a half is.\nAnd a third.");

    // One field alone keeps the other.
    let resp = patch(&app, id, &admin, json!({"description": ""})).await;
    assert_eq!(resp.status(), 200);
    let after = app.get_json_as(&format!("/api/videos/{id}"), &viewer).await;
    assert_eq!(after["title"], "Fractions, part 1", "{after}");
    assert_eq!(after["description"], "", "{after}");
    let resp = patch(&app, id, &admin, json!({"description": "<b>Halves</b>"})).await;
    assert_eq!(resp.status(), 200);

    // Where the title shows, the description does (escaped: it is user input).
    let page = app
        .get_as(&format!("/player/{id}"), &viewer)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Fractions, part 1"), "{page}");
    assert!(page.contains("Halves"), "{page}");
    assert!(!page.contains("<b>Halves"), "unescaped: {page}");
    let list: Value = app
        .get_as("/api/videos", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert!(list.to_string().contains("<b>Halves</b>"), "{list}");

    let span = span_with_event(&app, "api.videos.update", "video.updated").await;
    assert_eq!(span.attr_str("user.id"), Some(admin.user.id.as_str()));
    assert_eq!(span.attr_str("video.id"), Some(id));
    app.stop().await;
}

#[tokio::test]
async fn bad_edits_are_400s_naming_the_field_and_unknown_lessons_404s() {
    let (app, admin, video) = admin_and_lesson("bad.mp4").await;
    let id = video.id.as_str();
    for (body, code, needle) in [
        (json!({"title": ""}), "invalid_title", "title"),
        (json!({"title": "   "}), "invalid_title", "title"),
        (json!({"title": "x".repeat(201)}), "invalid_title", "200"),
        (json!({"title": "a\u{7}b"}), "invalid_title", "control"),
        (
            json!({"description": "d".repeat(5001)}),
            "invalid_description",
            "5000",
        ),
        (
            json!({"description": "a\u{0}b"}),
            "invalid_description",
            "control",
        ),
        (
            json!({"title": "ok", "status": "ready"}),
            "invalid_json",
            "unknown field `status`",
        ),
        (json!({"title": 7}), "invalid_json", "title"),
        (json!({"title": null}), "invalid_json", "title"),
        (
            json!({"title": "ok", "description": null}),
            "invalid_json",
            "description",
        ),
        (json!({}), "empty_update", "title"),
    ] {
        let resp = patch(&app, id, &admin, body.clone()).await;
        let err = expect_error(resp, 400, code, &body.to_string()).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    // Not JSON at all.
    let resp = app
        .client
        .patch(app.url(&format!("/api/videos/{id}")))
        .header(header::COOKIE, &admin.cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"title\":")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Nothing changed.
    let stored = videos::get(&app.state.db, &VideoId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.title, "A lesson");

    // An unknown lesson, and a file name where an id belongs, for each of the three actions.
    let unknown = format!("/api/videos/{}", VideoId::generate());
    for (lesson, status, code) in [
        (unknown.as_str(), 404, "not_found"),
        ("/api/videos/bad.mp4", 400, "invalid_id"),
    ] {
        for (method, path) in [
            (reqwest::Method::PATCH, lesson.to_owned()),
            (reqwest::Method::DELETE, lesson.to_owned()),
            (reqwest::Method::POST, format!("{lesson}/reprocess")),
        ] {
            let body = Some(json!({"title": "t"}));
            let resp = send(&app, method.clone(), &path, &admin, body).await;
            expect_error(resp, status, code, &format!("{method} {path}")).await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_lesson_removes_its_row_progress_and_pending_jobs_in_one_go() {
    let (app, admin, video) = admin_and_lesson("gone.mp4").await;
    let viewer = app.create_user(Role::Viewer).await;
    let keep = seed_video(&app, "kept.mp4", &mp4_bytes(100)).await;
    let id = video.id.as_str();
    let vid = VideoId::parse(id).unwrap();
    // A learner's progress on both, and a probe still pending for both (the outbox, and the
    // database queue's table as the relay would have put it).
    for v in [&video, &keep] {
        let resp = app
            .post_json_as(
                "/api/progress",
                &viewer,
                &json!({"videoId": v.id, "positionSeconds": 1.0, "watchTime": 1.0}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let probe = NewJob::new(&ProbePayload {
            video_id: VideoId::parse(&v.id).unwrap(),
        });
        outbox::enqueue(&app.state.db, std::slice::from_ref(&probe))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, trace_context, status, attempt, enqueued_at, \
             available_at, updated_at) VALUES ($1, 'video.probe', $2, '{}', 'ready', 0, 0, 0, 0)",
        )
        .bind(format!("queued-{}", v.id))
        .bind(json!({"videoId": v.id}).to_string())
        .execute(app.state.db.pool())
        .await
        .unwrap();
    }
    // Cached, so the delete must drop it.
    assert_eq!(
        app.get_as(&format!("/api/videos/{id}"), &viewer)
            .await
            .status(),
        200
    );

    let resp = delete(&app, id, &admin).await;
    assert_eq!(resp.status(), 204);

    assert!(videos::get(&app.state.db, &vid).await.unwrap().is_none());
    assert_eq!(
        app.get_as(&format!("/api/videos/{id}"), &viewer)
            .await
            .status(),
        404
    );
    let progress = count(&app, PROGRESS_ROWS, id).await;
    assert_eq!(progress, 0, "progress rows left");
    assert_eq!(
        outbox_kinds(&app, id).await,
        ["video.purge"],
        "pending probe left, or no purge"
    );
    let queued = count(&app, QUEUED_JOBS, &format!("%{id}%")).await;
    assert_eq!(queued, 0, "a queued probe left");
    let purge: String = sqlx::query_scalar("SELECT payload FROM outbox WHERE kind = 'video.purge'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let purge: Value = serde_json::from_str(&purge).unwrap();
    assert_eq!(
        purge["keys"],
        json!([
            format!("videos/{id}/gone.mp4"),
            format!("videos/{id}/thumbnail.jpg")
        ]),
    );
    // The other lesson keeps everything.
    assert_eq!(outbox_kinds(&app, &keep.id).await, ["video.probe"]);
    let kept = count(&app, PROGRESS_ROWS, &keep.id).await;
    assert_eq!(kept, 1);
    // Gone is gone.
    let again = delete(&app, id, &admin).await;
    assert_eq!(again.status(), 404);

    // Traced and logged with who did it.
    let span = span_with_event(&app, "api.videos.delete", "video.deleted").await;
    let event = span.event("video.deleted").unwrap();
    assert_eq!(event.attr_str("user.id"), Some(admin.user.id.as_str()));
    assert_eq!(event.attr_str("video.id"), Some(id));
    assert_eq!(event.attr_i64("video.progress_rows"), Some(1));
    assert_eq!(event.attr_i64("video.pending_jobs"), Some(2));
    let logged = app
        .logs
        .json_lines()
        .into_iter()
        .find(|l| l.to_string().contains("video.deleted"))
        .expect("a video.deleted log line");
    assert!(logged.to_string().contains(&admin.user.id), "{logged}");
    app.stop().await;
}

#[tokio::test]
async fn only_a_failed_lesson_is_reprocessed_and_another_is_a_409_naming_its_state() {
    let (app, admin, video) = admin_and_lesson("again.mp4").await;
    let id = video.id.as_str();
    let vid = VideoId::parse(id).unwrap();
    let path = format!("/api/videos/{id}/reprocess");

    for status in [
        VideoStatus::Uploaded,
        VideoStatus::Processing,
        VideoStatus::Ready,
    ] {
        videos::set_status(&app.state.db, &vid, status)
            .await
            .unwrap();
        let resp = send(&app, reqwest::Method::POST, &path, &admin, None).await;
        let err = expect_error(resp, 409, "not_ready", &format!("{status:?}")).await;
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(status.as_str()), "{message}");
    }
    assert!(
        outbox_kinds(&app, id).await.is_empty(),
        "a refused reprocess queued a job"
    );

    videos::set_status(&app.state.db, &vid, VideoStatus::Failed)
        .await
        .unwrap();
    let resp = send(&app, reqwest::Method::POST, &path, &admin, None).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "uploaded", "{body}");
    assert_eq!(outbox_kinds(&app, id).await, ["video.probe"]);
    // Queued once: it is `uploaded` now.
    let resp = send(&app, reqwest::Method::POST, &path, &admin, None).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(outbox_kinds(&app, id).await, ["video.probe"]);

    let span = span_with_event(&app, "api.videos.reprocess", "video.reprocess_requested").await;
    assert_eq!(span.attr_str("user.id"), Some(admin.user.id.as_str()));
    let refused = app
        .span_where(|s| s.name == "api.videos.reprocess" && s.attr_str("video.status").is_some())
        .await;
    assert!(refused.attr_str("video.status").is_some());
    app.stop().await;
}

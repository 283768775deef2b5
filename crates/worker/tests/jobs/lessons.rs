//! Lessons an admin deletes (issue 28): a processing job whose lesson is gone settles as done
//! (never retried, never dead-lettered), and the delete's `video.purge` job removes the
//! lesson's objects, retrying while the store refuses, so they go once it is back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header;
use vidscope_core::domain::Role;
use vidscope_core::jobs::probe::ProbePayload;
use vidscope_core::jobs::purge::PurgePayload;
use vidscope_core::jobs::{self, JobPayload, NewJob};
use vidscope_core::outbox;
use vidscope_core::storage::{ObjectKey, StoreKind};
use vidscope_core::videos::VideoId;
use vidscope_testkit::files::files_under;
use vidscope_testkit::{TestApp, spawn_app};
use vidscope_worker::WorkerSettings;
use vidscope_worker::jobs::Registry;
use vidscope_worker::jobs::thumbnail::ThumbnailPayload;

use crate::common::{PROBE, THUMBNAIL};
use crate::pipeline::{fast_settings, poll, queues, start, start_standard, upload, wait_done};

#[tokio::test]
async fn jobs_for_a_deleted_lesson_settle_as_done_on_both_queues() {
    let app = spawn_app().await;
    for (name, queue) in queues(&app, "w").await {
        // A lesson deleted after its jobs were handed to the queue: no row any more.
        let gone = VideoId::generate();
        let probe = NewJob::new(&ProbePayload {
            video_id: gone.clone(),
        });
        let thumbnail = NewJob::new(&ThumbnailPayload {
            video_id: gone.clone(),
        });
        outbox::enqueue(&app.state.db, &[probe.clone(), thumbnail.clone()])
            .await
            .unwrap();
        let worker = start_standard(&app, queue.clone());
        wait_done(&app, &probe.id).await;
        wait_done(&app, &thumbnail.id).await;
        worker.stop().await;
        for (kind, id) in [(PROBE, &probe.id), (THUMBNAIL, &thumbnail.id)] {
            let dead = queue.dead_letters(kind, 50).await.unwrap();
            assert!(
                dead.iter().all(|d| &d.message.id != id),
                "{name}: {kind} job of a deleted lesson was dead-lettered"
            );
        }
        // Settled at the first delivery: the database queue counts deliveries in `attempt`.
        if name == "db" {
            let attempts: Vec<i64> =
                sqlx::query_scalar("SELECT attempt FROM jobs WHERE id IN ($1, $2)")
                    .bind(&probe.id)
                    .bind(&thumbnail.id)
                    .fetch_all(app.state.db.pool())
                    .await
                    .unwrap();
            assert!(
                attempts.iter().all(|a| *a <= 1),
                "{name}: retried: {attempts:?}"
            );
        }
    }
    let logs = app.logs.contents();
    assert!(
        logs.contains("job.video_deleted"),
        "the settled jobs say why:\n{logs}"
    );
    app.stop().await;
}

fn local_root(app: &TestApp) -> PathBuf {
    match &app.settings.store.kind {
        StoreKind::Local { root } => root.clone(),
        StoreKind::S3 { .. } => panic!("expected the local store"),
    }
}

/// `chattr +i` / `-i` on `dir`: an immutable directory refuses to lose entries, even to root
/// (the tests run as root in CI, where a `chmod` would not stop anything).
fn immutable(dir: &Path, on: bool) {
    let status = Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(dir)
        .status()
        .expect("chattr runs");
    assert!(status.success(), "chattr on {}", dir.display());
}

/// Takes the directory's immutability off even when the test fails, so its temp dir can go.
struct Thaw(PathBuf);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_deleted_lessons_objects_go_once_the_store_can_delete_again() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    // Uploaded through the API (its probe waits in the outbox: no worker yet), with a
    // thumbnail where the thumbnail job would put it.
    let resp = upload(
        &app,
        &admin.cookie,
        "doomed.mp4",
        &crate::pipeline::test_video(),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let thumb = ObjectKey::parse(&format!("videos/{id}/thumbnail.jpg")).unwrap();
    app.state
        .store
        .put_bytes(
            &thumb,
            Bytes::from_static(b"\xFF\xD8\xFFjpeg"),
            "image/jpeg",
        )
        .await
        .unwrap();
    let dir = local_root(&app).join("videos").join(&id);
    let stored = files_under(&dir);
    assert!(stored.len() >= 2, "video and thumbnail stored: {stored:?}");

    // The store cannot delete (its directory is immutable) while the admin deletes.
    immutable(&dir, true);
    let _thaw = Thaw(dir.clone());
    let resp = app
        .client
        .delete(app.url(&format!("/api/videos/{id}")))
        .header(header::COOKIE, &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "the answer does not wait for the store");
    // The database is whole: no row, no probe; one purge job naming both objects.
    let vid = VideoId::parse(&id).unwrap();
    assert!(
        vidscope_core::videos::get(&app.state.db, &vid)
            .await
            .unwrap()
            .is_none()
    );
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM outbox WHERE payload LIKE $1")
        .bind(format!("%{id}%"))
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(
        kinds,
        ["video.purge"],
        "the pending probe went with the row"
    );
    let purge_id: String = sqlx::query_scalar("SELECT id FROM outbox WHERE kind = $1")
        .bind(PurgePayload::KIND.as_str())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();

    let queue = crate::common::db_queue(&app.state.db, "w", Duration::from_secs(3));
    let settings = WorkerSettings {
        max_attempts: 1000,
        ..fast_settings()
    };
    let worker = start(&app, queue.clone(), Registry::standard(), settings);
    // Failing and retried, not dead-lettered, while the store refuses.
    poll(
        "the purge failed twice",
        Duration::from_secs(30),
        || async {
            let attempt: i64 = sqlx::query_scalar("SELECT attempt FROM jobs WHERE id = $1")
                .bind(&purge_id)
                .fetch_optional(app.state.db.pool())
                .await
                .unwrap()?;
            (attempt >= 2).then_some(())
        },
    )
    .await;
    assert!(!jobs::is_done(&app.state.db, &purge_id).await.unwrap());
    let dead = queue.dead_letters(PurgePayload::KIND, 10).await.unwrap();
    assert!(dead.is_empty(), "dead-lettered while the store was down");
    assert_eq!(
        files_under(&dir),
        stored,
        "nothing went while the store refused"
    );

    // The store is back: the objects go.
    immutable(&dir, false);
    wait_done(&app, &purge_id).await;
    worker.stop().await;
    assert_eq!(
        files_under(&dir),
        Vec::<PathBuf>::new(),
        "objects left behind"
    );
    let logs = app.logs.contents();
    assert!(logs.contains("video.purged"), "{logs}");
    app.stop().await;
}

//! `vidscope-api migrate`: the step a deploy runs before new replicas start (the Kubernetes
//! migration Job). It must migrate an empty database, exit 0 without serving, and refuse
//! arguments it does not know instead of ignoring them and serving.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::Row;

#[tokio::test]
async fn migrate_migrates_and_exits_and_unknown_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidscope-api"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("VIDSCOPE_DATA_DIR", dir.path())
        .env("VIDSCOPE_ADDR", "127.0.0.1:0")
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // A serving process would never exit on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`vidscope-api migrate` did not exit within 30 s (is it serving?)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let db = vidscope_core::db::Db::connect(&url).await.unwrap();
    let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(db.pool())
        .await
        .expect("the users table exists")
        .try_get("n")
        .unwrap();
    assert_eq!(users, 0, "migrated, and nothing else done");

    let out = Command::new(env!("CARGO_BIN_EXE_vidscope-api"))
        .arg("migrat")
        .env("DATABASE_URL", "sqlite://unused.db")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("usage: vidscope-api [migrate]"), "{stderr}");
}

/// Migration 0005 (issue 28) makes file names no longer unique. On SQLite that rebuilds the
/// `videos` table, and dropping the old one with foreign keys on would cascade into `progress`:
/// a database migrated from 0004 must keep every video, column and resume position, keep the
/// foreign keys working, and accept a second video of the same name.
#[tokio::test]
async fn filename_migration_keeps_data_and_allows_a_second_video_of_the_same_name() {
    use vidscope_core::db::Backend;
    use vidscope_core::videos::{self, Filename, NewVideo, VideoId};

    let test_db = vidscope_testkit::db::fresh_unmigrated_db().await;
    let db = &test_db.db;
    let older = match db.backend() {
        Backend::Sqlite => sqlx::migrate!("../core/migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("../core/migrations/postgres"),
    };
    older
        .run_to(4, db.pool())
        .await
        .expect("migrations 0001-0004");
    let first = "11111111-1111-4111-8111-111111111111";
    for sql in [
        "INSERT INTO users (id, email, password_hash, role, created_at) \
         VALUES ('u1', 'learner@example.com', 'x', 'viewer', 1)",
        "INSERT INTO videos (id, filename, title, content_type, size_bytes, status, \
         duration_seconds, thumbnail_key, uploaded_by, created_at, updated_at, video_codec, \
         audio_codec, width, height) VALUES ('11111111-1111-4111-8111-111111111111', \
         'lesson.mp4', 'First', 'video/mp4', 1000, 'ready', 12.5, \
         'videos/11111111-1111-4111-8111-111111111111/thumbnail.jpg', 'u1', 5, 6, 'h264', \
         'aac', 640, 360)",
        "INSERT INTO progress (user_id, video_id, position_seconds, watch_time_seconds, \
         completed, updated_at) VALUES ('u1', '11111111-1111-4111-8111-111111111111', 4.5, \
         9.0, 1, 7)",
    ] {
        sqlx::query(sql).execute(db.pool()).await.expect(sql);
    }

    db.migrate().await.expect("migration 0005");

    let id = VideoId::parse(first).unwrap();
    let kept = videos::get(db, &id)
        .await
        .unwrap()
        .expect("the video survives");
    assert_eq!(
        (
            kept.filename.as_str(),
            kept.title.as_str(),
            kept.size_bytes,
            kept.status.as_str(),
            kept.duration_seconds,
            kept.thumbnail_key.as_deref(),
            kept.uploaded_by.as_deref(),
            kept.created_at,
            kept.video_codec.as_deref(),
            kept.width,
        ),
        (
            "lesson.mp4",
            "First",
            1000,
            "ready",
            Some(12.5),
            Some("videos/11111111-1111-4111-8111-111111111111/thumbnail.jpg"),
            Some("u1"),
            5,
            Some("h264"),
            Some(640),
        )
    );
    let progress = || async {
        sqlx::query("SELECT position_seconds FROM progress WHERE video_id = $1")
            .bind(first)
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<f64, _>("position_seconds").unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(progress().await, [4.5], "the resume position survives");

    // A second lesson from a file of the same name.
    let filename = Filename::parse("lesson.mp4").unwrap();
    let second = VideoId::parse("22222222-2222-4222-8222-222222222222").unwrap();
    videos::insert(
        db,
        &NewVideo {
            id: &second,
            filename: &filename,
            title: "Second",
            content_type: "video/mp4",
            size_bytes: 2000,
            uploaded_by: Some("u1"),
        },
    )
    .await
    .expect("a second video named lesson.mp4");
    let legacy = videos::get_by_filename(db, &filename)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        legacy.id, first,
        "the legacy name lookup keeps its old video"
    );

    // The rebuilt table still carries the foreign keys both ways.
    sqlx::query("DELETE FROM videos WHERE id = $1")
        .bind(first)
        .execute(db.pool())
        .await
        .unwrap();
    assert!(progress().await.is_empty(), "progress still cascades");
    let orphan = sqlx::query(
        "INSERT INTO progress (user_id, video_id, position_seconds, watch_time_seconds, \
         completed, updated_at) VALUES ('u1', 'no-such-video', 0, 0, 0, 0)",
    )
    .execute(db.pool())
    .await;
    assert!(orphan.is_err(), "foreign keys are enforced again");
}

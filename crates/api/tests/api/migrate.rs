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

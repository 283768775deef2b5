//! Temporary failures and full disks, made for real on the test's own database and store: a
//! database connection terminated by the server (Postgres) or a lock held past the busy timeout
//! (SQLite) is a 503 with `Retry-After`; a full database or object store is a 507. Each body
//! names the dependency and nothing of its internals, and the upload keeps nothing behind.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;
use vidscope_core::domain::Role;
use vidscope_core::storage::StoreKind;
use vidscope_testkit::disk::SmallDisk;
use vidscope_testkit::{TestApp, TestUser};

use crate::upload::{file, files_under, form, local_root, upload, video_count};
use crate::videos::mp4_bytes;

/// What a failed upload must leave: no video row, no job, no file in the local store.
async fn assert_nothing_kept(app: &TestApp) {
    assert_eq!(video_count(app).await, 0, "a video row was kept");
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0, "a job was kept");
    if let StoreKind::Local { .. } = app.settings.store.kind {
        let left = files_under(&local_root(app));
        assert!(left.is_empty(), "left in the store: {left:?}");
    }
}

/// The status and JSON body of a refused upload; the body must say nothing of the cause's
/// internals (no SQL, no file path, no driver message).
async fn refusal(resp: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    let text = body.to_string();
    for internal in [
        "sqlite", "SQL", "code:", "57P01", "53100", "/tmp", "os error",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
    (status, retry_after, body)
}

/// Uploads a `len`-byte `lesson.mp4` as `admin`, which must be refused with a 507 (and no
/// `Retry-After`: only freeing space helps); the message.
async fn refused_for_space(app: &TestApp, admin: &TestUser, len: usize) -> String {
    let data = mp4_bytes(len);
    let resp = upload(app, Some(&admin.cookie), form(&[file("lesson.mp4", &data)])).await;
    let (status, retry_after, body) = refusal(resp).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(retry_after, None);
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// The cause the body leaves out is in the request's log line (with its trace id), classified.
fn assert_logged(app: &TestApp, error_type: &str) {
    let lines = app.logs.json_lines();
    let line = lines
        .iter()
        .find(|l| l["error.type"] == error_type)
        .unwrap_or_else(|| panic!("no log line with error.type {error_type}: {lines:?}"));
    assert!(line["trace_id"].is_string(), "{line}");
    assert!(line["error"].is_string(), "{line}");
}

/// Postgres: the server terminates the upload's connection while its `INSERT` waits on a lock
/// the test holds. SQLite: the test holds the write lock past the busy timeout (5 s).
#[tokio::test]
async fn a_database_failing_for_a_moment_is_a_503_with_retry_after() {
    let app = TestApp::builder().spawn().await;
    let admin = app.create_user(Role::Admin).await;
    let pool = app.state.db.pool().clone();
    let data = mp4_bytes(64 * 1024);
    let body = form(&[file("lesson.mp4", &data)]);

    let mut lock = pool.acquire().await.unwrap();
    let postgres = app.pg_database().is_some();
    if postgres {
        // Reads pass (the upload's name check), writes wait.
        sqlx::raw_sql("BEGIN; LOCK TABLE videos IN EXCLUSIVE MODE")
            .execute(&mut *lock)
            .await
            .unwrap();
    } else {
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *lock)
            .await
            .unwrap();
    }
    let terminate = async {
        if postgres {
            let waiting = wait_for_lock_waiter(&pool).await;
            let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(waiting)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(terminated);
        }
    };
    let (resp, ()) = tokio::join!(upload(&app, Some(&admin.cookie), body), terminate);
    let (status, retry_after, body) = refusal(resp).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut *lock).await.unwrap();
    drop(lock);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(
        body["error"]["message"], "the database is unavailable, retry later",
        "{body}"
    );
    assert_nothing_kept(&app).await;
    assert_logged(&app, "db.unavailable");

    // The pool replaced the terminated connection: the retry goes through.
    let data = mp4_bytes(64 * 1024);
    let resp = upload(
        &app,
        Some(&admin.cookie),
        form(&[file("lesson.mp4", &data)]),
    )
    .await;
    assert_eq!(resp.status(), 201);
    app.stop().await;
}

/// The backend of the test's database that waits on a lock.
async fn wait_for_lock_waiter(pool: &sqlx::AnyPool) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = sqlx::query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(row) = row {
            return row.get::<i32, _>("pid");
        }
        assert!(
            Instant::now() < deadline,
            "the upload never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SQLite: `max_page_count` caps the test's own database at its size and the `videos` table
/// is filled to the last byte, so the upload's `INSERT` gets `SQLITE_FULL`. Postgres: the
/// `videos` table moves to a tablespace on a full tmpfs, so extending it fails with `53100
/// disk_full`. Either way the stored file is removed again.
#[tokio::test]
async fn a_full_database_is_a_507_and_the_upload_keeps_nothing() {
    // Declared before the app, so the app's database is dropped before the tablespace.
    let mut tablespace = None;
    let app = TestApp::builder().spawn().await;
    let admin = app.create_user(Role::Admin).await;
    match app.pg_database() {
        Some(_) => tablespace = Some(FullTablespace::under_videos(&app).await),
        None => fill_sqlite(&app).await,
    }

    let message = refused_for_space(&app, &admin, 64 * 1024).await;
    assert!(
        message.starts_with("the database is out of storage space"),
        "{message}"
    );
    if tablespace.is_none() {
        sqlx::query("DELETE FROM videos WHERE id LIKE 'filler-%'")
            .execute(app.state.db.pool())
            .await
            .unwrap();
    }
    assert_nothing_kept(&app).await;
    assert_logged(&app, "db.full");
    app.stop().await;
    drop(tablespace);
}

/// Caps every connection of the app's pool at the database's current size, then fills the
/// `videos` table until a row of a few bytes no longer fits.
async fn fill_sqlite(app: &TestApp) {
    let pool = app.state.db.pool();
    // `max_page_count` is a setting of each connection: take them all at once.
    let mut conns = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        conns.push(pool.acquire().await.unwrap());
    }
    for conn in &mut conns {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {pages}"
        )))
        .fetch_one(&mut **conn)
        .await
        .unwrap();
    }
    drop(conns);
    let mut full = 0;
    for i in 0.. {
        let id = format!("filler-{i}");
        let inserted = sqlx::query(
            "INSERT INTO videos (id, filename, title, content_type, size_bytes, status, \
             created_at, updated_at) VALUES ($1, $1, '', 'video/mp4', 0, 'ready', 0, 0)",
        )
        .bind(&id)
        .execute(pool)
        .await;
        match inserted {
            Ok(_) => full = 0,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("13") => {
                // SQLITE_FULL a few times in a row: not even a split page fits any more.
                full += 1;
                if full == 3 {
                    return;
                }
            }
            Err(e) => panic!("filling the database: {e}"),
        }
    }
}

/// A tablespace on a full tmpfs holding the `videos` table of the app's database.
struct FullTablespace {
    name: String,
    /// Unmounted when this is dropped, after the tablespace.
    _disk: SmallDisk,
    filler: std::path::PathBuf,
    admin_url: String,
}

impl FullTablespace {
    async fn under_videos(app: &TestApp) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let disk = SmallDisk::mount(256 * 1024);
        let name = format!("{}_full", app.pg_database().expect("a Postgres database"));
        let pool = app.state.db.pool();
        // The directory must belong to the server's user, the owner of its data directory.
        let data_dir: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
            .fetch_one(pool)
            .await
            .unwrap();
        let owner = std::fs::metadata(&data_dir)
            .map(|m| m.uid())
            .unwrap_or_else(|e| {
                panic!(
                    "cannot read the Postgres data directory {data_dir} ({e}): this test needs the \
                 server on this machine, as scripts/test.sh runs it"
                )
            });
        std::os::unix::fs::chown(disk.path(), Some(owner), None).unwrap();
        let create = format!(
            "CREATE TABLESPACE {name} LOCATION '{}'",
            disk.path().display()
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE videos SET TABLESPACE {name}"
        )))
        .execute(pool)
        .await
        .unwrap();
        let filler = disk.fill();
        FullTablespace {
            name,
            _disk: disk,
            filler,
            admin_url: app.settings.database_url.clone(),
        }
    }
}

impl Drop for FullTablespace {
    /// The app's database (the tablespace's only user) is gone by now; the tablespace goes
    /// from another database of the server, then the disk is unmounted.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.filler);
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let server = url.rsplit_once('/').map_or(url.as_str(), |(s, _)| s);
                let pool = sqlx::AnyPool::connect(&format!("{server}/postgres")).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP TABLESPACE IF EXISTS {name}"
                )))
                .execute(&pool)
                .await?;
                pool.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop tablespace {}: {dropped:?}", self.name);
        }
    }
}

/// The local object store on a tmpfs that is full: the write fails with `ENOSPC`, the upload
/// answers 507 and the temp file goes.
#[tokio::test]
async fn a_full_object_store_is_a_507_and_the_upload_keeps_nothing() {
    let disk = SmallDisk::mount(256 * 1024);
    let root = disk.path().join("objects");
    let app = TestApp::builder()
        .settings(move |mut s| {
            s.store.kind = StoreKind::Local { root };
            s
        })
        .spawn()
        .await;
    let admin = app.create_user(Role::Admin).await;

    // 1 MiB on a 256 KiB disk: the write runs out of space half-way.
    assert_eq!(
        refused_for_space(&app, &admin, 1024 * 1024).await,
        "the object store is out of storage space; nothing was saved, retry once space is freed"
    );
    assert_nothing_kept(&app).await;

    // The store's span and the request's log line say what it was, for the operator.
    assert_logged(&app, "storage.full");
    app.flush_telemetry().await;
    let span = app
        .otlp
        .wait_for_span(
            |s| s.name == "s3.put_object" && s.attr_str("error.type") == Some("storage.full"),
            crate::progress::WAIT,
        )
        .await
        .expect("a failed s3.put_object span with error.type storage.full");
    assert_eq!(span.attr_str("error.class"), Some("transient"));

    // A file that fits is stored.
    let data = mp4_bytes(64 * 1024);
    let resp = upload(&app, Some(&admin.cookie), form(&[file("small.mp4", &data)])).await;
    assert_eq!(resp.status(), 201);
    app.stop().await;
    drop(disk);
}

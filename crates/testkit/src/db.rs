//! A database of its own for a test that needs no HTTP app (queue and worker tests).

use vidscope_core::db::Db;

use crate::app::{fresh_postgres_database, postgres_url};

pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: tempfile::TempDir,
}

/// A migrated, empty database: a new Postgres database when `DATABASE_URL` points at Postgres,
/// else a SQLite file in a temp dir.
pub async fn fresh_db() -> TestDb {
    let dir = tempfile::tempdir().expect("cannot create a temp dir");
    let url = match postgres_url() {
        Some(base) => fresh_postgres_database(&base).await.0,
        None => format!("sqlite://{}", dir.path().join("vidscope.db").display()),
    };
    let db = Db::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"));
    db.migrate().await.expect("migrations");
    TestDb { db, url, _dir: dir }
}

/// A migrated, empty Postgres database, whichever database the rest of the suite runs on:
/// for tests of what only a server database gives (several processes on one database). The
/// server is `DATABASE_URL`'s when it is Postgres, else `VIDSCOPE_TEST_POSTGRES_URL` (which
/// `scripts/test.sh` exports in every run).
pub async fn fresh_postgres_db() -> TestDb {
    let base = postgres_url()
        .or_else(|| std::env::var("VIDSCOPE_TEST_POSTGRES_URL").ok())
        .unwrap_or_else(|| {
            panic!(
                "this test needs Postgres: set DATABASE_URL or VIDSCOPE_TEST_POSTGRES_URL to \
                 postgres://... (scripts/test.sh starts one and exports both)"
            )
        });
    let url = fresh_postgres_database(&base).await.0;
    let db = Db::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"));
    db.migrate().await.expect("migrations");
    let dir = tempfile::tempdir().expect("cannot create a temp dir");
    TestDb { db, url, _dir: dir }
}

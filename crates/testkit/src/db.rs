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

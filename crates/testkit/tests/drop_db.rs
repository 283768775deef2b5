//! A test's database is gone as soon as its owner is dropped, whether the test stopped the app,
//! just returned, or panicked. On Postgres that is a `DROP DATABASE` the guard runs (checked in
//! `pg_database`); on SQLite the database is a file in the test's temp dir, which goes with it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlx::Connection;
use vidscope_testkit::db::postgres_url;
use vidscope_testkit::db::{TestDb, fresh_db};
use vidscope_testkit::router::{TestRouter, test_router};
use vidscope_testkit::{TestApp, spawn_app};

/// Where a test's database lives: a Postgres database's name, or the SQLite file.
#[derive(Debug, Clone)]
enum Where {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Where {
    fn of(pg: Option<&str>, url: &str) -> Self {
        match pg {
            Some(name) => Where::Postgres(name.to_owned()),
            None => Where::Sqlite(PathBuf::from(
                url.strip_prefix("sqlite://").expect("a SQLite URL"),
            )),
        }
    }

    async fn exists(&self) -> bool {
        match self {
            Where::Postgres(name) => {
                let base = postgres_url().expect("a Postgres database only with DATABASE_URL");
                let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect");
                let found: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                        .bind(name)
                        .fetch_optional(&mut conn)
                        .await
                        .expect("query pg_database");
                found.is_some()
            }
            Where::Sqlite(file) => file.exists(),
        }
    }
}

/// What owns a test's database: the app, the router, or the bare database.
trait Owner {
    fn at(&self) -> Where;
}

impl Owner for TestApp {
    fn at(&self) -> Where {
        Where::of(self.pg_database(), &self.settings.database_url)
    }
}

impl Owner for TestRouter {
    fn at(&self) -> Where {
        Where::of(self.pg_database(), &self.settings.database_url)
    }
}

impl Owner for TestDb {
    fn at(&self) -> Where {
        Where::of(self.pg_database(), &self.url)
    }
}

/// The database at `at` exists until `end` (the owner's drop or stop) and not after it.
async fn gone_after(at: Where, end: impl Future<Output = ()>, owner: &str) {
    assert!(at.exists().await, "{at:?}");
    end.await;
    assert!(!at.exists().await, "{at:?} outlived its {owner}");
}

/// `owner`'s database goes when `owner` is dropped without being stopped. A spawned app's
/// server task still runs and holds connections: the drop must not wait for them.
async fn gone_when_dropped(owner: impl Owner, name: &str) {
    let at = owner.at();
    gone_after(at, async { drop(owner) }, name).await;
}

#[tokio::test]
async fn a_test_app_dropped_without_stop_leaves_no_database() {
    gone_when_dropped(spawn_app().await, "TestApp").await;
}

#[tokio::test]
async fn a_stopped_test_app_leaves_no_database() {
    let app = spawn_app().await;
    gone_after(app.at(), app.stop(), "TestApp").await;
}

#[tokio::test]
async fn a_test_router_leaves_no_database() {
    gone_when_dropped(test_router().await, "TestRouter").await;
}

#[tokio::test]
async fn a_test_that_panics_leaves_no_database() {
    let seen: Arc<Mutex<Option<Where>>> = Arc::default();
    let told = seen.clone();
    // A test body that fails while it holds a database: the panic unwinds through the guard.
    let failed = tokio::spawn(async move {
        let db = fresh_db().await;
        let at = db.at();
        assert!(at.exists().await, "{at:?}");
        *told.lock().unwrap() = Some(at);
        panic!("the test failed");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());
    let at = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the test saw its database");
    assert!(!at.exists().await, "{at:?} outlived a failed test");
}

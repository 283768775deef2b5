//! Transactions under concurrent writers, on the database the tests run against (SQLite by
//! default, Postgres when `DATABASE_URL` says so).

use vidscope_core::db::{self, Db};

/// A fresh database: a temporary SQLite file, or the Postgres at `DATABASE_URL` (each run
/// uses its own table).
async fn database(dir: &tempfile::TempDir) -> (Db, String) {
    let table = format!("tx_race_{}", uuid::Uuid::new_v4().simple());
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => url,
        _ => format!("sqlite://{}", dir.path().join("race.db").display()),
    };
    let db = Db::connect(&url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (n BIGINT NOT NULL)"
    )))
    .execute(db.pool())
    .await
    .expect("create table");
    (db, table)
}

/// Read-then-write transactions from many tasks at once all commit. On SQLite a deferred
/// transaction fails with `SQLITE_BUSY` when another connection commits between its read and
/// its write; `db::begin` must avoid that (the pool has several connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_then_write_transactions_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = database(&dir).await;
    let (tasks, rounds) = (8, 25);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (db, table) = (db.clone(), table.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let mut tx = db::begin(&db).await?;
                let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {table}"
                )))
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {table} (n) VALUES ($1)"
                )))
                .bind(count)
                .execute(&mut *tx)
                .await?;
                db::commit(tx).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for h in handles {
        h.await.expect("task").expect("every transaction commits");
    }
    let total: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(total, tasks * rounds);
    if db.backend() == db::Backend::Postgres {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(db.pool())
            .await
            .unwrap();
    }
}

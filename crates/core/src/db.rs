//! The database port: one `AnyPool` over SQLite (embedded default) or Postgres, chosen by the
//! URL alone, with migrations per backend and a client span around every statement.
//!
//! sqlx 0.9 emits no spans of its own (only DEBUG events), so [`query_span`] is how database
//! work shows up in traces with the semantic-convention attributes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use tracing::Instrument;

use crate::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `db.system.name` per the semantic conventions.
    pub fn system_name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

impl FromStr for Backend {
    type Err = CoreError;
    fn from_str(url: &str) -> Result<Self, CoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(CoreError::Invalid(
                "DATABASE_URL must start with sqlite: or postgres://".into(),
            ))
        }
    }
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects (creating the SQLite file when missing). Fails fast when the server is down so
    /// start-up reports it instead of hanging.
    pub async fn connect(url: &str) -> Result<Self, CoreError> {
        install_default_drivers();
        let backend: Backend = url.parse()?;
        if let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(Path::to_path_buf))
            && !dir.as_os_str().is_empty()
        {
            // Every entry point (both binaries, `vidscope up`, `vidscope user add`) gets a
            // fresh data dir created here, not in four places.
            std::fs::create_dir_all(&dir).map_err(|e| {
                CoreError::Invalid(format!(
                    "cannot create the database directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the worker read while the API writes; busy_timeout turns
                        // lock contention into a short wait instead of an error.
                        conn.execute("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        Ok(Self { pool, backend })
    }

    pub async fn migrate(&self) -> Result<(), CoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial round trip, for readiness and the telemetry check route.
    pub async fn ping(&self) -> Result<(), CoreError> {
        const SQL: &str = "SELECT 1";
        let span = query_span(self.backend, "SELECT", "", SQL);
        async {
            let v: i32 = sqlx::query_scalar(SQL).fetch_one(&self.pool).await?;
            if v == 1 {
                Ok(())
            } else {
                Err(CoreError::Invalid(
                    "SELECT 1 returned something else".into(),
                ))
            }
        }
        .instrument(span)
        .await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The file behind a SQLite URL (`sqlite://path?opts`, `sqlite:path`); `None` for other
/// backends and in-memory databases.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// A client span for one statement. `sql` is the statement text with bind parameters (never
/// values), so it is safe to record as `db.query.text`.
/// Runs a database future for the lifetime of its `db.query` span, polling it with no current
/// span.
///
/// Not `Instrument::instrument`: sqlx-sqlite hands `Span::current()` to its worker thread with
/// every command and drops it only after replying, so the caller's span tree (the request's
/// server span) could close on that thread after the request had finished, or linger until the
/// connection's next command — tests saw root spans exported late or not at all. Polled under
/// the no-op dispatcher, the worker gets a disabled span; the `db.query` span still covers the
/// call (it ends when this future completes) and is the child of whatever was current when it
/// was created.
pub trait InDbSpan: Future + Sized {
    fn in_db_span(self, span: tracing::Span) -> DbSpanned<Self> {
        DbSpanned {
            span: Some(span),
            fut: self,
        }
    }
}

impl<F: Future> InDbSpan for F {}

pin_project_lite::pin_project! {
    pub struct DbSpanned<F> {
        span: Option<tracing::Span>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for DbSpanned<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let out = {
            let _none = tracing::dispatcher::set_default(&tracing::Dispatch::none());
            this.fut.poll(cx)
        };
        if out.is_ready() {
            // Ends the `db.query` span as soon as the statement is done.
            this.span.take();
        }
        out
    }
}

/// Starts a transaction. Like every statement, `BEGIN` and `COMMIT` must not run with a
/// current span (see [`InDbSpan`]): sqlx-sqlite would keep the caller's span alive on its
/// worker thread and the trace's root would be exported late or never.
///
/// On SQLite the write lock is taken at `BEGIN` (`BEGIN IMMEDIATE`). Every transaction here
/// writes, and most read first: a deferred transaction that read before another connection
/// committed cannot upgrade to a writer, and SQLite fails it at once with `SQLITE_BUSY`
/// without waiting out the busy timeout (seen as a 503 from a progress save under the load
/// generator). Taken at `BEGIN`, the lock waits like any other.
pub async fn begin(db: &Db) -> Result<sqlx::Transaction<'static, sqlx::Any>, CoreError> {
    let statement = match db.backend() {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    Ok(db
        .pool()
        .begin_with(statement)
        .in_db_span(tracing::Span::none())
        .await?)
}

/// Commits a transaction from [`begin`].
pub async fn commit(tx: sqlx::Transaction<'static, sqlx::Any>) -> Result<(), CoreError> {
    Ok(tx.commit().in_db_span(tracing::Span::none()).await?)
}

/// The row `sql` selects from `table` with `key` as `$1` (a lookup by one key), inside its
/// `SELECT <table>` span.
pub async fn select_by_key(
    db: &Db,
    table: &'static str,
    sql: &'static str,
    key: &str,
) -> Result<Option<sqlx::any::AnyRow>, CoreError> {
    Ok(sqlx::query(sql)
        .bind(key)
        .fetch_optional(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", table, sql))
        .await?)
}

/// Runs `query` (`sql` with its parameters bound) on the pool, inside its `<operation> <table>`
/// span; returns the rows it touched.
pub async fn execute<'q>(
    db: &Db,
    operation: &'static str,
    table: &'static str,
    sql: &'static str,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
) -> Result<u64, CoreError> {
    let done = query
        .execute(db.pool())
        .in_db_span(query_span(db.backend(), operation, table, sql))
        .await?;
    Ok(done.rows_affected())
}

/// Rows store times as Unix milliseconds (BIGINT): one representation for both backends.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub fn query_span(
    backend: Backend,
    operation: &'static str,
    table: &'static str,
    sql: &'static str,
) -> tracing::Span {
    let repeated = vidscope_telemetry::db_watch::note_statement(sql);
    let name = if table.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {table}")
    };
    let span = tracing::info_span!(
        "db.query",
        otel.name = %name,
        otel.kind = "client",
        db.system.name = backend.system_name(),
        db.operation.name = operation,
        db.collection.name = table,
        db.query.text = sql,
        error.type = tracing::field::Empty,
    );
    if let Some(count) = repeated {
        vidscope_telemetry::db_watch::mark_n_plus_one(&span, sql, count);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite:///d/v.db?mode=rwc"),
            Some(PathBuf::from("/d/v.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:rel/v.db"),
            Some(PathBuf::from("rel/v.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }

    #[tokio::test]
    async fn connect_creates_a_missing_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/v.db");
        let db = Db::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        db.ping().await.unwrap();
        assert!(file.exists());
    }
}

//! The one error type of the core crate, classified for spans and retries.

use vidscope_telemetry::classify::{Classify, ErrorClass};

use crate::storage::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CoreError {
    /// True when the dependency is down, overloaded or out of space (HTTP 503/507 territory),
    /// not when the request was wrong.
    pub fn is_unavailable(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// True when a write failed for lack of space: SQLite's "database or disk is full", Postgres
    /// `53100 disk_full`, a full disk or quota under the local object store. Transient (freeing
    /// space fixes it, nothing was saved), but told apart so the API can answer 507.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            CoreError::Database(sqlx::Error::Database(db)) => {
                database_failure(db.as_ref()) == Some(DbFailure::OutOfSpace)
            }
            CoreError::Store(e) => e.is_out_of_space(),
            _ => false,
        }
    }

    /// The dependency that failed, as a message for people names it (never with its internals:
    /// those go to the span and the log).
    pub fn dependency(&self) -> Option<&'static str> {
        match self {
            CoreError::Database(_) | CoreError::Migration(_) => Some("the database"),
            CoreError::Redis(_) => Some("Redis"),
            CoreError::Store(_) => Some("the object store"),
            _ => None,
        }
    }
}

/// What a database's own error code says beyond "failed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbFailure {
    /// The server went away or is overloaded, a lock could not be had in time: retrying later
    /// can succeed, and the statement changed nothing.
    Unavailable,
    OutOfSpace,
}

/// Reads the backend's code: Postgres SQLSTATEs, SQLite's primary result code (the low byte
/// of the extended code sqlx reports: `SQLITE_BUSY_SNAPSHOT` is still busy).
fn database_failure(db: &dyn sqlx::error::DatabaseError) -> Option<DbFailure> {
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return postgres_failure(pg.code());
    }
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code: i32 = db.code()?.parse().ok()?;
        return match code & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED: another connection holds the lock past busy_timeout.
            5 | 6 => Some(DbFailure::Unavailable),
            // SQLITE_FULL: the disk (or `max_page_count`) is full.
            13 => Some(DbFailure::OutOfSpace),
            _ => None,
        };
    }
    None
}

/// SQLSTATEs of failures that are the server's state, not the statement's fault
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn postgres_failure(sqlstate: &str) -> Option<DbFailure> {
    match sqlstate {
        // disk_full
        "53100" => Some(DbFailure::OutOfSpace),
        // insufficient_resources, out_of_memory, too_many_connections
        "53000" | "53200" | "53300"
        // admin_shutdown (pg_terminate_backend, a fast shutdown), crash_shutdown,
        // cannot_connect_now (starting up or in recovery)
        | "57P01" | "57P02" | "57P03"
        // serialization_failure, deadlock_detected, lock_not_available
        | "40001" | "40P01" | "55P03" => Some(DbFailure::Unavailable),
        // connection_exception and its subclasses (08000, 08003, 08006, ...)
        s if s.starts_with("08") => Some(DbFailure::Unavailable),
        _ => None,
    }
}

impl Classify for CoreError {
    fn class(&self) -> ErrorClass {
        match self {
            CoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    ErrorClass::Transient
                }
                sqlx::Error::Database(db) if database_failure(db.as_ref()).is_some() => {
                    ErrorClass::Transient
                }
                _ => ErrorClass::Permanent,
            },
            CoreError::Redis(e) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_connection_refusal()
                {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
            CoreError::Store(e) => e.class(),
            _ => ErrorClass::Permanent,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            CoreError::Database(_) if self.is_out_of_space() => "db.full",
            CoreError::Database(_) if self.class() == ErrorClass::Transient => "db.unavailable",
            CoreError::Database(sqlx::Error::RowNotFound) => "db.not_found",
            CoreError::Database(_) => "db.error",
            CoreError::Migration(_) => "db.migration",
            CoreError::Redis(_) if self.class() == ErrorClass::Transient => "redis.unavailable",
            CoreError::Redis(_) => "redis.error",
            CoreError::Store(e) => e.error_type(),
            CoreError::Invalid(_) => "invalid",
            CoreError::Conflict(_) => "conflict",
            CoreError::NotFound(_) => "not_found",
            CoreError::Other(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_codes_of_the_servers_state_are_told_apart() {
        assert_eq!(postgres_failure("53100"), Some(DbFailure::OutOfSpace));
        for code in [
            "57P01", "57P03", "08006", "08003", "53300", "40001", "55P03",
        ] {
            assert_eq!(
                postgres_failure(code),
                Some(DbFailure::Unavailable),
                "{code}"
            );
        }
        // A constraint, a syntax error, an undefined table: the statement's fault.
        for code in ["23505", "42601", "42P01", "22P02"] {
            assert_eq!(postgres_failure(code), None, "{code}");
        }
    }

    #[test]
    fn transient_failures_name_their_dependency() {
        let pool = CoreError::Database(sqlx::Error::PoolTimedOut);
        assert!(pool.is_unavailable() && !pool.is_out_of_space());
        assert_eq!(
            (pool.error_type(), pool.dependency()),
            ("db.unavailable", Some("the database"))
        );
        let full = CoreError::Store(StoreError::Full("no space left on device".into()));
        assert!(full.is_unavailable() && full.is_out_of_space());
        assert_eq!(
            (full.error_type(), full.dependency()),
            ("storage.full", Some("the object store"))
        );
        assert_eq!(CoreError::Invalid("x".into()).dependency(), None);
    }
}

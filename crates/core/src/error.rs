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
    /// True when the dependency is down or overloaded (HTTP 503 territory), not when the
    /// request was wrong.
    pub fn is_unavailable(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

impl Classify for CoreError {
    fn class(&self) -> ErrorClass {
        match self {
            CoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    ErrorClass::Transient
                }
                sqlx::Error::Database(db) if db.code().as_deref() == Some("5") => {
                    // SQLITE_BUSY
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

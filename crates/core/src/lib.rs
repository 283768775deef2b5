//! Domain types, configuration and the ports with their adapters (database, object store,
//! cache/queue connections) shared by the API, the worker and the CLI.

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod jobs;
pub mod outbox;
pub mod progress;
pub mod queue;
pub mod redis_conn;
pub mod runtime;
pub mod shutdown;
pub mod storage;
pub mod users;
pub mod videos;

pub use error::CoreError;

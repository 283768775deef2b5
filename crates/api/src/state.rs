//! Shared state handed to every handler. Cheap to clone: everything inside is a handle.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use vidscope_core::config::ApiSettings;
use vidscope_core::db::Db;
use vidscope_core::storage::ObjectStore;
use vidscope_telemetry::Metrics;

use crate::rate_limit::LoginLimiter;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub store: ObjectStore,
    /// Present when `REDIS_URL` is set.
    pub redis: Option<ConnectionManager>,
    pub metrics: Metrics,
    pub settings: Arc<ApiSettings>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Session and video-metadata lookups (Redis when configured, in-process otherwise).
    pub cache: Arc<crate::cache::Cache>,
    /// Pushes changes to open WebSocket connections.
    pub realtime: crate::realtime::Hub,
    /// What `/trace-viewer` reads and links to.
    pub trace_viewer: Arc<vidscope_core::config::TraceViewerSettings>,
    /// Set when the shutdown deadline passes: uploads still running abort.
    pub shutdown: crate::shutdown::Deadline,
}

//! [`test_router`]: the API's router over a real [`AppState`] with no server, no listener and
//! no OTLP receiver, for tests that call it with `tower::ServiceExt::oneshot`. Each call makes
//! its own database and object store and shares nothing with another test: no global
//! subscriber, no port, no environment variable written.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use tower::ServiceExt as _;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use vidscope_api::AppState;
use vidscope_core::config::Settings;
use vidscope_core::domain::Role;
use vidscope_telemetry::{TelemetryConfig, TelemetryGuard};

use crate::app::{TestUser, create_user, test_settings};
use crate::db::PgDatabase;

/// The peer address a oneshot request claims; the server would put it there.
pub const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    40000,
);

pub struct TestRouter {
    pub router: Router,
    pub state: AppState,
    pub settings: Settings,
    /// Owns the instruments in `state.metrics`; telemetry is off, nothing is exported.
    _telemetry: TelemetryGuard,
    /// After `state`, so the pool is dropped before its database.
    pg: Option<PgDatabase>,
    _dir: tempfile::TempDir,
}

/// The router on a fresh database (Postgres when `DATABASE_URL` is, else SQLite) and a local
/// object store in a temp dir; no Redis.
pub async fn test_router() -> TestRouter {
    test_router_with(|_| {}).await
}

/// [`test_router`] with settings as `tweak` changes them (like [`crate::spawn_app_with`]).
pub async fn test_router_with(tweak: impl FnOnce(&mut Settings)) -> TestRouter {
    let dir = tempfile::tempdir().expect("cannot create a temp dir");
    let (mut settings, pg) = test_settings(dir.path()).await;
    tweak(&mut settings);
    let mut config = TelemetryConfig::new("vidscope-router-test");
    config.enabled = false;
    config.stdout_logs = false;
    // Built, never installed: no dispatcher is set, so the spans the app opens are no-ops and
    // parallel tests cannot see each other's.
    let telemetry = vidscope_telemetry::build(&config, BoxMakeWriter::new(std::io::sink))
        .unwrap_or_else(|e| panic!("telemetry config rejected: {e}"));
    let state = AppState::build(&settings, telemetry.guard.metrics().clone())
        .await
        .unwrap_or_else(|e| panic!("application state failed to build: {e:#}"));
    TestRouter {
        router: vidscope_api::router::router(state.clone()),
        state,
        settings,
        _telemetry: telemetry.guard,
        pg,
        _dir: dir,
    }
}

impl TestRouter {
    /// Calls the router once. Adds the peer address ([`PEER`]) unless the request has one:
    /// the client-address middleware reads it and the login route needs what it resolves.
    pub async fn send(&self, mut req: Request<Body>) -> Response<Body> {
        if req.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
            req.extensions_mut().insert(ConnectInfo(PEER));
        }
        self.router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {})
    }

    /// An account with `role` and a live session ([`create_user`]).
    pub async fn create_user(&self, role: Role) -> TestUser {
        create_user(&self.state.db, role).await
    }

    /// The Postgres database's name; `None` on SQLite.
    pub fn pg_database(&self) -> Option<&str> {
        self.pg.as_ref().map(PgDatabase::name)
    }
}

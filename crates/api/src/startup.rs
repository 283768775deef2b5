//! Building and running the API. `build` binds the listener itself so tests can ask for
//! port 0 and read the port back.

use std::future::IntoFuture;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use vidscope_core::config::Settings;
use vidscope_core::db::Db;
use vidscope_core::storage::ObjectStore;
use vidscope_telemetry::Metrics;

use crate::router::router;
use crate::state::AppState;

/// Creates the API's counters at 0 for every label set known at start-up (the worker's are
/// primed by the worker): a counter first seen at its first increment has no series before
/// it, so dashboards show "No data" where the truth is 0, and `increase()` misses the first
/// event. `progress.updates_total` is counted per outcome of a save that reached the
/// database, or `rejected` for one refused for its input.
fn prime_metrics(metrics: &Metrics) {
    use opentelemetry::KeyValue;
    let outcomes = vidscope_core::progress::SaveOutcome::LABELS;
    for outcome in outcomes.into_iter().chain(["rejected"]) {
        metrics
            .progress_updates_total
            .add(0, &[KeyValue::new("outcome", outcome)]);
    }
    metrics.video_buffering_events_total.add(0, &[]);
    metrics.video_resume_failures_total.add(0, &[]);
    metrics.test_otel_requests.add(0, &[]);
    let actions = [
        (
            &metrics.video_admin_actions_total,
            &crate::routes::videos::ADMIN_ACTIONS[..],
        ),
        (
            &metrics.user_account_actions_total,
            &crate::routes::users::ACCOUNT_ACTIONS[..],
        ),
    ];
    for (counter, actions) in actions {
        for action in actions {
            for outcome in crate::routes::ACTION_OUTCOMES {
                counter.add(
                    0,
                    &[
                        KeyValue::new("action", *action),
                        KeyValue::new("outcome", outcome),
                    ],
                );
            }
        }
    }
}

/// In Redis when there is one, so that replicas count the same failures.
fn login_limiter(
    api: &vidscope_core::config::ApiSettings,
    redis: Option<redis::aio::ConnectionManager>,
) -> crate::rate_limit::LoginLimiter {
    use crate::rate_limit::LoginLimiter;
    match redis {
        Some(conn) => LoginLimiter::shared(
            api.login_max_failures,
            api.login_window,
            conn,
            &api.redis_prefix,
        ),
        None => LoginLimiter::new(api.login_max_failures, api.login_window),
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl AppState {
    /// Connects to every dependency (failing fast with the dependency's name), runs
    /// migrations and creates the admin of `VIDSCOPE_ADMIN_EMAIL`: everything the API needs
    /// except a listener, so router-level tests can call the router without a server.
    pub async fn build(settings: &Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database_url)
            .await
            .context("cannot connect to the database (DATABASE_URL)")?;
        db.migrate().await.context("database migrations failed")?;
        if let Some((email, password)) = &settings.api.bootstrap_admin {
            let created = vidscope_core::users::ensure_admin(&db, email, password)
                .await
                .context("cannot create the admin from VIDSCOPE_ADMIN_EMAIL")?;
            if created {
                tracing::info!("admin account created from VIDSCOPE_ADMIN_EMAIL");
            }
        }
        let store = ObjectStore::open(&settings.store)
            .await
            .context("cannot open the object store")?;
        let redis = match &settings.redis_url {
            Some(url) => Some(
                vidscope_core::redis_conn::connect(url)
                    .await
                    .context("invalid REDIS_URL")?,
            ),
            None => None,
        };
        prime_metrics(&metrics);
        Ok(AppState {
            db,
            store,
            redis: redis.clone(),
            metrics,
            settings: std::sync::Arc::new(settings.api.clone()),
            trace_viewer: std::sync::Arc::new(settings.trace_viewer.clone()),
            cache: std::sync::Arc::new(crate::cache::Cache::new(
                redis.clone(),
                &settings.api.redis_prefix,
            )),
            login_limiter: std::sync::Arc::new(login_limiter(&settings.api, redis)),
            realtime: crate::realtime::Hub::new(),
            shutdown: crate::shutdown::Deadline::default(),
        })
    }
}

impl Application {
    /// [`AppState::build`], then binds `settings.addr` and, with Redis, listens to the
    /// worker's video-status channel.
    pub async fn build(settings: &Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let state = AppState::build(settings, metrics).await?;
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.addr))?;
        if let Some(url) = &settings.redis_url {
            crate::status_bridge::spawn_redis(state.clone(), url.clone());
        }
        Ok(Self { listener, state })
    }

    /// Pushes the worker's video-status events from an in-process bus (`vidscope up`) to
    /// open WebSocket tabs. With Redis configured, [`Application::build`] already listens on
    /// its pub/sub channel.
    pub fn listen_to(&self, bus: &vidscope_core::events::EventBus) {
        if let Some(rx) = bus.subscribe() {
            crate::status_bridge::spawn_local(self.state.clone(), rx);
        }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests
    /// finish for `VIDSCOPE_API_SHUTDOWN_SECS`; past that, aborts the rest (see
    /// [`crate::shutdown`]) and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let db = self.state.db.clone();
        let realtime = self.state.realtime.clone();
        let deadline = self.state.shutdown.clone();
        let drain_for = self.state.settings.shutdown_timeout;
        let app = router(self.state);
        // Connect info: the login throttle keys on the client address.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let signal = realtime.clone();
        // TCP_NODELAY: without it a streamed response (a range of a video, 64 KiB in several
        // writes) waits out Nagle against the client's delayed ACK, ~40 ms per response
        // (docs/capacity.md measured 44 ms at one connection for a 64 KiB range).
        let listener = self.listener.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
            }
        });
        let (began, has_begun) = tokio::sync::oneshot::channel();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = began.send(());
            // Upgraded (WebSocket) connections are not part of the graceful drain.
            signal.begin_shutdown();
        });
        let mut serve = std::pin::pin!(serve.into_future());
        let past_deadline = async {
            if has_begun.await.is_err() {
                // The server ended by itself: nothing to time.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(drain_for).await;
        };
        let result = tokio::select! {
            result = &mut serve => result,
            () = past_deadline => {
                tracing::warn!(
                    grace_secs = drain_for.as_secs(),
                    "shutdown deadline passed: aborting the requests still running"
                );
                deadline.pass();
                match tokio::time::timeout(crate::shutdown::ABORT_GRACE, &mut serve).await {
                    Ok(result) => result,
                    // Connections still open are dropped when the process exits.
                    Err(_) => Ok(()),
                }
            }
        };
        realtime.shutdown(crate::realtime::SHUTDOWN_WAIT).await;
        // Bounded: a request cut at the deadline may still hold a connection for a while.
        let _ = tokio::time::timeout(crate::shutdown::ABORT_GRACE, db.close()).await;
        result
    }
}

//! [`spawn_app`]: the API as users run it, on port 0, with a fresh database and telemetry
//! pointed at a [`CaptureReceiver`].

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use vidscope_core::auth::User;
use vidscope_core::domain::{Email, Password, Role};

use tracing::dispatcher::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use vidscope_api::Application;
use vidscope_core::config::Settings;
use vidscope_telemetry::{OtlpProtocol, TelemetryConfig, TelemetryGuard};

use crate::db::{PgDatabase, fresh_postgres_database, postgres_url};
use crate::otlp::{CaptureReceiver, CapturedPoint, CapturedSpan};

/// How long the waiting helpers ([`TestApp::span_named`], ...) wait for telemetry to arrive.
pub const WAIT: Duration = Duration::from_secs(10);

/// The runtime the exporters' gRPC connections live on, so they never depend on the test's
/// (possibly blocked) thread. The capture receiver has its own thread already.
pub fn background() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("testkit-bg")
            .enable_all()
            .build()
            .expect("cannot start the testkit background runtime")
    })
}

/// What the app printed on "stdout", for assertions on JSON log lines.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }

    /// Every line that parses as a JSON object.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.contents()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

/// The embedded settings on `dir` (SQLite, the local object store there), on a fresh Postgres
/// database instead when `DATABASE_URL` is Postgres; with the guard that drops that database.
pub async fn test_settings(dir: &std::path::Path) -> (Settings, Option<PgDatabase>) {
    let mut settings = Settings::embedded(dir, "127.0.0.1:0".parse().expect("addr"));
    // Off by default; tests make their viewers through the API's registration (the default is
    // held by the configuration's tests, a disabled registration by `auth.rs`'s).
    settings.api.registration_enabled = true;
    let mut pg = None;
    if let Some(url) = postgres_url() {
        let (url, guard) = fresh_postgres_database(&url).await;
        settings.database_url = url;
        pg = Some(guard);
    }
    (settings, pg)
}

/// Creates an account with `role` and a live session for it, straight through the core crate
/// (no HTTP, no login throttle). `cookie` is ready for a `Cookie` header.
pub async fn create_user(db: &vidscope_core::db::Db, role: Role) -> TestUser {
    let email = format!(
        "{}-{}@example.com",
        role.as_str(),
        uuid::Uuid::new_v4().simple()
    );
    let password = "correct horse battery".to_owned();
    let id = vidscope_core::users::create_user(
        db,
        &Email::parse(&email).expect("valid e-mail"),
        &Password::parse(&password).expect("valid password"),
        role,
    )
    .await
    .expect("create test user");
    let user = User {
        id,
        email,
        role,
        must_change_password: false,
    };
    let token = vidscope_core::auth::create_session(db, &user, Duration::from_secs(3600))
        .await
        .expect("create test session");
    TestUser {
        cookie: format!("vidscope_session={}", token.expose()),
        user,
        password,
    }
}

type TelemetryTweak = Box<dyn FnOnce(TelemetryConfig, &CaptureReceiver) -> TelemetryConfig>;

pub struct TestAppBuilder {
    telemetry: TelemetryTweak,
    redis: bool,
    settings: Box<dyn FnOnce(Settings) -> Settings>,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self {
            telemetry: Box::new(|c, _| c),
            redis: false,
            settings: Box::new(|s| s),
        }
    }
}

impl TestAppBuilder {
    /// Adjusts the telemetry configuration (it starts as OTLP/gRPC to the capture receiver).
    pub fn telemetry(
        mut self,
        f: impl FnOnce(TelemetryConfig, &CaptureReceiver) -> TelemetryConfig + 'static,
    ) -> Self {
        self.telemetry = Box::new(f);
        self
    }

    /// Connects the app to Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub fn with_redis(mut self) -> Self {
        self.redis = true;
        self
    }

    pub fn settings(mut self, f: impl FnOnce(Settings) -> Settings + 'static) -> Self {
        self.settings = Box::new(f);
        self
    }

    pub async fn spawn(self) -> TestApp {
        let ThreadTelemetry {
            otlp,
            config,
            guard,
            logs,
            dispatch,
            turn,
        } = ThreadTelemetry::start("vidscope-test", self.telemetry).await;

        let dir = tempfile::tempdir().expect("cannot create a temp dir");
        let (mut settings, pg_database) = test_settings(dir.path()).await;
        if self.redis {
            settings.redis_url = Some(
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            );
            // Tests run in parallel on one Redis, all from 127.0.0.1: a shared prefix would
            // let one test's failed logins throttle another's.
            settings.api.redis_prefix = format!("vidscope-test-{}", uuid::Uuid::new_v4().simple());
        }
        let settings = (self.settings)(settings);

        let app = Application::build(&settings, guard.metrics().clone())
            .await
            .unwrap_or_else(|e| panic!("application failed to start: {e:#}"));
        let port = app.port();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("reqwest client"),
            otlp,
            telemetry: Arc::new(guard),
            logs,
            state,
            config,
            settings,
            pg_database,
            _dir: dir,
            stop: Some(tx),
            server: Some(server),
            _dispatch: dispatch,
            _turn: turn,
        }
    }
}

/// Telemetry for the test's thread, exported over OTLP/gRPC to a fresh capture receiver at test
/// speed (50 ms batches, metrics every second at most), while it is held. [`spawn_app`] starts
/// one; tests of a part without the app (the CRM client) start their own.
pub struct ThreadTelemetry {
    pub otlp: CaptureReceiver,
    pub config: TelemetryConfig,
    pub guard: TelemetryGuard,
    /// What the JSON log lines say (the service's stdout).
    pub logs: LogBuffer,
    dispatch: DefaultGuard,
    turn: tokio::sync::OwnedMutexGuard<()>,
}

impl ThreadTelemetry {
    /// Named `service`, on the backend the environment names ([`with_backend_from_env`]), as
    /// `tweak` adjusts it.
    ///
    /// One at a time per process. tracing caches each callsite's interest process-wide; with
    /// several thread-local subscribers being created and dropped in parallel, a callsite can
    /// be cached as disabled for another test's subscriber and its spans silently vanish.
    /// Serializing costs little (the suite takes seconds) and under nextest every test has its
    /// own process anyway.
    pub async fn start(
        service: &str,
        tweak: impl FnOnce(TelemetryConfig, &CaptureReceiver) -> TelemetryConfig,
    ) -> Self {
        static ONE_AT_A_TIME: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
        let turn = ONE_AT_A_TIME
            .get_or_init(Default::default)
            .clone()
            .lock_owned()
            .await;
        let otlp = CaptureReceiver::start().await;
        let base = with_backend_from_env(
            TelemetryConfig::new(service).with_otlp(OtlpProtocol::Grpc, &otlp.grpc_endpoint()),
        );
        let mut config = tweak(base, &otlp);
        // Tests must not wait half a second per batch.
        config.spans.scheduled_delay = Duration::from_millis(50);
        config.logs.scheduled_delay = Duration::from_millis(50);
        config.metric_export_interval = config.metric_export_interval.min(Duration::from_secs(1));
        config.export_timeout = config.export_timeout.min(Duration::from_secs(3));
        let logs = LogBuffer::default();
        let telemetry = {
            // gRPC exporters spawn their connection task on the current runtime: make that
            // the background one.
            let _rt = background().enter();
            vidscope_telemetry::build(&config, BoxMakeWriter::new(logs.clone()))
                .unwrap_or_else(|e| panic!("telemetry config rejected: {e}"))
        };
        let dispatch = tracing::dispatcher::set_default(&telemetry.dispatch);
        Self {
            otlp,
            config,
            guard: telemetry.guard,
            logs,
            dispatch,
            turn,
        }
    }
}

/// `config` with the backend `VIDSCOPE_TELEMETRY_BACKEND` names, so the whole suite can run on
/// the stock one (`scripts/test.sh` does); nothing else is taken from the environment.
pub fn with_backend_from_env(config: TelemetryConfig) -> TelemetryConfig {
    config
        .from_lookup(|k| {
            (k == "VIDSCOPE_TELEMETRY_BACKEND")
                .then(|| std::env::var(k).ok())
                .flatten()
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub otlp: CaptureReceiver,
    pub telemetry: Arc<TelemetryGuard>,
    /// The app's JSON log lines (its stdout).
    pub logs: LogBuffer,
    pub state: vidscope_api::AppState,
    pub config: TelemetryConfig,
    pub settings: Settings,
    /// After `state`, so the pool is dropped before its database.
    pg_database: Option<PgDatabase>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dispatch: DefaultGuard,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// An account made by [`TestApp::create_user`].
#[derive(Debug, Clone)]
pub struct TestUser {
    pub user: User,
    pub password: String,
    /// `vidscope_session=<token>`, for a `Cookie` header.
    pub cookie: String,
}

/// Spawns the app with the default test configuration.
pub async fn spawn_app() -> TestApp {
    TestAppBuilder::default().spawn().await
}

/// [`spawn_app`] with the settings changed by `tweak` (the usual use of
/// [`TestAppBuilder::settings`]).
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings) + 'static) -> TestApp {
    TestAppBuilder::default()
        .settings(|mut s| {
            tweak(&mut s);
            s
        })
        .spawn()
        .await
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// `GET path` with these request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
    }

    /// `GET path` as `user` (with its session cookie).
    pub async fn get_as(&self, path: &str, user: &TestUser) -> reqwest::Response {
        self.get_with(path, &[("cookie", &user.cookie)]).await
    }

    /// `GET path` as `user`, which must answer 200 with JSON: that JSON.
    pub async fn get_json_as(&self, path: &str, user: &TestUser) -> serde_json::Value {
        let resp = self.get_as(path, user).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// `method path` with `cookie` (`name=value`, or none) and, if given, `body` as JSON.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"))
    }

    /// `POST path` as `user`, with `body` as JSON.
    pub async fn post_json_as(
        &self,
        path: &str,
        user: &TestUser,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, Some(&user.cookie), Some(body))
            .await
    }

    /// The first span (in arrival order) that `pred` accepts, waiting up to [`WAIT`] for it;
    /// panics if none came.
    pub async fn span_where(&self, pred: impl Fn(&CapturedSpan) -> bool) -> CapturedSpan {
        self.wait_span("a span", pred).await
    }

    /// The first span named `name`, waiting up to [`WAIT`] for it; panics if none came.
    pub async fn span_named(&self, name: &str) -> CapturedSpan {
        self.wait_span(&format!("span {name}"), |s| s.name == name)
            .await
    }

    /// The span named `name` in trace `trace_id`, waiting up to [`WAIT`] for it.
    pub async fn span_in(&self, trace_id: &str, name: &str) -> CapturedSpan {
        let what = format!("span {name} in trace {trace_id}");
        self.wait_span(&what, |s| s.trace_id == trace_id && s.name == name)
            .await
    }

    async fn wait_span(&self, what: &str, pred: impl Fn(&CapturedSpan) -> bool) -> CapturedSpan {
        self.otlp
            .wait_for_span(pred, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// The first point of metric `name` that `pred` accepts, waiting up to [`WAIT`] for it.
    pub async fn metric_point(
        &self,
        name: &str,
        pred: impl Fn(&CapturedPoint) -> bool,
    ) -> CapturedPoint {
        self.otlp
            .wait_for_metric_point(name, pred, WAIT)
            .await
            .unwrap_or_else(|e| panic!("metric {name}: {e}"))
    }

    /// An in-process bus for a worker run beside this app: its video-status events reach the
    /// app as in `vidscope up` (the video's cached metadata is dropped, open tabs are told).
    pub fn status_events(&self) -> vidscope_core::events::EventBus {
        let bus = vidscope_core::events::EventBus::local();
        if let Some(rx) = bus.subscribe() {
            vidscope_api::status_bridge::spawn_local(self.state.clone(), rx);
        }
        bus
    }

    /// Creates an account with `role` and a live session for it ([`create_user`]).
    pub async fn create_user(&self, role: Role) -> TestUser {
        create_user(&self.state.db, role).await
    }

    /// The Postgres database's name; `None` on SQLite (a file in the temp dir removed on drop).
    pub fn pg_database(&self) -> Option<&str> {
        self.pg_database.as_ref().map(PgDatabase::name)
    }

    /// Exports everything buffered in all three signals.
    pub async fn flush_telemetry(&self) {
        self.telemetry.flush().await;
    }

    /// Stops the server, flushes and shuts telemetry down, and drops the test database (which
    /// dropping a `TestApp` without `stop` does too).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        self.telemetry.shutdown().await;
        if let Some(pg) = self.pg_database.take() {
            self.state.db.close().await;
            drop(pg);
        }
    }
}

/// Asserts that `resp` is the API's error answer `status` with `error.code` = `code` (what the
/// clients branch on), and returns its JSON body. `what` names the case in a failure.
pub async fn expect_error(
    resp: reqwest::Response,
    status: u16,
    code: &str,
    what: &str,
) -> serde_json::Value {
    let got = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: {text}");
    let body: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: not a JSON error body ({e}): {text}"));
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    body
}

//! `vidscope`: the API and the worker on embedded defaults (`up`), and admin commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vidscope_core::config::{DEFAULT_ADDR, DEFAULT_DATA_DIR, Settings};
use vidscope_core::db::Db;
use vidscope_core::domain::{Email, Password, Role};
use vidscope_telemetry::{Signal, TelemetryConfig, config::ExporterKind};

#[derive(Parser)]
#[command(
    name = "vidscope",
    version,
    about = "Video lessons with end-to-end observability"
)]
struct Cli {
    /// Where the database, objects and telemetry files live.
    #[arg(long, env = "VIDSCOPE_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the worker together (SQLite, local store, telemetry files by default).
    Up {
        #[arg(long, env = "VIDSCOPE_ADDR", default_value = DEFAULT_ADDR)]
        addr: SocketAddr,
    },
    /// Send realistic traffic to a running API (bounded in time and requests).
    Loadgen(LoadgenArgs),
    /// Stand in for the external CRM, with scheduled failures (compose stack, demos).
    CrmSandbox(CrmSandboxArgs),
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(clap::Args)]
struct LoadgenArgs {
    /// Base URL of the API.
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:8080")]
    target: String,
    /// How long to run (e.g. 30s, 5m).
    #[arg(long, env = "LOADGEN_DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Concurrent virtual viewers.
    #[arg(long, env = "LOADGEN_USERS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    users: u16,
    /// Stop after this many requests even if time is left.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: u64,
    /// Uploads at most (needs the admin credentials).
    #[arg(long, default_value_t = 10)]
    max_uploads: u64,
    /// Time between two uploads.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    upload_every: std::time::Duration,
    /// Time between two progress saves of a watching viewer.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    progress_interval: std::time::Duration,
    /// Share of interactions that provoke an error on purpose (0 to 1).
    #[arg(long, default_value_t = 0.05, value_parser = parse_share)]
    error_share: f64,
    /// Admin account for uploads (the API creates it from the same variables).
    #[arg(long, env = "VIDSCOPE_ADMIN_EMAIL", requires = "admin_password")]
    admin_email: Option<String>,
    #[arg(
        long,
        env = "VIDSCOPE_ADMIN_PASSWORD",
        hide_env_values = true,
        requires = "admin_email"
    )]
    admin_password: Option<String>,
    /// Print the summary as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CrmSandboxArgs {
    #[arg(
        long,
        env = "VIDSCOPE_CRM_SANDBOX_ADDR",
        default_value = "127.0.0.1:8090"
    )]
    addr: SocketAddr,
    /// The client credentials it accepts (the worker's variables, so one `.env` serves both).
    #[arg(long, env = "VIDSCOPE_CRM_CLIENT_ID")]
    client_id: String,
    #[arg(long, env = "VIDSCOPE_CRM_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Share of requests that fail on purpose with 429, 500 or 503 (0 to 1).
    #[arg(long, env = "VIDSCOPE_CRM_SANDBOX_ERROR_RATE", default_value_t = 0.05, value_parser = parse_share)]
    error_rate: f64,
    /// Added to every answer (jittered ±50 %).
    #[arg(long, default_value = "40ms", value_parser = humantime::parse_duration)]
    latency: std::time::Duration,
    /// An outage starts this often ("off" for none).
    #[arg(long, env = "VIDSCOPE_CRM_SANDBOX_OUTAGE_EVERY", default_value = "15m", value_parser = parse_optional_duration)]
    outage_every: OptionalDuration,
    /// How long each outage lasts.
    #[arg(long, env = "VIDSCOPE_CRM_SANDBOX_OUTAGE_FOR", default_value = "2m", value_parser = humantime::parse_duration)]
    outage_for: std::time::Duration,
    /// Lifetime of the access tokens it issues.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    token_ttl: std::time::Duration,
}

/// A duration or "off" (clap needs a named type: a bare `Option` means "the flag may be absent").
#[derive(Clone, Copy)]
struct OptionalDuration(Option<std::time::Duration>);

fn parse_optional_duration(s: &str) -> Result<OptionalDuration, String> {
    match s.trim() {
        "off" | "0" | "never" => Ok(OptionalDuration(None)),
        d => humantime::parse_duration(d)
            .map(|d| OptionalDuration(Some(d)))
            .map_err(|e| format!("{s:?} is neither a duration nor \"off\": {e}")),
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("{s:?} is not a number from 0 to 1"))
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user.
    Add {
        #[arg(long)]
        email: String,
        /// Prefer VIDSCOPE_USER_PASSWORD to keep it out of the shell history.
        #[arg(long, env = "VIDSCOPE_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_parser = ["admin", "viewer"])]
        role: String,
    },
}

/// mimalloc rather than glibc malloc: the telemetry pipeline allocates per span, log record
/// and batch, and glibc's allocator was ~20 % of all instructions at 100 % sampling
/// (callgrind on `scripts/bench-overhead.sh`'s route).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    vidscope_core::runtime::block_on("vidscope", run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up { addr } => up(&cli.data_dir, addr).await,
        Command::Loadgen(args) => loadgen(args).await,
        Command::CrmSandbox(args) => crm_sandbox(args).await,
        Command::User {
            command:
                UserCommand::Add {
                    email,
                    password,
                    role,
                },
        } => user_add(&cli.data_dir, &email, &password, &role).await,
    }
}

/// The two services `vidscope up` runs in one process, each with its own telemetry
/// (resource, `service.instance.id`, span store, metrics), as when they run apart: the trace
/// viewer's service filter, the service graph and the dashboards tell them apart.
/// `OTEL_SERVICE_NAME=name` renames them `name-api` and `name-worker`.
fn up_telemetry(telemetry_dir: &Path, component: &str) -> anyhow::Result<TelemetryConfig> {
    // Files by default; any OTEL_* exporter setting in the environment overrides them.
    let mut config = TelemetryConfig::new("vidscope")
        .with_file_exporters(telemetry_dir)
        .from_env()?;
    config.service_name = format!("{}-{component}", config.service_name);
    Ok(config)
}

async fn up(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let telemetry_dir = vidscope_core::config::telemetry_dir(data_dir);
    let telemetry = up_telemetry(&telemetry_dir, "api")?;
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let worker_telemetry = worker_telemetry(&telemetry_dir)?;
    let settings = Settings::from_env(data_dir, addr)?;
    let result = async {
        let (app, worker) = build_both(&settings, &guard, &worker_telemetry).await?;
        print_addresses(data_dir, &format!("http://{}:{}", addr.ip(), app.port()));
        print_exporters(&telemetry);
        run_both(app, worker, worker_telemetry.dispatch.clone()).await
    }
    .await;
    if let Err(e) = &result {
        tracing::error!(
            error = format!("{e:#}"),
            "vidscope up stopped with an error"
        );
    }
    worker_telemetry.guard.shutdown().await;
    guard.shutdown().await;
    result
}

/// The worker's telemetry, which is not global: the worker's task (and every task it spawns,
/// which carry the subscriber along) runs under it. The files are shared, one handle per path.
fn worker_telemetry(telemetry_dir: &Path) -> anyhow::Result<vidscope_telemetry::Telemetry> {
    let config = up_telemetry(telemetry_dir, "worker")?;
    let telemetry = vidscope_telemetry::build(
        &config,
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
    )
    .context("cannot start the worker's telemetry")?;
    tracing::dispatcher::with_default(&telemetry.dispatch, || {
        vidscope_telemetry::init::log_started(&config)
    });
    Ok(telemetry)
}

/// The API, and the worker built under its own telemetry. In one process the worker announces
/// status changes to the API's sockets directly, unless Redis is configured (then pub/sub
/// carries them, as between containers).
async fn build_both(
    settings: &Settings,
    api_telemetry: &vidscope_telemetry::TelemetryGuard,
    worker_telemetry: &vidscope_telemetry::Telemetry,
) -> anyhow::Result<(vidscope_api::Application, vidscope_worker::Worker)> {
    use tracing::instrument::WithSubscriber;

    let app = vidscope_api::Application::build(settings, api_telemetry.metrics().clone()).await?;
    let events = settings
        .redis_url
        .is_none()
        .then(vidscope_core::events::EventBus::local);
    if let Some(bus) = &events {
        app.listen_to(bus);
    }
    let worker = vidscope_worker::Worker::build(
        settings,
        vidscope_worker::WorkerSettings::from_env()?,
        worker_telemetry.guard.metrics().clone(),
        events,
    )
    .with_subscriber(worker_telemetry.dispatch.clone())
    .await?;
    Ok((app, worker))
}

fn print_addresses(data_dir: &Path, base: &str) {
    println!("vidscope is up (data in {})", data_dir.display());
    println!("  sign in      {base}/login");
    println!("  lessons      {base}/videos");
    println!("  trace viewer {base}/trace-viewer");
    println!("  API (spec)   {base}/api/openapi.json");
    println!("  liveness     {base}/healthz");
    println!("  readiness    {base}/readyz");
    println!("  otel check   {base}/api/test-otel");
}

/// Where each signal of the API's telemetry goes.
fn print_exporters(telemetry: &TelemetryConfig) {
    for s in Signal::ALL {
        let name = s.as_str();
        match telemetry.exporter(s) {
            ExporterKind::File => println!(
                "  {name:<12} {}",
                telemetry.file.dir.join(format!("{name}.json")).display()
            ),
            ExporterKind::Otlp => println!("  {name:<12} OTLP {}", telemetry.endpoints[&s]),
            ExporterKind::Console => println!("  {name:<12} console (stdout)"),
            ExporterKind::None => println!("  {name:<12} off"),
        }
    }
}

/// Runs the API and the worker (under `worker_dispatch`) until a shutdown signal, then stops
/// both and waits for the worker's drain.
async fn run_both(
    app: vidscope_api::Application,
    worker: vidscope_worker::Worker,
    worker_dispatch: tracing::Dispatch,
) -> anyhow::Result<()> {
    use tracing::instrument::WithSubscriber;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let worker = tokio::spawn(
        worker
            .run(stopped(stop_rx.clone()))
            .with_subscriber(worker_dispatch),
    );
    let api = app.run_until_stopped(stopped(stop_rx));
    let signal = async {
        vidscope_core::shutdown::signal().await;
        let _ = stop_tx.send(true);
    };
    let (api_result, ()) = tokio::join!(api, signal);
    let _ = worker.await;
    api_result?;
    Ok(())
}

async fn loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let mut config =
        vidscope_cli::loadgen::Config::new(vidscope_cli::loadgen::parse_target(&args.target)?);
    config.duration = args.duration;
    config.users = usize::from(args.users);
    config.max_requests = args.max_requests;
    config.max_uploads = args.max_uploads;
    config.upload_every = args.upload_every;
    config.progress_interval = args.progress_interval;
    config.error_share = args.error_share;
    config.admin = args.admin_email.zip(args.admin_password);
    config.show_progress = !args.json || std::io::stderr().is_terminal();
    if config.admin.is_none() {
        eprintln!(
            "loadgen: no admin credentials, so no uploads (set VIDSCOPE_ADMIN_EMAIL and VIDSCOPE_ADMIN_PASSWORD)"
        );
    }

    let mut telemetry = TelemetryConfig::new("vidscope-loadgen");
    telemetry.stdout_logs = false;
    let telemetry = only_if_configured(telemetry.from_env()?);
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;

    // Ctrl-C ends the run early; the summary still covers what was sent.
    let result = vidscope_cli::loadgen::run(config, vidscope_core::shutdown::signal()).await;
    guard.shutdown().await;
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.render());
    }
    anyhow::ensure!(
        summary.requests > summary.unexpected,
        "every request failed or answered unexpectedly ({} of {})",
        summary.unexpected,
        summary.requests
    );
    Ok(())
}

/// Export only when an OTLP endpoint is configured: the helper commands have nothing to send
/// to otherwise, and would warn about localhost:4317 every second.
fn only_if_configured(mut telemetry: TelemetryConfig) -> TelemetryConfig {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    telemetry.enabled &= configured;
    telemetry
}

async fn crm_sandbox(args: CrmSandboxArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.client_id.trim().is_empty() && !args.client_secret.is_empty(),
        "VIDSCOPE_CRM_CLIENT_ID and VIDSCOPE_CRM_CLIENT_SECRET must not be empty"
    );
    let config = vidscope_cli::crm_sandbox::SandboxConfig {
        addr: args.addr,
        client_id: args.client_id.trim().to_owned(),
        client_secret: vidscope_worker::crm::Secret::new(args.client_secret),
        error_rate: args.error_rate,
        latency: args.latency,
        outage_every: args.outage_every.0,
        outage_for: args.outage_for,
        token_ttl: args.token_ttl,
    };
    // Telemetry like the API's (OTLP when configured, JSON logs on stdout), under its own
    // service name so the service graph shows the worker calling it.
    let telemetry = only_if_configured(TelemetryConfig::new("vidscope-crm-sandbox").from_env()?);
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let result = vidscope_cli::crm_sandbox::serve(
        config,
        guard.metrics().clone(),
        vidscope_core::shutdown::signal(),
    )
    .await;
    guard.shutdown().await;
    result
}

async fn user_add(data_dir: &Path, email: &str, password: &str, role: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).context("--email")?;
    let password = Password::parse(password).context("--password")?;
    let role = Role::parse(role).context("--role")?;
    let settings = Settings::from_env(data_dir, DEFAULT_ADDR.parse()?)?;
    let db = Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    let id = vidscope_core::users::create_user(&db, &email, &password, role).await?;
    println!("created {} user {} ({id})", role.as_str(), email.as_str());
    db.close().await;
    Ok(())
}

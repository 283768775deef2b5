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
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { addr } => up(&cli.data_dir, addr).await,
        Command::User {
            command:
                UserCommand::Add {
                    email,
                    password,
                    role,
                },
        } => user_add(&cli.data_dir, &email, &password, &role).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vidscope: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn up(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let telemetry_dir = data_dir.join("telemetry");
    // Files by default; any OTEL_* exporter setting in the environment overrides them.
    let telemetry = TelemetryConfig::new("vidscope")
        .with_file_exporters(&telemetry_dir)
        .from_env()?;
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let settings = Settings::from_env(data_dir, addr)?;

    let result = async {
        let app = vidscope_api::Application::build(&settings, guard.metrics().clone()).await?;
        // One process: the worker announces status changes to the API's sockets directly,
        // unless Redis is configured (then pub/sub carries them, as between containers).
        let events = settings
            .redis_url
            .is_none()
            .then(vidscope_core::events::EventBus::local);
        if let Some(bus) = &events {
            app.listen_to(bus);
        }
        let worker = vidscope_worker::Worker::build(
            &settings,
            vidscope_worker::WorkerSettings::from_env()?,
            guard.metrics().clone(),
            events,
        )
        .await?;
        let port = app.port();
        let base = format!("http://{}:{port}", addr.ip());
        println!("vidscope is up (data in {})", data_dir.display());
        println!("  API          {base}/api/");
        println!("  liveness     {base}/healthz");
        println!("  readiness    {base}/readyz");
        println!("  otel check   {base}/api/test-otel");
        for s in Signal::ALL {
            match telemetry.exporter(s) {
                ExporterKind::File => println!(
                    "  {:<12} {}",
                    s.as_str(),
                    telemetry
                        .file
                        .dir
                        .join(format!("{}.json", s.as_str()))
                        .display()
                ),
                ExporterKind::Otlp => {
                    println!("  {:<12} OTLP {}", s.as_str(), telemetry.endpoints[&s])
                }
                ExporterKind::None => println!("  {:<12} off", s.as_str()),
            }
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut worker_stop = stop_rx.clone();
        let worker = tokio::spawn(worker.run(async move {
            let _ = worker_stop.wait_for(|s| *s).await;
        }));
        let mut api_stop = stop_rx;
        let api = app.run_until_stopped(async move {
            let _ = api_stop.wait_for(|s| *s).await;
        });
        let signal = async {
            vidscope_core::shutdown::signal().await;
            let _ = stop_tx.send(true);
        };
        let (api_result, ()) = tokio::join!(api, signal);
        let _ = worker.await;
        api_result?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = &result {
        tracing::error!(
            error = format!("{e:#}"),
            "vidscope up stopped with an error"
        );
    }
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

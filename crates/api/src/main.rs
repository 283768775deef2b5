//! `vidscope-api`: the API alone, for containers. Configuration comes from the environment.
//!
//! `vidscope-api migrate` applies the database migrations and exits: a deploy runs it once
//! (the Kubernetes migration Job) before new replicas start, so a failed migration stops the
//! rollout instead of crash-looping every replica. Serving migrates too (an advisory lock on
//! Postgres keeps replicas that start together from racing), so compose needs no extra step.

use std::process::ExitCode;

use anyhow::Context;
use vidscope_api::Application;
use vidscope_core::config::{Settings, telemetry_dir};
use vidscope_telemetry::TelemetryConfig;

/// mimalloc rather than glibc malloc: the telemetry pipeline allocates per span, log record
/// and batch, and glibc's allocator was ~20 % of all instructions at 100 % sampling
/// (callgrind on `scripts/bench-overhead.sh`'s route).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    vidscope_core::runtime::block_on("vidscope-api", run())
}

/// What the command line asks for. Hand-parsed: one optional word does not need clap.
enum Mode {
    Serve,
    Migrate,
}

fn mode() -> anyhow::Result<Mode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Ok(Mode::Serve),
        ["migrate"] => Ok(Mode::Migrate),
        other => anyhow::bail!(
            "unexpected arguments {other:?}; usage: vidscope-api [migrate] (settings come from the environment)"
        ),
    }
}

async fn run() -> anyhow::Result<()> {
    let mode = mode()?;
    let settings = Settings::from_process_env()?;
    let telemetry = TelemetryConfig::new("vidscope-api")
        .with_file_dir(telemetry_dir(&settings.data_dir))
        .from_env()?;
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let result = async {
        if let Mode::Migrate = mode {
            let db = vidscope_core::db::Db::connect(&settings.database_url)
                .await
                .context("cannot connect to the database (DATABASE_URL)")?;
            db.migrate().await.context("database migrations failed")?;
            tracing::info!("vidscope-api migrated the database");
            return anyhow::Ok(());
        }
        let app = Application::build(&settings, guard.metrics().clone()).await?;
        tracing::info!(port = app.port(), "vidscope-api listening");
        app.run_until_stopped(vidscope_core::shutdown::signal())
            .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = &result {
        tracing::error!(
            error = format!("{e:#}"),
            "vidscope-api stopped with an error"
        );
    }
    guard.shutdown().await;
    result
}

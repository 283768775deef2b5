//! `vidscope-worker`: the worker alone, for containers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use vidscope_core::config::{DEFAULT_ADDR, DEFAULT_DATA_DIR, Settings, parse_addr};
use vidscope_core::db::Db;
use vidscope_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vidscope-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let telemetry = TelemetryConfig::new("vidscope-worker").from_env()?;
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let data_dir = PathBuf::from(
        std::env::var("VIDSCOPE_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.into()),
    );
    let addr = parse_addr("VIDSCOPE_ADDR", DEFAULT_ADDR)?;
    let settings = Settings::from_env(&data_dir, addr)?;
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    }
    let db = Db::connect(&settings.database_url)
        .await
        .context("cannot connect to the database (DATABASE_URL)")?;
    db.migrate().await.context("database migrations failed")?;
    vidscope_worker::Worker::new(db)
        .run(vidscope_core::shutdown::signal())
        .await;
    guard.shutdown().await;
    Ok(())
}

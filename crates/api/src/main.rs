//! `vidscope-api`: the API alone, for containers. Configuration comes from the environment.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use vidscope_api::Application;
use vidscope_core::config::{DEFAULT_ADDR, DEFAULT_DATA_DIR, Settings, parse_addr};
use vidscope_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vidscope-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let telemetry = TelemetryConfig::new("vidscope-api").from_env()?;
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let data_dir = PathBuf::from(
        std::env::var("VIDSCOPE_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.into()),
    );
    let addr = parse_addr(
        "VIDSCOPE_ADDR",
        &std::env::var("VIDSCOPE_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.into()),
    )?;
    let settings = Settings::from_env(&data_dir, addr)?;
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    }
    let result = async {
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

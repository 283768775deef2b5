//! `vidscope-api`: the API alone, for containers. Configuration comes from the environment.

use std::process::ExitCode;

use anyhow::Context;
use vidscope_api::Application;
use vidscope_core::config::Settings;
use vidscope_telemetry::TelemetryConfig;

/// mimalloc rather than glibc malloc: the telemetry pipeline allocates per span, log record
/// and batch, and glibc's allocator was ~20 % of all instructions at 100 % sampling
/// (callgrind on `scripts/bench-overhead.sh`'s route).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let settings = Settings::from_process_env()?;
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

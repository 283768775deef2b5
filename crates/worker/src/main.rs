//! `vidscope-worker`: the worker alone, for containers.

use std::process::ExitCode;

use anyhow::Context;
use vidscope_core::config::{Settings, telemetry_dir};
use vidscope_telemetry::TelemetryConfig;
use vidscope_worker::WorkerSettings;

/// mimalloc rather than glibc malloc: the telemetry pipeline allocates per span, log record
/// and batch, and glibc's allocator was ~20 % of all instructions at 100 % sampling
/// (callgrind on `scripts/bench-overhead.sh`'s route).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    vidscope_core::runtime::block_on("vidscope-worker", run())
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_process_env()?;
    let telemetry = TelemetryConfig::new("vidscope-worker")
        .with_file_dir(telemetry_dir(&settings.data_dir))
        .from_env()?;
    let guard = vidscope_telemetry::init(&telemetry).context("cannot start telemetry")?;
    let mut worker_settings = WorkerSettings::from_env()?;
    // A container's health endpoint is on unless configured otherwise.
    worker_settings
        .health_addr
        .get_or_insert(([0, 0, 0, 0], 8081).into());
    let result = async {
        let worker = vidscope_worker::Worker::build(
            &settings,
            worker_settings,
            guard.metrics().clone(),
            None,
        )
        .await?;
        anyhow::Ok(worker.run(vidscope_core::shutdown::signal()).await)
    }
    .await;
    match &result {
        // Telemetry gets what is left of the shutdown deadline.
        Ok(exit_by) => {
            if tokio::time::timeout_at(*exit_by, guard.shutdown())
                .await
                .is_err()
            {
                eprintln!("vidscope-worker: telemetry not flushed within the shutdown deadline");
            }
        }
        Err(_) => guard.shutdown().await,
    }
    result.map(|_| ())
}

//! `otlp-sink`: accepts OTLP over gRPC and HTTP, decodes it and throws it away.
//!
//! The exporter benchmark needs an endpoint whose cost is realistic (every request is fully
//! decoded, as a collector would) but that never becomes the bottleneck or grows in memory, and
//! that reports how much arrived. It reuses the test receiver with `retain = false`, so it speaks
//! exactly the protocol surface the integration tests exercise.
//!
//! stdout carries only JSON lines with cumulative totals — one every interval and a final one on
//! SIGINT/SIGTERM — so a script can take the last line; diagnostics go to stderr.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use vidscope_testkit::otlp::{CaptureReceiver, ReceiverOptions};

const USAGE: &str = "\
usage: otlp-sink [--grpc ADDR] [--http ADDR] [--interval SECONDS]

  --grpc ADDR          OTLP/gRPC listen address (default 127.0.0.1:4317)
  --http ADDR          OTLP/HTTP listen address (default 127.0.0.1:4318)
  --interval SECONDS   seconds between count lines on stdout (default 5)

Prints {\"spans\":N,\"logs\":N,\"metric_points\":N,\"requests\":N} (cumulative totals) every
interval and once more on SIGINT/SIGTERM, then exits.";

#[derive(Debug)]
struct Args {
    grpc: SocketAddr,
    http: SocketAddr,
    interval: Duration,
}

/// Hand-rolled so the testkit library, which every crate's tests link, does not pull in clap
/// just for this binary. `Ok(None)` means help was requested.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
        http: SocketAddr::from(([127, 0, 0, 1], 4318)),
        interval: Duration::from_secs(5),
    };
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--grpc" => parsed.grpc = parse_addr(&flag, &value()?)?,
            "--http" => parsed.http = parse_addr(&flag, &value()?)?,
            "--interval" => {
                let raw = value()?;
                let seconds: f64 = raw
                    .parse()
                    .map_err(|_| format!("--interval expects seconds, got {raw:?}"))?;
                parsed.interval = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("--interval must be a positive number, got {raw:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

fn parse_addr(flag: &str, raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|err| format!("{flag} expects HOST:PORT with a numeric host, got {raw:?}: {err}"))
}

fn print_counts(receiver: &CaptureReceiver) {
    let items = receiver.item_counts();
    let line = serde_json::json!({
        "spans": items.spans,
        "logs": items.log_records,
        "metric_points": items.metric_points,
        "requests": receiver.request_counts().total(),
    });
    println!("{line}");
}

/// Resolves on SIGINT or SIGTERM. If the handlers cannot be installed the sink keeps running
/// rather than exiting at once, because the benchmark would otherwise read an empty result.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                eprintln!("otlp-sink: cannot listen for SIGTERM ({err}); only SIGINT stops it");
                if let Err(err) = tokio::signal::ctrl_c().await {
                    eprintln!("otlp-sink: cannot listen for SIGINT either: {err}");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("otlp-sink: cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    }
}

/// The receiver brings its own runtime; this one only runs the ticker and signal handling.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("otlp-sink: {err}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let options = ReceiverOptions {
        grpc_addr: args.grpc,
        http_addr: args.http,
        retain: false,
        worker_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let receiver = match CaptureReceiver::start_with(options).await {
        Ok(receiver) => receiver,
        Err(err) => {
            eprintln!("otlp-sink: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "otlp-sink: listening for OTLP/gRPC on {} and OTLP/HTTP on {}",
        receiver.grpc_endpoint(),
        receiver.http_endpoint()
    );

    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + args.interval, args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        tokio::select! {
            _ = ticker.tick() => print_counts(&receiver),
            () = &mut stop => break,
        }
    }
    print_counts(&receiver);
    ExitCode::SUCCESS
}

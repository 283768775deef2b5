//! `otlp-sink`: accepts OTLP over gRPC and HTTP, decodes it and throws it away.
//!
//! The exporter benchmark needs an endpoint whose cost is realistic (every request is fully
//! decoded, as a collector would) but that never becomes the bottleneck or grows in memory, and
//! that reports how much arrived. It reuses the test receiver with `retain = false`, so it speaks
//! exactly the protocol surface the integration tests exercise.
//!
//! For the capacity measurement (scripts/capacity.sh) it can also tally what arrived per service
//! (`--tally FILE`, written on exit; see tally.rs) and append every request's protobuf encoding
//! to `DIR/{traces,metrics,logs}.pb` (`--dump DIR`) for a compressor to size.
//!
//! For the fault drills (scripts/drills) `--black-hole` turns it into a collector that accepts
//! connections and never answers: its count lines then say `{"connections":N,"bytes":N}`.
//!
//! stdout carries only JSON lines with cumulative totals — one every interval and a final one on
//! SIGINT/SIGTERM — so a script can take the last line; diagnostics go to stderr.

mod tally;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prost::Message;
use vidscope_testkit::otlp::{
    BlackHole, CaptureReceiver, Export, Misbehaviour, PartialReject, ReceiverOptions, Refusal,
    RetryAfter, Tap,
};

use tally::Tally;

const USAGE: &str = "\
usage: otlp-sink [--grpc ADDR] [--http ADDR] [--interval SECONDS]
                 [--tally FILE [--span-dimensions A,B,..] [--slow-trace-ms MS]] [--dump DIR]

  --grpc ADDR          OTLP/gRPC listen address (default 127.0.0.1:4317)
  --http ADDR          OTLP/HTTP listen address (default 127.0.0.1:4318)
  --interval SECONDS   seconds between count lines on stdout (default 5)
  --tally FILE         on exit, write per-service bytes, items, trace ids and series as JSON
  --span-dimensions L  the span-metrics connector's dimensions, comma-separated (for --tally)
  --slow-trace-ms MS   tail sampling's latency threshold, for --tally (default 1000)
  --dump DIR           append each request's protobuf to DIR/traces.pb, metrics.pb, logs.pb

Misbehaving on purpose (exporter conformance):
  --refuse-first N     refuse the first N export requests of each signal
  --refusal KIND       how: unavailable (503/UNAVAILABLE, default), throttled
                       (429/RESOURCE_EXHAUSTED), invalid (400/INVALID_ARGUMENT)
  --retry-after S      send Retry-After: S (gRPC: a RetryInfo of S seconds) with refusals
  --partial-success N  accept every request with a partial success rejecting N items
  --require-gzip       refuse uncompressed requests (415/UNIMPLEMENTED)
  --delay-ms MS        answer every export request MS milliseconds late (a slow collector)
  --black-hole         accept connections on both addresses, read everything, never answer
                       (prints {\"connections\":N,\"bytes\":N}; no other option applies)

Prints {\"spans\":N,\"logs\":N,\"metric_points\":N,\"requests\":N} (cumulative totals) every
interval and once more on SIGINT/SIGTERM, then exits.";

#[derive(Debug)]
struct Args {
    grpc: SocketAddr,
    http: SocketAddr,
    interval: Duration,
    tally: Option<PathBuf>,
    span_dimensions: Vec<String>,
    slow_trace_ms: u64,
    dump: Option<PathBuf>,
    misbehaviour: Misbehaviour,
    black_hole: bool,
}

/// Hand-rolled so the testkit library, which every crate's tests link, does not pull in clap
/// just for this binary. `Ok(None)` means help was requested.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
        http: SocketAddr::from(([127, 0, 0, 1], 4318)),
        interval: Duration::from_secs(5),
        tally: None,
        span_dimensions: Vec::new(),
        slow_trace_ms: 1000,
        dump: None,
        misbehaviour: Misbehaviour::default(),
        black_hole: false,
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
            "--tally" => parsed.tally = Some(value()?.into()),
            "--span-dimensions" => {
                parsed.span_dimensions = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--slow-trace-ms" => {
                let raw = value()?;
                parsed.slow_trace_ms = raw
                    .parse()
                    .map_err(|_| format!("--slow-trace-ms expects milliseconds, got {raw:?}"))?;
            }
            "--dump" => parsed.dump = Some(value()?.into()),
            "--require-gzip" => parsed.misbehaviour.require_gzip = true,
            "--black-hole" => parsed.black_hole = true,
            "--refuse-first" | "--refusal" | "--retry-after" | "--partial-success"
            | "--delay-ms" => {
                misbehave(&mut parsed.misbehaviour, &flag, &value()?)?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.black_hole
        && (parsed.tally.is_some()
            || parsed.dump.is_some()
            || parsed.misbehaviour != Misbehaviour::default())
    {
        return Err(
            "--black-hole decodes nothing: it cannot be combined with --tally, --dump or \
             another misbehaviour"
                .to_owned(),
        );
    }
    Ok(Some(parsed))
}

/// One of the misbehaviour flags that take a value.
fn misbehave(m: &mut Misbehaviour, flag: &str, raw: &str) -> Result<(), String> {
    let number = || {
        raw.parse::<u32>()
            .map_err(|_| format!("{flag} expects a non-negative integer, got {raw:?}"))
    };
    match flag {
        "--refuse-first" => m.refuse_first = number()?,
        "--delay-ms" => m.delay = Some(Duration::from_millis(number()?.into())),
        "--retry-after" => m.retry_after = Some(RetryAfter::Seconds(number()?.into())),
        "--partial-success" => {
            m.partial_success = Some(PartialReject {
                rejected: number()?.into(),
                message: "otlp-sink: rejected on purpose (--partial-success)".to_owned(),
            });
        }
        _ => {
            m.refusal = match raw {
                "unavailable" => Refusal::Unavailable,
                "throttled" => Refusal::Throttled,
                "invalid" => Refusal::Invalid,
                _ => return Err(format!("{flag} expects unavailable, throttled or invalid")),
            };
        }
    }
    Ok(())
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

    if args.black_hole {
        return black_hole(&args).await;
    }
    let tally = Arc::new(Mutex::new(Tally::new(
        args.span_dimensions.clone(),
        args.slow_trace_ms,
    )));
    let tap = match tap(&args, &tally) {
        Ok(tap) => tap,
        Err(err) => {
            eprintln!("otlp-sink: {err}");
            return ExitCode::FAILURE;
        }
    };
    let options = ReceiverOptions {
        grpc_addr: args.grpc,
        http_addr: args.http,
        retain: false,
        worker_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        tap,
        misbehaviour: args.misbehaviour.clone(),
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

    print_until_stopped(args.interval, || print_counts(&receiver)).await;
    receiver.shutdown().await;
    print_counts(&receiver);
    if let Some(path) = &args.tally {
        let summary = tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .summary();
        if let Err(err) = std::fs::write(path, format!("{summary:#}\n")) {
            eprintln!("otlp-sink: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Calls `print` every `interval` until SIGINT or SIGTERM.
async fn print_until_stopped(interval: Duration, print: impl Fn()) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop_signal());
    loop {
        tokio::select! {
            _ = ticker.tick() => print(),
            () = &mut stop => break,
        }
    }
}

/// `--black-hole`: the same count lines and stop signal around a [`BlackHole`].
async fn black_hole(args: &Args) -> ExitCode {
    let hole = match BlackHole::start(&[args.grpc, args.http]) {
        Ok(hole) => hole,
        Err(err) => {
            eprintln!("otlp-sink: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "otlp-sink: black hole: accepting and never answering on {} (gRPC) and {} (HTTP)",
        hole.addrs()[0],
        hole.addrs()[1]
    );
    let print = |hole: &BlackHole| {
        let line = serde_json::json!({
            "connections": hole.connections(),
            "bytes": hole.bytes(),
        });
        println!("{line}");
    };
    print_until_stopped(args.interval, || print(&hole)).await;
    hole.shutdown().await;
    print(&hole);
    ExitCode::SUCCESS
}

/// The receiver's tap when `--tally` or `--dump` asks for one. Dump files are opened up front so
/// a bad directory fails at start, not after the run.
fn tap(args: &Args, tally: &Arc<Mutex<Tally>>) -> Result<Option<Tap>, String> {
    if args.tally.is_none() && args.dump.is_none() {
        return Ok(None);
    }
    let dump = match &args.dump {
        None => None,
        Some(dir) => {
            let open = |name: &str| {
                let path = dir.join(name);
                File::create(&path)
                    .map_err(|err| format!("cannot create {}: {err}", path.display()))
            };
            Some(Mutex::new([
                open("traces.pb")?,
                open("metrics.pb")?,
                open("logs.pb")?,
            ]))
        }
    };
    let tally = args.tally.is_some().then(|| Arc::clone(tally));
    Ok(Some(Tap(Arc::new(move |export: Export<'_>| {
        if let Some(tally) = &tally {
            tally
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(export);
        }
        if let Some(files) = &dump {
            let (index, bytes) = match export {
                Export::Traces(r) => (0, r.encode_to_vec()),
                Export::Metrics(r) => (1, r.encode_to_vec()),
                Export::Logs(r) => (2, r.encode_to_vec()),
            };
            let mut files = files.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(err) = files[index].write_all(&bytes) {
                eprintln!("otlp-sink: dump write failed: {err}");
            }
        }
    }))))
}

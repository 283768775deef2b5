//! `span-load`: emits the spans of `GET /api/test-otel` at a steady rate through vidscope's
//! telemetry, configured from the environment as a service is (`OTEL_*`,
//! `VIDSCOPE_TELEMETRY_BACKEND`), and reports what the export pipeline did with them.
//!
//! scripts/bench-span-ceiling.sh runs it at rising rates against `otlp-sink` to find the rate
//! at which spans start being dropped with a healthy collector: the request path does only
//! what the API's does (a server span with the middleware's attributes, a client child span
//! with an event), so what limits the rate is the span queue and its export thread.
//!
//! Prints one JSON line on exit: the rate asked and the rate achieved (spans/s: the load
//! itself may be the limit), the spans emitted, and the span pipeline's export counters.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use vidscope_telemetry::{SpanExt as _, TelemetryConfig};

const USAGE: &str = "\
usage: span-load --rate SPANS_PER_SECOND [--seconds S (10)] [--threads N (1)]

Emits GET /api/test-otel's two spans per request at the given rate (over N threads), then
shuts telemetry down and prints
{\"rate\":R,\"achieved\":A,\"spans\":N,\"exported\":E,\"dropped\":D,\"seconds\":S,
\"max_rss_mib\":M}.
Telemetry comes from the environment (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_BSP_*, ...).";

struct Args {
    rate: f64,
    seconds: f64,
    threads: usize,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        rate: 0.0,
        seconds: 10.0,
        threads: 1,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0 && n.is_finite())
                .ok_or_else(|| format!("{flag} expects a positive number, got {value:?}"))
        };
        match flag.as_str() {
            "--rate" => parsed.rate = number()?,
            "--seconds" => parsed.seconds = number()?,
            "--threads" => parsed.threads = number()? as usize,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.rate == 0.0 {
        return Err("--rate is required".to_owned());
    }
    Ok(parsed)
}

/// One request's spans, as the API makes them for `GET /api/test-otel`.
fn request(n: u64) {
    let server = tracing::info_span!(
        "http.server.request",
        otel.name = "GET /api/test-otel",
        otel.kind = "server",
        user.id = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    server.set_attributes([
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/api/test-otel"),
        KeyValue::new("url.path", "/api/test-otel"),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("server.address", "127.0.0.1"),
        KeyValue::new("server.port", 8080_i64),
        KeyValue::new("client.address", "127.0.0.1"),
        KeyValue::new("network.protocol.version", "1.1"),
        KeyValue::new("user_agent.original", "span-load"),
        KeyValue::new("http.route.type", "api"),
        KeyValue::new("api.category", "system"),
    ]);
    server.in_scope(|| {
        let child = tracing::info_span!(
            "test-otel",
            otel.kind = "client",
            db.system.name = "sqlite",
            db.operation.name = "SELECT",
            db.query.text = "SELECT 1",
        );
        child.add_event("test-otel.checked", vec![KeyValue::new("db.result", 1_i64)]);
    });
    server.set_attributes([
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("http.response.category", "2xx"),
        KeyValue::new("http.response.body.size", 48 + (n % 2) as i64),
    ]);
}

/// Emits `requests_per_s` for `seconds`, catching up every millisecond; returns the requests.
fn emit(requests_per_s: f64, seconds: f64) -> u64 {
    let start = Instant::now();
    let end = Duration::from_secs_f64(seconds);
    let mut done = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= end {
            return done;
        }
        let due = (elapsed.as_secs_f64() * requests_per_s) as u64;
        while done < due {
            request(done);
            done += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The process's peak resident memory (`VmHWM`), in MiB: what a full queue costs.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse_args(args.into_iter()).and_then(|args| run(&args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("span-load: {err}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Starts telemetry, runs the load, shuts telemetry down; the result line.
fn run(args: &Args) -> Result<serde_json::Value, String> {
    let config = TelemetryConfig::new("vidscope-api")
        .from_env()
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let guard = runtime
        .block_on(async { vidscope_telemetry::init(&config) })
        .map_err(|e| e.to_string())?;
    let per_thread = args.rate / 2.0 / args.threads as f64;
    let start = Instant::now();
    let requests: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..args.threads)
            .map(|_| s.spawn(|| emit(per_thread, args.seconds)))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let elapsed = start.elapsed().as_secs_f64();
    runtime.block_on(guard.shutdown());
    let stats = guard.stats();
    let signal = vidscope_telemetry::Signal::Traces;
    Ok(serde_json::json!({
        "rate": args.rate,
        "achieved": (2 * requests) as f64 / elapsed,
        "spans": 2 * requests,
        "exported": stats.exported(signal),
        "dropped": stats.dropped(signal),
        "seconds": elapsed,
        "max_rss_mib": peak_rss_mib(),
    }))
}

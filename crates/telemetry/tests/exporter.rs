//! OTLP exporter conformance on both backends (issue 26), against the capture receiver made to
//! misbehave: compression, retries that honour the server's wait within the export timeout,
//! no retry of what cannot succeed, partial success counted and warned about once.
//!
//! Each run is a child process of this test binary (the `child` test, idle unless
//! `VIDSCOPE_TEST_CHILD` is set), configured from the environment as a service is, so the
//! exporters' threads log through a global subscriber to a stdout the parent reads. The child
//! sends `VIDSCOPE_TEST_ROUNDS` rounds of one span, one log record and one metric increment,
//! flushing after each (one export request per signal per round), then prints its export
//! counters as one `{"stats": …}` line.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{json_lines, print_stats, run_child, stats_line, work};
use vidscope_telemetry::TelemetryConfig;
use vidscope_testkit::otlp::{
    Attempt, CaptureReceiver, Misbehaviour, PartialReject, Refusal, RetryAfter, Signal,
};

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

/// The child's side. See the module documentation.
#[test]
fn child() {
    let Ok(scenario) = std::env::var("VIDSCOPE_TEST_CHILD") else {
        return;
    };
    assert!(
        ["export", "burst"].contains(&scenario.as_str()),
        "{scenario}"
    );
    let rounds: u32 = std::env::var("VIDSCOPE_TEST_ROUNDS").map_or(1, |r| r.parse().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = TelemetryConfig::new("vidscope-test").from_env().unwrap();
        let guard = vidscope_telemetry::init(&config).unwrap();
        if scenario == "burst" {
            // `rounds` spans with a record each, as fast as they come, flushed only at the end.
            (0..i64::from(rounds)).for_each(work);
        }
        for round in (0..rounds).filter(|_| scenario == "export") {
            work(i64::from(round));
            guard.metrics().test_otel_requests.add(1, &[]);
            guard.flush().await;
        }
        guard.shutdown().await;
        print_stats(guard.stats());
    });
}

/// What a child run left: its stdout and its export counters.
struct Run {
    stdout: String,
    stats: Value,
}

impl Run {
    fn stat(&self, signal: Signal, name: &str) -> u64 {
        self.stats[name_of(signal)][name].as_u64().unwrap()
    }

    /// The stdout JSON log lines.
    fn lines(&self) -> Vec<Value> {
        json_lines(&self.stdout)
    }
}

fn name_of(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "traces",
        Signal::Metrics => "metrics",
        Signal::Logs => "logs",
    }
}

/// Runs the child's `scenario` (`export` for most) on `backend` against `receiver` over
/// `protocol`, with `vars` on top.
async fn run_scenario(
    scenario: &'static str,
    backend: &'static str,
    receiver: &CaptureReceiver,
    protocol: &'static str,
    rounds: u32,
    vars: &[(&'static str, &'static str)],
) -> Run {
    let endpoint = if protocol == "grpc" {
        receiver.grpc_endpoint()
    } else {
        receiver.http_endpoint()
    };
    let mut env: Vec<(&'static str, String)> = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
        // Metrics only when flushed: one export request per round, as for spans and logs.
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
        ("VIDSCOPE_TEST_ROUNDS", rounds.to_string()),
    ];
    env.extend(vars.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let stdout = tokio::task::spawn_blocking(move || run_child(scenario, backend, &env))
        .await
        .unwrap();
    let stats = stats_line(&stdout);
    Run { stdout, stats }
}

fn attempts_of(receiver: &CaptureReceiver, signal: Signal) -> Vec<Attempt> {
    receiver
        .attempts()
        .into_iter()
        .filter(|a| a.signal == signal)
        .collect()
}

/// Each signal's data arrived (at least one accepted request).
fn assert_all_arrived(receiver: &CaptureReceiver, what: &str) {
    let counts = receiver.request_counts();
    for (signal, n) in [
        (Signal::Traces, counts.traces()),
        (Signal::Metrics, counts.metrics()),
        (Signal::Logs, counts.logs()),
    ] {
        assert!(
            n >= 1,
            "{what}: no {signal:?} arrived\n{}",
            receiver.summary()
        );
    }
    assert!(!receiver.spans_named("work").is_empty(), "{what}");
    assert!(
        !receiver
            .logs_where(|l| l.body.as_deref() == Some("exported record"))
            .is_empty(),
        "{what}"
    );
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip`: every request of every signal arrives gzipped (the
/// receiver checks the bytes and refuses anything else) and decodes, over gRPC, HTTP/protobuf
/// and HTTP/JSON; a per-signal `none` wins for its signal.
async fn gzip_is_sent_when_asked(backend: &'static str) {
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let receiver = CaptureReceiver::start().await;
        receiver.misbehave(Misbehaviour {
            require_gzip: true,
            ..Misbehaviour::default()
        });
        let vars = [("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")];
        let run = run_scenario("export", backend, &receiver, protocol, 1, &vars).await;
        let what = format!("{backend} {protocol}");
        assert_all_arrived(&receiver, &what);
        let attempts = receiver.attempts();
        assert!(
            attempts.iter().all(|a| a.gzip && a.refused.is_none()),
            "{what}: {attempts:#?}"
        );
        for signal in SIGNALS {
            assert_eq!(run.stat(signal, "dropped"), 0, "{what} {signal:?}");
        }
        receiver.shutdown().await;
    }
    // Per signal: the signal's variable wins over the general one.
    let receiver = CaptureReceiver::start().await;
    let vars = [
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
    ];
    run_scenario("export", backend, &receiver, "http/protobuf", 1, &vars).await;
    assert_all_arrived(&receiver, backend);
    for signal in SIGNALS {
        let gzip: Vec<bool> = attempts_of(&receiver, signal)
            .iter()
            .map(|a| a.gzip)
            .collect();
        let expected = signal != Signal::Metrics;
        assert!(
            !gzip.is_empty() && gzip.iter().all(|g| *g == expected),
            "{backend} {signal:?}: {gzip:?}"
        );
    }
    receiver.shutdown().await;
}

/// The first two requests of each signal refused, retryably, with a server-given wait: the
/// data arrives on the third, and each retry came no sooner than the server said.
async fn assert_retried_after(
    backend: &'static str,
    protocol: &'static str,
    refusal: Refusal,
    retry_after: RetryAfter,
    at_least: Duration,
) {
    let receiver = CaptureReceiver::start().await;
    receiver.misbehave(Misbehaviour {
        refuse_first: 2,
        refusal,
        retry_after: Some(retry_after),
        ..Misbehaviour::default()
    });
    let run = run_scenario("export", backend, &receiver, protocol, 1, &[]).await;
    let what = format!("{backend} {protocol} {refusal:?} {retry_after:?}");
    assert_all_arrived(&receiver, &what);
    for signal in SIGNALS {
        let attempts = attempts_of(&receiver, signal);
        let outcomes: Vec<bool> = attempts.iter().map(|a| a.refused.is_some()).collect();
        assert!(outcomes.len() >= 3, "{what} {signal:?}: {attempts:#?}");
        assert_eq!(
            outcomes[..3],
            [true, true, false],
            "{what} {signal:?}: {attempts:#?}"
        );
        for pair in attempts[..3].windows(2) {
            let waited = pair[1].at.duration_since(pair[0].at);
            assert!(
                waited >= at_least,
                "{what} {signal:?}: retried after {waited:?}"
            );
        }
        assert_eq!(run.stat(signal, "dropped"), 0, "{what} {signal:?}");
    }
    receiver.shutdown().await;
}

/// HTTP 503 and 429 with `Retry-After` in seconds and as an HTTP date.
async fn http_refusals_are_retried_after_retry_after(backend: &'static str) {
    let second = Duration::from_secs(1);
    let cases = [
        (
            "http/protobuf",
            Refusal::Unavailable,
            RetryAfter::Seconds(1),
        ),
        // An HTTP date has whole seconds: two seconds ahead is more than one from now.
        (
            "http/json",
            Refusal::Throttled,
            RetryAfter::DateIn(2 * second),
        ),
    ];
    for (protocol, refusal, retry_after) in cases {
        assert_retried_after(backend, protocol, refusal, retry_after, second).await;
    }
}

/// gRPC `RESOURCE_EXHAUSTED` with a `RetryInfo`, `UNAVAILABLE` with one and without (then
/// with backoff). The server's wait is over twice the longest backoff of a second retry
/// (200 ms), so a client that ignored it would retry too soon.
async fn grpc_refusals_are_retried_after_retry_info(backend: &'static str) {
    let wait = Duration::from_millis(500);
    let cases = [
        (Refusal::Throttled, RetryAfter::DateIn(wait)),
        (Refusal::Unavailable, RetryAfter::DateIn(wait)),
    ];
    for (refusal, retry_after) in cases {
        assert_retried_after(backend, "grpc", refusal, retry_after, wait).await;
    }
    let receiver = CaptureReceiver::start().await;
    receiver.misbehave(Misbehaviour {
        refuse_first: 2,
        ..Misbehaviour::default()
    });
    run_scenario("export", backend, &receiver, "grpc", 1, &[]).await;
    assert_all_arrived(&receiver, backend);
    receiver.shutdown().await;
}

/// What cannot succeed later is sent once: HTTP 400, gRPC `INVALID_ARGUMENT`, and gRPC
/// `RESOURCE_EXHAUSTED` without a `RetryInfo`. The batch is counted as dropped.
async fn permanent_refusals_are_not_retried(backend: &'static str) {
    let cases = [
        ("http/protobuf", Refusal::Invalid),
        ("grpc", Refusal::Invalid),
        ("grpc", Refusal::Throttled),
    ];
    for (protocol, refusal) in cases {
        let receiver = CaptureReceiver::start().await;
        receiver.misbehave(Misbehaviour {
            refuse_first: 1,
            refusal,
            ..Misbehaviour::default()
        });
        let run = run_scenario("export", backend, &receiver, protocol, 1, &[]).await;
        let what = format!("{backend} {protocol} {refusal:?}");
        for signal in [Signal::Traces, Signal::Logs] {
            let attempts = attempts_of(&receiver, signal);
            assert_eq!(attempts.len(), 1, "{what} {signal:?}: {attempts:#?}");
            assert!(attempts[0].refused.is_some(), "{what} {signal:?}");
            assert_eq!(run.stat(signal, "exported"), 0, "{what} {signal:?}");
            assert!(run.stat(signal, "dropped") >= 1, "{what} {signal:?}");
        }
        receiver.shutdown().await;
    }
}

/// A collector that keeps refusing with a wait: the export gives up within the export
/// timeout (a wait longer than what is left is not waited at all), and drops and counts.
async fn retries_stop_within_the_export_timeout(backend: &'static str) {
    // A 1.5 s timeout leaves room for the first retry after 1 s and not for a second.
    for (retry_after, most) in [(1, 2), (30, 1)] {
        let receiver = CaptureReceiver::start().await;
        receiver.misbehave(Misbehaviour {
            refuse_first: 1000,
            retry_after: Some(RetryAfter::Seconds(retry_after)),
            ..Misbehaviour::default()
        });
        let vars = [
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1500"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ];
        let run = run_scenario("export", backend, &receiver, "http/protobuf", 1, &vars).await;
        let what = format!("{backend} Retry-After {retry_after}");
        for signal in [Signal::Traces, Signal::Logs] {
            let attempts = attempts_of(&receiver, signal);
            assert!(
                (1..=most).contains(&attempts.len()),
                "{what} {signal:?}: {attempts:#?}"
            );
            assert!(run.stat(signal, "dropped") >= 1, "{what} {signal:?}");
        }
        receiver.shutdown().await;
    }
}

/// Every request accepted with one item rejected: each rejection is counted as dropped, and
/// the collector's message is logged once per signal, not once per batch.
async fn partial_success_is_counted_and_warned_once(backend: &'static str) {
    const MESSAGE: &str = "rejected on purpose: too old";
    for protocol in ["grpc", "http/protobuf", "http/json"] {
        let receiver = CaptureReceiver::start().await;
        receiver.misbehave(Misbehaviour {
            partial_success: Some(PartialReject {
                rejected: 1,
                message: MESSAGE.to_owned(),
            }),
            ..Misbehaviour::default()
        });
        let run = run_scenario("export", backend, &receiver, protocol, 3, &[]).await;
        let what = format!("{backend} {protocol}");
        assert_all_arrived(&receiver, &what);
        let warnings: Vec<Value> = run
            .lines()
            .into_iter()
            .filter(|l| l["error"] == MESSAGE)
            .collect();
        for signal in SIGNALS {
            let requests = attempts_of(&receiver, signal).len() as u64;
            assert!(requests >= 2, "{what} {signal:?}: {requests} requests");
            assert_eq!(run.stat(signal, "dropped"), requests, "{what} {signal:?}");
            assert_eq!(
                run.stat(signal, "rejection_warnings"),
                1,
                "{what} {signal:?}"
            );
            let logged = warnings
                .iter()
                .filter(|l| l["signal"] == name_of(signal))
                .count();
            assert_eq!(logged, 1, "{what} {signal:?}:\n{}", run.stdout);
        }
        assert!(
            warnings.iter().all(|l| l["level"] == "WARN"),
            "{what}: {warnings:#?}"
        );
        receiver.shutdown().await;
    }
}

/// A burst of 1 000 spans and records against a collector that takes a second per request:
/// what waits is bounded by the queue size (`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_...`), plus
/// the one batch (`..._MAX_EXPORT_BATCH_SIZE`) being sent; the rest is dropped, and every
/// item is either exported or counted as dropped, with the queue-full warning. With the
/// default queue of 4 096 the same burst loses nothing.
async fn the_queue_size_bounds_what_waits_and_the_rest_is_counted(backend: &'static str) {
    const BURST: u64 = 1000;
    let receiver = CaptureReceiver::start().await;
    receiver.misbehave(Misbehaviour {
        delay: Some(Duration::from_secs(1)),
        ..Misbehaviour::default()
    });
    let small = [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "400"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ];
    let run = run_scenario("burst", backend, &receiver, "grpc", BURST as u32, &small).await;
    let queue_full: Vec<Value> = run
        .lines()
        .into_iter()
        .filter(|l| {
            l["error"]
                .as_str()
                .is_some_and(|e| e.contains("export queue is full"))
        })
        .collect();
    for (signal, queue, batch) in [(Signal::Traces, 100, 50), (Signal::Logs, 400, 100)] {
        let what = format!("{backend} {signal:?}");
        let exported = run.stat(signal, "exported");
        let dropped = run.stat(signal, "dropped");
        assert_eq!(exported + dropped, BURST, "{what}: {}", run.stats);
        // The queue filled while the first batch was being sent, and held no more.
        assert!(
            (queue..=queue + batch).contains(&exported),
            "{what}: {exported} exported, queue {queue} + batch {batch}"
        );
        let arrived = attempts_of(&receiver, signal).len() as u64;
        assert!(
            arrived >= exported.div_ceil(batch),
            "{what}: batches of at most {batch}: {arrived} requests for {exported}"
        );
        assert!(
            queue_full.iter().any(|l| l["signal"] == name_of(signal)),
            "{what}: no queue-full warning:\n{}",
            run.stdout
        );
    }
    assert_eq!(
        receiver.item_counts().spans,
        run.stat(Signal::Traces, "exported")
    );
    assert_eq!(
        receiver.item_counts().log_records,
        run.stat(Signal::Logs, "exported")
    );
    receiver.shutdown().await;

    // The same burst with the default queue of 4 096: nothing lost.
    let receiver = CaptureReceiver::start().await;
    receiver.misbehave(Misbehaviour {
        delay: Some(Duration::from_secs(1)),
        ..Misbehaviour::default()
    });
    let vars = [("OTEL_METRICS_EXPORTER", "none")];
    let run = run_scenario("burst", backend, &receiver, "grpc", BURST as u32, &vars).await;
    for signal in [Signal::Traces, Signal::Logs] {
        assert_eq!(run.stat(signal, "exported"), BURST, "{backend} {signal:?}");
        assert_eq!(run.stat(signal, "dropped"), 0, "{backend} {signal:?}");
    }
    receiver.shutdown().await;
}

/// One test per backend for each behaviour above.
macro_rules! per_backend {
    ($($behaviour:ident),* $(,)?) => {
        mod fast {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour("fast").await;
                }
            )*
        }
        mod sdk {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$behaviour("sdk").await;
                }
            )*
        }
    };
}

per_backend!(
    gzip_is_sent_when_asked,
    http_refusals_are_retried_after_retry_after,
    grpc_refusals_are_retried_after_retry_info,
    permanent_refusals_are_not_retried,
    retries_stop_within_the_export_timeout,
    partial_success_is_counted_and_warned_once,
    the_queue_size_bounds_what_waits_and_the_rest_is_counted,
);

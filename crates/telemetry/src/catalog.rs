//! The metric catalog: every instrument vidscope emits, by name, unit, kind, buckets and the
//! labels it may carry. Nothing else in the workspace creates instruments; code records through
//! [`Metrics`].
//!
//! The catalog is also enforced at the SDK: a view per entry sets the buckets, keeps only the
//! listed labels (so an id can never become a label by accident) and caps cardinality; any
//! instrument that is not in the catalog is dropped. Dashboards and alerts (issue 5) are checked
//! against this list.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use opentelemetry::metrics::{BoundHistogram, Counter, Gauge, Histogram, Meter, ObservableCounter};
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::metrics::{Aggregation, Instrument, Stream};

use crate::config::Signal;
use crate::export::ExportStats;
use crate::sampled_gauge::SampledGauge;

/// Seed 003's duration buckets, in milliseconds, for every `*_ms` histogram.
pub const DURATION_BUCKETS_MS: &[f64] = &[
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Semantic-conventions buckets for `http.server.request.duration`, in seconds.
pub const HTTP_DURATION_BUCKETS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Image sizes (bytes): 1 KiB .. 16 MiB.
pub const SIZE_BUCKETS_BYTES: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Per-stream cap on distinct label sets. Labels are bounded by design (routes, statuses,
/// workflow names); hitting this means a bug, which shows as `otel.metric.overflow=true`.
pub const CARDINALITY_LIMIT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
    ObservableCounter,
    /// A current value: a state the process holds (the CRM breaker's), recorded with a
    /// synchronous gauge, or a reading of the database or the queue, with a
    /// [`SampledGauge`] so a failed reading is not exported as the last good one.
    Gauge,
}

#[derive(Debug, Clone, Copy)]
pub struct InstrumentSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    pub buckets: Option<&'static [f64]>,
    pub labels: &'static [&'static str],
}

/// An entry without buckets: a counter, a gauge or an observable counter (the catalog's lines
/// below read as a table: kind, name, unit, ...).
const fn entry(
    kind: Kind,
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    labels: &'static [&'static str],
) -> InstrumentSpec {
    InstrumentSpec {
        name,
        unit,
        kind,
        description,
        buckets: None,
        labels,
    }
}

/// A histogram's entry: its buckets follow the unit.
const fn histogram(
    name: &'static str,
    unit: &'static str,
    buckets: &'static [f64],
    description: &'static str,
    labels: &'static [&'static str],
) -> InstrumentSpec {
    InstrumentSpec {
        buckets: Some(buckets),
        ..entry(Kind::Histogram, name, unit, description, labels)
    }
}

pub mod names {
    pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";
    pub const VIDEO_LOAD_TIME: &str = "video.load_time_ms";
    pub const VIDEO_RESUME_TIME: &str = "video.resume_time_ms";
    pub const VIDEO_BUFFERING_EVENTS: &str = "video.buffering_events_total";
    pub const VIDEO_RESUME_FAILURES: &str = "video.resume_failures_total";
    pub const PROGRESS_SAVE_TIME: &str = "progress.save_time_ms";
    pub const PROGRESS_UPDATES: &str = "progress.updates_total";
    pub const VIDEO_ADMIN_ACTIONS: &str = "video.admin_actions_total";
    pub const USER_ACCOUNT_ACTIONS: &str = "user.account_actions_total";
    pub const WORKFLOW_RUN_TOTAL: &str = "workflow.run.total";
    pub const WORKFLOW_RUN_DURATION: &str = "workflow.run.duration_ms";
    pub const WORKFLOW_RUN_STATUS: &str = "workflow.run.status";
    pub const WORKFLOW_STEP_DURATION: &str = "workflow.step.duration_ms";
    pub const WORKFLOW_STEP_STATUS: &str = "workflow.step.status";
    pub const WORKFLOW_RETRY_COUNT: &str = "workflow.retry.count";
    pub const WORKFLOW_IMAGE_UPLOADED: &str = "workflow.image.uploaded";
    pub const WORKFLOW_IMAGE_SIZE: &str = "workflow.image.size_bytes";
    pub const WORKFLOW_DB_UPSERT: &str = "workflow.db.upsert";
    pub const WORKFLOW_DB_UPSERT_DURATION: &str = "workflow.db.upsert.duration_ms";
    pub const TEST_OTEL_REQUESTS: &str = "vidscope.test_otel.requests";
    pub const TELEMETRY_DROPPED: &str = "telemetry.export.dropped";
    pub const TELEMETRY_FALLBACK: &str = "telemetry.export.fallback";
    pub const MESSAGING_PROCESS_DURATION: &str = "messaging.process.duration";
    pub const MESSAGING_CLIENT_SENT: &str = "messaging.client.sent.messages";
    pub const JOB_QUEUE_WAIT: &str = "job.queue_wait_ms";
    pub const JOB_QUEUE_DEPTH: &str = "job.queue_depth";
    pub const JOB_FAILURES: &str = "job.failures_total";
    pub const JOB_DEAD_LETTER: &str = "job.dead_letter_total";
    pub const CRM_BREAKER_STATE: &str = "crm.circuit_breaker.state";
    pub const OUTBOX_PENDING: &str = "outbox.pending";
}

const MESSAGING_LABELS: &[&str] = &[
    "messaging.system",
    "messaging.destination.name",
    "error.type",
];

use names::*;

const HTTP_LABELS: &[&str] = &[
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "error.type",
    "api.category",
];

/// Every instrument, in one table. Seed 003's workflow table is reproduced with its labels;
/// seed 000/001's player and progress metrics keep their names (including the `_ms`/`_total`
/// suffixes the seeds chose).
pub static CATALOG: &[InstrumentSpec] = &[
    histogram(
        HTTP_SERVER_REQUEST_DURATION,
        "s",
        HTTP_DURATION_BUCKETS_S,
        "Duration of HTTP server requests (semantic conventions).",
        HTTP_LABELS,
    ),
    histogram(
        VIDEO_LOAD_TIME,
        "ms",
        DURATION_BUCKETS_MS,
        "Time for a video to be ready for playback, reported by the player.",
        // No label: nothing records one (a `video.source` once allowed here led a dashboard
        // to group by a label no series has).
        &[],
    ),
    histogram(
        VIDEO_RESUME_TIME,
        "ms",
        DURATION_BUCKETS_MS,
        "Time to resume playback at the saved position, reported by the player.",
        &["success"],
    ),
    entry(
        Kind::Counter,
        VIDEO_BUFFERING_EVENTS,
        "{event}",
        "Buffering events reported by players.",
        &[],
    ),
    entry(
        Kind::Counter,
        VIDEO_RESUME_FAILURES,
        "{event}",
        "Resume attempts that did not land on the saved position.",
        &[],
    ),
    histogram(
        PROGRESS_SAVE_TIME,
        "ms",
        DURATION_BUCKETS_MS,
        "Time to save watch progress to the database.",
        &["outcome"],
    ),
    entry(
        Kind::Counter,
        PROGRESS_UPDATES,
        "{update}",
        "Progress updates received, by outcome (saved, duplicate, rejected).",
        &["outcome"],
    ),
    // Issue 28: what admins do to lessons.
    entry(
        Kind::Counter,
        VIDEO_ADMIN_ACTIONS,
        "{action}",
        "Admin actions on lessons (update, delete, reprocess), by outcome (done, refused, not_found).",
        &["action", "outcome"],
    ),
    // Issue 28: what users do to their own account and admins to accounts.
    entry(
        Kind::Counter,
        USER_ACCOUNT_ACTIONS,
        "{action}",
        "Account actions: users' own (password_change, sign_out_all) and admins' (role_change, disable, enable, temporary_password), by outcome (done, refused, not_found).",
        &["action", "outcome"],
    ),
    entry(
        Kind::Counter,
        WORKFLOW_RUN_TOTAL,
        "{run}",
        "Total workflow runs.",
        &["workflow_name"],
    ),
    histogram(
        WORKFLOW_RUN_DURATION,
        "ms",
        DURATION_BUCKETS_MS,
        "Workflow duration.",
        &["workflow_name"],
    ),
    entry(
        Kind::Counter,
        WORKFLOW_RUN_STATUS,
        "{run}",
        "Workflow runs by final status.",
        &["workflow_name", "status"],
    ),
    histogram(
        WORKFLOW_STEP_DURATION,
        "ms",
        DURATION_BUCKETS_MS,
        "Step duration.",
        &["workflow_name", "step_name"],
    ),
    entry(
        Kind::Counter,
        WORKFLOW_STEP_STATUS,
        "{step}",
        "Steps by final status.",
        &["workflow_name", "step_name", "status"],
    ),
    entry(
        Kind::Counter,
        WORKFLOW_RETRY_COUNT,
        "{retry}",
        "Retries of a step.",
        &["workflow_name", "step_name"],
    ),
    // `phone_id` is seed 003's label for these two; vidscope has no phones and never records it
    // (registry.yaml lists it under `catalog_only_labels`). Kept so the seed's table is whole.
    entry(
        Kind::Counter,
        WORKFLOW_IMAGE_UPLOADED,
        "{image}",
        "Images uploaded.",
        &["workflow_name", "phone_id"],
    ),
    histogram(
        WORKFLOW_IMAGE_SIZE,
        "By",
        SIZE_BUCKETS_BYTES,
        "Image sizes.",
        &["workflow_name", "phone_id"],
    ),
    entry(
        Kind::Counter,
        WORKFLOW_DB_UPSERT,
        "{row}",
        "DB upsert operations.",
        &["workflow_name", "table_name"],
    ),
    histogram(
        WORKFLOW_DB_UPSERT_DURATION,
        "ms",
        DURATION_BUCKETS_MS,
        "DB upsert duration.",
        &["workflow_name", "table_name"],
    ),
    entry(
        Kind::Counter,
        TEST_OTEL_REQUESTS,
        "{request}",
        "Calls of GET /api/test-otel, the end-to-end telemetry check (seed 000).",
        &[],
    ),
    // The job pipeline (issue 4). Processing time follows the messaging semantic conventions;
    // the wait between enqueue and claim is vidscope's own, in the seeds' `_ms` style.
    histogram(
        MESSAGING_PROCESS_DURATION,
        "s",
        HTTP_DURATION_BUCKETS_S,
        "Time a worker spent processing a job (messaging semantic conventions).",
        MESSAGING_LABELS,
    ),
    entry(
        Kind::Counter,
        MESSAGING_CLIENT_SENT,
        "{message}",
        "Jobs published to the queue (messaging semantic conventions).",
        MESSAGING_LABELS,
    ),
    histogram(
        JOB_QUEUE_WAIT,
        "ms",
        DURATION_BUCKETS_MS,
        "Time a job waited between being due and being claimed by a worker.",
        &["job.type"],
    ),
    entry(
        Kind::Gauge,
        JOB_QUEUE_DEPTH,
        "{job}",
        "Jobs in the queue by state (ready, delayed, in_flight, dead), sampled by the worker; \
         not exported while the queue cannot be read.",
        &["job.type", "state"],
    ),
    entry(
        Kind::Counter,
        JOB_FAILURES,
        "{failure}",
        "Failed job attempts by error class (transient ones are retried).",
        &["job.type", "error.class"],
    ),
    entry(
        Kind::Counter,
        JOB_DEAD_LETTER,
        "{job}",
        "Jobs moved to the dead letter after a permanent error or their last attempt.",
        &["job.type", "error.class"],
    ),
    entry(
        Kind::Gauge,
        CRM_BREAKER_STATE,
        "{state}",
        "State of the CRM circuit breaker: 0 closed, 1 half-open, 2 open.",
        &[],
    ),
    entry(
        Kind::Gauge,
        OUTBOX_PENDING,
        "{message}",
        "Outbox rows written by the API and not yet published to the queue, sampled by the \
         worker; not exported while the database cannot be read.",
        &[],
    ),
    entry(
        Kind::ObservableCounter,
        TELEMETRY_DROPPED,
        "{item}",
        "Telemetry items lost because their export failed (spans, log records, metric streams).",
        &["signal"],
    ),
    entry(
        Kind::ObservableCounter,
        TELEMETRY_FALLBACK,
        "{item}",
        "Telemetry items written to the fallback file after an OTLP export failed.",
        &["signal"],
    ),
];

pub fn spec(name: &str) -> Option<&'static InstrumentSpec> {
    CATALOG.iter().find(|s| s.name == name)
}

/// The SDK view enforcing the catalog: buckets, label allow-list, cardinality cap;
/// instruments outside the catalog are dropped.
pub(crate) fn view(instrument: &Instrument) -> Option<Stream> {
    let mut builder = Stream::builder().with_cardinality_limit(CARDINALITY_LIMIT);
    let Some(spec) = spec(instrument.name()) else {
        return Stream::builder()
            .with_aggregation(Aggregation::Drop)
            .build()
            .ok();
    };
    builder =
        builder.with_allowed_attribute_keys(spec.labels.iter().map(|l| Key::from_static_str(l)));
    if let Some(b) = spec.buckets {
        builder = builder.with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: b.to_vec(),
            record_min_max: true,
        });
    }
    builder.build().ok()
}

/// Every instrument of the catalog, created once from the service's meter. Shared behind one
/// `Arc`: the handle is cloned into every request's state, and cloning ~30 instrument handles
/// (an atomic increment each, and a decrement on drop) was ~5 % of the CPU of a cheap request.
#[derive(Clone)]
pub struct Metrics(Arc<Instruments>);

impl std::ops::Deref for Metrics {
    type Target = Instruments;

    fn deref(&self) -> &Instruments {
        &self.0
    }
}

/// `http.server.request.duration`, recorded through a handle bound to each label set.
///
/// Why: it is recorded on every request, and an unbound `record` hashes its four labels with
/// SipHash in the SDK's attribute map and compares them (~1 900 instructions per request,
/// callgrind), where a bound handle writes straight into its label set's buckets. Finding the
/// handle here costs a foldhash of the route and a scan of that route's few (method, status)
/// pairs. The view's label allow-list is applied when a handle is bound, once per label set
/// (unbound, it cloned and looked up every label on every measurement). At most
/// [`CARDINALITY_LIMIT`] label sets are bound; past that, requests are recorded unbound, so
/// the SDK's cardinality cap and overflow set apply as before.
pub struct RequestDurations {
    histogram: Histogram<f64>,
    bound: RwLock<Bound>,
}

/// A route's bound handles: method, status, handle.
type BoundRoute = (&'static str, u16, BoundHistogram<f64>);

/// Bound handles by route template, then (method, status).
#[derive(Default)]
struct Bound {
    by_route: HashMap<Box<str>, Vec<BoundRoute>, foldhash::fast::FixedState>,
}

impl Bound {
    fn find(&self, route: &str, method: &str, status: u16) -> Option<&BoundHistogram<f64>> {
        self.by_route
            .get(route)?
            .iter()
            .find(|(m, s, _)| *s == status && *m == method)
            .map(|(_, _, h)| h)
    }
}

impl RequestDurations {
    fn new(histogram: Histogram<f64>) -> Self {
        Self {
            histogram,
            bound: RwLock::default(),
        }
    }

    /// Records one request. `route` is the matched route template (`""` when none matched).
    /// `labels` builds the label set the first time a (route, method, status) is seen; its
    /// result is reused for every later request with the same three, so it must depend on
    /// them alone.
    pub fn record(
        &self,
        seconds: f64,
        route: &str,
        method: &'static str,
        status: u16,
        labels: impl FnOnce() -> Vec<KeyValue>,
    ) {
        if let Ok(bound) = self.bound.read()
            && let Some(handle) = bound.find(route, method, status)
        {
            handle.record(seconds);
            return;
        }
        let labels = labels();
        let Ok(mut bound) = self.bound.write() else {
            return self.histogram.record(seconds, &labels);
        };
        // Another request may have bound it between the two locks.
        if let Some(handle) = bound.find(route, method, status) {
            return handle.record(seconds);
        }
        // Counted only here, on the first request of a label set.
        if bound.by_route.values().map(Vec::len).sum::<usize>() >= CARDINALITY_LIMIT {
            drop(bound);
            return self.histogram.record(seconds, &labels);
        }
        let handle = self.histogram.bind(&labels);
        handle.record(seconds);
        bound
            .by_route
            .entry(route.into())
            .or_default()
            .push((method, status, handle));
    }
}

/// The instruments themselves; reached through [`Metrics`].
pub struct Instruments {
    pub http_server_request_duration: RequestDurations,
    pub video_load_time_ms: Histogram<f64>,
    pub video_resume_time_ms: Histogram<f64>,
    pub video_buffering_events_total: Counter<u64>,
    pub video_resume_failures_total: Counter<u64>,
    pub progress_save_time_ms: Histogram<f64>,
    pub progress_updates_total: Counter<u64>,
    pub video_admin_actions_total: Counter<u64>,
    pub user_account_actions_total: Counter<u64>,
    pub workflow_run_total: Counter<u64>,
    pub workflow_run_duration_ms: Histogram<f64>,
    pub workflow_run_status: Counter<u64>,
    pub workflow_step_duration_ms: Histogram<f64>,
    pub workflow_step_status: Counter<u64>,
    pub workflow_retry_count: Counter<u64>,
    pub workflow_image_uploaded: Counter<u64>,
    pub workflow_image_size_bytes: Histogram<f64>,
    pub workflow_db_upsert: Counter<u64>,
    pub workflow_db_upsert_duration_ms: Histogram<f64>,
    pub test_otel_requests: Counter<u64>,
    pub messaging_process_duration: Histogram<f64>,
    pub messaging_client_sent_messages: Counter<u64>,
    pub job_queue_wait_ms: Histogram<f64>,
    pub job_queue_depth: SampledGauge,
    pub job_failures_total: Counter<u64>,
    pub job_dead_letter_total: Counter<u64>,
    pub crm_circuit_breaker_state: Gauge<i64>,
    pub outbox_pending: SampledGauge,
    _self_metrics: [ObservableCounter<u64>; 2],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

fn must(name: &'static str, kind: Kind) -> &'static InstrumentSpec {
    match spec(name) {
        Some(s) if s.kind == kind => s,
        // A programming error caught by the catalog tests, not a runtime condition.
        _ => panic!("metric {name} is not in the catalog as {kind:?}"),
    }
}

/// The builder of the catalog's instrument `name`, of kind `$kind`, with its unit and
/// description; `$make` is the meter's builder method for that kind. A macro because the
/// builders share these methods but no trait.
macro_rules! described {
    ($meter:expr, $make:ident, $name:expr, $kind:expr) => {{
        let s = must($name, $kind);
        $meter
            .$make(s.name)
            .with_unit(s.unit)
            .with_description(s.description)
    }};
}

fn hist(meter: &Meter, name: &'static str) -> Histogram<f64> {
    described!(meter, f64_histogram, name, Kind::Histogram).build()
}

fn count(meter: &Meter, name: &'static str) -> Counter<u64> {
    described!(meter, u64_counter, name, Kind::Counter).build()
}

fn gauge_i64(meter: &Meter, name: &'static str) -> Gauge<i64> {
    described!(meter, i64_gauge, name, Kind::Gauge).build()
}

fn sampled(meter: &Meter, name: &'static str) -> SampledGauge {
    SampledGauge::new(described!(meter, i64_observable_gauge, name, Kind::Gauge))
}

impl Metrics {
    pub(crate) fn new(meter: &Meter, stats: Arc<ExportStats>) -> Self {
        let observe = |name: &'static str, read: fn(&ExportStats, Signal) -> u64| {
            let stats = stats.clone();
            described!(meter, u64_observable_counter, name, Kind::ObservableCounter)
                .with_callback(move |o| {
                    for sig in Signal::ALL {
                        o.observe(read(&stats, sig), &[KeyValue::new("signal", sig.as_str())]);
                    }
                })
                .build()
        };
        Self(Arc::new(Instruments {
            http_server_request_duration: RequestDurations::new(hist(
                meter,
                HTTP_SERVER_REQUEST_DURATION,
            )),
            video_load_time_ms: hist(meter, VIDEO_LOAD_TIME),
            video_resume_time_ms: hist(meter, VIDEO_RESUME_TIME),
            video_buffering_events_total: count(meter, VIDEO_BUFFERING_EVENTS),
            video_resume_failures_total: count(meter, VIDEO_RESUME_FAILURES),
            progress_save_time_ms: hist(meter, PROGRESS_SAVE_TIME),
            progress_updates_total: count(meter, PROGRESS_UPDATES),
            video_admin_actions_total: count(meter, VIDEO_ADMIN_ACTIONS),
            user_account_actions_total: count(meter, USER_ACCOUNT_ACTIONS),
            workflow_run_total: count(meter, WORKFLOW_RUN_TOTAL),
            workflow_run_duration_ms: hist(meter, WORKFLOW_RUN_DURATION),
            workflow_run_status: count(meter, WORKFLOW_RUN_STATUS),
            workflow_step_duration_ms: hist(meter, WORKFLOW_STEP_DURATION),
            workflow_step_status: count(meter, WORKFLOW_STEP_STATUS),
            workflow_retry_count: count(meter, WORKFLOW_RETRY_COUNT),
            workflow_image_uploaded: count(meter, WORKFLOW_IMAGE_UPLOADED),
            workflow_image_size_bytes: hist(meter, WORKFLOW_IMAGE_SIZE),
            workflow_db_upsert: count(meter, WORKFLOW_DB_UPSERT),
            workflow_db_upsert_duration_ms: hist(meter, WORKFLOW_DB_UPSERT_DURATION),
            test_otel_requests: count(meter, TEST_OTEL_REQUESTS),
            messaging_process_duration: hist(meter, MESSAGING_PROCESS_DURATION),
            messaging_client_sent_messages: count(meter, MESSAGING_CLIENT_SENT),
            job_queue_wait_ms: hist(meter, JOB_QUEUE_WAIT),
            job_queue_depth: sampled(meter, JOB_QUEUE_DEPTH),
            job_failures_total: count(meter, JOB_FAILURES),
            job_dead_letter_total: count(meter, JOB_DEAD_LETTER),
            crm_circuit_breaker_state: gauge_i64(meter, CRM_BREAKER_STATE),
            outbox_pending: sampled(meter, OUTBOX_PENDING),
            _self_metrics: [
                observe(TELEMETRY_DROPPED, ExportStats::dropped),
                observe(TELEMETRY_FALLBACK, ExportStats::fallback),
            ],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_consistent() {
        let mut names: Vec<_> = CATALOG.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate names in the catalog");
        for s in CATALOG {
            if s.unit == "ms" {
                assert_eq!(
                    s.buckets,
                    Some(DURATION_BUCKETS_MS),
                    "{} uses seed 003 buckets",
                    s.name
                );
            }
            assert_eq!(s.kind == Kind::Histogram, s.buckets.is_some(), "{}", s.name);
            for l in s.labels {
                // `phone_id`: the seed's label, allowed but never recorded (see its entries).
                assert!(
                    !l.ends_with("_id") || *l == "phone_id",
                    "{}: id label {l}",
                    s.name
                );
            }
        }
        let workflow: Vec<_> = CATALOG
            .iter()
            .filter(|s| s.name.starts_with("workflow."))
            .map(|s| s.name)
            .collect();
        assert_eq!(
            workflow.len(),
            10,
            "seed 003's table has ten metrics: {workflow:?}"
        );
    }

    /// Past the cap, label sets are recorded unbound instead of growing the map.
    #[test]
    fn request_durations_bind_at_most_the_cardinality_limit() {
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "t");
        let durations = Metrics::new(&meter, Arc::default());
        let durations = &durations.http_server_request_duration;
        let routes = ["/a", "/b", "/c"];
        for status in 0..CARDINALITY_LIMIT as u16 {
            for route in routes {
                durations.record(0.1, route, "GET", status, || {
                    vec![KeyValue::new("http.route", route)]
                });
            }
        }
        let bound = durations.bound.read().unwrap();
        let held: usize = bound.by_route.values().map(Vec::len).sum();
        assert_eq!(held, CARDINALITY_LIMIT);
        assert!(bound.find("/a", "GET", 7).is_some());
        assert!(bound.find("/c", "GET", 400).is_none(), "recorded unbound");
    }

    #[test]
    fn every_instrument_builds() {
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "t");
        let _ = Metrics::new(&meter, Arc::default());
    }

    fn kind_name(k: Kind) -> &'static str {
        match k {
            Kind::Counter => "counter",
            Kind::ObservableCounter => "observable_counter",
            Kind::Histogram => "histogram",
            Kind::Gauge => "gauge",
        }
    }

    /// `crates/telemetry/catalog.json` is the catalog as data: the scripts that check
    /// dashboards, alerts and the telemetry registry against it read that file instead of
    /// parsing this one as text (a parser that broke each time the table changed shape). This
    /// keeps the file equal to [`CATALOG`]; `VIDSCOPE_BLESS_CATALOG=1` rewrites it after a
    /// deliberate change, to be reviewed as a diff.
    #[test]
    fn catalog_json_is_the_catalog() {
        let entries: Vec<serde_json::Value> = CATALOG
            .iter()
            .map(|spec| {
                serde_json::json!({
                    "name": spec.name,
                    "unit": spec.unit,
                    "kind": kind_name(spec.kind),
                    "description": spec.description,
                    "buckets": spec.buckets,
                    "labels": spec.labels,
                })
            })
            .collect();
        let generated = serde_json::to_string_pretty(&entries).expect("a JSON value prints") + "\n";
        vidscope_testkit::snapshot::assert_checked_in(
            concat!(env!("CARGO_MANIFEST_DIR"), "/catalog.json"),
            &generated,
            "VIDSCOPE_BLESS_CATALOG",
        );
    }
}

//! The worker end to end: real API (uploads), real ffmpeg, a real store, both queue adapters,
//! and the trace asserted from the OTLP capture receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::header;
use serde_json::Value;
use vidscope_core::domain::Role;
use vidscope_core::jobs::crm_sync::{CrmEvent, CrmSyncPayload};
use vidscope_core::jobs::{self, JobKind, JobMessage, JobPayload, NewJob};
use vidscope_core::outbox;
use vidscope_core::queue::{Queue, RedisQueue};
use vidscope_core::videos::VideoStatus;
use vidscope_testkit::db::insert_video_row;
use vidscope_testkit::{TestApp, TraceResponse, spawn_app, spawn_app_with};
use vidscope_worker::jobs::{Job, JobContext, Registry};
use vidscope_worker::scratch::Scratch;
use vidscope_worker::{JobError, Worker, WorkerSettings};

use crate::common::{
    CRM_SYNC, OwnRedis, PROBE, THUMBNAIL, db_queue, make_video, redis_queue, unique_prefix,
};

const WAIT: Duration = Duration::from_secs(60);
const BOUNDARY: &str = "vidscope-worker-test-boundary";

pub(crate) fn context(app: &TestApp) -> JobContext {
    JobContext {
        db: app.state.db.clone(),
        store: app.state.store.clone(),
        metrics: app.state.metrics.clone(),
        // As `vidscope up` wires it: a finished job's status change drops the API's cached
        // metadata, so a poll of the API sees it at once rather than when the cache expires.
        events: app.status_events(),
        ffmpeg: vidscope_worker::ffmpeg::Ffmpeg {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            timeout: Duration::from_secs(60),
        },
        crm: None,
        scratch: Arc::new(
            Scratch::open(&std::env::temp_dir().join("vidscope-worker-tests"))
                .expect("a temporary directory for the jobs"),
        ),
    }
}

pub(crate) fn fast_settings() -> WorkerSettings {
    WorkerSettings {
        relay_interval: Duration::from_millis(100),
        backoff_base: Duration::from_millis(20),
        shutdown_deadline: Duration::from_secs(6),
        ..WorkerSettings::default()
    }
}

/// A worker running in the background until stopped (or its `stop` sender is dropped).
pub(crate) struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Shuts the worker down and waits for its drain; fails if its loop panicked.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.handle
            .await
            .expect("the worker loop survives its jobs, panics included");
    }
}

/// A worker on `queue` with the test app's database, store and metrics, as `vidscope up` wires
/// one, running `registry`'s jobs with `settings`.
pub(crate) fn start(
    app: &TestApp,
    queue: Queue,
    registry: Registry,
    settings: WorkerSettings,
) -> Running {
    let worker = Worker::new(context(app), queue, registry, settings);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = rx.await;
            })
            .await;
    });
    Running { stop, handle }
}

/// [`start`] with the real jobs and [`fast_settings`], as most tests want.
pub(crate) fn start_standard(app: &TestApp, queue: Queue) -> Running {
    start(app, queue, Registry::standard(), fast_settings())
}

/// Enqueues one `crm.sync` job and starts a worker on `queue` whose `crm.sync` job behaves as
/// `behaviour`: the job, its run count and the worker.
async fn run_scripted(
    app: &TestApp,
    queue: &Queue,
    behaviour: Behaviour,
    settings: WorkerSettings,
) -> (NewJob, Arc<AtomicU32>, Running) {
    let (registry, runs) = scripted(behaviour);
    let job = crm_job();
    outbox::enqueue(&app.state.db, std::slice::from_ref(&job))
        .await
        .unwrap();
    let worker = start(app, queue.clone(), registry, settings);
    (job, runs, worker)
}

pub(crate) async fn upload(
    app: &TestApp,
    cookie: &str,
    filename: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: video/mp4\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    app.client
        .post(app.url("/api/upload"))
        .header(header::COOKIE, cookie)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// `GET path` as the user of `cookie`.
async fn get(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

async fn video(app: &TestApp, cookie: &str, id: &str) -> Value {
    get(app, cookie, &format!("/api/videos/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// Polls `probe` every 50 ms until it returns something, failing as `what` after `patience`.
pub(crate) async fn poll<T, F: Future<Output = Option<T>>>(
    what: &str,
    patience: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_ready(app: &TestApp, cookie: &str, id: &str) -> Value {
    poll(&format!("video {id} ready"), WAIT, || async {
        let v = video(app, cookie, id).await;
        assert_ne!(v["status"], "failed", "video processing failed: {v}");
        (v["status"] == "ready").then_some(v)
    })
    .await
}

/// Waits for video `id` to be ready, reading the database: the API caches a video's metadata
/// for 30 s, and a worker that announces no status changes to it (these tests') does not
/// refresh that.
pub(crate) async fn wait_ready_in_db(app: &TestApp, id: &str) {
    let id = vidscope_core::videos::VideoId::parse(id).unwrap();
    poll(&format!("video {id} ready"), WAIT, || async {
        let v = vidscope_core::videos::get(&app.state.db, &id)
            .await
            .unwrap()?;
        assert_ne!(v.status, VideoStatus::Failed, "video {id} failed");
        (v.status == VideoStatus::Ready).then_some(())
    })
    .await;
}

pub(crate) fn test_video() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    make_video(&path);
    std::fs::read(&path).unwrap()
}

async fn upload_to_thumbnail(app: &TestApp, queue: Queue) {
    let admin = app.create_user(Role::Admin).await;
    let worker = start_standard(app, queue);

    let res = upload(app, &admin.cookie, "lesson-one.mp4", &test_video()).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let upload_trace = TraceResponse::of(res.headers()).trace_id;
    let body: Value = res.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();

    let v = wait_ready(app, &admin.cookie, &id).await;
    assert!(
        (v["duration_seconds"].as_f64().unwrap() - 2.0).abs() < 0.2,
        "{v}"
    );
    let thumb = get(app, &admin.cookie, &format!("/api/videos/{id}/thumbnail")).await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()[header::CONTENT_TYPE], "image/jpeg");
    let jpeg = thumb.bytes().await.unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");

    let row = vidscope_core::videos::get(
        &app.state.db,
        &vidscope_core::videos::VideoId::parse(&id).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(row.video_codec.as_deref(), Some("h264"));
    assert_eq!(row.audio_codec.as_deref(), Some("aac"));
    assert_eq!((row.width, row.height), (Some(320), Some(240)));

    worker.stop().await;
    app.flush_telemetry().await;

    // One trace: upload request → relay publish → probe → (outbox) → publish → thumbnail.
    let need = [
        "POST /api/upload",
        "send video.probe",
        "process video.probe",
        "ffmpeg.probe",
        "send video.thumbnail",
        "process video.thumbnail",
        "ffmpeg.extract_frame",
        "storage.put",
        "s3.put_object",
    ];
    let names = |otlp: &vidscope_testkit::otlp::CaptureReceiver| -> Vec<String> {
        let spans = otlp.spans_in_trace(&upload_trace);
        spans.into_iter().map(|s| s.name).collect()
    };
    app.otlp
        .wait_until(
            |r| need.iter().all(|n| names(r).iter().any(|m| m == n)),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| {
            let names = names(&app.otlp);
            panic!("trace {upload_trace} lacks spans; has {names:?}: {e}")
        });
    let spans = app.otlp.spans_in_trace(&upload_trace);
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let send = by_name("send video.probe");
    let process = by_name("process video.probe");
    // Outbox hop: the API's `create` (PRODUCER) -> the relay's `receive` (CONSUMER) -> `send`.
    let create = by_name("create video.probe");
    let receive = by_name("receive video.probe");
    assert_eq!((create.kind, receive.kind), (4, 5));
    assert_eq!(
        receive.parent_span_id.as_deref(),
        Some(create.span_id.as_str())
    );
    assert_eq!(
        send.parent_span_id.as_deref(),
        Some(receive.span_id.as_str())
    );
    assert_eq!(send.kind, 4, "PRODUCER");
    assert_eq!(process.kind, 5, "CONSUMER");
    assert_eq!(
        process.parent_span_id.as_deref(),
        Some(send.span_id.as_str())
    );
    assert_eq!(
        process.attr_str("messaging.message.id"),
        send.attr_str("messaging.message.id")
    );
    assert_eq!(
        process.attr_str("messaging.destination.name"),
        Some("video.probe")
    );
    assert_eq!(
        process.attr_str("messaging.operation.type"),
        Some("process")
    );
    assert_eq!(send.attr_str("messaging.operation.type"), Some("send"));
    assert!(process.attr_i64("job.queue_wait_ms").is_some());
    assert_eq!(process.attr_str("job.outcome"), Some("success"));
    let ffprobe = by_name("ffmpeg.probe");
    assert_eq!(ffprobe.attr_i64("process.exit.code"), Some(0));
    assert_eq!(
        ffprobe.parent_span_id.as_deref(),
        Some(process.span_id.as_str())
    );
}

#[tokio::test]
async fn upload_to_thumbnail_on_the_database_queue() {
    let app = spawn_app().await;
    let queue = db_queue(&app.state.db, "w1", Duration::from_secs(30));
    upload_to_thumbnail(&app, queue).await;
    workflow_metrics_match_seed_003(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn upload_to_thumbnail_on_redis_streams() {
    let app = TestApp::builder().with_redis().spawn().await;
    let queue = redis_queue(
        app.settings.redis_url.as_deref().unwrap(),
        &unique_prefix(),
        "w1",
        Duration::from_secs(30),
    )
    .await;
    upload_to_thumbnail(&app, queue).await;
    app.stop().await;
}

/// Seed 003's table: names, units, labels and the duration buckets.
async fn workflow_metrics_match_seed_003(app: &TestApp) {
    let buckets = vec![
        5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    ];
    app.otlp
        .wait_for_metric_point(
            "workflow.run.duration_ms",
            |_| true,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let expect: &[(&str, &str, &[&str])] = &[
        ("workflow.run.total", "{run}", &["workflow_name"]),
        ("workflow.run.duration_ms", "ms", &["workflow_name"]),
        ("workflow.run.status", "{run}", &["workflow_name", "status"]),
        (
            "workflow.step.duration_ms",
            "ms",
            &["workflow_name", "step_name"],
        ),
        (
            "workflow.step.status",
            "{step}",
            &["workflow_name", "step_name", "status"],
        ),
        ("workflow.image.uploaded", "{image}", &["workflow_name"]),
        ("workflow.image.size_bytes", "By", &["workflow_name"]),
        (
            "workflow.db.upsert",
            "{row}",
            &["workflow_name", "table_name"],
        ),
        (
            "workflow.db.upsert.duration_ms",
            "ms",
            &["workflow_name", "table_name"],
        ),
        (
            "messaging.process.duration",
            "s",
            &["messaging.system", "messaging.destination.name"],
        ),
        ("job.queue_wait_ms", "ms", &["job.type"]),
        (
            "messaging.client.sent.messages",
            "{message}",
            &["messaging.system", "messaging.destination.name"],
        ),
    ];
    for (name, unit, labels) in expect {
        let metrics = app.otlp.metrics_named(name);
        let m = metrics
            .last()
            .unwrap_or_else(|| panic!("metric {name} never arrived: {}", app.otlp.summary()));
        assert_eq!(&m.unit, unit, "{name}");
        let p = m
            .points
            .first()
            .unwrap_or_else(|| panic!("{name}: no points"));
        for l in *labels {
            assert!(
                p.attr(l).is_some(),
                "{name}: label {l} missing in {:?}",
                p.attributes
            );
        }
        for (k, _) in &p.attributes {
            assert!(!k.ends_with("id"), "{name}: id label {k}");
        }
        if unit == &"ms" {
            match &p.value {
                vidscope_testkit::otlp::PointValue::Histogram {
                    explicit_bounds, ..
                } => {
                    assert_eq!(explicit_bounds, &buckets, "{name}")
                }
                other => panic!("{name} is not a histogram: {other:?}"),
            }
        }
    }
    let steps: Vec<String> = app
        .otlp
        .metric_points("workflow.step.duration_ms")
        .iter()
        .filter_map(|p| p.attr_str("step_name").map(str::to_owned))
        .collect();
    for s in [
        "storage.get",
        "ffmpeg.probe",
        "ffmpeg.extract_frame",
        "storage.put",
        "db.update",
    ] {
        assert!(steps.iter().any(|x| x == s), "step {s} missing: {steps:?}");
    }
    // Each job declares the steps it records (they are created at 0 at start-up from the
    // declaration): a real run records exactly those.
    for (workflow, declared) in [
        (
            "video.probe",
            <vidscope_worker::jobs::probe::Probe as Job>::STEPS,
        ),
        (
            "video.thumbnail",
            <vidscope_worker::jobs::thumbnail::Thumbnail as Job>::STEPS,
        ),
    ] {
        let recorded: std::collections::BTreeSet<String> = app
            .otlp
            .metric_points("workflow.step.duration_ms")
            .iter()
            .filter(|p| p.attr_str("workflow_name") == Some(workflow))
            .filter_map(|p| p.attr_str("step_name").map(str::to_owned))
            .collect();
        let declared: std::collections::BTreeSet<String> =
            declared.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(recorded, declared, "{workflow}: Job::STEPS");
    }
    let status = app.otlp.metric_points("workflow.run.status");
    assert!(
        status
            .iter()
            .any(|p| p.attr_str("status") == Some("success")
                && p.attr_str("workflow_name") == Some("video.thumbnail")),
        "{status:?}"
    );
}

/// A `crm.sync` job the tests control: counts runs, fails, hangs or panics as told.
struct Scripted {
    runs: Arc<AtomicU32>,
    behaviour: Behaviour,
}

#[derive(Clone, Copy)]
enum Behaviour {
    /// The first run never finishes (its worker is killed); later runs succeed.
    HangFirst,
    AlwaysTransient,
    Permanent,
    /// The first run panics; later runs succeed.
    PanicFirst,
    AlwaysPanic,
    /// Succeeds after 150 ms (a backlog that takes a while to drain).
    Slow,
}

const PANIC_MESSAGE: &str = "scripted panic: the CRM answer had no contact";

impl Job for Scripted {
    type Payload = CrmSyncPayload;

    async fn run(
        &self,
        _ctx: &JobContext,
        _job: &JobMessage,
        _payload: CrmSyncPayload,
    ) -> Result<(), JobError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        // Panic after an await, as a real job would (mid-run, not while being built).
        tokio::task::yield_now().await;
        match self.behaviour {
            Behaviour::HangFirst if n == 1 => {
                std::future::pending::<()>().await;
                Ok(())
            }
            Behaviour::HangFirst => Ok(()),
            Behaviour::AlwaysTransient => {
                Err(JobError::transient("http.503", "the CRM answered 503"))
            }
            Behaviour::Permanent => Err(JobError::permanent("user.not_found", "no such user")),
            Behaviour::PanicFirst if n > 1 => Ok(()),
            Behaviour::AlwaysPanic | Behaviour::PanicFirst => panic!("{PANIC_MESSAGE}"),
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok(())
            }
        }
    }
}

fn scripted(behaviour: Behaviour) -> (Registry, Arc<AtomicU32>) {
    let runs = Arc::new(AtomicU32::new(0));
    let registry = Registry::default().with(Scripted {
        runs: runs.clone(),
        behaviour,
    });
    (registry, runs)
}

/// A well-formed `crm.sync` job for the scripted handler.
fn crm_job() -> NewJob {
    NewJob::new(&CrmSyncPayload {
        user_id: uuid::Uuid::new_v4().to_string(),
        event: CrmEvent::Registered,
    })
}

/// How long a delivery stays invisible to the other consumers, in most tests.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(3);

/// The queues under test, each on storage no other test reads (the app's own database, a Redis
/// stream under a fresh prefix), for consumer group `consumer`.
pub(crate) async fn queues(app: &TestApp, consumer: &str) -> Vec<(&'static str, Queue)> {
    queues_with(app, consumer, DEFAULT_VISIBILITY).await
}

async fn queues_with(
    app: &TestApp,
    consumer: &str,
    visibility: Duration,
) -> Vec<(&'static str, Queue)> {
    queues_on(app, consumer, &unique_prefix(), visibility).await
}

/// The queues under test with the Redis stream under `prefix`, for consumer groups that share
/// one stream.
async fn queues_on(
    app: &TestApp,
    consumer: &str,
    prefix: &str,
    visibility: Duration,
) -> Vec<(&'static str, Queue)> {
    vec![
        ("db", db_queue(&app.state.db, consumer, visibility)),
        (
            "redis",
            redis_queue(&crate::common::redis_url(), prefix, consumer, visibility).await,
        ),
    ]
}

/// The dead letter of job `id` (of `kind`), polled for at most `patience`.
async fn wait_dead_letter(
    queue: &Queue,
    kind: JobKind,
    id: &str,
    patience: Duration,
    what: &str,
) -> vidscope_core::queue::DeadLetter {
    poll(&format!("{what}: dead-lettered"), patience, || async {
        let dead = queue.dead_letters(kind, 50).await.unwrap();
        dead.into_iter().find(|d| d.message.id == id)
    })
    .await
}

pub(crate) async fn wait_done(app: &TestApp, id: &str) {
    wait_done_within(app, id, WAIT, "job").await;
}

/// Polls until job `id` is recorded done, failing as `what` after `patience`.
async fn wait_done_within(app: &TestApp, id: &str, patience: Duration, what: &str) {
    poll(&format!("{what} {id} completed"), patience, || async {
        jobs::is_done(&app.state.db, id)
            .await
            .unwrap()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_job_whose_worker_dies_mid_run_is_reclaimed_and_completes_once() {
    let app = spawn_app().await;
    let prefix = unique_prefix();
    let a = queues_on(&app, "doomed", &prefix, DEFAULT_VISIBILITY).await;
    let b = queues_on(&app, "survivor", &prefix, DEFAULT_VISIBILITY).await;
    for ((name, qa), (_, qb)) in a.into_iter().zip(b) {
        let (registry, runs) = scripted(Behaviour::HangFirst);
        let job = crm_job();
        outbox::enqueue(&app.state.db, std::slice::from_ref(&job))
            .await
            .unwrap();

        let doomed = start(&app, qa, registry.clone(), fast_settings());
        let deadline = tokio::time::Instant::now() + WAIT;
        while runs.load(Ordering::SeqCst) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: never claimed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Killed abruptly: no drain, no release, no more heartbeats.
        doomed.handle.abort();
        let _ = doomed.handle.await;

        let survivor = start(&app, qb, registry, fast_settings());
        wait_done(&app, &job.id).await;
        survivor.stop().await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "{name}: one hung run, one completed run"
        );
        assert!(
            jobs::is_done(&app.state.db, &job.id).await.unwrap(),
            "{name}"
        );
    }
    app.stop().await;
}

/// A delivery of a job recorded done already (a redelivery, a duplicate publish) is
/// acknowledged without running, and its span says so: `job.outcome` is `duplicate`, where it
/// used to be overwritten with `success` once the delivery was acknowledged.
#[tokio::test]
async fn a_job_done_already_is_not_run_again_and_its_span_says_duplicate() {
    let app = spawn_app().await;
    for (name, queue) in queues(&app, "again").await {
        let (registry, runs) = scripted(Behaviour::Permanent);
        let job = crm_job();
        let first_time = jobs::mark_done(&app.state.db, &job.id, CrmSyncPayload::KIND)
            .await
            .unwrap();
        assert!(first_time, "{name}");
        outbox::enqueue(&app.state.db, std::slice::from_ref(&job))
            .await
            .unwrap();

        let worker = start(&app, queue, registry, fast_settings());
        let processed = |r: &vidscope_testkit::otlp::CaptureReceiver| {
            r.spans_where(|s| {
                s.name == "process crm.sync"
                    && s.attr_str("messaging.message.id") == Some(job.id.as_str())
            })
        };
        app.otlp
            .wait_until(|r| !processed(r).is_empty(), WAIT)
            .await
            .unwrap_or_else(|e| panic!("{name}: no process span for {}: {e}", job.id));
        worker.stop().await;

        let spans = processed(&app.otlp);
        assert_eq!(spans.len(), 1, "{name}: {spans:#?}");
        assert_eq!(
            spans[0].attr_str("job.outcome"),
            Some("duplicate"),
            "{name}"
        );
        assert_eq!(
            spans[0].status_code, 0,
            "{name}: a duplicate is not an error"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0, "{name}: it ran again");
    }
    app.stop().await;
}

#[tokio::test]
async fn failing_jobs_land_in_the_dead_letter_with_their_error_class() {
    let app = spawn_app().await;
    for (name, queue) in queues(&app, "w").await {
        for (behaviour, class, expected_runs) in [
            (Behaviour::AlwaysTransient, "transient", 3),
            (Behaviour::Permanent, "permanent", 1),
        ] {
            let settings = WorkerSettings {
                max_attempts: 3,
                ..fast_settings()
            };
            let (job, runs, worker) = run_scripted(&app, &queue, behaviour, settings).await;
            let dead =
                wait_dead_letter(&queue, CRM_SYNC, &job.id, WAIT, &format!("{name}/{class}")).await;
            worker.stop().await;
            assert_eq!(dead.error_class, class, "{name}");
            assert_eq!(dead.attempt, expected_runs, "{name}/{class}");
            assert_eq!(runs.load(Ordering::SeqCst), expected_runs, "{name}/{class}");
            assert!(!jobs::is_done(&app.state.db, &job.id).await.unwrap());
        }
    }
    app.flush_telemetry().await;
    let dead = app.otlp.metric_points("job.dead_letter_total");
    assert!(
        dead.iter()
            .any(|p| p.attr_str("error.class") == Some("transient")),
        "{dead:?}"
    );
    app.stop().await;
}

/// A panic in a job is that job's failure, settled at once: retried with backoff, and
/// dead-lettered with the panic's message once its attempts are spent; counted and logged in
/// the job's trace. The visibility timeout is two minutes here, so a job left leased by its
/// panic (what happened before) misses every deadline below.
#[tokio::test]
async fn a_panicking_job_is_retried_then_dead_lettered_without_waiting_for_the_visibility_timeout()
{
    const VISIBILITY: Duration = Duration::from_secs(120);
    const PROMPTLY: Duration = Duration::from_secs(15);
    let app = spawn_app().await;
    let mut panicked_jobs = Vec::new();
    for (name, queue) in queues_with(&app, "w", VISIBILITY).await {
        let settings = WorkerSettings {
            max_attempts: 3,
            ..fast_settings()
        };

        // Panics once, then succeeds: the retry completes it.
        let (once, runs, worker) =
            run_scripted(&app, &queue, Behaviour::PanicFirst, settings.clone()).await;
        wait_done_within(
            &app,
            &once.id,
            PROMPTLY,
            &format!("{name}: a job that panicked once (retried)"),
        )
        .await;
        worker.stop().await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "{name}: panic, then success"
        );

        // Panics every time: dead-lettered after its three attempts, with the panic's message.
        let (always, runs, worker) =
            run_scripted(&app, &queue, Behaviour::AlwaysPanic, settings).await;
        let dead = wait_dead_letter(&queue, CRM_SYNC, &always.id, PROMPTLY, name).await;
        worker.stop().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "{name}");
        assert_eq!(dead.attempt, 3, "{name}");
        assert_eq!(dead.error_class, "transient", "{name}");
        assert_eq!(
            dead.error,
            format!("the handler panicked: {PANIC_MESSAGE}"),
            "{name}"
        );
        assert!(!jobs::is_done(&app.state.db, &always.id).await.unwrap());
        let depth = queue.depth().await.unwrap();
        let in_flight: i64 = depth
            .iter()
            .filter(|d| d.state == "in_flight")
            .map(|d| d.count)
            .sum();
        assert_eq!(in_flight, 0, "{name}: a job is still leased: {depth:?}");
        panicked_jobs.push((name, once.id, 1));
        panicked_jobs.push((name, always.id, 3));
    }
    app.flush_telemetry().await;

    // Counted: per queue 1 + 3 failed attempts, all transient; one dead letter per queue.
    let crm_transient = |p: &vidscope_testkit::otlp::CapturedPoint| {
        p.attr_str("job.type") == Some("crm.sync") && p.attr_str("error.class") == Some("transient")
    };
    let metric_wait = Duration::from_secs(10);
    for (metric, count) in [("job.failures_total", 8.0), ("job.dead_letter_total", 2.0)] {
        app.otlp
            .wait_for_metric_point(
                metric,
                |p| crm_transient(p) && p.value.as_number() == Some(count),
                metric_wait,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}: {:?}", app.otlp.metric_points(metric)));
    }
    // Processing time by outcome: per queue 4 attempts end in `error.type=job.panicked`.
    for system in ["vidscope_db", "redis"] {
        app.otlp
            .wait_for_metric_point(
                "messaging.process.duration",
                |p| {
                    p.attr_str("messaging.system") == Some(system)
                        && p.attr_str("error.type") == Some("job.panicked")
                        && p.value.count() == Some(4)
                },
                metric_wait,
            )
            .await
            .unwrap_or_else(|e| panic!("{system}: {e}"));
    }

    // Every panicked attempt: its span is ERROR with the panic, and an ERROR log record in that
    // span (so with its trace id) says what panicked.
    for (name, id, panics) in &panicked_jobs {
        let failed = app
            .otlp
            .wait_until(
                |r| {
                    r.spans_where(|s| {
                        s.name == "process crm.sync"
                            && s.attr_str("messaging.message.id") == Some(id)
                            && s.status_code == 2
                    })
                    .len()
                        == *panics
                },
                Duration::from_secs(10),
            )
            .await;
        let spans = app.otlp.spans_where(|s| {
            s.name == "process crm.sync"
                && s.attr_str("messaging.message.id") == Some(id)
                && s.status_code == 2
        });
        assert!(
            failed.is_ok(),
            "{name}/{id}: {} failed spans, expected {panics}",
            spans.len()
        );
        for span in &spans {
            assert_eq!(span.attr_str("error.type"), Some("job.panicked"), "{name}");
            assert!(
                span.status_message.contains(PANIC_MESSAGE),
                "{name}: status message {:?}",
                span.status_message
            );
            let logs = app.otlp.logs_where(|l| {
                l.body.as_deref() == Some("job handler panicked")
                    && l.trace_id.as_deref() == Some(span.trace_id.as_str())
                    && l.span_id.as_deref() == Some(span.span_id.as_str())
            });
            assert_eq!(
                logs.len(),
                1,
                "{name}: no panic log in span {}",
                span.span_id
            );
            assert_eq!(logs[0].severity_number, 17, "{name}: ERROR severity");
            assert_eq!(logs[0].attr_str("panic.message"), Some(PANIC_MESSAGE));
            assert_eq!(logs[0].attr_str("job.id"), Some(id.as_str()));
            // Where it panicked, which the panic's payload does not carry.
            assert!(
                logs[0]
                    .attr_str("code.file.path")
                    .is_some_and(|f| f.ends_with("tests/jobs/pipeline.rs")),
                "{name}: {:?}",
                logs[0].attributes
            );
            let panic_line = include_str!("pipeline.rs")
                .lines()
                .position(|l| l.contains("=> panic!(\"{PANIC_MESSAGE}\")"))
                .map(|i| i as i64 + 1);
            assert_eq!(logs[0].attr_i64("code.line.number"), panic_line, "{name}");
        }
    }
    app.stop().await;
}

/// A payload that does not parse into its job's struct is dead-lettered on its first delivery
/// with the parse error, whatever the job (and the dead-letter hook, which needs the payload,
/// is skipped rather than failing).
#[tokio::test]
async fn a_malformed_payload_is_dead_lettered_at_once_with_the_reason() {
    let app = spawn_app().await;
    let cases = [
        (
            PROBE,
            serde_json::json!({ "videoId": "not-a-uuid" }),
            "malformed video.probe payload: videoId \"not-a-uuid\" is not a UUID",
        ),
        (
            THUMBNAIL,
            serde_json::json!({ "video": "1" }),
            "malformed video.thumbnail payload: missing field `videoId`",
        ),
        (
            CRM_SYNC,
            serde_json::json!({ "userId": "u1", "event": { "type": "deleted" } }),
            "malformed crm.sync payload: unknown variant `deleted`",
        ),
        (
            CRM_SYNC,
            serde_json::json!(42),
            "malformed crm.sync payload: invalid type: integer `42`",
        ),
    ];
    for (name, queue) in queues_with(&app, "w", Duration::from_secs(120)).await {
        let worker = start_standard(&app, queue.clone());
        for (kind, payload, reason) in &cases {
            let now = vidscope_core::db::now_millis();
            let message = JobMessage {
                id: uuid::Uuid::new_v4().to_string(),
                kind: *kind,
                payload: payload.clone(),
                trace: Default::default(),
                enqueued_at: now,
                available_at: now,
                attempt: 0,
            };
            queue.publish(&message).await.unwrap();
            let what = format!("{name}/{kind} {payload}");
            let dead =
                wait_dead_letter(&queue, *kind, &message.id, Duration::from_secs(15), &what).await;
            assert_eq!(dead.attempt, 1, "{what}: retried");
            assert_eq!(dead.error_class, "permanent", "{what}");
            assert!(
                dead.error.starts_with(reason),
                "{what}: {:?} does not start with {reason:?}",
                dead.error
            );
        }
        worker.stop().await;
    }
    app.stop().await;
}

/// The app with its Redis at `url` (a server of the test's own).
async fn app_on_redis(url: &str) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |s| s.redis_url = Some(url)).await
}

#[tokio::test]
async fn uploads_succeed_while_redis_is_down_and_their_jobs_complete_when_it_returns() {
    let mut redis = OwnRedis::start().await;
    let url = redis.url();
    // Down before anything starts: the API and the worker must come up without it.
    redis.stop();
    let app = app_on_redis(&url).await;
    let admin = app.create_user(Role::Admin).await;
    // Not prepared here (that needs Redis): the worker creates its streams once Redis answers.
    let queue = Queue::Redis(RedisQueue::new(
        vidscope_core::redis_conn::connect(&url).await.unwrap(),
        &unique_prefix(),
        &crate::common::kinds(),
        crate::common::settings("w", Duration::from_secs(30)),
    ));

    let worker = start_standard(&app, queue);
    let clip = test_video();
    let mut ids = Vec::new();
    for i in 0..3 {
        let res = upload(&app, &admin.cookie, &format!("outage-{i}.mp4"), &clip).await;
        assert_eq!(
            res.status(),
            201,
            "upload {i} during the outage: {:?}",
            res.text().await
        );
        let body: Value = res.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outbox::outbox_pending(&app.state.db).await.unwrap(),
        3,
        "jobs wait in the outbox"
    );

    redis.restart().await;
    for id in &ids {
        wait_ready(&app, &admin.cookie, id).await;
    }
    assert_eq!(outbox::outbox_pending(&app.state.db).await.unwrap(), 0);
    worker.stop().await;
    app.stop().await;
}

async fn crm_outbox_ids(app: &TestApp) -> Vec<String> {
    use sqlx::Row;
    sqlx::query("SELECT id FROM outbox WHERE kind = 'crm.sync' ORDER BY id")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("id"))
        .collect()
}

#[tokio::test]
async fn registration_and_a_completed_lesson_each_enqueue_one_crm_sync() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/auth/register"))
        .json(&serde_json::json!({ "email": "new@example.com", "password": "a long passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let user: Value = res.json().await.unwrap();
    let user_id = user["user"]["id"]
        .as_str()
        .or_else(|| user["id"].as_str())
        .unwrap_or_else(|| panic!("no user id in {user}"))
        .to_owned();
    assert_eq!(
        crm_outbox_ids(&app).await,
        vec![format!("crm.registered/{user_id}")]
    );

    let viewer = app.create_user(Role::Viewer).await;
    let id = vidscope_core::videos::VideoId::generate();
    insert_video_row(&app.state.db, id.as_str(), "t", "uploaded", None).await;
    for (position, completed) in [(10.0, false), (50.0, true), (60.0, true)] {
        let res = app
            .client
            .post(app.url("/api/progress"))
            .header(header::COOKIE, &viewer.cookie)
            .json(&serde_json::json!({
                "videoId": id.as_str(), "positionSeconds": position,
                "watchTime": position, "completed": completed,
            }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{:?}", res.text().await);
    }
    let ids = crm_outbox_ids(&app).await;
    let expected = format!("crm.lesson_completed/{}/{}", viewer.user.id, id.as_str());
    assert_eq!(ids.iter().filter(|i| **i == expected).count(), 1, "{ids:?}");
    app.stop().await;
}

/// The sampled gauges say nothing rather than something stale. Once the database stops
/// answering, `outbox.pending` (and, on the database queue, `job.queue_depth`) is no longer
/// exported, where a synchronous gauge went on exporting its last reading at every interval as
/// if it were current. A queue in Redis still answers, so its depth is still exported.
#[tokio::test]
async fn a_gauge_whose_reading_fails_is_withdrawn_not_left_at_its_last_value() {
    const PERIOD: Duration = Duration::from_millis(100);
    for on_redis in [false, true] {
        let app = spawn_app().await;
        let visibility = Duration::from_secs(3);
        let queue = if on_redis {
            let prefix = unique_prefix();
            redis_queue(&crate::common::redis_url(), &prefix, "gauges", visibility).await
        } else {
            db_queue(&app.state.db, "gauges", visibility)
        };
        let name = queue.system();
        let settings = WorkerSettings {
            gauge_interval: PERIOD,
            ..fast_settings()
        };
        let (registry, _) = scripted(Behaviour::Slow);
        let worker = start(&app, queue, registry, settings);
        let exported = |metric: &str| app.otlp.metric_points(metric).len();
        let deadline = tokio::time::Instant::now() + WAIT;
        while exported("outbox.pending") == 0 || exported("job.queue_depth") == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the gauges never showed"
            );
            app.flush_telemetry().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        app.state.db.close().await;
        let deadline = tokio::time::Instant::now() + WAIT;
        // Within a few readings the gauge is withdrawn: a collection adds no point. (Polled:
        // an export of a collection made before the first failed reading may still be on
        // its way.) A stale gauge keeps adding one per collection until WAIT runs out.
        let mut last = (exported("outbox.pending"), exported("job.queue_depth"));
        loop {
            tokio::time::sleep(PERIOD * 2).await;
            app.flush_telemetry().await;
            let now = (exported("outbox.pending"), exported("job.queue_depth"));
            if now.0 == last.0 && (on_redis || now.1 == last.1) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: still exported with the database closed \
                 (outbox.pending, job.queue_depth points: {now:?})"
            );
            last = now;
        }
        if on_redis {
            let depth = exported("job.queue_depth");
            let deadline = tokio::time::Instant::now() + WAIT;
            while exported("job.queue_depth") == depth {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name}: Redis still answers, so its depth should still be exported"
                );
                app.flush_telemetry().await;
                tokio::time::sleep(PERIOD).await;
            }
        }
        worker.stop().await;
        app.stop().await;
    }
}

/// The latest exported `job.queue_depth` of `crm.sync` jobs in `state` (-1: none exported).
fn latest_crm_depth(app: &TestApp, state: &str) -> i64 {
    app.otlp
        .metric_points("job.queue_depth")
        .into_iter()
        .filter(|p| {
            p.attr_str("job.type") == Some("crm.sync") && p.attr_str("state") == Some(state)
        })
        .max_by_key(|p| p.time_unix_nano)
        .and_then(|p| p.value.as_i64())
        .unwrap_or(-1)
}

/// `job.queue_depth` is the current backlog, 0 included: once a real backlog drains, every
/// state of its job type comes down to 0 (it used to keep the last non-zero value for ever,
/// so `JobQueueBacklog` never resolved). Both queue adapters.
#[tokio::test]
async fn a_drained_backlog_reads_zero_once_the_queue_is_empty() {
    const PERIOD: Duration = Duration::from_millis(500);
    let app = spawn_app().await;
    for (name, queue) in queues(&app, "drain").await {
        let (registry, runs) = scripted(Behaviour::Slow);
        let batch: Vec<NewJob> = (0..10).map(|_| crm_job()).collect();
        outbox::enqueue(&app.state.db, &batch).await.unwrap();
        let settings = WorkerSettings {
            concurrency: 1,
            gauge_interval: PERIOD,
            ..fast_settings()
        };
        let worker = start(&app, queue.clone(), registry, settings);
        // The backlog shows first (10 jobs of 150 ms, one at a time).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            app.flush_telemetry().await;
            if latest_crm_depth(&app, "ready") > 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the backlog never showed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for job in &batch {
            wait_done(&app, &job.id).await;
        }
        // A job is marked done before it is acknowledged: the clock starts when the queue
        // itself has nothing left of the kind.
        loop {
            let left: i64 = queue
                .depth()
                .await
                .unwrap()
                .iter()
                .filter(|d| d.kind == CRM_SYNC)
                .map(|d| d.count)
                .sum();
            if left == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the queue never drained"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A stale gauge never comes down: wait for every state to read 0, bounded by WAIT
        // rather than by two periods, which a loaded machine can stretch (the sampler is a
        // task like any other; the time is for a benchmark, not for this test).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            tokio::time::sleep(PERIOD).await;
            app.flush_telemetry().await;
            let stale: Vec<(&str, i64)> = ["ready", "in_flight", "delayed", "dead"]
                .into_iter()
                .map(|state| (state, latest_crm_depth(&app, state)))
                .filter(|&(_, depth)| depth != 0)
                .collect();
            if stale.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: the gauges still read {stale:?} after the queue drained"
            );
        }
        worker.stop().await;
        assert_eq!(runs.load(Ordering::SeqCst), 10, "{name}");
    }
    app.stop().await;
}

/// Redis comes back empty in the middle of ten uploads (a FLUSHALL of a server of the test's
/// own; a restart without persistence or a failover does the same): the worker used to fail
/// every claim with `NOGROUP` for ever. Now it recreates its consumer groups, publishes again
/// from the outbox the jobs Redis lost, and all ten videos become ready, no restart.
#[tokio::test]
async fn ten_uploads_all_become_ready_though_redis_loses_its_data_midway() {
    let redis = OwnRedis::start().await;
    let url = redis.url();
    let app = app_on_redis(&url).await;
    let admin = app.create_user(Role::Admin).await;
    let queue = redis_queue(&url, &unique_prefix(), "w", Duration::from_secs(30)).await;
    let clip = test_video();
    let mut ids = Vec::new();
    let mut upload_one = async |i: usize| {
        let res = upload(&app, &admin.cookie, &format!("flush-{i}.mp4"), &clip).await;
        assert_eq!(res.status(), 201, "upload {i}: {:?}", res.text().await);
        let body: Value = res.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    };
    for i in 0..5 {
        upload_one(i).await;
    }
    // The first five are in Redis when the worker starts (relayed here), and it runs one job
    // at a time: when Redis is flushed, one job is in flight and four wait in the stream.
    assert_eq!(
        outbox::relay_once(&app.state.db, &queue, 10)
            .await
            .unwrap()
            .len(),
        5
    );
    let settings = WorkerSettings {
        concurrency: 1,
        ..fast_settings()
    };
    let worker = start(&app, queue.clone(), Registry::standard(), settings);
    poll("the first job in flight", WAIT, || async {
        let depth = queue.depth().await.unwrap();
        depth
            .iter()
            .any(|d| d.state == "in_flight" && d.count > 0)
            .then_some(())
    })
    .await;
    let mut conn = vidscope_core::redis_conn::connect(&url).await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let flushed = tokio::time::Instant::now();
    let flushed_at_ms = vidscope_core::db::now_millis();
    for i in 5..10 {
        upload_one(i).await;
    }
    poll("the loss noticed", WAIT, || async {
        (queue.losses() > 0).then_some(())
    })
    .await;
    let noticed = flushed.elapsed();
    for id in &ids {
        wait_ready_in_db(&app, id).await;
    }
    let recovered = flushed.elapsed();
    worker.stop().await;
    // Jobs were lost and published again (not merely delivered after the flush).
    app.flush_telemetry().await;
    let republished = app.otlp.logs_where(|l| {
        l.body.as_deref() == Some("jobs the queue had lost are published again from the outbox")
            && l.attr_i64("republished").is_some_and(|n| n > 0)
    });
    let first = republished
        .iter()
        .map(|l| l.time_unix_nano)
        .min()
        .unwrap_or_else(|| panic!("no lost job was published again: {}", app.otlp.summary()));
    eprintln!(
        "redis flush: loss noticed after {} ms, lost jobs published again after {} ms, \
         all 10 videos ready {} ms after the flush",
        noticed.as_millis(),
        (first / 1_000_000) as i64 - flushed_at_ms,
        recovered.as_millis()
    );
    app.stop().await;
}

/// A free port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the worker's health endpoint: the status code, or 0 when nothing answers.
async fn probe(port: u16, path: &str) -> u16 {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// The worker's `/healthz` answered 200 (`"queueReachable":false,"status":"ok"`) while it could
/// claim nothing, so no liveness probe ever restarted it. Now liveness fails once claims have
/// failed for the liveness window, readiness as soon as they fail, and both recover when the
/// queue answers again.
#[tokio::test]
async fn the_worker_is_not_live_while_it_cannot_claim_and_is_again_when_it_can() {
    const WINDOW: Duration = Duration::from_secs(2);
    let mut redis = OwnRedis::start().await;
    let app = spawn_app().await;
    let queue = redis_queue(&redis.url(), &unique_prefix(), "w", Duration::from_secs(30)).await;
    let port = free_port();
    let settings = WorkerSettings {
        health_addr: Some(([127, 0, 0, 1], port).into()),
        liveness_window: WINDOW,
        ..fast_settings()
    };
    let worker = start(&app, queue, Registry::standard(), settings);
    let both = || async { (probe(port, "/healthz").await, probe(port, "/readyz").await) };
    poll("live and ready", WAIT, || async {
        (both().await == (200, 200)).then_some(())
    })
    .await;

    redis.stop();
    let stopped = tokio::time::Instant::now();
    poll("not ready once claims fail", WAIT, || async {
        (probe(port, "/readyz").await == 503).then_some(())
    })
    .await;
    poll("not live after the window", WAIT, || async {
        (probe(port, "/healthz").await == 503).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() >= WINDOW,
        "liveness failed before the window: {:?}",
        stopped.elapsed()
    );
    let body: Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "stuck", "{body}");
    assert_eq!(body["queueReachable"], false, "{body}");

    redis.restart().await;
    poll("live and ready again", WAIT, || async {
        (both().await == (200, 200)).then_some(())
    })
    .await;
    worker.stop().await;
    app.stop().await;
}

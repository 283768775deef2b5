//! The worker loop: claim up to the concurrency limit, run each job in a CONSUMER span that
//! continues the publisher's trace, settle it (ack, retry with backoff, or dead letter).
//!
//! On shutdown, within `VIDSCOPE_WORKER_SHUTDOWN_SECS` of the signal ([`ShutdownPlan`]): stop
//! claiming (a claim under way is finished and what it took given back), let in-flight jobs
//! finish until the last fifth of the deadline, then stop the rest and release their
//! deliveries (claimable again at once, the attempt not counted: neither lost nor pushed
//! towards the dead letter); the caller flushes telemetry in what is left.
//!
//! Beside it run the outbox relay (publishing what the API committed), the check that the
//! queue still holds every pending job ([`crate::reconcile`]) and the samplers of the
//! `outbox.pending` and `job.queue_depth` gauges.

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::FutureExt as _;
use opentelemetry::KeyValue;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;
use tracing::field::Empty;
use tracing::instrument::WithSubscriber;
use vidscope_core::CoreError;
use vidscope_core::config::Settings;
use vidscope_core::db::{Db, now_millis};
use vidscope_core::events::EventBus;
use vidscope_core::jobs;
use vidscope_core::outbox;
use vidscope_core::queue::{DbQueue, Delivery, Queue, QueueSettings, RedisQueue};
use vidscope_core::storage::ObjectStore;
use vidscope_telemetry::{Backoff, Classify, Metrics};

use crate::crm::{CrmClient, CrmSettings};
use crate::error::JobError;
use crate::ffmpeg::Ffmpeg;
use crate::health::Health;
use crate::jobs::{JobContext, Registry};
use crate::reconcile::Reconcile;
use crate::scratch::Scratch;
use crate::settings::{QueueKind, WorkerSettings};

/// Longest a claim waits for new jobs before the loop looks at shutdown again.
const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// Published outbox rows are kept this long for debugging.
const OUTBOX_KEEP: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct Worker {
    ctx: JobContext,
    queue: Queue,
    registry: Registry,
    settings: WorkerSettings,
    health: Arc<Health>,
}

impl Worker {
    pub fn new(
        ctx: JobContext,
        queue: Queue,
        registry: Registry,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            health: Arc::new(Health::new(settings.liveness_window)),
            ctx,
            queue,
            registry,
            settings,
        }
    }

    /// Connects to what the settings name. Redis may be down at start: connections are lazy
    /// and the loop keeps retrying, while uploads keep landing in the outbox.
    ///
    /// `events`: the bus to announce status changes on; `None` picks Redis pub/sub when Redis
    /// is configured (another process's API listens) and nothing otherwise.
    pub async fn build(
        settings: &Settings,
        worker: WorkerSettings,
        metrics: Metrics,
        events: Option<EventBus>,
    ) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database_url)
            .await
            .context("cannot connect to the database (DATABASE_URL)")?;
        db.migrate().await.context("database migrations failed")?;
        let store = ObjectStore::open(&settings.store)
            .await
            .context("cannot open the object store")?;
        let use_redis = match worker.queue {
            QueueKind::Auto => settings.redis_url.is_some(),
            QueueKind::Redis => true,
            QueueKind::Db => false,
        };
        let queue_settings = QueueSettings {
            visibility: worker.visibility,
            ..QueueSettings::default()
        };
        let redis = match &settings.redis_url {
            Some(url) => Some(url.as_str()),
            None if use_redis => anyhow::bail!("VIDSCOPE_QUEUE=redis needs REDIS_URL"),
            None => None,
        };
        let registry = Registry::standard();
        let kinds = registry.kinds();
        let queue = match redis {
            Some(url) if use_redis => Queue::Redis(RedisQueue::new(
                // Its own connection: XREADGROUP BLOCK holds it while waiting.
                vidscope_core::redis_conn::connect(url)
                    .await
                    .context("invalid REDIS_URL")?,
                &worker.queue_prefix,
                &kinds,
                queue_settings,
            )),
            _ => Queue::Db(DbQueue::new(db.clone(), &kinds, queue_settings)),
        };
        let events = match (events, redis) {
            (Some(bus), _) => bus,
            (None, Some(url)) => EventBus::Redis(
                vidscope_core::redis_conn::connect(url)
                    .await
                    .context("invalid REDIS_URL")?,
            ),
            (None, None) => EventBus::None,
        };
        let scratch = Scratch::open(&worker.tmp_root).with_context(|| {
            format!(
                "cannot set up the temporary directory under {} (VIDSCOPE_WORKER_TMP_DIR)",
                worker.tmp_root.display()
            )
        })?;
        let crm = CrmSettings::from_env()?
            .map(|s| CrmClient::new(s, metrics.clone()))
            .transpose()
            .context("invalid CRM settings")?;
        let ctx = JobContext {
            db,
            store,
            metrics,
            events,
            ffmpeg: Ffmpeg {
                ffmpeg: worker.ffmpeg.clone(),
                ffprobe: worker.ffprobe.clone(),
                timeout: worker.ffmpeg_timeout,
            },
            crm,
            scratch: Arc::new(scratch),
        };
        Ok(Self::new(ctx, queue, registry, worker))
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs until `shutdown` resolves, then drains (see the module docs). Returns the instant
    /// by which the process should be gone (the signal plus `VIDSCOPE_WORKER_SHUTDOWN_SECS`),
    /// which bounds the caller's last step, flushing telemetry.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> tokio::time::Instant {
        remember_panic_locations();
        tracing::info!(
            queue = self.queue.system(),
            concurrency = self.settings.concurrency,
            "worker started"
        );
        if let Some(addr) = self.settings.health_addr {
            self.serve_health(addr);
        }
        prime_metrics(&self.ctx.metrics, &self.registry, &self.queue);
        let (stop_relay, relay) = self.start_relay();
        let mut in_hand = InHand::new(self.settings.concurrency);
        let signalled = self.claim_until(shutdown, &mut in_hand).await;
        let plan = ShutdownPlan::new(signalled, self.settings.shutdown_deadline);
        self.drain(in_hand, &plan).await;
        let _ = stop_relay.send(true);
        // The relay finishes its batch (a thumbnail job written by a job that just finished
        // goes out), unless that would eat into the time left for telemetry.
        let mut relay = relay;
        if tokio::time::timeout_at(plan.release_until, &mut relay)
            .await
            .is_err()
        {
            relay.abort();
        }
        tracing::info!("worker stopped");
        plan.exit_by
    }

    fn serve_health(&self, addr: std::net::SocketAddr) {
        let health = self.health.clone();
        let system = self.queue.system();
        tokio::spawn(
            async move {
                if let Err(e) = crate::health::serve(addr, health, system).await {
                    tracing::error!(error = %e, %addr, "worker health endpoint failed");
                }
            }
            .with_current_subscriber(),
        );
    }

    /// Starts the outbox relay and the gauge samplers ([`relay_loop`]); they stop when the
    /// returned sender says `true`.
    fn start_relay(&self) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay = tokio::spawn(
            relay_loop(
                self.ctx.clone(),
                self.queue.clone(),
                (self.settings.relay_interval, self.settings.gauge_interval),
                Reconcile::new(self.settings.reconcile_interval, &self.queue),
                stop_rx,
            )
            .with_current_subscriber(),
        );
        (stop_tx, relay)
    }

    /// Claims jobs while there is room and starts each in a task of its own, until `shutdown`
    /// resolves; returns when it did. A queue that cannot be reached is asked again after a
    /// growing pause.
    async fn claim_until(
        &self,
        shutdown: impl Future<Output = ()>,
        in_hand: &mut InHand,
    ) -> tokio::time::Instant {
        let shutdown = async {
            shutdown.await;
            tokio::time::Instant::now()
        };
        tokio::pin!(shutdown);
        let mut prepared = false;
        let mut failures: u32 = 0;
        loop {
            self.health
                .last_loop_ms
                .store(now_millis(), Ordering::Relaxed);
            while in_hand.tasks.try_join_next().is_some() {}
            let free = in_hand.permits.available_permits();
            if free == 0 {
                // Every permit busy: wait for a job to end, turning now and then so the
                // health endpoint sees a live loop behind long jobs.
                tokio::select! {
                    at = &mut shutdown => break at,
                    _ = in_hand.tasks.join_next() => continue,
                    _ = tokio::time::sleep(CLAIM_WAIT) => continue,
                }
            }
            let claim = self.claim(free, &mut prepared);
            tokio::pin!(claim);
            let claimed = tokio::select! {
                c = &mut claim => c,
                at = &mut shutdown => {
                    // Dropped mid-way, a claim could take jobs nobody runs until the
                    // visibility timeout: it ends (within CLAIM_WAIT), and what it took goes
                    // back at once.
                    if let Ok(taken) = claim.await {
                        self.release_all(&taken).await;
                    }
                    break at;
                }
            };
            match claimed {
                Ok(deliveries) => {
                    self.claim_answered(&mut failures);
                    for d in deliveries {
                        self.start_job(d, in_hand).await;
                    }
                }
                Err(e) => {
                    let pause = self.claim_failed(&e, &mut failures);
                    tokio::select! {
                        at = &mut shutdown => break at,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Up to `max` jobs, preparing the queue first if it has not been yet.
    async fn claim(&self, max: usize, prepared: &mut bool) -> Result<Vec<Delivery>, CoreError> {
        if !*prepared {
            self.queue.prepare().await?;
            *prepared = true;
        }
        self.queue.claim(max, CLAIM_WAIT).await
    }

    /// A claim worked: says so after failures and clears the health endpoint's flag.
    fn claim_answered(&self, failures: &mut u32) {
        if *failures > 0 {
            tracing::info!(failures = *failures, "the queue answers again");
        }
        *failures = 0;
        self.health
            .queue_failing_since_ms
            .store(0, Ordering::Relaxed);
    }

    /// A claim failed: flags it on the health endpoint, logs the first failure and every 30th
    /// (not every turn), and returns the pause before the next claim (200 ms more each time,
    /// at most 5 s).
    fn claim_failed(&self, e: &CoreError, failures: &mut u32) -> Duration {
        *failures += 1;
        let failures = *failures;
        let _ = self.health.queue_failing_since_ms.compare_exchange(
            0,
            now_millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        if failures == 1 || failures.is_multiple_of(30) {
            tracing::warn!(error = %e, failures, "cannot claim jobs; retrying");
        }
        Duration::from_millis(200 * u64::from(failures.min(25)))
    }

    /// Runs `d` in a task of its own, holding one of the free permits until it is settled.
    async fn start_job(&self, d: Delivery, in_hand: &mut InHand) {
        let Ok(permit) = in_hand.permits.clone().try_acquire_owned() else {
            // Cannot happen (we claimed at most `free`); give it back.
            let _ = self.queue.release(&d).await;
            return;
        };
        in_hand
            .deliveries
            .lock()
            .expect("in-flight map")
            .insert(d.message.id.clone(), d.clone());
        let worker = self.clone();
        let deliveries = in_hand.deliveries.clone();
        in_hand.tasks.spawn(
            async move {
                worker.health.in_flight.fetch_add(1, Ordering::Relaxed);
                let id = d.message.id.clone();
                worker.process(d).await;
                deliveries.lock().expect("in-flight map").remove(&id);
                worker.health.in_flight.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            }
            // Under `vidscope up` the worker is not the process's global subscriber: its
            // spawned tasks keep the worker's.
            .with_current_subscriber(),
        );
    }

    /// Lets in-flight jobs finish until the plan's deadline for jobs, then stops the rest and
    /// releases their deliveries (claimable again at once, without counting an attempt).
    async fn drain(&self, mut in_hand: InHand, plan: &ShutdownPlan) {
        let grace = plan.jobs_until - tokio::time::Instant::now();
        tracing::info!(
            in_flight = in_hand.tasks.len(),
            grace_secs = grace.as_secs(),
            "worker stopping: no new claims, waiting for in-flight jobs"
        );
        let drained = tokio::time::timeout_at(plan.jobs_until, async {
            while in_hand.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_ok() {
            return;
        }
        // Dropping a job's future kills its ffmpeg (`kill_on_drop`), removes its temporary
        // directory and rolls back an open transaction: nothing half-done stays behind.
        in_hand.tasks.abort_all();
        while in_hand.tasks.join_next().await.is_some() {}
        let left: Vec<Delivery> = in_hand
            .deliveries
            .lock()
            .expect("in-flight map")
            .drain()
            .map(|(_, d)| d)
            .collect();
        let released = tokio::time::timeout_at(plan.release_until, self.release_all(&left));
        if released.await.is_err() {
            tracing::warn!(
                "the queue did not take the jobs back in time; they will be reclaimed after the visibility timeout"
            );
        }
        tracing::warn!(
            released = left.len(),
            "shutdown deadline for jobs passed; unfinished jobs released"
        );
    }

    /// Gives `deliveries` back to the queue unprocessed, all at once.
    async fn release_all(&self, deliveries: &[Delivery]) {
        let releases = deliveries.iter().map(|d| async move {
            if let Err(e) = self.queue.release(d).await {
                tracing::warn!(error = %e, job.id = %d.message.id, "cannot release a job; it will be reclaimed after the visibility timeout");
            }
        });
        futures_util::future::join_all(releases).await;
    }
}

/// The phases of a shutdown of `deadline` (`VIDSCOPE_WORKER_SHUTDOWN_SECS`) from the signal:
/// in-flight jobs run until the last fifth of it (at most the last 5 s); the first half
/// of that reserve is for releasing the jobs still running and stopping the relay, the second
/// for flushing telemetry; then the process exits.
#[derive(Debug, Clone, Copy)]
struct ShutdownPlan {
    jobs_until: tokio::time::Instant,
    release_until: tokio::time::Instant,
    exit_by: tokio::time::Instant,
}

impl ShutdownPlan {
    /// The plan of a shutdown signalled at `start`.
    fn new(start: tokio::time::Instant, deadline: Duration) -> Self {
        let reserve = (deadline / 5).min(Duration::from_secs(5));
        Self {
            jobs_until: start + deadline - reserve,
            release_until: start + deadline - reserve / 2,
            exit_by: start + deadline,
        }
    }
}

/// The jobs a running worker has in hand: one task each, each holding one of `concurrency`
/// permits, and their deliveries by job id (to release those a shutdown interrupts).
struct InHand {
    permits: Arc<Semaphore>,
    deliveries: Arc<Mutex<HashMap<String, Delivery>>>,
    tasks: JoinSet<()>,
}

impl InHand {
    fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            deliveries: Arc::default(),
            tasks: JoinSet::new(),
        }
    }
}

/// The error classes a failed job is counted under.
const ERROR_CLASSES: [&str; 2] = ["transient", "permanent"];
/// The `state` label of `job.queue_depth`, as the queues' `depth()` name them.
const DEPTH_STATES: [&str; 4] = ["ready", "delayed", "in_flight", "dead"];
/// The `status` label of `workflow.run.status`.
const RUN_STATUSES: [&str; 3] = ["success", "retry", "failure"];

/// The `status` label of `workflow.step.status`.
const STEP_STATUSES: [&str; 2] = ["success", "failure"];

/// Creates the worker's counters at 0 for every label set known before the first job, the
/// usual Prometheus practice: a counter first seen at its first increment has no series
/// before it, so "no failures" reads "No data" and `rate()`/`increase()` miss the first one.
/// Steps come from each job's [`crate::jobs::Job::STEPS`]. A retry's `step_name` is the
/// error's type, an open set: `workflow.retry.count` is primed with `workflow_name` alone,
/// a zero series that sums correctly with the real ones. Counters only some jobs record are
/// primed by those jobs ([`crate::jobs::Job::prime_metrics`]).
fn prime_metrics(metrics: &Metrics, registry: &Registry, queue: &Queue) {
    let system = queue.system();
    for &kind in queue.kinds() {
        let job = KeyValue::new("job.type", kind.as_str());
        for class in ERROR_CLASSES {
            let labels = [job.clone(), KeyValue::new("error.class", class)];
            metrics.job_failures_total.add(0, &labels);
            metrics.job_dead_letter_total.add(0, &labels);
        }
        metrics.messaging_client_sent_messages.add(
            0,
            &[
                KeyValue::new("messaging.system", system),
                KeyValue::new("messaging.destination.name", kind.as_str()),
            ],
        );
    }
    for (kind, steps) in registry.steps() {
        let workflow = KeyValue::new("workflow_name", kind.as_str());
        metrics
            .workflow_run_total
            .add(0, std::slice::from_ref(&workflow));
        metrics
            .workflow_retry_count
            .add(0, std::slice::from_ref(&workflow));
        for status in RUN_STATUSES {
            metrics
                .workflow_run_status
                .add(0, &[workflow.clone(), KeyValue::new("status", status)]);
        }
        for step in steps {
            for status in STEP_STATUSES {
                metrics.workflow_step_status.add(
                    0,
                    &[
                        workflow.clone(),
                        KeyValue::new("step_name", *step),
                        KeyValue::new("status", status),
                    ],
                );
            }
        }
        if steps.contains(&"db.update") {
            metrics.workflow_db_upsert.add(
                0,
                &[
                    workflow.clone(),
                    KeyValue::new("table_name", crate::jobs::VIDEOS_TABLE),
                ],
            );
        }
    }
    registry.prime_metrics(metrics);
}

/// Records `job.queue_depth` for every (job type, state), 0 for those the queue did not
/// list: a gauge recorded only for the pairs present keeps exporting the last value of a
/// pair that drained, so a cleared backlog would look stuck for ever.
fn record_depths(metrics: &Metrics, queue: &Queue, depths: &[vidscope_core::queue::Depth]) {
    for &kind in queue.kinds() {
        for state in DEPTH_STATES {
            let count = depths
                .iter()
                .filter(|d| d.kind == kind && d.state == state)
                .map(|d| d.count)
                .sum();
            metrics.job_queue_depth.record(
                count,
                &[
                    KeyValue::new("job.type", kind.as_str()),
                    KeyValue::new("state", state),
                ],
            );
        }
    }
}

/// Publishes committed outbox rows every `every` and samples the gauges every `gauge_every`
/// until told to stop.
async fn relay_loop(
    ctx: JobContext,
    queue: Queue,
    (every, gauge_every): (Duration, Duration),
    mut reconcile: Reconcile,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start.into(), every.min(gauge_every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Both run at the first tick.
    let mut last_depth = start.checked_sub(gauge_every).unwrap_or(start);
    let mut last_relay = start.checked_sub(every).unwrap_or(start);
    let mut last_prune = Instant::now();
    let mut failing = false;
    loop {
        // The tick's own instant, not `now()`: with a period of `every`, `elapsed()` would
        // read a hair short of it and skip every other turn.
        let at = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            at = tick.tick() => at.into_std(),
        };
        // Before relaying, so what it marks for publishing goes out on this turn.
        reconcile.tick(&ctx.db, &queue, at).await;
        // Drain everything committed so far, a batch at a time.
        if at.duration_since(last_relay) >= every {
            last_relay = at;
            loop {
                match outbox::relay_once(&ctx.db, &queue, 100).await {
                    Ok(kinds) => {
                        if failing {
                            tracing::info!("outbox relay publishes again");
                            failing = false;
                        }
                        for kind in &kinds {
                            ctx.metrics.messaging_client_sent_messages.add(
                                1,
                                &[
                                    KeyValue::new("messaging.system", queue.system()),
                                    KeyValue::new("messaging.destination.name", kind.as_str()),
                                ],
                            );
                        }
                        if kinds.len() < 100 {
                            break;
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "outbox relay cannot publish; jobs wait in the outbox");
                            failing = true;
                        }
                        break;
                    }
                }
            }
        }
        // Gauges are sampled every few seconds, not on every relay tick: each is a query.
        if at.duration_since(last_depth) >= gauge_every {
            last_depth = at;
            if let Ok(n) = outbox::outbox_pending(&ctx.db).await {
                ctx.metrics.outbox_pending.record(n, &[]);
            }
            if let Ok(depths) = queue.depth().await {
                record_depths(&ctx.metrics, &queue, &depths);
            }
        }
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = Instant::now();
            let _ = outbox::prune_outbox(&ctx.db, OUTBOX_KEEP).await;
        }
    }
}

impl Worker {
    /// Runs one delivery to its end, never returning an error: every outcome is settled on the
    /// queue and recorded on the span and the metrics.
    async fn process(&self, d: Delivery) {
        let m = &d.message;
        let span = vidscope_telemetry::with_remote_parent(
            vidscope_telemetry::propagation::extract_map(&m.trace),
            || {
                vidscope_core::messaging_span! {
                    "job.process", "process", "consumer",
                    system = self.queue.system(), kind = m.kind, id = m.id.as_str(),
                    messaging.consumer.group.name = "vidscope-workers",
                    job.type = m.kind.as_str(),
                    job.attempt = i64::from(d.attempt),
                    job.queue_wait_ms = Empty,
                    job.outcome = Empty,
                    workflow.name = m.kind.as_str(),
                    video.id = Empty,
                    user.id = Empty,
                    error.type = Empty,
                }
            },
        );
        let wait_ms = (now_millis() - m.available_at).max(0);
        span.record("job.queue_wait_ms", wait_ms);
        self.ctx.metrics.job_queue_wait_ms.record(
            wait_ms as f64,
            &[KeyValue::new("job.type", m.kind.as_str())],
        );
        let work = vidscope_telemetry::db_watch::scope(self.run_and_settle(&d, &span));
        work.instrument(span.clone()).await;
    }

    /// Runs the job, settles it on the queue by its outcome, and records the run's metrics.
    async fn run_and_settle(&self, d: &Delivery, span: &tracing::Span) {
        let kind = d.message.kind.as_str();
        let started = Instant::now();
        let outcome = self.run_job(d, span).await;
        let elapsed = started.elapsed();
        let metrics = &self.ctx.metrics;
        let workflow = [KeyValue::new("workflow_name", kind)];
        metrics.workflow_run_total.add(1, &workflow);
        metrics
            .workflow_run_duration_ms
            .record(elapsed.as_secs_f64() * 1000.0, &workflow);
        let mut messaging = vec![
            KeyValue::new("messaging.system", self.queue.system()),
            KeyValue::new("messaging.destination.name", kind),
        ];
        let status = match outcome {
            Ok(()) => {
                self.acknowledge(d).await;
                span.record("job.outcome", "success");
                "success"
            }
            Err(e) => {
                messaging.push(KeyValue::new("error.type", e.error_type()));
                self.settle_failure(d, span, &e).await
            }
        };
        metrics.workflow_run_status.add(
            1,
            &[
                KeyValue::new("workflow_name", kind),
                KeyValue::new("status", status),
            ],
        );
        metrics
            .messaging_process_duration
            .record(elapsed.as_secs_f64(), &messaging);
    }

    /// Runs the delivery's job and records it done, unless it is done already (`Ok`, outcome
    /// `duplicate`), was delivered too often, or no job of its kind is registered.
    async fn run_job(&self, d: &Delivery, span: &tracing::Span) -> Result<(), JobError> {
        let m = &d.message;
        if d.attempt > self.settings.max_attempts {
            // Delivered again and again without being settled: its worker keeps dying.
            return Err(JobError::permanent(
                "job.too_many_deliveries",
                format!("delivered {} times without finishing", d.attempt),
            ));
        }
        if jobs::is_done(&self.ctx.db, &m.id).await? {
            tracing::info!(job.id = %m.id, "job.duplicate_skipped");
            span.record("job.outcome", "duplicate");
            return Ok(());
        }
        let job = self.registry.get(m.kind).ok_or_else(|| {
            JobError::permanent("job.no_handler", format!("no handler for {}", m.kind))
        })?;
        // A panicking handler becomes a failure of this delivery like any other (retried, then
        // dead-lettered, counted, logged in this span), instead of unwinding the task and
        // leaving the job claimed until its visibility timeout. Unwind safety: a job's state is
        // the database and the queue, which a half-run job leaves as a retry would find it
        // (jobs are idempotent).
        let work = AssertUnwindSafe(job.run(&self.ctx, m))
            .catch_unwind()
            .map(|r| r.unwrap_or_else(|payload| Err(panicked(&m.id, payload.as_ref()))));
        self.keeping_the_lease(d, work).await?;
        jobs::mark_done(&self.ctx.db, &m.id, m.kind).await?;
        Ok(())
    }

    /// Awaits `work`, extending the delivery's lease every third of the visibility timeout.
    async fn keeping_the_lease<T>(&self, d: &Delivery, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let mut beat = tokio::time::interval(self.queue.settings().visibility / 3);
        beat.tick().await;
        loop {
            tokio::select! {
                r = &mut work => break r,
                _ = beat.tick() => {
                    if let Ok(false) = self.queue.heartbeat(d).await {
                        tracing::warn!(job.id = %d.message.id, "lease lost: another worker may run this job too");
                    }
                }
            }
        }
    }

    async fn acknowledge(&self, d: &Delivery) {
        let id = &d.message.id;
        match self.queue.ack(d).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(job.id = %id, "acknowledged a job whose lease was lost"),
            Err(e) => {
                tracing::warn!(error = %e, job.id = %id, "cannot acknowledge; the job will be redelivered and skipped as done")
            }
        }
    }

    /// Counts the failure and retries the job after a backoff while its class and attempts
    /// allow, else dead-letters it; returns the run's status (`retry` or `failure`).
    async fn settle_failure(
        &self,
        d: &Delivery,
        span: &tracing::Span,
        e: &JobError,
    ) -> &'static str {
        vidscope_telemetry::classify::record_classified(span, e);
        // The labels of `job.failures_total` and `job.dead_letter_total`.
        let counted = [
            KeyValue::new("job.type", d.message.kind.as_str()),
            KeyValue::new("error.class", e.class().as_str()),
        ];
        self.ctx.metrics.job_failures_total.add(1, &counted);
        let backoff = Backoff {
            base: self.settings.backoff_base,
            max: Duration::from_secs(300),
            max_attempts: self.settings.max_attempts,
        };
        if backoff.should_retry(e.class(), d.attempt) {
            let delay = backoff.delay(d.attempt, rand::random::<f64>());
            self.retry(d, delay, e).await;
            span.record("job.outcome", "retry");
            "retry"
        } else {
            self.dead_letter(d, e).await;
            self.ctx.metrics.job_dead_letter_total.add(1, &counted);
            self.run_dead_letter_hook(d).await;
            span.record("job.outcome", "dead_letter");
            "failure"
        }
    }

    async fn retry(&self, d: &Delivery, delay: Duration, e: &JobError) {
        let m = &d.message;
        tracing::warn!(
            job.id = %m.id,
            // i64: tracing-opentelemetry turns a u64 event field into a string.
            attempt = i64::from(d.attempt),
            retry.delay_ms = delay.as_millis() as i64,
            error = %e,
            "job.retry_scheduled"
        );
        if let Err(qe) = self.queue.retry(d, delay, &e.message).await {
            tracing::warn!(error = %qe, job.id = %m.id, "cannot schedule the retry; the job will be redelivered after the visibility timeout");
        }
        self.ctx.metrics.workflow_retry_count.add(
            1,
            &[
                KeyValue::new("workflow_name", m.kind.as_str()),
                KeyValue::new("step_name", e.error_type()),
            ],
        );
    }

    /// Parks the job in the dead letter.
    async fn dead_letter(&self, d: &Delivery, e: &JobError) {
        let m = &d.message;
        let class = e.class().as_str();
        tracing::error!(
            job.id = %m.id,
            // i64: tracing-opentelemetry turns a u64 event field into a string.
            attempt = i64::from(d.attempt),
            error.class = class,
            error = %e,
            "job.dead_lettered"
        );
        if let Err(qe) = self.queue.dead_letter(d, class, &e.message).await {
            tracing::warn!(error = %qe, job.id = %m.id, "cannot dead-letter; the job will be redelivered");
            return;
        }
        // Parked for a human: not to be published again if the queue loses its dead letters.
        if let Err(de) = outbox::mark_dead_lettered(&self.ctx.db, &m.id).await {
            tracing::warn!(error = %de, job.id = %m.id, "cannot record the dead letter in the outbox");
        }
    }

    /// Runs the job's dead-letter hook, its panics caught like the job's own.
    async fn run_dead_letter_hook(&self, d: &Delivery) {
        let m = &d.message;
        if let Some(job) = self.registry.get(m.kind) {
            let hook = AssertUnwindSafe(job.on_dead_letter(&self.ctx, m)).catch_unwind();
            if let Err(he) = hook.await.unwrap_or_else(|p| Err(panicked(&m.id, &*p))) {
                tracing::warn!(error = %he, job.id = %m.id, "dead-letter hook failed");
            }
        }
    }
}

/// The job error of a handler's panic, with the panic's message, logged where it is caught:
/// inside the job's span, so the record carries the job's trace. Transient: a panic is a bug,
/// but often one met through a passing state (a race, an odd answer from a dependency); one
/// that recurs reaches the dead letter after `max_attempts` with its message.
fn panicked(job_id: &str, payload: &(dyn Any + Send)) -> JobError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned());
    let (file, line) = PANIC_AT
        .with(|p| p.borrow_mut().take())
        .map_or((None, None), |(f, l)| (Some(f), Some(i64::from(l))));
    tracing::error!(
        job.id = %job_id,
        panic.message = %message,
        code.file.path = file,
        code.line.number = line,
        "job handler panicked"
    );
    JobError::transient("job.panicked", format!("the handler panicked: {message}"))
}

thread_local! {
    /// Where the last panic on this thread happened, set by the hook [`remember_panic_locations`]
    /// installs and taken where the panic is caught: `catch_unwind` runs on the thread that
    /// panicked, and its payload carries only the message.
    static PANIC_AT: std::cell::RefCell<Option<(String, u32)>> = const { std::cell::RefCell::new(None) };
}

/// Keeps each panic's file and line for [`panicked`], then runs the hook that was installed
/// before (Rust's default prints to stderr). Installed once per process.
fn remember_panic_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                PANIC_AT.with(|p| *p.borrow_mut() = Some((at.file().to_owned(), at.line())));
            }
            previous(info);
        }));
    });
}

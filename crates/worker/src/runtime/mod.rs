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

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::instrument::WithSubscriber;
use vidscope_core::CoreError;
use vidscope_core::config::Settings;
use vidscope_core::db::{Db, now_millis};
use vidscope_core::events::EventBus;
use vidscope_core::queue::{DbQueue, Delivery, Queue, QueueSettings, RedisQueue};
use vidscope_core::storage::ObjectStore;
use vidscope_telemetry::Metrics;

use self::metrics::prime_metrics;
use self::panics::remember_panic_locations;
use self::relay::relay_loop;
use crate::crm::{CrmClient, CrmSettings};
use crate::ffmpeg::Ffmpeg;
use crate::health::Health;
use crate::jobs::{JobContext, Registry};
use crate::reconcile::Reconcile;
use crate::scratch::Scratch;
use crate::settings::{QueueKind, WorkerSettings};

mod metrics;
mod panics;
mod relay;
mod settle;

/// Longest a claim waits for new jobs before the loop looks at shutdown again.
const CLAIM_WAIT: Duration = Duration::from_secs(1);

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

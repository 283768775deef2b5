//! One delivery from claim to settlement: its CONSUMER span, the run (keeping the lease), then
//! ack, retry with backoff, or dead letter.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use opentelemetry::KeyValue;
use tracing::Instrument;
use tracing::field::Empty;
use vidscope_core::db::now_millis;
use vidscope_core::queue::Delivery;
use vidscope_core::{jobs, outbox};
use vidscope_telemetry::{Backoff, Classify};

use super::Worker;
use super::panics::panicked;
use crate::error::JobError;

/// How a delivery that did not fail ended. Both are acknowledged and count as a successful run;
/// the span's `job.outcome` tells them apart (a span field keeps the last value recorded, so
/// the outcome is recorded once, here, rather than by `run_job` and then overwritten).
enum Ran {
    Done,
    /// Recorded done already (a redelivery or a duplicate publish): not run again.
    Duplicate,
}

impl Ran {
    fn outcome(&self) -> &'static str {
        match self {
            Ran::Done => "success",
            Ran::Duplicate => "duplicate",
        }
    }
}

impl Worker {
    /// Runs one delivery to its end, never returning an error: every outcome is settled on the
    /// queue and recorded on the span and the metrics.
    pub(super) async fn process(&self, d: Delivery) {
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
        let outcome = self.run_job(d).await;
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
            Ok(ran) => {
                self.acknowledge(d).await;
                span.record("job.outcome", ran.outcome());
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

    /// Runs the delivery's job and records it done, unless it is done already
    /// ([`Ran::Duplicate`]), was delivered too often, or no job of its kind is registered.
    async fn run_job(&self, d: &Delivery) -> Result<Ran, JobError> {
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
            return Ok(Ran::Duplicate);
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
        Ok(Ran::Done)
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

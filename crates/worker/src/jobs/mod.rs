//! Every job the worker runs, one file each, registered in one place ([`Registry::standard`]):
//! the registry is the list of job kinds, which the worker's queue and outbox relay serve.
//!
//! A job is a [`Job`]: its payload type (a serde struct whose `JobPayload::KIND` is the kind's
//! name; in the job's own file, or in `vidscope_core::jobs::<job>` when the API or core produce
//! it), what it does, and what happens when it is given up. The runtime parses
//! the payload once, before `run`; a payload that does not parse is dead-lettered at once as
//! `job.bad_payload`. `run` must be idempotent by job id, because delivery is at least once
//! (the runtime also skips ids recorded in `job_results`). Steps are timed with [`step`], which
//! feeds seed 003's `workflow.step.*` metrics with `workflow_name` = the job kind.

pub mod crm_sync;
pub mod probe;
pub mod purge;
pub mod thumbnail;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use opentelemetry::KeyValue;
use tokio::io::AsyncWriteExt;
use tracing::Instrument;
use tracing::field::Empty;
use vidscope_core::db::Db;
use vidscope_core::events::{EventBus, VideoStatusEvent};
use vidscope_core::jobs::{JobKind, JobMessage, JobPayload, parse_payload};
use vidscope_core::storage::{ObjectKey, ObjectStore};
use vidscope_core::videos::{self, Video, VideoId, VideoStatus};
use vidscope_telemetry::Metrics;

use crate::crm::CrmClient;
use crate::error::JobError;
use crate::ffmpeg::Ffmpeg;
use crate::scratch::Scratch;

pub(crate) type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// What jobs may use.
#[derive(Clone)]
pub struct JobContext {
    pub db: Db,
    pub store: ObjectStore,
    pub metrics: Metrics,
    pub events: EventBus,
    pub ffmpeg: Ffmpeg,
    /// `None` when `VIDSCOPE_CRM_URL` is unset: `crm.sync` jobs then succeed without a call.
    pub crm: Option<CrmClient>,
    /// Where jobs put their temporary files: this worker's own directory.
    pub scratch: Arc<Scratch>,
}

/// One kind of job. Its kind is its payload's ([`JobPayload::KIND`]).
pub trait Job: Send + Sync + 'static {
    type Payload: JobPayload;

    /// The names this job passes to [`step`] (and [`update_videos`], whose step is
    /// `db.update`), so `workflow.step.status` exists at 0 for each before the first run.
    /// The pipeline test holds them against the steps a real run records.
    const STEPS: &'static [&'static str] = &[];

    /// Does the work. `job` carries the id (the idempotency key) and the attempt.
    fn run(
        &self,
        ctx: &JobContext,
        job: &JobMessage,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Called once the job is dead-lettered (e.g. to mark its video `failed`). Not called
    /// when the payload itself was malformed: there is nothing to act on.
    fn on_dead_letter(
        &self,
        _ctx: &JobContext,
        _payload: Self::Payload,
    ) -> impl Future<Output = Result<(), JobError>> + Send {
        async { Ok(()) }
    }

    /// Creates at 0, at start-up, the counters this job alone records (the runtime primes the
    /// common ones and each of [`Job::STEPS`]); `workflow` is its `workflow_name` label.
    fn prime_metrics(_metrics: &Metrics, _workflow: &KeyValue) {}
}

/// A [`Job`] with its payload type erased, so the registry can hold every kind.
pub(crate) trait ErasedJob: Send + Sync {
    fn steps(&self) -> &'static [&'static str];
    fn prime_metrics(&self, metrics: &Metrics, workflow: &KeyValue);
    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a>;
    fn on_dead_letter<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a>;
}

impl<J: Job> ErasedJob for J {
    fn steps(&self) -> &'static [&'static str] {
        J::STEPS
    }

    fn prime_metrics(&self, metrics: &Metrics, workflow: &KeyValue) {
        J::prime_metrics(metrics, workflow);
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a> {
        match parse(job) {
            Ok(payload) => Box::pin(Job::run(self, ctx, job, payload)),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn on_dead_letter<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a> {
        match parse(job) {
            Ok(payload) => Box::pin(Job::on_dead_letter(self, ctx, payload)),
            Err(_) => Box::pin(std::future::ready(Ok(()))),
        }
    }
}

/// The payload, or the permanent error that dead-letters the job at once.
fn parse<P: JobPayload>(job: &JobMessage) -> Result<P, JobError> {
    parse_payload(job).map_err(|e| JobError::permanent("job.bad_payload", e.to_string()))
}

/// The jobs a worker runs, by kind, in the order registered.
#[derive(Clone, Default)]
pub struct Registry {
    jobs: Vec<(JobKind, Arc<dyn ErasedJob>)>,
}

impl Registry {
    /// The production jobs: one line each.
    pub fn standard() -> Self {
        Self::default()
            .register(probe::Probe)
            .register(thumbnail::Thumbnail)
            .register(crm_sync::CrmSync)
            .register(purge::Purge)
    }

    /// Adds a job of a kind not registered yet.
    ///
    /// # Panics
    /// When its kind already has a job (two payloads naming one kind): the unit test that
    /// builds [`Registry::standard`] catches it before a worker could start.
    pub fn register<J: Job>(mut self, job: J) -> Self {
        let kind = J::Payload::KIND;
        assert!(
            self.get(kind).is_none(),
            "two jobs registered as {kind}: a job kind names one job"
        );
        self.jobs.push((kind, Arc::new(job)));
        self
    }

    /// Adds or replaces the job of its kind (tests swap in failing or slow ones).
    pub fn with<J: Job>(mut self, job: J) -> Self {
        let kind = J::Payload::KIND;
        self.jobs.retain(|(k, _)| *k != kind);
        self.jobs.push((kind, Arc::new(job)));
        self
    }

    /// The registered kinds: what the worker's queue serves.
    pub fn kinds(&self) -> Vec<JobKind> {
        self.jobs.iter().map(|(kind, _)| *kind).collect()
    }

    /// Each registered kind with its declared steps ([`Job::STEPS`]).
    pub fn steps(&self) -> impl Iterator<Item = (JobKind, &'static [&'static str])> + '_ {
        self.jobs.iter().map(|(kind, job)| (*kind, job.steps()))
    }

    /// Primes each job's own counters ([`Job::prime_metrics`]).
    pub(crate) fn prime_metrics(&self, metrics: &Metrics) {
        for (kind, job) in &self.jobs {
            job.prime_metrics(metrics, &KeyValue::new("workflow_name", kind.as_str()));
        }
    }

    pub(crate) fn get(&self, kind: JobKind) -> Option<&Arc<dyn ErasedJob>> {
        self.jobs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, job)| job)
    }
}

/// Runs one step of a job, recording `workflow.step.duration_ms` and `workflow.step.status`.
pub async fn step<T>(
    ctx: &JobContext,
    workflow: JobKind,
    step: &'static str,
    fut: impl Future<Output = Result<T, JobError>>,
) -> Result<T, JobError> {
    let start = Instant::now();
    let result = fut.await;
    let labels = [
        KeyValue::new("workflow_name", workflow.as_str()),
        KeyValue::new("step_name", step),
    ];
    ctx.metrics
        .workflow_step_duration_ms
        .record(start.elapsed().as_secs_f64() * 1000.0, &labels);
    let status = if result.is_ok() { "success" } else { "failure" };
    ctx.metrics.workflow_step_status.add(
        1,
        &[
            labels[0].clone(),
            labels[1].clone(),
            KeyValue::new("status", status),
        ],
    );
    result
}

/// The `table_name` of `workflow.db.upsert` for [`update_videos`].
pub const VIDEOS_TABLE: &str = "videos";

/// The `db.update` step of a job that writes the `videos` table: [`step`] plus seed 003's
/// `workflow.db.upsert` count and duration, recorded when the write succeeded.
pub async fn update_videos<T>(
    ctx: &JobContext,
    workflow: JobKind,
    fut: impl Future<Output = Result<T, JobError>>,
) -> Result<T, JobError> {
    let started = Instant::now();
    let out = step(ctx, workflow, "db.update", fut).await?;
    let labels = [
        KeyValue::new("workflow_name", workflow.as_str()),
        KeyValue::new("table_name", VIDEOS_TABLE),
    ];
    ctx.metrics.workflow_db_upsert.add(1, &labels);
    ctx.metrics
        .workflow_db_upsert_duration_ms
        .record(started.elapsed().as_secs_f64() * 1000.0, &labels);
    Ok(out)
}

/// The video a job is about; `None` when it was deleted (see [`settle_if_deleted`]).
pub async fn load_video(ctx: &JobContext, id: &VideoId) -> Result<Option<Video>, JobError> {
    tracing::Span::current().record("video.id", id.as_str());
    let video = videos::get(&ctx.db, id).await?;
    if video.is_none() {
        video_gone(id);
    }
    Ok(video)
}

/// A job about a lesson an admin deleted settles as done: there is nothing left to process,
/// and a retry or a dead letter would report a failure that is not one. Logged (and put on
/// the job's span) as `job.video_deleted`.
fn video_gone(id: &VideoId) {
    tracing::info!(video.id = id.as_str(), "job.video_deleted");
}

/// `result` of a job about video `id`, except that a failure is success when the video is
/// gone by then: deleted while the job ran (its object purged under it, say). A failure of
/// this check itself keeps the job's own error.
///
/// It takes the job's result, not its future: with the S3 store a job's future is large in
/// debug builds, and moving it into another one overflowed a runtime thread's stack (2 MiB
/// then, `vidscope up` under the loadgen test; [`vidscope_core::runtime`] now gives 8 MiB).
pub async fn settle_if_deleted(
    ctx: &JobContext,
    id: &VideoId,
    result: Result<(), JobError>,
) -> Result<(), JobError> {
    match result {
        Err(e) => match videos::get(&ctx.db, id).await {
            Ok(None) => {
                video_gone(id);
                Ok(())
            }
            _ => Err(e),
        },
        ok => ok,
    }
}

/// Runs a job about the video `id`: `process` gets the video, unless it was deleted before the
/// job started (nothing to do then), and its result is settled by [`settle_if_deleted`].
pub async fn on_video<F>(
    ctx: &JobContext,
    id: &VideoId,
    process: impl FnOnce(Video) -> F,
) -> Result<(), JobError>
where
    F: Future<Output = Result<(), JobError>>,
{
    let result = match load_video(ctx, id).await {
        Ok(Some(video)) => process(video).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    settle_if_deleted(ctx, id, result).await
}

/// The video's object copied into a fresh temp dir (in the worker's own, see
/// [`crate::scratch`]), as the job's `storage.get` step: ffmpeg wants a seekable file. The
/// file lives as long as the returned dir, where the job may write its own files too.
pub async fn fetch_input(
    ctx: &JobContext,
    workflow: JobKind,
    video: &Video,
) -> Result<(tempfile::TempDir, PathBuf), JobError> {
    let key = video.object_key()?;
    let dir = ctx
        .scratch
        .job_dir()
        .map_err(|e| JobError::transient("io", format!("cannot create a temp dir: {e}")))?;
    let input = step(
        ctx,
        workflow,
        "storage.get",
        download(ctx, &key, dir.path()),
    )
    .await?;
    Ok((dir, input))
}

/// Copies the video's object to `dir` (ffmpeg wants a seekable file), inside a
/// `storage.get` span around the store's own `s3.get_object`.
pub async fn download(ctx: &JobContext, key: &ObjectKey, dir: &Path) -> Result<PathBuf, JobError> {
    let span = tracing::info_span!(
        "storage.get",
        storage.backend = ctx.store.backend_name(),
        s3.key = key.as_str(),
        s3.size = Empty,
        error.type = Empty,
    );
    let path = dir.join("input");
    let result = async {
        let mut body = ctx.store.get(key, None).await?;
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| JobError::transient("io", format!("cannot create a temp file: {e}")))?;
        let mut size: u64 = 0;
        while let Some(chunk) = body.stream.next().await {
            let chunk = chunk
                .map_err(|e| JobError::transient("storage.read", format!("reading {key}: {e}")))?;
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| JobError::transient("io", format!("writing a temp file: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| JobError::transient("io", format!("writing a temp file: {e}")))?;
        tracing::Span::current().record("s3.size", size as i64);
        Ok(path.clone())
    }
    .instrument(span.clone())
    .await;
    if let Err(e) = &result {
        vidscope_telemetry::classify::record_classified(&span, e);
    }
    result
}

/// Sets the status and tells the uploader's open tabs.
pub async fn set_status(
    ctx: &JobContext,
    video: &Video,
    status: VideoStatus,
) -> Result<(), JobError> {
    let id = VideoId::parse(&video.id)
        .ok_or_else(|| JobError::permanent("video.bad_id", "stored video id is not a UUID"))?;
    videos::set_status(&ctx.db, &id, status).await?;
    announce(ctx, video, status).await;
    Ok(())
}

/// Publishes a status change (best effort).
pub async fn announce(ctx: &JobContext, video: &Video, status: VideoStatus) {
    ctx.events
        .publish(&VideoStatusEvent {
            video_id: video.id.clone(),
            status: status.as_str().to_owned(),
            user_id: video.uploaded_by.clone(),
        })
        .await;
}

/// Marks a video job's video `failed` once the job is dead-lettered.
pub async fn fail_video(ctx: &JobContext, id: &VideoId) -> Result<(), JobError> {
    if let Some(video) = videos::get(&ctx.db, id).await? {
        set_status(ctx, &video, VideoStatus::Failed).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each production job has a kind of its own (a second job of one kind panics in
    /// `register`), and the kinds queues, tables and dashboards already hold keep their names.
    #[test]
    fn every_standard_job_has_a_kind_of_its_own() {
        let kinds = Registry::standard().kinds();
        let unique: std::collections::HashSet<_> = kinds.iter().collect();
        assert_eq!(unique.len(), kinds.len(), "{kinds:?}");
        for name in ["video.probe", "video.thumbnail", "crm.sync", "video.purge"] {
            assert!(
                kinds.iter().any(|k| k.as_str() == name),
                "{name}: {kinds:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "two jobs registered as video.probe")]
    fn a_second_job_of_a_kind_is_refused() {
        let _ = Registry::standard().register(probe::Probe);
    }
}

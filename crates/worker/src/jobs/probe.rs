//! `video.probe`: ffprobe → duration, codecs and resolution on the video row; then the
//! thumbnail job, written to the outbox in the same transaction as the probe's findings (its id
//! derives from this job's, so a redelivered probe enqueues it once).

use tracing::Instrument;
use vidscope_core::jobs::{self, JobKind, JobMessage, NewJob};
use vidscope_core::videos::{self, VideoStatus};

use super::{
    Handler, JobContext, JobFuture, download, load_video, set_status, step, update_videos, video_id,
};
use crate::error::JobError;

pub struct Probe;

impl Handler for Probe {
    fn kind(&self) -> JobKind {
        JobKind::VideoProbe
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a> {
        Box::pin(run(ctx, job))
    }

    fn on_dead_letter<'a>(&'a self, ctx: &'a JobContext, job: &'a JobMessage) -> JobFuture<'a> {
        Box::pin(super::fail_video(ctx, job))
    }
}

async fn run(ctx: &JobContext, job: &JobMessage) -> Result<(), JobError> {
    const KIND: JobKind = JobKind::VideoProbe;
    let id = video_id(job)?;
    let video = load_video(ctx, &id).await?;
    if video.status == VideoStatus::Uploaded {
        set_status(ctx, &video, VideoStatus::Processing).await?;
    }
    let key = video.object_key()?;
    let dir = tempfile::tempdir()
        .map_err(|e| JobError::transient("io", format!("cannot create a temp dir: {e}")))?;
    let input = step(ctx, KIND, "storage.get", download(ctx, &key, dir.path())).await?;
    let probe = step(ctx, KIND, "ffmpeg.probe", ctx.ffmpeg.probe(&input)).await?;
    let thumbnail = NewJob::derived(
        &job.id,
        JobKind::VideoThumbnail,
        serde_json::json!({ "videoId": id.as_str() }),
    );
    update_videos(
        ctx,
        KIND,
        async {
            let mut tx = vidscope_core::db::begin(&ctx.db).await?;
            videos::record_probe(&mut tx, ctx.db.backend(), &id, &probe).await?;
            jobs::write_outbox(&mut tx, ctx.db.backend(), &[thumbnail]).await?;
            vidscope_core::db::commit(tx).await?;
            Ok(())
        }
        .instrument(tracing::info_span!(
            "db.transaction",
            db.collection.name = "videos"
        )),
    )
    .await?;
    Ok(())
}

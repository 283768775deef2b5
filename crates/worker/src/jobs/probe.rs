//! `video.probe`: ffprobe → duration, codecs and resolution on the video row; then the
//! thumbnail job, written to the outbox in the same transaction as the probe's findings (its id
//! derives from this job's, so a redelivered probe enqueues it once). Payload:
//! [`ProbePayload`], enqueued by the upload.

use tracing::Instrument;
use vidscope_core::jobs::probe::ProbePayload;
use vidscope_core::jobs::{JobKind, JobMessage, JobPayload, NewJob};
use vidscope_core::outbox;
use vidscope_core::videos::{self, Video, VideoId, VideoStatus};

use super::thumbnail::ThumbnailPayload;
use super::{Job, JobContext, fetch_input, on_video, set_status, step, update_videos};
use crate::error::JobError;

pub struct Probe;

impl Job for Probe {
    type Payload = ProbePayload;
    const STEPS: &'static [&'static str] = &["storage.get", "ffmpeg.probe", "db.update"];

    async fn run(
        &self,
        ctx: &JobContext,
        job: &JobMessage,
        payload: ProbePayload,
    ) -> Result<(), JobError> {
        let id = &payload.video_id;
        on_video(ctx, id, |video| probe(ctx, job, id, video)).await
    }

    /// Its video becomes `failed`.
    async fn on_dead_letter(&self, ctx: &JobContext, p: ProbePayload) -> Result<(), JobError> {
        super::fail_video(ctx, &p.video_id).await
    }
}

/// The job, on its video (see [`on_video`]).
async fn probe(
    ctx: &JobContext,
    job: &JobMessage,
    id: &VideoId,
    video: Video,
) -> Result<(), JobError> {
    const KIND: JobKind = ProbePayload::KIND;
    if video.status == VideoStatus::Uploaded {
        set_status(ctx, &video, VideoStatus::Processing).await?;
    }
    // The input file lives as long as `_dir`.
    let (_dir, input) = fetch_input(ctx, KIND, &video).await?;
    let probe = step(ctx, KIND, "ffmpeg.probe", ctx.ffmpeg.probe(&input)).await?;
    let thumbnail = NewJob::derived(
        &job.id,
        &ThumbnailPayload {
            video_id: id.clone(),
        },
    );
    update_videos(
        ctx,
        KIND,
        async {
            let mut tx = vidscope_core::db::begin(&ctx.db).await?;
            videos::record_probe(&mut tx, ctx.db.backend(), id, &probe).await?;
            outbox::write_outbox(&mut tx, ctx.db.backend(), &[thumbnail]).await?;
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

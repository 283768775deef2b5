//! `video.thumbnail`: one frame (at 1 s, or mid-video for shorter clips) → JPEG → object
//! store (`videos/<id>/thumbnail.jpg`) → the video becomes `ready`. Served at
//! `GET /api/videos/{id}/thumbnail`. Re-running it overwrites the same key: idempotent.
//! Payload: [`ThumbnailPayload`], enqueued by the probe job only, so it lives here rather than
//! in `vidscope_core::jobs` (see that module).

use bytes::Bytes;
use opentelemetry::KeyValue;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing::field::Empty;
use vidscope_core::domain::VideoId;
use vidscope_core::jobs::{JobKind, JobMessage, JobPayload};
use vidscope_core::storage::ObjectKey;
use vidscope_core::videos::{self, Video, VideoStatus};
use vidscope_telemetry::Metrics;

use super::{Job, JobContext, announce, fetch_input, on_video, step, update_videos};
use crate::error::JobError;

/// Wire form `{"videoId": "<uuid>"}`, unchanged since the first release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThumbnailPayload {
    #[serde(with = "vidscope_core::jobs::video_id_serde")]
    pub video_id: VideoId,
}

impl JobPayload for ThumbnailPayload {
    const KIND: JobKind = JobKind::new("video.thumbnail");
}

const KIND: JobKind = ThumbnailPayload::KIND;

pub struct Thumbnail;

impl Job for Thumbnail {
    type Payload = ThumbnailPayload;
    const STEPS: &'static [&'static str] = &[
        "storage.get",
        "ffmpeg.extract_frame",
        "storage.put",
        "db.update",
    ];

    async fn run(
        &self,
        ctx: &JobContext,
        _job: &JobMessage,
        payload: ThumbnailPayload,
    ) -> Result<(), JobError> {
        let id = &payload.video_id;
        on_video(ctx, id, |video| thumbnail(ctx, id, video)).await
    }

    /// Its video becomes `failed`.
    async fn on_dead_letter(&self, ctx: &JobContext, p: ThumbnailPayload) -> Result<(), JobError> {
        super::fail_video(ctx, &p.video_id).await
    }

    /// The one job that uploads an image.
    fn prime_metrics(metrics: &Metrics, workflow: &KeyValue) {
        metrics
            .workflow_image_uploaded
            .add(0, std::slice::from_ref(workflow));
    }
}

/// The job, on its video (see [`on_video`]); a video deleted while it ran leaves no thumbnail
/// behind.
async fn thumbnail(ctx: &JobContext, id: &VideoId, video: Video) -> Result<(), JobError> {
    let (dir, input) = fetch_input(ctx, KIND, &video).await?;
    let at = video.duration_seconds.map_or(0.0, |d| (d / 2.0).min(1.0));
    let jpeg = dir.path().join("thumbnail.jpg");
    step(
        ctx,
        KIND,
        "ffmpeg.extract_frame",
        ctx.ffmpeg.extract_frame(&input, at, &jpeg),
    )
    .await?;
    let bytes = Bytes::from(
        tokio::fs::read(&jpeg)
            .await
            .map_err(|e| JobError::transient("io", format!("reading the frame: {e}")))?,
    );
    let size = bytes.len();
    let thumb_key = ObjectKey::parse(&format!("videos/{id}/thumbnail.jpg"))?;
    let put_span = tracing::info_span!(
        "storage.put",
        storage.backend = ctx.store.backend_name(),
        s3.key = thumb_key.as_str(),
        s3.size = size as i64,
        error.type = Empty,
    );
    step(ctx, KIND, "storage.put", async {
        ctx.store
            .put_bytes(&thumb_key, bytes, "image/jpeg")
            .instrument(put_span.clone())
            .await
            .map_err(|e| {
                let e = JobError::from(e);
                vidscope_telemetry::classify::record_classified(&put_span, &e);
                e
            })
    })
    .await?;
    let image = [KeyValue::new("workflow_name", KIND.as_str())];
    ctx.metrics.workflow_image_uploaded.add(1, &image);
    ctx.metrics
        .workflow_image_size_bytes
        .record(size as f64, &image);
    let marked = update_videos(ctx, KIND, async {
        Ok(videos::mark_ready(&ctx.db, id, &thumb_key).await?)
    })
    .await?;
    if !marked {
        // Deleted while the frame was made: the delete's purge may have run already, so
        // the image just stored is removed here. Best effort: the job settles as done
        // either way (see `settle_if_deleted`), and a failure is logged with the key.
        if let Err(e) = ctx.store.delete(&thumb_key).await {
            tracing::warn!(
                error = %e,
                s3.key = thumb_key.as_str(),
                "could not remove the thumbnail of a deleted video"
            );
        }
        return Err(JobError::permanent(
            "video.deleted",
            format!("video {id} was deleted while its thumbnail was made"),
        ));
    }
    announce(ctx, &video, VideoStatus::Ready).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use vidscope_core::jobs::NewJob;

    use super::*;

    /// The probe's follow-up: its id derives from the probe's, and its JSON is the form jobs
    /// already queued have.
    #[test]
    fn the_probe_enqueues_it_in_its_first_release_wire_form() {
        let id = VideoId::generate();
        let job = NewJob::derived(
            "j1",
            &ThumbnailPayload {
                video_id: id.clone(),
            },
        );
        assert_eq!((job.id.as_str(), job.kind()), ("j1/video.thumbnail", KIND));
        let json = serde_json::json!({ "videoId": id.as_str() });
        assert_eq!(job.payload(), Some(&json));
        let parsed: ThumbnailPayload = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.video_id, id);
    }
}

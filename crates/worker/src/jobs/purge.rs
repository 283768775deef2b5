//! `video.purge`: removes a deleted lesson's objects (its video and thumbnail) from the store.
//! Payload: [`PurgePayload`], written by the lesson delete in the transaction that removes the
//! row (`vidscope_core::videos::delete`, which says why the objects go after the row).
//!
//! Idempotent: deleting a missing object succeeds, so a redelivered or retried job is harmless.
//! Every store failure is retried, whatever its class (a local store the worker cannot write
//! now, an S3 that is down or refusing): the row is already gone, so retrying is the only way
//! the bytes ever leave, and the backoff spaces the attempts while the store recovers. After
//! `VIDSCOPE_JOB_MAX_ATTEMPTS` failures the job is dead-lettered like any other, its keys in the
//! dead letter's payload.

use tracing::Instrument;
use tracing::field::Empty;
use vidscope_core::jobs::purge::PurgePayload;
use vidscope_core::jobs::{JobKind, JobMessage, JobPayload};
use vidscope_core::storage::ObjectKey;

use super::{Job, JobContext, step};
use crate::error::JobError;

const KIND: JobKind = PurgePayload::KIND;

pub struct Purge;

impl Job for Purge {
    type Payload = PurgePayload;
    const STEPS: &'static [&'static str] = &["storage.delete"];

    async fn run(
        &self,
        ctx: &JobContext,
        _job: &JobMessage,
        payload: PurgePayload,
    ) -> Result<(), JobError> {
        tracing::Span::current().record("video.id", payload.video_id.as_str());
        // Parsed before any I/O: a key that does not parse is a bad payload, never retried.
        let keys = payload
            .keys
            .iter()
            .map(|k| ObjectKey::parse(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| JobError::permanent("job.bad_payload", e.to_string()))?;
        step(ctx, KIND, "storage.delete", async {
            for key in &keys {
                delete(ctx, key).await?;
            }
            Ok(())
        })
        .await?;
        tracing::info!(
            video.id = payload.video_id.as_str(),
            objects = keys.len() as i64,
            "video.purged"
        );
        Ok(())
    }
}

/// Removes one object inside a `storage.delete` span; any failure is transient (see the
/// module doc).
async fn delete(ctx: &JobContext, key: &ObjectKey) -> Result<(), JobError> {
    let span = tracing::info_span!(
        "storage.delete",
        storage.backend = ctx.store.backend_name(),
        s3.key = key.as_str(),
        error.type = Empty,
    );
    let result = ctx
        .store
        .delete(key)
        .instrument(span.clone())
        .await
        .map_err(|e| {
            let e = JobError::from(e);
            JobError::transient(e.error_type, format!("removing {key}: {}", e.message))
        });
    if let Err(e) = &result {
        vidscope_telemetry::classify::record_classified(&span, e);
    }
    result
}

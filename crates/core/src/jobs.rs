//! Jobs as messages: the kinds the worker knows, the envelope every queue carries, each kind's
//! payload, and the record of completed jobs. How jobs get into a queue (the transactional
//! outbox and its relay) is [`crate::outbox`], which builds on this module and the queue.
//!
//! Each kind's payload is a serde struct in a file of its own (`jobs/<job>.rs`): producers build
//! it, the worker parses it once, before its handler runs ([`parse_payload`]). The payloads live
//! here, not in the worker, because the API and this crate's own transactions enqueue them.

pub mod crm_sync;
pub mod probe;
pub mod thumbnail;

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::db::{Db, InDbSpan, now_millis, query_span};

/// Every job the worker runs. The names are the queue (stream) names and the
/// `messaging.destination.name` / `workflow_name` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobKind {
    #[serde(rename = "video.probe")]
    VideoProbe,
    #[serde(rename = "video.thumbnail")]
    VideoThumbnail,
    #[serde(rename = "crm.sync")]
    CrmSync,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [
        JobKind::VideoProbe,
        JobKind::VideoThumbnail,
        JobKind::CrmSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::VideoProbe => "video.probe",
            JobKind::VideoThumbnail => "video.thumbnail",
            JobKind::CrmSync => "crm.sync",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| CoreError::Invalid(format!("unknown job kind {s:?}")))
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The envelope both queues carry. `trace` holds the W3C `traceparent`/`baggage` of the span
/// that published the job, so processing continues the same trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    /// Stable across retries and republishes: the idempotency key of the handlers.
    pub id: String,
    pub kind: JobKind,
    pub payload: serde_json::Value,
    #[serde(default)]
    pub trace: HashMap<String, String>,
    /// When the outbox row was written (Unix ms).
    pub enqueued_at: i64,
    /// When the job last became claimable (Unix ms): enqueue time, or the end of a retry delay.
    /// Queue wait is measured from here.
    pub available_at: i64,
    /// Deliveries before this message (a retry is a new message carrying the count on).
    #[serde(default)]
    pub attempt: u32,
}

#[cfg(test)]
impl JobMessage {
    pub(crate) fn for_test(kind: JobKind, payload: serde_json::Value) -> Self {
        Self {
            id: "j1".into(),
            kind,
            payload,
            trace: HashMap::new(),
            enqueued_at: 0,
            available_at: 0,
            attempt: 0,
        }
    }
}

/// The payload of one job kind. Its serde form is the wire format of jobs already in a queue
/// or an outbox: change it only in ways the old form still parses into (new fields optional).
pub trait JobPayload: Serialize + DeserializeOwned + Send + Sync + 'static {
    const KIND: JobKind;
}

/// A payload that does not parse into its kind's struct, or a message of another kind. Retrying
/// cannot fix it: the worker dead-letters the job at once with this message.
#[derive(Debug, thiserror::Error)]
pub enum BadPayload {
    #[error("malformed {kind} payload: {error}")]
    Malformed {
        kind: JobKind,
        error: serde_json::Error,
    },
    #[error("a {expected} job was given a {got} message")]
    WrongKind { expected: JobKind, got: JobKind },
}

/// Parses a message's payload into its kind's struct: the one place a job's JSON is read.
pub fn parse_payload<P: JobPayload>(message: &JobMessage) -> Result<P, BadPayload> {
    if message.kind != P::KIND {
        return Err(BadPayload::WrongKind {
            expected: P::KIND,
            got: message.kind,
        });
    }
    P::deserialize(&message.payload).map_err(|error| BadPayload::Malformed {
        kind: P::KIND,
        error,
    })
}

/// A job to write into the outbox, built from a typed payload.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub(crate) kind: JobKind,
    /// `Err` holds why the payload did not serialise; [`crate::outbox::write_outbox`] refuses
    /// such a job (an error the producer sees) instead of storing a payload nobody could run.
    pub(crate) payload: Result<serde_json::Value, String>,
}

impl NewJob {
    pub fn new<P: JobPayload>(payload: &P) -> Self {
        Self::with_id(uuid::Uuid::new_v4().to_string(), payload)
    }

    /// A job whose id derives from its cause, so a cause processed twice (a redelivered
    /// probe) enqueues its follow-up once.
    pub fn derived<P: JobPayload>(cause_id: &str, payload: &P) -> Self {
        Self::with_id(format!("{cause_id}/{}", P::KIND.as_str()), payload)
    }

    /// A job with an id of the caller's choosing (its idempotency key).
    pub fn with_id<P: JobPayload>(id: String, payload: &P) -> Self {
        Self {
            id,
            kind: P::KIND,
            payload: serde_json::to_value(payload).map_err(|e| e.to_string()),
        }
    }

    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// The wire form; `None` if the payload could not be serialised.
    pub fn payload(&self) -> Option<&serde_json::Value> {
        self.payload.as_ref().ok()
    }
}

pub use crm_sync::{crm_lesson_completed, crm_registered};

/// `VideoId` as the payloads carry it: a JSON string that must be a UUID. Kept here rather
/// than as a serde impl on `VideoId`, so the id type does not grow a wire format of its own.
mod video_id_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::VideoId;

    pub(super) fn serialize<S: Serializer>(id: &VideoId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(id.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VideoId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        VideoId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("videoId {s:?} is not a UUID")))
    }
}

/// Whether the job already completed (a redelivery or duplicate publish).
pub async fn is_done(db: &Db, job_id: &str) -> Result<bool, CoreError> {
    const SQL: &str = "SELECT job_id FROM job_results WHERE job_id = $1";
    let row = sqlx::query(SQL)
        .bind(job_id)
        .fetch_optional(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "job_results", SQL))
        .await?;
    Ok(row.is_some())
}

/// Records the job as completed; `Ok(false)` when it already was.
pub async fn mark_done(db: &Db, job_id: &str, kind: JobKind) -> Result<bool, CoreError> {
    const SQL: &str = "INSERT INTO job_results (job_id, kind, completed_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (job_id) DO NOTHING";
    let done = sqlx::query(SQL)
        .bind(job_id)
        .bind(kind.as_str())
        .bind(now_millis())
        .execute(db.pool())
        .in_db_span(query_span(db.backend(), "INSERT", "job_results", SQL))
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()).unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert!(JobKind::parse("video.transcode").is_err());
    }

    #[test]
    fn derived_ids_are_stable() {
        let p = thumbnail::ThumbnailPayload {
            video_id: crate::domain::VideoId::generate(),
        };
        let a = NewJob::derived("j1", &p);
        let b = NewJob::derived("j1", &p);
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, "j1/video.thumbnail");
        assert_eq!(a.kind(), JobKind::VideoThumbnail);
        assert_ne!(a.id, NewJob::new(&p).id);
    }

    #[test]
    fn a_message_of_another_kind_is_refused() {
        let m = JobMessage::for_test(
            JobKind::VideoProbe,
            serde_json::json!({ "userId": "u1", "event": { "type": "registered" } }),
        );
        let e = parse_payload::<crm_sync::CrmSyncPayload>(&m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a crm.sync job was given a video.probe message"
        );
    }
}

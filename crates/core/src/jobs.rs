//! Jobs as messages: a job's kind, the envelope every queue carries, the payloads the API and
//! this crate produce, and the record of completed jobs. How jobs get into a queue (the
//! transactional outbox and its relay) is [`crate::outbox`], which builds on this module and the
//! queue.
//!
//! A job kind's name is written once, as its payload's [`JobPayload::KIND`]. Which kinds exist
//! is not listed here: it is the set of jobs the worker registers (`Registry::standard` in
//! `vidscope-worker`), which the worker hands to its queue ([`crate::queue`]) and so to the
//! outbox relay. A kind read back from a queue or a table is checked against that set
//! ([`JobKind::find`]); a job of a kind the worker does not run is dead-lettered at the claim.
//!
//! A payload lives beside the code that runs its job (`vidscope-worker`'s `jobs/<job>.rs`),
//! unless something outside the worker produces it: then it lives here, in `jobs/<job>.rs`,
//! because the API and this crate's own transactions enqueue it and do not depend on the
//! worker. So `video.probe` (enqueued by the upload and the reprocess route), `video.purge` (by the
//! lesson delete) and `crm.sync` (by registration and lesson completion) are here, and `video.thumbnail` (enqueued by the probe job) is in the worker.
//! The worker parses a payload once, before its handler runs ([`parse_payload`]).

pub mod crm_sync;
pub mod probe;
pub mod purge;

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::db::{Db, execute, now_millis, select_by_key};

/// A job kind: the queue (stream) name, `messaging.destination.name`, `job.type` and
/// `workflow_name`. Made once per kind, in a `const` ([`JobPayload::KIND`]), by [`JobKind::new`],
/// which checks the name at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobKind(&'static str);

impl JobKind {
    /// A kind named `name`: words of `a-z`, `0-9` and `_` joined by single dots
    /// (`video.probe`). The name becomes a Redis key, a metric label and a literal in the
    /// outbox relay's SQL, so nothing else is allowed. In a `const` the check runs at compile
    /// time: a bad name fails the build of the first crate that uses the kind.
    pub const fn new(name: &'static str) -> Self {
        assert!(
            is_kind_name(name),
            "a job kind is words of a-z, 0-9 and _ joined by single dots"
        );
        Self(name)
    }

    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The kind among `known` named `name`: how a kind read from a queue or a table is checked.
    pub fn find(known: &[JobKind], name: &str) -> Result<Self, CoreError> {
        known
            .iter()
            .copied()
            .find(|k| k.0 == name)
            .ok_or_else(|| CoreError::Invalid(format!("unknown job kind {name:?}")))
    }
}

/// Whether `name` is words of `a-z`, `0-9` and `_` joined by single dots (see [`JobKind::new`]).
const fn is_kind_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut after_dot = true;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'.' {
            if after_dot {
                return false;
            }
            after_dot = true;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' {
            after_dot = false;
        } else {
            return false;
        }
        i += 1;
    }
    !after_dot
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The envelope both queues carry. `trace` holds the W3C `traceparent`/`baggage` of the span
/// that published the job, so processing continues the same trace.
///
/// `Kind` is a [`JobKind`] except while a message read from a queue has its kind as a bare
/// name ([`UncheckedMessage`]), before [`UncheckedMessage::check_kind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage<Kind = JobKind> {
    /// Stable across retries and republishes: the idempotency key of the handlers.
    pub id: String,
    pub kind: Kind,
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

/// A message as a queue stores it (JSON), its kind a name not yet checked.
pub type UncheckedMessage = JobMessage<String>;

impl UncheckedMessage {
    /// The message, if its kind is among `known` (the kinds the worker runs).
    pub fn check_kind(self, known: &[JobKind]) -> Result<JobMessage, CoreError> {
        Ok(JobMessage {
            kind: JobKind::find(known, &self.kind)?,
            id: self.id,
            payload: self.payload,
            trace: self.trace,
            enqueued_at: self.enqueued_at,
            available_at: self.available_at,
            attempt: self.attempt,
        })
    }
}

/// Asserts that `payload` is written as `json` and that `json` reads back as `payload`: the
/// wire form of jobs already queued must not change unnoticed.
#[cfg(test)]
pub(crate) fn assert_wire_form<P: JobPayload + PartialEq + std::fmt::Debug>(
    payload: &P,
    json: serde_json::Value,
) {
    assert_eq!(serde_json::to_value(payload).unwrap(), json);
    let message = JobMessage::for_test(P::KIND, json);
    assert_eq!(&parse_payload::<P>(&message).unwrap(), payload);
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
    /// The kind's name, written here and nowhere else: `JobKind::new("video.probe")`.
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

/// `VideoId` as the payloads carry it (`#[serde(with = "vidscope_core::jobs::video_id_serde")]`):
/// a JSON string that must be a UUID. Kept here rather than as a serde impl on `VideoId`, so
/// the id type does not grow a wire format of its own.
pub mod video_id_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::VideoId;

    pub fn serialize<S: Serializer>(id: &VideoId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(id.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VideoId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        VideoId::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("videoId {s:?} is not a UUID")))
    }
}

/// Whether the job already completed (a redelivery or duplicate publish).
pub async fn is_done(db: &Db, job_id: &str) -> Result<bool, CoreError> {
    const SQL: &str = "SELECT job_id FROM job_results WHERE job_id = $1";
    let row = select_by_key(db, "job_results", SQL, job_id).await?;
    Ok(row.is_some())
}

/// Records the job as completed; `Ok(false)` when it already was.
pub async fn mark_done(db: &Db, job_id: &str, kind: JobKind) -> Result<bool, CoreError> {
    const SQL: &str = "INSERT INTO job_results (job_id, kind, completed_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (job_id) DO NOTHING";
    let query = sqlx::query(SQL)
        .bind(job_id)
        .bind(kind.as_str())
        .bind(now_millis());
    Ok(execute(db, "INSERT", "job_results", SQL, query).await? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_is_found_among_the_known_by_its_name_and_serialised_as_it() {
        let known = [probe::ProbePayload::KIND, crm_sync::CrmSyncPayload::KIND];
        for k in known {
            assert_eq!(JobKind::find(&known, k.as_str()).unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        let e = JobKind::find(&known, "video.transcode").unwrap_err();
        assert_eq!(e.to_string(), "unknown job kind \"video.transcode\"");
    }

    #[test]
    fn kind_names_are_dotted_lower_case_words() {
        for good in ["video.probe", "crm.sync", "a", "x_1.y2"] {
            assert!(is_kind_name(good), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "Video.probe",
            "a b",
            "a'b",
            "a:b",
            "é",
        ] {
            assert!(!is_kind_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_unchecked_message_keeps_everything_but_checks_its_kind() {
        let m = JobMessage::for_test(probe::ProbePayload::KIND, serde_json::json!({ "n": 1 }));
        let text = serde_json::to_string(&m).unwrap();
        let unchecked: UncheckedMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(unchecked.kind, "video.probe");
        assert_eq!(
            unchecked
                .clone()
                .check_kind(&[probe::ProbePayload::KIND])
                .unwrap(),
            m
        );
        assert!(
            unchecked
                .check_kind(&[crm_sync::CrmSyncPayload::KIND])
                .is_err()
        );
    }

    #[test]
    fn derived_ids_are_stable() {
        let p = probe::ProbePayload {
            video_id: crate::domain::VideoId::generate(),
        };
        let a = NewJob::derived("j1", &p);
        let b = NewJob::derived("j1", &p);
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, "j1/video.probe");
        assert_eq!(a.kind(), probe::ProbePayload::KIND);
        assert_ne!(a.id, NewJob::new(&p).id);
    }

    #[test]
    fn a_message_of_another_kind_is_refused() {
        let m = JobMessage::for_test(
            probe::ProbePayload::KIND,
            serde_json::json!({ "userId": "u1", "event": { "type": "registered" } }),
        );
        let e = parse_payload::<crm_sync::CrmSyncPayload>(&m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a crm.sync job was given a video.probe message"
        );
    }
}

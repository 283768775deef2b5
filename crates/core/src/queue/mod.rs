//! The job queue port and its two adapters, with one contract:
//!
//! - **at least once**: a claimed job stays hidden for the visibility timeout; if its worker
//!   neither acknowledges, retries, dead-letters nor extends it in time, another worker
//!   reclaims it. Handlers are idempotent by job id (see [`crate::jobs::is_done`]).
//! - **retry** makes the job claimable again after a delay (the worker picks exponential
//!   backoff with jitter); **dead letter** parks it with its error class for a human.
//! - **release** (graceful shutdown) makes it claimable again at once.
//!
//! [`RedisQueue`]: Redis Streams, one stream per job kind with a consumer group, a sorted set
//! per kind for delayed retries, a `:dead` stream per kind. [`DbQueue`]: the `jobs` table with
//! leases, for the embedded default.
//!
//! A queue is built with the kinds its worker runs (the worker's registry, see
//! [`crate::jobs`]): the Redis streams it reads, the outbox rows the relay takes, and the check
//! of every claimed job's kind (a job of another kind is dead-lettered at the claim). An enum rather than a trait object: two adapters, chosen by
//! configuration, with async methods and no boxing.

mod db;
mod redis;

use std::time::Duration;

pub use self::db::DbQueue;
pub use self::redis::RedisQueue;
use crate::CoreError;
use crate::jobs::{JobKind, JobMessage};

/// A claimed job and the receipt needed to settle it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: JobMessage,
    /// 1-based delivery number, counting reclaims after a worker died.
    pub attempt: u32,
    receipt: Receipt,
}

#[derive(Debug, Clone)]
enum Receipt {
    Db { token: String },
    Redis { stream: String, entry: String },
}

/// A dead-lettered job, for inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message: JobMessage,
    pub attempt: u32,
    pub error_class: String,
    pub error: String,
}

/// Jobs of one kind in one state (`ready`, `delayed`, `in_flight`, `dead`).
#[derive(Debug, Clone, PartialEq)]
pub struct Depth {
    pub kind: JobKind,
    pub state: &'static str,
    pub count: i64,
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How long a claimed job stays hidden without a heartbeat.
    pub visibility: Duration,
    /// This worker's name (Redis consumer name; informational for the database queue).
    pub consumer: String,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(60),
            consumer: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Queue {
    Redis(RedisQueue),
    Db(DbQueue),
}

impl Queue {
    /// `messaging.system`: `redis` for Streams; the embedded queue names itself.
    pub fn system(&self) -> &'static str {
        match self {
            Queue::Redis(_) => "redis",
            Queue::Db(_) => "vidscope_db",
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        match self {
            Queue::Redis(q) => &q.settings,
            Queue::Db(q) => &q.settings,
        }
    }

    /// The kinds this queue serves (those its worker runs).
    pub fn kinds(&self) -> &[JobKind] {
        match self {
            Queue::Redis(q) => &q.kinds,
            Queue::Db(q) => &q.kinds,
        }
    }

    /// How many times the queue found its store emptied under it (Redis lost its data; see
    /// [`RedisQueue::losses`]); always 0 for the database queue, which cannot lose a job
    /// the database keeps.
    pub fn losses(&self) -> u64 {
        match self {
            Queue::Redis(q) => q.losses(),
            Queue::Db(_) => 0,
        }
    }

    /// Makes the queue usable (creates streams and consumer groups; nothing for the table).
    pub async fn prepare(&self) -> Result<(), CoreError> {
        match self {
            Queue::Redis(q) => q.prepare().await,
            Queue::Db(_) => Ok(()),
        }
    }

    /// Adds a job. Publishing an id the database queue already holds is a no-op; Redis
    /// delivers it again and the handlers' idempotency absorbs it.
    pub async fn publish(&self, message: &JobMessage) -> Result<(), CoreError> {
        match self {
            Queue::Redis(q) => q.publish(message).await,
            Queue::Db(q) => q.publish(message).await,
        }
    }

    /// Claims up to `max` jobs: first those whose worker went silent, then new ones, waiting up
    /// to `wait` when there are none.
    pub async fn claim(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, CoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        match self {
            Queue::Redis(q) => q.claim(max, wait).await,
            Queue::Db(q) => q.claim(max, wait).await,
        }
    }

    /// The job is done: remove it. `Ok(false)` when the lease was lost (another worker
    /// reclaimed the job meanwhile).
    pub async fn ack(&self, d: &Delivery) -> Result<bool, CoreError> {
        match (self, &d.receipt) {
            (Queue::Redis(q), Receipt::Redis { stream, entry }) => q.ack(stream, entry).await,
            (Queue::Db(q), Receipt::Db { token }) => q.ack(&d.message.id, token).await,
            _ => Err(foreign_receipt()),
        }
    }

    /// Makes the job claimable again after `delay`, remembering the attempt count.
    pub async fn retry(&self, d: &Delivery, delay: Duration, error: &str) -> Result<(), CoreError> {
        match (self, &d.receipt) {
            (Queue::Redis(q), Receipt::Redis { stream, entry }) => {
                q.retry(stream, entry, &d.message, d.attempt, delay).await
            }
            (Queue::Db(q), Receipt::Db { token }) => {
                q.retry(&d.message.id, token, delay, error).await
            }
            _ => Err(foreign_receipt()),
        }
    }

    /// Parks the job in the dead letter with its error class.
    pub async fn dead_letter(
        &self,
        d: &Delivery,
        error_class: &str,
        error: &str,
    ) -> Result<(), CoreError> {
        match (self, &d.receipt) {
            (Queue::Redis(q), Receipt::Redis { stream, entry }) => {
                q.dead_letter(stream, entry, &d.message, d.attempt, error_class, error)
                    .await
            }
            (Queue::Db(q), Receipt::Db { token }) => {
                q.dead_letter(&d.message.id, token, error_class, error)
                    .await
            }
            _ => Err(foreign_receipt()),
        }
    }

    /// Gives the job back unprocessed (shutdown): claimable again at once, and this delivery
    /// does not count as an attempt.
    pub async fn release(&self, d: &Delivery) -> Result<(), CoreError> {
        match (self, &d.receipt) {
            (Queue::Redis(q), Receipt::Redis { stream, entry }) => q.release(stream, entry).await,
            (Queue::Db(q), Receipt::Db { token }) => q.release(&d.message.id, token).await,
            _ => Err(foreign_receipt()),
        }
    }

    /// Extends the lease of a job still being worked on (called well within the visibility
    /// timeout). `Ok(false)` when the lease was already lost.
    pub async fn heartbeat(&self, d: &Delivery) -> Result<bool, CoreError> {
        match (self, &d.receipt) {
            (Queue::Redis(q), Receipt::Redis { stream, entry }) => q.heartbeat(stream, entry).await,
            (Queue::Db(q), Receipt::Db { token }) => q.heartbeat(&d.message.id, token).await,
            _ => Err(foreign_receipt()),
        }
    }

    /// Jobs per kind and state, for the `job.queue_depth` gauge.
    pub async fn depth(&self) -> Result<Vec<Depth>, CoreError> {
        match self {
            Queue::Redis(q) => q.depth().await,
            Queue::Db(q) => q.depth().await,
        }
    }

    /// The most recent dead letters of `kind`.
    pub async fn dead_letters(
        &self,
        kind: JobKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, CoreError> {
        match self {
            Queue::Redis(q) => q.dead_letters(kind, limit).await,
            Queue::Db(q) => q.dead_letters(kind, limit).await,
        }
    }
}

fn foreign_receipt() -> CoreError {
    CoreError::Invalid("a delivery was settled on a queue it did not come from".into())
}

/// The span of one messaging operation on a job (semantic conventions), named
/// `<operation> <kind>`: `create` (the outbox row is written, PRODUCER), `receive` (the relay
/// takes it, CONSUMER), `send` (the relay publishes it, PRODUCER), `process` (the worker runs it,
/// CONSUMER). Every one carries the system, the operation, the destination (the job kind) and
/// the message id; more fields may follow. A macro because a span's name must be a literal.
#[macro_export]
macro_rules! messaging_span {
    (
        $name:literal, $operation:literal, $span_kind:literal,
        system = $system:expr, kind = $kind:expr, id = $id:expr $(, $($fields:tt)+)?
    ) => {
        ::tracing::info_span!(
            $name,
            otel.name = %format_args!("{} {}", $operation, $kind.as_str()),
            otel.kind = $span_kind,
            messaging.system = $system,
            messaging.operation.type = $operation,
            messaging.operation.name = $operation,
            messaging.destination.name = $kind.as_str(),
            messaging.message.id = $id,
            $($($fields)+)?
        )
    };
}

/// The PRODUCER span of a publish.
pub fn producer_span(queue: &Queue, kind: JobKind, job_id: &str) -> tracing::Span {
    messaging_span! {
        "messaging.publish", "send", "producer",
        system = queue.system(), kind = kind, id = job_id,
        error.type = tracing::field::Empty,
    }
}

//! Redis Streams adapter. Per job kind `<prefix>:<kind>` is the stream read by the consumer
//! group, `<prefix>:<kind>:delayed` a sorted set of retries scored by due time, and
//! `<prefix>:<kind>:dead` the dead-letter stream.
//!
//! Every state change is one atomic step (`MULTI` or a Lua script), so a crash between two
//! commands can neither lose a job nor duplicate one: a retry adds the delayed copy and
//! acknowledges/deletes the original in one transaction; promotion moves due copies into the
//! stream in one script. Acknowledged entries are deleted, so `XLEN` counts what is left.
//!
//! Redis may come back empty (a restart without persistence, a failover to a replica that had
//! nothing, a flush). A claim that finds its consumer group gone (`NOGROUP`) recreates every
//! group from the start of its stream, so what the relay published meanwhile is read, and
//! counts the loss ([`RedisQueue::losses`]); the jobs Redis held are published again from the
//! database by [`crate::outbox::republish_lost`], which [`RedisQueue::held_job_ids`] serves.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};

use super::{DeadLetter, Delivery, Depth, QueueSettings, Receipt};
use crate::CoreError;
use crate::db::now_millis;
use crate::jobs::{JobKind, JobMessage, UncheckedMessage};

const GROUP: &str = "vidscope-workers";
/// Longest a claim blocks in `XREADGROUP`: below the connection's 2 s response timeout.
const MAX_BLOCK: Duration = Duration::from_millis(1000);
/// Dead-letter streams keep about this many entries.
const DEAD_MAXLEN: usize = 10_000;

/// Moves due members of the delayed set (KEYS[1]) into the stream (KEYS[2]) atomically.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', m)
  redis.call('ZREM', KEYS[1], m)
end
return #due
";

#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    prefix: String,
    pub(super) kinds: std::sync::Arc<[JobKind]>,
    pub(super) settings: QueueSettings,
    promote: std::sync::Arc<redis::Script>,
    /// Times a claim found the consumer groups gone and recreated them (shared by clones).
    losses: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// `prefix` namespaces the keys (`vidscope:jobs` in production; tests use their own).
    /// The connection should be the worker's own: `XREADGROUP BLOCK` holds it while waiting.
    /// `kinds`: the job kinds its worker runs, one stream each.
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        kinds: &[JobKind],
        settings: QueueSettings,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            kinds: kinds.into(),
            settings,
            promote: std::sync::Arc::new(redis::Script::new(PROMOTE)),
            losses: Arc::default(),
        }
    }

    /// How many times this queue (or a clone) found Redis without its consumer groups and
    /// recreated them: each is a loss of whatever Redis held, for the caller to make good
    /// from the database.
    pub fn losses(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    fn stream(&self, kind: JobKind) -> String {
        format!("{}:{}", self.prefix, kind.as_str())
    }

    fn kind_of_stream(&self, stream: &str) -> Option<JobKind> {
        self.kinds
            .iter()
            .copied()
            .find(|k| self.stream(*k) == stream)
    }

    pub(super) async fn prepare(&self) -> Result<(), CoreError> {
        let mut conn = self.conn.clone();
        for &kind in self.kinds.iter() {
            let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.stream(kind))
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match created {
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    pub(super) async fn publish(&self, m: &JobMessage) -> Result<(), CoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.stream(m.kind))
            .arg("*")
            .arg("job")
            .arg(encode(m)?)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Due retries first join their streams; then the jobs whose worker went silent are taken
    /// over (they have waited longest); only when there are none, new ones are read, waiting up
    /// to `wait`. A consumer group found missing (Redis lost its data) is recreated, the loss
    /// counted, and the claim answers nothing this time.
    pub(super) async fn claim(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, CoreError> {
        match self.claim_from_groups(max, wait).await {
            Err(CoreError::Redis(e)) if e.code() == Some("NOGROUP") => {
                self.prepare().await?;
                let losses = self.losses.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    error = %e,
                    losses,
                    "the queue's consumer groups were gone (Redis lost its data); recreated from the start of each stream"
                );
                Ok(Vec::new())
            }
            claimed => claimed,
        }
    }

    async fn claim_from_groups(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, CoreError> {
        self.promote_due_retries().await?;
        let reclaimed = self.reclaim_silent(max).await?;
        if !reclaimed.is_empty() {
            return Ok(reclaimed);
        }
        self.read_new(max, wait).await
    }

    /// Moves the retries whose delay is over from each kind's delayed set into its stream.
    async fn promote_due_retries(&self) -> Result<(), CoreError> {
        let mut conn = self.conn.clone();
        let now = now_millis();
        for &kind in self.kinds.iter() {
            let _: i64 = self
                .promote
                .key(format!("{}:delayed", self.stream(kind)))
                .key(self.stream(kind))
                .arg(now)
                .arg(100)
                .invoke_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Up to `max` entries left pending longer than the visibility timeout (`XAUTOCLAIM`).
    async fn reclaim_silent(&self, max: usize) -> Result<Vec<Delivery>, CoreError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        for &kind in self.kinds.iter() {
            if out.len() >= max {
                break;
            }
            let stream = self.stream(kind);
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(&self.settings.consumer)
                .arg(self.settings.visibility.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(max - out.len())
                .query_async(&mut conn)
                .await?;
            for entry in reply.claimed {
                let delivered = self.delivered_count(&stream, &entry.id).await?;
                if let Some(d) = self.readable(&stream, entry, delivered).await? {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Up to `max` entries never delivered (`XREADGROUP` over every stream, blocking up to
    /// `wait`, at most [`MAX_BLOCK`]).
    async fn read_new(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, CoreError> {
        let mut conn = self.conn.clone();
        let streams: Vec<String> = self.kinds.iter().map(|k| self.stream(*k)).collect();
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.settings.consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(wait.min(MAX_BLOCK).as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&streams);
        for _ in &streams {
            cmd.arg(">");
        }
        let reply: Option<StreamReadReply> = cmd.query_async(&mut conn).await?;
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                if let Some(d) = self.readable(&key.key, entry, 1).await? {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// The entry's owner and delivery count in the group's pending list (`None`: not
    /// pending, i.e. acknowledged or never delivered).
    async fn pending(&self, stream: &str, entry: &str) -> Result<Option<(String, u32)>, CoreError> {
        let mut conn = self.conn.clone();
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(GROUP)
            .arg(entry)
            .arg(entry)
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(rows.into_iter().next().map(|r| (r.1, r.3 as u32)))
    }

    /// Times the entry was delivered.
    async fn delivered_count(&self, stream: &str, entry: &str) -> Result<u32, CoreError> {
        Ok(self.pending(stream, entry).await?.map_or(1, |(_, n)| n))
    }

    /// The entry as a delivery, or `None` when no worker can read it (not a job, a kind this
    /// build does not know, in the wrong stream): it would fail every claim that returns it,
    /// holding up the entries delivered with it. It moves to the dead-letter stream as it was
    /// written, with the reason.
    async fn readable(
        &self,
        stream: &str,
        entry: StreamId,
        delivered: u32,
    ) -> Result<Option<Delivery>, CoreError> {
        let raw: Option<String> = entry.get("job");
        let id = entry.id.clone();
        match self.delivery(stream, entry, delivered) {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                tracing::error!(
                    messaging.message.id = %id,
                    error = %e,
                    "unreadable stream entry dead-lettered at claim"
                );
                let raw = raw.unwrap_or_default();
                self.move_to_dead(stream, &id, &raw, delivered, "permanent", &e.to_string())
                    .await?;
                Ok(None)
            }
        }
    }

    fn delivery(
        &self,
        stream: &str,
        entry: StreamId,
        delivered: u32,
    ) -> Result<Delivery, CoreError> {
        let raw: String = entry.get("job").ok_or_else(|| {
            CoreError::Invalid(format!(
                "stream entry {} in {stream} has no job field",
                entry.id
            ))
        })?;
        let message = serde_json::from_str::<UncheckedMessage>(&raw)
            .map_err(|e| e.to_string())
            .and_then(|m| m.check_kind(&self.kinds).map_err(|e| e.to_string()))
            .map_err(|e| {
                CoreError::Invalid(format!(
                    "stream entry {} in {stream} is not a job: {e}",
                    entry.id
                ))
            })?;
        if self.kind_of_stream(stream) != Some(message.kind) {
            return Err(CoreError::Invalid(format!(
                "job {} of kind {} found in {stream}",
                message.id, message.kind
            )));
        }
        Ok(Delivery {
            attempt: message.attempt + delivered,
            message,
            receipt: Receipt::Redis {
                stream: stream.to_owned(),
                entry: entry.id,
            },
        })
    }

    pub(super) async fn ack(&self, stream: &str, entry: &str) -> Result<bool, CoreError> {
        let mut conn = self.conn.clone();
        let (acked,): (i64,) = remove(redis::pipe().atomic(), stream, entry)
            .query_async(&mut conn)
            .await?;
        Ok(acked > 0)
    }

    pub(super) async fn retry(
        &self,
        stream: &str,
        entry: &str,
        message: &JobMessage,
        attempt: u32,
        delay: Duration,
    ) -> Result<(), CoreError> {
        let due = now_millis() + delay.as_millis() as i64;
        let next = JobMessage {
            attempt,
            available_at: due,
            ..message.clone()
        };
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(format!("{stream}:delayed"))
            .arg(due)
            .arg(encode(&next)?)
            .ignore();
        let _: (i64,) = remove(&mut pipe, stream, entry)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Appends `job` (the message as written) to the kind's dead-letter stream with the
    /// attempt and error, and removes the entry, atomically.
    async fn move_to_dead(
        &self,
        stream: &str,
        entry: &str,
        job: &str,
        attempt: u32,
        error_class: &str,
        error: &str,
    ) -> Result<(), CoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(format!("{stream}:dead"))
            .arg("MAXLEN")
            .arg("~")
            .arg(DEAD_MAXLEN)
            .arg("*")
            .arg("job")
            .arg(job)
            .arg("attempt")
            .arg(attempt)
            .arg("error_class")
            .arg(error_class)
            .arg("error")
            .arg(error)
            .ignore();
        let _: (i64,) = remove(&mut pipe, stream, entry)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(super) async fn dead_letter(
        &self,
        stream: &str,
        entry: &str,
        message: &JobMessage,
        attempt: u32,
        error_class: &str,
        error: &str,
    ) -> Result<(), CoreError> {
        self.move_to_dead(
            stream,
            entry,
            &encode(message)?,
            attempt,
            error_class,
            error,
        )
        .await
    }

    /// Marks the entry idle for the whole visibility timeout, so the next claim (ours or
    /// another worker's) reclaims it at once, and takes this delivery off its count.
    pub(super) async fn release(&self, stream: &str, entry: &str) -> Result<(), CoreError> {
        let delivered = self.delivered_count(stream, entry).await?;
        let mut conn = self.conn.clone();
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(&self.settings.consumer)
            .arg(0)
            .arg(entry)
            .arg("IDLE")
            .arg(self.settings.visibility.as_millis() as u64)
            .arg("RETRYCOUNT")
            .arg(delivered.saturating_sub(1))
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Resets the entry's idle time, if this consumer still owns it.
    pub(super) async fn heartbeat(&self, stream: &str, entry: &str) -> Result<bool, CoreError> {
        let owner = self.pending(stream, entry).await?.map(|(owner, _)| owner);
        if owner.as_deref() != Some(self.settings.consumer.as_str()) {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("XCLAIM")
            .arg(stream)
            .arg(GROUP)
            .arg(&self.settings.consumer)
            .arg(0)
            .arg(entry)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(!ids.is_empty())
    }

    /// The ids of every job Redis holds for the queue's kinds: in a stream (new, or claimed
    /// and not yet settled), waiting for a retry, or dead-lettered. Each kind is read in one
    /// transaction, so a job moving between its stream, its delayed set and its dead letter
    /// (each move is atomic too) is seen exactly once. Reads whole streams: the backlog is
    /// what they hold (settled entries are deleted).
    pub async fn held_job_ids(&self) -> Result<HashSet<String>, CoreError> {
        let mut conn = self.conn.clone();
        let mut held = HashSet::new();
        for &kind in self.kinds.iter() {
            let stream = self.stream(kind);
            let (live, delayed, dead): (
                redis::streams::StreamRangeReply,
                Vec<String>,
                redis::streams::StreamRangeReply,
            ) = redis::pipe()
                .atomic()
                .cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .cmd("ZRANGE")
                .arg(format!("{stream}:delayed"))
                .arg(0)
                .arg(-1)
                .cmd("XRANGE")
                .arg(format!("{stream}:dead"))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await?;
            let entries = live.ids.iter().chain(&dead.ids);
            let texts = entries
                .filter_map(|e| e.get::<String>("job"))
                .chain(delayed);
            held.extend(texts.filter_map(|t| job_id(&t)));
        }
        Ok(held)
    }

    pub(super) async fn depth(&self) -> Result<Vec<Depth>, CoreError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        for &kind in self.kinds.iter() {
            let stream = self.stream(kind);
            let (len, delayed, dead, groups): (
                i64,
                i64,
                i64,
                redis::streams::StreamInfoGroupsReply,
            ) = redis::pipe()
                .cmd("XLEN")
                .arg(&stream)
                .cmd("ZCARD")
                .arg(format!("{stream}:delayed"))
                .cmd("XLEN")
                .arg(format!("{stream}:dead"))
                .cmd("XINFO")
                .arg("GROUPS")
                .arg(&stream)
                .query_async(&mut conn)
                .await?;
            let pending = groups
                .groups
                .iter()
                .find(|g| g.name == GROUP)
                .map_or(0, |g| g.pending as i64);
            for (state, count) in [
                ("ready", (len - pending).max(0)),
                ("delayed", delayed),
                ("in_flight", pending),
                ("dead", dead),
            ] {
                out.push(Depth { kind, state, count });
            }
        }
        Ok(out)
    }

    pub(super) async fn dead_letters(
        &self,
        kind: JobKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, CoreError> {
        let mut conn = self.conn.clone();
        let entries: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(format!("{}:dead", self.stream(kind)))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        entries
            .ids
            .into_iter()
            .map(|e| {
                let field = |name: &str| e.get::<String>(name).unwrap_or_default();
                // An entry dead-lettered because it was unreadable is listed with its text as
                // the payload, under the stream's kind and the entry's id.
                let raw = field("job");
                let message = serde_json::from_str::<UncheckedMessage>(&raw)
                    .ok()
                    .and_then(|m| m.check_kind(&self.kinds).ok())
                    .unwrap_or_else(|| JobMessage {
                        id: e.id.clone(),
                        kind,
                        payload: serde_json::Value::String(raw),
                        trace: Default::default(),
                        enqueued_at: 0,
                        available_at: 0,
                        attempt: 0,
                    });
                Ok(DeadLetter {
                    message,
                    attempt: field("attempt").parse().unwrap_or_default(),
                    error_class: field("error_class"),
                    error: field("error"),
                })
            })
            .collect()
    }
}

/// Appends the acknowledgement and deletion of a settled entry to an atomic pipeline; its
/// reply is the `XACK` count (0: the entry was no longer pending).
fn remove<'p>(pipe: &'p mut redis::Pipeline, stream: &str, entry: &str) -> &'p mut redis::Pipeline {
    pipe.cmd("XACK")
        .arg(stream)
        .arg(GROUP)
        .arg(entry)
        .cmd("XDEL")
        .arg(stream)
        .arg(entry)
        .ignore()
}

/// The `id` of a stored message (`None`: not a job message).
fn job_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Id>(text).ok().map(|m| m.id)
}

fn encode(m: &JobMessage) -> Result<String, CoreError> {
    serde_json::to_string(m).map_err(|e| CoreError::Other(e.into()))
}

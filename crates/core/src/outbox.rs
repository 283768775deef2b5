//! The transactional outbox through which the API (and the worker, when one job causes another)
//! enqueues jobs, and the relay that publishes it to the queue.
//!
//! A job is never published directly by the code that causes it. The cause (a video row, a
//! probe result, a registration) and an `outbox` row are written in one transaction; the relay
//! ([`relay_once`]) later publishes the row to the queue. So a Redis outage delays jobs but never
//! loses one, and a job exists exactly when its cause was committed.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row;
use tracing::Instrument;

use crate::CoreError;
use crate::db::{Backend, Db, InDbSpan, now_millis, query_span};
use crate::jobs::{JobKind, JobMessage, NewJob};
use crate::queue::{Queue, producer_span};

/// Writes `jobs` into the outbox inside the caller's transaction. Each job gets a PRODUCER span
/// (`create <job>`) in the current trace, and its context is what the outbox row carries: the
/// relay's CONSUMER span (`receive <job>`, in the worker) continues it, which is the
/// producer -> consumer pair the service graph draws as an edge from the writing service (the
/// API) to the worker. A job id already present is left alone (the follow-up of a redelivered
/// job).
pub async fn write_outbox(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    jobs: &[NewJob],
) -> Result<(), CoreError> {
    const SQL: &str = "INSERT INTO outbox (id, kind, payload, trace_context, created_at) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";
    for job in jobs {
        let span = crate::messaging_span! {
            "messaging.create", "create", "producer",
            system = OUTBOX_SYSTEM, kind = job.kind, id = job.id.as_str()
        };
        let trace = serde_json::to_string(&vidscope_telemetry::propagation::inject_map(&span))
            .map_err(|e| CoreError::Other(e.into()))?;
        let payload = job.payload.as_ref().map_err(|e| {
            CoreError::Invalid(format!(
                "{} job {}: payload not serialisable: {e}",
                job.kind, job.id
            ))
        })?;
        sqlx::query(SQL)
            .bind(&job.id)
            .bind(job.kind.as_str())
            .bind(payload.to_string())
            .bind(&trace)
            .bind(now_millis())
            .execute(&mut *tx)
            .in_db_span(span.in_scope(|| query_span(backend, "INSERT", "outbox", SQL)))
            .instrument(span)
            .await?;
    }
    Ok(())
}

/// `messaging.system` of the outbox hop (between the writing service and the relay).
pub const OUTBOX_SYSTEM: &str = "vidscope.outbox";

/// Writes `jobs` into the outbox in a transaction of their own (a cause with no row of its
/// own to commit alongside, e.g. a test or an admin command).
pub async fn enqueue(db: &Db, jobs: &[NewJob]) -> Result<(), CoreError> {
    let mut tx = crate::db::begin(db).await?;
    write_outbox(&mut tx, db.backend(), jobs).await?;
    crate::db::commit(tx).await?;
    Ok(())
}

/// Outbox rows not yet published.
pub async fn outbox_pending(db: &Db) -> Result<i64, CoreError> {
    const SQL: &str = "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL";
    let row = sqlx::query(SQL)
        .fetch_one(db.pool())
        .in_db_span(tracing::Span::none())
        .await?;
    Ok(row.try_get("n")?)
}

/// Publishes up to `batch` unpublished outbox rows, oldest first, and stamps each one once the
/// queue has it; returns the kinds published, in order. Stops at the first publish error (the
/// queue is down: the rest would fail too) and returns it after counting what went out; rows
/// left unstamped go out on a later call.
///
/// Every worker replica runs a relay, so each row is claimed in a transaction of its own that
/// holds it until it is published and stamped: on Postgres `FOR UPDATE SKIP LOCKED` (another
/// relay takes the next row), on SQLite `BEGIN IMMEDIATE` (one writer at a time). The
/// database queue needs no claim (see below). Two relays
/// never publish one row twice; a relay that dies mid-publish leaves its row unstamped (the
/// transaction rolls back), so it goes out again: at least once, never lost.
///
/// Each publish is a PRODUCER span, child of the span that wrote the row (the upload request,
/// the probe job), and the message carries the producer's context: upload → publish → process
/// is one trace.
///
/// Only rows of the kinds the queue serves (its worker's) are taken: during a rolling deploy a
/// newer API may write a kind an older worker cannot publish; those rows wait for a worker that knows them
/// instead of blocking every row behind them. A row whose payload is not JSON is published with
/// its text as a JSON string, so the worker dead-letters it as a bad payload with the reason.
pub async fn relay_once(db: &Db, queue: &Queue, batch: usize) -> Result<Vec<JobKind>, CoreError> {
    let mut published = Vec::new();
    for _ in 0..batch {
        match relay_one(db, queue).await {
            Ok(Some(kind)) => published.push(kind),
            Ok(None) => break,
            Err(e) if published.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, published = published.len(), "outbox relay stopped early");
                break;
            }
        }
    }
    Ok(published)
}

/// Claims, publishes and stamps the oldest unpublished row, if there is one (see [`relay_once`]).
async fn relay_one(db: &Db, queue: &Queue) -> Result<Option<JobKind>, CoreError> {
    let Some((tx, row)) = claim_oldest(db, queue).await? else {
        return Ok(None);
    };
    let span = relay_span(queue, &row);
    let result = publish_and_stamp(db, queue, tx, &row)
        .instrument(span.clone())
        .await;
    if let Err(e) = result {
        vidscope_telemetry::classify::record_classified(&span, &e);
        return Err(e);
    }
    Ok(Some(row.kind))
}

/// An unpublished outbox row of a kind the queue serves.
struct OutboxRow {
    id: String,
    kind: JobKind,
    payload: String,
    /// The context of the `create` span that wrote the row.
    trace: HashMap<String, String>,
    created_at: i64,
}

/// The transaction that holds a claimed row until it is stamped (see [`relay_once`]).
type Claim = Option<sqlx::Transaction<'static, sqlx::Any>>;

/// The oldest unpublished row of the queue's kinds, claimed for this relay.
async fn claim_oldest(db: &Db, queue: &Queue) -> Result<Option<(Claim, OutboxRow)>, CoreError> {
    // The database queue needs no claim: its publish is an `INSERT ... ON CONFLICT (id) DO
    // NOTHING`, so a second relay's copy of a row is dropped there; and it writes through the
    // pool, which a SQLite write transaction held here would block.
    let mut tx = match queue {
        Queue::Db(_) => None,
        // `BEGIN IMMEDIATE` on SQLite: see [`crate::db::begin`].
        Queue::Redis(_) => Some(crate::db::begin(db).await?),
    };
    let lock = tx.is_some() && db.backend() == Backend::Postgres;
    let select = select_oldest(queue.kinds(), lock);
    // Polls are not traced: an idle relay would otherwise start a trace every tick.
    // Audited: the only text spliced in is kind names, which cannot hold a quote.
    let query = sqlx::query(sqlx::AssertSqlSafe(select));
    let unseen = tracing::Span::none;
    let row = match &mut tx {
        Some(tx) => query.fetch_optional(&mut **tx).in_db_span(unseen()).await?,
        None => query.fetch_optional(db.pool()).in_db_span(unseen()).await?,
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let trace: String = row.try_get("trace_context")?;
    let row = OutboxRow {
        id: row.try_get("id")?,
        kind: JobKind::find(queue.kinds(), &row.try_get::<String, _>("kind")?)?,
        payload: row.try_get("payload")?,
        trace: serde_json::from_str(&trace).unwrap_or_default(),
        created_at: row.try_get("created_at")?,
    };
    Ok(Some((tx, row)))
}

/// The query of the oldest unpublished row of `kinds`; `lock`: held by this transaction, and
/// skipped by other relays' (Postgres `FOR UPDATE SKIP LOCKED`). The kinds are written into the
/// text: they are code constants whose names cannot hold a quote ([`JobKind::new`]).
fn select_oldest(kinds: &[JobKind], lock: bool) -> String {
    format!(
        "SELECT id, kind, payload, trace_context, created_at FROM outbox \
         WHERE published_at IS NULL AND kind IN ({}) ORDER BY created_at, id LIMIT 1{}",
        kind_list(kinds),
        if lock { " FOR UPDATE SKIP LOCKED" } else { "" }
    )
}

/// `kinds` as an SQL list of literals (`'video.probe', 'crm.sync'`): kind names cannot hold a
/// quote ([`JobKind::new`]).
fn kind_list(kinds: &[JobKind]) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    kinds.join(", ")
}

/// The relay's spans for `row`: it takes the row from the outbox (`receive`, CONSUMER,
/// continuing the writer's `create` span) and sends it on to the queue (the returned `send`,
/// PRODUCER, which the job's consumer continues).
fn relay_span(queue: &Queue, row: &OutboxRow) -> tracing::Span {
    let receive = vidscope_telemetry::with_remote_parent(
        vidscope_telemetry::propagation::extract_map(&row.trace),
        || {
            crate::messaging_span! {
                "messaging.receive", "receive", "consumer",
                system = OUTBOX_SYSTEM, kind = row.kind, id = row.id.as_str()
            }
        },
    );
    receive.in_scope(|| producer_span(queue, row.kind, &row.id))
}

/// Publishes the row (inside its `send` span) and stamps it published, releasing the claim.
async fn publish_and_stamp(
    db: &Db,
    queue: &Queue,
    claim: Claim,
    row: &OutboxRow,
) -> Result<(), CoreError> {
    const STAMP: &str = "UPDATE outbox SET published_at = $1 WHERE id = $2";
    queue.publish(&message(row)).await?;
    let stamp = sqlx::query(STAMP).bind(now_millis()).bind(&row.id);
    let stamp_span = query_span(db.backend(), "UPDATE", "outbox", STAMP);
    match claim {
        Some(mut tx) => {
            stamp.execute(&mut *tx).in_db_span(stamp_span).await?;
            crate::db::commit(tx).await?;
        }
        None => {
            stamp.execute(db.pool()).in_db_span(stamp_span).await?;
        }
    }
    Ok(())
}

/// The queue message of `row`, carrying the current (`send`) span's context. A payload that is
/// not JSON goes as a JSON string, for the worker to dead-letter with the reason.
fn message(row: &OutboxRow) -> JobMessage {
    let payload = serde_json::from_str(&row.payload).unwrap_or_else(|e| {
        tracing::warn!(
            job.id = %row.id,
            error = %e,
            "outbox payload is not JSON; published as text for the worker to dead-letter"
        );
        serde_json::Value::String(row.payload.clone())
    });
    JobMessage {
        id: row.id.clone(),
        kind: row.kind,
        payload,
        trace: vidscope_telemetry::propagation::inject_map(&tracing::Span::current()),
        enqueued_at: row.created_at,
        available_at: now_millis(),
        attempt: 0,
    }
}

/// Records that the queue gave job `id` up (dead letter), so [`republish_lost`] leaves it
/// parked. A no-op for a job without an outbox row (published directly by a test or a tool).
pub async fn mark_dead_lettered(db: &Db, id: &str) -> Result<(), CoreError> {
    const SQL: &str = "UPDATE outbox SET dead_lettered_at = $1 WHERE id = $2";
    let query = sqlx::query(SQL).bind(now_millis()).bind(id);
    crate::db::execute(db, "UPDATE", "outbox", SQL, query).await?;
    Ok(())
}

/// Publishes again every job the queue lost: published from the outbox at least `margin` ago,
/// neither completed (`job_results`) nor dead-lettered, and nowhere in Redis (see
/// [`crate::queue::RedisQueue::held_job_ids`]). Its row is marked unpublished, so the relay
/// sends it again with its original id (a copy that survived anyway is skipped as done by
/// the handlers). Returns how many rows were marked. Nothing to do for the database queue:
/// its jobs live in the database.
///
/// Redis is read before the database, and only rows stamped `margin` before that read are
/// looked at: the relay stamps a row after Redis has it, so each such row was in Redis when
/// it was read unless Redis lost it. A row is marked only while its stamp is still that old,
/// so two workers reconciling at once do not send one job twice. `margin` absorbs clock
/// skew between the workers' hosts.
pub async fn republish_lost(db: &Db, queue: &Queue, margin: Duration) -> Result<u64, CoreError> {
    let Queue::Redis(redis) = queue else {
        return Ok(0);
    };
    let before = now_millis() - margin.as_millis() as i64;
    let held = redis.held_job_ids().await?;
    // Audited: the only text spliced in is kind names, which cannot hold a quote.
    let select = format!(
        "SELECT id FROM outbox WHERE published_at IS NOT NULL AND published_at < $1 \
         AND dead_lettered_at IS NULL AND kind IN ({}) \
         AND NOT EXISTS (SELECT 1 FROM job_results WHERE job_results.job_id = outbox.id)",
        kind_list(queue.kinds())
    );
    // Not traced, like the relay's polls: a periodic check that usually finds nothing.
    let unfinished = sqlx::query(sqlx::AssertSqlSafe(select))
        .bind(before)
        .fetch_all(db.pool())
        .in_db_span(tracing::Span::none())
        .await?;
    const MARK: &str = "UPDATE outbox SET published_at = NULL WHERE id = $1 AND published_at < $2";
    let mut marked = 0;
    for row in &unfinished {
        let id: String = row.try_get("id")?;
        if held.contains(&id) {
            continue;
        }
        marked += sqlx::query(MARK)
            .bind(&id)
            .bind(before)
            .execute(db.pool())
            .in_db_span(tracing::Span::none())
            .await?
            .rows_affected();
    }
    Ok(marked)
}

/// Deletes outbox rows published more than `age` ago whose job is settled (completed or
/// dead-lettered); they are kept that long for debugging. A row whose job is not settled is
/// kept: it is what [`republish_lost`] sends again if the queue loses the job.
pub async fn prune_outbox(db: &Db, age: Duration) -> Result<u64, CoreError> {
    const SQL: &str = "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1 \
         AND (dead_lettered_at IS NOT NULL \
              OR EXISTS (SELECT 1 FROM job_results WHERE job_results.job_id = outbox.id))";
    let done = sqlx::query(SQL)
        .bind(now_millis() - age.as_millis() as i64)
        .execute(db.pool())
        .in_db_span(tracing::Span::none())
        .await?;
    Ok(done.rows_affected())
}

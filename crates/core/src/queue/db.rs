//! The embedded queue: the `jobs` table with leases.
//!
//! Claiming is one `UPDATE … WHERE id IN (SELECT …) AND <claimable> RETURNING`: on Postgres the
//! repeated condition is re-checked on the locked row, so two workers racing for a row cannot
//! both lease it; SQLite serialises writers anyway. Polling statements are not traced (an idle
//! worker would start a trace every poll); settling statements run inside the job's span.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;

use super::{DeadLetter, Delivery, Depth, QueueSettings, Receipt};
use crate::CoreError;
use crate::db::{Db, InDbSpan, now_millis, query_span};
use crate::jobs::{JobKind, JobMessage};

/// How often an idle claim looks again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
pub struct DbQueue {
    db: Db,
    pub(super) kinds: Arc<[JobKind]>,
    pub(super) settings: QueueSettings,
}

impl DbQueue {
    /// `kinds`: the job kinds its worker runs; a claimed row of another kind is dead-lettered.
    pub fn new(db: Db, kinds: &[JobKind], settings: QueueSettings) -> Self {
        Self {
            db,
            kinds: kinds.into(),
            settings,
        }
    }

    pub(super) async fn publish(&self, m: &JobMessage) -> Result<(), CoreError> {
        const SQL: &str = "INSERT INTO jobs (id, kind, payload, trace_context, status, attempt, \
                           enqueued_at, available_at, updated_at) \
                           VALUES ($1, $2, $3, $4, 'ready', $5, $6, $7, $8) \
                           ON CONFLICT (id) DO NOTHING";
        let trace = serde_json::to_string(&m.trace).map_err(|e| CoreError::Other(e.into()))?;
        let query = sqlx::query(SQL)
            .bind(&m.id)
            .bind(m.kind.as_str())
            .bind(m.payload.to_string())
            .bind(trace)
            .bind(i64::from(m.attempt))
            .bind(m.enqueued_at)
            .bind(m.available_at)
            .bind(now_millis());
        crate::db::execute(&self.db, "INSERT", "jobs", SQL, query).await?;
        Ok(())
    }

    pub(super) async fn claim(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, CoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let claimed = self.claim_now(max).await?;
            if !claimed.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(claimed);
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    async fn claim_now(&self, max: usize) -> Result<Vec<Delivery>, CoreError> {
        const SQL: &str = "UPDATE jobs SET status = 'leased', lease_token = $1, lease_until = $2, \
             attempt = attempt + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs \
                 WHERE (status = 'ready' AND available_at <= $3) \
                    OR (status = 'leased' AND lease_until < $3) \
                 ORDER BY available_at, id LIMIT $4) \
             AND ((status = 'ready' AND available_at <= $3) \
                  OR (status = 'leased' AND lease_until < $3)) \
             RETURNING id, kind, payload, trace_context, attempt, enqueued_at, available_at";
        let now = now_millis();
        let token = uuid::Uuid::new_v4().to_string();
        let rows = sqlx::query(SQL)
            .bind(&token)
            .bind(now + self.settings.visibility.as_millis() as i64)
            .bind(now)
            .bind(max as i64)
            .fetch_all(self.db.pool())
            .in_db_span(tracing::Span::none())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            match row_message(row, Read::Strict(&self.kinds)) {
                Ok((message, attempt)) => out.push(Delivery {
                    message,
                    attempt,
                    receipt: Receipt::Db {
                        token: token.clone(),
                    },
                }),
                // A row no worker can read (a kind this build does not know, a payload or
                // trace that is not JSON) would fail every claim that returns it, holding up
                // the jobs claimed with it. It is dead-lettered at once with the reason, and
                // stays in the table for inspection.
                Err(e) => {
                    let id: String = row.try_get("id")?;
                    tracing::error!(
                        job.id = %id,
                        error = %e,
                        "unreadable job dead-lettered at claim"
                    );
                    self.dead_letter(&id, &token, "permanent", &e.to_string())
                        .await?;
                }
            }
        }
        Ok(out)
    }

    pub(super) async fn ack(&self, id: &str, token: &str) -> Result<bool, CoreError> {
        const SQL: &str = "DELETE FROM jobs WHERE id = $1 AND lease_token = $2";
        self.on_lease(sqlx::query(SQL), id, token, self.span("DELETE", SQL))
            .await
    }

    pub(super) async fn retry(
        &self,
        id: &str,
        token: &str,
        delay: Duration,
        error: &str,
    ) -> Result<(), CoreError> {
        const SQL: &str = "UPDATE jobs SET status = 'ready', available_at = $1, \
                           lease_token = NULL, lease_until = NULL, last_error = $2, updated_at = $3 \
                           WHERE id = $4 AND lease_token = $5";
        let now = now_millis();
        let retried = sqlx::query(SQL)
            .bind(now + delay.as_millis() as i64)
            .bind(error)
            .bind(now);
        self.on_lease(retried, id, token, self.span("UPDATE", SQL))
            .await?;
        Ok(())
    }

    pub(super) async fn dead_letter(
        &self,
        id: &str,
        token: &str,
        error_class: &str,
        error: &str,
    ) -> Result<(), CoreError> {
        const SQL: &str = "UPDATE jobs SET status = 'dead', error_class = $1, last_error = $2, \
                           lease_token = NULL, lease_until = NULL, updated_at = $3 \
                           WHERE id = $4 AND lease_token = $5";
        let dead = sqlx::query(SQL)
            .bind(error_class)
            .bind(error)
            .bind(now_millis());
        self.on_lease(dead, id, token, self.span("UPDATE", SQL))
            .await?;
        Ok(())
    }

    pub(super) async fn release(&self, id: &str, token: &str) -> Result<(), CoreError> {
        const SQL: &str = "UPDATE jobs SET status = 'ready', available_at = $1, \
                           attempt = attempt - 1, lease_token = NULL, lease_until = NULL, \
                           updated_at = $1 WHERE id = $2 AND lease_token = $3";
        let released = sqlx::query(SQL).bind(now_millis());
        self.on_lease(released, id, token, self.span("UPDATE", SQL))
            .await?;
        Ok(())
    }

    pub(super) async fn heartbeat(&self, id: &str, token: &str) -> Result<bool, CoreError> {
        const SQL: &str = "UPDATE jobs SET lease_until = $1 \
                           WHERE id = $2 AND lease_token = $3 AND status = 'leased'";
        let extended =
            sqlx::query(SQL).bind(now_millis() + self.settings.visibility.as_millis() as i64);
        // Not traced: a long job would add a span every third of the visibility timeout.
        self.on_lease(extended, id, token, tracing::Span::none())
            .await
    }

    /// Runs `query` (a statement whose last two parameters are the job's id and lease token,
    /// the others bound) in `span`: it touches the job only while this lease holds it. Returns
    /// whether it did.
    async fn on_lease<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
        id: &'q str,
        token: &'q str,
        span: tracing::Span,
    ) -> Result<bool, CoreError> {
        let done = query
            .bind(id)
            .bind(token)
            .execute(self.db.pool())
            .in_db_span(span)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The span of a statement on the `jobs` table.
    fn span(&self, operation: &'static str, sql: &'static str) -> tracing::Span {
        query_span(self.db.backend(), operation, "jobs", sql)
    }

    pub(super) async fn depth(&self) -> Result<Vec<Depth>, CoreError> {
        const SQL: &str = "SELECT kind, CASE \
                 WHEN status = 'ready' AND available_at > $1 THEN 'delayed' \
                 WHEN status = 'leased' THEN 'in_flight' \
                 ELSE status END AS state, COUNT(*) AS n \
             FROM jobs GROUP BY kind, state";
        let rows = sqlx::query(SQL)
            .bind(now_millis())
            .fetch_all(self.db.pool())
            .in_db_span(tracing::Span::none())
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            // Rows of a kind this worker does not run (written by a newer release, or by
            // hand) are not its backlog: counted by the workers that run them, skipped here
            // rather than failing the whole sample.
            let Ok(kind) = JobKind::find(&self.kinds, &row.try_get::<String, _>("kind")?) else {
                continue;
            };
            let state = match row.try_get::<String, _>("state")?.as_str() {
                "ready" => "ready",
                "delayed" => "delayed",
                "in_flight" => "in_flight",
                _ => "dead",
            };
            out.push(Depth {
                kind,
                state,
                count: row.try_get("n")?,
            });
        }
        Ok(out)
    }

    pub(super) async fn dead_letters(
        &self,
        kind: JobKind,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, CoreError> {
        const SQL: &str = "SELECT id, kind, payload, trace_context, attempt, enqueued_at, \
                           available_at, error_class, last_error FROM jobs \
                           WHERE status = 'dead' AND kind = $1 ORDER BY updated_at DESC LIMIT $2";
        let rows = sqlx::query(SQL)
            .bind(kind.as_str())
            .bind(limit as i64)
            .fetch_all(self.db.pool())
            .in_db_span(self.span("SELECT", SQL))
            .await?;
        rows.iter()
            .map(|row| {
                let (message, attempt) = row_message(row, Read::AsFarAsPossible(kind))?;
                Ok(DeadLetter {
                    message,
                    attempt,
                    error_class: row
                        .try_get::<Option<String>, _>("error_class")?
                        .unwrap_or_default(),
                    error: row
                        .try_get::<Option<String>, _>("last_error")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// How to read a row's kind, payload and trace context.
#[derive(Clone, Copy)]
enum Read<'k> {
    /// For delivery: any unreadable part (a kind not among these) is an error.
    Strict(&'k [JobKind]),
    /// For the dead-letter list (rows dead-lettered because they were unreadable): the kind
    /// asked for, a payload that is not JSON as a JSON string, an unreadable trace dropped.
    AsFarAsPossible(JobKind),
}

fn row_message(row: &sqlx::any::AnyRow, read: Read<'_>) -> Result<(JobMessage, u32), CoreError> {
    let invalid = |what: &str, e: serde_json::Error| {
        CoreError::Invalid(format!("job row with an unreadable {what}: {e}"))
    };
    let attempt: i64 = row.try_get("attempt")?;
    let trace: String = row.try_get("trace_context")?;
    let payload: String = row.try_get("payload")?;
    let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
    let (kind, payload, trace) = match read {
        Read::Strict(kinds) => (
            JobKind::find(kinds, &row.try_get::<String, _>("kind")?)?,
            serde_json::from_str(&payload).map_err(|e| invalid("payload", e))?,
            serde_json::from_str::<HashMap<String, String>>(&trace)
                .map_err(|e| invalid("trace context", e))?,
        ),
        Read::AsFarAsPossible(kind) => (
            kind,
            serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
            serde_json::from_str(&trace).unwrap_or_default(),
        ),
    };
    Ok((
        JobMessage {
            id: row.try_get("id")?,
            kind,
            payload,
            trace,
            enqueued_at: row.try_get("enqueued_at")?,
            available_at: row.try_get("available_at")?,
            attempt: attempt.saturating_sub(1),
        },
        attempt,
    ))
}

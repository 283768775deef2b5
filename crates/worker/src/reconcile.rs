//! Making good what the queue lost. Redis can come back empty (a restart without
//! persistence, a failover, a flush); the database is the source of truth, so the worker
//! publishes again, from the outbox, every job published but neither completed nor
//! dead-lettered that Redis no longer holds ([`outbox::republish_lost`]). It checks at start,
//! every `VIDSCOPE_WORKER_RECONCILE_SECS` (a failover to a replica that lagged loses jobs
//! without a sign), and as soon as the queue reports a loss (a claim found its consumer group
//! gone), then once more after [`MARGIN`], for the rows stamped just before the loss. A copy
//! sent twice is harmless: handlers skip a job already done.

use std::time::{Duration, Instant};

use vidscope_core::db::Db;
use vidscope_core::outbox;
use vidscope_core::queue::Queue;

/// Rows stamped published less than this before a check are left to the next one: the relay
/// stamps a row just after Redis has it, and hosts' clocks differ a little. A clock off by more
/// only costs a job sent twice, which is harmless.
pub const MARGIN: Duration = Duration::from_secs(1);
/// After a failed check (Redis or the database down), the next one is at most this far off.
const RETRY: Duration = Duration::from_secs(10);

/// When the next checks are due.
#[derive(Debug)]
pub struct Reconcile {
    every: Duration,
    next: Instant,
    /// The second check after a loss.
    follow_up: Option<Instant>,
    losses_seen: u64,
    failing: bool,
}

impl Reconcile {
    /// The first check is due at once.
    pub fn new(every: Duration, queue: &Queue) -> Self {
        Self {
            every,
            next: Instant::now(),
            follow_up: None,
            losses_seen: queue.losses(),
            failing: false,
        }
    }

    /// Runs the check if one is due at `now`; returns how many jobs it published again.
    pub async fn tick(&mut self, db: &Db, queue: &Queue, now: Instant) -> u64 {
        let losses = queue.losses();
        if losses != self.losses_seen {
            self.losses_seen = losses;
            self.next = now;
            self.follow_up = Some(now + MARGIN + Duration::from_millis(500));
        }
        let follow_up = self.follow_up.is_some_and(|at| now >= at);
        if now < self.next && !follow_up {
            return 0;
        }
        if follow_up {
            self.follow_up = None;
        }
        match outbox::republish_lost(db, queue, MARGIN).await {
            Ok(n) => {
                self.next = now + self.every;
                if self.failing {
                    tracing::info!("the queue can be checked against the outbox again");
                    self.failing = false;
                }
                if n > 0 {
                    tracing::warn!(
                        // i64: tracing-opentelemetry turns a u64 event field into a string.
                        republished = i64::try_from(n).unwrap_or(i64::MAX),
                        "jobs the queue had lost are published again from the outbox"
                    );
                }
                n
            }
            Err(e) => {
                self.next = now + self.every.min(RETRY);
                if !self.failing {
                    tracing::warn!(error = %e, "cannot check the queue against the outbox; retrying");
                    self.failing = true;
                }
                0
            }
        }
    }
}

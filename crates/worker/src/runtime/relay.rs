//! The outbox relay and the gauge samplers, beside the claim loop.

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use vidscope_core::outbox;
use vidscope_core::queue::Queue;

use super::metrics::record_depths;
use crate::jobs::JobContext;
use crate::reconcile::Reconcile;

/// Published outbox rows are kept this long for debugging.
const OUTBOX_KEEP: Duration = Duration::from_secs(24 * 3600);

/// Publishes committed outbox rows every `every` and samples the gauges every `gauge_every`
/// until told to stop.
pub(super) async fn relay_loop(
    ctx: JobContext,
    queue: Queue,
    (every, gauge_every): (Duration, Duration),
    mut reconcile: Reconcile,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut tick = tokio::time::interval_at(start.into(), every.min(gauge_every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Both run at the first tick.
    let mut last_depth = start.checked_sub(gauge_every).unwrap_or(start);
    let mut last_relay = start.checked_sub(every).unwrap_or(start);
    let mut last_prune = Instant::now();
    let mut failing = false;
    loop {
        // The tick's own instant, not `now()`: with a period of `every`, `elapsed()` would
        // read a hair short of it and skip every other turn.
        let at = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            at = tick.tick() => at.into_std(),
        };
        // Before relaying, so what it marks for publishing goes out on this turn.
        reconcile.tick(&ctx.db, &queue, at).await;
        // Drain everything committed so far, a batch at a time.
        if at.duration_since(last_relay) >= every {
            last_relay = at;
            loop {
                match outbox::relay_once(&ctx.db, &queue, 100).await {
                    Ok(kinds) => {
                        if failing {
                            tracing::info!("outbox relay publishes again");
                            failing = false;
                        }
                        for kind in &kinds {
                            ctx.metrics.messaging_client_sent_messages.add(
                                1,
                                &[
                                    KeyValue::new("messaging.system", queue.system()),
                                    KeyValue::new("messaging.destination.name", kind.as_str()),
                                ],
                            );
                        }
                        if kinds.len() < 100 {
                            break;
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "outbox relay cannot publish; jobs wait in the outbox");
                            failing = true;
                        }
                        break;
                    }
                }
            }
        }
        // Gauges are sampled every few seconds, not on every relay tick: each is a query. A
        // reading that fails (the database or Redis down) withdraws the gauge rather than
        // leave the last good reading standing for a backlog nobody can see.
        if at.duration_since(last_depth) >= gauge_every {
            last_depth = at;
            match outbox::outbox_pending(&ctx.db).await {
                Ok(n) => ctx.metrics.outbox_pending.record(n, &[]),
                Err(_) => ctx.metrics.outbox_pending.forget(),
            }
            match queue.depth().await {
                Ok(depths) => record_depths(&ctx.metrics, &queue, &depths),
                Err(_) => ctx.metrics.job_queue_depth.forget(),
            }
        }
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = Instant::now();
            let _ = outbox::prune_outbox(&ctx.db, OUTBOX_KEEP).await;
        }
    }
}

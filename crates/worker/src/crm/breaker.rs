//! The CRM circuit breaker: after `N` consecutive transient failures the CRM is presumed down and
//! calls fail at once (no connection, no timeout spent) until a cooldown has passed; then a single
//! half-open probe decides whether to close again or to wait another cooldown.
//!
//! Hand-written rather than a crate: the policy is a counter, a deadline and a probe flag (a few
//! dozen lines), while what we need around it — the `crm.circuit_breaker.state` gauge and a
//! `crm.circuit_breaker.transition` span event on the call that caused each transition — would
//! have to be bolted onto a crate's callbacks anyway (`failsafe`, the common choice, has
//! failure-rate policies and no transition hook).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Gauge;
use tokio::time::Instant;
use vidscope_telemetry::SpanExt as _;

/// Where the breaker stands. The gauge value is 0, 1 and 2 in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; consecutive transient failures are counted.
    Closed,
    /// The cooldown is over: one probe call is (or may be) in flight, others are rejected.
    HalfOpen,
    /// Calls are rejected without touching the network until the cooldown ends.
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// Value recorded on `crm.circuit_breaker.state`.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

pub(crate) struct Breaker {
    /// A std mutex: it is held for a few comparisons and never across an `.await`.
    inner: Mutex<Inner>,
    failures_to_open: u32,
    cooldown: Duration,
    gauge: Gauge<i64>,
}

struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    /// When an open breaker lets a probe through.
    open_until: Instant,
    probe_in_flight: bool,
}

/// The breaker's answer to "may I call the CRM?".
pub(crate) enum Admission<'a> {
    Allowed(Permit<'a>),
    Rejected { retry_after: Duration },
}

/// One admitted call. Report its outcome with [`Permit::success`] or [`Permit::failure`]; a permit
/// dropped without a report (the caller was cancelled) frees the half-open probe slot so the
/// breaker cannot stay half-open forever.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub(crate) fn new(failures_to_open: u32, cooldown: Duration, gauge: Gauge<i64>) -> Self {
        gauge.record(BreakerState::Closed.gauge_value(), &[]);
        Self {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                open_until: Instant::now(),
                probe_in_flight: false,
            }),
            failures_to_open: failures_to_open.max(1),
            cooldown,
            gauge,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a few plain fields, consistent after every statement: a panic elsewhere
        // while the lock was held cannot have left it half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.lock().state
    }

    pub(crate) fn admit(&self) -> Admission<'_> {
        let now = Instant::now();
        let mut g = self.lock();
        match g.state {
            BreakerState::Closed => Admission::Allowed(self.permit(false)),
            BreakerState::Open if now >= g.open_until => {
                g.probe_in_flight = true;
                self.transition(g, BreakerState::HalfOpen);
                Admission::Allowed(self.permit(true))
            }
            BreakerState::Open => Admission::Rejected {
                retry_after: g.open_until - now,
            },
            BreakerState::HalfOpen if !g.probe_in_flight => {
                g.probe_in_flight = true;
                Admission::Allowed(self.permit(true))
            }
            // The probe's answer is at most one request timeout away; a cooldown is a safe
            // upper bound for a caller that wants to schedule its retry.
            BreakerState::HalfOpen => Admission::Rejected {
                retry_after: self.cooldown,
            },
        }
    }

    fn permit(&self, probe: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            probe,
            reported: false,
        }
    }

    fn on_result(&self, probe: bool, failed: bool) {
        let mut g = self.lock();
        if probe {
            g.probe_in_flight = false;
            if failed {
                g.open_until = Instant::now() + self.cooldown;
                self.transition(g, BreakerState::Open);
            } else {
                g.consecutive_failures = 0;
                self.transition(g, BreakerState::Closed);
            }
            return;
        }
        // Calls admitted while closed only move a closed breaker; once it has opened, the probe
        // decides (a late success from before the outage must not close it).
        if g.state != BreakerState::Closed {
            return;
        }
        if !failed {
            g.consecutive_failures = 0;
            return;
        }
        g.consecutive_failures += 1;
        if g.consecutive_failures >= self.failures_to_open {
            g.open_until = Instant::now() + self.cooldown;
            self.transition(g, BreakerState::Open);
        }
    }

    /// Moves to `to`; the gauge and the span event are written after the lock is released.
    fn transition(&self, mut g: std::sync::MutexGuard<'_, Inner>, to: BreakerState) {
        let from = g.state;
        if from == to {
            return;
        }
        g.state = to;
        let failures = g.consecutive_failures;
        drop(g);
        self.gauge.record(to.gauge_value(), &[]);
        tracing::Span::current().add_event(
            "crm.circuit_breaker.transition",
            vec![
                KeyValue::new("from", from.as_str()),
                KeyValue::new("to", to.as_str()),
            ],
        );
        match to {
            BreakerState::Open => tracing::warn!(
                from = from.as_str(),
                consecutive_failures = failures,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "CRM circuit breaker opened"
            ),
            _ => tracing::info!(
                from = from.as_str(),
                to = to.as_str(),
                "CRM circuit breaker state changed"
            ),
        }
    }
}

impl Permit<'_> {
    pub(crate) fn success(mut self) {
        self.reported = true;
        self.breaker.on_result(self.probe, false);
    }

    pub(crate) fn failure(mut self) {
        self.reported = true;
        self.breaker.on_result(self.probe, true);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker.lock().probe_in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(n: u32, cooldown: Duration) -> Breaker {
        let meter = opentelemetry::global::meter("crm-breaker-test");
        Breaker::new(n, cooldown, meter.i64_gauge("test").build())
    }

    fn allowed(b: &Breaker) -> Permit<'_> {
        match b.admit() {
            Admission::Allowed(p) => p,
            Admission::Rejected { .. } => panic!("rejected in state {:?}", b.state()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_n_consecutive_failures_and_probes_after_cooldown() {
        let b = breaker(3, Duration::from_secs(10));
        allowed(&b).failure();
        allowed(&b).failure();
        allowed(&b).success(); // resets the count
        allowed(&b).failure();
        allowed(&b).failure();
        assert_eq!(b.state(), BreakerState::Closed);
        allowed(&b).failure();
        assert_eq!(b.state(), BreakerState::Open);
        match b.admit() {
            Admission::Rejected { retry_after } => assert_eq!(retry_after, Duration::from_secs(10)),
            Admission::Allowed(_) => panic!("an open breaker let a call through"),
        }

        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = allowed(&b);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(
            matches!(b.admit(), Admission::Rejected { .. }),
            "a second call got through while the probe was in flight"
        );
        probe.failure();
        assert_eq!(b.state(), BreakerState::Open);

        tokio::time::advance(Duration::from_secs(10)).await;
        allowed(&b).success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot_and_late_results_do_not_close() {
        let b = breaker(1, Duration::from_secs(1));
        let early = allowed(&b);
        allowed(&b).failure();
        assert_eq!(b.state(), BreakerState::Open);
        early.success(); // admitted before the outage: must not close the breaker
        assert_eq!(b.state(), BreakerState::Open);

        tokio::time::advance(Duration::from_secs(1)).await;
        drop(allowed(&b));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        allowed(&b).success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}

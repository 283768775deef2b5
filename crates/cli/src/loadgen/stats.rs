//! What the load generator sent and got back, per route: the summary a run ends with.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// How a request ended, from the load generator's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The status the scenario asked for (a 404 is expected when it probes an unknown id).
    Expected(u16),
    /// Any other status: a 5xx, or a 4xx the scenario did not provoke.
    Unexpected(u16),
    /// No response: refused, reset or timed out.
    Transport,
}

#[derive(Default)]
struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    expected: u64,
    provoked: u64,
    unexpected: u64,
    transport_errors: u64,
    /// Microseconds. Bounded because the run is (`--max-requests`).
    latencies: Vec<u32>,
}

/// Shared by every virtual user; a mutex is cheap next to an HTTP round trip.
#[derive(Default)]
pub(super) struct Stats {
    routes: Mutex<BTreeMap<&'static str, RouteStats>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RouteSummary {
    /// `GET /api/videos/{filename}`: method and route template.
    pub route: String,
    pub requests: u64,
    pub expected: u64,
    pub unexpected: u64,
    pub transport_errors: u64,
    /// Status code → count.
    pub statuses: BTreeMap<u16, u64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub elapsed_secs: f64,
    pub requests: u64,
    /// Requests whose status was not the one the scenario expected, plus transport errors.
    pub unexpected: u64,
    /// Responses with a status ≥ 400 that the scenario provoked on purpose.
    pub provoked_errors: u64,
    pub uploads: u64,
    pub routes: Vec<RouteSummary>,
}

impl Stats {
    pub(super) fn record(&self, route: &'static str, outcome: Outcome, latency: Duration) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let r = routes.entry(route).or_default();
        match outcome {
            Outcome::Expected(s) => {
                r.expected += 1;
                r.provoked += u64::from(s >= 400);
                *r.statuses.entry(s).or_default() += 1;
            }
            Outcome::Unexpected(s) => {
                r.unexpected += 1;
                *r.statuses.entry(s).or_default() += 1;
            }
            Outcome::Transport => r.transport_errors += 1,
        }
        r.latencies
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    pub(super) fn unexpected(&self) -> u64 {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes
            .values()
            .map(|r| r.unexpected + r.transport_errors)
            .sum()
    }

    pub(super) fn summary(&self, elapsed: Duration, uploads: u64) -> Summary {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(routes.len());
        let mut provoked = 0;
        for (route, r) in routes.iter_mut() {
            r.latencies.sort_unstable();
            provoked += r.provoked;
            out.push(RouteSummary {
                route: (*route).to_owned(),
                requests: r.latencies.len() as u64,
                expected: r.expected,
                unexpected: r.unexpected,
                transport_errors: r.transport_errors,
                statuses: r.statuses.clone(),
                p50_ms: percentile(&r.latencies, 0.50),
                p95_ms: percentile(&r.latencies, 0.95),
                max_ms: r.latencies.last().map_or(0.0, |us| f64::from(*us) / 1000.0),
            });
        }
        Summary {
            elapsed_secs: elapsed.as_secs_f64(),
            requests: out.iter().map(|r| r.requests).sum(),
            unexpected: out.iter().map(|r| r.unexpected + r.transport_errors).sum(),
            provoked_errors: provoked,
            uploads,
            routes: out,
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

impl Summary {
    /// The table printed at the end of a run.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} requests in {:.1} s ({:.1}/s), {} uploads, {} provoked errors, {} unexpected",
            self.requests,
            self.elapsed_secs,
            self.requests as f64 / self.elapsed_secs.max(0.001),
            self.uploads,
            self.provoked_errors,
            self.unexpected
        );
        let _ = writeln!(
            s,
            "  {:<44} {:>7} {:>9} {:>9} {:>9}  statuses",
            "route", "count", "p50 ms", "p95 ms", "max ms"
        );
        for r in &self.routes {
            let statuses = r
                .statuses
                .iter()
                .map(|(code, n)| format!("{code}×{n}"))
                .chain((r.transport_errors > 0).then(|| format!("io×{}", r.transport_errors)))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "  {:<44} {:>7} {:>9.1} {:>9.1} {:>9.1}  {statuses}{}",
                r.route,
                r.requests,
                r.p50_ms,
                r.p95_ms,
                r.max_ms,
                if r.unexpected + r.transport_errors > 0 {
                    format!("  ({} unexpected)", r.unexpected + r.transport_errors)
                } else {
                    String::new()
                }
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&[7000], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn summary_separates_provoked_from_unexpected_errors() {
        let s = Stats::default();
        let ms = Duration::from_millis;
        s.record("GET /api/videos", Outcome::Expected(200), ms(10));
        s.record("GET /api/videos/{id}", Outcome::Expected(404), ms(5));
        s.record("GET /api/videos/{id}", Outcome::Unexpected(500), ms(7));
        s.record("GET /api/videos/{id}", Outcome::Transport, ms(9));
        let sum = s.summary(Duration::from_secs(2), 1);
        assert_eq!(sum.requests, 4);
        assert_eq!(sum.unexpected, 2);
        assert_eq!(sum.provoked_errors, 1);
        let by_id = &sum.routes[1];
        assert_eq!(by_id.route, "GET /api/videos/{id}");
        assert_eq!(by_id.statuses, BTreeMap::from([(404, 1), (500, 1)]));
        assert_eq!(by_id.max_ms, 9.0);
        let table = sum.render();
        assert!(
            table.contains("404×1 500×1 io×1  (2 unexpected)"),
            "{table}"
        );
    }
}

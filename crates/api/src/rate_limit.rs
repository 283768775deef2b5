//! Failed-login throttling per account and per client address.
//!
//! In-process and fixed-window: enough for one API instance (the embedded mode and the
//! compose stack). Several instances behind a balancer each keep their own counts, so the
//! effective limit multiplies by the instance count; that is written in docs/configuration.md.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired windows are swept, so a flood of distinct keys cannot grow the
/// map without bound.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `key` has used up its failures in the current window.
    pub fn check(&self, key: &str, limit_factor: u32) -> Result<(), u64> {
        let now = Instant::now();
        let map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((start, n))
                if now.duration_since(*start) < self.window
                    && *n >= self.max_failures.saturating_mul(limit_factor) =>
            {
                let left = self.window.saturating_sub(now.duration_since(*start));
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            let window = self.window;
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = map.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    pub fn reset(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_resets() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check("a", 1).is_ok());
            l.record_failure("a");
        }
        let wait = l.check("a", 1).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check("a", 2).is_ok(), "a larger factor allows more");
        assert!(l.check("b", 1).is_ok(), "keys are independent");
        l.reset("a");
        assert!(l.check("a", 1).is_ok());
    }

    #[test]
    fn windows_expire() {
        let l = LoginLimiter::new(1, Duration::from_millis(20));
        l.record_failure("a");
        assert!(l.check("a", 1).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.check("a", 1).is_ok());
    }
}

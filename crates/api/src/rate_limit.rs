//! Failed-login throttling per account and per client address.
//!
//! Fixed windows that start at the first failure. With `REDIS_URL` the counts live in Redis,
//! so every API replica behind a balancer counts the same failures (a per-process count would
//! multiply the limit by the replica count); without it (the embedded mode) in this process.
//!
//! Redis unreachable: the limiter falls back to this process's own counts for that call and
//! logs a warning, so a Redis outage weakens the limit to per-replica instead of either
//! refusing every login or switching throttling off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// Entries kept before expired windows are swept, so a flood of distinct keys cannot grow the
/// map without bound.
const SWEEP_AT: usize = 10_000;

pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    /// `{prefix}:login:` before every Redis key; `None` without Redis.
    redis: Option<(ConnectionManager, String)>,
    /// The embedded mode's counts, and the fallback while Redis is unreachable.
    local: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    /// In-process counts only.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            redis: None,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Counts in Redis under `{prefix}:login:`, shared by every replica with the same prefix.
    pub fn shared(
        max_failures: u32,
        window: Duration,
        redis: ConnectionManager,
        prefix: &str,
    ) -> Self {
        Self {
            redis: Some((redis, format!("{prefix}:login:"))),
            ..Self::new(max_failures, window)
        }
    }

    /// `Err(seconds to wait)` when `key` has used up its failures in the current window.
    pub async fn check(&self, key: &str, limit_factor: u32) -> Result<(), u64> {
        let limit = self.max_failures.saturating_mul(limit_factor);
        if let Some((conn, prefix)) = &self.redis {
            let mut conn = conn.clone();
            let reply: Result<(Option<u32>, i64), _> = redis::pipe()
                .get(format!("{prefix}{key}"))
                .pttl(format!("{prefix}{key}"))
                .query_async(&mut conn)
                .await;
            match reply {
                Ok((Some(n), pttl_ms)) if n >= limit => {
                    // PTTL is -1 only if a key lost its expiry, which this module never does;
                    // then the whole window is the honest answer.
                    let left =
                        u64::try_from(pttl_ms).map_or(self.window.as_millis() as u64, |ms| ms);
                    return Err(left.div_ceil(1000).max(1));
                }
                Ok(_) => return Ok(()),
                Err(e) => redis_unavailable("check", &e),
            }
        }
        self.check_local(key, limit)
    }

    pub async fn record_failure(&self, key: &str) {
        if let Some((conn, prefix)) = &self.redis {
            let mut conn = conn.clone();
            let key = format!("{prefix}{key}");
            // One round trip, atomic: the window starts at the first failure (`NX` keeps an
            // existing expiry), and the key disappears with its window.
            let reply: Result<(), _> = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(self.window.as_millis() as u64)
                .arg("NX")
                .ignore()
                .query_async(&mut conn)
                .await;
            match reply {
                Ok(()) => return,
                Err(e) => redis_unavailable("record", &e),
            }
        }
        self.record_local(key);
    }

    pub async fn reset(&self, key: &str) {
        if let Some((conn, prefix)) = &self.redis {
            let mut conn = conn.clone();
            if let Err(e) = redis::cmd("DEL")
                .arg(format!("{prefix}{key}"))
                .query_async::<()>(&mut conn)
                .await
            {
                redis_unavailable("reset", &e);
            }
        }
        self.local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn check_local(&self, key: &str, limit: u32) -> Result<(), u64> {
        let now = Instant::now();
        let map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((start, n)) if now.duration_since(*start) < self.window && *n >= limit => {
                let left = self.window.saturating_sub(now.duration_since(*start));
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    fn record_local(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
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
}

fn redis_unavailable(operation: &'static str, error: &redis::RedisError) {
    tracing::warn!(
        operation,
        error = %error,
        "login throttle: Redis unavailable, counting in this process only"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_max_failures_and_resets() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.check("a", 1).await.is_ok());
            l.record_failure("a").await;
        }
        let wait = l.check("a", 1).await.unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check("a", 2).await.is_ok(), "a larger factor allows more");
        assert!(l.check("b", 1).await.is_ok(), "keys are independent");
        l.reset("a").await;
        assert!(l.check("a", 1).await.is_ok());
    }

    #[tokio::test]
    async fn windows_expire() {
        let l = LoginLimiter::new(1, Duration::from_millis(20));
        l.record_failure("a").await;
        assert!(l.check("a", 1).await.is_err());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(l.check("a", 1).await.is_ok());
    }

    /// Two limiters on one Redis and prefix are two replicas: failures on either count
    /// against both, and a reset on one clears both. An unreachable Redis falls back to the
    /// process's own counts instead of letting every attempt through.
    #[tokio::test]
    async fn replicas_share_counts_in_redis_and_fall_back_to_their_own() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let nanos = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_nanos();
        let prefix = format!("vidscope-test-{}-{nanos}", std::process::id());
        let window = Duration::from_secs(60);
        let conn = || async { vidscope_core::redis_conn::connect(&url).await.unwrap() };
        let a = LoginLimiter::shared(3, window, conn().await, &prefix);
        let b = LoginLimiter::shared(3, window, conn().await, &prefix);
        a.record_failure("account:x").await;
        b.record_failure("account:x").await;
        assert!(a.check("account:x", 1).await.is_ok(), "2 of 3 used");
        a.record_failure("account:x").await;
        let wait = b
            .check("account:x", 1)
            .await
            .expect_err("3 failures across replicas");
        assert!(
            (59..=60).contains(&wait),
            "the window started at the first failure: {wait}"
        );
        assert!(b.check("account:x", 2).await.is_ok(), "factor applies");
        b.reset("account:x").await;
        assert!(a.check("account:x", 1).await.is_ok(), "reset is shared");

        // Nothing listens on port 1: every call fails and the local counts take over.
        let down = LoginLimiter::shared(
            1,
            window,
            vidscope_core::redis_conn::connect("redis://127.0.0.1:1")
                .await
                .unwrap(),
            &prefix,
        );
        down.record_failure("account:y").await;
        assert!(down.check("account:y", 1).await.is_err());
    }
}

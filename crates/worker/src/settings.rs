//! Worker settings (`VIDSCOPE_WORKER_*`, `VIDSCOPE_JOB_*`, `VIDSCOPE_QUEUE`, ffmpeg paths), read
//! once at start; a bad value fails naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use vidscope_core::config::{SettingsError, parse_addr};

/// Which queue adapter carries the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Redis Streams when `REDIS_URL` is set, the database otherwise.
    Auto,
    Redis,
    Db,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `VIDSCOPE_WORKER_CONCURRENCY`: jobs processed at once (default 2).
    pub concurrency: usize,
    /// `VIDSCOPE_JOB_MAX_ATTEMPTS`: deliveries before a job is dead-lettered (default 5).
    pub max_attempts: u32,
    /// `VIDSCOPE_JOB_VISIBILITY_SECS`: how long a claimed job stays hidden without a heartbeat
    /// before another worker may reclaim it (default 60; heartbeats every third of it).
    pub visibility: Duration,
    /// `VIDSCOPE_JOB_BACKOFF_MS`: base of the exponential retry delay (default 1000, capped at
    /// 5 minutes, full jitter).
    pub backoff_base: Duration,
    /// `VIDSCOPE_WORKER_SHUTDOWN_SECS`: from a shutdown signal to the exit (default 25, below
    /// Kubernetes' default grace period of 30 s). In-flight jobs may run until the last fifth
    /// of it (at most the last 5 s), which is left for releasing the jobs still running (they
    /// are redelivered at once) and flushing telemetry; see [`crate::runtime`].
    pub shutdown_deadline: Duration,
    /// `VIDSCOPE_WORKER_HEALTH_ADDR`: where `GET /healthz` and `GET /readyz` answer (off when
    /// unset).
    pub health_addr: Option<SocketAddr>,
    /// `VIDSCOPE_WORKER_LIVENESS_SECS`: `GET /healthz` answers 503 once the worker has made no
    /// progress this long: every claim has failed, or its claim loop has not turned (that, at
    /// least [`crate::health::STALL_FLOOR`]) (default 120). A restart cannot bring a dependency back, so this is longer than an ordinary
    /// blip; `/readyz` reports a failing claim at once.
    pub liveness_window: Duration,
    /// `VIDSCOPE_WORKER_TMP_DIR`: the root of the worker's temporary files (default
    /// `vidscope-worker` in the system's temporary directory). Each worker process works in a
    /// directory of its own under it and, at start, removes those whose worker is gone; see
    /// [`crate::scratch`].
    pub tmp_root: PathBuf,
    /// `VIDSCOPE_WORKER_RECONCILE_SECS`: how often the worker checks that the Redis queue
    /// still holds every job the database says is pending, and publishes again those it lost
    /// (default 300; also at start and as soon as a loss is seen). Nothing to check on the
    /// database queue.
    pub reconcile_interval: Duration,
    /// `VIDSCOPE_QUEUE`: `auto` (default), `redis` or `db`.
    pub queue: QueueKind,
    /// `VIDSCOPE_QUEUE_PREFIX`: key prefix of the Redis streams (default `vidscope:jobs`).
    pub queue_prefix: String,
    /// `VIDSCOPE_FFMPEG` / `VIDSCOPE_FFPROBE`: the binaries (default: found on `PATH`).
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// `VIDSCOPE_FFMPEG_TIMEOUT_SECS`: longest one ffmpeg/ffprobe run may take (default 300).
    pub ffmpeg_timeout: Duration,
    /// How often the relay looks for unpublished outbox rows.
    pub relay_interval: Duration,
    /// `VIDSCOPE_WORKER_GAUGE_INTERVAL_MS`: how often the `job.queue_depth` and
    /// `outbox.pending` gauges are sampled (default 5000; each sample is a query or a Redis
    /// pipeline). A drained queue reads 0 within two of these plus one metric export.
    pub gauge_interval: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 2,
            max_attempts: 5,
            visibility: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(25),
            health_addr: None,
            liveness_window: Duration::from_secs(120),
            tmp_root: std::env::temp_dir().join("vidscope-worker"),
            reconcile_interval: Duration::from_secs(300),
            queue: QueueKind::Auto,
            queue_prefix: "vidscope:jobs".into(),
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            ffmpeg_timeout: Duration::from_secs(300),
            relay_interval: Duration::from_millis(500),
            gauge_interval: Duration::from_secs(5),
        }
    }
}

impl WorkerSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut s = Self::default();
        let number =
            |var: &'static str, min: u64, max: u64| -> Result<Option<u64>, SettingsError> {
                get(var)
                    .map(|v| match v.trim().parse::<u64>() {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(SettingsError {
                            var,
                            reason: format!("{v:?} is not a whole number from {min} to {max}"),
                        }),
                    })
                    .transpose()
            };
        if let Some(n) = number("VIDSCOPE_WORKER_CONCURRENCY", 1, 256)? {
            s.concurrency = n as usize;
        }
        if let Some(n) = number("VIDSCOPE_JOB_MAX_ATTEMPTS", 1, 100)? {
            s.max_attempts = n as u32;
        }
        if let Some(n) = number("VIDSCOPE_JOB_VISIBILITY_SECS", 3, 86_400)? {
            s.visibility = Duration::from_secs(n);
        }
        if let Some(n) = number("VIDSCOPE_JOB_BACKOFF_MS", 1, 600_000)? {
            s.backoff_base = Duration::from_millis(n);
        }
        if let Some(n) = number("VIDSCOPE_WORKER_SHUTDOWN_SECS", 1, 3_600)? {
            s.shutdown_deadline = Duration::from_secs(n);
        }
        if let Some(n) = number("VIDSCOPE_WORKER_LIVENESS_SECS", 1, 86_400)? {
            s.liveness_window = Duration::from_secs(n);
        }
        if let Some(n) = number("VIDSCOPE_WORKER_RECONCILE_SECS", 1, 86_400)? {
            s.reconcile_interval = Duration::from_secs(n);
        }
        if let Some(v) = get("VIDSCOPE_WORKER_TMP_DIR") {
            s.tmp_root = v.into();
        }
        if let Some(n) = number("VIDSCOPE_FFMPEG_TIMEOUT_SECS", 1, 86_400)? {
            s.ffmpeg_timeout = Duration::from_secs(n);
        }
        if let Some(n) = number("VIDSCOPE_WORKER_GAUGE_INTERVAL_MS", 100, 3_600_000)? {
            s.gauge_interval = Duration::from_millis(n);
        }
        if let Some(v) = get("VIDSCOPE_WORKER_HEALTH_ADDR") {
            s.health_addr = Some(parse_addr("VIDSCOPE_WORKER_HEALTH_ADDR", &v)?);
        }
        if let Some(v) = get("VIDSCOPE_QUEUE") {
            s.queue = match v.trim() {
                "auto" => QueueKind::Auto,
                "redis" => QueueKind::Redis,
                "db" => QueueKind::Db,
                other => {
                    return Err(SettingsError {
                        var: "VIDSCOPE_QUEUE",
                        reason: format!("{other:?} is not one of auto, redis, db"),
                    });
                }
            };
        }
        if let Some(v) = get("VIDSCOPE_QUEUE_PREFIX") {
            s.queue_prefix = v;
        }
        if let Some(v) = get("VIDSCOPE_FFMPEG") {
            s.ffmpeg = v.into();
        }
        if let Some(v) = get("VIDSCOPE_FFPROBE") {
            s.ffprobe = v.into();
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<WorkerSettings, SettingsError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WorkerSettings::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_and_overrides() {
        let d = from(&[]).unwrap();
        assert_eq!((d.concurrency, d.max_attempts), (2, 5));
        assert_eq!(d.queue, QueueKind::Auto);
        assert!(
            d.shutdown_deadline < Duration::from_secs(30),
            "below Kubernetes' default grace period"
        );
        let s = from(&[
            ("VIDSCOPE_WORKER_CONCURRENCY", "4"),
            ("VIDSCOPE_QUEUE", "db"),
            ("VIDSCOPE_WORKER_HEALTH_ADDR", "127.0.0.1:8081"),
        ])
        .unwrap();
        assert_eq!(s.concurrency, 4);
        assert_eq!(s.queue, QueueKind::Db);
        assert!(s.health_addr.is_some());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("VIDSCOPE_WORKER_CONCURRENCY", "0"),
            ("VIDSCOPE_JOB_MAX_ATTEMPTS", "many"),
            ("VIDSCOPE_JOB_VISIBILITY_SECS", "1"),
            ("VIDSCOPE_QUEUE", "kafka"),
            ("VIDSCOPE_WORKER_HEALTH_ADDR", "8081"),
            ("VIDSCOPE_WORKER_SHUTDOWN_SECS", "0"),
            ("VIDSCOPE_WORKER_LIVENESS_SECS", "soon"),
            ("VIDSCOPE_WORKER_RECONCILE_SECS", "0"),
        ] {
            assert_eq!(from(&[(var, value)]).unwrap_err().var, var, "{var}={value}");
        }
    }
}

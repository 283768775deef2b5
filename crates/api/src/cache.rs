//! Read-through cache (seed 004 "cache operations"): Redis when `REDIS_URL` is set, so every
//! API instance shares it; in-process otherwise. Session lookups ([`crate::auth`]) and video
//! metadata (`GET /api/videos/{id}`, keys and TTL below) use it.
//!
//! Every lookup is a `cache.get` client span with `cache.backend`, `cache.key` and
//! `cache.hit`; a fill is `cache.set`, an invalidation `cache.delete`. The cache never fails a
//! request: a Redis error is recorded on the span (transient) and the lookup falls through to
//! the database.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use vidscope_core::CoreError;
use vidscope_core::videos::VideoId;
use vidscope_telemetry::classify::{ErrorClass, record_error};

/// In-process entries kept at most; past it expired entries are swept, and if that is not
/// enough the map is cleared (a cache may forget; it must not grow without bound).
const MEMORY_CAP: usize = 10_000;

/// How long a video's metadata is cached. Short, because the worker changes a video's status
/// from another process: [`invalidate_video`] on a status event makes the change visible at
/// once, and this bounds the staleness if such an event is lost.
pub const VIDEO_TTL: Duration = Duration::from_secs(30);

/// The cache key of a video's metadata; also its telemetry label (an id is no secret).
pub fn video_key(id: &VideoId) -> String {
    format!("video:{id}")
}

/// Drops a video's cached metadata; call it whenever the video's row changes (status, probe
/// results, thumbnail). Never fails: a Redis error is recorded on the `cache.delete` span.
pub async fn invalidate_video(cache: &Cache, id: &VideoId) {
    let key = video_key(id);
    cache.invalidate(&key, &key).await;
}

enum Backend {
    /// With the prefix of every key (`{VIDSCOPE_REDIS_PREFIX}:cache:`), so the cache can share
    /// a Redis with the job queue and the login throttle.
    Redis(ConnectionManager, String),
    Memory(Mutex<HashMap<String, (Instant, String)>>),
}

pub struct Cache {
    backend: Backend,
}

impl Cache {
    pub fn new(redis: Option<ConnectionManager>, prefix: &str) -> Self {
        Self {
            backend: match redis {
                Some(c) => Backend::Redis(c, format!("{prefix}:cache:")),
                None => Backend::Memory(Mutex::new(HashMap::new())),
            },
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis(..) => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    /// The client span of one cache operation; `cache.hit` is filled in by lookups only.
    fn span(&self, operation: &'static str, label: &str) -> tracing::Span {
        tracing::info_span!(
            "cache.operation",
            otel.name = %format_args!("cache.{operation}"),
            otel.kind = "client",
            cache.backend = self.backend_name(),
            cache.operation = operation,
            cache.key = label,
            cache.hit = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    }

    /// The cached value for `key`, else `load()`'s, stored for `ttl` when it is `Some`.
    /// `label` is what telemetry shows for the key: never put a secret in it.
    pub async fn get_or_load<T, F, Fut>(
        &self,
        key: &str,
        label: &str,
        ttl: Duration,
        load: F,
    ) -> Result<Option<T>, CoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, CoreError>>,
    {
        let span = self.span("get", label);
        let cached = self.read(key).instrument(span.clone()).await;
        let hit = match cached {
            Ok(Some(raw)) => serde_json::from_str::<T>(&raw).ok(),
            Ok(None) => None,
            Err(e) => {
                record_error(&span, ErrorClass::Transient, "cache.unavailable", &e);
                None
            }
        };
        span.record("cache.hit", hit.is_some());
        if let Some(v) = hit {
            return Ok(Some(v));
        }
        let loaded = load().await?;
        if let Some(v) = &loaded
            && let Ok(raw) = serde_json::to_string(v)
        {
            let span = self.span("set", label);
            if let Err(e) = self.write(key, raw, ttl).instrument(span.clone()).await {
                record_error(&span, ErrorClass::Transient, "cache.unavailable", &e);
            }
        }
        Ok(loaded)
    }

    /// Forgets `key` (logout, a changed video). Errors are recorded, not returned.
    pub async fn invalidate(&self, key: &str, label: &str) {
        let span = self.span("delete", label);
        let result = async {
            match &self.backend {
                Backend::Redis(c, prefix) => {
                    let mut c = c.clone();
                    c.del::<_, ()>(format!("{prefix}{key}"))
                        .await
                        .map_err(|e| e.to_string())
                }
                Backend::Memory(m) => {
                    m.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
                    Ok(())
                }
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = result {
            record_error(&span, ErrorClass::Transient, "cache.unavailable", &e);
        }
    }

    async fn read(&self, key: &str) -> Result<Option<String>, String> {
        match &self.backend {
            Backend::Redis(c, prefix) => {
                let mut c = c.clone();
                c.get(format!("{prefix}{key}"))
                    .await
                    .map_err(|e| e.to_string())
            }
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                match m.get(key) {
                    Some((expires, v)) if *expires > Instant::now() => Ok(Some(v.clone())),
                    Some(_) => {
                        m.remove(key);
                        Ok(None)
                    }
                    None => Ok(None),
                }
            }
        }
    }

    async fn write(&self, key: &str, value: String, ttl: Duration) -> Result<(), String> {
        match &self.backend {
            Backend::Redis(c, prefix) => {
                let mut c = c.clone();
                c.set_ex::<_, _, ()>(format!("{prefix}{key}"), value, ttl.as_secs().max(1))
                    .await
                    .map_err(|e| e.to_string())
            }
            Backend::Memory(m) => {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if m.len() >= MEMORY_CAP {
                    m.retain(|_, (expires, _)| *expires > now);
                    if m.len() >= MEMORY_CAP {
                        m.clear();
                    }
                }
                m.insert(key.to_owned(), (now + ttl, value));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_backend_reads_through_and_expires() {
        let c = Cache::new(None, "vidscope");
        let calls = std::sync::atomic::AtomicU32::new(0);
        let load = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, CoreError>(Some(42u32))
        };
        let ttl = Duration::from_millis(50);
        assert_eq!(c.get_or_load("k", "k", ttl, load).await.unwrap(), Some(42));
        assert_eq!(c.get_or_load("k", "k", ttl, load).await.unwrap(), Some(42));
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "second read is a hit"
        );
        c.invalidate("k", "k").await;
        c.get_or_load("k", "k", ttl, load).await.unwrap();
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "invalidated"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        c.get_or_load("k", "k", ttl, load).await.unwrap();
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "expired"
        );
    }
}

//! The Redis connection (cache, queue). A `ConnectionManager` reconnects by itself, so a Redis
//! restart costs failed calls, not a restart of the service.

use redis::aio::ConnectionManager;
use tracing::Instrument;

use crate::CoreError;

/// Lazy: nothing is sent until first use, so a service starts while Redis is down (uploads
/// keep landing in the outbox; the cache falls back to misses) and connects when it is back.
/// Only a malformed URL fails here.
pub async fn connect(url: &str) -> Result<ConnectionManager, CoreError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)))
        .set_number_of_retries(1);
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}

/// `PING` inside a client span, for readiness.
pub async fn ping(conn: &ConnectionManager) -> Result<(), CoreError> {
    let mut conn = conn.clone();
    let span = tracing::info_span!(
        "redis.ping",
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = "PING"
    );
    async move {
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(CoreError::Invalid(format!(
                "unexpected PING reply {pong:?}"
            )))
        }
    }
    .instrument(span)
    .await
}

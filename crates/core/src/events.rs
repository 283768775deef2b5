//! Video-status changes on their way from the worker to the API's WebSocket hub.
//!
//! With Redis, the worker publishes on a pub/sub channel and every API instance subscribes;
//! in `vidscope up` (one process, no Redis) a broadcast channel joins the two. A lost event
//! costs a stale status in an open tab until its next refresh, never data: the database holds
//! the truth, so publishing is best effort and never fails a job.

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The pub/sub channel of status events.
pub const CHANNEL: &str = "vidscope:events";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoStatusEvent {
    pub video_id: String,
    pub status: String,
    /// The uploader, whose tabs are told; `None` tells everyone.
    pub user_id: Option<String>,
}

#[derive(Clone)]
pub enum EventBus {
    /// In-process: the API subscribes with [`EventBus::subscribe`].
    Local(broadcast::Sender<VideoStatusEvent>),
    /// Redis pub/sub on [`CHANNEL`].
    Redis(ConnectionManager),
    /// Nobody listens (a worker with no Redis in its own process).
    None,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventBus::Local(_) => "EventBus::Local",
            EventBus::Redis(_) => "EventBus::Redis",
            EventBus::None => "EventBus::None",
        })
    }
}

impl EventBus {
    pub fn local() -> Self {
        EventBus::Local(broadcast::channel(256).0)
    }

    /// A receiver of in-process events (`None` for the other buses).
    pub fn subscribe(&self) -> Option<broadcast::Receiver<VideoStatusEvent>> {
        match self {
            EventBus::Local(tx) => Some(tx.subscribe()),
            _ => None,
        }
    }

    /// Best effort: a failure is logged, never returned.
    pub async fn publish(&self, event: &VideoStatusEvent) {
        match self {
            EventBus::Local(tx) => {
                let _ = tx.send(event.clone());
            }
            EventBus::Redis(conn) => {
                let mut conn = conn.clone();
                let payload = match serde_json::to_string(event) {
                    Ok(p) => p,
                    Err(_) => return,
                };
                let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(payload)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, video.id = %event.video_id, "status event not published");
                }
            }
            EventBus::None => {}
        }
    }
}

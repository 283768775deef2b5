//! The real-time hub: changes pushed to open WebSocket connections (`GET /api/ws`).
//!
//! One `tokio::sync::broadcast` channel for the whole process. Every connection subscribes
//! and keeps only what is addressed to its user (or to everyone). That is O(connections) work
//! per message, which is fine for a lesson platform's handful of sockets per process and keeps
//! the hub free of locks and per-user bookkeeping; a busy deployment would key channels by
//! user instead. A connection that falls more than [`CAPACITY`] messages behind is told to
//! resync (`{"type":"resync"}`) rather than blocking publishers.
//!
//! The hub is in-process: the worker runs elsewhere, so its video-status changes reach
//! sockets only once something bridges them (e.g. a Redis pub/sub subscriber in the API
//! calling [`Hub::video_status_changed`]).
//!
//! Shutdown: HTTP graceful shutdown does not wait for upgraded connections, so the hub tells
//! each socket to close itself ([`Hub::shutdown`]: a Close frame, 1001 "going away", so the
//! browser reconnects to another instance) and waits for them, bounded, before the process
//! goes on to exit.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// Messages a slow connection may fall behind by before it has to resync.
pub const CAPACITY: usize = 256;

/// How long a stopping server waits for its sockets to send their Close frames.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// What a connection is told. Serialised as `{"type": "...", ...}` in camelCase, the same
/// casing as the REST bodies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The user's resume position for a video changed (saved from another tab or device).
    #[serde(rename_all = "camelCase")]
    ProgressUpdated {
        video_id: String,
        position_seconds: f64,
        watch_time: f64,
        completed: bool,
        updated_at: i64,
    },
    /// A video's processing status changed (`uploaded`, `processing`, `ready`, `failed`).
    #[serde(rename_all = "camelCase")]
    VideoStatusChanged { video_id: String, status: String },
}

impl Message {
    /// The `message.type` attribute of the `ws.message.sent` event.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::ProgressUpdated { .. } => "progress_updated",
            Message::VideoStatusChanged { .. } => "video_status_changed",
        }
    }
}

/// A message and who may receive it.
#[derive(Debug)]
pub struct Envelope {
    /// `None`: every connection.
    pub user_id: Option<String>,
    /// The connection that caused the change, which already knows about it (the client sends
    /// its connection id in the `x-vidscope-connection` header).
    pub origin: Option<String>,
    pub message: Message,
}

impl Envelope {
    /// Whether the connection `connection_id` of `user_id` should get this message.
    pub fn is_for(&self, user_id: &str, connection_id: &str) -> bool {
        self.user_id.as_deref().is_none_or(|u| u == user_id)
            && self.origin.as_deref() != Some(connection_id)
    }
}

/// Cheap to clone; lives in [`crate::AppState`].
#[derive(Clone, Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<Envelope>>,
    /// `true` once the server stops. Every open connection holds a receiver, so "all receivers
    /// dropped" is "every connection has closed".
    stopping: Arc<watch::Sender<bool>>,
}

/// What a connection watches to learn that the server stops; dropping it counts the
/// connection as closed for [`Hub::shutdown`].
pub type ShutdownSignal = watch::Receiver<bool>;

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            stopping: Arc::new(watch::channel(false).0),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.tx.subscribe()
    }

    /// For a new connection: resolves (`changed()`) when the server stops. Already-stopping
    /// servers hand out a signal that is already set.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.stopping.subscribe()
    }

    /// Asks every open connection to close with 1001 (they do so on their own tasks).
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// [`Self::begin_shutdown`], then waits until every connection has closed, at most `wait`.
    /// Returns whether all closed in time.
    pub async fn shutdown(&self, wait: Duration) -> bool {
        self.begin_shutdown();
        tokio::time::timeout(wait, self.stopping.closed())
            .await
            .is_ok()
    }

    /// Connections currently open (each holds a [`ShutdownSignal`]).
    pub fn connections(&self) -> usize {
        self.stopping.receiver_count()
    }

    /// Publishes; returns how many connections were listening (0 is normal: nobody online).
    pub fn publish(&self, envelope: Envelope) -> usize {
        self.tx.send(Arc::new(envelope)).unwrap_or(0)
    }

    /// A user's progress changed; pushed to that user's connections except `origin`.
    pub fn progress_updated(
        &self,
        user_id: &str,
        origin: Option<String>,
        p: &vidscope_core::progress::Progress,
    ) -> usize {
        self.publish(Envelope {
            user_id: Some(user_id.to_owned()),
            origin,
            message: Message::ProgressUpdated {
                video_id: p.video_id.clone(),
                position_seconds: p.position_seconds,
                watch_time: p.watch_time_seconds,
                completed: p.completed,
                updated_at: p.updated_at,
            },
        })
    }

    /// A video's status changed; pushed to every connection.
    pub fn video_status_changed(&self, video_id: &str, status: &str) -> usize {
        self.publish(Envelope {
            user_id: None,
            origin: None,
            message: Message::VideoStatusChanged {
                video_id: video_id.to_owned(),
                status: status.to_owned(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addressing() {
        let hub = Hub::new();
        let mut rx = hub.subscribe();
        assert_eq!(hub.video_status_changed("v1", "ready"), 1);
        let e = rx.recv().await.unwrap();
        assert!(e.is_for("anyone", "c1"));
        let json = serde_json::to_value(&e.message).unwrap();
        assert_eq!(json["type"], "video_status_changed");
        assert_eq!(json["videoId"], "v1");

        let p = vidscope_core::progress::Progress {
            video_id: "v1".into(),
            position_seconds: 12.0,
            watch_time_seconds: 30.0,
            completed: false,
            updated_at: 1,
        };
        hub.progress_updated("u1", Some("c1".into()), &p);
        let e = rx.recv().await.unwrap();
        assert!(e.is_for("u1", "c2"));
        assert!(!e.is_for("u1", "c1"), "not echoed to the origin");
        assert!(!e.is_for("u2", "c3"), "never to another user");
        let json = serde_json::to_value(&e.message).unwrap();
        assert_eq!(json["type"], "progress_updated");
        assert_eq!(json["positionSeconds"], 12.0);
    }

    #[tokio::test]
    async fn shutdown_signals_connections_and_waits_for_them() {
        let hub = Hub::new();
        assert!(hub.shutdown(Duration::from_millis(10)).await, "none open");
        let hub = Hub::new();
        let mut signal = hub.shutdown_signal();
        assert_eq!(hub.connections(), 1);
        let conn = tokio::spawn(async move {
            signal.changed().await.unwrap();
            assert!(*signal.borrow());
            // The connection sends its Close frame here, then drops the signal.
        });
        assert!(hub.shutdown(Duration::from_secs(5)).await);
        conn.await.unwrap();
        let late = hub.shutdown_signal();
        assert!(
            *late.borrow(),
            "a connection accepted while stopping sees it at once"
        );
        drop(late);
        let _stuck = hub.shutdown_signal();
        assert!(
            !hub.shutdown(Duration::from_millis(20)).await,
            "a connection that never closes does not block shutdown forever"
        );
    }

    #[test]
    fn publishing_without_listeners_is_fine() {
        assert_eq!(Hub::new().video_status_changed("v", "failed"), 0);
    }
}

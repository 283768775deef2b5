//! `GET /api/ws`: a WebSocket for a signed-in user. It pushes the user's progress changes
//! (saved from another tab or device) and video status changes from [`crate::realtime`].
//!
//! Protocol: the server first sends `{"type":"hello","connectionId":"..."}`; a tab that sends
//! that id in the `x-vidscope-connection` header of its own progress saves is not echoed its
//! own changes. Clients may send `{"type":"ping"}` (answered `{"type":"pong"}`); the server
//! pings every [`HEARTBEAT`] and drops a peer silent for [`IDLE_TIMEOUT`]. When the API shuts
//! down, every socket gets a Close frame 1001 "going away" (see [`crate::realtime`]).
//!
//! # Telemetry
//! Each connection is one `ws.connection` span (with `user.id`), with `ws.message.sent` and
//! `ws.message.received` events. A span is only exported when it ends, so it must end: it
//! closes with the socket, and a socket never outlives [`MAX_LIFETIME`] (the server closes it
//! with 1001 "going away" and the client reconnects) nor a dead peer (the heartbeat). The
//! trade-off: a long session shows as several consecutive connection spans, nothing of a
//! connection is visible until it closes, and the SDK keeps at most 128 events per span, so
//! very chatty connections lose per-message events (the totals are attributes,
//! `ws.messages.sent`/`ws.messages.received`, recorded at close). The span starts a trace of
//! its own, linked to the upgrade request's span, so a connection lasting an hour does not
//! stretch the HTTP request's trace.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt;
use serde_json::json;
use tokio::sync::broadcast;
use tracing::Instrument;
use vidscope_telemetry::SpanExt as _;

use crate::auth::CurrentUser;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::responses::{DbUnavailable, Unauthorized};
use crate::realtime::{Envelope, ShutdownSignal};
use crate::state::AppState;

/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A peer that sent nothing (not even a pong) for this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Longest a connection (and so its span) lasts before the server asks the client to reconnect.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// Largest message a client may send; clients only send small control messages.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Connection ids: unique within the process, which is the hub's scope.
fn next_connection_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Browsers send `Origin` on WebSocket handshakes and do not apply CORS to them: refuse a
/// page of another site using the viewer's cookie (cross-site WebSocket hijacking).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Real-time updates over a WebSocket
#[utoipa::path(
    get, path = "/api/ws", operation_id = "websocket",
    description = "A WebSocket upgrade (RFC 6455), not a request/response exchange: the four \
        handshake headers are required, and a client that sends them gets `101` and a socket. \
        Browsers send them with `new WebSocket(url)`.",
    params(
        ("Connection" = String, Header, pattern = "(^|[ ,])[Uu][Pp][Gg][Rr][Aa][Dd][Ee]($|[ ,])", description = "Must list the `upgrade` token"),
        ("Upgrade" = String, Header, pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$", description = "`websocket`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "The client's handshake nonce"),
        ("Origin" = Option<String>, Header, description = "Sent by browsers; must name this server's host"),
    ),
    responses(
        (status = 101, description = "Switched to a WebSocket: `hello`, then `progress_updated`, `video_status_changed`, `pong`, `resync` and `error` messages as JSON text frames"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 403, description = "The `Origin` is another site", body = ErrorBody),
        Unauthorized, DbUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::bad_request("websocket_required", e.body_text()))?;
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden("cross-origin WebSocket refused"));
    }
    let connection_id = next_connection_id();
    let span = tracing::info_span!(
        parent: None,
        "ws.connection",
        otel.kind = "server",
        user.id = %user.id,
        ws.connection.id = %connection_id,
        ws.messages.sent = tracing::field::Empty,
        ws.messages.received = tracing::field::Empty,
        ws.close.reason = tracing::field::Empty,
    );
    let upgrade = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .clone();
    if upgrade.is_valid() {
        span.add_link(upgrade);
    }
    // Subscribe before answering, so nothing published after the 101 is missed.
    let rx = state.realtime.subscribe();
    let stop = state.realtime.shutdown_signal();
    let conn = Connection {
        user_id: user.id,
        id: connection_id,
        span: span.clone(),
        sent: 0,
        received: 0,
    };
    Ok(ws
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| conn.run(socket, rx, stop).instrument(span)))
}

struct Connection {
    user_id: String,
    id: String,
    span: tracing::Span,
    sent: u64,
    received: u64,
}

impl Connection {
    async fn send(
        &mut self,
        socket: &mut WebSocket,
        kind: &'static str,
        body: serde_json::Value,
    ) -> bool {
        let text = body.to_string();
        let size = text.len() as i64;
        if socket.send(Message::Text(text.into())).await.is_err() {
            return false;
        }
        self.sent += 1;
        self.span.add_event(
            "ws.message.sent",
            vec![
                KeyValue::new("message.type", kind),
                KeyValue::new("message.size", size),
            ],
        );
        true
    }

    fn received_event(&mut self, kind: &'static str, size: usize) {
        self.received += 1;
        self.span.add_event(
            "ws.message.received",
            vec![
                KeyValue::new("message.type", kind),
                KeyValue::new("message.size", size as i64),
            ],
        );
    }

    /// Answers a client message; `false` ends the connection.
    async fn on_text(&mut self, socket: &mut WebSocket, text: &str) -> bool {
        let kind = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
        match kind.as_deref() {
            Some("ping") => {
                self.received_event("ping", text.len());
                self.send(socket, "pong", json!({"type": "pong"})).await
            }
            _ => {
                self.received_event("unknown", text.len());
                self.send(
                    socket,
                    "error",
                    json!({"type": "error", "message": "expected {\"type\":\"ping\"}"}),
                )
                .await
            }
        }
    }

    async fn push(&mut self, socket: &mut WebSocket, envelope: &Envelope) -> bool {
        if !envelope.is_for(&self.user_id, &self.id) {
            return true;
        }
        match serde_json::to_value(&envelope.message) {
            Ok(body) => self.send(socket, envelope.message.kind(), body).await,
            Err(_) => true,
        }
    }

    /// Serves until the socket ends; `stop` is dropped last, which tells a stopping server this
    /// connection has closed.
    async fn run(
        mut self,
        mut socket: WebSocket,
        mut rx: broadcast::Receiver<Arc<Envelope>>,
        mut stop: ShutdownSignal,
    ) {
        let hello = json!({"type": "hello", "connectionId": self.id});
        let mut reason = "client_gone";
        if self.send(&mut socket, "hello", hello).await {
            reason = self.serve(&mut socket, &mut rx, &mut stop).await;
        }
        self.span.record("ws.messages.sent", self.sent as i64);
        self.span
            .record("ws.messages.received", self.received as i64);
        self.span.record("ws.close.reason", reason);
        tracing::info!(
            reason,
            sent = self.sent,
            received = self.received,
            "websocket closed"
        );
        // The span ends when the last handle drops, right after this returns.
    }

    /// The connection's loop; returns why it ended.
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut broadcast::Receiver<Arc<Envelope>>,
        stop: &mut ShutdownSignal,
    ) -> &'static str {
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await; // the first tick is immediate
        let lifetime = tokio::time::sleep(MAX_LIFETIME);
        tokio::pin!(lifetime);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                incoming = socket.recv() => {
                    last_heard = Instant::now();
                    let alive = match incoming {
                        None | Some(Err(_)) => return "client_gone",
                        Some(Ok(Message::Close(_))) => return "client_closed",
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => true,
                        Some(Ok(Message::Text(t))) => self.on_text(socket, t.as_str()).await,
                        Some(Ok(Message::Binary(b))) => {
                            self.received_event("binary", b.len());
                            self.send(socket, "error", json!({"type": "error", "message": "binary messages are not supported"})).await
                        }
                    };
                    if !alive {
                        return "client_gone";
                    }
                }
                published = rx.recv() => {
                    let alive = match published {
                        Ok(envelope) => self.push(socket, &envelope).await,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            self.span.add_event("ws.lagged", vec![KeyValue::new("missed", missed as i64)]);
                            self.send(socket, "resync", json!({"type": "resync"})).await
                        }
                        Err(broadcast::error::RecvError::Closed) => return "server_shutdown",
                    };
                    if !alive {
                        return "client_gone";
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > IDLE_TIMEOUT {
                        return "idle_timeout";
                    }
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        return "client_gone";
                    }
                }
                _ = &mut lifetime => {
                    going_away(socket, "max connection lifetime, reconnect").await;
                    return "max_lifetime";
                }
                _ = stopping(stop) => {
                    going_away(socket, "server shutting down, reconnect").await;
                    return "server_shutdown";
                }
            }
        }
    }
}

/// Resolves once the server stops, also for a connection accepted after shutdown began. (An
/// error means the hub is gone, which only happens when the server is too.) The value guard
/// is dropped here: it must not be held across the select's other awaits.
async fn stopping(stop: &mut ShutdownSignal) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Asks the client to reconnect (1001 "going away"); the socket is dropped right after, so a
/// failed send only means the client is already gone.
async fn going_away(socket: &mut WebSocket, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::AWAY,
            reason: reason.into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(header::HOST, HeaderValue::from_static("app.example:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }

    #[test]
    fn connection_ids_are_unique() {
        assert_ne!(next_connection_id(), next_connection_id());
    }
}

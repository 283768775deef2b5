//! `GET /api/ws`: progress pushed to the same user's other connections, never to others.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use vidscope_core::domain::Role;
use vidscope_testkit::{TestApp, TestUser};

use crate::helpers::app_with_user;
use crate::progress::{V1, WAIT, viewer_and_lesson, warm_up};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a socket must stay silent to count as "received nothing".
const QUIET: Duration = Duration::from_millis(500);

async fn connect(app: &TestApp, user: &TestUser) -> (Socket, String) {
    let url = app.url("/api/ws").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", user.cookie.parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let id = hello["connectionId"].as_str().unwrap().to_owned();
    (socket, id)
}

/// The next text message as JSON, skipping pings; `None` when nothing comes within `wait`.
async fn try_next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("unexpected WebSocket item: {other:?}"),
            }
        }
    })
    .await
    .ok()
}

async fn next_json(socket: &mut Socket) -> Value {
    try_next_json(socket, WAIT)
        .await
        .expect("a message within the wait")
}

async fn save(app: &TestApp, user: &TestUser, position: f64, origin: Option<&str>) {
    let mut req = app
        .client
        .post(app.url("/api/progress"))
        .header("cookie", &user.cookie)
        .json(&json!({"videoId": V1, "positionSeconds": position, "watchTime": position}));
    if let Some(id) = origin {
        req = req.header("x-vidscope-connection", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn progress_reaches_my_other_sessions_and_nobody_elses() {
    // Arrange: two tabs of mine, one of another viewer.
    let (app, me) = viewer_and_lesson(Some(600.0)).await;
    let other = app.create_user(Role::Viewer).await;
    let (mut tab1, tab1_id) = connect(&app, &me).await;
    let (mut tab2, _) = connect(&app, &me).await;
    let (mut theirs, _) = connect(&app, &other).await;

    // Act: tab 1 saves, naming its connection.
    save(&app, &me, 42.0, Some(&tab1_id)).await;

    // Assert
    let pushed = next_json(&mut tab2).await;
    assert_eq!(pushed["type"], "progress_updated", "{pushed}");
    assert_eq!(pushed["videoId"], V1);
    assert_eq!(pushed["positionSeconds"], 42.0);
    assert_eq!(pushed["completed"], false);
    assert_eq!(
        try_next_json(&mut tab1, QUIET).await,
        None,
        "not echoed to the saving tab"
    );
    assert_eq!(
        try_next_json(&mut theirs, QUIET).await,
        None,
        "another user's socket receives nothing"
    );

    // A save from elsewhere (no connection named) reaches both of my tabs, still not theirs.
    save(&app, &me, 60.0, None).await;
    for tab in [&mut tab1, &mut tab2] {
        let pushed = next_json(tab).await;
        assert_eq!(pushed["positionSeconds"], 60.0, "{pushed}");
    }
    assert_eq!(try_next_json(&mut theirs, QUIET).await, None);

    // Video status changes (the hub API the worker bridge will use) go to everyone.
    assert_eq!(app.state.realtime.video_status_changed(V1, "ready"), 3);
    for socket in [&mut tab1, &mut tab2, &mut theirs] {
        let pushed = next_json(socket).await;
        assert_eq!(
            pushed,
            json!({"type": "video_status_changed", "videoId": V1, "status": "ready"})
        );
    }
    for socket in [tab1, tab2, theirs] {
        drop(socket);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_connection_span_ends_with_the_socket_and_carries_message_events() {
    // Arrange
    let (app, me) = app_with_user(Role::Viewer).await;
    warm_up(&app, &me).await;
    let (mut socket, id) = connect(&app, &me).await;

    // Act: one client message, then a clean close.
    socket
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}

    // Assert: the span was exported once the socket closed.
    app.flush_telemetry().await;
    let span = app.span_named("ws.connection").await;
    assert_eq!(span.attr_str("user.id"), Some(me.user.id.as_str()));
    assert_eq!(span.attr_str("ws.connection.id"), Some(id.as_str()));
    assert_eq!(span.attr_str("ws.close.reason"), Some("client_closed"));
    assert_eq!(span.attr_i64("ws.messages.sent"), Some(2), "hello and pong");
    assert_eq!(span.attr_i64("ws.messages.received"), Some(1));
    let received = span.event("ws.message.received").unwrap();
    assert_eq!(received.attr_str("message.type"), Some("ping"));
    let sent: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name == "ws.message.sent")
        .filter_map(|e| e.attr_str("message.type"))
        .collect();
    assert_eq!(sent, ["hello", "pong"]);
    // Its own trace, linked to the upgrade request's server span.
    let upgrade = app.span_named("GET /api/ws").await;
    assert_eq!(span.parent_span_id, None);
    assert!(
        span.links.iter().any(|l| l.span_id == upgrade.span_id),
        "{:?}",
        span.links
    );
    app.stop().await;
}

#[tokio::test]
async fn shutting_down_closes_sockets_with_going_away() {
    // Arrange: two open sockets.
    let (app, user) = app_with_user(Role::Viewer).await;
    let (mut first, _) = connect(&app, &user).await;
    let (mut second, _) = connect(&app, &user).await;
    assert_eq!(app.state.realtime.connections(), 2);

    // Act: stop the server while reading what the sockets get.
    let started = std::time::Instant::now();
    let ((), a, b) = tokio::join!(
        app.stop(),
        close_frame(&mut first),
        close_frame(&mut second)
    );

    // Assert: 1001 "going away" on both, well before the drain timeout.
    for frame in [a, b] {
        let frame = frame.expect("a close code");
        assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
        assert!(frame.reason.contains("shutting down"), "{frame:?}");
    }
    assert!(
        started.elapsed() < vidscope_api::realtime::SHUTDOWN_WAIT,
        "stopping took {:?}",
        started.elapsed()
    );
}

/// The Close frame the server sends, skipping pings.
async fn close_frame(socket: &mut Socket) -> Option<CloseFrame> {
    let frame = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a Close frame, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, frame)
        .await
        .expect("a Close frame within the wait")
}

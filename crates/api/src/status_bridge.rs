//! Video-status changes from the worker to open WebSocket tabs: the in-process bus of
//! `vidscope up`, or Redis pub/sub when the worker runs elsewhere. Each event is pushed through
//! the realtime hub and drops the video's cached metadata so the next read sees the new status.

use futures_util::StreamExt;
use vidscope_core::events::{CHANNEL, VideoStatusEvent};

use crate::state::AppState;

async fn deliver(state: &AppState, event: &VideoStatusEvent) {
    if let Some(id) = vidscope_core::videos::VideoId::parse(&event.video_id) {
        crate::cache::invalidate_video(&state.cache, &id).await;
    }
    let sent = state
        .realtime
        .video_status_changed(&event.video_id, &event.status);
    tracing::debug!(video.id = %event.video_id, status = %event.status, sent, "video status pushed");
}

/// Forwards in-process events until the bus closes.
pub fn spawn_local(
    state: AppState,
    mut rx: tokio::sync::broadcast::Receiver<VideoStatusEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(event) => deliver(&state, &event).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "status bridge fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// Subscribes to Redis pub/sub, reconnecting (every 2 s) for as long as the API runs.
pub fn spawn_redis(state: AppState, url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut down = false;
        loop {
            let run = async {
                let client = redis::Client::open(url.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                if down {
                    tracing::info!("status bridge reconnected to Redis");
                }
                down = false;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<VideoStatusEvent>(&payload) {
                        Ok(event) => deliver(&state, &event).await,
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed status event"),
                    }
                }
                Ok::<_, redis::RedisError>(())
            };
            if let Err(e) = run.await
                && !down
            {
                tracing::warn!(error = %e, "status bridge cannot reach Redis; retrying");
                down = true;
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    })
}

//! What a virtual user does. Each interaction is its own root span (`loadgen.<scenario>`), as a
//! real player's page load, progress save or page hide would be its own trace.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::client::{Client, Exhausted};
use super::sample;

/// Resume attempts so far, in this process.
static RESUMES: AtomicU64 = AtomicU64::new(0);

/// A video as `GET /api/videos` lists it: the API's own body type, so the load generator reads
/// exactly what the API writes.
pub(super) use vidscope_api::routes::videos::VideoBody as Video;
use vidscope_api::routes::videos::list::VideoList;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    position_seconds: f64,
    watch_time: f64,
}

/// Sleeps, but never past the end of the run.
pub(super) async fn pause(client: &Client, d: Duration) -> Result<(), Exhausted> {
    let until = (Instant::now() + d).min(client.budget().deadline);
    tokio::select! {
        () = tokio::time::sleep_until(until.into()) => {}
        () = client.budget().stopped() => {}
    }
    if client.budget().exhausted() {
        Err(Exhausted)
    } else {
        Ok(())
    }
}

pub(super) async fn login(client: &Client, email: &str, password: &str) -> Result<u16, Exhausted> {
    credentials(client, "POST /api/auth/login", &[200], email, password).await
}

/// A 403 is expected too: it is how a server with registration off answers.
pub(super) async fn register(
    client: &Client,
    email: &str,
    password: &str,
) -> Result<u16, Exhausted> {
    credentials(
        client,
        "POST /api/auth/register",
        &[201, 403],
        email,
        password,
    )
    .await
}

/// Posts an e-mail and password to `route` and returns the status.
async fn credentials(
    client: &Client,
    route: &'static str,
    expect: &[u16],
    email: &str,
    password: &str,
) -> Result<u16, Exhausted> {
    let path = route.split_once(' ').map_or(route, |(_, path)| path);
    let req = client
        .request(Method::POST, path)
        .json(&json!({ "email": email, "password": password }));
    Ok(client.send(route, req, expect).await?.status)
}

pub(super) async fn list(client: &Client) -> Result<Vec<Video>, Exhausted> {
    let reply = client.call("GET /api/videos", &[200]).await?;
    Ok(reply
        .json::<VideoList>()
        .await
        .map(|l| l.videos)
        .unwrap_or_default())
}

/// One upload. Every fifth is a file with an MP4 header and no movie (accepted, then dead-
/// lettered by the probe: the failed-job path), every seventh a text file (415). File names
/// carry `run` so each names one lesson: the viewers stream by the legacy by-name URL, which
/// serves the oldest lesson of a name.
pub(super) async fn upload(client: &Client, run: &str, n: u64) -> Result<bool, Exhausted> {
    let (bytes, name, mime, expect, label) = if n % 7 == 6 {
        (
            b"these are lecture notes, not a video\n".to_vec(),
            "notes",
            "video/mp4",
            415,
            "notes",
        )
    } else if n % 5 == 4 {
        (sample::truncated(), "broken", "video/mp4", 201, "broken")
    } else {
        (
            sample::SAMPLE_MP4.to_vec(),
            "lesson",
            "video/mp4",
            201,
            "lesson",
        )
    };
    let name = format!("{name}-{run}-{n}.mp4");
    let span = tracing::info_span!("loadgen.upload", loadgen.upload.kind = label);
    async {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name)
            .mime_str(mime)
            .expect("a valid MIME literal");
        let form = reqwest::multipart::Form::new()
            .text("title", format!("Load test {label} {n}"))
            .part("file", part);
        let req = client.request(Method::POST, "/api/upload").multipart(form);
        let reply = client.send("POST /api/upload", req, &[expect]).await?;
        Ok(reply.status == 201)
    }
    .instrument(span)
    .await
}

/// A viewer opens a lesson: metadata, resume position, the first bytes, the player's load
/// and resume events.
pub(super) async fn open(client: &Client, video: &Video) -> Result<(f64, f64), Exhausted> {
    let span = tracing::info_span!("loadgen.open", video.id = %video.id);
    async {
        let meta = client.request(Method::GET, &format!("/api/videos/{}", video.id));
        client.send("GET /api/videos/{id}", meta, &[200]).await?;
        let progress = client
            .send(
                "GET /api/progress/{videoId}",
                client.request(Method::GET, &format!("/api/progress/{}", video.id)),
                &[200],
            )
            .await?
            .json::<Progress>()
            .await
            .map_or((0.0, 0.0), |p| (p.position_seconds, p.watch_time));
        stream(client, video, 0).await?;
        let (load_ms, resume) = {
            let mut rng = rand::rng();
            // Mostly fast loads, a long tail, and now and then one over the 5 s alert line.
            let load_ms = if rng.random_bool(0.03) {
                rng.random_range(5_000.0..9_000.0)
            } else {
                rng.random_range(150.0..1_800.0)
            };
            let resume = (progress.0 > 0.0).then(|| {
                // One resume in eight lands elsewhere (the resume-failure alert is at 10 %),
                // counted rather than drawn so that short runs see one too.
                let success = RESUMES.fetch_add(1, Ordering::Relaxed) % 8 != 1;
                let actual = if success {
                    progress.0
                } else {
                    (progress.0 - rng.random_range(3.0..8.0)).max(0.0)
                };
                (success, actual, rng.random_range(40.0..900.0))
            });
            (load_ms, resume)
        };
        let mut events = vec![json!({ "name": "video.loaded", "loadTimeMs": load_ms })];
        if let Some((success, actual, resume_ms)) = resume {
            events.push(json!({
                "name": "video.resume_attempt", "success": success,
                "expected": progress.0, "actual": actual, "resumeTimeMs": resume_ms,
            }));
            if !success {
                events.push(json!({
                    "name": "video.resume_position_mismatch",
                    "expected": progress.0, "actual": actual,
                }));
            }
        }
        player_events(client, video, events).await?;
        Ok(progress)
    }
    .instrument(span)
    .await
}

/// A range request from `offset`, as a player seeking or buffering ahead makes.
async fn stream(client: &Client, video: &Video, offset: u64) -> Result<(), Exhausted> {
    let req = client
        .request(Method::GET, &format!("/api/videos/{}", video.filename))
        .header(
            "range",
            format!("bytes={offset}-{}", offset + 64 * 1024 - 1),
        );
    // 206 from the local store or an S3 proxy, 302 to a presigned URL in S3 redirect mode.
    client
        .send("GET /api/videos/{filename}", req, &[206, 302])
        .await?;
    Ok(())
}

async fn player_events(
    client: &Client,
    video: &Video,
    events: Vec<serde_json::Value>,
) -> Result<(), Exhausted> {
    let req = client
        .request(Method::POST, "/api/telemetry/player")
        .json(&json!({ "videoId": video.id, "events": events }));
    client
        .send("POST /api/telemetry/player", req, &[200])
        .await?;
    Ok(())
}

/// Watching: a progress save every `interval` (10 s of video each, as the player does),
/// buffering now and then, a repeated save sometimes (the duplicate path), and the final
/// position when the tab is hidden. `true` when the lesson was watched to the end.
pub(super) async fn watch(
    client: &Client,
    video: &Video,
    interval: Duration,
    saves: u32,
) -> Result<bool, Exhausted> {
    let (mut position, mut watched) = open(client, video).await?;
    let duration = video.duration_seconds.unwrap_or(60.0).max(1.0);
    if position >= duration - 1.0 {
        position = 0.0;
    }
    for _ in 0..saves {
        pause(client, interval).await?;
        let step = 10.0_f64.min(duration - position);
        position += step;
        watched += step;
        let (buffering, repeat) = {
            let mut rng = rand::rng();
            (
                rng.random_bool(0.2)
                    .then(|| rng.random_range(100.0..4_000.0)),
                rng.random_bool(0.1),
            )
        };
        let span = tracing::info_span!("loadgen.progress", video.id = %video.id);
        async {
            if let Some(ms) = buffering {
                player_events(
                    client,
                    video,
                    vec![json!({ "name": "video.buffering", "durationMs": ms })],
                )
                .await?;
                let offset = (video.size_bytes as f64 * position / duration) as u64;
                stream(
                    client,
                    video,
                    offset.min(u64::try_from(video.size_bytes - 1).unwrap_or(0)),
                )
                .await?;
            }
            let body = json!({
                "videoId": video.id, "positionSeconds": position, "watchTime": watched,
            });
            for _ in 0..(1 + u32::from(repeat)) {
                let req = client.request(Method::POST, "/api/progress").json(&body);
                client.send("POST /api/progress", req, &[200]).await?;
            }
            Ok::<_, Exhausted>(())
        }
        .instrument(span)
        .await?;
        if position >= duration {
            break;
        }
    }
    let span = tracing::info_span!("loadgen.page_hidden", video.id = %video.id);
    player_events(
        client,
        video,
        vec![
            json!({ "name": "video.page_hidden", "finalPosition": position, "watchTime": watched }),
        ],
    )
    .instrument(span)
    .await?;
    Ok(position >= duration)
}

/// Browsing the catalogue: the list, one lesson's details and thumbnail, the session.
pub(super) async fn browse(client: &Client, videos: &[Video]) -> Result<(), Exhausted> {
    let span = tracing::info_span!("loadgen.browse");
    async {
        list(client).await?;
        let pick = videos.choose(&mut rand::rng()).cloned();
        if let Some(v) = pick {
            let meta = client.request(Method::GET, &format!("/api/videos/{}", v.id));
            client.send("GET /api/videos/{id}", meta, &[200]).await?;
            if v.thumbnail_url.is_some() {
                let req = client.request(Method::GET, &format!("/api/videos/{}/thumbnail", v.id));
                client
                    .send("GET /api/videos/{id}/thumbnail", req, &[200])
                    .await?;
            }
        }
        client.call("GET /api/auth/session", &[200]).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Signing out and back in.
pub(super) async fn relogin(client: &Client, email: &str, password: &str) -> Result<(), Exhausted> {
    let span = tracing::info_span!("loadgen.relogin");
    async {
        client.call("POST /api/auth/logout", &[204]).await?;
        login(client, email, password).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Requests that must fail, each with the status the API promises for it.
pub(super) async fn provoke_error(
    client: &Client,
    anonymous: &Client,
    videos: &[Video],
    bad_login_allowed: bool,
) -> Result<(), Exhausted> {
    let choice = rand::rng().random_range(0..if bad_login_allowed { 7 } else { 6 });
    let span = tracing::info_span!("loadgen.error", loadgen.probe = choice);
    async {
        let video = videos.choose(&mut rand::rng()).cloned();
        match (choice, video) {
            (0, _) | (4, None) | (5, None) => {
                let id = uuid::Uuid::new_v4();
                let req = client.request(Method::GET, &format!("/api/videos/{id}"));
                client.send("GET /api/videos/{id}", req, &[404]).await?;
            }
            (1, _) => {
                let req = client.request(Method::GET, "/api/videos/..%2F..%2Fetc%2Fpasswd");
                client
                    .send("GET /api/videos/{filename}", req, &[400, 404])
                    .await?;
            }
            (2, _) => {
                let req = client.request(Method::POST, "/api/progress").json(
                    &json!({ "videoId": "not-a-video", "positionSeconds": -5, "watchTime": 0 }),
                );
                client.send("POST /api/progress", req, &[400]).await?;
            }
            (3, _) => {
                let req = anonymous.request(Method::GET, "/api/videos");
                anonymous.send("GET /api/videos", req, &[401]).await?;
            }
            (4, Some(v)) => {
                let req = client
                    .request(Method::POST, "/api/telemetry/player")
                    .json(&json!({ "videoId": v.id, "events": [{ "name": "video.exploded" }] }));
                client
                    .send("POST /api/telemetry/player", req, &[400])
                    .await?;
            }
            (5, Some(v)) => {
                let req = client
                    .request(Method::GET, &format!("/api/videos/{}", v.filename))
                    .header("range", "bytes=999999999-");
                client
                    .send("GET /api/videos/{filename}", req, &[416, 302])
                    .await?;
            }
            _ => {
                // A wrong password for an account that does not exist: counts against this
                // address's login budget, hence the caller's rate limit on this probe.
                let req = anonymous
                    .request(Method::POST, "/api/auth/login")
                    .json(&json!({
                        "email": "nobody@loadgen.invalid", "password": "not the password",
                    }));
                anonymous
                    .send("POST /api/auth/login", req, &[401, 429])
                    .await?;
            }
        }
        Ok(())
    }
    .instrument(span)
    .await
}

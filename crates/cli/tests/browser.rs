//! The pages in a real browser: headless Chromium driven over WebDriver (chromedriver), against
//! `vidscope up` (API and worker in one process) with videos that ffmpeg makes here.
//!
//! One viewer signs in, finds both lessons (MP4 and WebM) with their thumbnails, plays one,
//! seeks, and reloads: playback resumes at the saved position. A page hide saves the position
//! through the beacon. The player's events arrive as the seed's metrics (names and units) and
//! as a `video.session` span in the trace of the page load. The trace viewer lists that trace
//! under the viewer's user id and not under another user's, and draws its waterfall.
//!
//! Traces go to the embedded telemetry files (what the trace viewer reads); metrics go to the
//! OTLP capture receiver. Screenshots of the player and of the trace viewer are written to
//! `target/test-artifacts/browser/` (or `$VIDSCOPE_TEST_ARTIFACTS/browser/`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test.sh installs them) and ffmpeg.

#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use vidscope_testkit::TraceResponse;
use vidscope_testkit::db::TestDb;
use vidscope_testkit::media::make_clip;
use vidscope_testkit::otlp::CaptureReceiver;

mod common;
use common::{ADMIN, Process};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(60);
/// Length of the generated lessons, in seconds.
const LESSON_SECS: u32 = 20;

/// Polls `probe` until it returns something, panicking with `what` (and the last value seen)
/// after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn artifacts_dir() -> PathBuf {
    let base = std::env::var_os("VIDSCOPE_TEST_ARTIFACTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts"),
        PathBuf::from,
    );
    let dir = base.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// ffmpeg's arguments for an MP4 lesson (H.264 and AAC, a key frame a second, the index first).
const MP4: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    "-g",
    "25",
    "-c:a",
    "aac",
    "-movflags",
    "+faststart",
];

/// A lesson made by ffmpeg: a test pattern with a tone, `LESSON_SECS` long.
fn make_lesson(dir: &Path, name: &str, codec_args: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    make_clip(&path, LESSON_SECS, codec_args);
    std::fs::read(&path).unwrap()
}

/// chromedriver on a free loopback port, and a headless Chromium session through it.
async fn browser() -> (Process, String, Client, tempfile::TempDir) {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Process(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("chromedriver to answer /status", WAIT, || async {
        let r = http
            .get(format!("{url}/status"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if v["value"]["ready"] == true {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    // The flags this machine needs (no sandbox as root, no background connections to hosts it
    // cannot reach), plus autoplay without a gesture so the test can call `play()`.
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("--user-data-dir={}", profile.path().display())])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": args}),
    );
    // The console, Content-Security-Policy reports included, for [`csp_violations`].
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("a Chromium session through chromedriver");
    (driver, url, client, profile)
}

/// Runs `script` in the page and returns its value.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// `document.body.dataset[key]` once the page has set it.
async fn body_data(c: &Client, key: &str) -> String {
    let script = format!("return document.body.dataset.{key} || null;");
    eventually(&format!("body[data-{key}]"), WAIT, || async {
        match js(c, &script).await {
            Value::String(s) => Ok(s),
            other => Err(format!("{other} (page: {:?})", page_state(c).await)),
        }
    })
    .await
}

/// What the page shows, for failure messages.
async fn page_state(c: &Client) -> Value {
    c.execute(
        "return {url: location.href, body: document.body && document.body.dataset, \
         error: (document.getElementById('error') || {}).textContent};",
        vec![],
    )
    .await
    .unwrap_or(Value::Null)
}

/// What Chromium refused under the pages' Content-Security-Policy since the last call: its
/// `security` console messages, read from chromedriver's browser log (which a read empties).
/// A policy stricter than the pages need shows here even where nothing else would (a
/// stylesheet refused).
async fn csp_violations(driver_url: &str, c: &Client) -> Vec<String> {
    let session = c
        .session_id()
        .await
        .unwrap()
        .expect("a WebDriver session id");
    let r = reqwest::Client::new()
        .post(format!("{driver_url}/session/{session}/se/log"))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap();
    let log: Value = r.json().await.unwrap();
    log["value"]
        .as_array()
        .unwrap_or_else(|| panic!("the browser log: {log}"))
        .iter()
        .filter(|e| {
            e["source"] == "security"
                || e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Content Security Policy"))
        })
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn assert_no_csp_violations(driver_url: &str, c: &Client, when: &str) {
    let refused = csp_violations(driver_url, c).await;
    assert!(
        refused.is_empty(),
        "{when}: the policy refused {refused:#?}"
    );
}

/// Types each text into the element with its id, then clicks the element `submit`.
async fn fill_and_submit(c: &Client, fields: &[(&str, &str)], submit: &str) {
    for (id, text) in fields {
        c.find(Locator::Id(id))
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap();
    }
    click(c, Locator::Id(submit)).await;
}

/// Clicks the element `at`.
async fn click(c: &Client, at: Locator<'_>) {
    c.find(at)
        .await
        .unwrap_or_else(|e| panic!("{at:?}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Fills in and submits the sign-in form of the page `c` is on.
async fn submit_sign_in(c: &Client, email: &str, password: &str) {
    fill_and_submit(c, &[("email", email), ("password", password)], "sign-in").await;
}

/// `vidscope up` for a browser test, on a fresh database and data directory: traces into the
/// embedded files under `dir/telemetry` (what the trace viewer reads), metrics to `receiver`,
/// local storage, no Redis.
struct Up {
    // Dropped in this order: the process before what it uses.
    process: Process,
    dir: tempfile::TempDir,
    _db: TestDb,
    receiver: CaptureReceiver,
}

impl Up {
    /// Returns the running service and its base URL.
    async fn start() -> (Up, String) {
        let receiver = CaptureReceiver::start().await;
        let db = vidscope_testkit::db::fresh_db().await;
        let dir = tempfile::tempdir().unwrap();
        let mut command = common::up_command(dir.path(), &db.url, &receiver.grpc_endpoint());
        command
            .env("OTEL_TRACES_EXPORTER", "file")
            .env("OTEL_METRICS_EXPORTER", "otlp")
            .env("OTEL_LOGS_EXPORTER", "none")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("RUST_LOG", "warn")
            .env_remove("S3_BUCKET_NAME")
            .env_remove("REDIS_URL");
        let (process, base) = common::start_up(command).await;
        let up = Up {
            process,
            dir,
            _db: db,
            receiver,
        };
        (up, base)
    }

    /// Ends the browser session `c`, then stops the service, which must exit cleanly.
    async fn stop(self, c: Client) {
        c.close().await.unwrap();
        let status = self.process.stop();
        assert!(status.success(), "vidscope up exited with {status}");
    }
}

async fn screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    let path = artifacts_dir().join(name);
    std::fs::write(&path, png).unwrap();
    path
}

/// Every span in the OTLP-JSON trace files under `dir` (one export request per line), with its
/// service name.
fn spans_in_files(dir: &Path) -> Vec<(String, Value)> {
    let mut spans = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return spans;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("traces") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(req) = serde_json::from_str::<Value>(line) else {
                continue; // a line still being written
            };
            for rs in req["resourceSpans"].as_array().into_iter().flatten() {
                let service = common::service_name(&rs["resource"])
                    .unwrap_or("")
                    .to_owned();
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
    }
    spans
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// Signs in `client` (a reqwest client with a cookie store) and returns the user's id.
async fn sign_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let r = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "login {email}: {}", r.status());
    let session = get_json(client, &format!("{base}/api/auth/session"))
        .await
        .unwrap();
    session["user"]["id"].as_str().unwrap().to_owned()
}

/// GET `url` as JSON; errors as text, for [`eventually`].
async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    client
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_watches_resumes_and_finds_the_trace() {
    // ---------------------------------------------------------------- the service
    let (up, base) = Up::start().await;
    let receiver = &up.receiver;
    let telemetry_dir = up.dir.path().join("telemetry");

    // ------------------------------------------------------- two lessons, by ffmpeg
    let media = tempfile::tempdir().unwrap();
    let mp4 = make_lesson(media.path(), "lesson.mp4", MP4);
    let webm = make_lesson(
        media.path(),
        "lesson.webm",
        &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "300k",
            "-g",
            "25",
            "-c:a",
            "libopus",
        ],
    );
    let admin = cookie_client();
    let admin_id = sign_in(&admin, &base, ADMIN.0, ADMIN.1).await;
    let mut ids = HashMap::new();
    for (name, bytes, mime) in [
        ("lesson.mp4", mp4, "video/mp4"),
        ("lesson.webm", webm, "video/webm"),
    ] {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name)
            .mime_str(mime)
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("title", format!("Browser lesson {name}"))
            .part("file", part);
        let r = admin
            .post(format!("{base}/api/upload"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "upload {name}: {body}");
        let id = body["id"]
            .as_str()
            .or_else(|| body["video"]["id"].as_str())
            .unwrap_or_else(|| panic!("upload answer names the video: {body}"))
            .to_owned();
        ids.insert(name, id);
    }
    // The worker probes both and makes their thumbnails.
    eventually("both lessons ready with thumbnails", WAIT, || async {
        let list = get_json(&admin, &format!("{base}/api/videos")).await?;
        let ready = list["videos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["status"] == "ready" && v["thumbnail_url"].is_string())
            .count();
        if ready == 2 {
            Ok(())
        } else {
            Err(list.to_string())
        }
    })
    .await;

    // A second user, whose requests make traces the viewer's user filter must leave out.
    let other = cookie_client();
    let r = other
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": "browser-other@example.com", "password": "another password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register");
    let registered: Value = r.json().await.unwrap();
    let other_id = registered["user"]["id"].as_str().unwrap().to_owned();
    let other_trace = TraceResponse::of(
        other
            .get(format!("{base}/api/videos"))
            .send()
            .await
            .unwrap()
            .headers(),
    )
    .trace_id;

    // ------------------------------------------------------------ the browser
    let (_driver, driver_url, c, _profile) = browser().await;

    // Signing in: the lesson list sends an anonymous visitor to the login page and back.
    c.goto(&format!("{base}/videos")).await.unwrap();
    let url = c.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    assert_eq!(url.query(), Some("next=/videos"), "{url}");
    assert_no_csp_violations(&driver_url, &c, "the sign-in page").await;
    submit_sign_in(&c, ADMIN.0, ADMIN.1).await;
    assert_eq!(body_data(&c, "loaded").await, "2");
    assert_eq!(c.current_url().await.unwrap().path(), "/videos");
    // Both thumbnails decoded (an image that failed to load has naturalWidth 0).
    let thumbs = eventually("both thumbnails decoded", WAIT, || async {
        let v = js(
            &c,
            "return [...document.querySelectorAll('.video-card img.thumb')]\
             .map(i => i.complete ? i.naturalWidth : -1);",
        )
        .await;
        let widths: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        if widths.len() == 2 && widths.iter().all(|w| *w > 0) {
            Ok(widths)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(thumbs.len(), 2);
    assert_no_csp_violations(&driver_url, &c, "the lesson list").await;

    // ----------------------------------------------------- play, seek, save, reload
    let mp4_id = &ids["lesson.mp4"];
    click(&c, Locator::Css(&card(mp4_id, " a.open"))).await;
    assert_eq!(body_data(&c, "resumedAt").await, "0", "nothing saved yet");
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/player/{mp4_id}")
    );
    js(&c, "document.getElementById('video').play(); return null;").await;
    assert_eq!(body_data(&c, "state").await, "playing");
    let decoded = js(&c, "return document.getElementById('video').videoWidth;").await;
    assert_eq!(decoded, 320, "the MP4 is decoded");
    // Seek and pause, then wait for the periodic save (every 10 s) to store the position.
    js(
        &c,
        "const v = document.getElementById('video'); v.pause(); v.currentTime = 7; return null;",
    )
    .await;
    eventually(
        "the periodic save of position 7",
        Duration::from_secs(25),
        || async {
            match js(&c, "return document.body.dataset.savedPosition || null;").await {
                Value::String(s) if s == "7" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    )
    .await;
    screenshot(&c, "player.png").await;

    c.refresh().await.unwrap();
    let resumed: f64 = body_data(&c, "resumedAt").await.parse().unwrap();
    assert!(
        (resumed - 7.0).abs() <= 0.5,
        "resumed at {resumed}, saved 7"
    );
    assert_eq!(body_data(&c, "resumeSuccess").await, "true");
    assert_no_csp_violations(&driver_url, &c, "the player").await;
    let page_trace = js(
        &c,
        "return document.querySelector('meta[name=traceparent]').content.split('-')[1];",
    )
    .await
    .as_str()
    .unwrap()
    .to_owned();
    assert_eq!(page_trace.len(), 32, "{page_trace}");
    // The resume events were sent (flushed once the seek settled).
    eventually("the resume events sent", WAIT, || async {
        match js(
            &c,
            "return Number(document.body.dataset.telemetrySent || 0);",
        )
        .await
        {
            Value::Number(n) if n.as_u64() >= Some(2) => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;

    // A page hide saves the position through the beacon: seek, leave, and the server has it.
    js(
        &c,
        "const v = document.getElementById('video'); v.pause(); v.currentTime = 12; return null;",
    )
    .await;
    eventually("the seek to 12 settled", WAIT, || async {
        match js(
            &c,
            "const v = document.getElementById('video'); return !v.seeking && v.currentTime;",
        )
        .await
        {
            Value::Number(n) if n.as_f64() == Some(12.0) => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    c.goto("about:blank").await.unwrap();
    eventually("the beacon's position 12 stored", WAIT, || async {
        let p = get_json(&admin, &format!("{base}/api/progress/{mp4_id}")).await?;
        if p["positionSeconds"].as_f64() == Some(12.0) {
            Ok(())
        } else {
            Err(p.to_string())
        }
    })
    .await;

    // The lesson list shows it: 12 of the 20 s watched, and the lesson in "continue watching".
    c.goto(&format!("{base}/videos")).await.unwrap();
    let shown = js(
        &c,
        &format!(
            "const p = document.querySelector(\"{}\"); return p && p.value;",
            card(mp4_id, " progress")
        ),
    )
    .await;
    let shown = shown
        .as_f64()
        .unwrap_or_else(|| panic!("no progress bar: {shown}"));
    assert!(
        (55.0..=60.0).contains(&shown),
        "12 of 20 s shown as {shown} %"
    );
    let continuing = js(
        &c,
        "return [...document.querySelectorAll('#continue .video-card')].map(c => c.dataset.videoId);",
    )
    .await;
    assert_eq!(continuing, json!([mp4_id]), "continue watching");
    screenshot(&c, "lessons-learner.png").await;

    // ------------------------------------------------------------------- WebM
    // Played on a link slower than the lesson's bit rate (~40 KB/s), so playback stalls and
    // the player reports buffering; the link is restored once it has.
    let session = c
        .session_id()
        .await
        .unwrap()
        .expect("a WebDriver session id");
    let throttle = |bytes_per_sec: u64| {
        let url = format!("{driver_url}/session/{session}/chromium/network_conditions");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(
                    &json!({"network_conditions": {"offline": false, "latency": 20,
                    "download_throughput": bytes_per_sec, "upload_throughput": bytes_per_sec}}),
                )
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "network conditions: {}",
                r.status()
            );
        }
    };
    throttle(12_000).await;
    let webm_id = &ids["lesson.webm"];
    c.goto(&format!("{base}/player/{webm_id}")).await.unwrap();
    assert_eq!(body_data(&c, "resumedAt").await, "0");
    js(&c, "document.getElementById('video').play(); return null;").await;
    assert_eq!(body_data(&c, "state").await, "playing");
    let stalls = body_data(&c, "bufferingEvents").await;
    assert!(stalls.parse::<u32>().unwrap() >= 1, "{stalls}");
    throttle(100_000_000).await;
    eventually("the WebM plays on", WAIT, || async {
        match js(
            &c,
            "const v = document.getElementById('video'); return [v.videoWidth, v.currentTime];",
        )
        .await
        {
            Value::Array(a) if a[0] == 320 && a[1].as_f64().unwrap_or(0.0) > 0.5 => Ok(()),
            other => Err(other.to_string()),
        }
    })
    .await;
    // Leaving sends the pending events (the buffering among them) by beacon.
    c.goto("about:blank").await.unwrap();

    // ----------------------------------------------------------- the player's metrics
    eventually("video.buffering_events_total", WAIT, || async {
        let points = receiver.metric_points("video.buffering_events_total");
        let total = points
            .iter()
            .filter_map(|p| p.value.as_number())
            .fold(0.0, f64::max);
        if total >= 1.0 {
            Ok(())
        } else {
            Err(format!("{points:?}"))
        }
    })
    .await;
    for (name, min_count) in [("video.load_time_ms", 3), ("video.resume_time_ms", 1)] {
        eventually(&format!("{name} points"), WAIT, || async {
            let metrics = receiver.metrics_named(name);
            let count: u64 = receiver
                .metric_points(name)
                .iter()
                .filter_map(|p| p.value.count())
                .max()
                .unwrap_or(0);
            match metrics.first() {
                Some(m) if m.unit == "ms" && count >= min_count => Ok(()),
                Some(m) => Err(format!("unit {:?}, count {count}", m.unit)),
                None => Err("no such metric yet".into()),
            }
        })
        .await;
    }
    let resume_points = receiver.metric_points("video.resume_time_ms");
    assert!(
        resume_points
            .iter()
            .any(|p| p.attr_bool("success") == Some(true)),
        "a successful resume: {resume_points:?}"
    );

    // -------------------------------------------------- the player's events, in the page's trace
    let session = eventually("the reloaded page's video.session spans", WAIT, || async {
        let spans = spans_in_files(&telemetry_dir);
        let in_trace: Vec<_> = spans
            .iter()
            .filter(|(_, s)| s["traceId"] == page_trace.as_str())
            .collect();
        let page = in_trace.iter().any(|(_, s)| {
            attr(s, "http.route").and_then(|v| v["stringValue"].as_str())
                == Some("/player/{video_id}")
        });
        let events: Vec<String> = in_trace
            .iter()
            .filter(|(_, s)| s["name"] == "video.session")
            .flat_map(|(_, s)| s["events"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect();
        let wanted = ["video.loaded", "video.resume_attempt", "video.page_hidden"];
        if page && wanted.iter().all(|w| events.iter().any(|e| e == w)) {
            Ok(events)
        } else {
            Err(format!("page span: {page}, events: {events:?}"))
        }
    })
    .await;
    assert!(
        !session
            .iter()
            .any(|e| e == "video.resume_position_mismatch")
    );

    // --------------------------------------------------------------- the trace viewer
    c.goto(&format!("{base}/trace-viewer?user={admin_id}"))
        .await
        .unwrap();
    let row = format!(".trace-row[data-trace-id='{page_trace}']");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(&row))
        .await
        .unwrap_or_else(|e| panic!("the page's trace listed under its user: {e}"));
    let listed = js(
        &c,
        "return [...document.querySelectorAll('.trace-row')].map(r => r.dataset.traceId);",
    )
    .await;
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == other_trace.as_str()),
        "another user's trace under this user's filter: {listed}"
    );
    c.find(Locator::Css(&row))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#waterfall .span-bar"))
        .await
        .unwrap();
    let drawn = js(
        &c,
        "return {bars: document.querySelectorAll('#waterfall .span-bar').length, \
         events: [...document.querySelectorAll('#waterfall .span-event')]\
         .map(e => e.getAttribute('title') || e.textContent)};",
    )
    .await;
    assert!(drawn["bars"].as_u64().unwrap() >= 2, "{drawn}");
    assert!(
        drawn["events"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .is_some_and(|s| s.contains("video.resume_attempt"))),
        "the resume drawn on the timeline: {drawn}"
    );
    js(
        &c,
        "document.getElementById('detail').scrollIntoView(); return null;",
    )
    .await;
    screenshot(&c, "trace-viewer.png").await;
    assert_no_csp_violations(&driver_url, &c, "the trace viewer").await;

    // The same filter with the other user's id lists their trace and not the viewer's.
    c.goto(&format!("{base}/trace-viewer?user={other_id}"))
        .await
        .unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(&format!(
            ".trace-row[data-trace-id='{other_trace}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("the other user's trace listed under their id: {e}"));
    assert!(
        c.find_all(Locator::Css(&row)).await.unwrap().is_empty(),
        "the viewer's trace under another user's filter"
    );

    up.stop(c).await;
}

/// A hostile `?next=` cannot send a signing-in user to another site (issue 27): after the
/// sign-in, the browser is on this origin, at the lesson list; a path of this site is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_stays_on_this_site_whatever_next_says() {
    let (up, base) = Up::start().await;
    let (_driver, driver_url, c, _profile) = browser().await;

    for (next, path, query) in [
        ("/%5Cevil.example", "/videos", None),
        ("//evil.example", "/videos", None),
        ("/%09/evil.example", "/videos", None),
        ("https:evil.example", "/videos", None),
        ("java%09script:alert(1)", "/videos", None),
        ("/videos%3Fpage%3D2", "/videos", Some("page=2")),
    ] {
        c.goto(&format!("{base}/login?next={next}")).await.unwrap();
        submit_sign_in(&c, ADMIN.0, ADMIN.1).await;
        let url = eventually(
            &format!("the sign-in with next={next} to go"),
            WAIT,
            || async {
                let url = c.current_url().await.map_err(|e| e.to_string())?;
                if url.as_str().starts_with(&format!("{base}/login")) {
                    Err(format!("{url} {:?}", page_state(&c).await))
                } else {
                    Ok(url)
                }
            },
        )
        .await;
        assert!(
            url.as_str().starts_with(&format!("{base}/")),
            "next={next}: left {base} for {url}"
        );
        assert_eq!((url.path(), url.query()), (path, query), "next={next}");
    }
    assert_no_csp_violations(&driver_url, &c, "signing in").await;

    up.stop(c).await;
}

/// `.video-card[data-video-id=...]` `rest` on the lesson list (the list's card, not the
/// continue-watching row's).
fn card(id: &str, rest: &str) -> String {
    format!("#videos .video-card[data-video-id='{id}']{rest}")
}

/// What the lesson list's script says about a card: `data-status`, `data-saved`,
/// `data-reprocessed`, whether its reprocess button shows, its title, its duration and its
/// thumbnail's decoded width.
async fn card_state(c: &Client, id: &str) -> Value {
    js(
        c,
        &format!(
            "const c = document.querySelector(\"{}\"); \
             const b = c && c.querySelector('button.reprocess'); \
             return c && {{status: c.dataset.status, saved: c.dataset.saved || '0', \
             reprocessed: c.dataset.reprocessed || '0', reprocess: !!b && !b.hidden, \
             title: c.querySelector('.title').textContent, \
             duration: c.querySelector('.duration').textContent, \
             thumb: (c.querySelector('img.thumb') || {{}}).naturalWidth || 0}};",
            card(id, "")
        ),
    )
    .await
}

/// Scrolls the element `css` into the middle of the window (for a screenshot).
async fn show(c: &Client, css: &str) {
    js(
        c,
        &format!(
            "document.querySelector(\"{css}\").scrollIntoView({{block: 'center'}}); return null;"
        ),
    )
    .await;
}

/// Issue 28: an admin manages lessons from the lesson list. The upload form sends a file
/// (the progress bar fills from the XHR's upload progress), a title and a description; the new
/// lesson's card follows its status live over the WebSocket (no reload) until it is ready with
/// its thumbnail, and it plays. The admin edits its title and description, then deletes it:
/// dismissing the confirm keeps it, accepting removes it (the API answers 404 after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_uploads_edits_and_deletes_a_lesson_from_the_list() {
    let (up, base) = Up::start().await;
    let media = tempfile::tempdir().unwrap();
    let lesson = make_lesson(media.path(), "form-lesson.mp4", MP4);
    let file = media.path().join("form-lesson.mp4");
    let api = cookie_client();
    sign_in(&api, &base, ADMIN.0, ADMIN.1).await;
    let (_driver, driver_url, c, _profile) = browser().await;

    c.goto(&format!("{base}/videos")).await.unwrap();
    submit_sign_in(&c, ADMIN.0, ADMIN.1).await;
    assert_eq!(body_data(&c, "loaded").await, "0", "no lessons yet");
    assert_eq!(body_data(&c, "live").await, "true", "the WebSocket is open");
    // Set on this document only: still there at the end means the page never reloaded.
    js(&c, "window.sameDocument = true; return null;").await;

    // ------------------------------------------------------------------ upload
    let form = [
        ("upload-file", file.to_str().unwrap()),
        ("upload-title", "Fractions from the form"),
        ("upload-description", "Halves and quarters."),
    ];
    fill_and_submit(&c, &form, "upload-submit").await;
    let id = body_data(&c, "upload").await;
    assert_ne!(id, "failed", "{:?}", page_state(&c).await);
    // The bar moved with the XHR's upload progress events, the last one at 100 %.
    assert_eq!(body_data(&c, "uploadProgress").await, "100");
    let bar = js(
        &c,
        "return document.getElementById('upload-progress').value;",
    )
    .await;
    assert_eq!(bar, 100, "the progress bar is full");
    let v = get_json(&api, &format!("{base}/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!(v["title"], "Fractions from the form", "{v}");
    assert_eq!(v["description"], "Halves and quarters.", "{v}");
    // The worker probes it and makes its thumbnail; the card follows over the socket.
    let state = eventually("the new card ready with its thumbnail", WAIT, || async {
        let s = card_state(&c, &id).await;
        if s["status"] == "ready" && s["thumb"].as_i64().unwrap_or(0) > 0 && s["duration"] != "" {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    })
    .await;
    assert_eq!(state["title"], "Fractions from the form");
    assert_eq!(
        state["duration"], "0:20",
        "the probe's duration, fetched once ready"
    );
    assert_eq!(body_data(&c, "loaded").await, "1");
    assert_eq!(js(&c, "return window.sameDocument === true;").await, true);
    show(&c, &card(&id, "")).await;
    screenshot(&c, "lessons-admin.png").await;
    assert_no_csp_violations(&driver_url, &c, "the upload").await;

    // ------------------------------------------------------------------ it plays
    click(&c, Locator::Css(&card(&id, " a.open"))).await;
    assert_eq!(body_data(&c, "resumedAt").await, "0");
    js(&c, "document.getElementById('video').play(); return null;").await;
    assert_eq!(body_data(&c, "state").await, "playing");
    c.goto(&format!("{base}/videos")).await.unwrap();

    // ------------------------------------------------------------------ edit
    click(&c, Locator::Css(&card(&id, " details.edit summary"))).await;
    replace_text(&c, &card(&id, " input[name=title]"), "Fractions, edited").await;
    replace_text(&c, &card(&id, " textarea[name=description]"), "Thirds too.").await;
    click(&c, Locator::Css(&card(&id, " button.save"))).await;
    eventually("the edit saved", WAIT, || async {
        let s = card_state(&c, &id).await;
        if s["saved"] == "1" {
            Ok(())
        } else {
            Err(format!("{s} {:?}", page_state(&c).await))
        }
    })
    .await;
    assert_eq!(card_state(&c, &id).await["title"], "Fractions, edited");
    let v = get_json(&api, &format!("{base}/api/videos/{id}"))
        .await
        .unwrap();
    assert_eq!(
        (v["title"].as_str(), v["description"].as_str()),
        (Some("Fractions, edited"), Some("Thirds too.")),
        "{v}"
    );
    // The server renders the edit on the next load.
    c.refresh().await.unwrap();
    assert_eq!(card_state(&c, &id).await["title"], "Fractions, edited");

    // ------------------------------------------------------------------ delete
    let delete = card(&id, " button.delete");
    click(&c, Locator::Css(&delete)).await;
    c.dismiss_alert().await.unwrap();
    assert!(
        card_state(&c, &id).await.is_object(),
        "dismissed: the lesson stays"
    );
    click(&c, Locator::Css(&delete)).await;
    c.accept_alert().await.unwrap();
    eventually("the card removed", WAIT, || async {
        match card_state(&c, &id).await {
            Value::Null => Ok(()),
            other => Err(format!("{other} {:?}", page_state(&c).await)),
        }
    })
    .await;
    assert_eq!(body_data(&c, "loaded").await, "0");
    let r = api
        .get(format!("{base}/api/videos/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "deleted for the API too");
    c.refresh().await.unwrap();
    assert_eq!(body_data(&c, "loaded").await, "0", "and after a reload");
    assert_no_csp_violations(&driver_url, &c, "the edit and the delete").await;

    // ------------------------------------------------------------------ reprocess
    // An MP4 by its first bytes only: the probe fails for good, so the lesson turns `failed`
    // and its card offers reprocess, live; reprocessing runs the probe again, which fails again.
    let mut bytes = lesson[..32].to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let broken = media.path().join("broken.mp4");
    std::fs::write(&broken, bytes).unwrap();
    assert_eq!(body_data(&c, "live").await, "true");
    let form = [
        ("upload-file", broken.to_str().unwrap()),
        ("upload-title", "Broken lesson"),
    ];
    fill_and_submit(&c, &form, "upload-submit").await;
    let broken_id = body_data(&c, "upload").await;
    assert_ne!(broken_id, "failed", "{:?}", page_state(&c).await);
    let failed = |reprocessed: &'static str| {
        let c = &c;
        let id = broken_id.clone();
        async move {
            eventually(
                "the broken lesson failed, reprocess offered",
                WAIT,
                || async {
                    let s = card_state(c, &id).await;
                    if s["status"] == "failed"
                        && s["reprocess"] == true
                        && s["reprocessed"] == reprocessed
                    {
                        Ok(())
                    } else {
                        Err(s.to_string())
                    }
                },
            )
            .await;
        }
    };
    failed("0").await;
    show(&c, &card(&broken_id, "")).await;
    screenshot(&c, "lessons-admin-failed.png").await;
    click(&c, Locator::Css(&card(&broken_id, " button.reprocess"))).await;
    failed("1").await;
    let v = get_json(&api, &format!("{base}/api/videos/{broken_id}"))
        .await
        .unwrap();
    assert_eq!(v["status"], "failed", "{v}");
    assert_no_csp_violations(&driver_url, &c, "the reprocess").await;

    up.stop(c).await;
}

/// The field `css` selects.
async fn field(c: &Client, css: &str) -> Element {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// Types `text` into the field `css` selects.
async fn type_into(c: &Client, css: &str, text: &str) {
    field(c, css).await.send_keys(text).await.unwrap();
}

/// Replaces what the field `css` selects holds with `text`.
async fn replace_text(c: &Client, css: &str, text: &str) {
    let field = field(c, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The browser's path once it is `path`, failing with what the page shows.
async fn wait_for_path(c: &Client, path: &str) {
    eventually(&format!("the browser to reach {path}"), WAIT, || async {
        let url = c.current_url().await.map_err(|e| e.to_string())?;
        if url.path() == path {
            Ok(())
        } else {
            Err(format!("{url} {:?}", page_state(c).await))
        }
    })
    .await;
}

/// The text of `#error` once it is not empty.
async fn error_text(c: &Client) -> String {
    eventually("an error message", WAIT, || async {
        let text = js(c, "return document.getElementById('error').textContent;").await;
        match text.as_str() {
            Some(t) if !t.is_empty() => Ok(t.to_owned()),
            _ => Err(format!("{:?}", page_state(c).await)),
        }
    })
    .await
}

/// Waits for the users page's row `row` (a selector) to show `wanted` in its status.
async fn row_shows(c: &Client, row: &str, wanted: &str) {
    let script = format!("return (document.querySelector(\"{row} .status\") || {{}}).textContent;");
    eventually(&format!("{row} to show {wanted}"), WAIT, || async {
        match js(c, &script).await.as_str() {
            Some(s) if s.contains(wanted) => Ok(()),
            other => Err(format!("{other:?} {:?}", page_state(c).await)),
        }
    })
    .await;
}

/// Signs the browser out (the sign-out route, as the pages' button calls it).
async fn browser_sign_out(c: &Client) {
    let status = js(
        c,
        "return fetch('/api/auth/logout', {method: 'POST'}).then(r => r.status);",
    )
    .await;
    assert_eq!(status, 204);
}

/// Accounts in the browser (issue 28): a viewer signs up, changes their password on
/// `/account` and signs in with the new one (the old one refused); an admin sets a temporary
/// password on `/users`, with which the viewer lands on `/account` to choose their own; then the
/// admin disables the viewer while they are signed in elsewhere, whose session ends at once and
/// who can no longer sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_and_disabling_a_signed_in_user_in_the_browser() {
    let (up, base) = Up::start().await;
    let (_driver, driver_url, c, _profile) = browser().await;
    let email = "browser-learner@example.com";
    let (first, second) = ("first password here", "second password here");

    // Sign up (registration is on for these tests), landing on the lessons.
    c.goto(&format!("{base}/signup")).await.unwrap();
    type_into(&c, "#email", email).await;
    type_into(&c, "#password", first).await;
    click(&c, Locator::Css("#create-account")).await;
    wait_for_path(&c, "/videos").await;

    // Change the password on the account page.
    c.goto(&format!("{base}/account")).await.unwrap();
    type_into(&c, "#current-password", first).await;
    type_into(&c, "#new-password", second).await;
    click(&c, Locator::Css("#save-password")).await;
    eventually("the password to be changed", WAIT, || async {
        let shown = js(
            &c,
            "return !document.getElementById('password-done').hidden;",
        )
        .await;
        if shown == true {
            Ok(())
        } else {
            Err(format!("{:?}", page_state(&c).await))
        }
    })
    .await;
    screenshot(&c, "account-password-changed.png").await;

    // The old password is refused, the new one signs in.
    browser_sign_out(&c).await;
    c.goto(&format!("{base}/login")).await.unwrap();
    submit_sign_in(&c, email, first).await;
    let refused = error_text(&c).await;
    assert!(refused.contains("wrong"), "{refused}");
    c.goto(&format!("{base}/login")).await.unwrap();
    submit_sign_in(&c, email, second).await;
    wait_for_path(&c, "/videos").await;

    // The admin sets a temporary password on the users page.
    let row = format!("tr[data-email='{email}']");
    browser_sign_out(&c).await;
    c.goto(&format!("{base}/login?next=/users")).await.unwrap();
    submit_sign_in(&c, ADMIN.0, ADMIN.1).await;
    wait_for_path(&c, "/users").await;
    let temporary = "temporary password here";
    type_into(&c, &format!("{row} form.temporary input"), temporary).await;
    click(&c, Locator::Css(&format!("{row} form.temporary button"))).await;
    row_shows(&c, &row, "must change password").await;

    // Signing in with it leads to the account page, which asks for a new one first.
    let third = "third password here";
    browser_sign_out(&c).await;
    c.goto(&format!("{base}/login")).await.unwrap();
    submit_sign_in(&c, email, temporary).await;
    wait_for_path(&c, "/account").await;
    c.find(Locator::Id("must-change")).await.unwrap();
    type_into(&c, "#current-password", temporary).await;
    type_into(&c, "#new-password", third).await;
    click(&c, Locator::Css("#save-password")).await;
    wait_for_path(&c, "/videos").await;

    // Signed in elsewhere too.
    let elsewhere = cookie_client();
    sign_in(&elsewhere, &base, email, third).await;
    let session = format!("{base}/api/auth/session");
    assert_eq!(elsewhere.get(&session).send().await.unwrap().status(), 200);

    // The admin disables the account on the users page.
    browser_sign_out(&c).await;
    c.goto(&format!("{base}/login?next=/users")).await.unwrap();
    submit_sign_in(&c, ADMIN.0, ADMIN.1).await;
    wait_for_path(&c, "/users").await;
    click(&c, Locator::Css(&format!("{row} button.toggle"))).await;
    row_shows(&c, &row, "disabled").await;
    screenshot(&c, "users-disabled.png").await;
    assert_no_csp_violations(&driver_url, &c, "the account and users pages").await;

    // Its session elsewhere ended at once; it cannot sign in.
    assert_eq!(elsewhere.get(&session).send().await.unwrap().status(), 401);
    browser_sign_out(&c).await;
    c.goto(&format!("{base}/login")).await.unwrap();
    submit_sign_in(&c, email, third).await;
    let refused = error_text(&c).await;
    assert!(refused.contains("disabled"), "{refused}");

    up.stop(c).await;
}

//! `vidscope-api` and `vidscope-worker` as two processes, as in the compose stack: sharing a
//! database, an object store and Redis (queue and status events), both exporting OTLP to the
//! capture receiver. One upload must give one trace across both services, and its status
//! changes must reach the uploader's open WebSocket through Redis pub/sub.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vidscope_testkit::otlp::CaptureReceiver;

mod common;
use common::Process;

const ADMIN_EMAIL: &str = "two-services@example.com";
const ADMIN_PASSWORD: &str = "two services admin";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_is_one_trace_across_api_and_worker_processes() {
    let Some(redis_url) = std::env::var("REDIS_URL").ok() else {
        panic!("REDIS_URL must point at a Redis server (scripts/test.sh starts one)");
    };
    let receiver = CaptureReceiver::start().await;
    let db = vidscope_testkit::db::fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!(
        "vidscope-two-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let common = |c: &mut Command, service: &str| {
        c.env("DATABASE_URL", &db.url)
            .env("REDIS_URL", &redis_url)
            .env("VIDSCOPE_DATA_DIR", dir.path())
            .env("VIDSCOPE_QUEUE_PREFIX", &prefix)
            .env("VIDSCOPE_REDIS_PREFIX", &prefix)
            .env_remove("S3_BUCKET_NAME")
            .env("OTEL_SERVICE_NAME", service)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
            .env("RUST_LOG", "info");
    };

    let mut api = Command::new(common::sibling_binary("vidscope-api"));
    common(&mut api, "vidscope-api");
    api.env("VIDSCOPE_ADDR", "127.0.0.1:0")
        .env("VIDSCOPE_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("VIDSCOPE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut api = Process(api.spawn().unwrap());
    let port = common::api_port(&mut api).await;
    let base = format!("http://127.0.0.1:{port}");

    let mut worker = Command::new(common::sibling_binary("vidscope-worker"));
    common(&mut worker, "vidscope-worker");
    worker
        .env("VIDSCOPE_WORKER_HEALTH_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let worker = Process(worker.spawn().unwrap());

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the bootstrap admin signs in");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ");

    let mut ws_request = format!("ws://127.0.0.1:{port}/api/ws")
        .into_client_request()
        .unwrap();
    ws_request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request)
        .await
        .expect("WebSocket handshake");

    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/loadgen-lesson.mp4"
    ))
    .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("title", "Two services")
        .part(
            "file",
            reqwest::multipart::Part::bytes(sample)
                .file_name("lesson.mp4")
                .mime_str("video/mp4")
                .unwrap(),
        );
    let upload = http
        .post(format!("{base}/api/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let trace_id = upload
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .expect("traceresponse header")
        .to_owned();
    let video: serde_json::Value = upload.json().await.unwrap();
    let video_id = video["id"].as_str().unwrap().to_owned();

    // The worker's status changes cross to the API through Redis pub/sub.
    let mut statuses = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !statuses.iter().any(|s| s == "ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no ready status on the socket; got {statuses:?}"));
        if let Some(Ok(Message::Text(t))) = item {
            let json: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if json["type"] == "video_status_changed" && json["videoId"] == video_id.as_str() {
                statuses.push(json["status"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(statuses.last().map(String::as_str), Some("ready"));

    let meta: serde_json::Value = http
        .get(format!("{base}/api/videos/{video_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["status"], "ready", "{meta}");
    assert_eq!(meta["duration_seconds"], 60.0, "{meta}");
    let thumb = http
        .get(format!("{base}/api/videos/{video_id}/thumbnail"))
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    assert_eq!(&thumb.bytes().await.unwrap()[..2], &[0xFF, 0xD8], "a JPEG");

    // One trace, two services: the HTTP upload in the API; the relay's publish, both jobs
    // and their ffmpeg and storage steps in the worker.
    let expected = [
        ("vidscope-api", "POST /api/upload"),
        ("vidscope-api", "create video.probe"),
        ("vidscope-worker", "receive video.probe"),
        ("vidscope-worker", "send video.probe"),
        ("vidscope-worker", "process video.probe"),
        ("vidscope-worker", "ffmpeg.probe"),
        ("vidscope-worker", "send video.thumbnail"),
        ("vidscope-worker", "process video.thumbnail"),
        ("vidscope-worker", "ffmpeg.extract_frame"),
        ("vidscope-worker", "storage.put"),
    ];
    let complete = receiver
        .wait_until(
            |r| {
                let spans = r.spans_in_trace(&trace_id);
                expected.iter().all(|(service, name)| {
                    spans.iter().any(|s| {
                        s.name == *name && s.resource_attr_str("service.name") == Some(*service)
                    })
                })
            },
            WAIT,
        )
        .await;
    let spans = receiver.spans_in_trace(&trace_id);
    let seen: Vec<_> = spans
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s.resource_attr_str("service.name").unwrap_or("?"),
                s.name
            )
        })
        .collect();
    assert!(complete.is_ok(), "trace {trace_id} holds only {seen:?}");
    let by_name = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    // The API's outbox write (PRODUCER) is the parent of the worker relay's CONSUMER span: the
    // pair the service graph draws as the api -> worker edge.
    let create = by_name("create video.probe");
    let receive = by_name("receive video.probe");
    assert_eq!((create.kind, receive.kind), (4, 5), "PRODUCER, CONSUMER");
    assert_eq!(
        receive.parent_span_id.as_deref(),
        Some(create.span_id.as_str())
    );
    assert_eq!(
        by_name("send video.probe").parent_span_id.as_deref(),
        Some(receive.span_id.as_str())
    );
    // The producer continues the upload's trace, and the consumer is the producer's child.
    assert_eq!(
        by_name("process video.probe").parent_span_id.as_deref(),
        Some(by_name("send video.probe").span_id.as_str())
    );

    assert!(worker.stop().success(), "worker stops gracefully");
    assert!(api.stop().success(), "API stops gracefully");
}

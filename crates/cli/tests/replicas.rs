//! Two `vidscope-api` and two `vidscope-worker` processes on one Postgres, one Redis and one
//! S3-compatible server, the client alternating between the API replicas as a round-robin
//! balancer would: whatever a user does must not depend on the replica a request lands on,
//! each job must run once, traces must stay whole across processes, and killing a replica
//! must lose no write it acknowledged. (It replaced the one-API-one-worker process test: the
//! same upload, its status over the socket and its trace across the processes are checked
//! here, on the production shape: Postgres, Redis and S3.)

#![allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vidscope_core::storage::StoreKind;
use vidscope_testkit::TraceResponse;
use vidscope_testkit::otlp::{CaptureReceiver, CapturedSpan};
use vidscope_testkit::s3::S3TestServer;

mod common;
use common::{ADMIN, Process};

const WAIT: Duration = Duration::from_secs(90);
/// Uploads of the load phase (the "2 workers, 20 uploads").
const UPLOADS: usize = 20;
/// The first API replica is killed once this many of them are acknowledged.
const KILL_AFTER: usize = 6;
/// The lesson every upload sends (the load generator's sample), read once at build time.
const SAMPLE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/loadgen-lesson.mp4"
));
/// The first API replica names its instance; the second keeps the generated default.
const API_A_INSTANCE: &str = "api-a";

struct Cluster {
    receiver: CaptureReceiver,
    apis: Vec<Option<Process>>,
    bases: Vec<String>,
    workers: Vec<Process>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _db: vidscope_testkit::db::TestDb,
}

impl Cluster {
    async fn start() -> Self {
        let redis_url = std::env::var("REDIS_URL")
            .expect("REDIS_URL must point at a Redis server (scripts/test.sh starts one)");
        let receiver = CaptureReceiver::start().await;
        let db = vidscope_testkit::db::fresh_postgres_db().await;
        let server = S3TestServer::get();
        let StoreKind::S3 { bucket, .. } = server.fresh_bucket().await.kind else {
            unreachable!("the S3 test server gives S3 settings")
        };
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!(
            "vidscope-replicas-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let env = |c: &mut Command, service: &str| {
            c.env("DATABASE_URL", &db.url)
                .env("REDIS_URL", &redis_url)
                .env("VIDSCOPE_DATA_DIR", dir.path())
                .env("VIDSCOPE_QUEUE_PREFIX", &prefix)
                .env("VIDSCOPE_REDIS_PREFIX", &prefix)
                .env("S3_BUCKET_NAME", &bucket)
                .env("S3_ENDPOINT", &server.endpoint)
                .env("S3_ACCESS_KEY_ID", &server.access_key_id)
                .env("S3_SECRET_ACCESS_KEY", &server.secret_access_key)
                .env("S3_REGION", &server.region)
                .env("OTEL_SERVICE_NAME", service)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
                .env("OTEL_BSP_SCHEDULE_DELAY", "200")
                .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
                .env_remove("OTEL_RESOURCE_ATTRIBUTES")
                .env("RUST_LOG", "info");
        };

        let mut apis = Vec::new();
        let mut bases = Vec::new();
        for instance in [Some(API_A_INSTANCE), None] {
            let mut api = Command::new(common::sibling_binary("vidscope-api"));
            env(&mut api, "vidscope-api");
            if let Some(id) = instance {
                api.env(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    format!("service.instance.id={id}"),
                );
            }
            api.env("VIDSCOPE_ADDR", "127.0.0.1:0")
                .env("VIDSCOPE_ADMIN_EMAIL", ADMIN.0)
                .env("VIDSCOPE_ADMIN_PASSWORD", ADMIN.1)
                .env("VIDSCOPE_LOGIN_MAX_FAILURES", "3")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut api = Process(api.spawn().unwrap());
            let port = common::api_port(&mut api).await;
            bases.push(format!("http://127.0.0.1:{port}"));
            apis.push(Some(api));
        }
        let workers = (0..2)
            .map(|_| {
                let mut worker = Command::new(common::sibling_binary("vidscope-worker"));
                env(&mut worker, "vidscope-worker");
                worker
                    .env("VIDSCOPE_WORKER_HEALTH_ADDR", "127.0.0.1:0")
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit());
                Process(worker.spawn().unwrap())
            })
            .collect();
        Cluster {
            receiver,
            apis,
            bases,
            workers,
            http: reqwest::Client::new(),
            _dir: dir,
            _db: db,
        }
    }

    async fn login(&self, replica: usize, email: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/auth/login", self.bases[replica]))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Signs the admin in on `replica` and returns the session cookie.
    async fn sign_in(&self, replica: usize) -> String {
        let response = self.login(replica, ADMIN.0, ADMIN.1).await;
        assert_eq!(
            response.status(),
            200,
            "the admin signs in on replica {replica}"
        );
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Ends the session of `cookie` through `replica`.
    async fn logout(&self, replica: usize, cookie: &str) {
        let logout = self
            .http
            .post(format!("{}/api/auth/logout", self.bases[replica]))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert!(logout.status().is_success(), "{}", logout.status());
    }

    /// The status of `GET /api/auth/session` on `replica` with `cookie`: 200 signed in, 401 not.
    async fn session_status(&self, replica: usize, cookie: &str) -> reqwest::StatusCode {
        self.get(replica, "/api/auth/session", cookie)
            .await
            .status()
    }

    async fn get(&self, replica: usize, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.bases[replica]))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, replica: usize, path: &str, cookie: &str) -> serde_json::Value {
        self.get(replica, path, cookie).await.json().await.unwrap()
    }

    /// The video's status as `replica` reports it, polled until `ready` or [`WAIT`].
    async fn wait_ready(&self, replica: usize, cookie: &str, video_id: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let meta = self
                .get_json(replica, &format!("/api/videos/{video_id}"), cookie)
                .await;
            if meta["status"] == "ready" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "video {video_id} not ready on replica {replica}: {meta}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// An acknowledged upload: the video's id and the trace the API answered with.
#[derive(Debug, Clone)]
struct Ack {
    video_id: String,
    trace_id: String,
}

/// `POST /api/upload` of the sample lesson; `Err` for anything but a 201 (a refused or broken
/// connection included: that is what a killed replica gives).
async fn upload(
    http: reqwest::Client,
    base: String,
    cookie: String,
    title: String,
) -> Result<Ack, String> {
    let form = reqwest::multipart::Form::new()
        .text("title", title.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(SAMPLE)
                .file_name(format!("{}.mp4", title.to_lowercase().replace(' ', "-")))
                .mime_str("video/mp4")
                .unwrap(),
        );
    let response = http
        .post(format!("{base}/api/upload"))
        .header("cookie", cookie)
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("upload to {base}: {e}"))?;
    if response.status() != 201 {
        return Err(format!("upload to {base}: {}", response.status()));
    }
    let trace_id = TraceResponse::of(response.headers()).trace_id;
    let video: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(Ack {
        video_id: video["id"].as_str().expect("video id").to_owned(),
        trace_id,
    })
}

fn instance(span: &CapturedSpan) -> String {
    span.resource_attr_str("service.instance.id")
        .unwrap_or_default()
        .to_owned()
}

fn service(span: &CapturedSpan) -> &str {
    span.resource_attr_str("service.name").unwrap_or("?")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apis_and_two_workers_behave_as_one_service() {
    let mut cluster = Cluster::start().await;

    // Sessions: signed in on A, valid on B.
    let cookie = cluster.sign_in(0).await;
    let session = cluster.get(1, "/api/auth/session", &cookie).await;
    assert_eq!(session.status(), 200, "A's session is valid on B");
    let session: serde_json::Value = session.json().await.unwrap();
    assert_eq!(session["user"]["email"], ADMIN.0, "{session}");

    // The throttle counts failures on both replicas together: 3 allowed in all, not 3 each.
    for replica in [0, 1, 0] {
        let r = cluster
            .login(replica, "intruder@example.com", "wrong guess")
            .await;
        assert_eq!(r.status(), 401, "failure on replica {replica}");
    }
    let throttled = cluster
        .login(1, "intruder@example.com", "wrong guess")
        .await;
    assert_eq!(
        throttled.status(),
        429,
        "the 4th failure, on B, is over the limit of 3 counted across A and B"
    );
    assert!(throttled.headers().contains_key("retry-after"));

    // An upload through A becomes ready, and a WebSocket on B sees it happen.
    let mut ws_request = format!("{}/api/ws", cluster.bases[1].replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    ws_request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_request)
        .await
        .expect("WebSocket handshake with B");
    let first = upload(
        cluster.http.clone(),
        cluster.bases[0].clone(),
        cookie.clone(),
        "Through A".into(),
    )
    .await
    .expect("upload through A");
    let mut statuses = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !statuses.iter().any(|s| s == "ready") {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("B's socket saw no ready status; got {statuses:?}"));
        if let Some(Ok(Message::Text(t))) = item {
            let json: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if json["type"] == "video_status_changed" && json["videoId"] == first.video_id.as_str()
            {
                statuses.push(json["status"].as_str().unwrap().to_owned());
            }
        }
    }
    cluster.wait_ready(1, &cookie, &first.video_id).await;
    let meta = cluster
        .get_json(1, &format!("/api/videos/{}", first.video_id), &cookie)
        .await;
    assert_eq!(meta["duration_seconds"], 60.0, "the probe's result: {meta}");
    let thumb = cluster
        .get(
            1,
            &format!("/api/videos/{}/thumbnail", first.video_id),
            &cookie,
        )
        .await;
    assert_eq!(thumb.status(), 200);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    assert_eq!(&thumb.bytes().await.unwrap()[..2], &[0xFF, 0xD8], "a JPEG");

    // Progress saved through A is what B reads.
    let saved = cluster
        .http
        .post(format!("{}/api/progress", cluster.bases[0]))
        .header("cookie", &cookie)
        .json(&serde_json::json!({
            "videoId": first.video_id, "positionSeconds": 12.5, "watchTime": 12.5
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());
    let read = cluster
        .get_json(1, &format!("/api/progress/{}", first.video_id), &cookie)
        .await;
    assert_eq!(read["positionSeconds"], 12.5, "{read}");

    // A logout on A ends a session B has just looked up (and cached): the session cache is
    // shared, so no replica serves a session another one ended.
    let cookie_on_b = cluster.sign_in(1).await;
    assert_eq!(cluster.session_status(1, &cookie_on_b).await, 200);
    cluster.logout(0, &cookie_on_b).await;
    assert_eq!(
        cluster.session_status(1, &cookie_on_b).await,
        401,
        "B still served a session A ended"
    );

    // The upload's trace: A's request span, then the worker's relay and jobs, parented across
    // the process boundary. Waited for before A is killed (a killed process exports nothing
    // more).
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
    let whole = cluster
        .receiver
        .wait_until(
            |r| {
                let spans = r.spans_in_trace(&first.trace_id);
                expected
                    .iter()
                    .all(|(svc, name)| spans.iter().any(|s| s.name == *name && service(s) == *svc))
            },
            WAIT,
        )
        .await;
    let spans = cluster.receiver.spans_in_trace(&first.trace_id);
    let names: Vec<_> = spans
        .iter()
        .map(|s| format!("{}:{}", service(s), s.name))
        .collect();
    assert!(
        whole.is_ok(),
        "trace {} holds only {names:?}",
        first.trace_id
    );
    let by_name = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    for api_span in ["POST /api/upload", "create video.probe"] {
        assert_eq!(
            instance(by_name(api_span)),
            API_A_INSTANCE,
            "{api_span} comes from replica A, the one that took the upload"
        );
    }
    // The API's outbox write (PRODUCER) is the parent of the worker relay's CONSUMER span: the
    // pair the service graph draws as the api -> worker edge.
    let create = by_name("create video.probe");
    let receive = by_name("receive video.probe");
    assert_eq!((create.kind, receive.kind), (4, 5), "PRODUCER, CONSUMER");
    assert_eq!(
        by_name("send video.probe").parent_span_id.as_deref(),
        Some(receive.span_id.as_str())
    );
    assert_eq!(
        receive.parent_span_id.as_deref(),
        Some(create.span_id.as_str())
    );
    assert_eq!(
        by_name("process video.probe").parent_span_id.as_deref(),
        Some(by_name("send video.probe").span_id.as_str())
    );
    let post = by_name("POST /api/upload");
    let mut ancestor = create;
    while ancestor.span_id != post.span_id {
        let parent = ancestor.parent_span_id.as_deref();
        ancestor = spans
            .iter()
            .find(|s| Some(s.span_id.as_str()) == parent)
            .unwrap_or_else(|| {
                panic!("the outbox write does not descend from the request: {names:?}")
            });
    }

    // Load: 20 uploads, 4 at a time, alternating A and B. A is killed (SIGKILL) once 6 are
    // acknowledged; what failed on it is sent again to B, as a balancer's retry would.
    let mut acks: Vec<(usize, Ack)> = Vec::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    let mut refused_by_dead_a = 0usize;
    let mut a_alive = true;
    while acks.len() < UPLOADS {
        while in_flight.len() < 4 && acks.len() + in_flight.len() < UPLOADS {
            let replica = if a_alive { sent % 2 } else { 1 };
            sent += 1;
            let task = upload(
                cluster.http.clone(),
                cluster.bases[replica].clone(),
                cookie.clone(),
                format!("Load {sent}"),
            );
            in_flight.spawn(async move { (replica, task.await) });
        }
        let (replica, result) = in_flight.join_next().await.unwrap().unwrap();
        match result {
            Ok(ack) => acks.push((replica, ack)),
            Err(e) if replica == 0 && !a_alive => {
                refused_by_dead_a += 1;
                eprintln!("upload lost with replica A (not acknowledged): {e}");
            }
            Err(e) => panic!("an upload failed on a live replica: {e}"),
        }
        if a_alive && acks.len() >= KILL_AFTER {
            let mut a = cluster.apis[0].take().unwrap();
            a.0.kill().unwrap();
            a.0.wait().unwrap();
            a_alive = false;
        }
    }
    eprintln!(
        "load: {} acknowledged ({} by A before it was killed), {refused_by_dead_a} lost with A and resent to B",
        acks.len(),
        acks.iter().filter(|(r, _)| *r == 0).count()
    );
    assert!(
        acks.iter().any(|(r, _)| *r == 0) && acks.iter().any(|(r, _)| *r == 1),
        "both replicas took uploads"
    );

    // Nothing acknowledged is lost: every video, A's included, is ready, as B reports it.
    for (_, ack) in &acks {
        cluster.wait_ready(1, &cookie, &ack.video_id).await;
    }

    // Sessions again, the other way round, with a logout: B's sign-in works on A... A is
    // gone, so B alone: a logout on B ends the session for every replica still up.
    let cookie_b = cluster.sign_in(1).await;
    cluster.logout(1, &cookie_b).await;
    assert_eq!(cluster.session_status(1, &cookie_b).await, 401);

    // Each job ran exactly once, on one of the two workers, and both workers took some.
    for worker in std::mem::take(&mut cluster.workers) {
        assert!(worker.stop().success(), "a worker stops gracefully");
    }
    if let Some(b) = cluster.apis[1].take() {
        assert!(b.stop().success(), "B stops gracefully");
    }
    let mut worker_instances = BTreeMap::<String, usize>::new();
    // A's spans of the load phase may have died with it; its first upload's did not.
    let mut api_instances = BTreeSet::from([API_A_INSTANCE.to_owned()]);
    for (replica, ack) in &acks {
        let spans = cluster.receiver.spans_in_trace(&ack.trace_id);
        for job in ["process video.probe", "process video.thumbnail"] {
            let runs: Vec<_> = spans.iter().filter(|s| s.name == job).collect();
            let described: Vec<String> = runs
                .iter()
                .map(|s| {
                    format!(
                        "[{} parent={:?} start={} status={} {:?} attrs={:?}]",
                        instance(s),
                        s.parent_span_id,
                        s.start_unix_nano,
                        s.status_code,
                        s.status_message,
                        s.attributes
                    )
                })
                .collect();
            assert_eq!(
                runs.len(),
                1,
                "{job} of video {} ran {} times: {described:?}",
                ack.video_id,
                runs.len()
            );
            *worker_instances.entry(instance(runs[0])).or_default() += 1;
        }
        // B exported everything (graceful stop); A's last spans may have died with it.
        if let Some(post) = spans.iter().find(|s| s.name == "POST /api/upload") {
            let id = instance(post);
            if *replica == 1 {
                assert_ne!(id, API_A_INSTANCE, "B's spans carry B's instance id");
            } else {
                assert_eq!(id, API_A_INSTANCE);
            }
            api_instances.insert(id);
        } else {
            assert_eq!(
                *replica, 0,
                "B's upload span of {} is missing",
                ack.trace_id
            );
        }
    }
    assert_eq!(
        api_instances.len(),
        2,
        "two API instance ids: {api_instances:?}"
    );
    assert!(api_instances.iter().all(|id| !id.is_empty()));
    assert_eq!(
        worker_instances.len(),
        2,
        "both workers ran jobs, each under its own instance id: {worker_instances:?}"
    );
}

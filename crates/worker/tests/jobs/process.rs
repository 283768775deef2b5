//! The worker as a process (the `vidscope-worker` binary), for what only a process shows: how
//! it ends on SIGTERM, and what a `kill -9` leaves behind. Each test uploads through the real
//! API and runs the worker on the app's database and store and on the Redis at `REDIS_URL`
//! under a prefix of its own, with an ffprobe that hangs (a script that `exec`s `sleep`) so
//! the job is caught mid-way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vidscope_core::domain::Role;
use vidscope_testkit::{TestApp, spawn_app};

use crate::common::{PROBE, redis_queue, redis_url, unique_prefix};
use crate::pipeline::{poll, test_video, upload, wait_ready_in_db};

const WAIT: Duration = Duration::from_secs(60);

/// A worker process, killed if the test ends first.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl WorkerProcess {
    /// Sends SIGTERM; returns the exit status and how long the exit took.
    async fn terminate(&mut self) -> (ExitStatus, Duration) {
        signal("-TERM", self.0.id());
        let sent = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return (status, sent.elapsed());
            }
            assert!(
                sent.elapsed() < WAIT,
                "the worker did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn signal(which: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([which, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A `vidscope-worker` on `app`'s database and store and on Redis under `prefix`, its
/// temporary files under `tmp` (both its own setting and `TMPDIR`), telemetry off unless
/// `env` says otherwise.
fn spawn_worker<V: AsRef<std::ffi::OsStr>>(
    app: &TestApp,
    prefix: &str,
    tmp: &Path,
    env: &[(&str, V)],
) -> WorkerProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vidscope-worker"));
    command
        .env("DATABASE_URL", &app.settings.database_url)
        .env("VIDSCOPE_DATA_DIR", &app.settings.data_dir)
        .env_remove("S3_BUCKET_NAME")
        .env("REDIS_URL", redis_url())
        .env("VIDSCOPE_QUEUE", "redis")
        .env("VIDSCOPE_QUEUE_PREFIX", prefix)
        .env("VIDSCOPE_WORKER_HEALTH_ADDR", "127.0.0.1:0")
        .env("VIDSCOPE_JOB_VISIBILITY_SECS", "3")
        .env("VIDSCOPE_WORKER_TMP_DIR", tmp.join("worker"))
        .env("TMPDIR", tmp)
        .env("OTEL_SDK_DISABLED", "true")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    WorkerProcess(command.spawn().expect("vidscope-worker starts"))
}

/// The settings of a worker exporting its telemetry to `app`'s capture receiver.
fn exporting_to(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_SDK_DISABLED", "false".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", app.otlp.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into()),
    ]
}

/// An ffprobe that writes its pid to `<dir>/ffprobe.pid` and hangs (it is `sleep`, so killing
/// that pid kills it).
fn hanging_ffprobe(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("ffprobe-hangs");
    let pid = dir.join("ffprobe.pid");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho $$ > '{}'\nexec sleep 600\n", pid.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, pid)
}

/// The pid the hanging ffprobe wrote, once it has started (the job is then mid-way).
async fn ffprobe_started(pid_file: &Path) -> u32 {
    poll("the job's ffprobe started", WAIT, || async {
        std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .await
}

/// Uploads the test clip as an admin of `app`; returns the video's id.
async fn upload_clip(app: &TestApp) -> String {
    let admin = app.create_user(Role::Admin).await;
    let res = upload(app, &admin.cookie, "slow.mp4", &test_video()).await;
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Every file named `name` under `dir`, at any depth.
fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() == name)
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// An OTLP endpoint that accepts connections and never answers: a collector black-holed.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

/// SIGTERM with a job that cannot finish and a collector that never answers. The exit used to
/// wait for the job's grace, then for telemetry's own flush deadlines (5 s per pipeline), past
/// the deadline it was given. Now the whole shutdown fits in `VIDSCOPE_WORKER_SHUTDOWN_SECS`:
/// the job is stopped (its ffprobe killed) and given back, not counted as an attempt, so the
/// next worker runs it as a first delivery and nothing is dead-lettered.
#[tokio::test]
async fn on_sigterm_the_worker_gives_its_job_back_and_exits_within_its_deadline() {
    const DEADLINE: Duration = Duration::from_secs(4);
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let (ffprobe, pid_file) = hanging_ffprobe(tmp.path());
    let collector = black_hole().await;
    let mut first = spawn_worker(
        &app,
        &prefix,
        tmp.path(),
        &[
            ("VIDSCOPE_FFPROBE", ffprobe.to_str().unwrap()),
            ("VIDSCOPE_WORKER_SHUTDOWN_SECS", "4"),
            ("OTEL_SDK_DISABLED", "false"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let id = upload_clip(&app).await;
    let ffprobe_pid = ffprobe_started(&pid_file).await;

    let (status, took) = first.terminate().await;
    eprintln!("SIGTERM to exit: {} ms", took.as_millis());
    assert!(status.success(), "{status:?}");
    assert!(
        took < DEADLINE + Duration::from_millis(1500),
        "SIGTERM to exit took {took:?}, the deadline is {DEADLINE:?}"
    );
    poll(
        "the stopped job's ffprobe gone",
        Duration::from_secs(5),
        || async { (!signal("-0", ffprobe_pid)).then_some(()) },
    )
    .await;

    std::fs::remove_file(&pid_file).unwrap();
    let _second = spawn_worker(&app, &prefix, tmp.path(), &exporting_to(&app));
    wait_ready_in_db(&app, &id).await;
    let process = |r: &vidscope_testkit::otlp::CaptureReceiver| {
        r.spans_where(|s| {
            s.name == "process video.probe" && s.attr_str("job.outcome") == Some("success")
        })
    };
    app.otlp
        .wait_until(|r| !process(r).is_empty(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("no successful probe span: {e}"));
    assert_eq!(
        process(&app.otlp)[0].attr_i64("job.attempt"),
        Some(1),
        "the delivery cut short by the shutdown is not counted"
    );
    let queue = redis_queue(&redis_url(), &prefix, "check", Duration::from_secs(30)).await;
    assert!(queue.dead_letters(PROBE, 10).await.unwrap().is_empty());
    app.stop().await;
}

/// `kill -9` in the middle of a job left the job's copy of the video on the disk for ever
/// (21 directories after 20 kills). Now the next worker to start removes what a dead worker
/// left under the temporary root, and the job itself is redelivered and completes.
#[tokio::test]
async fn a_worker_killed_mid_job_leaves_no_temporary_files_once_one_starts_again() {
    let app = spawn_app().await;
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let (ffprobe, pid_file) = hanging_ffprobe(tmp.path());
    let mut first = spawn_worker(
        &app,
        &prefix,
        tmp.path(),
        &[("VIDSCOPE_FFPROBE", ffprobe.as_os_str())],
    );
    let id = upload_clip(&app).await;
    let ffprobe_pid = ffprobe_started(&pid_file).await;
    let left = files_named(tmp.path(), "input");
    assert_eq!(left.len(), 1, "the job's copy of the video: {left:?}");

    first.0.kill().unwrap();
    first.0.wait().unwrap();
    signal("-KILL", ffprobe_pid);
    assert!(left[0].exists(), "a killed worker cannot clean up");

    let _second = spawn_worker(&app, &prefix, tmp.path(), &exporting_to(&app));
    wait_ready_in_db(&app, &id).await;
    assert!(
        !left[0].exists() && !left[0].parent().unwrap().exists(),
        "the killed worker's files are still there: {}",
        left[0].display()
    );
    // The last job's own copy goes when that job ends, just after it marks the video ready.
    poll(
        "nothing else left behind",
        Duration::from_secs(10),
        || async { files_named(tmp.path(), "input").is_empty().then_some(()) },
    )
    .await;
    // And says so.
    app.otlp
        .wait_until(
            |r| {
                !r.logs_where(|l| {
                    l.body.as_deref()
                        == Some("removed the temporary files of workers that are gone")
                        && l.attr_i64("removed") == Some(1)
                })
                .is_empty()
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("no log of the removal: {e}"));
    app.stop().await;
}

//! Helpers for the tests that run the workspace's binaries as processes.
// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

/// The admin account (e-mail, password) the services under test create at start-up.
pub(crate) const ADMIN: (&str, &str) = ("admin@example.com", "the test admin's password");

/// A child process that is killed if the test ends before stopping it.
pub(crate) struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// SIGTERM, then the exit status (a graceful stop flushes telemetry).
    pub(crate) fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().unwrap()
    }
}

/// Reads `stdout` line by line until `find` returns something, and returns that; the rest of
/// stdout (JSON logs) is drained on a thread so the child never blocks on a full pipe. Panics
/// naming `what` if the child exits first.
pub(crate) fn scan_stdout<T>(
    stdout: ChildStdout,
    what: &str,
    mut find: impl FnMut(&str) -> Option<T>,
) -> T {
    let mut lines = BufReader::new(stdout).lines();
    let found = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the process exited before {what}"))
            .unwrap();
        if let Some(found) = find(&line) {
            break found;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    found
}

/// The container binaries sit next to `vidscope` in the target directory (`cargo test
/// --workspace` builds every binary of the workspace).
pub(crate) fn sibling_binary(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(env!("CARGO_BIN_EXE_vidscope")).with_file_name(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The port a `vidscope-api` process (stdout piped) bound: its start-up JSON line carries it.
pub(crate) async fn api_port(api: &mut Process) -> u16 {
    let stdout = api.0.stdout.take().expect("the API's stdout is piped");
    tokio::task::spawn_blocking(move || {
        scan_stdout(stdout, "vidscope-api listened", |line| {
            let json = serde_json::from_str::<serde_json::Value>(line).ok()?;
            let listening = json["message"] == "vidscope-api listening"
                || json["fields"]["message"] == "vidscope-api listening";
            listening.then(|| {
                json["port"]
                    .as_u64()
                    .or_else(|| json["fields"]["port"].as_u64())
                    .and_then(|p| u16::try_from(p).ok())
                    .expect("port on the listening line")
            })
        })
    })
    .await
    .unwrap()
}

/// `vidscope-api` alone over `db_url` with `data_dir` as its data dir: no Redis and no S3 (its
/// objects go under the data dir), port 0, `admin` (e-mail, password) created at start-up,
/// stdout piped for [`api_port`]. Callers add their telemetry settings, then [`spawn_api`].
pub(crate) fn api_command(db_url: &str, data_dir: &Path, admin: (&str, &str)) -> Command {
    let mut api = Command::new(sibling_binary("vidscope-api"));
    api.env("DATABASE_URL", db_url)
        .env_remove("REDIS_URL")
        .env_remove("S3_BUCKET_NAME")
        .env("VIDSCOPE_DATA_DIR", data_dir)
        .env("VIDSCOPE_ADDR", "127.0.0.1:0")
        .env("VIDSCOPE_ADMIN_EMAIL", admin.0)
        .env("VIDSCOPE_ADMIN_PASSWORD", admin.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    api
}

/// Starts `api` (an [`api_command`]); the process and the port it bound.
pub(crate) async fn spawn_api(mut api: Command) -> (Process, u16) {
    let mut api = Process(api.spawn().unwrap());
    let port = api_port(&mut api).await;
    (api, port)
}

/// The session cookie (`name=value`) of `account` (e-mail, password) signed in on the API at
/// `port`.
pub(crate) async fn session_cookie(port: u16, account: (&str, &str)) -> String {
    let login = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/auth/login"))
        .json(&serde_json::json!({ "email": account.0, "password": account.1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "signing in as {}", account.0);
    login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The `service.name` of a resource in OTLP JSON (`resourceSpans[i].resource`, ...).
pub(crate) fn service_name(resource: &serde_json::Value) -> Option<&str> {
    resource["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == "service.name")?["value"]["stringValue"]
        .as_str()
}

/// Starts `up` (an [`up_command`]) and waits for its banner; returns the process and its base
/// URL.
pub(crate) async fn start_up(mut up: Command) -> (Process, String) {
    let mut process = Process(up.spawn().unwrap());
    let stdout = process.0.stdout.take().unwrap();
    let base = tokio::task::spawn_blocking(move || up_base_url(stdout))
        .await
        .unwrap();
    (process, base)
}

/// `vidscope up`'s base URL, from the `liveness` line of its banner.
pub(crate) fn up_base_url(stdout: ChildStdout) -> String {
    scan_stdout(stdout, "vidscope up printed its URLs", |line| {
        line.trim()
            .strip_prefix("liveness")
            .map(|rest| rest.trim().trim_end_matches("/healthz").to_owned())
    })
}

/// `vidscope up` on port 0 with its data in `data_dir`, the database at `db_url`, OTLP over gRPC
/// to `otlp_grpc` (metrics every second), an admin account, a queue prefix of its own, stdout
/// piped (for [`up_base_url`]) and stderr shown. Callers add what their test needs.
pub(crate) fn up_command(data_dir: &Path, db_url: &str, otlp_grpc: &str) -> Command {
    let prefix = format!(
        "vidscope-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut up = Command::new(env!("CARGO_BIN_EXE_vidscope"));
    up.args([
        "--data-dir",
        data_dir.to_str().unwrap(),
        "up",
        "--addr",
        "127.0.0.1:0",
    ])
    .env("DATABASE_URL", db_url)
    .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_grpc)
    .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    .env("VIDSCOPE_ADMIN_EMAIL", ADMIN.0)
    .env("VIDSCOPE_ADMIN_PASSWORD", ADMIN.1)
    // Off by default; the load generator's viewers and the browser tests' second user register.
    .env("VIDSCOPE_REGISTRATION", "true")
    .env("VIDSCOPE_QUEUE_PREFIX", &prefix)
    .env("VIDSCOPE_REDIS_PREFIX", prefix)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    up
}

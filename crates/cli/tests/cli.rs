//! The `vidscope` binary as a user runs it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Process;

fn vidscope() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vidscope"));
    // The suite's own settings must not leak into the embedded defaults under test.
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "S3_BUCKET_NAME",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        c.env_remove(var);
    }
    c
}

#[test]
fn invalid_telemetry_config_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("OTEL_TRACES_SAMPLER_ARG", "ten"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "smoke-signals"),
    ] {
        let out = vidscope()
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "up",
                "--addr",
                "127.0.0.1:0",
            ])
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: stderr was {stderr}");
    }
}

#[test]
fn user_add_creates_a_user_once() {
    let dir = tempfile::tempdir().unwrap();
    let add = |email: &str, password: &str, role: &str| {
        vidscope()
            .args(["--data-dir", dir.path().to_str().unwrap(), "user", "add"])
            .args(["--email", email, "--password", password, "--role", role])
            .output()
            .unwrap()
    };
    let out = add("admin@example.com", "correct horse battery", "admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin user admin@example.com"));
    let again = add("ADMIN@example.com", "correct horse battery", "viewer");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = add("not-an-email", "correct horse battery", "viewer");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--email"));
    let short = add("v@example.com", "short", "viewer");
    assert!(String::from_utf8_lossy(&short.stderr).contains("--password"));
}

#[test]
fn up_serves_and_writes_telemetry_files_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Process(
        vidscope()
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "up",
                "--addr",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = common::up_base_url(child.0.stdout.take().unwrap());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let body: serde_json::Value = rt.block_on(async {
        let resp = reqwest::get(format!("{base}/api/test-otel")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("traceresponse"));
        resp.json().await.unwrap()
    });
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();
    let sent = Instant::now();
    let telemetry = dir.path().join("telemetry");
    let seen = |file: &str, needle: &str| {
        std::fs::read_to_string(telemetry.join(file))
            .unwrap_or_default()
            .contains(needle)
    };
    while !(seen("traces.json", &trace_id)
        && seen("logs.json", &trace_id)
        && seen("metrics.json", "vidscope.test_otel.requests"))
    {
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "telemetry files not written within 5 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.stop();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

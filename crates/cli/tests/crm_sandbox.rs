//! `vidscope crm-sandbox` as a process, spoken to by the worker's own CRM client (what the
//! compose stack does) and by hand for the answers the client never provokes.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Process;
use vidscope_telemetry::{Classify, ErrorClass, TelemetryConfig};
use vidscope_worker::crm::{BreakerState, CrmClient, CrmContact, CrmEvent, CrmSettings};

const CLIENT_ID: &str = "sandbox-test-client";
const SECRET: &str = "sandbox-secret-41d9";

/// Starts the sandbox on a free port with `extra` flags and returns it with its base URL.
fn sandbox(extra: &[&str]) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidscope"))
        .args(["crm-sandbox", "--addr", "127.0.0.1:0", "--latency", "0s"])
        .args(extra)
        .env("VIDSCOPE_CRM_CLIENT_ID", CLIENT_ID)
        .env("VIDSCOPE_CRM_CLIENT_SECRET", SECRET)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn vidscope crm-sandbox");
    let stdout = child.stdout.take().unwrap();
    let url = common::scan_stdout(stdout, "crm-sandbox said where it listens", |line| {
        line.split("listening on ")
            .nth(1)
            .map(|u| u.trim().to_owned())
    });
    (Process(child), url)
}

/// Instruments for the client; telemetry is off (this test asserts on HTTP, not on exports).
fn metrics() -> vidscope_telemetry::Metrics {
    let mut config = TelemetryConfig::new("crm-sandbox-test");
    config.enabled = false;
    config.stdout_logs = false;
    let t = vidscope_telemetry::build(
        &config,
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::sink),
    )
    .unwrap();
    t.guard.metrics().clone()
}

fn contact(user: &str, event: CrmEvent) -> CrmContact {
    CrmContact {
        user_id: user.into(),
        email: format!("{user}@example.com"),
        event,
    }
}

fn settings(url: &str, secret: &str) -> CrmSettings {
    CrmSettings::new(url, CLIENT_ID, secret)
        .with_timeout(Duration::from_secs(5))
        .with_retry_delays(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test]
async fn the_worker_client_syncs_contacts_with_the_sandbox() {
    let (process, url) = sandbox(&["--error-rate", "0", "--outage-every", "off"]);
    let metrics = metrics();
    let client = CrmClient::new(settings(&url, SECRET), metrics.clone()).unwrap();

    client
        .sync_contact(&contact("u1", CrmEvent::Registered), "job-1")
        .await
        .expect("registered");
    client
        .sync_contact(
            &contact(
                "u1",
                CrmEvent::LessonCompleted {
                    video_id: "v1".into(),
                },
            ),
            "job-2",
        )
        .await
        .expect("lesson completed");
    assert_eq!(client.breaker_state(), BreakerState::Closed);

    // Wrong credentials: the token request is refused, and retrying cannot help.
    let wrong = CrmClient::new(settings(&url, "not-the-secret"), metrics).unwrap();
    let err = wrong
        .sync_contact(&contact("u2", CrmEvent::Registered), "job-3")
        .await
        .expect_err("a wrong secret must fail");
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    drop(process);
}

#[tokio::test]
async fn answers_a_client_would_not_provoke() {
    let (process, url) = sandbox(&["--error-rate", "0", "--outage-every", "off"]);
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{url}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let upsert = |auth: Option<&str>, key: &str, body: serde_json::Value| {
        let mut req = http
            .post(format!("{url}/contacts/upsert"))
            .header("idempotency-key", key)
            .json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let good = serde_json::json!({"email": "a@example.com", "userId": "u1", "event": "registered"});

    // No token, a made-up token.
    let r = upsert(None, "k0", good.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = upsert(Some("Bearer sbx-made-up"), "k0", good.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A body the CRM cannot take: 400 naming the field.
    let r = upsert(
        Some(&bearer),
        "k1",
        serde_json::json!({"email": "a@example.com", "userId": "u1", "event": "lesson_completed"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().starts_with("videoId:"),
        "{body}"
    );

    // The same idempotency key twice: one contact, the second answer marked as a repeat.
    let first: serde_json::Value = upsert(Some(&bearer), "k2", good.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again: serde_json::Value = upsert(Some(&bearer), "k2", good)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(first["id"], again["id"]);
    drop(process);
}

#[tokio::test]
async fn an_outage_opens_the_workers_breaker_and_it_closes_after() {
    // An outage of 3 s every 6 s: healthy for 3 s, out from 3 s to 6 s, healthy to 9 s.
    let (process, url) = sandbox(&[
        "--error-rate",
        "0",
        "--outage-every",
        "6s",
        "--outage-for",
        "3s",
    ]);
    let metrics = metrics();
    let client = CrmClient::new(
        settings(&url, SECRET)
            .with_max_attempts(1)
            .with_breaker(2, Duration::from_millis(500)),
        metrics,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // During the outage: transient failures until the breaker opens.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut failures = 0;
    while client.breaker_state() != BreakerState::Open && Instant::now() < deadline {
        let err = client
            .sync_contact(&contact("u3", CrmEvent::Registered), "job-o")
            .await
            .expect_err("the sandbox is in an outage");
        assert_eq!(err.class(), ErrorClass::Transient, "{err}");
        failures += 1;
    }
    assert_eq!(
        client.breaker_state(),
        BreakerState::Open,
        "after {failures} failures"
    );

    // After the outage (6 s from start) a probe gets through and the breaker closes.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ok = client
            .sync_contact(&contact("u3", CrmEvent::Registered), "job-p")
            .await
            .is_ok();
        if ok && client.breaker_state() == BreakerState::Closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the breaker never closed again ({:?})",
            client.breaker_state()
        );
    }
    drop(process);
}

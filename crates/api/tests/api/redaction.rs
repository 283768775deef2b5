use vidscope_testkit::TestApp;

const SECRETS: &[&str] = &[
    "Bearer-secret-9f8e7d",
    "cookie-secret-1a2b3c",
    "body-password-hunter2",
    "query-token-77aa",
    "path-password-5x5x",
    "logged-password-0k0k",
    "signature-deadbeef42",
];

#[tokio::test]
async fn secrets_never_reach_any_signal() {
    let app = TestApp::builder()
        .telemetry(|mut c, _| {
            c.log_filter = "debug".into();
            c
        })
        .spawn()
        .await;

    // Headers, body, query and path of real requests, each with the status it gets.
    let c = &app.client;
    let requests = [
        (
            c.post(app.url("/api/test-otel?token=query-token-77aa"))
                .header("Authorization", "Bearer Bearer-secret-9f8e7d")
                .header("Cookie", "vidscope_session=cookie-secret-1a2b3c")
                .json(&serde_json::json!({"email": "a@b.c", "password": "body-password-hunter2"})),
            405,
        ),
        (
            c.get(app.url("/api/login;password=path-password-5x5x")),
            404,
        ),
        (
            c.get(app.url("/api/test-otel"))
                .header("Authorization", "Bearer Bearer-secret-9f8e7d"),
            200,
        ),
    ];
    for (request, status) in requests {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), status, "{}", resp.url());
    }

    // Careless code: a secret in a log message, a log field, a span attribute and an event.
    {
        let span = tracing::info_span!(
            "careless",
            http.request.header.authorization = "Bearer Bearer-secret-9f8e7d"
        );
        let _e = span.enter();
        tracing::warn!(
            password = "logged-password-0k0k",
            "login failed for a@b.c password=logged-password-0k0k"
        );
        tracing::info!(
            url = "https://s3.local/b/k.mp4?X-Amz-Credential=AKIA&X-Amz-Signature=signature-deadbeef42",
            "presigned"
        );
        use vidscope_telemetry::SpanExt as _;
        span.add_event(
            "upload.failed",
            vec![opentelemetry::KeyValue::new(
                "detail",
                "cookie: vidscope_session=cookie-secret-1a2b3c",
            )],
        );
    }
    app.flush_telemetry().await;

    // Something arrived for every signal, and none of it carries a secret.
    let counts = app.otlp.request_counts();
    assert!(
        counts.traces() > 0 && counts.logs() > 0 && counts.metrics() > 0,
        "{counts:?}"
    );
    app.otlp
        .wait_for_log(
            |l| {
                l.body
                    .as_deref()
                    .is_some_and(|b| b.starts_with("login failed"))
            },
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    for secret in SECRETS {
        assert!(
            !app.otlp.raw_contains(secret.as_bytes()),
            "{secret} reached the collector"
        );
    }
    // The span, the log and the url are still there, just scrubbed.
    let careless = app.otlp.spans_named("careless");
    assert_eq!(
        careless[0].attr_str("http.request.header.authorization"),
        Some("[REDACTED]")
    );
    app.stop().await;
}

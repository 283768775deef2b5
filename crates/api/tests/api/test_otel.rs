use std::time::Duration;

use vidscope_telemetry::{OtlpProtocol, TelemetryConfig};
use vidscope_testkit::otlp::{CaptureReceiver, Transport};
use vidscope_testkit::{TestApp, expect_error};

const WAIT: Duration = Duration::from_secs(10);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// `GET /api/test-otel` as a child of span `PARENT_ID` of trace `TRACE_ID`.
pub(crate) async fn test_otel_in_trace(app: &TestApp) -> reqwest::Response {
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    app.get_with("/api/test-otel", &[("traceparent", &traceparent)])
        .await
}

fn over(
    protocol: OtlpProtocol,
) -> impl FnOnce(TelemetryConfig, &CaptureReceiver) -> TelemetryConfig {
    move |c, r| match protocol {
        OtlpProtocol::Grpc => c.with_otlp(protocol, &r.grpc_endpoint()),
        _ => c.with_otlp(protocol, &r.http_endpoint()),
    }
}

async fn test_otel_continues_the_callers_trace(protocol: OtlpProtocol) {
    // Arrange
    let app = TestApp::builder().telemetry(over(protocol)).spawn().await;

    // Act
    let resp = test_otel_in_trace(&app).await;

    // Assert: the response names the trace, twice.
    assert_eq!(resp.status(), 200);
    let traceresponse = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["trace_id"], TRACE_ID);
    let parts: Vec<&str> = traceresponse.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceresponse}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE_ID, "01"));

    // The server span is a child of the caller's span and is the one traceresponse names.
    let server = app.span_in(TRACE_ID, "GET /api/test-otel").await;
    assert_eq!(server.parent_span_id.as_deref(), Some(PARENT_ID));
    assert_eq!(server.span_id, parts[2]);
    assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
    server.assert_attr_strs(&[
        ("http.request.method", "GET"),
        ("http.route", "/api/test-otel"),
        ("http.response.category", "success"),
        ("http.route.type", "api"),
    ]);
    assert_eq!(server.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(
        server.resource_attr_str("service.name"),
        Some("vidscope-test")
    );

    // The custom span, its event, and the log line inside it.
    let custom = app.span_in(TRACE_ID, "test-otel").await;
    assert_eq!(
        custom.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    let event = custom
        .event("test-otel.checked")
        .expect("custom span has its event");
    assert_eq!(event.attr_i64("db.result"), Some(1));
    let log = app
        .otlp
        .wait_for_log(|l| l.body.as_deref() == Some("telemetry check ran"), WAIT)
        .await
        .unwrap();
    assert_eq!(log.trace_id.as_deref(), Some(TRACE_ID));
    assert_eq!(log.span_id.as_deref(), Some(custom.span_id.as_str()));

    // Same ids on the stdout JSON line.
    let line = app
        .logs
        .json_lines()
        .into_iter()
        .find(|l| l["message"] == "telemetry check ran")
        .expect("JSON log line on stdout");
    assert_eq!(line["trace_id"], TRACE_ID);
    assert_eq!(line["span_id"], custom.span_id.as_str());

    // The metric point and the request-duration histogram.
    app.flush_telemetry().await;
    app.metric_point("vidscope.test_otel.requests", |p| {
        p.value.as_i64() >= Some(1)
    })
    .await;
    let duration = app
        .metric_point("http.server.request.duration", |p| {
            p.attr_str("http.route") == Some("/api/test-otel")
        })
        .await;
    assert!(duration.value.count() >= Some(1));

    // The protocol asked for is the one used.
    let counts = app.otlp.request_counts();
    let used = match protocol {
        OtlpProtocol::Grpc => (counts.grpc.total(), counts.http.total()),
        _ => (counts.http.total(), counts.grpc.total()),
    };
    assert!(used.0 > 0 && used.1 == 0, "{protocol:?}: {counts:?}");
    let transport = if protocol == OtlpProtocol::Grpc {
        Transport::Grpc
    } else {
        Transport::Http
    };
    assert_eq!(server.transport, transport);
    app.stop().await;
}

#[tokio::test]
async fn test_otel_over_grpc() {
    test_otel_continues_the_callers_trace(OtlpProtocol::Grpc).await;
}

#[tokio::test]
async fn test_otel_over_http_protobuf() {
    test_otel_continues_the_callers_trace(OtlpProtocol::HttpProtobuf).await;
}

#[tokio::test]
async fn test_otel_over_http_json() {
    test_otel_continues_the_callers_trace(OtlpProtocol::HttpJson).await;
}

#[tokio::test]
async fn every_response_carries_traceresponse_even_errors() {
    let app = vidscope_testkit::spawn_app().await;
    for path in ["/healthz", "/readyz", "/no/such/route"] {
        let resp = app.get(path).await;
        let tr = resp
            .headers()
            .get("traceresponse")
            .unwrap_or_else(|| panic!("{path}: no traceresponse"));
        let tr = tr.to_str().unwrap();
        assert!(tr.starts_with("00-") && tr.len() == 55, "{path}: {tr}");
    }
    let resp = app.get("/no/such/route").await;
    expect_error(resp, 404, "route_not_found", "an unknown route").await;
    app.stop().await;
}

/// `RUST_LOG` quiets logs, never traces: with the log filter at `warn`, info-level spans must
/// still be exported. (They were not: the log layers' filters sat inside a wrapper that hid
/// them from the registry, whose per-callsite interest then turned every info span off.)
#[tokio::test]
async fn a_quiet_log_filter_keeps_exporting_spans() {
    let app = TestApp::builder()
        .telemetry(|c, r| {
            let mut c = c.with_otlp(OtlpProtocol::Grpc, &r.grpc_endpoint());
            c.log_filter = "warn".to_owned();
            c
        })
        .spawn()
        .await;
    let resp = app.get("/api/test-otel").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();
    app.span_in(&trace_id, "GET /api/test-otel").await;
    // The info-level request log stays off.
    app.flush_telemetry().await;
    assert!(
        app.otlp.logs_in_trace(&trace_id).is_empty(),
        "no info logs at warn"
    );
}

/// One raw HTTP/1.1 exchange (reqwest cannot send a chunked body without its `stream`
/// feature): returns the response's status line and body.
async fn raw_exchange(port: u16, request: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The server span's current semantic-convention attributes, read from the request itself:
/// the scheme the proxy received, the authority the client asked for, the peer, the protocol
/// version, and both body sizes, a chunked request body included.
#[tokio::test]
async fn the_server_span_describes_the_request_as_received() {
    let app = vidscope_testkit::spawn_app().await;
    let body = r#"{"email":"nobody@example.com","password":"not the right one"}"#;
    let (first, second) = body.split_at(20);
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: lessons.example:8443\r\n\
         X-Forwarded-Proto: https\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let (status, response_body) = raw_exchange(app.port, &request).await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized", "{response_body}");

    let plain = app.get("/healthz").await;
    assert_eq!(plain.status(), 200);
    let plain_len = plain.bytes().await.unwrap().len();

    app.flush_telemetry().await;
    let login = app.span_named("POST /api/auth/login").await;
    login.assert_attr_strs(&[
        ("url.scheme", "https"),
        ("server.address", "lessons.example"),
        ("client.address", "127.0.0.1"),
        ("network.protocol.version", "1.1"),
    ]);
    assert_eq!(login.attr_i64("server.port"), Some(8443));
    assert_eq!(
        login.attr_i64("http.request.body.size"),
        Some(body.len() as i64),
        "a chunked body is counted as read"
    );
    // A JSON error is one buffer, sent with its Content-Length.
    assert_eq!(
        login.attr_i64("http.response.body.size"),
        Some(response_body.len() as i64)
    );

    let health = app.span_named("GET /healthz").await;
    assert_eq!(health.attr_str("url.scheme"), Some("http"));
    assert_eq!(health.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(health.attr_i64("server.port"), Some(i64::from(app.port)));
    assert_eq!(health.attr_i64("http.request.body.size"), None, "no body");
    assert_eq!(
        health.attr_i64("http.response.body.size"),
        Some(plain_len as i64)
    );
    app.stop().await;
}

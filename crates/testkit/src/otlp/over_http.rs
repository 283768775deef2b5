//! OTLP/HTTP: protobuf and JSON bodies, gzip or not, and an explanation for anything else.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, Method, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::misbehave;
use super::model::Transport;
use super::{MAX_MESSAGE_BYTES, OtlpRequest, Shared, stop_requested};

#[derive(Clone, Copy)]
enum BodyEncoding {
    Protobuf,
    Json,
}

pub(super) async fn serve_http(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    let app = axum::Router::new()
        .route("/v1/traces", post(http_export::<ExportTraceServiceRequest>))
        .route(
            "/v1/metrics",
            post(http_export::<ExportMetricsServiceRequest>),
        )
        .route("/v1/logs", post(http_export::<ExportLogsServiceRequest>))
        .fallback(http_unknown_route)
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(shared);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(stop_requested(stop))
        .await;
    if let Err(err) = result {
        eprintln!("OTLP capture receiver: HTTP server stopped: {err}");
    }
}

async fn http_export<R: OtlpRequest>(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.slow_down().await;
    let path = R::SIGNAL.http_path();
    let refuse = |status: StatusCode, message: String| {
        shared.note_problem(format!("HTTP POST {path}: {status}: {message}"));
        text_response(status, message)
    };
    // Kept decompressed, so a leak check searches what the exporter sent.
    let (body, gzip) = match content_coding(&headers, body) {
        Ok(decoded) => decoded,
        Err((status, message, body)) => {
            shared.record_raw(R::SIGNAL, Transport::Http, body);
            return refuse(status, message);
        }
    };
    shared.record_raw(R::SIGNAL, Transport::Http, body.clone());
    if shared.reject_now() {
        return text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "OTLP capture receiver is rejecting exports (set_reject(true))".to_owned(),
        );
    }
    if let Some(refused) = shared.refusal(R::SIGNAL, Transport::Http, gzip) {
        return refused.http();
    }

    let encoding = match body_encoding(&headers) {
        Ok(encoding) => encoding,
        Err(message) => return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, message),
    };
    let decoded = match encoding {
        BodyEncoding::Protobuf => R::decode(body)
            .map_err(|err| format!("body is not a valid protobuf {}: {err}", type_name::<R>())),
        BodyEncoding::Json => decode_json::<R>(&body),
    };
    let request = match decoded {
        Ok(request) => request,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    shared.ingest(Transport::Http, request);

    let response = shared.accepted::<R>(Transport::Http, gzip);
    match encoding {
        BodyEncoding::Protobuf => (
            [(CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        BodyEncoding::Json => match serde_json::to_vec(&response) {
            Ok(json) => ([(CONTENT_TYPE, "application/json")], json).into_response(),
            Err(err) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the JSON response failed: {err}"),
            ),
        },
    }
}

/// The body without its `Content-Encoding` (none, `identity` or `gzip`), and whether it was
/// gzipped; a refusal, with the body as received, for any other coding or a false gzip.
#[allow(clippy::result_large_err, reason = "a test double's refusal path")]
fn content_coding(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Bytes, bool), (StatusCode, String, Bytes)> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok((body, false));
    };
    let value = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    if value.eq_ignore_ascii_case("identity") {
        Ok((body, false))
    } else if value.eq_ignore_ascii_case("gzip") {
        match misbehave::gunzip(&body) {
            Ok(inflated) => Ok((inflated, true)),
            Err(message) => Err((StatusCode::BAD_REQUEST, message, body)),
        }
    } else {
        Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Encoding {value:?}; the capture receiver accepts gzip and \
                 uncompressed bodies"
            ),
            body,
        ))
    }
}

async fn http_unknown_route(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    let message = format!(
        "no OTLP route for {method} {path}; this receiver serves POST /v1/traces, /v1/metrics \
         and /v1/logs (exporters given a signal-specific endpoint need the full path)",
        path = uri.path()
    );
    shared.note_problem(format!("HTTP {method} {}: 404", uri.path()));
    text_response(StatusCode::NOT_FOUND, message)
}

fn text_response(status: StatusCode, message: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn body_encoding(headers: &HeaderMap) -> Result<BodyEncoding, String> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(
            "missing Content-Type; OTLP/HTTP requires application/x-protobuf or \
                    application/json"
                .to_owned(),
        );
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    let media_type = value.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/x-protobuf")
        || media_type.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(BodyEncoding::Protobuf)
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Ok(BodyEncoding::Json)
    } else {
        Err(format!(
            "unsupported Content-Type {value:?}; OTLP/HTTP requires application/x-protobuf or \
             application/json"
        ))
    }
}

fn decode_json<R: OtlpRequest>(body: &[u8]) -> Result<R, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|err| format!("body is not valid JSON: {err}"))?;
    // proto3 JSON lets senders omit empty repeated fields, but the generated serde impl of the
    // top-level request insists on it; an empty export (`{}`) is legal and must not be a 400.
    if let Some(object) = value.as_object_mut() {
        object
            .entry(R::JSON_ROOT)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    serde_json::from_value(value)
        .map_err(|err| format!("body is not a valid OTLP/JSON {}: {err}", type_name::<R>()))
}

fn type_name<R>() -> &'static str {
    let full = std::any::type_name::<R>();
    full.rsplit("::").next().unwrap_or(full)
}

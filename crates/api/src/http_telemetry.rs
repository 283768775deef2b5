//! The server span of every request, with semantic-convention attributes and the seeds'
//! custom ones, the `traceresponse` header, and `http.server.request.duration`.
//!
//! Written as one middleware instead of tower-http's `TraceLayer` callbacks because the span,
//! the header and the metric need the same values (route, status, category) and this keeps
//! them computed once per request.

use std::time::Instant;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, HttpBody as _};
use axum::extract::{MatchedPath, Request, State};

use crate::client_ip::ClientIp;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::trace::Status;
use tracing::Instrument;
use vidscope_telemetry::Metrics;
use vidscope_telemetry::SpanExt as _;
use vidscope_telemetry::propagation::{extract_http, traceresponse, with_remote_parent};
use vidscope_telemetry::redact::redact_str;

/// Built once: inserting by `&str` parses and validates the name on every response.
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// `api.category` from the seeds: which product area a route belongs to.
pub fn api_category(route: &str) -> &'static str {
    let r = route.strip_prefix("/api/").unwrap_or("");
    match r.split('/').next().unwrap_or("") {
        "videos" => "video",
        "progress" => "progress",
        "upload" => "upload",
        "auth" => "auth",
        "telemetry" => "telemetry",
        _ => "system",
    }
}

/// `http.route.type`: api, health or page.
pub fn route_type(route: &str) -> &'static str {
    if route.starts_with("/api/") {
        "api"
    } else if matches!(route, "/healthz" | "/readyz") {
        "health"
    } else {
        "page"
    }
}

/// Semconv `http.request.method`: the known methods as themselves, anything else `_OTHER`
/// (keeps the metric label set bounded and avoids an allocation per request).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

fn response_category(status: u16) -> &'static str {
    match status {
        500.. => "server_error",
        400..=499 => "client_error",
        _ => "success",
    }
}

/// `http.request.method` and, for a matched route, `http.route`: the first attributes of the
/// server span and the first labels of the duration metric.
fn method_and_route(method: &'static str, route: &str, capacity: usize) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(capacity);
    attributes.push(KeyValue::new("http.request.method", method));
    if !route.is_empty() {
        attributes.push(KeyValue::new("http.route", route.to_owned()));
    }
    attributes
}

/// The labels of `http.server.request.duration`; the view drops any key the catalog does not
/// list, so a test checks them against it.
fn duration_labels(
    method: &'static str,
    route: &str,
    status: u16,
    category: &'static str,
) -> Vec<KeyValue> {
    let mut labels = method_and_route(method, route, 5);
    labels.push(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    labels.push(KeyValue::new("api.category", category));
    if status >= 500 {
        labels.push(KeyValue::new("error.type", status.to_string()));
    }
    labels
}

/// Semconv `network.protocol.version`.
fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Semconv `url.scheme`: the request's own (an absolute URI), else what the proxy in front
/// says it received (`X-Forwarded-Proto`, only `http` or `https`), else `http`, the one
/// scheme this server listens with.
fn url_scheme(uri: &Uri, headers: &HeaderMap) -> &'static str {
    let forwarded = || {
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim())
    };
    match uri.scheme_str().or_else(forwarded) {
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    }
}

/// Semconv `server.address` and `server.port`: the authority the client asked for (the URI's
/// on HTTP/2, else `Host`), the port defaulting to the scheme's. `None` without either.
fn server_authority(uri: &Uri, headers: &HeaderMap, scheme: &str) -> Option<(String, i64)> {
    let authority = match uri.authority() {
        Some(a) => a.clone(),
        None => headers
            .get(header::HOST)?
            .to_str()
            .ok()?
            .parse::<axum::http::uri::Authority>()
            .ok()?,
    };
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((authority.host().to_owned(), i64::from(port)))
}

/// Counts the bytes of a request body as the handler reads it, for `http.request.body.size`
/// when no `Content-Length` says it up front (a chunked upload).
fn counted(body: Body, read: Arc<AtomicU64>) -> Body {
    use futures_util::StreamExt as _;
    Body::from_stream(body.into_data_stream().inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }))
}

pub async fn trace_request(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // A clone of the router's `Arc<str>`, not a copy of the text: `req` moves on below.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("", MatchedPath::as_str);
    let method = method_label(req.method());
    let category = api_category(route);
    let span = server_span(&req, method, route);
    // One lookup for the header and the sampling decision: a span records exactly when its
    // context is sampled.
    let span_context = span.span_context();
    let recording = span_context.is_sampled();
    if recording {
        span.set_attributes(request_attributes(&req, method, route, category));
    }
    // A body without a length (chunked) is counted as it is read, and its size recorded once
    // the handler is done with it.
    let body_read = (recording
        && !req.headers().contains_key(header::CONTENT_LENGTH)
        && !req.body().is_end_stream())
    .then(|| Arc::new(AtomicU64::new(0)));
    let req = match &body_read {
        Some(read) => req.map(|body| counted(body, read.clone())),
        None => req,
    };

    let mut response =
        vidscope_telemetry::db_watch::scope(next.run(req).instrument(span.clone())).await;

    let status = response.status().as_u16();
    if recording {
        record_response(&span, &response, body_read.as_deref());
    }
    if let Some(v) = traceresponse(&span_context)
        && let Ok(v) = HeaderValue::try_from(v)
    {
        response.headers_mut().insert(TRACERESPONSE, v);
    }

    metrics.http_server_request_duration.record(
        start.elapsed().as_secs_f64(),
        route,
        method,
        status,
        || duration_labels(method, route, status, category),
    );
    response
}

/// The `http.server.request` span, a child of the caller's `traceparent` if it sent one.
///
/// The attributes are set only when the span is sampled (decided when it is created), all at
/// once: most spans are not sampled at ratio sampling, and recording declared fields costs a
/// dispatch through every layer per field. The name and kind cannot be changed once the span
/// exists, so they are set here; the name is low-cardinality: method plus route template,
/// never the raw path. `user.id` and `error.type` are fields because handlers record them on
/// the current span.
fn server_span(req: &Request, method: &str, route: &str) -> tracing::Span {
    with_remote_parent(extract_http(req.headers()), || {
        tracing::info_span!(
            "http.server.request",
            otel.name = %format_args!("{} {}", method, if route.is_empty() { "unmatched" } else { route }),
            otel.kind = "server",
            user.id = tracing::field::Empty,
            error.type = tracing::field::Empty,
        )
    })
}

/// The request's attributes of the server span.
fn request_attributes(
    req: &Request,
    method: &'static str,
    route: &str,
    category: &'static str,
) -> Vec<KeyValue> {
    let headers = req.headers();
    let header_str = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let mut attributes = method_and_route(method, route, 12);
    attributes.push(KeyValue::new(
        "url.path",
        redact_str(req.uri().path()).into_owned(),
    ));
    let scheme = url_scheme(req.uri(), headers);
    attributes.push(KeyValue::new("url.scheme", scheme));
    if let Some((address, port)) = server_authority(req.uri(), headers, scheme) {
        attributes.push(KeyValue::new("server.address", address));
        attributes.push(KeyValue::new("server.port", port));
    }
    // The peer, or the address a trusted proxy forwarded (crate::client_ip): a header any
    // client can set is not an address.
    if let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>() {
        attributes.push(KeyValue::new("client.address", ip.to_string()));
    }
    attributes.push(KeyValue::new(
        "network.protocol.version",
        protocol_version(req.version()),
    ));
    attributes.push(KeyValue::new(
        "user_agent.original",
        header_str(header::USER_AGENT).unwrap_or("").to_owned(),
    ));
    attributes.push(KeyValue::new("http.route.type", route_type(route)));
    attributes.push(KeyValue::new("api.category", category));
    if let Some(size) = header_str(header::CONTENT_LENGTH).and_then(|v| v.parse::<i64>().ok()) {
        attributes.push(KeyValue::new("http.request.body.size", size));
    }
    attributes
}

/// The response's attributes of a sampled server span, and its error status on a 5xx.
/// `body_read` counts a request body that had no length.
fn record_response(span: &tracing::Span, response: &Response, body_read: Option<&AtomicU64>) {
    let status = response.status().as_u16();
    span.set_attributes([
        KeyValue::new("http.response.status_code", i64::from(status)),
        KeyValue::new("http.response.category", response_category(status)),
    ]);
    if let Some(read) = body_read {
        span.set_attribute(
            "http.request.body.size",
            read.load(Ordering::Relaxed) as i64,
        );
    }
    // Known when the body is one buffer (JSON, pages, errors); a streamed body (a video
    // range) has no size before the span ends, and then the attribute is left out.
    if let Some(size) = response.body().size_hint().exact() {
        span.set_attribute("http.response.body.size", size as i64);
    }
    if status >= 500 {
        span.set_status(Status::error(""));
        span.record("error.type", response.status().as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(api_category("/api/videos/{filename}"), "video");
        assert_eq!(api_category("/api/progress"), "progress");
        assert_eq!(api_category("/api/test-otel"), "system");
        assert_eq!(api_category("/healthz"), "system");
        assert_eq!(route_type("/readyz"), "health");
        assert_eq!(route_type("/login"), "page");
        assert_eq!(response_category(503), "server_error");
        assert_eq!(response_category(404), "client_error");
        assert_eq!(response_category(206), "success");
    }

    /// A key outside the catalog would be dropped by the view without a word.
    #[test]
    fn duration_labels_are_the_catalogs() {
        use vidscope_telemetry::catalog::{names, spec};
        let name = names::HTTP_SERVER_REQUEST_DURATION;
        let allowed = spec(name).expect("in the catalog").labels;
        for (route, status) in [("/api/x", 503), ("", 200)] {
            for kv in duration_labels("GET", route, status, "system") {
                assert!(allowed.contains(&kv.key.as_str()), "{} not allowed", kv.key);
            }
        }
    }
}

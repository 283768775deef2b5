//! OTLP/gRPC: the three collector services, each request's raw body kept for leak checks.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;

use super::misbehave::{self, GrpcGzip};
use super::model::{Signal, Transport};
use super::{MAX_MESSAGE_BYTES, OtlpRequest, Shared, stop_requested};

#[derive(Clone)]
struct GrpcReceiver {
    shared: Arc<Shared>,
}

impl GrpcReceiver {
    fn handle<R: OtlpRequest>(
        &self,
        request: tonic::Request<R>,
    ) -> Result<tonic::Response<R::Response>, tonic::Status> {
        if self.shared.reject_now() {
            return Err(tonic::Status::unavailable(
                "OTLP capture receiver is rejecting exports (set_reject(true))",
            ));
        }
        let gzip = request.extensions().get::<GrpcGzip>().is_some_and(|g| g.0);
        if let Some(refused) = self.shared.refusal(R::SIGNAL, Transport::Grpc, gzip) {
            return Err(refused.grpc());
        }
        self.shared.ingest(Transport::Grpc, request.into_inner());
        Ok(tonic::Response::new(
            self.shared.accepted::<R>(Transport::Grpc, gzip),
        ))
    }
}

/// The three collector services are one: each waits as a test asked
/// ([`Shared::slow_down`]), then [`GrpcReceiver::handle`]s its request.
macro_rules! collector_services {
    ($($service:ident: $request:ty => $response:ty;)*) => {$(
        #[tonic::async_trait]
        impl $service for GrpcReceiver {
            async fn export(
                &self,
                request: tonic::Request<$request>,
            ) -> Result<tonic::Response<$response>, tonic::Status> {
                self.shared.slow_down().await;
                self.handle(request)
            }
        }
    )*};
}

collector_services! {
    TraceService: ExportTraceServiceRequest => ExportTraceServiceResponse;
    MetricsService: ExportMetricsServiceRequest => ExportMetricsServiceResponse;
    LogsService: ExportLogsServiceRequest => ExportLogsServiceResponse;
}

/// Buffers each gRPC request body and records it before tonic decodes it, so the raw capture is
/// the bytes on the wire (unknown fields included) and also covers requests tonic then refuses.
#[derive(Clone)]
struct RecordRawBody<S> {
    inner: S,
    shared: Arc<Shared>,
    signal: Signal,
}

impl<S> Service<http::Request<tonic::body::Body>> for RecordRawBody<S>
where
    S: Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // tower contract: the instance that was polled ready must serve the call.
        let replacement = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, replacement);
        let shared = Arc::clone(&self.shared);
        let signal = self.signal;
        Box::pin(async move {
            if !shared.retain {
                let gzip = misbehave::grpc_gzip(request.headers(), None);
                let mut request = request;
                request.extensions_mut().insert(GrpcGzip(gzip));
                return inner.call(request).await;
            }
            let (mut parts, body) = request.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(status) => return Ok(status.into_http()),
            };
            let gzip = misbehave::grpc_gzip(&parts.headers, Some(&bytes));
            parts.extensions.insert(GrpcGzip(gzip));
            shared.record_raw(signal, Transport::Grpc, bytes.clone());
            let request =
                http::Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes)));
            inner.call(request).await
        })
    }
}

impl<S: NamedService> NamedService for RecordRawBody<S> {
    const NAME: &'static str = S::NAME;
}

pub(super) async fn serve_grpc(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    use tonic::codec::CompressionEncoding::Gzip;
    let receiver = GrpcReceiver {
        shared: Arc::clone(&shared),
    };
    // The three services take the same limits and compression, and each records its raw
    // bodies under its own signal.
    macro_rules! served {
        ($server:ident, $signal:ident) => {
            RecordRawBody {
                inner: $server::new(receiver.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .accept_compressed(Gzip)
                    .send_compressed(Gzip),
                shared: Arc::clone(&shared),
                signal: Signal::$signal,
            }
        };
    }
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = tonic::transport::Server::builder()
        .add_service(served!(TraceServiceServer, Traces))
        .add_service(served!(MetricsServiceServer, Metrics))
        .add_service(served!(LogsServiceServer, Logs))
        .serve_with_incoming_shutdown(incoming, stop_requested(stop))
        .await;
    if let Err(err) = result {
        eprintln!("OTLP capture receiver: gRPC server stopped: {err}");
    }
}

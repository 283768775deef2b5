//! The S3 adapter (AWS, MinIO, s3s-fs), on `aws-sdk-s3` with a hand-built configuration: the
//! settings come from vidscope's own config, not from the AWS credential chain, so a
//! deployment's behaviour never depends on stray `~/.aws` files.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tracing::instrument::WithSubscriber;
use tracing::{Instrument, Span};

use super::{
    BodyRef, BoxByteStream, ByteRange, ObjectBody, ObjectKey, ObjectMeta, ServiceFailure,
    StoreError, StoreKind, traced,
};

/// Multipart part size. S3 needs at least 5 MiB per part (except the last) and at most 10 000
/// parts; 8 MiB keeps memory per upload small and still allows objects of ~80 GB.
pub(super) const PART_SIZE: usize = 8 * 1024 * 1024;

/// How long readiness waits for the bucket: a health check must answer before its prober gives
/// up, and a slow store is as unready as a dead one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The request `$op` (a method of the SDK's client) on the object `$key` of the store's bucket.
/// A macro because the SDK's request builders share their `bucket` and `key` setters but no
/// trait.
macro_rules! object_request {
    ($store:expr, $op:ident, $key:expr) => {
        $store
            .client
            .$op()
            .bucket(&*$store.bucket)
            .key($key.as_str())
    };
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: Arc<str>,
    region: Arc<str>,
    endpoint: Option<Arc<str>>,
    presign_ttl: Duration,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    pub(crate) fn new(kind: &StoreKind) -> Result<Self, StoreError> {
        let StoreKind::S3 {
            endpoint,
            region,
            bucket,
            access_key_id,
            secret_access_key,
            force_path_style,
            presign_ttl,
        } = kind
        else {
            return Err(StoreError::Other(anyhow::anyhow!("not S3 settings")));
        };
        if bucket.is_empty() {
            return Err(StoreError::Other(anyhow::anyhow!(
                "S3 bucket name is empty"
            )));
        }
        if let Some(ep) = endpoint
            && !(ep.starts_with("http://") || ep.starts_with("https://"))
        {
            return Err(StoreError::Other(anyhow::anyhow!(
                "S3 endpoint {ep:?} must start with http:// or https://"
            )));
        }
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(region.clone()))
            .credentials_provider(Credentials::new(
                access_key_id.clone(),
                secret_access_key.clone(),
                None,
                None,
                "vidscope",
            ))
            .force_path_style(*force_path_style)
            // Checksums only where S3 demands them: the SDK's newer default (CRC32 on every
            // upload, chunked trailers) is rejected by several S3-compatible stores, and the
            // transport already protects the bytes.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(ep) = endpoint {
            config = config.endpoint_url(ep.clone());
        }
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            bucket: bucket.as_str().into(),
            region: region.as_str().into(),
            endpoint: endpoint.as_deref().map(Into::into),
            presign_ttl: *presign_ttl,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn presign_ttl(&self) -> Duration {
        self.presign_ttl
    }

    /// The region and the configured endpoint (`None`: AWS itself), for what must name the
    /// origin of presigned URLs (the pages' Content-Security-Policy).
    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The SDK client, for operations this port does not cover (listing, lifecycle rules).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Stores the body: in one request when it fits in one part, else as a multipart upload.
    pub(crate) async fn put(
        &self,
        key: &ObjectKey,
        mut body: BodyRef<'_>,
        content_type: &str,
        span: &Span,
    ) -> Result<ObjectMeta, StoreError> {
        let mut buf = BytesMut::new();
        let eof = fill(&mut body, &mut buf).await?;
        span.record("s3.multipart", !eof);
        if eof {
            // Small enough for one request: no multipart bookkeeping.
            let size = buf.len() as u64;
            let out = object_request!(self, put_object, key)
                .content_type(content_type)
                .content_length(size as i64)
                .body(ByteStream::from(buf.freeze()))
                .send()
                .await
                .map_err(|e| map_sdk_error(e, Some(key)))?;
            return Ok(stored(size, content_type, out.e_tag()));
        }
        self.put_multipart(key, body, buf, content_type, span).await
    }

    /// Creates a multipart upload, sends the body (`buf` first) part by part and completes the
    /// upload; aborts it when any step fails, or when the caller drops this future
    /// ([`AbortOnDrop`]).
    async fn put_multipart(
        &self,
        key: &ObjectKey,
        body: BodyRef<'_>,
        buf: BytesMut,
        content_type: &str,
        span: &Span,
    ) -> Result<ObjectMeta, StoreError> {
        let upload_id = self.create_multipart_upload(key, content_type).await?;
        let mut guard = AbortOnDrop {
            span: span.clone(),
            store: self.clone(),
            key: key.clone(),
            upload_id: Some(upload_id.clone()),
        };
        let result = match self.upload_parts(key, &upload_id, body, buf).await {
            Ok((parts, total)) => {
                span.record("s3.part_count", parts.len() as i64);
                self.complete_multipart_upload(key, &upload_id, parts)
                    .await
                    .map(|etag| stored(total, content_type, etag.as_deref()))
            }
            Err(e) => Err(e),
        };
        guard.upload_id = None;
        if result.is_err() {
            self.abort(key, &upload_id).await;
        }
        result
    }

    async fn create_multipart_upload(
        &self,
        key: &ObjectKey,
        content_type: &str,
    ) -> Result<String, StoreError> {
        traced(self.step_span("s3.create_multipart_upload", key), async {
            let out = object_request!(self, create_multipart_upload, key)
                .content_type(content_type)
                .send()
                .await
                .map_err(|e| map_sdk_error(e, Some(key)))?;
            out.upload_id()
                .map(str::to_owned)
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("S3 returned no upload id")))
        })
        .await
    }

    /// Sends `buf` and then the rest of `body` as parts of [`PART_SIZE`] (the last one
    /// shorter); returns the parts and the bytes sent.
    async fn upload_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        mut body: BodyRef<'_>,
        mut buf: BytesMut,
    ) -> Result<(Vec<CompletedPart>, u64), StoreError> {
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut eof = false;
        loop {
            if !eof && buf.len() < PART_SIZE {
                eof = fill(&mut body, &mut buf).await?;
            }
            let part = if buf.len() > PART_SIZE {
                buf.split_to(PART_SIZE)
            } else {
                buf.split()
            };
            if part.is_empty() {
                break;
            }
            let number = i32::try_from(parts.len() + 1).unwrap_or(i32::MAX);
            let len = part.len() as u64;
            let etag = self
                .upload_part(key, upload_id, number, part.freeze())
                .await?;
            total += len;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(etag)
                    .build(),
            );
            if eof && buf.is_empty() {
                break;
            }
        }
        Ok((parts, total))
    }

    /// Completes the upload from its parts; returns the object's ETag.
    async fn complete_multipart_upload(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>, StoreError> {
        traced(self.step_span("s3.complete_multipart_upload", key), async {
            let out = object_request!(self, complete_multipart_upload, key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| map_sdk_error(e, Some(key)))?;
            Ok(out.e_tag().map(str::to_owned))
        })
        .await
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        number: i32,
        part: Bytes,
    ) -> Result<Option<String>, StoreError> {
        let span = tracing::info_span!(
            "s3.upload_part",
            otel.kind = "client",
            s3.bucket = &*self.bucket,
            s3.key = key.as_str(),
            s3.size = part.len() as i64,
            s3.part_number = number,
            storage.backend = "s3",
            error.type = tracing::field::Empty,
        );
        traced(span, async {
            let out = object_request!(self, upload_part, key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(part.len() as i64)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| map_sdk_error(e, Some(key)))?;
            Ok(out.e_tag().map(str::to_owned))
        })
        .await
    }

    /// Best effort: an abandoned upload only costs storage until a lifecycle rule removes it,
    /// and the caller's original error matters more than this one.
    async fn abort(&self, key: &ObjectKey, upload_id: &str) {
        let _ = traced(self.step_span("s3.abort_multipart_upload", key), async {
            object_request!(self, abort_multipart_upload, key)
                .upload_id(upload_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_sdk_error(e, Some(key)))
        })
        .await;
    }

    fn step_span(&self, name: &'static str, key: &ObjectKey) -> Span {
        // `info_span!` needs a literal name; the steps share their fields, so branch here.
        macro_rules! step {
            ($n:literal) => {
                tracing::info_span!(
                    $n,
                    otel.kind = "client",
                    s3.bucket = &*self.bucket,
                    s3.key = key.as_str(),
                    storage.backend = "s3",
                    error.type = tracing::field::Empty,
                )
            };
        }
        match name {
            "s3.create_multipart_upload" => step!("s3.create_multipart_upload"),
            "s3.complete_multipart_upload" => step!("s3.complete_multipart_upload"),
            _ => step!("s3.abort_multipart_upload"),
        }
    }

    pub(crate) async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StoreError> {
        let out = object_request!(self, head_object, key)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, Some(key)))?;
        let size = out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        Ok(ObjectMeta {
            size,
            content_type: out.content_type().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
            last_modified: out.last_modified().and_then(to_system_time),
        })
    }

    pub(crate) async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StoreError> {
        let mut req = object_request!(self, get_object, key);
        if let Some(r) = range {
            req = req.range(format!("bytes={}-{}", r.start, r.end_inclusive));
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                let err = map_sdk_error(e, Some(key));
                return Err(match err {
                    // S3's 416 does not always say how big the object is; the caller needs it
                    // for `Content-Range: bytes */size`, so ask.
                    StoreError::RangeNotSatisfiable { size: 0 } => {
                        let size = self.head(key).await.map(|m| m.size).unwrap_or(0);
                        StoreError::RangeNotSatisfiable { size }
                    }
                    other => other,
                });
            }
        };
        let length = out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let content_range = out.content_range().and_then(parse_content_range);
        let meta_of = |size| ObjectMeta {
            size,
            content_type: out.content_type().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
            last_modified: out.last_modified().and_then(to_system_time),
        };
        let (meta, served, skip) = match (range, content_range) {
            (Some(_), Some((served, total))) => (meta_of(total), Some(served), None),
            // A server that ignores Range sends the whole object with 200; honour the
            // contract anyway by dropping what was not asked for.
            (Some(r), None) => {
                let served = r.clamp_to(length)?;
                (meta_of(length), Some(served), Some(served))
            }
            (None, _) => (meta_of(length), None, None),
        };
        let body = out.body;
        let stream: BoxByteStream = match skip {
            Some(r) => Box::pin(skip_take(body, r.start, r.len())),
            None => Box::pin(futures_util::stream::unfold(body, |mut b| async move {
                b.next().await.map(|r| (r.map_err(std::io::Error::from), b))
            })),
        };
        Ok(ObjectBody {
            meta,
            range: served,
            stream,
        })
    }

    pub(crate) async fn presign_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| {
            StoreError::Other(anyhow::anyhow!("invalid presign lifetime {ttl:?}: {e}"))
        })?;
        let req = object_request!(self, get_object, key)
            .presigned(config)
            .await
            .map_err(|e| map_sdk_error(e, Some(key)))?;
        Ok(req.uri().to_owned())
    }

    pub(crate) async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        object_request!(self, delete_object, key)
            .send()
            .await
            .map_err(|e| map_sdk_error(e, Some(key)))?;
        Ok(())
    }

    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        match self.head_bucket().await? {
            true => Ok(()),
            false => Err(StoreError::Other(anyhow::anyhow!(
                "S3 bucket {} does not exist",
                self.bucket
            ))),
        }
    }

    /// `Ok(false)` when the bucket does not exist.
    pub(crate) async fn head_bucket(&self) -> Result<bool, StoreError> {
        let result = self
            .client
            .head_bucket()
            .bucket(&*self.bucket)
            .customize()
            .config_override(
                aws_sdk_s3::Config::builder()
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(CHECK_TIMEOUT)
                            .operation_timeout(CHECK_TIMEOUT)
                            .build(),
                    ),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match map_sdk_error(e, None) {
                StoreError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn create_bucket(&self) -> Result<(), StoreError> {
        let mut req = self.client.create_bucket().bucket(&*self.bucket);
        // us-east-1 is the one region that rejects an explicit location constraint.
        if &*self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(&*self.region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            // Someone (another test, another replica) created it first: that is success.
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(map_sdk_error(e, None)),
        }
    }
}

/// Aborts a multipart upload whose `put` future was dropped (client disconnected, request
/// timed out), so cancelled uploads do not leave invisible parts behind. Disarmed on every path
/// that finishes or aborts the upload itself.
struct AbortOnDrop {
    span: Span,
    store: S3Store,
    key: ObjectKey,
    upload_id: Option<String>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let key = self.key.clone();
        handle.spawn(
            async move { store.abort(&key, &upload_id).await }
                .instrument(self.span.clone())
                // The dropping task's subscriber (the worker's, under `vidscope up`).
                .with_current_subscriber(),
        );
    }
}

/// What a put stored.
fn stored(size: u64, content_type: &str, etag: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        size,
        content_type: Some(content_type.to_owned()),
        etag: etag.map(str::to_owned),
        last_modified: None,
    }
}

/// Reads from `body` until `buf` holds at least one part or the body ends (returns `true`).
async fn fill(body: &mut BodyRef<'_>, buf: &mut BytesMut) -> Result<bool, StoreError> {
    while buf.len() < PART_SIZE {
        match body.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => {
                return Err(StoreError::Other(
                    anyhow::Error::new(e).context("reading the upload body"),
                ));
            }
            None => return Ok(true),
        }
    }
    Ok(false)
}

/// `bytes 0-9/100` → (0-9, 100).
fn parse_content_range(v: &str) -> Option<(ByteRange, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        ByteRange {
            start: start.trim().parse().ok()?,
            end_inclusive: end.trim().parse().ok()?,
        },
        total.trim().parse().ok()?,
    ))
}

/// For servers that answer a ranged GET with the whole object: drop what was not asked for.
fn skip_take(
    body: ByteStream,
    skip: u64,
    take: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::unfold(
        (body, skip, take),
        |(mut body, mut skip, mut take)| async move {
            loop {
                if take == 0 {
                    return None;
                }
                let mut chunk = match body.next().await? {
                    Ok(c) => c,
                    Err(e) => return Some((Err(e.into()), (body, 0, 0))),
                };
                if skip >= chunk.len() as u64 {
                    skip -= chunk.len() as u64;
                    continue;
                }
                let _ = chunk.split_to(skip as usize);
                skip = 0;
                if chunk.len() as u64 > take {
                    chunk.truncate(take as usize);
                }
                take -= chunk.len() as u64;
                return Some((Ok(chunk), (body, skip, take)));
            }
        },
    )
}

fn to_system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

/// Turns an SDK error into the port's vocabulary. Messages name the failure but never the
/// request URL, its query or credentials; for service errors they hold only status, code and
/// the server's message, not the SDK's dump of the raw response.
fn map_sdk_error<E>(err: SdkError<E, HttpResponse>, key: Option<&ObjectKey>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let context = || DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) => {
            StoreError::Unavailable(format!("S3 request timed out: {}", context()))
        }
        SdkError::DispatchFailure(_) => {
            StoreError::Unavailable(format!("cannot reach S3: {}", context()))
        }
        // The connection broke mid-response or the response was garbled: a transport problem.
        SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("bad response from S3: {}", context()))
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = err.code().unwrap_or("");
            let described = || {
                let mut m = format!("S3 answered {status}");
                if !code.is_empty() {
                    m.push(' ');
                    m.push_str(code);
                }
                if let Some(msg) = err.message().filter(|m| !m.is_empty()) {
                    m.push_str(": ");
                    m.push_str(msg);
                }
                m
            };
            match (status, code) {
                (_, "NoSuchKey" | "NotFound" | "NoSuchBucket") | (404, _) => match key {
                    Some(k) => StoreError::not_found(k),
                    None => StoreError::NotFound { key: String::new() },
                },
                (416, _) | (_, "InvalidRange") => {
                    let size = se
                        .raw()
                        .headers()
                        .get("content-range")
                        .and_then(|v| v.rsplit_once('/'))
                        .and_then(|(_, n)| n.trim().parse().ok())
                        .unwrap_or(0);
                    StoreError::RangeNotSatisfiable { size }
                }
                // 507 Insufficient Storage (MinIO's `XMinioStorageFull`).
                (507, _) | (_, "XMinioStorageFull") => StoreError::Full(described()),
                (429 | 500..=599, _) | (_, "SlowDown" | "ServiceUnavailable" | "InternalError") => {
                    StoreError::Unavailable(described())
                }
                (401 | 403, _) => StoreError::Other(
                    ServiceFailure {
                        error_type: "storage.access_denied",
                        message: format!("{}; check the S3 credentials", described()),
                    }
                    .into(),
                ),
                _ => StoreError::Other(
                    ServiceFailure {
                        error_type: "storage.error",
                        message: described(),
                    }
                    .into(),
                ),
            }
        }
        _ => StoreError::Other(anyhow::anyhow!("S3 request failed: {}", context())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((
                ByteRange {
                    start: 0,
                    end_inclusive: 9
                },
                100
            ))
        );
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}

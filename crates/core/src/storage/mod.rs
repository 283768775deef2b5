//! The object-store port: video files, thumbnails and uploads live behind one type,
//! [`ObjectStore`], whose adapter (a local directory or an S3-compatible bucket) is picked from
//! [`StoreSettings`] alone, so `vidscope up` on a laptop and a production deployment run the
//! same handlers.
//!
//! Tracing is part of the contract, not an afterthought (seed 002, ticket 2): every operation
//! runs inside a client span named after the S3 call it stands for (`s3.put_object`,
//! `s3.get_object`, ...), with `s3.bucket`, `s3.key`, `s3.size`, `storage.backend` and, on
//! failure, `error.type`/`error.class`. The local adapter emits the very same span names, so a
//! trace looks alike in both modes and dashboards need no second query.
//!
//! Bodies stream in both directions: a multi-gigabyte upload never sits in memory (the S3
//! adapter holds at most one multipart part), and a ranged read only touches the bytes asked for.

mod local;
mod s3;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tracing::{Instrument, Span};
use vidscope_telemetry::classify::{Classify, ErrorClass, classify_io, record_error};

pub use local::LocalStore;
pub use s3::S3Store;

/// A body travelling through the store. Boxed so handlers can hand it straight to an HTTP
/// response without naming the adapter-specific stream type.
pub type BoxByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// Where objects live. A plain struct (no serde) because [`crate::config`] owns how it is read
/// from the environment; this module only needs the values.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub kind: StoreKind,
}

#[derive(Clone)]
pub enum StoreKind {
    /// Embedded mode: objects are files under `root`; the API serves them itself.
    Local { root: PathBuf },
    /// An S3-compatible bucket (AWS, MinIO, s3s-fs). `endpoint: None` means AWS itself.
    S3 {
        endpoint: Option<String>,
        region: String,
        bucket: String,
        access_key_id: String,
        secret_access_key: String,
        /// MinIO and s3s-fs need `/bucket/key` URLs; AWS prefers virtual-hosted style.
        force_path_style: bool,
        /// Default lifetime of presigned GET URLs handed to players.
        presign_ttl: Duration,
    },
}

// Hand-written so that logging the configuration at start-up (a common and useful thing to do)
// can never leak the secret key.
impl fmt::Debug for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreKind::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            StoreKind::S3 {
                endpoint,
                region,
                bucket,
                access_key_id,
                secret_access_key: _,
                force_path_style,
                presign_ttl,
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("region", region)
                .field("bucket", bucket)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"[REDACTED]")
                .field("force_path_style", force_path_style)
                .field("presign_ttl", presign_ttl)
                .finish(),
        }
    }
}

/// Longest key we accept. S3 allows 1024 bytes; half of that leaves room for the local
/// adapter's suffixes within common file-system path limits.
pub const MAX_KEY_LEN: usize = 512;

/// A key that is safe for every adapter: it cannot climb out of the local root (`..`), cannot
/// be absolute, and needs no escaping in a URL or a file name. Parsing is the only way to get
/// one, so a hostile name from a request is rejected before any I/O happens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(s: &str) -> Result<ObjectKey, StoreError> {
        let invalid = |why: &str| {
            // Keys come from requests: show a bounded, escaped prefix, never the whole input.
            let shown: String = s.chars().take(64).collect();
            StoreError::InvalidKey(format!("{shown:?}: {why}"))
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() > MAX_KEY_LEN {
            return Err(invalid("longer than 512 bytes"));
        }
        if s.starts_with('/') {
            return Err(invalid("must be relative"));
        }
        for segment in s.split('/') {
            match segment {
                "" => return Err(invalid("empty path segment")),
                "." | ".." => return Err(invalid("`.` and `..` segments are not allowed")),
                _ => {}
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(invalid("allowed characters are A-Z a-z 0-9 . _ - and /"));
            }
        }
        Ok(ObjectKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ObjectKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ObjectKey {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectKey::parse(s)
    }
}

impl TryFrom<&str> for ObjectKey {
    type Error = StoreError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        ObjectKey::parse(s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size of the whole object, also for ranged reads (what `Content-Range: .../size` needs).
    pub size: u64,
    pub content_type: Option<String>,
    /// As the backend sends it (S3: quoted), ready for an HTTP `ETag` header.
    pub etag: Option<String>,
    /// Unknown right after a put: S3 does not return it, and asking would cost a request.
    pub last_modified: Option<SystemTime>,
}

/// An HTTP-style inclusive byte range. An `end_inclusive` past the end of the object is
/// clamped, as HTTP and S3 do; a `start` past the end is [`StoreError::RangeNotSatisfiable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end_inclusive: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end_inclusive - self.start + 1
    }

    /// Never true for a range the store returned; here because clippy wants it beside `len`.
    pub fn is_empty(&self) -> bool {
        self.end_inclusive < self.start
    }

    /// The range actually served from an object of `size` bytes.
    pub fn clamp_to(self, size: u64) -> Result<ByteRange, StoreError> {
        if self.start >= size {
            return Err(StoreError::RangeNotSatisfiable { size });
        }
        Ok(ByteRange {
            start: self.start,
            end_inclusive: self.end_inclusive.min(size - 1),
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.start > self.end_inclusive {
            // A caller bug, not a property of the object: no size to report.
            return Err(StoreError::Other(anyhow::anyhow!(
                "invalid byte range {}-{}: start after end",
                self.start,
                self.end_inclusive
            )));
        }
        Ok(())
    }
}

/// A readable object: metadata first (so a handler can write headers), then the bytes.
pub struct ObjectBody {
    pub meta: ObjectMeta,
    /// The range served (clamped to the object), `None` for the whole object.
    pub range: Option<ByteRange>,
    pub stream: BoxByteStream,
}

impl ObjectBody {
    /// Bytes the stream will yield.
    pub fn content_length(&self) -> u64 {
        self.range.map_or(self.meta.size, |r| r.len())
    }

    /// Collects the body. Only for small objects (thumbnails, tests): large ones should be
    /// streamed.
    pub async fn into_bytes(mut self) -> io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(usize::try_from(self.content_length()).unwrap_or(0));
        while let Some(chunk) = self.stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("invalid object key {0}")]
    InvalidKey(String),
    #[error("range not satisfiable (object is {size} bytes)")]
    RangeNotSatisfiable { size: u64 },
    /// The store cannot be reached or is overloaded; worth retrying.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// No space left for the object (a full disk or quota under the local store, a 507 from
    /// S3). Nothing was published; worth retrying once space is freed.
    #[error("object store out of space: {0}")]
    Full(String),
    #[error("object store error: {0:#}")]
    Other(anyhow::Error),
}

/// A failed S3 response that maps to no dedicated variant. Kept as a type (inside
/// [`StoreError::Other`]) so classification can still name it (`storage.access_denied`)
/// without another public variant.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ServiceFailure {
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Unavailable(_) | StoreError::Full(_) => ErrorClass::Transient,
            StoreError::Other(e) => match e.downcast_ref::<io::Error>() {
                Some(io) => classify_io(io).0,
                None => ErrorClass::Permanent,
            },
            _ => ErrorClass::Permanent,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "storage.not_found",
            StoreError::InvalidKey(_) => "storage.invalid_key",
            StoreError::RangeNotSatisfiable { .. } => "storage.range_not_satisfiable",
            StoreError::Unavailable(_) => "storage.unavailable",
            StoreError::Full(_) => "storage.full",
            StoreError::Other(e) => {
                if let Some(f) = e.downcast_ref::<ServiceFailure>() {
                    f.error_type
                } else if e.downcast_ref::<io::Error>().is_some() {
                    "storage.io"
                } else {
                    "storage.error"
                }
            }
        }
    }
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    pub fn is_out_of_space(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }

    pub(crate) fn not_found(key: &ObjectKey) -> Self {
        StoreError::NotFound {
            key: key.as_str().to_owned(),
        }
    }
}

/// `s3.size` as an attribute: OpenTelemetry integers are i64; recorded as one explicitly so
/// numeric queries on sizes work whatever the field's Rust type.
fn size_attr(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Opens a client span for one store operation. A macro because `tracing` needs span names and
/// field names as literals; every span gets the same base fields so queries can rely on them.
macro_rules! op_span {
    ($name:literal, $store:expr, $key:expr $(, $($extra:tt)+)?) => {
        tracing::info_span!(
            $name,
            otel.kind = "client",
            s3.bucket = %$store.bucket_label(),
            s3.key = $key,
            s3.size = tracing::field::Empty,
            storage.backend = $store.backend_name(),
            error.type = tracing::field::Empty,
            $($($extra)+)?
        )
    };
}

/// Runs `fut` inside `span` and marks the span failed if it fails, so no adapter can forget to.
pub(crate) async fn traced<T>(
    span: Span,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = fut.instrument(span.clone()).await;
    if let Err(e) = &result {
        record_error(&span, e.class(), e.error_type(), &e.to_string());
    }
    result
}

/// [`traced`] for an operation that answers with an object (or part of one): on success the
/// span also gets the bytes it covers as `s3.size`, which is what its latency is read against.
async fn traced_sized<T>(
    span: Span,
    size: fn(&T) -> u64,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let answer = traced(span.clone(), fut).await?;
    span.record("s3.size", size_attr(size(&answer)));
    Ok(answer)
}

/// The adapters as one cheap-to-clone value for application state. An enum rather than a trait
/// object: there are exactly two adapters, and generic `put` bodies stay possible.
#[derive(Clone, Debug)]
pub enum ObjectStore {
    Local(LocalStore),
    S3(S3Store),
}

/// A body as the adapters see it: one concrete type, so their large `put` bodies are compiled
/// once, not once per caller's stream type.
pub(crate) type BodyRef<'a> = Pin<&'a mut (dyn Stream<Item = io::Result<Bytes>> + Send + 'a)>;

impl ObjectStore {
    /// Builds the adapter the settings name. Does no I/O: use [`ObjectStore::check`] for
    /// readiness and [`ObjectStore::ensure_bucket`] on first start.
    pub fn new(settings: &StoreSettings) -> Result<Self, StoreError> {
        Ok(match &settings.kind {
            StoreKind::Local { root } => ObjectStore::Local(LocalStore::new(root.clone())),
            StoreKind::S3 { .. } => ObjectStore::S3(S3Store::new(&settings.kind)?),
        })
    }

    /// What a service opens at start-up: the adapter and, for the local store, its root
    /// directory. An S3 bucket is left to the operator (or the compose stack's init job).
    pub async fn open(settings: &StoreSettings) -> Result<Self, StoreError> {
        let store = Self::new(settings)?;
        if let ObjectStore::Local(_) = &store {
            store.ensure_bucket().await?;
        }
        Ok(store)
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            ObjectStore::Local(_) => "local",
            ObjectStore::S3(_) => "s3",
        }
    }

    pub fn bucket(&self) -> Option<&str> {
        match self {
            ObjectStore::Local(_) => None,
            ObjectStore::S3(s) => Some(s.bucket()),
        }
    }

    /// Default lifetime of presigned URLs (S3 only).
    pub fn presign_ttl(&self) -> Option<Duration> {
        match self {
            ObjectStore::Local(_) => None,
            ObjectStore::S3(s) => Some(s.presign_ttl()),
        }
    }

    /// Value of the `s3.bucket` span attribute.
    fn bucket_label(&self) -> &str {
        match self {
            ObjectStore::Local(l) => l.label(),
            ObjectStore::S3(s) => s.bucket(),
        }
    }

    /// Stores `body` under `key`, replacing any previous object. Readers never see a partial
    /// object: the local adapter renames a finished temp file, S3 publishes on completion.
    pub async fn put<S>(
        &self,
        key: &ObjectKey,
        body: S,
        content_type: &str,
    ) -> Result<ObjectMeta, StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Send,
    {
        let body: BodyRef<'_> = pin!(body);
        let span = op_span!(
            "s3.put_object",
            self,
            key.as_str(),
            s3.content_type = content_type,
            s3.multipart = tracing::field::Empty,
            s3.part_count = tracing::field::Empty
        );
        let current = span.clone();
        traced_sized(span, |meta| meta.size, async {
            match self {
                ObjectStore::Local(l) => l.put(key, body, content_type).await,
                ObjectStore::S3(s) => s.put(key, body, content_type, &current).await,
            }
        })
        .await
    }

    /// [`put`](Self::put) for a body already in memory (thumbnails, small JSON).
    pub async fn put_bytes(
        &self,
        key: &ObjectKey,
        body: Bytes,
        content_type: &str,
    ) -> Result<ObjectMeta, StoreError> {
        self.put(key, futures_util::stream::iter([Ok(body)]), content_type)
            .await
    }

    pub async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StoreError> {
        let span = op_span!("s3.head_object", self, key.as_str());
        traced_sized(span, |meta| meta.size, async {
            match self {
                ObjectStore::Local(l) => l.head(key).await,
                ObjectStore::S3(s) => s.head(key).await,
            }
        })
        .await
    }

    /// Opens `key` for reading, optionally only `range`. The span covers the request up to the
    /// first byte; streaming the body happens afterwards, at the caller's pace.
    pub async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StoreError> {
        let span = op_span!(
            "s3.get_object",
            self,
            key.as_str(),
            s3.range = tracing::field::Empty
        );
        if let Some(r) = &range {
            span.record(
                "s3.range",
                format_args!("bytes={}-{}", r.start, r.end_inclusive),
            );
        }
        traced_sized(span, ObjectBody::content_length, async {
            if let Some(r) = &range {
                r.check()?;
            }
            match self {
                ObjectStore::Local(l) => l.get(key, range).await,
                ObjectStore::S3(s) => s.get(key, range).await,
            }
        })
        .await
    }

    /// A URL a browser can fetch directly for `ttl`, so video bytes bypass the API. `None` for
    /// the local adapter, whose files the API serves itself. The URL is a bearer credential:
    /// it is never recorded on the span or in an error.
    pub async fn presign_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let span = op_span!(
            "s3.get_signed_url",
            self,
            key.as_str(),
            // i64, not u64: tracing-opentelemetry records a u64 as a string.
            s3.presign_ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
        );
        traced(span, async {
            match self {
                ObjectStore::Local(_) => Ok(None),
                ObjectStore::S3(s) => s.presign_get(key, ttl).await.map(Some),
            }
        })
        .await
    }

    /// Removes `key`. Deleting a missing object succeeds, as in S3, so retries are harmless.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let span = op_span!("s3.delete_object", self, key.as_str());
        traced(span, async {
            match self {
                ObjectStore::Local(l) => l.delete(key).await,
                ObjectStore::S3(s) => s.delete(key).await,
            }
        })
        .await
    }

    /// Readiness: can we reach the bucket (S3) or write to the root (local)? Fails fast, without
    /// retries, so a health endpoint answers promptly while the store is down.
    pub async fn check(&self) -> Result<(), StoreError> {
        let span = op_span!("s3.head_bucket", self, tracing::field::Empty);
        traced(span, async {
            match self {
                ObjectStore::Local(l) => l.check().await,
                ObjectStore::S3(s) => s.check().await,
            }
        })
        .await
    }

    /// Creates the bucket (or root directory) if missing, for first starts and tests.
    pub async fn ensure_bucket(&self) -> Result<(), StoreError> {
        match self {
            ObjectStore::Local(l) => {
                let span = op_span!("s3.create_bucket", self, tracing::field::Empty);
                traced(span, l.ensure_root()).await
            }
            ObjectStore::S3(s) => {
                let head = op_span!("s3.head_bucket", self, tracing::field::Empty);
                match traced(head, s.head_bucket()).await {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        let span = op_span!("s3.create_bucket", self, tracing::field::Empty);
                        traced(span, s.create_bucket()).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_keys_parse() {
        for key in [
            "a",
            "videos/abc123/original.mp4",
            "thumbs/v-1_2.3.jpg",
            ".hidden",
            "a..b",
            "...",
            "UPPER/lower/0-9_.-",
            &"k".repeat(MAX_KEY_LEN),
        ] {
            let parsed = ObjectKey::parse(key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
            assert_eq!(parsed.as_str(), key);
        }
    }

    #[test]
    fn bad_keys_are_rejected() {
        for key in [
            "",
            "/abs",
            "a/",
            "a//b",
            ".",
            "..",
            "../etc/passwd",
            "a/../b",
            "a/./b",
            "a\\b",
            "a b",
            "a?x=1",
            "a#b",
            "a%2e",
            "é",
            "a\0b",
            "a\nb",
            "~tmp",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            match ObjectKey::parse(key) {
                Err(StoreError::InvalidKey(_)) => {}
                other => panic!("{key:?} should be an invalid key, got {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_key_message_is_bounded() {
        let long = "x".repeat(10_000) + "/..";
        let msg = ObjectKey::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn ranges_clamp_like_http() {
        let r = ByteRange {
            start: 5,
            end_inclusive: 100,
        };
        assert_eq!(
            r.clamp_to(10).unwrap(),
            ByteRange {
                start: 5,
                end_inclusive: 9
            }
        );
        assert!(matches!(
            r.clamp_to(5),
            Err(StoreError::RangeNotSatisfiable { size: 5 })
        ));
        assert!(
            ByteRange {
                start: 3,
                end_inclusive: 2
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let s = StoreSettings {
            kind: StoreKind::S3 {
                endpoint: None,
                region: "us-east-1".into(),
                bucket: "b".into(),
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI-very-secret".into(),
                force_path_style: true,
                presign_ttl: Duration::from_secs(60),
            },
        };
        let dbg = format!("{s:?} {s:#?}");
        assert!(!dbg.contains("very-secret"), "{dbg}");
        assert!(dbg.contains("AKIDEXAMPLE"));
    }

    #[test]
    fn classification() {
        let nf = StoreError::NotFound { key: "k".into() };
        assert_eq!(
            (nf.class(), nf.error_type()),
            (ErrorClass::Permanent, "storage.not_found")
        );
        let un = StoreError::Unavailable("refused".into());
        assert_eq!(
            (un.class(), un.error_type()),
            (ErrorClass::Transient, "storage.unavailable")
        );
        let io = StoreError::Other(io::Error::from(io::ErrorKind::TimedOut).into());
        assert_eq!(
            (io.class(), io.error_type()),
            (ErrorClass::Transient, "storage.io")
        );
        let denied = StoreError::Other(
            ServiceFailure {
                error_type: "storage.access_denied",
                message: "access denied".into(),
            }
            .into(),
        );
        assert_eq!(denied.error_type(), "storage.access_denied");
        assert_eq!(denied.class(), ErrorClass::Permanent);
    }
}

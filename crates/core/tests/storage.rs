//! The object-store contract, run against both adapters: the local directory and S3 on a real
//! S3-compatible server (s3s-fs). A behaviour the API relies on must hold in both modes, so each
//! case is one function and `both!` runs it twice.

// The testkit's public items, reached from this test crate only.
#[allow(dead_code, unreachable_pub)]
#[path = "../../testkit/src/s3.rs"]
mod s3_server;

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidscope_core::storage::{
    ByteRange, ObjectKey, ObjectStore, StoreError, StoreKind, StoreSettings,
};

use s3_server::S3TestServer;

const MIB: usize = 1024 * 1024;

/// A store plus whatever must live as long as it (the local root's temp dir).
struct Fixture {
    store: ObjectStore,
    _dir: Option<tempfile::TempDir>,
}

async fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        kind: StoreKind::Local {
            root: dir.path().join("objects"),
        },
    };
    let store = ObjectStore::new(&settings).unwrap();
    store.ensure_bucket().await.unwrap();
    Fixture {
        store,
        _dir: Some(dir),
    }
}

async fn s3() -> Fixture {
    let settings = S3TestServer::get().fresh_bucket().await;
    Fixture {
        store: ObjectStore::new(&settings).unwrap(),
        _dir: None,
    }
}

/// Runs each named case against both adapters as `<case>::local` and `<case>::s3`.
macro_rules! both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test]
            async fn local() {
                let f = super::local().await;
                super::cases::$case(&f.store).await;
            }

            #[tokio::test]
            async fn s3() {
                let f = super::s3().await;
                super::cases::$case(&f.store).await;
            }
        }
    )*};
}

both!(
    roundtrip,
    ranged_reads,
    missing_objects,
    large_body_streams_in_parts,
    empty_object,
    failed_upload_leaves_nothing,
    check_succeeds,
    presign,
    spans_look_alike,
);

fn key(s: &str) -> ObjectKey {
    ObjectKey::parse(s).unwrap()
}

/// Deterministic, non-repeating at part boundaries: a part written at the wrong offset or
/// twice changes the bytes seen there.
fn pattern_byte(offset: u64) -> u8 {
    ((offset % 251) ^ (offset / 4099 % 256)) as u8
}

/// A `len`-byte body produced lazily in odd-sized chunks (never the whole body in memory), so
/// part splitting is exercised with chunks that straddle part boundaries.
fn pattern_stream(
    len: u64,
    chunk: u64,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::iter((0..len.div_ceil(chunk)).map(move |i| {
        let start = i * chunk;
        let end = (start + chunk).min(len);
        Ok((start..end).map(pattern_byte).collect::<Vec<u8>>().into())
    }))
}

fn chunks(parts: &[&'static [u8]]) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p)))
            .collect::<Vec<_>>(),
    )
}

async fn read_all(store: &ObjectStore, k: &ObjectKey, range: Option<ByteRange>) -> Bytes {
    store
        .get(k, range)
        .await
        .unwrap_or_else(|e| panic!("get {k} {range:?}: {e}"))
        .into_bytes()
        .await
        .unwrap()
}

fn range(start: u64, end_inclusive: u64) -> Option<ByteRange> {
    Some(ByteRange {
        start,
        end_inclusive,
    })
}

mod cases {
    use super::*;

    pub(crate) async fn roundtrip(store: &ObjectStore) {
        let k = key("videos/v1/original.mp4");
        let meta = store
            .put(&k, chunks(&[b"hello ", b"object ", b"store"]), "video/mp4")
            .await
            .unwrap();
        assert_eq!(meta.size, 18);
        assert_eq!(meta.content_type.as_deref(), Some("video/mp4"));

        let head = store.head(&k).await.unwrap();
        assert_eq!(head.size, 18);
        assert_eq!(head.content_type.as_deref(), Some("video/mp4"));
        assert!(head.etag.is_some(), "{head:?}");
        assert!(head.last_modified.is_some(), "{head:?}");

        let body = store.get(&k, None).await.unwrap();
        assert_eq!(body.meta.size, 18);
        assert_eq!(body.range, None);
        assert_eq!(body.content_length(), 18);
        assert_eq!(body.meta.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(&body.into_bytes().await.unwrap()[..], b"hello object store");

        // Overwrite replaces content and type.
        store
            .put_bytes(&k, Bytes::from_static(b"v2"), "text/plain")
            .await
            .unwrap();
        let body = store.get(&k, None).await.unwrap();
        assert_eq!(body.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(&body.into_bytes().await.unwrap()[..], b"v2");

        store.delete(&k).await.unwrap();
        assert!(matches!(
            store.head(&k).await,
            Err(StoreError::NotFound { .. })
        ));
        // Deleting again is fine: retries of a delete must not fail.
        store.delete(&k).await.unwrap();
    }

    pub(crate) async fn ranged_reads(store: &ObjectStore) {
        let k = key("r/object.bin");
        let data: Vec<u8> = (0..1000u64).map(pattern_byte).collect();
        store
            .put_bytes(&k, Bytes::from(data.clone()), "application/octet-stream")
            .await
            .unwrap();

        for (start, end) in [(0, 0), (0, 9), (100, 199), (998, 999), (999, 999)] {
            let body = store.get(&k, range(start, end)).await.unwrap();
            assert_eq!(body.meta.size, 1000, "total size for {start}-{end}");
            assert_eq!(body.range, range(start, end));
            assert_eq!(body.content_length(), end - start + 1);
            let got = body.into_bytes().await.unwrap();
            assert_eq!(
                &got[..],
                &data[start as usize..=end as usize],
                "{start}-{end}"
            );
        }

        // An end past the object is clamped, as HTTP and S3 do.
        let body = store.get(&k, range(990, 5000)).await.unwrap();
        assert_eq!(body.range, range(990, 999));
        assert_eq!(&body.into_bytes().await.unwrap()[..], &data[990..]);

        for start in [1000, 1001, 5000] {
            match store.get(&k, range(start, start + 10)).await {
                Err(StoreError::RangeNotSatisfiable { size }) => assert_eq!(size, 1000),
                other => panic!("start {start}: expected RangeNotSatisfiable, got {other:?}"),
            }
        }
        // Start after end is a caller bug, refused before any request.
        assert!(store.get(&k, range(10, 5)).await.is_err());
    }

    pub(crate) async fn missing_objects(store: &ObjectStore) {
        let k = key("nope/missing.mp4");
        match store.get(&k, None).await {
            Err(StoreError::NotFound { key }) => assert_eq!(key, "nope/missing.mp4"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert!(matches!(
            store.get(&k, range(0, 10)).await,
            Err(StoreError::NotFound { .. })
        ));
        match store.head(&k).await {
            Err(StoreError::NotFound { key }) => assert_eq!(key, "nope/missing.mp4"),
            other => panic!("expected NotFound, got {other:?}"),
        }
        // Below an existing object there is nothing.
        store
            .put_bytes(&key("dir/file"), Bytes::from_static(b"x"), "text/plain")
            .await
            .unwrap();
        let r = store.get(&key("dir/file/x"), None).await;
        assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");
        // A prefix of an existing object is not an object either. Only checked locally:
        // s3s-fs keeps prefixes as directories and answers 500 for them (AWS answers 404).
        if store.backend_name() == "local" {
            let r = store.head(&key("dir")).await;
            assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");
            let r = store.get(&key("dir"), None).await;
            assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");
        }
    }

    /// 17 MiB: two full 8 MiB parts and a short one on S3; the same streaming path locally.
    pub(crate) async fn large_body_streams_in_parts(store: &ObjectStore) {
        const LEN: u64 = 17 * MIB as u64;
        let k = key("big/upload.bin");
        let meta = store
            .put(
                &k,
                pattern_stream(LEN, 1_000_003),
                "application/octet-stream",
            )
            .await
            .unwrap();
        assert_eq!(meta.size, LEN);
        assert_eq!(store.head(&k).await.unwrap().size, LEN);

        // Across the first part boundary, and across the second into the short last part.
        for (start, end) in [
            (8 * MIB as u64 - 10, 8 * MIB as u64 + 9),
            (16 * MIB as u64 - 3, 16 * MIB as u64 + 2),
            (LEN - 5, LEN - 1),
        ] {
            let got = read_all(store, &k, range(start, end)).await;
            let want: Vec<u8> = (start..=end).map(pattern_byte).collect();
            assert_eq!(&got[..], &want[..], "range {start}-{end}");
        }

        // The whole body, compared as it streams.
        let mut body = store.get(&k, None).await.unwrap();
        assert_eq!(body.content_length(), LEN);
        let mut offset = 0u64;
        while let Some(chunk) = body.stream.next().await {
            let chunk = chunk.unwrap();
            for (i, b) in chunk.iter().enumerate() {
                let at = offset + i as u64;
                assert_eq!(*b, pattern_byte(at), "byte {at}");
            }
            offset += chunk.len() as u64;
        }
        assert_eq!(offset, LEN);
    }

    pub(crate) async fn empty_object(store: &ObjectStore) {
        let k = key("empty");
        let meta = store.put(&k, chunks(&[]), "text/plain").await.unwrap();
        assert_eq!(meta.size, 0);
        assert_eq!(store.head(&k).await.unwrap().size, 0);
        assert!(read_all(store, &k, None).await.is_empty());
        assert!(matches!(
            store.get(&k, range(0, 0)).await,
            Err(StoreError::RangeNotSatisfiable { size: 0 })
        ));
    }

    /// A body that breaks mid-way (client disconnect) must not leave a partial object, neither
    /// a small one nor a multipart one.
    pub(crate) async fn failed_upload_leaves_nothing(store: &ObjectStore) {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        for (name, good) in [("small", 1000u64), ("multipart", 9 * MIB as u64)] {
            let k = key(&format!("broken/{name}"));
            let body = pattern_stream(good, 64 * 1024).chain(futures_util::stream::iter([Err(
                io::Error::new(io::ErrorKind::ConnectionReset, "client went away"),
            )]));
            let err = store
                .put(&k, body, "video/mp4")
                .await
                .expect_err("a broken body must fail the put");
            assert!(matches!(err, StoreError::Other(_)), "{err:?}");
            assert!(
                matches!(store.head(&k).await, Err(StoreError::NotFound { .. })),
                "{name}: partial object visible"
            );
        }
        let spans = capture.spans();
        let count = |name: &str| spans.iter().filter(|s| s.name == name).count();
        if store.backend_name() == "s3" {
            // The multipart upload was started, then aborted rather than left to linger.
            assert_eq!(
                count("s3.create_multipart_upload"),
                1,
                "{:?}",
                names(&spans)
            );
            assert_eq!(count("s3.abort_multipart_upload"), 1, "{:?}", names(&spans));
            assert_eq!(
                count("s3.complete_multipart_upload"),
                0,
                "{:?}",
                names(&spans)
            );
        }
        if let ObjectStore::Local(l) = store {
            let leftovers: Vec<_> = std::fs::read_dir(l.root().join("broken"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(
                leftovers.is_empty(),
                "temp files left behind: {leftovers:?}"
            );
        }
    }

    pub(crate) async fn check_succeeds(store: &ObjectStore) {
        store.check().await.unwrap();
        // Idempotent: a second first start must not fail.
        store.ensure_bucket().await.unwrap();
        store.check().await.unwrap();
    }

    /// S3 hands out a URL a browser can use without our credentials; the local store serves
    /// files through the API instead and returns no URL.
    pub(crate) async fn presign(store: &ObjectStore) {
        let k = key("videos/v2/720p.mp4");
        store
            .put_bytes(&k, Bytes::from_static(b"presigned bytes"), "video/mp4")
            .await
            .unwrap();
        let url = store
            .presign_get(&k, Duration::from_secs(60))
            .await
            .unwrap();
        let ObjectStore::S3(_) = store else {
            assert_eq!(url, None);
            return;
        };
        let url = url.expect("S3 presigns");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        assert!(url.contains("videos/v2/720p.mp4"), "{url}");

        let (status, body) = http_get(&url).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(&body[..], b"presigned bytes");

        let (status, _) = http_get(&tamper_signature(&url)).await;
        assert_eq!(status, 403, "a tampered signature must be refused");
    }

    /// Traces must look the same in both modes: same span names, same attributes.
    pub(crate) async fn spans_look_alike(store: &ObjectStore) {
        let capture = Capture::default();
        let _guard = tracing::subscriber::set_default(capture.clone());
        let backend = store.backend_name();

        let k = key("spans/a.bin");
        store
            .put(
                &k,
                pattern_stream(17 * MIB as u64, 3 * MIB as u64),
                "video/mp4",
            )
            .await
            .unwrap();
        store.head(&k).await.unwrap();
        read_all(store, &k, range(0, 99)).await;
        let url = store
            .presign_get(&k, Duration::from_secs(60))
            .await
            .unwrap();
        store.delete(&k).await.unwrap();
        store.check().await.unwrap();
        let _ = store.head(&key("spans/missing")).await;

        let spans = capture.spans();
        let find = |name: &str| {
            spans
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no span {name}; got {:?}", names(&spans)))
        };
        for name in [
            "s3.put_object",
            "s3.head_object",
            "s3.get_object",
            "s3.get_signed_url",
            "s3.delete_object",
            "s3.head_bucket",
        ] {
            let s = find(name);
            assert_eq!(s.field("otel.kind"), Some("client"), "{name}");
            assert_eq!(s.field("storage.backend"), Some(backend), "{name}");
            assert!(
                s.field("s3.bucket").is_some_and(|b| !b.is_empty()),
                "{name}"
            );
        }
        let put = find("s3.put_object");
        assert_eq!(put.field("s3.key"), Some("spans/a.bin"));
        assert_eq!(put.field("s3.size"), Some("17825792"));
        assert_eq!(find("s3.head_object").field("s3.size"), Some("17825792"));
        assert_eq!(find("s3.get_object").field("s3.size"), Some("100"));
        assert_eq!(find("s3.get_object").field("s3.range"), Some("bytes=0-99"));

        if backend == "s3" {
            assert_eq!(put.field("s3.multipart"), Some("true"));
            assert_eq!(put.field("s3.part_count"), Some("3"));
            let children = |name: &str| {
                spans
                    .iter()
                    .filter(|s| s.name == name && s.parent == Some(put.id))
                    .count()
            };
            assert_eq!(children("s3.create_multipart_upload"), 1);
            assert_eq!(children("s3.upload_part"), 3);
            assert_eq!(children("s3.complete_multipart_upload"), 1);
            // The URL is a credential: nothing recorded anywhere may contain it.
            let url = url.expect("S3 presigns");
            let query = url.split_once('?').unwrap().1;
            for s in &spans {
                for (f, v) in &s.fields {
                    assert!(
                        !v.contains(query) && !v.contains("X-Amz-Signature"),
                        "span {} field {f} leaks the presigned URL: {v}",
                        s.name
                    );
                }
            }
        }
    }
}

#[test]
fn invalid_keys_never_reach_a_store() {
    // The store API takes only parsed keys, so a hostile name cannot even be expressed as a
    // request; here we check the parser refuses the classic escapes.
    for bad in [
        "../secrets",
        "/etc/passwd",
        "a/../../b",
        "a//b",
        "a/./b",
        "",
        "a b",
        "a\\b",
    ] {
        assert!(
            matches!(ObjectKey::parse(bad), Err(StoreError::InvalidKey(_))),
            "{bad:?} must be rejected"
        );
    }
}

#[tokio::test]
async fn local_layout_is_plain_files() {
    let f = local().await;
    let ObjectStore::Local(l) = &f.store else {
        unreachable!()
    };
    f.store
        .put_bytes(
            &key("videos/x/thumb.jpg"),
            Bytes::from_static(b"jpg"),
            "image/jpeg",
        )
        .await
        .unwrap();
    let path = l.root().join("videos/x/thumb.jpg");
    assert_eq!(std::fs::read(&path).unwrap(), b"jpg");
    assert_eq!(f.store.backend_name(), "local");
    assert_eq!(f.store.bucket(), None);
}

#[tokio::test]
async fn local_check_fails_without_a_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::new(&StoreSettings {
        kind: StoreKind::Local {
            root: dir.path().join("not-created"),
        },
    })
    .unwrap();
    assert!(matches!(
        store.check().await,
        Err(StoreError::Unavailable(_))
    ));
    store.ensure_bucket().await.unwrap();
    store.check().await.unwrap();
}

#[tokio::test]
async fn s3_check_fails_fast_when_the_endpoint_is_down() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped here: the port is closed
    let secret = "do-not-leak-this-secret";
    let store = ObjectStore::new(&StoreSettings {
        kind: StoreKind::S3 {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: "us-east-1".into(),
            bucket: "videos".into(),
            access_key_id: "AKIDTEST".into(),
            secret_access_key: secret.into(),
            force_path_style: true,
            presign_ttl: Duration::from_secs(60),
        },
    })
    .unwrap();
    assert_eq!(store.backend_name(), "s3");
    assert_eq!(store.bucket(), Some("videos"));
    let started = Instant::now();
    let err = store.check().await.expect_err("nothing listens there");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{store:?}").contains(secret));

    // Object operations classify the same way (after the SDK's retries).
    let err = store.head(&key("a")).await.expect_err("down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn s3_wrong_credentials_are_not_reported_as_missing_objects() {
    let server = S3TestServer::get();
    let good = server.fresh_bucket().await;
    let StoreKind::S3 { bucket, .. } = &good.kind else {
        unreachable!()
    };
    let mut bad = server.settings(bucket);
    if let StoreKind::S3 {
        secret_access_key, ..
    } = &mut bad.kind
    {
        *secret_access_key = "wrong-secret".into();
    }
    let store = ObjectStore::new(&bad).unwrap();
    let err = store.get(&key("a"), None).await.expect_err("bad signature");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-secret"), "{err}");
}

#[tokio::test]
async fn s3_ranges_cross_part_boundaries_of_a_fresh_server_bucket() {
    // Two buckets on one server stay apart.
    let server = S3TestServer::get();
    let a = ObjectStore::new(&server.fresh_bucket().await).unwrap();
    let b = ObjectStore::new(&server.fresh_bucket().await).unwrap();
    a.put_bytes(&key("k"), Bytes::from_static(b"in a"), "text/plain")
        .await
        .unwrap();
    assert!(matches!(
        b.head(&key("k")).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_ne!(a.bucket(), b.bucket());
}

// ---------------------------------------------------------------- helpers

/// Replaces the last hex digit of the signature: same length, wrong value.
fn tamper_signature(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let end = url[at..].find('&').map_or(url.len(), |i| at + i);
    let mut out = url.to_owned();
    let last = &url[end - 1..end];
    out.replace_range(end - 1..end, if last == "0" { "1" } else { "0" });
    out
}

/// A minimal HTTP/1.1 GET over a raw TCP socket (no HTTP client crate in core's dev-deps):
/// enough for `Content-Length` and chunked responses from a loopback server.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("plain http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size_str = String::from_utf8_lossy(&rest[..line_end]);
            let size =
                usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    (status, body)
}

fn names(spans: &[SpanRec]) -> Vec<&str> {
    spans.iter().map(|s| s.name).collect()
}

#[derive(Debug, Clone)]
struct SpanRec {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: Vec<(String, String)>,
}

impl SpanRec {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Records spans, their parents and fields: the minimum to assert on span names and
/// attributes without an OpenTelemetry pipeline (core has no tracing-subscriber).
#[derive(Clone, Default)]
struct Capture {
    inner: Arc<Mutex<CaptureState>>,
}

#[derive(Default)]
struct CaptureState {
    spans: Vec<SpanRec>,
    stack: Vec<u64>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Capture {
    fn spans(&self) -> Vec<SpanRec> {
        self.inner.lock().unwrap().spans.clone()
    }
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    /// Marked: a `u64` field is not an OpenTelemetry integer (i64), so a numeric
    /// attribute recorded as `u64` must not compare equal to the plain number.
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0
            .push((field.name().to_owned(), format!("{value} (u64)")));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut state = self.inner.lock().unwrap();
        let parent = if attrs.is_contextual() {
            state.stack.last().copied()
        } else {
            attrs.parent().map(|p| p.into_u64())
        };
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        state.spans.push(SpanRec {
            id,
            name: attrs.metadata().name(),
            parent,
            fields,
        });
        tracing::span::Id::from_u64(id)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut state = self.inner.lock().unwrap();
        if let Some(s) = state.spans.iter_mut().find(|s| s.id == span.into_u64()) {
            values.record(&mut Fields(&mut s.fields));
        }
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, span: &tracing::span::Id) {
        self.inner.lock().unwrap().stack.push(span.into_u64());
    }

    fn exit(&self, span: &tracing::span::Id) {
        let mut state = self.inner.lock().unwrap();
        if let Some(pos) = state.stack.iter().rposition(|id| *id == span.into_u64()) {
            state.stack.remove(pos);
        }
    }
}

/// A local put whose future is dropped half-way (the client gone, the API's shutdown deadline)
/// removes its temp file: no error path sees a drop.
#[tokio::test]
async fn a_dropped_local_put_leaves_no_temp_file() {
    let f = local().await;
    let dir = f._dir.as_ref().unwrap().path().join("objects/dropped");
    let in_dir = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // 1 MiB, then a body that never ends.
    let body = pattern_stream(MIB as u64, 64 * 1024).chain(futures_util::stream::pending());
    let k = key("dropped/video.mp4");
    let mut put = Box::pin(f.store.put(&k, body, "video/mp4"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut put)
            .await
            .is_err(),
        "the put cannot finish"
    );
    let writing = in_dir();
    assert!(
        writing.len() == 1 && writing[0].starts_with("video.mp4~tmp-"),
        "{writing:?}"
    );
    drop(put);
    assert_eq!(in_dir(), Vec::<String>::new());
}

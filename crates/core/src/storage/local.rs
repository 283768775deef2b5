//! The embedded adapter: objects are plain files under a root directory, so `vidscope up` needs
//! no object-store server and an operator can inspect uploads with `ls`.
//!
//! Layout: the object `videos/a/original.mp4` is the file `<root>/videos/a/original.mp4`; its
//! content type sits beside it in `original.mp4~meta`, and uploads in progress are
//! `original.mp4~tmp-<uuid>`. Keys cannot contain `~` ([`ObjectKey`]), so these names never
//! collide with an object.
//!
//! One difference from S3 is unavoidable: a directory cannot also be a file, so `a` and `a/b`
//! cannot both exist. Writing the second one fails with a storage error.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::fs::{self, File};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{BodyRef, BoxByteStream, ByteRange, ObjectBody, ObjectKey, ObjectMeta, StoreError};

const META_SUFFIX: &str = "~meta";
const TMP_SUFFIX: &str = "~tmp-";
/// Read size for streaming files out: large enough for few syscalls, small enough that many
/// concurrent players do not pin much memory.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: Arc<PathBuf>,
    /// `s3.bucket` on spans: the root directory's name, so traces from several data dirs differ.
    label: Arc<str>,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        let label = root
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("local")
            .into();
        LocalStore {
            root: Arc::new(root),
            label,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        // Safe to join: a parsed key is relative and has no `.`/`..` segments.
        self.root.join(key.as_str())
    }

    pub(crate) async fn put(
        &self,
        key: &ObjectKey,
        mut body: BodyRef<'_>,
        content_type: &str,
    ) -> Result<ObjectMeta, StoreError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)
            .await
            .map_err(|e| write_error(key, "creating its directory", e))?;

        let tmp = TempPath::beside(&path);
        let written = async {
            // Created synchronously, one quick `open`: a create still pending on the blocking
            // pool when this future is dropped would land after the guard's removal and stay.
            let mut file = File::from_std(std::fs::File::create(tmp.path())?);
            let mut total = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await?;
                total += chunk.len() as u64;
            }
            // Durable before visible: after the rename, readers must find the whole file even
            // if the machine crashes.
            file.sync_all().await?;
            io::Result::Ok(total)
        }
        .await;
        // On every early return below, dropping `tmp` removes the temp file.
        let size = written.map_err(|e| write_error(key, "writing it", e))?;
        write_atomically(&sibling(&path, META_SUFFIX), content_type.as_bytes())
            .await
            .map_err(|e| write_error(key, "writing its metadata", e))?;
        fs::rename(tmp.path(), &path)
            .await
            .map_err(|e| write_error(key, "publishing it", e))?;
        tmp.published();
        let md = fs::metadata(&path).await.map_err(|e| read_error(key, e))?;
        Ok(ObjectMeta {
            size,
            content_type: Some(content_type.to_owned()),
            etag: Some(etag(&md)),
            last_modified: md.modified().ok(),
        })
    }

    pub(crate) async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StoreError> {
        let path = self.path(key);
        let md = fs::metadata(&path).await.map_err(|e| read_error(key, e))?;
        if !md.is_file() {
            return Err(StoreError::not_found(key));
        }
        Ok(self.meta(&path, &md).await)
    }

    pub(crate) async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StoreError> {
        let path = self.path(key);
        let mut file = File::open(&path).await.map_err(|e| read_error(key, e))?;
        // Metadata of the open file, not the path: a concurrent put may rename a new file into
        // place, and size, etag and bytes must all describe the same version.
        let md = file.metadata().await.map_err(|e| read_error(key, e))?;
        if !md.is_file() {
            return Err(StoreError::not_found(key));
        }
        let meta = self.meta(&path, &md).await;
        let range = range.map(|r| r.clamp_to(meta.size)).transpose()?;
        let (start, len) = range.map_or((0, meta.size), |r| (r.start, r.len()));
        if start > 0 {
            file.seek(io::SeekFrom::Start(start))
                .await
                .map_err(|e| read_error(key, e))?;
        }
        Ok(ObjectBody {
            meta,
            range,
            stream: file_stream(file, len),
        })
    }

    pub(crate) async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let path = self.path(key);
        for p in [sibling(&path, META_SUFFIX), path] {
            match fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(write_error(key, "deleting it", e)),
            }
        }
        Ok(())
    }

    /// Writable is what matters (uploads land here), so probe with a real file.
    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        let unavailable = |what: &str, e: io::Error| {
            StoreError::Unavailable(format!(
                "local store root {} {what}: {e}",
                self.root.display()
            ))
        };
        let md = fs::metadata(&*self.root)
            .await
            .map_err(|e| unavailable("is not accessible", e))?;
        if !md.is_dir() {
            return Err(StoreError::Unavailable(format!(
                "local store root {} is not a directory",
                self.root.display()
            )));
        }
        let probe = self
            .root
            .join(format!("~probe-{}", uuid::Uuid::new_v4().simple()));
        fs::write(&probe, b"")
            .await
            .map_err(|e| unavailable("is not writable", e))?;
        let _ = fs::remove_file(&probe).await;
        Ok(())
    }

    pub(crate) async fn ensure_root(&self) -> Result<(), StoreError> {
        fs::create_dir_all(&*self.root).await.map_err(|e| {
            StoreError::Other(
                anyhow::Error::new(e)
                    .context(format!("creating local store root {}", self.root.display())),
            )
        })
    }

    async fn meta(&self, path: &Path, md: &std::fs::Metadata) -> ObjectMeta {
        // A missing sidecar (file copied in by hand) just means "type unknown".
        let content_type = fs::read_to_string(sibling(path, META_SUFFIX))
            .await
            .ok()
            .filter(|s| !s.is_empty());
        ObjectMeta {
            size: md.len(),
            content_type,
            etag: Some(etag(md)),
            last_modified: md.modified().ok(),
        }
    }
}

/// `<path><suffix>` in the same directory, so a rename onto `path` stays atomic.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes `bytes` to `path` through a temp file and a rename, as one job on the blocking pool:
/// a caller that stops waiting cannot leave it half done (no temp file behind).
async fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        let tmp = TempPath::beside(&path);
        std::fs::write(tmp.path(), bytes)?;
        std::fs::rename(tmp.path(), &path)?;
        tmp.published();
        Ok(())
    })
    .await
    .map_err(io::Error::other)?
}

/// A `~tmp-` file being written, removed when this is dropped unless it was published: on an
/// error, and also when the put's future is dropped half-way (a client gone, the server's
/// shutdown deadline), which no error path sees. The removal is one blocking `unlink`, only on
/// the failure path.
struct TempPath(Option<PathBuf>);

impl TempPath {
    fn beside(path: &Path) -> Self {
        TempPath(Some(sibling(
            path,
            &format!("{TMP_SUFFIX}{}", uuid::Uuid::new_v4().simple()),
        )))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// Renamed into place: nothing to remove any more.
    fn published(mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A weak validator from size and mtime: cheap (no hashing of gigabyte files) and it changes
/// whenever a put replaces the file.
fn etag(md: &std::fs::Metadata) -> String {
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!("\"{:x}-{:x}\"", md.len(), mtime.as_nanos())
}

/// `ENOTDIR` (a path component is a file) means the object is not there either.
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn read_error(key: &ObjectKey, e: io::Error) -> StoreError {
    if is_missing(&e) {
        StoreError::not_found(key)
    } else {
        StoreError::Other(anyhow::Error::new(e).context(format!("reading object {key}")))
    }
}

fn write_error(key: &ObjectKey, doing: &str, e: io::Error) -> StoreError {
    if matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) {
        return StoreError::Full(format!("storing object {key}: {doing}: {e}"));
    }
    let hint = match e.kind() {
        // `a/b` exists and we write `a`, or the reverse (see the module docs).
        io::ErrorKind::NotADirectory
        | io::ErrorKind::IsADirectory
        | io::ErrorKind::AlreadyExists => {
            " (a file and a directory cannot share a name in the local store)"
        }
        _ => "",
    };
    StoreError::Other(anyhow::Error::new(e).context(format!("storing object {key}: {doing}{hint}")))
}

/// Streams `len` bytes from the file's current position.
fn file_stream(file: File, len: u64) -> BoxByteStream {
    let state = (file.take(len), len);
    Box::pin(futures_util::stream::try_unfold(
        state,
        |(mut reader, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let cap = usize::try_from(remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
            let mut buf = BytesMut::with_capacity(cap);
            let n = reader.read_buf(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object file shrank while being read",
                ));
            }
            let chunk: Bytes = buf.freeze();
            Ok(Some((chunk, (reader, remaining - n as u64))))
        },
    ))
}

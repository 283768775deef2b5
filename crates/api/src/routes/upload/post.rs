//! `POST /api/upload`: an admin sends `multipart/form-data` with a `file` part (and optionally
//! a `title` part); the file streams from the socket into the object store, then the video row
//! is created with status `uploaded` for the worker to pick up. Answers 201 with the video.
//!
//! Never buffered: the body is read chunk by chunk and handed to [`ObjectStore::put`], which
//! writes a temp file or an 8 MiB-part S3 multipart upload. The router exempts this route from
//! the global 1 MiB body limit and the 30 s request timeout; the limit that applies is
//! `upload_max_bytes`, enforced here: at once when `Content-Length` announces more (plus
//! [`FORM_OVERHEAD`] for the form), else while streaming (413). The type is decided by the first
//! bytes, not the name or the declared type (415). Any rejection leaves nothing behind: a put
//! that fails is never published, and an object whose row cannot be created is deleted. The
//! same holds for an upload still running when the shutdown deadline passes (503
//! `shutting_down`, see [`crate::shutdown`]).
//!
//! Telemetry (seed 002, ticket 3): an `api.upload` span with the file's metadata as attributes
//! and an `upload.progress` event every `upload_progress_every` bytes; the store adds its own
//! `s3.*` spans (multipart create/part/complete) under it.
//!
//! [`ObjectStore::put`]: vidscope_core::storage::ObjectStore::put

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use opentelemetry::KeyValue;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use vidscope_core::auth::User;
use vidscope_core::jobs::NewJob;
use vidscope_core::jobs::probe::ProbePayload;
use vidscope_core::storage::{ObjectKey, ObjectMeta};
use vidscope_core::videos::{self, Filename, NewVideo, VideoId};
use vidscope_telemetry::SpanExt as _;

use super::sniff::{self, ALLOWED, SNIFF_LEN};
use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::openapi::responses::{AdminOnly, StoreFull, Unauthorized};
use crate::routes::videos::{VideoBody, invalid_filename, store_error};
use crate::state::AppState;

/// Longest title, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// What the form may add to the file: boundaries, part headers and the title. A body declared
/// longer than `upload_max_bytes` plus this cannot carry a file within the limit.
pub const FORM_OVERHEAD: u64 = 64 * 1024;

/// The multipart form: parts are read in order, `file` streamed to the store.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the form; the handler streams the parts itself"
)]
struct UploadForm {
    /// The video; its type is decided by its first bytes (MP4, QuickTime, WebM or Matroska),
    /// not by the declared type. The part's `filename` must be a valid video file name (see
    /// the `Filename` schema) that no other video has.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Defaults to the file's name without its extension. At most 200 characters (white space
    /// around it is dropped first) and no control characters.
    #[schema(max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    title: Option<String>,
}

/// Upload a video (admins)
#[utoipa::path(
    post, path = "/api/upload", operation_id = "upload",
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored; the video row has status `uploaded`", body = VideoBody,
            headers(("Location" = String, description = "`/api/videos/{id}`"))),
        (status = 400, description = "Malformed form, no `file` part, a repeated or unknown part, bad filename or title", body = ErrorBody),
        (status = 408, description = "The client sent nothing for `VIDSCOPE_UPLOAD_IDLE_SECS`; nothing was kept", body = ErrorBody),
        (status = 413, description = "Over the configured upload size limit; refused before the body is read when `Content-Length` announces more than the limit plus 64 KiB for the form", body = ErrorBody),
        (status = 415, description = "Not multipart/form-data, or not an allowed video type", body = ErrorBody),
        (status = 503, description = "The database or object store is unavailable or busy for a moment, or the server is shutting down and abandoned the upload (`shutting_down`); nothing was kept: retry after `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        Unauthorized, AdminOnly, StoreFull,
    )
)]
pub async fn post(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let span = tracing::info_span!(
        "api.upload",
        upload.filename = Empty,
        upload.size = Empty,
        upload.content_type = Empty,
        upload.declared_content_type = Empty,
        upload.rejected = Empty,
        video.id = Empty,
        storage.backend = state.store.backend_name(),
    );
    upload(&state, &admin, &headers, multipart, &span)
        .instrument(span.clone())
        .await
}

/// The object written so far, so a later failure can remove it.
struct Stored {
    key: ObjectKey,
    filename: Filename,
    content_type: &'static str,
    size: u64,
}

async fn upload(
    state: &AppState,
    admin: &User,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    span: &Span,
) -> Result<Response, ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    // Refused before a byte of the body is read: a client announcing 3 GB would otherwise be
    // read until the limit (or its idle timeout) stops it.
    let max = state.settings.upload_max_bytes;
    if declared_length(headers).is_some_and(|n| n > max.saturating_add(FORM_OVERHEAD)) {
        return Err(too_large(span, max));
    }
    if !is_form {
        return Err(rejected(
            span,
            "not_multipart",
            ApiError::UnsupportedMediaType(
                "expected a multipart/form-data body with a `file` part".into(),
            ),
        ));
    }
    let mut multipart = multipart.map_err(|e| {
        rejected(
            span,
            "invalid_multipart",
            ApiError::bad_request("invalid_multipart", e.body_text()),
        )
    })?;

    let id = VideoId::generate();
    span.record("video.id", id.as_str());
    let mut stored = None;
    let mut title = None;
    // Dropping the read at the shutdown deadline drops a put in progress with it, which the
    // store cleans up (the local temp file is removed, an S3 multipart upload aborted).
    let mut sink = IntoStore { state, id: &id };
    let read = tokio::select! {
        read = read_parts(
            &mut multipart,
            state.settings.upload_idle_timeout,
            &mut sink,
            &mut stored,
            &mut title,
            span,
        ) => read,
        () = state.shutdown.passed() => Err(rejected(span, "shutdown", ApiError::ShuttingDown)),
    };
    let created = match (read, &stored) {
        (Ok(()), Some(s)) => create_row(state, admin, &id, s, title.as_deref()).await,
        (Ok(()), None) => Err(rejected(
            span,
            "missing_file",
            ApiError::bad_request("missing_file", "the form has no `file` part"),
        )),
        (Err(e), _) => Err(e),
    };
    match created {
        Ok(body) => {
            let mut response = (StatusCode::CREATED, axum::Json(&body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/api/videos/{}", body.id)) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
        Err(e) => {
            if let Some(s) = &stored {
                // Best effort: a failure here is logged, the client still gets the real cause.
                if let Err(de) = state.store.delete(&s.key).await {
                    tracing::warn!(error = %de, s3.key = s.key.as_str(), "could not remove a rejected upload");
                }
            }
            Err(e)
        }
    }
}

async fn create_row(
    state: &AppState,
    admin: &User,
    id: &VideoId,
    s: &Stored,
    title: Option<&str>,
) -> Result<VideoBody, ApiError> {
    let new = NewVideo {
        id,
        filename: &s.filename,
        title: title.unwrap_or(s.filename.stem()),
        content_type: s.content_type,
        size_bytes: i64::try_from(s.size).unwrap_or(i64::MAX),
        uploaded_by: Some(admin.id.as_str()),
    };
    // The probe job goes into the outbox in the row's transaction; the worker's relay
    // publishes it (and the probe chains the thumbnail job).
    let probe = NewJob::new(&ProbePayload {
        video_id: id.clone(),
    });
    let video = videos::insert_with_jobs(&state.db, &new, &[probe]).await?;
    Ok(VideoBody::from(&video))
}

/// The body length the client announced (`Content-Length`), if it did.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records why the upload was refused on the `api.upload` span and passes the error on.
fn rejected(span: &Span, reason: &'static str, e: ApiError) -> ApiError {
    span.record("upload.rejected", reason);
    e
}

fn multipart_error(span: &Span, e: MultipartError) -> ApiError {
    rejected(
        span,
        "invalid_multipart",
        ApiError::bad_request("invalid_multipart", e.body_text()),
    )
}

/// What takes the `file` part: the store ([`IntoStore`]), or for the fuzz target a check that
/// keeps nothing.
trait FilePart {
    type Taken;
    async fn take(&mut self, field: Field<'_>, span: &Span) -> Result<Self::Taken, ApiError>;
}

/// The handler's [`FilePart`]: [`store_file`].
struct IntoStore<'a> {
    state: &'a AppState,
    id: &'a VideoId,
}

impl FilePart for IntoStore<'_> {
    type Taken = Stored;
    async fn take(&mut self, field: Field<'_>, span: &Span) -> Result<Stored, ApiError> {
        store_file(self.state, field, self.id, span).await
    }
}

/// Reads the form's parts in order: one optional `title`, one `file` handed to `file`, nothing
/// else.
async fn read_parts<F: FilePart>(
    multipart: &mut Multipart,
    idle_after: std::time::Duration,
    file: &mut F,
    stored: &mut Option<F::Taken>,
    title: &mut Option<String>,
    span: &Span,
) -> Result<(), ApiError> {
    loop {
        // A client that goes quiet between parts, or inside a part's headers, is as idle as
        // one that stops inside the file.
        let next = tokio::time::timeout(idle_after, multipart.next_field())
            .await
            .map_err(|_| idle(span, idle_after))?;
        let Some(mut field) = next.map_err(|e| multipart_error(span, e))? else {
            break;
        };
        match field.name() {
            Some("title") if title.is_none() => {
                *title = read_title(&mut field, idle_after, span).await?;
            }
            Some("file") if stored.is_none() => {
                *stored = Some(file.take(field, span).await?);
            }
            Some(name @ ("title" | "file")) => {
                return Err(rejected(
                    span,
                    "duplicate_part",
                    ApiError::bad_request(
                        "duplicate_part",
                        format!("the form has more than one `{name}` part"),
                    ),
                ));
            }
            _ => {
                return Err(rejected(
                    span,
                    "unexpected_part",
                    ApiError::bad_request(
                        "unexpected_part",
                        "the form may only have a `file` and a `title` part",
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn read_title(
    field: &mut Field<'_>,
    idle_after: std::time::Duration,
    span: &Span,
) -> Result<Option<String>, ApiError> {
    let too_long = || {
        rejected(
            span,
            "invalid_title",
            ApiError::bad_request(
                "invalid_title",
                format!("the title must be at most {MAX_TITLE_CHARS} characters"),
            ),
        )
    };
    let mut raw = Vec::new();
    while let Some(chunk) = next_chunk(field, idle_after, span).await? {
        // Four bytes per character at most: anything longer cannot be a valid title.
        if raw.len() + chunk.len() > MAX_TITLE_CHARS * 4 {
            return Err(too_long());
        }
        raw.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(raw).map_err(|_| {
        rejected(
            span,
            "invalid_title",
            ApiError::bad_request("invalid_title", "the title is not UTF-8 text"),
        )
    })?;
    let text = text.trim();
    if text.chars().count() > MAX_TITLE_CHARS {
        return Err(too_long());
    }
    if text.chars().any(char::is_control) {
        return Err(rejected(
            span,
            "invalid_title",
            ApiError::bad_request("invalid_title", "the title has control characters"),
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// The next chunk of a part, or the refusal for a client that sent nothing for `idle_after`
/// (408) or a broken body (400). A per-chunk deadline rather than one for the whole upload:
/// a slow but steady link may take an hour for a large file, a silent one is gone.
async fn next_chunk(
    field: &mut Field<'_>,
    idle_after: std::time::Duration,
    span: &Span,
) -> Result<Option<Bytes>, ApiError> {
    match tokio::time::timeout(idle_after, field.chunk()).await {
        Err(_) => Err(idle(span, idle_after)),
        Ok(chunk) => chunk.map_err(|e| multipart_error(span, e)),
    }
}

/// Counts bytes, enforces the limit and notes when each `upload.progress` mark was passed.
///
/// The marks are turned into span events by the handler ([`Meter::emit`]) with the times they
/// were passed, rather than by holding a handle to the `api.upload` span inside the body stream:
/// the stream's lifetime ends inside the store adapter, and a span handle kept there was seen
/// to keep the span (and so the server span) open after the response.
struct Meter {
    total: u64,
    max: u64,
    every: u64,
    next_mark: u64,
    marks: Arc<Mutex<Vec<(SystemTime, u64)>>>,
}

impl Meter {
    /// A meter for at most `max` bytes, marking every `every` bytes.
    fn new(max: u64, every: u64) -> Self {
        let every = every.max(1);
        Self {
            total: 0,
            max,
            every,
            next_mark: every,
            marks: Arc::default(),
        }
    }

    /// `false` once the limit is passed.
    fn add(&mut self, n: usize) -> bool {
        self.total += n as u64;
        if self.total > self.max {
            return false;
        }
        if self.total >= self.next_mark {
            if let Ok(mut m) = self.marks.lock() {
                m.push((SystemTime::now(), self.total));
            }
            self.next_mark = (self.total / self.every + 1) * self.every;
        }
        true
    }

    /// Adds the `upload.progress` events noted so far to `span`.
    fn emit(marks: &Mutex<Vec<(SystemTime, u64)>>, span: &Span) {
        let Ok(mut m) = marks.lock() else { return };
        for (at, bytes) in m.drain(..) {
            span.add_event_with_timestamp(
                "upload.progress",
                at,
                vec![KeyValue::new(
                    "bytes",
                    i64::try_from(bytes).unwrap_or(i64::MAX),
                )],
            );
        }
    }
}

fn idle(span: &Span, after: std::time::Duration) -> ApiError {
    rejected(
        span,
        "idle_timeout",
        ApiError::RequestTimeout(format!(
            "the upload sent nothing for {} s and was abandoned",
            after.as_secs()
        )),
    )
}

fn too_large(span: &Span, max: u64) -> ApiError {
    rejected(
        span,
        "too_large",
        ApiError::PayloadTooLarge(format!("the upload exceeds the limit of {max} bytes")),
    )
}

/// Streams the `file` part into the store: its name checked first, then its type from its
/// first bytes, then the rest straight through to the store.
async fn store_file(
    state: &AppState,
    mut field: Field<'_>,
    id: &VideoId,
    span: &Span,
) -> Result<Stored, ApiError> {
    let (filename, declared) = name_and_type(&field, span)?;
    let mut meter = Meter::new(
        state.settings.upload_max_bytes,
        state.settings.upload_progress_every,
    );
    let marks = meter.marks.clone();
    let idle_after = state.settings.upload_idle_timeout;
    let (head, content_type) = sniff_head(
        &mut field,
        &mut meter,
        declared.as_deref(),
        idle_after,
        span,
    )
    .await?;
    span.record("upload.content_type", content_type);

    let key = videos::object_key(id, &filename)?;
    let put = put_rest(state, &key, head, field, meter, content_type, span).await;
    Meter::emit(&marks, span);
    let meta = put?;
    span.record("upload.size", i64::try_from(meta.size).unwrap_or(i64::MAX));
    Ok(Stored {
        key,
        filename,
        content_type,
        size: meta.size,
    })
}

/// The part's file name, checked (any number of lessons may share one), and its declared type
/// (bounded: it is the client's).
fn name_and_type(field: &Field<'_>, span: &Span) -> Result<(Filename, Option<String>), ApiError> {
    let filename = Filename::parse(field.file_name().unwrap_or_default())
        .map_err(|e| rejected(span, "invalid_filename", invalid_filename(e)))?;
    span.record("upload.filename", filename.as_str());
    let declared = field.content_type().map(|t| {
        // Client-supplied: bounded before it reaches telemetry or a message.
        t.chars().take(100).collect::<String>()
    });
    if let Some(d) = &declared {
        span.record("upload.declared_content_type", d.as_str());
    }
    Ok((filename, declared))
}

/// The first bytes and the type they show: a 415 when it is not an allowed video, then a 413
/// when they are already over the limit. The type is decided before the size, so the answer
/// to a file that is both does not depend on how many bytes the client's first chunks held.
async fn sniff_head(
    field: &mut Field<'_>,
    meter: &mut Meter,
    declared: Option<&str>,
    idle_after: std::time::Duration,
    span: &Span,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    while head.len() < SNIFF_LEN {
        let Some(chunk) = next_chunk(field, idle_after, span).await? else {
            break;
        };
        head.extend_from_slice(&chunk);
    }
    let content_type = allowed_type(&head, declared, span)?;
    if !meter.add(head.len()) {
        return Err(too_large(span, meter.max));
    }
    Ok((head, content_type))
}

/// The type the first bytes show, if it is one of [`ALLOWED`]; else a 415 naming it.
fn allowed_type(
    head: &[u8],
    declared: Option<&str>,
    span: &Span,
) -> Result<&'static str, ApiError> {
    let detected = sniff::detect(head);
    match detected.and_then(|t| ALLOWED.iter().find(|a| **a == t)) {
        Some(t) => Ok(*t),
        None => Err(rejected(
            span,
            "unsupported_type",
            ApiError::UnsupportedMediaType(format!(
                "unsupported file type: the content is {} (declared {}); allowed: {}",
                detected.unwrap_or("not a recognised type"),
                declared.unwrap_or("nothing"),
                ALLOWED.join(", ")
            )),
        )),
    }
}

/// Hands `head` and the rest of the part to the store as one stream. The first refusal (too
/// large, idle, broken) ends the stream, so the store publishes nothing, and is the answer.
async fn put_rest(
    state: &AppState,
    key: &ObjectKey,
    head: Vec<u8>,
    field: Field<'_>,
    meter: Meter,
    content_type: &'static str,
    span: &Span,
) -> Result<ObjectMeta, ApiError> {
    let idle_after = state.settings.upload_idle_timeout;
    let refusal: Mutex<Option<ApiError>> = Mutex::new(None);
    let refusal_ref = &refusal;
    let rest = futures_util::stream::unfold(Some((field, meter)), move |state| async move {
        let (mut field, mut meter) = state?;
        let chunk = match next_chunk(&mut field, idle_after, span).await {
            Ok(None) => return None,
            Ok(Some(c)) if meter.add(c.len()) => Ok(c),
            Ok(Some(_)) => Err(too_large(span, meter.max)),
            Err(e) => Err(e),
        };
        match chunk {
            Ok(c) => Some((Ok(c), Some((field, meter)))),
            Err(e) => {
                if let Ok(mut r) = refusal_ref.lock() {
                    *r = Some(e);
                }
                Some((Err(std::io::Error::other("upload refused")), None))
            }
        }
    });
    let body = futures_util::stream::iter([Ok(Bytes::from(head))]).chain(rest);
    let put = state.store.put(key, body, content_type).await;
    let refused = refusal.lock().ok().and_then(|mut r| r.take());
    match (put, refused) {
        (Ok(meta), _) => Ok(meta),
        (Err(_), Some(refused)) => Err(refused),
        (Err(e), None) => Err(store_error(e)),
    }
}

/// A `file` part that passed every check, for the fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug)]
pub struct CheckedFile {
    pub filename: String,
    pub content_type: &'static str,
    pub size: u64,
}

/// The fuzz target's [`FilePart`]: the checks of [`store_file`] that need no store or database
/// (name, size limit, type from the first bytes), then the bytes are dropped.
#[cfg(any(test, feature = "fuzzing"))]
struct CheckOnly {
    max_bytes: u64,
    idle_after: std::time::Duration,
}

#[cfg(any(test, feature = "fuzzing"))]
impl FilePart for CheckOnly {
    type Taken = CheckedFile;
    async fn take(&mut self, mut field: Field<'_>, span: &Span) -> Result<CheckedFile, ApiError> {
        let (filename, declared) = name_and_type(&field, span)?;
        let mut meter = Meter::new(self.max_bytes, u64::MAX);
        let (_, content_type) = sniff_head(
            &mut field,
            &mut meter,
            declared.as_deref(),
            self.idle_after,
            span,
        )
        .await?;
        while let Some(chunk) = next_chunk(&mut field, self.idle_after, span).await? {
            if !meter.add(chunk.len()) {
                return Err(too_large(span, self.max_bytes));
            }
        }
        Ok(CheckedFile {
            filename: filename.as_str().to_owned(),
            content_type,
            size: meter.total,
        })
    }
}

/// The form walk of [`post`] without a store or a database, for the fuzz target (`fuzz/`): the
/// parts in order, the title checked, the file checked by [`CheckOnly`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) async fn check_form(
    mut multipart: Multipart,
    max_bytes: u64,
) -> Result<(Option<String>, Option<CheckedFile>), ApiError> {
    let span = Span::none();
    let idle_after = std::time::Duration::from_secs(3600);
    let mut file = None;
    let mut title = None;
    let mut check = CheckOnly {
        max_bytes,
        idle_after,
    };
    read_parts(
        &mut multipart,
        idle_after,
        &mut check,
        &mut file,
        &mut title,
        &span,
    )
    .await?;
    Ok((title, file))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::FromRequest as _;
    use axum::http::Request;

    use super::*;
    use crate::routes::upload::paced::Paced;

    const BOUNDARY: &str = "vidscopetestboundary";

    /// The status `check_form` answers for `body` cut into `size`-byte chunks (200 when the
    /// form passed).
    async fn status(body: &[u8], size: usize, max_bytes: u64) -> u16 {
        let chunks: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
        let stream = Paced::new(chunks);
        let request = Request::builder()
            .method("POST")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from_stream(stream))
            .unwrap();
        let multipart = Multipart::from_request(request, &()).await.unwrap();
        match check_form(multipart, max_bytes).await {
            Ok(_) => 200,
            Err(e) => e.into_response().status().as_u16(),
        }
    }

    fn part(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
             filename=\"cat.mp4\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(data);
        out
    }

    /// The shape of an input the `upload_form` fuzz target once stopped on (kept in
    /// `fuzz/corpus/upload_form/raw-png-as-mp4-unterminated`; it did not fail again, here or
    /// there): a PNG declared as `video/mp4`, over the limit, in a body that never closes.
    /// Whatever the chunks, the answer is a refusal, and the same one unless it is the broken
    /// framing that was noticed first (400 `invalid_multipart`).
    #[tokio::test]
    async fn a_png_over_the_limit_in_an_unfinished_body_is_refused_the_same_however_chunked() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.resize(400, 0xdc);
        let body = part("file", "video/mp4", &png);
        let whole = status(&body, body.len(), 100).await;
        for size in [1, 7, 50, 64, 65, 100, 399] {
            let cut = status(&body, size, 100).await;
            assert!(
                whole >= 400 && cut >= 400 && (whole == cut || whole == 400 || cut == 400),
                "whole body: {whole}, {size}-byte chunks: {cut}"
            );
        }
    }
}

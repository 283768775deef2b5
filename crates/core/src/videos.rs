//! Video lessons: the `videos` table, the names a video may have, and where its bytes live.
//!
//! A video's object key is `videos/<id>/<filename>`: unique per upload, so two lessons uploaded
//! from files with the same name (allowed since migration 0005: a file name is not a key) never
//! overwrite each other's bytes or thumbnail (`videos/<id>/thumbnail.jpg`), and still readable
//! in a bucket listing.

use std::fmt;

use sqlx::{FromRow as _, Row};

use crate::CoreError;
use crate::db::{Db, InDbSpan, now_millis, query_span};
use crate::storage::ObjectKey;

/// The id type lives with the other domain types, below the job payloads that carry it.
pub use crate::domain::VideoId;

/// Longest filename accepted, in bytes (all allowed characters are ASCII).
pub const MAX_FILENAME_LEN: usize = 200;

/// Extensions of the containers uploads may have (matched case-insensitively).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv"];

/// A video's public name: the streaming URL's last segment and the object's last key segment.
///
/// Only `[A-Za-z0-9._-]`, no leading dot (no hidden files), no `..` anywhere, at most
/// [`MAX_FILENAME_LEN`] bytes and one of the [`VIDEO_EXTENSIONS`]. A name from a URL or an
/// upload is parsed before any storage or database access, so traversal attempts
/// (`../x.mp4`, `a/b.mp4`, `%2e%2e` after decoding) never reach I/O.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filename(String);

impl Filename {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let invalid = |why: &str| CoreError::Invalid(format!("invalid filename: {why}"));
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() > MAX_FILENAME_LEN {
            return Err(invalid("longer than 200 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid("allowed characters are A-Z a-z 0-9 . _ -"));
        }
        if s.starts_with('.') {
            return Err(invalid("must not start with a dot"));
        }
        if s.contains("..") {
            return Err(invalid("must not contain `..`"));
        }
        let ext = s.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if !VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(ext)) {
            return Err(invalid(
                "the extension must be one of .mp4 .m4v .mov .webm .mkv",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its extension, a default title.
    pub fn stem(&self) -> &str {
        self.0.rsplit_once('.').map_or(&self.0, |(stem, _)| stem)
    }
}

impl fmt::Display for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a video is in its life: uploaded by the API, then processed by the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoStatus {
    Uploaded,
    Processing,
    Ready,
    Failed,
}

impl VideoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoStatus::Uploaded => "uploaded",
            VideoStatus::Processing => "processing",
            VideoStatus::Ready => "ready",
            VideoStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Ok(match s {
            "uploaded" => VideoStatus::Uploaded,
            "processing" => VideoStatus::Processing,
            "ready" => VideoStatus::Ready,
            "failed" => VideoStatus::Failed,
            other => {
                return Err(CoreError::Invalid(format!(
                    "unknown video status {other:?}"
                )));
            }
        })
    }
}

/// A status column holds one of [`VideoStatus::as_str`]'s words (a CHECK constraint).
impl TryFrom<String> for VideoStatus {
    type Error = CoreError;

    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse(&s)
    }
}

/// A row of `videos`, read by column name (the columns `select_videos!` lists).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Video {
    pub id: String,
    pub filename: String,
    pub title: String,
    /// Free text an admin writes (empty until then; migration 0006).
    pub description: String,
    pub content_type: String,
    pub size_bytes: i64,
    #[sqlx(try_from = "String")]
    pub status: VideoStatus,
    pub duration_seconds: Option<f64>,
    pub thumbnail_key: Option<String>,
    /// What the worker's probe found (`None` until it ran).
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub uploaded_by: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl Video {
    /// Where the video's bytes are stored.
    pub fn object_key(&self) -> Result<ObjectKey, CoreError> {
        ObjectKey::parse(&format!("videos/{}/{}", self.id, self.filename)).map_err(CoreError::from)
    }
}

/// The object key of a video that is about to be stored (see the module doc). Cannot fail
/// for parsed parts (both are in the key alphabet); a `Result` keeps the function panic-free.
pub fn object_key(id: &VideoId, filename: &Filename) -> Result<ObjectKey, CoreError> {
    ObjectKey::parse(&format!("videos/{id}/{filename}")).map_err(CoreError::from)
}

/// What an upload knows when it creates the row.
#[derive(Debug, Clone)]
pub struct NewVideo<'a> {
    pub id: &'a VideoId,
    pub filename: &'a Filename,
    pub title: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub uploaded_by: Option<&'a str>,
}

impl NewVideo<'_> {
    /// The row [`insert`] makes of it at `now` (Unix milliseconds): status `uploaded`, nothing
    /// probed yet.
    pub fn row(&self, now: i64) -> Video {
        Video {
            id: self.id.as_str().to_owned(),
            filename: self.filename.as_str().to_owned(),
            title: self.title.to_owned(),
            description: String::new(),
            content_type: self.content_type.to_owned(),
            size_bytes: self.size_bytes,
            status: VideoStatus::Uploaded,
            duration_seconds: None,
            thumbnail_key: None,
            video_codec: None,
            audio_codec: None,
            width: None,
            height: None,
            uploaded_by: self.uploaded_by.map(str::to_owned),
            created_at: now,
            updated_at: now,
        }
    }
}

fn row_video(row: &sqlx::any::AnyRow) -> Result<Video, CoreError> {
    Ok(Video::from_row(row)?)
}

/// Creates the row of a freshly stored upload, status `uploaded`. Any number of videos may
/// share a filename.
pub async fn insert(db: &Db, new: &NewVideo<'_>) -> Result<Video, CoreError> {
    insert_with_jobs(db, new, &[]).await
}

/// [`insert`] plus the jobs the new video needs (its probe), in one transaction: the row
/// exists exactly when its jobs do, and a queue outage only delays them (see [`crate::outbox`]).
pub async fn insert_with_jobs(
    db: &Db,
    new: &NewVideo<'_>,
    jobs: &[crate::jobs::NewJob],
) -> Result<Video, CoreError> {
    const SQL: &str = "INSERT INTO videos (id, filename, title, content_type, size_bytes, status, \
                       uploaded_by, created_at, updated_at) \
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let now = now_millis();
    let mut tx = crate::db::begin(db).await?;
    let result = sqlx::query(SQL)
        .bind(new.id.as_str())
        .bind(new.filename.as_str())
        .bind(new.title)
        .bind(new.content_type)
        .bind(new.size_bytes)
        .bind(VideoStatus::Uploaded.as_str())
        .bind(new.uploaded_by)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .in_db_span(query_span(db.backend(), "INSERT", "videos", SQL))
        .await;
    if result.is_ok() {
        crate::outbox::write_outbox(&mut tx, db.backend(), jobs).await?;
        crate::db::commit(tx).await?;
    }
    match result {
        Ok(_) => Ok(new.row(now)),
        Err(e) => Err(e.into()),
    }
}

/// The columns `row_video` reads; a macro so each query stays one `&'static str` (the
/// `db.query.text` attribute and the N+1 counter key).
macro_rules! select_videos {
    () => {
        "SELECT id, filename, title, description, content_type, size_bytes, status, \
         duration_seconds, thumbnail_key, video_codec, audio_codec, width, height, uploaded_by, \
         created_at, updated_at FROM videos"
    };
}

pub async fn get(db: &Db, id: &VideoId) -> Result<Option<Video>, CoreError> {
    const SQL: &str = concat!(select_videos!(), " WHERE id = $1");
    let row = crate::db::select_by_key(db, "videos", SQL, id.as_str()).await?;
    row.as_ref().map(row_video).transpose()
}

/// The oldest video uploaded from a file of this name: what the legacy stream URL
/// (`/api/videos/<filename>`) meant when names were unique, so links made then keep playing
/// the same lesson after another upload reuses the name.
pub async fn get_by_filename(db: &Db, filename: &Filename) -> Result<Option<Video>, CoreError> {
    const SQL: &str = concat!(
        select_videos!(),
        " WHERE filename = $1 ORDER BY created_at, id LIMIT 1"
    );
    let row = crate::db::select_by_key(db, "videos", SQL, filename.as_str()).await?;
    row.as_ref().map(row_video).transpose()
}

/// Longest title search, in characters (a title is at most [`MAX_TITLE_CHARS`]).
pub const MAX_SEARCH_CHARS: usize = MAX_TITLE_CHARS;

/// A title search as the listing runs it: trimmed, not empty, at most [`MAX_SEARCH_CHARS`], no
/// control characters; matched anywhere in the title, `%` and `_` literally, ignoring the case
/// of ASCII letters (what `LOWER` does on SQLite, and on Postgres whatever the locale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitleSearch(String);

impl TitleSearch {
    /// `None` for an empty (or all-blank) search: no filter. `field` names the input in the
    /// error (`q`). The length and the characters are checked on the text as sent, before the
    /// trim, so what is refused is exactly what the OpenAPI document's `maxLength` and
    /// `pattern` refuse (a tab is a control character even at the end).
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, CoreError> {
        let invalid = |why: &str| CoreError::Invalid(format!("{field} {why}"));
        if raw.chars().count() > MAX_SEARCH_CHARS {
            return Err(invalid(&format!(
                "must be at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        let text = raw.trim();
        Ok((!text.is_empty()).then(|| Self(text.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `LIKE` pattern (with `ESCAPE '\'`): lower case, wildcards of the text escaped.
    fn pattern(&self) -> String {
        let mut p = String::with_capacity(self.0.len() + 2);
        p.push('%');
        for c in self.0.to_ascii_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    }
}

/// Where a page of the listing starts: just after the video with this `(created_at, id)`.
/// Keyset rather than an offset, so a deep page costs what the first does (an index range
/// scan, `videos_listing`, migration 0008) and a lesson uploaded meanwhile shifts nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: i64,
    pub id: String,
}

impl ListCursor {
    pub fn of(v: &Video) -> Self {
        Self {
            created_at: v.created_at,
            id: v.id.clone(),
        }
    }
}

/// A page request of [`list_page`].
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    pub search: Option<&'a TitleSearch>,
    pub after: Option<&'a ListCursor>,
    /// Videos per page; the query reads one more to know whether a next page exists.
    pub limit: usize,
}

/// A listed video and, when the listing was made for a user, that user's progress in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub video: Video,
    pub progress: Option<crate::progress::Progress>,
}

/// One page of the listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub videos: Vec<Listed>,
    /// The cursor of the next page; `None` on the last one.
    pub next: Option<ListCursor>,
}

/// The video columns of a query joining `progress p` to `videos v`, then the progress ones
/// (`p_`-prefixed, NULL without a row): read by [`row_listed`].
macro_rules! select_listed {
    () => {
        "SELECT v.id, v.filename, v.title, v.description, v.content_type, v.size_bytes, \
         v.status, v.duration_seconds, v.thumbnail_key, v.video_codec, v.audio_codec, v.width, \
         v.height, v.uploaded_by, v.created_at, v.updated_at, \
         p.position_seconds AS p_position, p.watch_time_seconds AS p_watch_time, \
         p.completed AS p_completed, p.updated_at AS p_updated_at"
    };
}

fn row_listed(row: &sqlx::any::AnyRow) -> Result<Listed, CoreError> {
    let video = row_video(row)?;
    let progress = match row.try_get::<Option<f64>, _>("p_position")? {
        None => None,
        Some(position_seconds) => Some(crate::progress::Progress {
            video_id: video.id.clone(),
            position_seconds,
            watch_time_seconds: row.try_get("p_watch_time")?,
            completed: row.try_get::<i64, _>("p_completed")? != 0,
            updated_at: row.try_get("p_updated_at")?,
        }),
    };
    Ok(Listed { video, progress })
}

/// The SQL of [`list_page`], public so a test can `EXPLAIN` it: newest first, ties broken by
/// id; `$1` the viewer (whose progress rows join), `$2`/`$3` the cursor (`i64::MAX` and `''`
/// for the first page, so one statement serves both), `$4` the `LIKE` pattern (`%` for all),
/// `$5` the limit.
pub const LIST_PAGE_SQL: &str = concat!(
    select_listed!(),
    " FROM videos v LEFT JOIN progress p ON p.video_id = v.id AND p.user_id = $1 \
     WHERE (v.created_at, v.id) < ($2, $3) \
     AND LOWER(v.title) LIKE $4 ESCAPE '\\' \
     ORDER BY v.created_at DESC, v.id DESC LIMIT $5"
);

/// A page of the lesson list, newest first, with `viewer`'s progress in each (`None`: no
/// progress joined). Every signed-in user sees every video, whatever its status.
pub async fn list_page(
    db: &Db,
    viewer: Option<&str>,
    q: &ListQuery<'_>,
) -> Result<ListPage, CoreError> {
    let (created_at, id) = q
        .after
        .map_or((i64::MAX, ""), |c| (c.created_at, c.id.as_str()));
    let pattern = q
        .search
        .map_or_else(|| "%".to_owned(), TitleSearch::pattern);
    let rows = sqlx::query(LIST_PAGE_SQL)
        .bind(viewer.unwrap_or(""))
        .bind(created_at)
        .bind(id)
        .bind(pattern)
        .bind(i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "videos", LIST_PAGE_SQL))
        .await?;
    let mut videos = rows.iter().map(row_listed).collect::<Result<Vec<_>, _>>()?;
    let next = if videos.len() > q.limit {
        videos.truncate(q.limit);
        videos.last().map(|l| ListCursor::of(&l.video))
    } else {
        None
    };
    Ok(ListPage { videos, next })
}

/// `user`'s lessons started and not finished, last watched first, at most `limit`: the "continue
/// watching" row. Only lessons that can play (`ready`) and were left past the start; "not
/// finished" is [`crate::progress::Progress::is_completed`]'s rule (the flag, or 95 % of the
/// duration), so no lesson is both in this row and marked completed.
pub async fn continue_watching(
    db: &Db,
    user: &str,
    limit: usize,
) -> Result<Vec<Listed>, CoreError> {
    const SQL: &str = concat!(
        select_listed!(),
        " FROM progress p JOIN videos v ON v.id = p.video_id \
         WHERE p.user_id = $1 AND p.completed = 0 AND p.position_seconds > 0 \
         AND v.status = 'ready' \
         AND (v.duration_seconds IS NULL OR v.duration_seconds <= 0 \
         OR p.position_seconds < v.duration_seconds * $3) \
         ORDER BY p.updated_at DESC, v.id DESC LIMIT $2"
    );
    let rows = sqlx::query(SQL)
        .bind(user)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(crate::progress::AUTO_COMPLETE_RATIO)
        .fetch_all(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "progress", SQL))
        .await?;
    rows.iter().map(row_listed).collect()
}

/// Sets the status; `Ok(false)` when there is no such video.
pub async fn set_status(db: &Db, id: &VideoId, status: VideoStatus) -> Result<bool, CoreError> {
    const SQL: &str = "UPDATE videos SET status = $1, updated_at = $2 WHERE id = $3";
    let query = sqlx::query(SQL)
        .bind(status.as_str())
        .bind(now_millis())
        .bind(id.as_str());
    Ok(crate::db::execute(db, "UPDATE", "videos", SQL, query).await? > 0)
}

/// What ffprobe reports about a video.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeResult {
    pub duration_seconds: Option<f64>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

/// Stores a probe's findings inside the caller's transaction (the probe job commits them with
/// the outbox row of the thumbnail job); `Ok(false)` when there is no such video.
pub async fn record_probe(
    conn: &mut sqlx::AnyConnection,
    backend: crate::db::Backend,
    id: &VideoId,
    probe: &ProbeResult,
) -> Result<bool, CoreError> {
    const SQL: &str = "UPDATE videos SET duration_seconds = $1, video_codec = $2, \
                       audio_codec = $3, width = $4, height = $5, updated_at = $6 WHERE id = $7";
    let done = sqlx::query(SQL)
        .bind(probe.duration_seconds)
        .bind(probe.video_codec.as_deref())
        .bind(probe.audio_codec.as_deref())
        .bind(probe.width)
        .bind(probe.height)
        .bind(now_millis())
        .bind(id.as_str())
        .execute(&mut *conn)
        .in_db_span(query_span(backend, "UPDATE", "videos", SQL))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The thumbnail is stored: record it and make the video playable in one statement.
pub async fn mark_ready(db: &Db, id: &VideoId, thumbnail: &ObjectKey) -> Result<bool, CoreError> {
    const SQL: &str = "UPDATE videos SET thumbnail_key = $1, status = $2, updated_at = $3 \
                       WHERE id = $4";
    let query = sqlx::query(SQL)
        .bind(thumbnail.as_str())
        .bind(VideoStatus::Ready.as_str())
        .bind(now_millis())
        .bind(id.as_str());
    Ok(crate::db::execute(db, "UPDATE", "videos", SQL, query).await? > 0)
}

/// Longest title an admin may set, in characters (the upload's limit too).
pub const MAX_TITLE_CHARS: usize = 200;

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5000;

/// A title as stored: trimmed, not empty, at most [`MAX_TITLE_CHARS`], no control characters.
/// The error names the field (`title`).
pub fn parse_title(raw: &str) -> Result<String, CoreError> {
    let invalid = |why: &str| CoreError::Invalid(format!("title: {why}"));
    let text = raw.trim();
    if text.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if text.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(&format!(
            "must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// A description as stored: trimmed, at most [`MAX_DESCRIPTION_CHARS`], no control characters
/// but line breaks and tabs; may be empty (clears it). The error names the field
/// (`description`).
pub fn parse_description(raw: &str) -> Result<String, CoreError> {
    let invalid = |why: &str| CoreError::Invalid(format!("description: {why}"));
    let text = raw.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(&format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(text.to_owned())
}

/// Sets the title and/or the description (each already parsed; `None` keeps it); the row as
/// it is afterwards, `None` when there is no such video.
pub async fn update_details(
    db: &Db,
    id: &VideoId,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<Option<Video>, CoreError> {
    const SQL: &str = "UPDATE videos SET title = COALESCE($1, title), \
                       description = COALESCE($2, description), updated_at = $3 WHERE id = $4";
    let query = sqlx::query(SQL)
        .bind(title)
        .bind(description)
        .bind(now_millis())
        .bind(id.as_str());
    if crate::db::execute(db, "UPDATE", "videos", SQL, query).await? == 0 {
        return Ok(None);
    }
    get(db, id).await
}

/// The kinds of the jobs that process a video (payload `{"videoId": ...}`): what a delete
/// removes while they are still pending. Names rather than [`crate::jobs::JobKind`]s because
/// `video.thumbnail`'s payload lives in the worker (see [`crate::jobs`]).
pub const PROCESSING_JOB_KINDS: &[&str] = &["video.probe", "video.thumbnail"];

/// What [`delete`] removed.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The row as it was.
    pub video: Video,
    /// Progress rows removed with it.
    pub progress_rows: u64,
    /// Pending processing jobs removed (unpublished outbox rows and unclaimed rows of the
    /// database queue).
    pub pending_jobs: u64,
    /// The store objects the purge job removes.
    pub object_keys: Vec<String>,
}

/// Deletes a lesson; `None` when there is no such video.
///
/// Why this design: the row, its progress, its pending processing jobs and a `video.purge`
/// job (carrying the object keys: the video and its thumbnail) are written in **one
/// transaction**, and the worker removes the objects afterwards, idempotently, retrying while
/// the store is down. So the database never holds half a lesson whatever fails (a failure
/// before the commit leaves everything as it was; after it, the lesson is gone and only its
/// bytes wait for the purge), the answer does not depend on the object store, and no object
/// is lost track of: the purge job exists exactly when the row is gone (see [`crate::outbox`]).
/// The other order (objects first, then the row) would leave a row whose bytes are gone when
/// the database fails in between.
///
/// A processing job already handed to a queue cannot be removed here (a Redis stream, a
/// leased row): the worker settles a job whose video is gone as done ([`get`] finds
/// nothing), never as a failure.
pub async fn delete(
    db: &Db,
    id: &VideoId,
    purge: impl FnOnce(&Video, Vec<String>) -> crate::jobs::NewJob,
) -> Result<Option<Deleted>, CoreError> {
    const SELECT: &str = concat!(select_videos!(), " WHERE id = $1");
    const PROGRESS: &str = "DELETE FROM progress WHERE video_id = $1";
    const VIDEO: &str = "DELETE FROM videos WHERE id = $1";
    let backend = db.backend();
    let mut tx = crate::db::begin(db).await?;
    let row = sqlx::query(SELECT)
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .in_db_span(query_span(backend, "SELECT", "videos", SELECT))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let video = row_video(&row)?;
    let progress_rows = sqlx::query(PROGRESS)
        .bind(id.as_str())
        .execute(&mut *tx)
        .in_db_span(query_span(backend, "DELETE", "progress", PROGRESS))
        .await?
        .rows_affected();
    let pending_jobs = delete_pending_jobs(&mut tx, backend, id).await?;
    sqlx::query(VIDEO)
        .bind(id.as_str())
        .execute(&mut *tx)
        .in_db_span(query_span(backend, "DELETE", "videos", VIDEO))
        .await?;
    let mut object_keys = vec![video.object_key()?.as_str().to_owned()];
    // The conventional thumbnail key too: a thumbnail job running now may store it after
    // this commit (that job also removes it once it finds the row gone).
    let conventional = format!("videos/{id}/thumbnail.jpg");
    for key in video.thumbnail_key.iter().chain(Some(&conventional)) {
        if !object_keys.contains(key) {
            object_keys.push(key.clone());
        }
    }
    let job = purge(&video, object_keys.clone());
    crate::outbox::write_outbox(&mut tx, backend, std::slice::from_ref(&job)).await?;
    crate::db::commit(tx).await?;
    Ok(Some(Deleted {
        video,
        progress_rows,
        pending_jobs,
        object_keys,
    }))
}

/// Removes the video's processing jobs that no worker holds yet: unpublished outbox rows and
/// unclaimed (`ready`) rows of the database queue. Matched by kind and by the `videoId` in the
/// payload (the form `serde_json` writes, with no spaces).
async fn delete_pending_jobs(
    tx: &mut sqlx::AnyConnection,
    backend: crate::db::Backend,
    id: &VideoId,
) -> Result<u64, CoreError> {
    const OUTBOX: &str = "DELETE FROM outbox WHERE published_at IS NULL AND kind IN ($1, $2) \
                          AND payload LIKE $3";
    const JOBS: &str = "DELETE FROM jobs WHERE status = 'ready' AND kind IN ($1, $2) \
                        AND payload LIKE $3";
    let pattern = format!("%\"videoId\":\"{id}\"%");
    let mut removed = 0;
    for (table, sql) in [("outbox", OUTBOX), ("jobs", JOBS)] {
        removed += sqlx::query(sql)
            .bind(PROCESSING_JOB_KINDS[0])
            .bind(PROCESSING_JOB_KINDS[1])
            .bind(&pattern)
            .execute(&mut *tx)
            .in_db_span(query_span(backend, "DELETE", table, sql))
            .await?
            .rows_affected();
    }
    Ok(removed)
}

/// Why a video could not be reprocessed.
#[derive(Debug)]
pub enum Reprocess {
    /// Its status is back to `uploaded` and its probe job is in the outbox.
    Queued(Box<Video>),
    /// No such video.
    NotFound,
    /// Only a `failed` video is reprocessed; this is its status.
    NotFailed(VideoStatus),
}

/// Puts a `failed` video back to `uploaded` and writes `job` (its probe, with a fresh id so
/// the completed-job record of the first run does not skip it) in one transaction. The status
/// check is in the `UPDATE`, so two admins clicking at once queue one job.
pub async fn reprocess(
    db: &Db,
    id: &VideoId,
    job: crate::jobs::NewJob,
) -> Result<Reprocess, CoreError> {
    const SQL: &str =
        "UPDATE videos SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4";
    let backend = db.backend();
    let mut tx = crate::db::begin(db).await?;
    let updated = sqlx::query(SQL)
        .bind(VideoStatus::Uploaded.as_str())
        .bind(now_millis())
        .bind(id.as_str())
        .bind(VideoStatus::Failed.as_str())
        .execute(&mut *tx)
        .in_db_span(query_span(backend, "UPDATE", "videos", SQL))
        .await?
        .rows_affected();
    if updated == 0 {
        drop(tx);
        return Ok(match get(db, id).await? {
            Some(v) => Reprocess::NotFailed(v.status),
            None => Reprocess::NotFound,
        });
    }
    crate::outbox::write_outbox(&mut tx, backend, &[job]).await?;
    crate::db::commit(tx).await?;
    match get(db, id).await? {
        Some(v) => Ok(Reprocess::Queued(Box::new(v))),
        None => Ok(Reprocess::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_filenames_parse() {
        for name in [
            "lesson-1.mp4",
            "Intro_Part.2.MOV",
            "a.webm",
            "x.mkv",
            "clip.m4v",
            &format!("{}.mp4", "a".repeat(MAX_FILENAME_LEN - 4)),
        ] {
            let f = Filename::parse(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(f.as_str(), name);
        }
        assert_eq!(Filename::parse("a.b.mp4").unwrap().stem(), "a.b");
    }

    #[test]
    fn bad_filenames_are_rejected() {
        for (name, why) in [
            ("", "empty"),
            ("../etc/passwd.mp4", "traversal"),
            ("..%2Fx.mp4", "encoded traversal, undecoded"),
            ("a/b.mp4", "slash"),
            ("a\\b.mp4", "backslash"),
            (".env", "dotfile"),
            (".hidden.mp4", "dotfile with extension"),
            ("a..mp4", "double dot"),
            ("video", "no extension"),
            ("video.exe", "wrong extension"),
            ("video.mp4.exe", "wrong last extension"),
            ("video.", "empty extension"),
            ("vid eo.mp4", "space"),
            ("vidé.mp4", "non-ASCII"),
            ("a\0.mp4", "NUL"),
            ("a%20.mp4", "percent"),
            (&format!("{}.mp4", "a".repeat(MAX_FILENAME_LEN)), "too long"),
        ] {
            assert!(
                Filename::parse(name).is_err(),
                "{why}: {name:?} should be rejected"
            );
        }
    }

    #[test]
    fn video_ids_are_normalised_uuids() {
        let id = VideoId::generate();
        assert_eq!(VideoId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(
            VideoId::parse(&id.as_str().to_uppercase()).as_ref(),
            Some(&id)
        );
        assert_eq!(VideoId::parse("lesson.mp4"), None);
        assert_eq!(VideoId::parse(""), None);
        // Only the hyphenated spelling.
        let u = uuid::Uuid::parse_str(id.as_str()).unwrap();
        for other in [
            u.simple().to_string(),
            u.braced().to_string(),
            u.urn().to_string(),
        ] {
            assert_eq!(VideoId::parse(&other), None, "{other}");
        }
    }

    #[test]
    fn object_keys_are_per_upload() {
        let f = Filename::parse("a.mp4").unwrap();
        let (a, b) = (VideoId::generate(), VideoId::generate());
        assert_ne!(object_key(&a, &f).unwrap(), object_key(&b, &f).unwrap());
        assert_eq!(
            object_key(&a, &f).unwrap().as_str(),
            format!("videos/{a}/a.mp4")
        );
    }

    #[test]
    fn title_searches_are_trimmed_checked_and_escaped() {
        assert_eq!(TitleSearch::parse("q", "   ").unwrap(), None);
        let s = TitleSearch::parse("q", "  50%_Off\\ Fractions ")
            .unwrap()
            .unwrap();
        assert_eq!(s.as_str(), "50%_Off\\ Fractions");
        assert_eq!(s.pattern(), "%50\\%\\_off\\\\ fractions%");
        for (bad, why) in [
            ("a\u{0}b".to_owned(), "control characters"),
            ("fractions\t".to_owned(), "control characters"),
            ("x".repeat(MAX_SEARCH_CHARS + 1), "at most"),
            (format!(" {} ", "x".repeat(MAX_SEARCH_CHARS - 1)), "at most"),
        ] {
            let err = TitleSearch::parse("q", &bad).unwrap_err().to_string();
            assert!(err.contains("q ") && err.contains(why), "{bad:?}: {err}");
        }
        assert!(TitleSearch::parse("q", &"é".repeat(MAX_SEARCH_CHARS)).is_ok());
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            VideoStatus::Uploaded,
            VideoStatus::Processing,
            VideoStatus::Ready,
            VideoStatus::Failed,
        ] {
            assert_eq!(VideoStatus::parse(s.as_str()).unwrap(), s);
        }
        assert!(VideoStatus::parse("done").is_err());
    }
}

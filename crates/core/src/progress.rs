//! Watch progress: one resume position per user and video (seed 000/001's "double progress
//! tracking" and "missing persistence").
//!
//! A save is one conditional upsert. When the stored row already has (about) the same
//! position, was written less than [`DUPLICATE_WINDOW`] ago and the save would not newly mark
//! the video completed, the `ON CONFLICT ... DO UPDATE ... WHERE` does nothing and no row comes
//! back: that is how a duplicate is detected, atomically, on SQLite and Postgres alike (two
//! players racing the same save cannot both write).
//!
//! Callers pass the user id from the session, never from a request body; every query is keyed
//! by it, so one account cannot read or write another's progress.

use std::time::Duration;

use sqlx::Row;

use crate::CoreError;
use crate::db::{Db, InDbSpan, now_millis, query_span};
use crate::domain::VideoId;

/// A repeat save inside this window at the same position is not written again.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(5);
/// Positions closer than this count as "the same position" for duplicate detection.
pub const SAME_POSITION_SECS: f64 = 0.5;
/// A position at or past this share of the duration marks the video completed.
pub const AUTO_COMPLETE_RATIO: f64 = 0.95;
/// Players report positions a little past the container's duration (rounding, last frame).
pub const POSITION_TOLERANCE_SECS: f64 = 2.0;
/// No lesson is a week long; anything above is a client bug, not a position.
pub const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// A non-negative, finite, plausible number of seconds. `parse` names the field it came from
/// in its error, so the 400 says which input was wrong.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Seconds(f64);

impl Seconds {
    pub fn parse(field: &str, value: f64) -> Result<Self, CoreError> {
        if !value.is_finite() {
            return Err(CoreError::Invalid(format!(
                "{field} must be a finite number"
            )));
        }
        if value < 0.0 {
            return Err(CoreError::Invalid(format!(
                "{field} must not be negative (got {value})"
            )));
        }
        if value > MAX_SECONDS {
            return Err(CoreError::Invalid(format!(
                "{field} is out of range (got {value}, at most {MAX_SECONDS} seconds)"
            )));
        }
        Ok(Self(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// A request's `field` as a video id, or an error naming the field. Video ids are UUIDs
/// ([`VideoId::parse`]); anything else is refused as bad input, as on every other route,
/// rather than looked up and reported missing.
pub fn parse_video_id(field: &str, value: &str) -> Result<VideoId, CoreError> {
    VideoId::parse(value).ok_or_else(|| {
        CoreError::Invalid(format!(
            "{field} must be a video id: a UUID (8-4-4-4-12 hex digits)"
        ))
    })
}

/// What progress needs to know about a video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoRef {
    pub id: String,
    /// Unknown until the worker has probed the file.
    pub duration_seconds: Option<f64>,
}

/// A save request as the client sent it, after field-level parsing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressInput {
    pub position: Seconds,
    /// `None` keeps the stored watch time (a page-hide beacon only knows the position).
    pub watch_time: Option<Seconds>,
    pub completed: bool,
}

/// A save checked against the video: position within the duration, completion decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckedProgress {
    pub position: Seconds,
    pub watch_time: Option<Seconds>,
    pub completed: bool,
    /// The position reached [`AUTO_COMPLETE_RATIO`] of the duration (seed 000's
    /// `progress.auto_complete_triggered`).
    pub auto_completed: bool,
}

impl VideoRef {
    /// Checks `input` against this video's duration. `position_field` names the input in
    /// the error (`positionSeconds`, `events[3].finalPosition`).
    pub fn check(
        &self,
        input: ProgressInput,
        position_field: &str,
    ) -> Result<CheckedProgress, CoreError> {
        let position = input.position.get();
        let mut auto_completed = false;
        if let Some(duration) = self.duration_seconds.filter(|d| *d > 0.0) {
            if position > duration + POSITION_TOLERANCE_SECS {
                return Err(CoreError::Invalid(format!(
                    "{position_field} {position} is beyond the video's duration ({duration} seconds)"
                )));
            }
            auto_completed = !input.completed && position >= duration * AUTO_COMPLETE_RATIO;
        }
        Ok(CheckedProgress {
            position: input.position,
            watch_time: input.watch_time,
            completed: input.completed || auto_completed,
            auto_completed,
        })
    }
}

/// A stored resume position.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub video_id: String,
    pub position_seconds: f64,
    pub watch_time_seconds: f64,
    pub completed: bool,
    /// Unix milliseconds of the last write.
    pub updated_at: i64,
}

impl Progress {
    /// Whether the lesson counts as finished, for the lesson list's "completed" mark: the
    /// stored flag (a save sets it once the position reaches [`AUTO_COMPLETE_RATIO`] of the
    /// duration, or when the player reports the end), or a position at 95 % of a duration
    /// learned after that save. One rule for the list and the saves: 95 %, not "the last
    /// n seconds", so a 2-minute clip and a 2-hour lecture are treated alike.
    pub fn is_completed(&self, duration_seconds: Option<f64>) -> bool {
        self.completed
            || duration_seconds
                .is_some_and(|d| d > 0.0 && self.position_seconds >= d * AUTO_COMPLETE_RATIO)
    }

    /// The share watched, 0 to 100 (100 once [`Self::is_completed`]; 0 while the duration is
    /// unknown).
    pub fn percent(&self, duration_seconds: Option<f64>) -> u8 {
        if self.is_completed(duration_seconds) {
            return 100;
        }
        match duration_seconds.filter(|d| *d > 0.0) {
            // Below 95 here, so the cast cannot truncate a large value.
            Some(d) => ((self.position_seconds / d) * 100.0)
                .clamp(0.0, 100.0)
                .floor() as u8,
            None => 0,
        }
    }
}

/// What a save did.
#[derive(Debug, Clone, PartialEq)]
pub enum SaveOutcome {
    Saved(Progress),
    /// Not written: the same position was saved less than [`DUPLICATE_WINDOW`] ago. Carries
    /// the stored row.
    Duplicate(Progress),
}

impl SaveOutcome {
    pub fn progress(&self) -> &Progress {
        match self {
            SaveOutcome::Saved(p) | SaveOutcome::Duplicate(p) => p,
        }
    }

    /// The `outcome` label of the progress metrics.
    /// Every value [`SaveOutcome::label`] can return, for metrics created at start-up.
    pub const LABELS: [&'static str; 2] = ["saved", "duplicate"];

    pub fn label(&self) -> &'static str {
        match self {
            SaveOutcome::Saved(_) => "saved",
            SaveOutcome::Duplicate(_) => "duplicate",
        }
    }
}

/// The video's id and duration, `None` when there is no such video.
pub async fn find_video(db: &Db, video_id: &VideoId) -> Result<Option<VideoRef>, CoreError> {
    const SQL: &str = "SELECT id, duration_seconds FROM videos WHERE id = $1";
    let row = crate::db::select_by_key(db, "videos", SQL, video_id.as_str()).await?;
    row.map(|r| {
        Ok(VideoRef {
            id: r.try_get("id")?,
            duration_seconds: r.try_get("duration_seconds")?,
        })
    })
    .transpose()
}

fn row_progress(video_id: &str, row: &sqlx::any::AnyRow) -> Result<Progress, CoreError> {
    Ok(Progress {
        video_id: video_id.to_owned(),
        position_seconds: row.try_get("position_seconds")?,
        watch_time_seconds: row.try_get("watch_time_seconds")?,
        completed: row.try_get::<i64, _>("completed")? != 0,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The caller's stored position for a video, `None` when nothing was saved yet.
pub async fn get(db: &Db, user_id: &str, video_id: &str) -> Result<Option<Progress>, CoreError> {
    const SQL: &str = "SELECT position_seconds, watch_time_seconds, completed, updated_at \
                       FROM progress WHERE user_id = $1 AND video_id = $2";
    let row = sqlx::query(SQL)
        .bind(user_id)
        .bind(video_id)
        .fetch_optional(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "progress", SQL))
        .await?;
    row.as_ref().map(|r| row_progress(video_id, r)).transpose()
}

/// Saves `p` for `user_id` unless it duplicates the stored row (see the module doc).
/// `completed` never goes back from true to false: rewatching a finished lesson keeps it
/// finished.
pub async fn save(
    db: &Db,
    user_id: &str,
    video_id: &str,
    p: &CheckedProgress,
) -> Result<SaveOutcome, CoreError> {
    const WAS_COMPLETED: &str =
        "SELECT completed FROM progress WHERE user_id = $1 AND video_id = $2";
    // The common save (every ~10 s per viewer) is one statement. Only a save that completes
    // the lesson needs a transaction: the previous state decides whether the CRM hears of it,
    // and its outbox row must commit with the progress.
    let row = if p.completed {
        let mut tx = crate::db::begin(db).await?;
        let prev: Option<i64> = sqlx::query_scalar(WAS_COMPLETED)
            .bind(user_id)
            .bind(video_id)
            .fetch_optional(&mut *tx)
            .in_db_span(query_span(
                db.backend(),
                "SELECT",
                "progress",
                WAS_COMPLETED,
            ))
            .await?;
        let row = upsert(&mut tx, db.backend(), user_id, video_id, p).await?;
        if prev.unwrap_or(0) == 0 && row.is_some() {
            crate::outbox::write_outbox(
                &mut tx,
                db.backend(),
                &[crate::jobs::crm_lesson_completed(user_id, video_id)],
            )
            .await?;
        }
        crate::db::commit(tx).await?;
        row
    } else {
        let mut conn = db
            .pool()
            .acquire()
            .in_db_span(tracing::Span::none())
            .await?;
        upsert(&mut conn, db.backend(), user_id, video_id, p).await?
    };
    match row {
        Some(r) => Ok(SaveOutcome::Saved(row_progress(video_id, &r)?)),
        None => {
            let stored = get(db, user_id, video_id)
                .await?
                .ok_or(CoreError::NotFound("progress"))?;
            Ok(SaveOutcome::Duplicate(stored))
        }
    }
}

/// The conditional upsert of [`save`]: no row back means the save was a duplicate.
async fn upsert(
    conn: &mut sqlx::AnyConnection,
    backend: crate::db::Backend,
    user_id: &str,
    video_id: &str,
    p: &CheckedProgress,
) -> Result<Option<sqlx::any::AnyRow>, CoreError> {
    const SQL: &str = "INSERT INTO progress \
        (user_id, video_id, position_seconds, watch_time_seconds, completed, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6) \
        ON CONFLICT (user_id, video_id) DO UPDATE SET \
        position_seconds = excluded.position_seconds, \
        watch_time_seconds = CASE WHEN $7 = 1 THEN progress.watch_time_seconds \
            ELSE excluded.watch_time_seconds END, \
        completed = CASE WHEN progress.completed > excluded.completed THEN progress.completed \
            ELSE excluded.completed END, \
        updated_at = excluded.updated_at \
        WHERE NOT (ABS(progress.position_seconds - excluded.position_seconds) < $8 \
            AND excluded.completed <= progress.completed \
            AND progress.updated_at > $9) \
        RETURNING position_seconds, watch_time_seconds, completed, updated_at";
    let now = now_millis();
    Ok(sqlx::query(SQL)
        .bind(user_id)
        .bind(video_id)
        .bind(p.position.get())
        .bind(p.watch_time.map_or(0.0, Seconds::get))
        .bind(i64::from(p.completed))
        .bind(now)
        .bind(i64::from(p.watch_time.is_none()))
        .bind(SAME_POSITION_SECS)
        .bind(now - DUPLICATE_WINDOW.as_millis() as i64)
        .fetch_optional(&mut *conn)
        .in_db_span(query_span(backend, "INSERT", "progress", SQL))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(duration: Option<f64>) -> VideoRef {
        VideoRef {
            id: "v".into(),
            duration_seconds: duration,
        }
    }

    fn input(position: f64, completed: bool) -> ProgressInput {
        ProgressInput {
            position: Seconds::parse("positionSeconds", position).unwrap(),
            watch_time: None,
            completed,
        }
    }

    #[test]
    fn seconds_reject_bad_numbers_and_name_the_field() {
        for (bad, why) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "infinity"),
            (-1.0, "negative"),
            (MAX_SECONDS + 1.0, "absurd"),
        ] {
            let err = Seconds::parse("watchTime", bad).unwrap_err().to_string();
            assert!(err.contains("watchTime"), "{why}: {err}");
        }
        assert_eq!(Seconds::parse("x", 0.0).unwrap().get(), 0.0);
    }

    #[test]
    fn video_ids() {
        let id = parse_video_id("videoId", "0B9E3C52-5F04-4A8E-9D1E-3F2A1C7D8E90").unwrap();
        assert_eq!(id.as_str(), "0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90");
        for bad in ["", "v1", "abc-123_x.mp4", "a/b", &"x".repeat(129)] {
            let err = parse_video_id("videoId", bad).unwrap_err().to_string();
            assert!(err.contains("videoId"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn auto_completes_at_95_percent_and_rejects_past_the_end() {
        let v = video(Some(100.0));
        let c = v.check(input(95.0, false), "positionSeconds").unwrap();
        assert!(c.completed && c.auto_completed);
        let c = v.check(input(94.9, false), "positionSeconds").unwrap();
        assert!(!c.completed && !c.auto_completed);
        // Already completed by the client: no auto-complete event.
        let c = v.check(input(99.0, true), "positionSeconds").unwrap();
        assert!(c.completed && !c.auto_completed);
        // Small overshoot accepted, a real one refused naming the field.
        assert!(v.check(input(101.5, false), "positionSeconds").is_ok());
        let err = v
            .check(input(200.0, false), "events[2].finalPosition")
            .unwrap_err()
            .to_string();
        assert!(err.contains("events[2].finalPosition"), "{err}");
    }

    #[test]
    fn the_list_marks_completed_at_95_percent_or_by_the_flag() {
        let at = |position_seconds: f64, completed: bool| Progress {
            video_id: "v".into(),
            position_seconds,
            watch_time_seconds: 0.0,
            completed,
            updated_at: 0,
        };
        assert_eq!(at(30.0, false).percent(Some(100.0)), 30);
        assert!(!at(94.9, false).is_completed(Some(100.0)));
        assert_eq!(at(94.9, false).percent(Some(100.0)), 94);
        assert!(at(95.0, false).is_completed(Some(100.0)));
        assert_eq!(at(95.0, false).percent(Some(100.0)), 100);
        // The flag wins: a finished lesson rewatched from the start stays finished.
        assert!(at(3.0, true).is_completed(Some(100.0)));
        assert_eq!(at(3.0, true).percent(None), 100);
        // Unknown (or zero) duration: no share, never completed by position.
        assert_eq!(at(50.0, false).percent(None), 0);
        assert!(!at(50.0, false).is_completed(Some(0.0)));
    }

    #[test]
    fn unknown_duration_never_auto_completes() {
        let c = video(None)
            .check(input(10_000.0, false), "positionSeconds")
            .unwrap();
        assert!(!c.completed && !c.auto_completed);
    }
}

//! `GET /api/videos`: the library, newest first, a page at a time.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use vidscope_core::videos::{Video, VideoId};

use super::VideoBody;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::openapi::responses::{BadInput, DbUnavailable, Unauthorized};
use crate::state::AppState;

/// Page size without `?limit=`.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `?limit=` accepted.
pub const MAX_LIMIT: usize = 500;

// Deserialize: the load generator reads the list with this type.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VideoList {
    pub videos: Vec<VideoBody>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// The query as sent: strings, so a bad value gets our JSON 400 naming the parameter rather
/// than the extractor's plain-text rejection.
#[derive(Debug, Deserialize)]
pub struct RawPage {
    limit: Option<String>,
    cursor: Option<String>,
}

/// Where a page starts: just after the video with this `(created_at, id)`. Keyset rather than
/// an offset, so a video uploaded while someone pages does not shift the pages under them.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    created_at: i64,
    id: String,
}

impl Cursor {
    fn of(v: &Video) -> Self {
        Self {
            created_at: v.created_at,
            id: v.id.clone(),
        }
    }

    fn encode(&self) -> String {
        format!("{}_{}", self.created_at, self.id)
    }

    fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "invalid_parameter",
                "cursor is not one this API returned (use the `next` of the previous page)",
            )
        };
        let (at, id) = s.split_once('_').ok_or_else(bad)?;
        // Only what `encode` writes (a Unix-millisecond time, 1 to 18 digits), which is what
        // the OpenAPI document's pattern says: no sign, no overflow.
        if at.is_empty() || at.len() > 18 || !at.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Self {
            created_at: at.parse().map_err(|_| bad())?,
            id: VideoId::parse(id).ok_or_else(bad)?.as_str().to_owned(),
        })
    }

    /// Whether `v` comes after the cursor in the listing's order (`created_at DESC, id DESC`).
    fn precedes(&self, v: &Video) -> bool {
        (v.created_at, v.id.as_str()) < (self.created_at, self.id.as_str())
    }
}

/// A checked page request.
#[derive(Debug, PartialEq)]
struct Page {
    limit: usize,
    after: Option<Cursor>,
}

impl Page {
    fn parse(raw: RawPage) -> Result<Self, ApiError> {
        let limit = crate::routes::limit(raw.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
        let after = raw.cursor.as_deref().map(Cursor::parse).transpose()?;
        Ok(Self { limit, after })
    }

    /// This page of `all` (the whole listing, in order) and the cursor of the next one.
    fn of(&self, all: &[Video]) -> (Vec<VideoBody>, Option<String>) {
        let mut rest = all
            .iter()
            .filter(|v| self.after.as_ref().is_none_or(|c| c.precedes(v)));
        let page: Vec<&Video> = rest.by_ref().take(self.limit).collect();
        let next = match (rest.next(), page.last()) {
            (Some(_), Some(last)) => Some(Cursor::of(last).encode()),
            _ => None,
        };
        (page.into_iter().map(VideoBody::from).collect(), next)
    }
}

/// Any signed-in user (viewer or admin) sees every video, whatever its status, so an admin can
/// follow processing; players check `status` before offering playback.
// The page is cut from the full listing: a lesson library is hundreds of rows, so one query
// beats a second code path in both database adapters. A keyset query in core is the next step
// if libraries grow to many thousands.
#[utoipa::path(
    get,
    path = "/api/videos",
    operation_id = "listVideos",
    summary = "List the videos",
    tag = "videos",
    security(("session" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Videos per page (default 100)"),
        ("cursor" = Option<crate::openapi::formats::Cursor>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of videos, newest first", body = VideoList),
        BadInput, Unauthorized, DbUnavailable,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(_): CurrentUser,
    Query(raw): Query<RawPage>,
) -> Result<Json<VideoList>, ApiError> {
    let page = Page::parse(raw)?;
    let all = vidscope_core::videos::list(&state.db).await?;
    let (videos, next) = page.of(&all);
    Ok(Json(VideoList { videos, next }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidscope_core::videos::VideoStatus;

    fn raw(limit: Option<&str>, cursor: Option<&str>) -> RawPage {
        RawPage {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
        }
    }

    fn message(r: Result<Page, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { message, .. }) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    fn video(created_at: i64, n: u8) -> Video {
        Video {
            id: format!("00000000-0000-4000-8000-0000000000{n:02}"),
            filename: format!("v{n}.mp4"),
            title: "t".into(),
            description: String::new(),
            content_type: "video/mp4".into(),
            size_bytes: 1,
            status: VideoStatus::Ready,
            duration_seconds: None,
            thumbnail_key: None,
            video_codec: None,
            audio_codec: None,
            width: None,
            height: None,
            uploaded_by: None,
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn limits() {
        assert_eq!(Page::parse(raw(None, None)).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(Page::parse(raw(Some("1"), None)).unwrap().limit, 1);
        assert_eq!(Page::parse(raw(Some("500"), None)).unwrap().limit, 500);
        for bad in [
            "0",
            "501",
            "-1",
            "ten",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            let m = message(Page::parse(raw(Some(bad), None)));
            assert!(m.starts_with("limit "), "{bad:?}: {m}");
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let c = Cursor::of(&video(5, 1));
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "x",
            "5_",
            "_00000000-0000-4000-8000-000000000001",
            "5_not-a-uuid",
            "+5_00000000-0000-4000-8000-000000000001",
            "-5_00000000-0000-4000-8000-000000000001",
            "1234567890123456789_00000000-0000-4000-8000-000000000001",
            "5_00000000000040008000000000000001",
        ] {
            let m = message(Page::parse(raw(None, Some(bad))));
            assert!(m.starts_with("cursor "), "{bad:?}: {m}");
        }
    }

    #[test]
    fn pages_follow_the_order_including_ties() {
        // Newest first, ties on created_at broken by id descending (as `videos::list` sorts).
        let all = [
            video(3, 9),
            video(2, 8),
            video(2, 7),
            video(2, 6),
            video(1, 5),
        ];
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (videos, next) = Page { limit: 2, after }.of(&all);
            seen.extend(videos.into_iter().map(|v| v.id));
            match next {
                Some(n) => after = Some(Cursor::parse(&n).unwrap()),
                None => break,
            }
        }
        let expected: Vec<_> = all.iter().map(|v| v.id.clone()).collect();
        assert_eq!(seen, expected);
        let (videos, next) = Page {
            limit: 5,
            after: None,
        }
        .of(&all);
        assert_eq!(
            (videos.len(), next),
            (5, None),
            "an exact fit has no next page"
        );
    }
}

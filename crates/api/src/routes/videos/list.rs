//! `GET /api/videos`: the library, newest first, a page at a time.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use vidscope_core::CoreError;
use vidscope_core::videos::{self, ListCursor, ListQuery, TitleSearch, VideoId};

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
/// than the extractor's plain-text rejection. The lesson list page (`GET /videos`) takes the
/// same parameters.
#[derive(Debug, Default, Deserialize)]
pub struct RawPage {
    pub(crate) limit: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) q: Option<String>,
}

/// A `?cursor=`: `<created_at>_<id>` of the last video of the previous page.
pub(crate) fn encode_cursor(c: &ListCursor) -> String {
    format!("{}_{}", c.created_at, c.id)
}

fn parse_cursor(s: &str) -> Result<ListCursor, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_parameter",
            "cursor is not one this API returned (use the `next` of the previous page)",
        )
    };
    let (at, id) = s.split_once('_').ok_or_else(bad)?;
    // Only what `encode_cursor` writes (a Unix-millisecond time, 1 to 18 digits), which is
    // what the OpenAPI document's pattern says: no sign, no overflow.
    if at.is_empty() || at.len() > 18 || !at.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(ListCursor {
        created_at: at.parse().map_err(|_| bad())?,
        id: VideoId::parse(id).ok_or_else(bad)?.as_str().to_owned(),
    })
}

/// A checked page request.
#[derive(Debug, PartialEq)]
pub(crate) struct Page {
    pub(crate) limit: usize,
    pub(crate) after: Option<ListCursor>,
    pub(crate) search: Option<TitleSearch>,
}

impl Page {
    /// `default` videos per page without `?limit=`, at most `max`.
    pub(crate) fn parse(raw: RawPage, default: usize, max: usize) -> Result<Self, ApiError> {
        let limit = crate::routes::limit(raw.limit.as_deref(), default, max)?;
        let after = raw.cursor.as_deref().map(parse_cursor).transpose()?;
        let search = match raw.q.as_deref() {
            None => None,
            Some(q) => TitleSearch::parse("q", q).map_err(|e| match e {
                CoreError::Invalid(m) => ApiError::bad_request("invalid_parameter", m),
                other => ApiError::Core(other),
            })?,
        };
        Ok(Self {
            limit,
            after,
            search,
        })
    }

    /// The core query of this page.
    pub(crate) fn query(&self) -> ListQuery<'_> {
        ListQuery {
            search: self.search.as_ref(),
            after: self.after.as_ref(),
            limit: self.limit,
        }
    }
}

/// Any signed-in user (viewer or admin) sees every video, whatever its status, so an admin can
/// follow processing; players check `status` before offering playback.
#[utoipa::path(
    get, path = "/api/videos", operation_id = "listVideos",
    summary = "List the videos",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Videos per page (default 100)"),
        ("cursor" = Option<crate::openapi::formats::Cursor>, Query, description = "The `next` of the previous page"),
        ("q" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            description = "Only videos whose title contains this text (ASCII letters in any case; white space around it is dropped, blank means all)"),
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
    let page = Page::parse(raw, DEFAULT_LIMIT, MAX_LIMIT)?;
    let listed = videos::list_page(&state.db, None, &page.query()).await?;
    Ok(Json(VideoList {
        videos: listed
            .videos
            .iter()
            .map(|l| VideoBody::from(&l.video))
            .collect(),
        next: listed.next.as_ref().map(encode_cursor),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(limit: Option<&str>, cursor: Option<&str>, q: Option<&str>) -> RawPage {
        RawPage {
            limit: limit.map(str::to_owned),
            cursor: cursor.map(str::to_owned),
            q: q.map(str::to_owned),
        }
    }

    fn parse(r: RawPage) -> Result<Page, ApiError> {
        Page::parse(r, DEFAULT_LIMIT, MAX_LIMIT)
    }

    fn message(r: Result<Page, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { message, .. }) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn limits() {
        assert_eq!(parse(raw(None, None, None)).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(parse(raw(Some("1"), None, None)).unwrap().limit, 1);
        assert_eq!(parse(raw(Some("500"), None, None)).unwrap().limit, 500);
        for bad in [
            "0",
            "501",
            "-1",
            "ten",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            let m = message(parse(raw(Some(bad), None, None)));
            assert!(m.starts_with("limit "), "{bad:?}: {m}");
        }
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let c = ListCursor {
            created_at: 5,
            id: "00000000-0000-4000-8000-000000000001".into(),
        };
        assert_eq!(parse_cursor(&encode_cursor(&c)).unwrap(), c);
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
            let m = message(parse(raw(None, Some(bad), None)));
            assert!(m.starts_with("cursor "), "{bad:?}: {m}");
        }
    }

    #[test]
    fn searches_are_optional_and_bad_ones_are_named() {
        assert_eq!(parse(raw(None, None, Some(" "))).unwrap().search, None);
        let page = parse(raw(None, None, Some(" Fractions "))).unwrap();
        assert_eq!(page.search.unwrap().as_str(), "Fractions");
        for bad in ["a\u{7}b".to_owned(), "x".repeat(201)] {
            let m = message(parse(raw(None, None, Some(&bad))));
            assert!(m.starts_with("q "), "{bad:?}: {m}");
        }
    }
}

//! `GET /videos`: the lesson list, rendered here (`templates/videos.html`), a page at a time.
//!
//! Everyone signed in sees the lessons with their thumbnails, their own progress in each (a bar
//! and a "completed" mark, [`vidscope_core::progress::Progress::is_completed`]), a "continue watching" row (lessons
//! started and not finished, last watched first), a title search (`?q=`) and keyset paging
//! (`?cursor=`, `?limit=`): the parameters and the query of `GET /api/videos`
//! ([`videos::list_page`]), so the page and the API never disagree and a deep page costs
//! what the first does. A bad parameter is the API's JSON 400 naming it.
//!
//! Admins also get the upload form and, on each lesson, edit, delete and (for a `failed`
//! lesson) reprocess. The server renders those controls for admins only; the API refuses
//! anyone else anyway. The page's script (`assets/videos.js`) calls the existing API routes and
//! follows status changes over the WebSocket (`/api/ws`).

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use vidscope_core::videos::{self, Listed};

use crate::auth::MaybeUser;
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::responses::{DbUnavailable, ToLogin};
use crate::routes::videos::VideoBody;
use crate::routes::videos::list::{Page, RawPage, encode_cursor};
use crate::state::AppState;

/// Lessons per page without `?limit=`.
pub const PAGE_SIZE: usize = 24;
/// Largest `?limit=` the page takes.
pub const MAX_PAGE_SIZE: usize = 100;
/// Lessons in the "continue watching" row.
pub const CONTINUE_WATCHING: usize = 6;

#[derive(Template)]
#[template(path = "videos.html")]
struct VideosPage<'a> {
    email: &'a str,
    admin: bool,
    /// The search as typed (trimmed), for the search box; empty: none.
    q: &'a str,
    cards: Vec<Card>,
    /// Shown on the first page of the unfiltered list only.
    continuing: Vec<Card>,
    /// Empty: this is the last page.
    next_url: String,
    /// Empty: this is the first page.
    first_url: String,
    /// An empty card for the script to copy when an upload adds a lesson (admins only).
    blank: Card,
}

/// A lesson as its card shows it (`templates/video_card.html`).
struct Card {
    id: String,
    title: String,
    description: String,
    /// `uploaded`, `processing`, `ready` or `failed`: a class and `data-status`.
    status: String,
    thumbnail_url: Option<String>,
    /// `m:ss`; empty while unknown.
    duration: String,
    /// The viewer's share watched, 0 to 100; `None` when they never started it.
    percent: Option<u8>,
    completed: bool,
}

impl Card {
    fn of(listed: &Listed) -> Self {
        let body = VideoBody::from(&listed.video);
        let duration = body.duration_seconds;
        Self {
            percent: listed.progress.as_ref().map(|p| p.percent(duration)),
            completed: listed
                .progress
                .as_ref()
                .is_some_and(|p| p.is_completed(duration)),
            duration: duration.map(clock).unwrap_or_default(),
            id: body.id,
            title: body.title,
            description: body.description,
            status: body.status,
            thumbnail_url: body.thumbnail_url,
        }
    }

    fn blank() -> Self {
        Self {
            id: String::new(),
            title: String::new(),
            description: String::new(),
            status: "uploaded".into(),
            thumbnail_url: None,
            duration: String::new(),
            percent: None,
            completed: false,
        }
    }
}

/// `m:ss`, or `h:mm:ss` from an hour.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// What a query value keeps as is: letters, digits and `-_.~` (RFC 3986's unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `/videos` with these parameters (the search first), percent-encoded.
fn page_url(q: &str, cursor: Option<&str>, limit: Option<&str>) -> String {
    let params: Vec<String> = [("q", Some(q)), ("cursor", cursor), ("limit", limit)]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect();
    if params.is_empty() {
        "/videos".to_owned()
    } else {
        format!("/videos?{}", params.join("&"))
    }
}

/// The lesson list
#[utoipa::path(
    get, path = "/videos", operation_id = "videosPage",
    params(
        ("q" = Option<String>, Query, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
            description = "Only lessons whose title contains this text (as on `GET /api/videos`)"),
        ("cursor" = Option<crate::openapi::formats::Cursor>, Query, description = "Where the page starts (the page's own `Next page` link)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Lessons per page (default 24)"),
    ),
    responses(
        (status = 200, description = "A page of the lesson list with the viewer's progress; for admins, the upload form and each lesson's controls", content_type = "text/html", body = String),
        (status = 400, description = "A bad `q`, `cursor` or `limit` (checked before the session; the message names it)", body = crate::error::ErrorBody),
        ToLogin, DbUnavailable,
    )
)]
#[tracing::instrument(
    name = "page.videos",
    skip_all,
    fields(user.id = tracing::field::Empty, videos.listed = tracing::field::Empty)
)]
pub async fn get(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    uri: Uri,
    Query(raw): Query<RawPage>,
) -> Result<Response, ApiError> {
    // The parameters first, as the player checks its id: a URL no one can get a page of is a
    // 400 whoever asks, rather than a trip through the login page that ends in one.
    let limit = raw.limit.clone();
    let page = Page::parse(raw, PAGE_SIZE, MAX_PAGE_SIZE)?;
    let Some(user) = user else {
        return Ok(super::to_login(&uri));
    };
    tracing::Span::current().record("user.id", user.id.as_str());
    let listed = videos::list_page(&state.db, Some(&user.id), &page.query()).await?;
    tracing::Span::current().record("videos.listed", listed.videos.len() as i64);
    let q = page.search.as_ref().map_or("", |s| s.as_str());
    let first = page.after.is_none();
    let continuing = if first && q.is_empty() {
        videos::continue_watching(&state.db, &user.id, CONTINUE_WATCHING).await?
    } else {
        Vec::new()
    };
    let next_url = listed.next.as_ref().map_or_else(String::new, |c| {
        page_url(q, Some(&encode_cursor(c)), limit.as_deref())
    });
    let first_url = if first {
        String::new()
    } else {
        page_url(q, None, limit.as_deref())
    };
    let html = super::render(&VideosPage {
        email: &user.email,
        admin: user.is_admin(),
        q,
        cards: listed.videos.iter().map(Card::of).collect(),
        continuing: continuing.iter().map(Card::of).collect(),
        next_url,
        first_url,
        blank: Card::blank(),
    })?;
    Ok(html.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(59.6), "1:00");
        assert_eq!(clock(605.0), "10:05");
        assert_eq!(clock(3725.0), "1:02:05");
    }

    #[test]
    fn page_urls_encode_the_search_and_skip_what_is_absent() {
        assert_eq!(page_url("", None, None), "/videos");
        assert_eq!(
            page_url("a&b c", Some("5_x"), Some("10")),
            "/videos?q=a%26b%20c&cursor=5_x&limit=10"
        );
    }

    /// Titles and descriptions are user input: they come out as text in the cards and in
    /// the edit form's values.
    #[test]
    fn a_hostile_title_comes_out_escaped_and_only_admins_get_controls() {
        let hostile = r#"</textarea><script>alert("x")</script>" onfocus="x"#;
        let card = || Card {
            title: hostile.into(),
            description: hostile.into(),
            ..Card::blank()
        };
        let page = |admin| VideosPage {
            email: "a@example.com",
            admin,
            q: hostile,
            cards: vec![card()],
            continuing: vec![card()],
            next_url: page_url(hostile, None, None),
            first_url: String::new(),
            blank: Card::blank(),
        };
        for admin in [false, true] {
            let html = page(admin).render().unwrap();
            for raw in ["<script>alert", "</textarea><script", "\" onfocus=\""] {
                assert!(!html.contains(raw), "{raw:?} came through:\n{html}");
            }
            assert_eq!(html.contains("id=\"upload\""), admin, "{html}");
            assert_eq!(html.contains("class=\"delete\""), admin, "{html}");
        }
    }
}

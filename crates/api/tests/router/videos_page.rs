//! The lesson list page (`GET /videos`, issue 28): admins' controls rendered for admins only,
//! the viewer's progress on each lesson and the "continue watching" row, the title search and
//! the keyset paging, and bad parameters answered with the API's JSON 400 naming them.

use serde_json::json;
use vidscope_core::domain::Role;
use vidscope_core::videos::VideoId;
use vidscope_testkit::db::insert_video_row;

use super::{Answer, get, insert_video, post_json};
use vidscope_testkit::router::{TestRouter, test_router};

/// The `data-video-id`s of the cards in the element with this id (`videos`: the list,
/// `continue`: the continue-watching row), in order.
fn card_ids(html: &str, id: &str) -> Vec<String> {
    let part = html
        .split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_default();
    let part = part.split("</section>").next().unwrap_or_default();
    let part = part
        .split("<nav class=\"pages\">")
        .next()
        .unwrap_or_default();
    part.split("class=\"video-card ")
        .skip(1)
        .filter_map(|c| c.split("data-video-id=\"").nth(1))
        .filter_map(|c| c.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The HTML of the card of lesson `id` in the list (`#videos`).
fn card_html<'a>(html: &'a str, id: &str) -> &'a str {
    let list = html.split("id=\"videos\"").nth(1).expect("the list");
    let card = list
        .split(&format!("data-video-id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no card of {id} in the list:\n{list}"));
    card.split("</article>").next().unwrap_or_default()
}

/// The `href` of the link with this id, HTML entities of the query undone.
fn link(html: &str, id: &str) -> Option<String> {
    let needle = format!("id=\"{id}\" href=\"");
    let start = html.find(&needle)? + needle.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

async fn page(app: &TestRouter, path: &str, cookie: &str) -> String {
    get(app, path, Some(cookie)).await.assert_html()
}

/// What only an admin's lesson list has: the upload form and the links to the admins' pages.
const ADMIN_PAGE_CONTROLS: [&str; 5] = [
    "id=\"upload\"",
    "id=\"upload-progress\"",
    "id=\"new-card\"",
    "href=\"/trace-viewer\"",
    "href=\"/users\"",
];

/// What only an admin's lesson cards have.
const ADMIN_CARD_CONTROLS: [&str; 3] = [
    "class=\"edit-form\"",
    "class=\"delete\"",
    "class=\"reprocess\"",
];

#[tokio::test]
async fn admin_controls_and_the_upload_form_are_rendered_for_admins_only() {
    let app = test_router().await;
    let failed = insert_video(&app, "Broken lesson", "failed").await;
    let ready = insert_video(&app, "Good lesson", "ready").await;
    let viewer = app.create_user(Role::Viewer).await.cookie;
    let admin = app.create_user(Role::Admin).await.cookie;

    let html = page(&app, "/videos", &viewer).await;
    for control in ADMIN_PAGE_CONTROLS.iter().chain(&ADMIN_CARD_CONTROLS) {
        assert!(!html.contains(control), "a viewer sees {control}:\n{html}");
    }
    assert!(
        html.contains("href=\"/account\""),
        "no link to the account page:\n{html}"
    );
    let mut both = [ready, failed.clone()];
    both.sort();
    both.reverse();
    assert_eq!(
        card_ids(&html, "videos"),
        both,
        "a viewer sees every lesson"
    );

    let html = page(&app, "/videos", &admin).await;
    for control in ADMIN_PAGE_CONTROLS.iter().chain(&["href=\"/account\""]) {
        assert!(html.contains(control), "an admin has no {control}:\n{html}");
    }
    // Every card has its controls; reprocess shows on the failed lesson only.
    let list = html.split("id=\"videos\"").nth(1).unwrap();
    let list = list.split("id=\"new-card\"").next().unwrap();
    assert_eq!(list.matches("class=\"delete\"").count(), 2, "{list}");
    assert_eq!(list.matches("class=\"edit-form\"").count(), 2, "{list}");
    assert_eq!(list.matches("class=\"reprocess\">").count(), 1, "{list}");
    assert_eq!(
        list.matches("class=\"reprocess\" hidden>").count(),
        1,
        "{list}"
    );
    let failed_card = card_html(&html, &failed);
    for part in ["class=\"reprocess\">", "value=\"Broken lesson\""] {
        assert!(failed_card.contains(part), "{failed_card}");
    }
}

#[tokio::test]
async fn bad_search_and_paging_parameters_are_a_400_naming_them() {
    let app = test_router().await;
    let viewer = app.create_user(Role::Viewer).await.cookie;
    let long = "x".repeat(201);
    for (query, named) in [
        ("limit=0", "limit "),
        ("limit=101", "limit "),
        ("limit=ten", "limit "),
        ("cursor=yesterday", "cursor "),
        ("cursor=5_not-a-uuid", "cursor "),
        (&format!("q={long}") as &str, "q "),
        ("q=a%07b", "q "),
        ("q=fractions%09", "q "),
    ] {
        let a: Answer = get(&app, &format!("/videos?{query}"), Some(&viewer)).await;
        a.assert_error(400, "invalid_parameter", named);
        // The JSON list takes the same parameters the same way (its limit goes to 500).
        if !query.starts_with("limit=101") {
            get(&app, &format!("/api/videos?{query}"), Some(&viewer))
                .await
                .assert_error(400, "invalid_parameter", named);
        }
    }
    // Checked before the session: no trip through the login page for a URL that cannot work.
    get(&app, "/videos?limit=0", None)
        .await
        .assert_error(400, "invalid_parameter", "limit ");
    get(&app, "/videos?q=x", None)
        .await
        .assert_redirect("/login?next=/videos");
    // Blank searches are no search.
    page(&app, "/videos?q=%20%20", &viewer).await;
}

#[tokio::test]
async fn the_search_matches_titles_and_the_pages_follow_each_other() {
    let app = test_router().await;
    let viewer = app.create_user(Role::Viewer).await.cookie;
    let mut fractions = Vec::new();
    for n in 0..5 {
        fractions.push(insert_video(&app, &format!("Fractions, part {n}"), "ready").await);
    }
    let percent = insert_video(&app, "100% of geometry", "ready").await;
    insert_video(&app, "1000 of geometry", "ready").await;
    // All rows share `created_at` (0): the order is by id, descending.
    fractions.sort();
    fractions.reverse();

    // Three pages of two, the search kept in the links, case ignored.
    let mut url = "/videos?q=fraCTIONS&limit=2".to_owned();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let html = page(&app, &url, &viewer).await;
        assert!(
            html.contains("value=\"fraCTIONS\""),
            "the box keeps the search"
        );
        seen.extend(card_ids(&html, "videos"));
        pages += 1;
        if pages > 1 {
            assert_eq!(
                link(&html, "first-page").as_deref(),
                Some("/videos?q=fraCTIONS&limit=2")
            );
        }
        match link(&html, "next-page") {
            Some(next) => {
                assert!(next.starts_with("/videos?q=fraCTIONS&cursor="), "{next}");
                url = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, fractions);

    // `%` is a character, not a wildcard.
    let html = page(&app, "/videos?q=100%25", &viewer).await;
    assert_eq!(card_ids(&html, "videos"), [percent]);
    let html = page(&app, "/videos?q=nothing+like+it", &viewer).await;
    assert!(card_ids(&html, "videos").is_empty());
    assert!(
        html.contains("No lesson title contains “nothing like it”."),
        "{html}"
    );
}

#[tokio::test]
async fn each_viewer_sees_their_own_progress_and_what_to_continue() {
    let app = test_router().await;
    let viewer = app.create_user(Role::Viewer).await.cookie;
    let other = app.create_user(Role::Viewer).await.cookie;
    // 60 s lessons.
    let half = insert_video(&app, "Half watched", "ready").await;
    let done = insert_video(&app, "Watched to the end", "ready").await;
    let unseen = insert_video(&app, "Not started", "ready").await;
    // Saved at 59 s while the duration was unknown (no completed flag), probed as 60 s after.
    let late = VideoId::generate();
    insert_video_row(&app.state.db, late.as_str(), "Probed late", "ready", None).await;
    let late = late.as_str().to_owned();
    for (id, position) in [(&half, 30.0), (&done, 58.0), (&late, 59.0)] {
        let body = json!({"videoId": id, "positionSeconds": position, "watchTime": position});
        let a = post_json(&app, "/api/progress", Some(&viewer), body).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    sqlx::query("UPDATE videos SET duration_seconds = 60.0 WHERE id = $1")
        .bind(&late)
        .execute(app.state.db.pool())
        .await
        .unwrap();

    let html = page(&app, "/videos", &viewer).await;
    let card = |id: &str| card_html(&html, id);
    let c = card(&half);
    assert!(c.contains("<progress max=\"100\" value=\"50\""), "{c}");
    assert!(!c.contains("completed"), "{c}");
    // 58 of 60 s is past 95 %: completed, a full bar.
    let c = card(&done);
    assert!(
        c.contains("value=\"100\"") && c.contains("✓ completed"),
        "{c}"
    );
    let c = card(&late);
    assert!(
        c.contains("value=\"100\"") && c.contains("✓ completed"),
        "{c}"
    );
    let c = card(&unseen);
    assert!(!c.contains("<progress"), "{c}");
    // Continue watching: the lesson started and not finished (by the same 95 % rule), nothing
    // else.
    assert_eq!(card_ids(&html, "continue"), [half]);

    // Another viewer has no progress and nothing to continue.
    let html = page(&app, "/videos", &other).await;
    assert!(!html.contains("<progress"), "{html}");
    assert!(!html.contains("id=\"continue\""), "{html}");
    // Not on later pages nor on a search either.
    let html = page(&app, "/videos?q=watched", &viewer).await;
    assert!(!html.contains("id=\"continue\""), "{html}");
}

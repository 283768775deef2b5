//! The HTML pages: sign-in, the lesson list and the player. Pages need a session like the API
//! does, but answer a missing one with a redirect to `/login` (and the seed's
//! `middleware.redirect` event) instead of a 401. Everything a page needs is inlined at build
//! time (`assets/`): no CDN, no second origin, nothing to deploy beside the binary.

pub mod home;
pub mod login;
pub mod player;
pub mod trace_viewer;
pub mod videos;

use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use opentelemetry::KeyValue;
use vidscope_telemetry::SpanExt as _;

/// The stylesheet every page inlines.
const SITE_CSS: &str = include_str!("../../assets/site.css");

/// Sends an anonymous page request to the login page, remembering where it was going.
pub(crate) fn to_login(from: &Uri) -> Response {
    let from = from.path();
    tracing::Span::current().add_event(
        "middleware.redirect",
        vec![
            KeyValue::new("from", from.to_owned()),
            KeyValue::new("to", "/login"),
            KeyValue::new("reason", "no_session"),
        ],
    );
    // `from` is a path of this site: only [A-Za-z0-9/._-] survive, so it cannot smuggle a
    // query or another origin into the redirect.
    let safe: String = from
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        .collect();
    Redirect::to(&format!("/login?next={safe}")).into_response()
}

/// A page template with the shared stylesheet filled in. Templates mark their slots with
/// `/*NAME*/` comments, which stay valid HTML/CSS/JS when a slot is left empty.
fn with_css(template: &str) -> String {
    template.replace("/*SITE_CSS*/", SITE_CSS)
}

/// Escapes text for an HTML element or a double-quoted attribute.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside `<script type="application/json">`: `<` is written as `\u003c`,
/// so a value holding `</script>` cannot end the element (the JSON stays equal).
pub(crate) fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape_html(r#"<b a="1">Tom & 'Jerry'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn script_json_cannot_close_the_script_element() {
        let v = serde_json::json!({"title": "</script><script>alert(1)</script>"});
        let s = script_json(&v);
        assert!(!s.contains("</"), "{s}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).unwrap(), v);
    }
}

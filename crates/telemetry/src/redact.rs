//! Secret scrubbing for every signal.
//!
//! Handlers record only fields they choose, but a careless `%error`, a URL with a presigned
//! query or a header dump can still carry a secret. So every span, event and log record passes
//! through [`redact_str`] / [`is_sensitive_key`] on the export thread (never on the request
//! path), and metric labels are limited to the catalog's allow-list.
//!
//! Hand-written rather than a regex crate: the patterns are a fixed list of names followed by
//! `=` or `:`, and a byte scanner keeps the export thread cheap and the dependency tree small.

use std::borrow::Cow;

pub const REDACTED: &str = "[REDACTED]";

/// Names whose values are secrets wherever they appear: attribute keys, query parameters,
/// `key=value` or `"key": "value"` inside free text.
const SENSITIVE_NAMES: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "signature",
    "credential",
    "session_id",
    "sessionid",
    "vidscope_session",
];

/// Schemes whose following word is a credential (`Authorization: Bearer abc`).
const AUTH_SCHEMES: &[&str] = &["bearer ", "basic "];

/// An attribute whose key names a secret is replaced whole.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SENSITIVE_NAMES.iter().any(|n| k.contains(n))
}

/// Replaces secret values inside free text. Returns the input unchanged (borrowed) in the
/// common case, so clean strings cost one scan and no allocation.
pub fn redact_str(s: &str) -> Cow<'_, str> {
    let lower = s.to_ascii_lowercase();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for name in SENSITIVE_NAMES {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(name) {
            let start = from + pos + name.len();
            from = start;
            if let Some(range) = value_after_separator(s.as_bytes(), start) {
                spans.push(range);
            }
        }
    }
    for scheme in AUTH_SCHEMES {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(scheme) {
            let start = from + pos + scheme.len();
            from = start;
            let end = value_end(s.as_bytes(), start);
            if end > start {
                spans.push((start, end));
            }
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(s);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (start, end) in spans {
        if start < last {
            continue;
        }
        out.push_str(&s[last..start]);
        out.push_str(REDACTED);
        last = end;
    }
    out.push_str(&s[last..]);
    Cow::Owned(out)
}

/// After a sensitive name: optional closing quote, spaces, then `=` or `:`, spaces, an optional
/// opening quote, and the value. `None` when the name is just a word in a sentence.
fn value_after_separator(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
    // Allow the rest of an identifier (`password_hash`, `tokenValue`) before the separator.
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
        i += 1;
    }
    while i < b.len() && (b[i] == b'"' || b[i] == b'\'' || b[i] == b' ') {
        i += 1;
    }
    if i >= b.len() || !(b[i] == b'=' || b[i] == b':') {
        return None;
    }
    i += 1;
    while i < b.len() && (b[i] == b' ' || b[i] == b'"' || b[i] == b'\'') {
        i += 1;
    }
    // `Authorization: Bearer x` — keep the scheme word, the scheme rule redacts the credential.
    let lower_rest = b[i..].to_ascii_lowercase();
    if AUTH_SCHEMES
        .iter()
        .any(|s| lower_rest.starts_with(s.as_bytes()))
    {
        return None;
    }
    let end = value_end(b, i);
    (end > i).then_some((i, end))
}

fn value_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len()
        && !matches!(
            b[i],
            b'&' | b' ' | b',' | b'"' | b'\'' | b';' | b'}' | b'\n'
        )
    {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_free_text_are_removed() {
        let cases = [
            ("login failed password=hunter2 for a@b.c", "hunter2"),
            (r#"{"email":"a@b.c","password":"hunter2"}"#, "hunter2"),
            (
                "https://s3/b/k.mp4?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=deadbeef",
                "deadbeef",
            ),
            (
                "https://s3/b/k.mp4?X-Amz-Credential=AKIAXYZ&X-Amz-Date=1",
                "AKIAXYZ",
            ),
            ("authorization: Bearer eyJhbGciOi.abc", "eyJhbGciOi.abc"),
            ("Cookie: vidscope_session=s3cr3t; theme=dark", "s3cr3t"),
            ("refresh_token=r1&x=1", "r1"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ];
        for (input, secret) in cases {
            let out = redact_str(input);
            assert!(
                !out.contains(secret),
                "{input:?} -> {out:?} still has {secret:?}"
            );
            assert!(out.contains(REDACTED), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for s in [
            "GET /api/videos/intro.mp4",
            "the password field is required",
            "token bucket refilled",
        ] {
            assert!(matches!(redact_str(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn sensitive_keys() {
        for k in [
            "password",
            "http.request.header.authorization",
            "http.request.header.cookie",
            "user.password_hash",
            "s3.signed_url.signature",
            "oauth.access_token",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in ["http.route", "user.id", "video.filename", "s3.key"] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }
}

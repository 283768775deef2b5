//! Secret scrubbing (`vidscope_telemetry::redact`): any text, and texts built with a secret in
//! each place the rule promises to find one (`name=value`, `"name": "value"`, `Bearer value`,
//! with spaces, tabs and quotes around), inside any text. Never panics; a clean text comes back
//! borrowed and unchanged; scrubbing twice changes nothing more; a secret never survives: the
//! output is the same whatever the secret was.
//!
//! Input: `raw:<text>` (the seeds: log lines, headers, URLs, JSON), or anything else, read as
//! a text with a secret placed in it (`arbitrary`).

#![no_main]

use std::borrow::Cow;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use vidscope_telemetry::redact::{REDACTED, is_sensitive_key, redact_str};

/// Names the rule covers, as they appear in the wild.
const NAMES: &[&str] = &[
    "password",
    "Passwd",
    "client_secret",
    "refresh_token",
    "Authorization",
    "Cookie",
    "set-cookie",
    "api_key",
    "ApiKey",
    "X-API-KEY",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "signature",
    "credential",
    "session_id",
    "sessionId",
    "vidscope_session",
];
const SCHEMES: &[&str] = &["Bearer", "bearer", "BASIC", "Basic"];
const SPACES: &[&str] = &["", " ", "  ", "\t", " \t "];
const QUOTES: &[&str] = &["", "\"", "'"];
/// What may follow a value.
const ENDS: &[&str] = &["", "&", ",", ";", " ", "}", "\n", "\"", "'"];

#[derive(Arbitrary, Debug)]
enum Place {
    /// `q name q ws sep ws q secret`
    Named {
        name: u8,
        sep_colon: bool,
        quote: u8,
        before: u8,
        after: u8,
    },
    /// `[Authorization: ]Scheme<spaces>secret`
    Scheme {
        scheme: u8,
        spaces: u8,
        header: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    text: &'a str,
    prefix: &'a str,
    place: Place,
    /// The secret's digits (at least one).
    secret: Vec<u8>,
    end: u8,
    suffix: &'a str,
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

fn check_any(text: &str) {
    let once = redact_str(text);
    match &once {
        Cow::Borrowed(b) => assert_eq!(*b, text),
        // (A copy may equal the text: a secret that was `[REDACTED]` already.)
        Cow::Owned(o) => assert!(o.contains(REDACTED), "{text:?} -> {o:?}"),
    }
    let twice = redact_str(&once);
    assert_eq!(
        twice.as_ref(),
        once.as_ref(),
        "scrubbing again changed {text:?}"
    );
}

/// `prefix`, the secret at `place`, then `end` and `suffix`.
fn build(input: &Input<'_>, secret: &str) -> String {
    let mut s = input.prefix.to_owned();
    match input.place {
        Place::Named {
            name,
            sep_colon,
            quote,
            before,
            after,
        } => {
            let q = pick(QUOTES, quote);
            s.push_str(q);
            s.push_str(pick(NAMES, name));
            s.push_str(q);
            s.push_str(pick(SPACES, before));
            s.push(if sep_colon { ':' } else { '=' });
            s.push_str(pick(SPACES, after));
            s.push_str(q);
        }
        Place::Scheme {
            scheme,
            spaces,
            header,
        } => {
            if header {
                s.push_str("Authorization: ");
            }
            s.push_str(pick(SCHEMES, scheme));
            s.push_str(&" ".repeat(1 + usize::from(spaces % 3)));
        }
    }
    s.push_str(secret);
    s.push_str(pick(ENDS, input.end));
    s.push_str(input.suffix);
    s
}

fuzz_target!(|data: &[u8]| {
    if let Some(raw) = data.strip_prefix(b"raw:") {
        if let Ok(text) = std::str::from_utf8(raw) {
            check_any(text);
        }
        return;
    }
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    check_any(input.text);
    assert_eq!(
        is_sensitive_key(input.text),
        vidscope_telemetry::redact::is_sensitive_key_cached(input.text)
    );
    if input.secret.is_empty() {
        return;
    }
    // Two secrets that differ in every character: if any of either is left, the outputs differ.
    let one: String = input
        .secret
        .iter()
        .map(|d| char::from(b'0' + d % 10))
        .collect();
    let other: String = input
        .secret
        .iter()
        .map(|d| char::from(b'0' + (d % 10 + 1) % 10))
        .collect();
    let (a, b) = (build(&input, &one), build(&input, &other));
    let (ra, rb) = (redact_str(&a), redact_str(&b));
    assert_eq!(ra, rb, "a secret survived: {a:?} -> {ra:?}");
    check_any(&a);
});

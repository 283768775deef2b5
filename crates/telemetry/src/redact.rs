//! Secret scrubbing for every signal.
//!
//! Handlers record only fields they choose, but a careless `%error`, a URL with a presigned
//! query or a header dump can still carry a secret. So every span, event and log record passes
//! through [`redact_str`] / [`is_sensitive_key`] on the export thread (never on the request
//! path), and metric labels are limited to the catalog's allow-list (by views, or for the
//! per-request HTTP histogram by a test of its one call site).
//!
//! Hand-written rather than a regex crate: the patterns are a fixed list of names followed by
//! `=` or `:`, and a byte scanner keeps the export thread cheap and the dependency tree small.

use std::borrow::Cow;
use std::cell::RefCell;

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
    contains_sensitive_name(key.as_bytes())
}

/// [`is_sensitive_key`] with a per-thread memo. Attribute keys come from a small fixed set
/// (field names in code, the catalog), and the export threads ask about the same dozen keys
/// for every span, so a lookup beats rescanning. Bounded: past [`KEY_CACHE_CAP`] distinct keys
/// it stops remembering and scans.
pub fn is_sensitive_key_cached(key: &str) -> bool {
    // First level: a slot chosen by the key's address, holding a copy of the last key seen
    // there. Most keys are `&'static str`s from code, so the same key comes back at the same
    // address and is found without hashing its text; the answer is taken only when the text
    // matches, so a reused address with other text cannot get another key's answer.
    // Measured (callgrind, 13 lookups per request at 100 % sampling): ~95 instructions per
    // lookup through the map alone, ~47 with this level in front.
    thread_local! {
        static NEAR: RefCell<[NearSlot; NEAR_SLOTS]> =
            const { RefCell::new([const { None }; NEAR_SLOTS]) };
    }
    let slot = near_slot(key);
    NEAR.with(|near| {
        let mut near = near.borrow_mut();
        if let Some((k, v)) = &near[slot]
            && **k == *key
        {
            return *v;
        }
        let v = is_sensitive_key_mapped(key);
        near[slot] = Some((key.into(), v));
        v
    })
}

const NEAR_SLOTS: usize = 256;

/// A key's text and whether it is sensitive.
type NearSlot = Option<(Box<str>, bool)>;

/// Fibonacci hashing of the address: its top bits spread keys that sit next to each other in
/// the binary's read-only data.
fn near_slot(key: &str) -> usize {
    let h = (key.as_ptr() as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - NEAR_SLOTS.trailing_zeros())) as usize
}

/// The second level: every key seen, by its text.
fn is_sensitive_key_mapped(key: &str) -> bool {
    // foldhash rather than the standard SipHash: the keys come from code, not from users, so
    // there is nothing to defend against; with SipHash the lookups of a sampled request's
    // ~20 attribute keys cost ~3 000 instructions, with foldhash ~1 100 (callgrind).
    type Cache = std::collections::HashMap<Box<str>, bool, foldhash::fast::FixedState>;
    thread_local! {
        static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    }
    CACHE.with(|c| {
        if let Some(v) = c.borrow().get(key) {
            return *v;
        }
        let v = is_sensitive_key(key);
        let mut c = c.borrow_mut();
        if c.len() < KEY_CACHE_CAP {
            c.insert(key.into(), v);
        }
        v
    })
}

const KEY_CACHE_CAP: usize = 4096;

/// Lower-case first letters of [`SENSITIVE_NAMES`], so the scan below compares names only at
/// positions that can start one.
const FIRST_LETTERS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < SENSITIVE_NAMES.len() {
        t[SENSITIVE_NAMES[i].as_bytes()[0] as usize] = true;
        i += 1;
    }
    t
};

/// Case-insensitive "contains any sensitive name" in one pass without allocating. Runs for
/// every attribute key and every word before a separator on the export thread; the naive
/// form (lower-case a copy, search 17 names) cost ~38 000 instructions per span.
fn contains_sensitive_name(hay: &[u8]) -> bool {
    (0..hay.len()).any(|i| {
        let c = hay[i].to_ascii_lowercase();
        FIRST_LETTERS[c as usize]
            && SENSITIVE_NAMES.iter().any(|n| {
                let n = n.as_bytes();
                n[0] == c && hay.len() - i >= n.len() && hay[i..i + n.len()].eq_ignore_ascii_case(n)
            })
    })
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// The bytes [`redact_str`] looks at: separators and the first letter of an auth scheme, in
/// either case.
const TRIGGERS: [bool; 256] = {
    let mut t = [false; 256];
    t[b'=' as usize] = true;
    t[b':' as usize] = true;
    let mut i = 0;
    while i < AUTH_SCHEMES.len() {
        let first = AUTH_SCHEMES[i].as_bytes()[0];
        t[first.to_ascii_lowercase() as usize] = true;
        t[first.to_ascii_uppercase() as usize] = true;
        i += 1;
    }
    t
};

/// Replaces secret values inside free text. Returns the input unchanged (borrowed) in the
/// common case, so clean strings cost one scan and no allocation.
///
/// A secret is the value after `=` or `:` whose preceding word (quotes, spaces and tabs allowed
/// in between) contains a sensitive name, or the word after an auth scheme (`Bearer x`). The scan
/// looks only at separators and at `b`/`B`, so text without them costs one pass.
pub fn redact_str(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    // Most strings (paths, names, queries) have none of these bytes: one table lookup per
    // byte, and the scan below starts at the first one.
    let Some(first) = b.iter().position(|&c| TRIGGERS[usize::from(c)]) else {
        return Cow::Borrowed(s);
    };
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, &c) in b.iter().enumerate().skip(first) {
        match c {
            b'=' | b':' => {
                if let Some(range) = secret_after_separator(b, i) {
                    spans.push(range);
                }
            }
            b'b' | b'B' => {
                if let Some(start) = after_auth_scheme(b, i) {
                    let end = value_end(b, start);
                    if end > start {
                        spans.push((start, end));
                    }
                }
            }
            _ => {}
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

/// Where the credential starts when `b[i..]` begins with an auth scheme word (and however many
/// spaces or tabs follow it).
fn after_auth_scheme(b: &[u8], i: usize) -> Option<usize> {
    AUTH_SCHEMES.iter().find_map(|scheme| {
        let end = i + scheme.len();
        (end <= b.len() && b[i..end].eq_ignore_ascii_case(scheme.as_bytes()))
            .then(|| skip(b, end, |c| matches!(c, b' ' | b'\t')))
    })
}

/// The first position from `i` on whose byte is not `what`.
fn skip(b: &[u8], mut i: usize, what: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && what(b[i]) {
        i += 1;
    }
    i
}

/// What may stand between a name, its separator and its value: quotes, spaces and tabs.
fn is_filler(c: u8) -> bool {
    matches!(c, b'"' | b'\'' | b' ' | b'\t')
}

/// For the separator at `sep`: the range of its value when the word before it names a secret.
/// `None` when the word is harmless, or when the value starts with an auth scheme (the scheme
/// rule then redacts only the credential, keeping `Bearer` readable).
fn secret_after_separator(b: &[u8], sep: usize) -> Option<(usize, usize)> {
    let mut end = sep;
    while end > 0 && is_filler(b[end - 1]) {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && is_ident(b[start - 1]) {
        start -= 1;
    }
    if !contains_sensitive_name(&b[start..end]) {
        return None;
    }
    let i = skip(b, sep + 1, is_filler);
    if after_auth_scheme(b, i).is_some() {
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

/// What the redaction rule does with one attribute value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AttributeRule {
    /// Kept as it is.
    Keep,
    /// Under a sensitive key: replaced whole by [`REDACTED`].
    Replace,
    /// Every string in it is scrubbed of embedded secrets.
    ScrubStrings,
}

/// The kind of an attribute value, as far as the redaction rule cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ValueKind {
    Bool,
    /// An integer or a double.
    Number,
    /// A string, bytes, a list or a map.
    Other,
}

/// The redaction rule for attributes, shared by every output: the values of both backends'
/// exporters ([`redact_value`]), the fast backend's protobuf writer (`fast::wire`) and the
/// stdout lines.
/// - A boolean cannot carry a secret (the seed's `hasCookie` keeps its value).
/// - A number is replaced when the attribute's own name, its last dotted segment, names a
///   secret (`password = 12345678`, `pin_token`, `session_id`: a PIN or a numeric token is a
///   secret); a number under a namespace that merely mentions one describes it and is kept
///   (`crm.token.expires_in_s`, `token.count`).
/// - Any other value under a key that mentions a secret anywhere is replaced whole, and every
///   string is scrubbed of embedded secrets.
pub(crate) fn attribute_rule(key: &str, kind: ValueKind) -> AttributeRule {
    match kind {
        ValueKind::Bool => AttributeRule::Keep,
        ValueKind::Number => {
            let own_name = key.rsplit('.').next().unwrap_or(key);
            if is_sensitive_key_cached(own_name) {
                AttributeRule::Replace
            } else {
                AttributeRule::Keep
            }
        }
        ValueKind::Other if is_sensitive_key_cached(key) => AttributeRule::Replace,
        ValueKind::Other => AttributeRule::ScrubStrings,
    }
}

/// An attribute value as the redaction rule handles it, whatever type holds it: the protobuf
/// `AnyValue` (the fast pipeline), the API's `Value` and the log `AnyValue` (the `sdk`
/// backend's exporters). Each type says its kind and how it is replaced or scrubbed;
/// [`redact_value`] applies the rule, the same for all.
pub(crate) trait Redactable {
    fn kind(&self) -> ValueKind;
    /// Replaces the whole value by [`REDACTED`].
    fn replace(&mut self);
    /// Scrubs every string in it of embedded secrets (a map's entries by their own keys).
    fn scrub_strings(&mut self);
}

/// Applies [`attribute_rule`] to the value of the attribute `key`, in place.
pub(crate) fn redact_value(key: &str, value: &mut impl Redactable) {
    match attribute_rule(key, value.kind()) {
        AttributeRule::Keep => {}
        AttributeRule::Replace => value.replace(),
        AttributeRule::ScrubStrings => value.scrub_strings(),
    }
}

/// The text with its secrets replaced, or `None` when it has none (the common case: no copy).
pub(crate) fn scrubbed(s: &str) -> Option<String> {
    match redact_str(s) {
        Cow::Owned(clean) => Some(clean),
        Cow::Borrowed(_) => None,
    }
}

/// Replaces secrets in a string in place: a `String`, or the SDK's own string types.
pub(crate) fn scrub_string<S: AsRef<str> + From<String>>(s: &mut S) {
    if let Some(clean) = scrubbed(s.as_ref()) {
        *s = clean.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Booleans are kept; a number is replaced when its own name is a secret's; any other
    /// value when its key mentions a secret anywhere.
    #[test]
    fn the_attribute_rule_by_value_kind() {
        use AttributeRule::{Keep, Replace, ScrubStrings};
        use ValueKind::{Bool, Number, Other};
        for (key, kind, rule) in [
            ("hasCookie", Bool, Keep),
            ("password", Bool, Keep),
            ("password", Number, Replace),
            ("user.pin_token", Number, Replace),
            ("session_id", Number, Replace),
            ("crm.token.expires_in_s", Number, Keep),
            ("token.count", Number, Keep),
            ("http.response.status_code", Number, Keep),
            ("password", Other, Replace),
            ("crm.token.expires_in_s", Other, Replace),
            ("http.route", Other, ScrubStrings),
        ] {
            assert_eq!(attribute_rule(key, kind), rule, "{key} {kind:?}");
        }
    }

    /// The fast path skips strings without a trigger byte, so every auth scheme must start
    /// with one, in either case.
    #[test]
    fn every_auth_scheme_starts_with_a_trigger() {
        for scheme in AUTH_SCHEMES {
            let first = scheme.as_bytes()[0];
            assert!(
                TRIGGERS[usize::from(first.to_ascii_lowercase())],
                "{scheme}"
            );
            assert!(
                TRIGGERS[usize::from(first.to_ascii_uppercase())],
                "{scheme}"
            );
        }
        assert_eq!(redact_str("plain /api/x"), Cow::Borrowed("plain /api/x"));
    }

    #[test]
    fn secrets_in_free_text_are_removed() {
        assert_secrets_removed(&[
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
            ("db password = 'hunter2' rejected", "hunter2"),
            ("API-KEY:k-123", "k-123"),
            ("header bearer abc.def", "abc.def"),
        ]);
    }

    /// Each input comes out with its secret replaced by [`REDACTED`].
    fn assert_secrets_removed(cases: &[(&str, &str)]) {
        for (input, secret) in cases {
            let out = redact_str(input);
            assert!(
                !out.contains(secret),
                "{input:?} -> {out:?} still has {secret:?}"
            );
            assert!(out.contains(REDACTED), "{input:?} -> {out:?}");
        }
    }

    /// Found by the `redact` fuzz target: more than one space after the scheme, and tabs
    /// around a separator, hid the secret from both rules.
    #[test]
    fn secrets_behind_extra_white_space_are_removed() {
        assert_secrets_removed(&[
            ("Authorization: Bearer  two.spaces", "two.spaces"),
            ("bearer   three", "three"),
            ("\"Authorization\": \t \"four\"", "four"),
            ("password\t=\thunter2", "hunter2"),
            ("api_key\t:k-123", "k-123"),
        ]);
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for s in [
            "GET /api/videos/intro.mp4",
            "the password field is required",
            "token bucket refilled",
            "https://example.com:8443/api/progress?lesson=intro",
            "",
            "b",
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
        // The memo agrees with the scan, on first and repeated lookups.
        for k in [
            "http.request.header.cookie",
            "http.route",
            "Password",
            "user.id",
        ] {
            assert_eq!(is_sensitive_key_cached(k), is_sensitive_key(k), "{k}");
            assert_eq!(is_sensitive_key_cached(k), is_sensitive_key(k), "{k}");
        }
    }

    /// The first level is chosen by address: a buffer reused for another key, and keys that
    /// share a slot, must still get their own answers.
    #[test]
    fn the_key_memo_goes_by_text_not_address() {
        let mut buf = String::from("user.id_");
        assert!(!is_sensitive_key_cached(&buf));
        buf.clear();
        buf.push_str("password");
        assert!(
            is_sensitive_key_cached(&buf),
            "same address, same length, other text"
        );
        buf.clear();
        buf.push_str("user.id_");
        assert!(!is_sensitive_key_cached(&buf));

        let keys: Vec<String> = (0..4 * NEAR_SLOTS)
            .map(|i| {
                if i % 3 == 0 {
                    format!("k{i}.token")
                } else {
                    format!("k{i}.name")
                }
            })
            .collect();
        for _ in 0..2 {
            for k in &keys {
                assert_eq!(is_sensitive_key_cached(k), k.ends_with("token"), "{k}");
            }
        }
    }
}

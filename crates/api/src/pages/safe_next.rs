//! Where the sign-in page may send the browser afterwards: a path of this site, and nothing a
//! browser could read as another origin.
//!
//! The check is on the server, and strict, because browsers are lenient: they read `\` as `/`
//! (so `/\evil.example` is `//evil.example`, another host), drop tabs and newlines anywhere in
//! a URL (so `/<TAB>/evil.example` is too, and `java<TAB>script:` is a scheme), and skip leading
//! spaces. Whatever passes here is a path that no such reading turns into another origin, even
//! once percent-decoded again by something downstream.

use percent_encoding::percent_decode_str;

/// Where a sign-in goes when `next` is missing or refused.
pub const DEFAULT_NEXT: &str = "/videos";

/// Longest `next` accepted; a real page path is far shorter.
const MAX_LEN: usize = 2048;

/// How many rounds of percent-decoding are checked: `%252F` is `%2F` is `/`.
const DECODE_ROUNDS: usize = 3;

/// A same-origin path (with query and fragment if any) that is safe to navigate to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeNext(String);

impl SafeNext {
    /// `raw` (the already query-decoded value of `?next=`) if it is a path of this site:
    /// printable ASCII only (no whitespace, no control character, no backslash), one leading
    /// `/` not followed by another `/`, and the same again after each round of
    /// percent-decoding. Anything else is `None`: the caller falls back to [`DEFAULT_NEXT`].
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() > MAX_LEN {
            return None;
        }
        let mut current = raw.to_owned();
        for _ in 0..DECODE_ROUNDS {
            if !is_local_path(current.as_bytes()) {
                return None;
            }
            let decoded = percent_decode_str(&current).collect::<Vec<u8>>();
            if decoded == current.as_bytes() {
                return Some(Self(raw.to_owned()));
            }
            // Not UTF-8 once decoded: bytes a page path of ours never holds.
            current = String::from_utf8(decoded).ok()?;
        }
        // Still decoding after that many rounds: nobody links like that.
        None
    }

    /// `raw` if safe, else [`DEFAULT_NEXT`].
    pub fn or_default(raw: Option<&str>) -> Self {
        raw.and_then(Self::parse)
            .unwrap_or_else(|| Self(DEFAULT_NEXT.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One round's check: `/` then a character that is neither `/` nor `\`, and only printable
/// ASCII other than `\` throughout.
fn is_local_path(s: &[u8]) -> bool {
    let printable = s.iter().all(|b| b.is_ascii_graphic() && *b != b'\\');
    printable && s.first() == Some(&b'/') && !matches!(s.get(1), Some(b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_this_site_are_kept_as_given() {
        for good in [
            "/",
            "/videos",
            "/videos/abc?t=3#x",
            "/player/0b7e5f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "/trace-viewer?user=u&errors=true",
            "/videos/a%2Fb",  // an encoded slash inside the path
            "/x?next=//evil", // another `next` in the query is just data
            "/%ZZ",           // not an escape: a literal, harmless path
        ] {
            assert_eq!(
                SafeNext::parse(good).as_ref().map(SafeNext::as_str),
                Some(good),
                "{good:?}"
            );
        }
    }

    #[test]
    fn anything_a_browser_could_read_as_another_origin_is_refused() {
        for (bad, why) in [
            ("", "empty"),
            ("videos", "relative to the current path"),
            ("//evil.example", "protocol-relative"),
            ("///evil.example", "protocol-relative, extra slash"),
            ("/\\evil.example", "backslash read as a slash"),
            ("\\\\evil.example", "two backslashes"),
            ("/x\\..\\..\\evil", "backslash anywhere"),
            ("/%5Cevil.example", "encoded backslash"),
            ("/%5cevil.example", "encoded backslash, lower case"),
            ("/%2F%2Fevil.example", "encoded slashes"),
            ("/%2fevil.example", "encoded second slash"),
            ("%2F%2Fevil.example", "encoded leading slashes"),
            ("/%252F/evil.example", "doubly encoded slash"),
            ("/%25252F/evil.example", "encoded past the decode rounds"),
            ("https:evil.example", "scheme without slashes"),
            ("https://evil.example", "absolute URL"),
            ("HTTPS://evil.example/videos", "absolute URL, upper case"),
            ("javascript:alert(1)", "script URL"),
            ("java\tscript:alert(1)", "tab inside the scheme"),
            ("java\nscript:alert(1)", "newline inside the scheme"),
            ("/\n/evil.example", "newline between the slashes"),
            ("/\t/evil.example", "tab between the slashes"),
            ("/\r/evil.example", "carriage return between the slashes"),
            ("/%09/evil.example", "encoded tab between the slashes"),
            ("/%0A/evil.example", "encoded newline between the slashes"),
            (" /videos", "leading space"),
            ("\t//evil.example", "leading tab"),
            ("/videos ", "trailing space"),
            ("/a/b%20c", "encoded space: no page path of ours has one"),
            ("/\u{0}x", "NUL"),
            ("/\u{ff0f}evil.example", "fullwidth solidus (not ASCII)"),
            ("/%EF%BC%8Fevil.example", "encoded fullwidth solidus"),
            ("/%FF", "decodes to bytes that are not UTF-8"),
            ("data:text/html,<script>alert(1)</script>", "data URL"),
        ] {
            assert_eq!(SafeNext::parse(bad), None, "{why}: {bad:?}");
        }
        assert_eq!(SafeNext::parse(&format!("/{}", "a".repeat(MAX_LEN))), None);
    }

    #[test]
    fn a_refused_or_missing_next_goes_to_the_lesson_list() {
        assert_eq!(SafeNext::or_default(None).as_str(), DEFAULT_NEXT);
        assert_eq!(
            SafeNext::or_default(Some("//evil.example")).as_str(),
            DEFAULT_NEXT
        );
        assert_eq!(
            SafeNext::or_default(Some("/player/x?t=1")).as_str(),
            "/player/x?t=1"
        );
    }
}

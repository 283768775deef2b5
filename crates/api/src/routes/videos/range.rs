//! The `Range` and `If-Range` request headers (RFC 9110 §14), as far as a video server needs
//! them: one byte range per request.
//!
//! Decisions, each allowed by RFC 9110 §14.2 ("a server MAY ignore the Range header field"):
//! - A malformed header (unknown unit, non-digits, `first > last`, numbers that overflow) is
//!   ignored and the whole video is served with 200, rather than answering 400: the client
//!   asked for bytes it is allowed to have, and a full response is always a correct answer.
//! - Several ranges (`bytes=0-1,5-6`) are also answered with the whole video (200). Players
//!   ask for one range at a time; a `multipart/byteranges` body would need one store read per
//!   part and boundary framing that no player uses, and ignoring lists also defuses the
//!   overlapping-ranges amplification trick.
//! - `If-Range` with an entity tag uses the strong comparison: a weak tag never matches. With
//!   an HTTP-date it matches only when the date is exactly the object's `Last-Modified` and
//!   that is at least a second in the past, the condition under which RFC 9110 §8.8.2.2 calls
//!   a date a strong validator (a file rewritten within the same second would otherwise keep
//!   its date). A validator that does not match gets the whole (current) video, which is
//!   always safe.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use vidscope_core::storage::ByteRange;

/// One `range-spec` of the `bytes` unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// `bytes=first-last`
    FromTo(u64, u64),
    /// `bytes=first-`
    From(u64),
    /// `bytes=-length`: the last `length` bytes.
    Suffix(u64),
}

/// What the `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeHeader {
    Absent,
    Single(Spec),
    /// Several ranges: served in full (see the module doc).
    Multiple,
    /// Not a valid `bytes` range: ignored (see the module doc).
    Malformed,
}

impl RangeHeader {
    pub fn parse(value: Option<&HeaderValue>) -> RangeHeader {
        let Some(value) = value else {
            return RangeHeader::Absent;
        };
        let Ok(value) = value.to_str() else {
            return RangeHeader::Malformed;
        };
        let Some((unit, set)) = value.trim().split_once('=') else {
            return RangeHeader::Malformed;
        };
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return RangeHeader::Malformed;
        }
        // List syntax allows empty elements ("bytes=0-1,"); they are not ranges.
        let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
        let (Some(first), rest) = (specs.next(), specs.next()) else {
            return RangeHeader::Malformed;
        };
        let Some(spec) = Spec::parse(first) else {
            return RangeHeader::Malformed;
        };
        match rest {
            None => RangeHeader::Single(spec),
            Some(_) => RangeHeader::Multiple,
        }
    }
}

fn number(s: &str) -> Option<u64> {
    // `u64::from_str` accepts a leading `+`, which the grammar (1*DIGIT) does not.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Spec {
    fn parse(s: &str) -> Option<Spec> {
        let (first, last) = s.split_once('-')?;
        match (first.trim(), last.trim()) {
            ("", last) => number(last).map(Spec::Suffix),
            (first, "") => number(first).map(Spec::From),
            (first, last) => {
                let (a, b) = (number(first)?, number(last)?);
                (a <= b).then_some(Spec::FromTo(a, b))
            }
        }
    }

    /// The bytes of an object of `size` bytes this spec selects, `None` when it selects none
    /// (416). The last position is clamped to the object, as RFC 9110 says.
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        if size == 0 {
            return None;
        }
        let last = size - 1;
        let (start, end_inclusive) = match self {
            Spec::FromTo(a, b) => (a, b.min(last)),
            Spec::From(a) => (a, last),
            Spec::Suffix(0) => return None,
            Spec::Suffix(n) => (size.saturating_sub(n), last),
        };
        (start <= last).then_some(ByteRange {
            start,
            end_inclusive,
        })
    }
}

/// Whether the `If-Range` validator still names the stored representation. Absent means
/// "no condition". A strong entity tag equal to the current one matches, and so does an
/// HTTP-date equal to a `last_modified` at least one second before `now`.
pub fn if_range_matches(
    if_range: Option<&HeaderValue>,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
    now: SystemTime,
) -> bool {
    let Some(if_range) = if_range else {
        return true;
    };
    let Ok(v) = if_range.to_str() else {
        return false;
    };
    let v = v.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return etag.is_some_and(|etag| !etag.starts_with("W/") && v == etag);
    }
    let (Ok(date), Some(modified)) = (httpdate::parse_http_date(v), last_modified) else {
        return false;
    };
    let modified = whole_seconds(modified);
    date == modified
        && now
            .duration_since(modified)
            .is_ok_and(|age| age >= Duration::from_secs(1))
}

/// HTTP dates have whole seconds; file times do not.
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RangeHeader {
        RangeHeader::parse(Some(&HeaderValue::from_str(s).unwrap()))
    }

    #[test]
    fn parses_single_ranges() {
        use Spec::*;
        for (header, spec) in [
            ("bytes=0-499", FromTo(0, 499)),
            ("bytes=100-", From(100)),
            ("bytes=-500", Suffix(500)),
            ("BYTES = 5-5 ", FromTo(5, 5)),
            ("bytes=0-1,", FromTo(0, 1)),
        ] {
            assert_eq!(parse(header), RangeHeader::Single(spec), "{header}");
        }
        assert_eq!(RangeHeader::parse(None), RangeHeader::Absent);
    }

    #[test]
    fn multiple_and_malformed() {
        assert_eq!(parse("bytes=0-1,5-6"), RangeHeader::Multiple);
        for bad in [
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=abc",
            "bytes=5-1",
            "bytes=+1-2",
            "bytes=1-2-3",
            "items=0-1",
            "bytes=99999999999999999999999-",
            "bytes=0x10-",
        ] {
            assert_eq!(parse(bad), RangeHeader::Malformed, "{bad}");
        }
        assert_eq!(
            RangeHeader::parse(Some(&HeaderValue::from_bytes(b"bytes=\xff-").unwrap())),
            RangeHeader::Malformed
        );
    }

    #[test]
    fn resolves_against_the_size() {
        use Spec::*;
        let r = |start, end_inclusive| {
            Some(ByteRange {
                start,
                end_inclusive,
            })
        };
        assert_eq!(FromTo(0, 99).resolve(1000), r(0, 99));
        assert_eq!(FromTo(900, 5000).resolve(1000), r(900, 999));
        assert_eq!(From(100).resolve(1000), r(100, 999));
        assert_eq!(Suffix(500).resolve(1000), r(500, 999));
        assert_eq!(Suffix(5000).resolve(1000), r(0, 999));
        assert_eq!(From(1000).resolve(1000), None);
        assert_eq!(FromTo(1000, 2000).resolve(1000), None);
        assert_eq!(Suffix(0).resolve(1000), None);
        assert_eq!(From(0).resolve(0), None);
        assert_eq!(Suffix(1).resolve(0), None);
    }

    #[test]
    fn if_range_is_a_strong_comparison() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        let now = SystemTime::now();
        let m =
            |a: Option<&str>, e: Option<&str>| if_range_matches(a.map(h).as_ref(), e, None, now);
        assert!(m(None, None));
        assert!(m(Some("\"a\""), Some("\"a\"")));
        assert!(!m(Some("\"b\""), Some("\"a\"")));
        assert!(!m(Some("W/\"a\""), Some("W/\"a\"")));
        assert!(!m(Some("Wed, 21 Oct 2015 07:28:00 GMT"), Some("\"a\"")));
        assert!(!m(Some("\"a\""), None));
    }

    #[test]
    fn if_range_with_a_date_matches_an_old_enough_last_modified() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        // 2015-10-21T07:28:00Z, with a fraction the HTTP date cannot carry.
        let modified = UNIX_EPOCH + Duration::from_millis(1_445_412_480_250);
        let date = h("Wed, 21 Oct 2015 07:28:00 GMT");
        let later = modified + Duration::from_secs(3600);
        assert!(if_range_matches(
            Some(&date),
            Some("\"a\""),
            Some(modified),
            later
        ));
        // Another second, another date format it cannot be, no date known.
        let other = h("Wed, 21 Oct 2015 07:28:01 GMT");
        assert!(!if_range_matches(Some(&other), None, Some(modified), later));
        assert!(!if_range_matches(
            Some(&h("yesterday")),
            None,
            Some(modified),
            later
        ));
        assert!(!if_range_matches(Some(&date), None, None, later));
        // Modified within the last second: the date is weak, no match.
        let just_after = modified + Duration::from_millis(500);
        assert!(!if_range_matches(
            Some(&date),
            None,
            Some(modified),
            just_after
        ));
        // The obsolete RFC 850 form of the same instant parses too.
        let rfc850 = h("Wednesday, 21-Oct-15 07:28:00 GMT");
        assert!(if_range_matches(Some(&rfc850), None, Some(modified), later));
    }
}

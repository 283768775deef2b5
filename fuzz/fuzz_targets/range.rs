//! `GET /api/videos/{filename}`: the `Range` and `If-Range` headers
//! (`vidscope_api::routes::videos::range`). Never panics; a single range prints back to the
//! same parse; what it resolves to lies inside the object and is what the spec asked for; a
//! weak or absent validator never matches.
//!
//! Input: lines `Range`, `If-Range`, the current ETag (an empty line: absent), then
//! `size modified_secs age_ms` (numbers; missing ones are 0, a missing date is no date).

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use vidscope_api::routes::videos::range::{RangeHeader, Spec, if_range_matches, whole_seconds};

struct Input<'a> {
    range: &'a [u8],
    if_range: Option<&'a [u8]>,
    etag: Option<&'a str>,
    size: u64,
    /// The object's Last-Modified, seconds and milliseconds after the epoch.
    modified: Option<(u32, u16)>,
    /// How long after `modified` the request comes, in milliseconds.
    age_ms: u32,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Self {
        let mut lines = data.splitn(4, |&b| b == b'\n');
        let mut next = || lines.next().filter(|l| !l.is_empty());
        let range = next().unwrap_or_default();
        let if_range = next();
        let etag = next().and_then(|e| std::str::from_utf8(e).ok());
        let numbers: Vec<u64> = next()
            .and_then(|n| std::str::from_utf8(n).ok())
            .map(|n| {
                n.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let n = |i: usize| numbers.get(i).copied();
        Input {
            range,
            if_range,
            etag,
            size: n(0).unwrap_or(0),
            modified: n(1).map(|s| (s as u32, (s % 1000) as u16)),
            age_ms: n(2).unwrap_or(0) as u32,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    // Only bytes that can be a header value reach the handler.
    let Ok(range) = HeaderValue::from_bytes(input.range) else {
        return;
    };
    let parsed = RangeHeader::parse(Some(&range));
    if let RangeHeader::Single(spec) = parsed {
        let printed = match spec {
            Spec::FromTo(a, b) => {
                assert!(a <= b, "{spec:?} from {range:?}");
                format!("bytes={a}-{b}")
            }
            Spec::From(a) => format!("bytes={a}-"),
            Spec::Suffix(n) => format!("bytes=-{n}"),
        };
        let again = RangeHeader::parse(Some(&HeaderValue::from_str(&printed).unwrap()));
        assert_eq!(again, parsed, "{printed} from {range:?}");
        check_resolve(spec, input.size);
    }

    let if_range = input.if_range.and_then(|v| HeaderValue::from_bytes(v).ok());
    let modified = input.modified.map(|(s, ms)| {
        UNIX_EPOCH + Duration::from_secs(s.into()) + Duration::from_millis(ms.into())
    });
    let now = modified.unwrap_or(UNIX_EPOCH) + Duration::from_millis(input.age_ms.into());
    let matched = if_range_matches(if_range.as_ref(), input.etag, modified, now);
    let validator = if_range.as_ref().map(|v| v.to_str().map(str::trim));
    match validator {
        None => assert!(matched, "no condition is a condition that holds"),
        Some(Err(_)) => assert!(!matched, "an unreadable validator matched"),
        Some(Ok(v)) if v.starts_with("W/") || v.starts_with('"') => {
            // An entity tag: only a strong tag equal to the current one.
            let strong_equal = input.etag.is_some_and(|e| !e.starts_with("W/") && v == e);
            assert_eq!(matched, strong_equal, "{v:?} vs {:?}", input.etag);
        }
        Some(Ok(v)) if matched => {
            // A date: only a Last-Modified at least a second old.
            let m = modified.expect("a date matched without a Last-Modified");
            let age = now.duration_since(whole_seconds(m)).unwrap();
            assert!(age >= Duration::from_secs(1), "{v:?} matched {age:?} after");
        }
        Some(Ok(_)) => {}
    }
});

fn check_resolve(spec: Spec, size: u64) {
    match (spec.resolve(size), spec) {
        (Some(r), _) => {
            assert!(
                r.start <= r.end_inclusive && r.end_inclusive < size,
                "{spec:?} of {size}: {r:?}"
            );
            let expected = match spec {
                Spec::FromTo(a, b) => (a, b.min(size - 1)),
                Spec::From(a) => (a, size - 1),
                Spec::Suffix(n) => (size - n.min(size), size - 1),
            };
            assert_eq!((r.start, r.end_inclusive), expected, "{spec:?} of {size}");
        }
        // Unsatisfiable only when no byte of the object is selected.
        (None, Spec::FromTo(a, _) | Spec::From(a)) => {
            assert!(size == 0 || a >= size, "{spec:?} of {size}")
        }
        (None, Spec::Suffix(n)) => assert!(size == 0 || n == 0, "{spec:?} of {size}"),
    }
}

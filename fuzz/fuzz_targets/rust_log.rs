//! `RUST_LOG`-style directives (`vidscope_telemetry`'s filter, through
//! `vidscope_telemetry::fuzzing::rust_log_levels`): any text, and lists of `target=level`
//! directives. Never panics; for directive lists, the level each target gets is the one the
//! documented rule gives (the longest target at a `::` boundary, a later directive for the
//! same target replacing an earlier one, else the bare level, else off), and the filter's
//! most verbose level covers them all.
//!
//! Input: `raw:<directives>` then one target per line (the seeds: real `RUST_LOG` values), or
//! anything else, read as a list of directives (`arbitrary`).

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use tracing::level_filters::LevelFilter;
use vidscope_telemetry::fuzzing::rust_log_levels;

const SEGMENTS: &[&str] = &[
    "a",
    "ab",
    "a_b",
    "tower",
    "tower_http",
    "x-y",
    "vidscope_api",
];
const LEVELS: &[(&str, LevelFilter)] = &[
    ("off", LevelFilter::OFF),
    ("error", LevelFilter::ERROR),
    ("WARN", LevelFilter::WARN),
    ("info", LevelFilter::INFO),
    ("Debug", LevelFilter::DEBUG),
    ("trace", LevelFilter::TRACE),
];

enum Input<'a> {
    /// Any text, probed at any targets.
    Text(&'a str, Vec<&'a str>),
    /// Directives built from known targets and levels: `None` target is a bare level, `None`
    /// level a bare target.
    Directives(Vec<(Option<Vec<u8>>, Option<u8>)>, Vec<Vec<u8>>),
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        if let Some(raw) = data.strip_prefix(b"raw:") {
            let text = std::str::from_utf8(raw).ok()?;
            let mut lines = text.lines();
            let directives = lines.next().unwrap_or_default();
            return Some(Input::Text(directives, lines.collect()));
        }
        let mut u = Unstructured::new(data);
        Some(Input::Directives(u.arbitrary().ok()?, u.arbitrary().ok()?))
    }
}

fn target(segments: &[u8]) -> String {
    let names: Vec<&str> = segments
        .iter()
        .take(4)
        .map(|&i| SEGMENTS[usize::from(i) % SEGMENTS.len()])
        .collect();
    names.join("::")
}

/// The documented rule, from the list the directives were built from.
fn expected(directives: &[(Option<String>, LevelFilter)], probe: &str) -> Option<LevelFilter> {
    let covers = |t: &str| probe == t || probe.strip_prefix(t).is_some_and(|r| r.starts_with("::"));
    let mut best: Option<(usize, LevelFilter)> = None;
    let mut default = None;
    for (t, level) in directives {
        match t {
            None => default = Some(*level),
            Some(t) if covers(t) && best.is_none_or(|(len, _)| t.len() >= len) => {
                best = Some((t.len(), *level));
            }
            Some(_) => {}
        }
    }
    best.map(|(_, l)| l).or(default)
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let (text, probes, built) = match input {
        Input::Text(text, probes) => (
            text.to_owned(),
            probes.into_iter().map(str::to_owned).collect::<Vec<_>>(),
            None,
        ),
        Input::Directives(list, probes) => {
            let built: Vec<(Option<String>, LevelFilter)> = list
                .iter()
                .filter(|(t, l)| t.as_ref().is_some_and(|t| !t.is_empty()) || l.is_some())
                .map(|(t, l)| {
                    let t = t.as_deref().filter(|t| !t.is_empty()).map(target);
                    let level = l.map_or(LevelFilter::TRACE, |l| {
                        LEVELS[usize::from(l) % LEVELS.len()].1
                    });
                    (t, level)
                })
                .collect();
            let text: Vec<String> = list
                .iter()
                .filter(|(t, l)| t.as_ref().is_some_and(|t| !t.is_empty()) || l.is_some())
                .map(|(t, l)| {
                    let t = t.as_deref().filter(|t| !t.is_empty()).map(target);
                    let level = l.map(|l| LEVELS[usize::from(l) % LEVELS.len()].0);
                    match (t, level) {
                        (Some(t), Some(l)) => format!("{t}={l}"),
                        (Some(t), None) => t,
                        (None, Some(l)) => l.to_owned(),
                        (None, None) => unreachable!(),
                    }
                })
                .collect();
            let probes = probes.iter().map(|p| target(p)).collect();
            (text.join(","), probes, Some(built))
        }
    };
    // Two span directives with field values may still compare equal as parsed while their
    // text differs (`[{=a.b=x}]` and `[{=a.b=y}]`), which reaches a debug assertion of
    // tracing-subscriber 0.3.23 (a text field value compares unequal to itself): a panic in
    // debug builds only, not ours to fix here (docs/reliability.md). Such inputs are left out
    // so that the rest keeps being fuzzed.
    if text
        .split(',')
        .filter(|d| d.contains('[') && d.contains('{'))
        .count()
        > 1
    {
        return;
    }
    let probe_refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let result = rust_log_levels(&text, &probe_refs);
    let Some(built) = built else {
        if let Ok((levels, max)) = result {
            for level in levels.into_iter().flatten() {
                assert!(
                    max.is_some_and(|m| level <= m),
                    "{text:?}: {level} above {max:?}"
                );
            }
        }
        return;
    };
    let (levels, max) = result.unwrap_or_else(|e| panic!("{text:?} refused: {e}"));
    for (probe, level) in probes.iter().zip(levels) {
        assert_eq!(level, expected(&built, probe), "{text:?} at {probe:?}");
        if let Some(level) = level {
            assert!(
                max.is_some_and(|m| level <= m),
                "{text:?}: {level} above {max:?}"
            );
        }
    }
});

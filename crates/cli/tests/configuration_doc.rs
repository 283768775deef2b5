//! docs/configuration.md names every environment variable the shipped code reads, and nothing
//! else (issue 26: six variables were read but undocumented).
//!
//! The code side is every string literal shaped like a variable name (`VIDSCOPE_ADDR`,
//! `S3_REGION`: capitals and digits with at least one underscore) in the non-test sources of
//! every crate but the testkit. A literal rather than a list of call shapes: the settings parsers
//! look names up through `get("…")`, `number("…", …)`, `required("…")`, `positive("…", …)`,
//! clap's `env = "…"`, constants (`URL_VAR`) and `match` arms (`Signal::endpoint_var`), and the
//! next helper would slip past any list of those. A literal of that shape that is not a variable
//! would fail loudly here, which is the safe side. Literals inside `env!(`/`option_env!(` are
//! compile-time (`CARGO_PKG_VERSION`) and are left out.
//!
//! The doc side is the back-ticked names in the first cell of each table row, with
//! `OTEL_{TRACES,METRICS,LOGS}_EXPORTER` expanded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// Test support, not configuration: its variables (`VIDSCOPE_TEST_POSTGRES_URL`, …) are
/// documented in docs/testing.md.
const NOT_SHIPPED: &[&str] = &["testkit"];
/// Documented variables the code does not name itself. Empty today: every standard OTEL_*
/// variable in the table is parsed by crates/telemetry/src/config.rs, none is left to an SDK.
const DOCUMENTED_BUT_READ_ELSEWHERE: &[&str] = &[];

#[test]
fn configuration_md_lists_exactly_the_variables_the_code_reads() {
    let code = variables_in_code();
    let doc = variables_in_doc(&std::fs::read_to_string(doc_path()).unwrap());
    assert!(
        code.len() > 40,
        "the scan found only {code:?}: has the code moved?"
    );
    let missing: Vec<_> = code.difference(&doc).collect();
    let stale: Vec<_> = doc
        .iter()
        .filter(|v| !code.contains(*v) && !DOCUMENTED_BUT_READ_ELSEWHERE.contains(&v.as_str()))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/configuration.md is out of step with the code.\n\
         read by the code but missing from a table row: {missing:?}\n\
         in a table row but read nowhere: {stale:?}"
    );
}

#[test]
fn the_scanner_sees_calls_constants_and_clap_but_not_tests_comments_or_env_macros() {
    let src = r##"
        const URL_VAR: &str = "A_CONST";
        // get("IN_COMMENT")
        /* "IN_BLOCK" /* nested "IN_NESTED" */ */
        fn f() { get("A_GET"); number("A_NUMBER", 1, 2); env!("CARGO_X"); option_env!("CARGO_Y");
            let c = '"'; let s = "not a name"; let r = r#"R_RAW"#; let q = r#"a "}" b"#; let l: &'static str = "A_LIFE"; }
        #[arg(long, env = "A_CLAP")]
        #[cfg(test)]
        mod tests { fn t() { let m = ["IN_TEST", "}"]; std::env::var("IN_TEST_2"); } }
        #[cfg(test)]
        impl X { const Y: [u8; 2] = [0; 2]; fn z() { "IN_TEST_IMPL"; } }
        fn g() { std::env::var_os("A_AFTER_TESTS"); }
    "##;
    let found = literal_names(src);
    let want = [
        "A_AFTER_TESTS",
        "A_CLAP",
        "A_CONST",
        "A_GET",
        "A_LIFE",
        "A_NUMBER",
        "R_RAW",
    ];
    assert_eq!(found, want.iter().map(|s| s.to_string()).collect());
    let doc = "| `A_B`, `C_D`/`E_F` | x `NOT_FIRST_CELL` | `G_H` |\n\
               |---|---|---|\n| `OTEL_{X,Y}_Z` | | |\ntext `OUTSIDE_TABLE`\n";
    let want = ["A_B", "C_D", "E_F", "OTEL_X_Z", "OTEL_Y_Z"];
    assert_eq!(
        variables_in_doc(doc),
        want.iter().map(|s| s.to_string()).collect()
    );
}

fn doc_path() -> PathBuf {
    Path::new(ROOT).join("docs/configuration.md")
}

fn variables_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for krate in std::fs::read_dir(Path::new(ROOT).join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        if NOT_SHIPPED.contains(&name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for file in files {
            names.extend(literal_names(&std::fs::read_to_string(&file).unwrap()));
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_variable_name(s: &str) -> bool {
    s.contains('_')
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.split('_').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
}

/// One pass of a small Rust lexer: `code` is the source with comments dropped and every string
/// literal replaced by `""` (so braces in strings do not count), `strings` the literals with
/// the offset of their `""` in `code`.
struct Lexed {
    code: String,
    strings: Vec<(usize, String)>,
}

fn lex(src: &str) -> Lexed {
    let b = src.as_bytes();
    let mut out = Lexed {
        code: String::new(),
        strings: Vec::new(),
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < b.len() {
                if src[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if src[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some((len, body)) = string_literal(rest) {
            // A raw or byte string's prefix is part of the literal, not the identifier before it.
            let prev_ident = out
                .code
                .ends_with(|c: char| c.is_alphanumeric() || c == '_');
            if !prev_ident || !matches!(b[i], b'r' | b'b') {
                out.strings.push((out.code.len(), body));
                out.code.push_str("\"\"");
                i += len;
            } else {
                out.code.push(b[i] as char);
                i += 1;
            }
        } else if b[i] == b'\'' {
            // A char literal ('"', '\'', '{') or a lifetime ('a, 'static).
            let close = if rest[1..].starts_with('\\') {
                rest.get(3..).and_then(|r| r.find('\'')).map(|p| p + 4)
            } else {
                let c = rest[1..].chars().next().map_or(0, char::len_utf8);
                rest[1 + c..].starts_with('\'').then_some(2 + c)
            };
            let len = close.unwrap_or(1);
            out.code.push_str(if close.is_some() { "' '" } else { "'" });
            i += len;
        } else {
            let c = rest.chars().next().unwrap();
            out.code.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `(length, contents)` of a string literal at the start of `s`: `"…"`, `b"…"`, `r#"…"#`.
fn string_literal(s: &str) -> Option<(usize, String)> {
    let prefix = s.len() - s.trim_start_matches(['b', 'r', 'c']).len();
    let raw = s[..prefix].contains('r');
    let after = &s[prefix..];
    if prefix > 2 || (!raw && prefix > 1) {
        return None;
    }
    if raw {
        let hashes = after.len() - after.trim_start_matches('#').len();
        let body = after[hashes..].strip_prefix('"')?;
        let end = format!("\"{}", "#".repeat(hashes));
        let close = body.find(&end)?;
        return Some((
            prefix + hashes + 1 + close + end.len(),
            body[..close].into(),
        ));
    }
    let body = after.strip_prefix('"')?;
    let mut escaped = false;
    for (p, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((prefix + 1 + p + 1, body[..p].into())),
            _ => escaped = false,
        }
    }
    None
}

/// Byte ranges of `code` taken by `#[cfg(test)]` items: the attribute to the item's closing
/// brace, or to its `;` outside brackets (`mod tests;`).
fn test_items(code: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(p) = code[from..].find("#[cfg(test)]") {
        let start = from + p;
        let mut depth = 0i32;
        let mut end = code.len();
        for (q, c) in code[start + "#[cfg(test)]".len()..].char_indices() {
            let at = start + "#[cfg(test)]".len() + q;
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' => depth -= 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = at + 1;
                    break;
                }
                _ => {}
            }
        }
        ranges.push((start, end));
        from = end;
    }
    ranges
}

fn literal_names(src: &str) -> BTreeSet<String> {
    let lexed = lex(src);
    let tests = test_items(&lexed.code);
    lexed
        .strings
        .into_iter()
        .filter(|(at, _)| !tests.iter().any(|(s, e)| (s..e).contains(&at)))
        .filter(|(at, _)| !lexed.code[..*at].trim_end().ends_with("env!("))
        .map(|(_, s)| s)
        .filter(|s| is_variable_name(s))
        .collect()
}

fn variables_in_doc(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in doc.lines() {
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("");
        for (k, quoted) in first.split('`').enumerate() {
            if k % 2 == 1 {
                names.extend(expand(quoted).into_iter().filter(|n| is_variable_name(n)));
            }
        }
    }
    names
}

/// `A_{X,Y}_B` → `A_X_B`, `A_Y_B` (one brace group, as the tables write them).
fn expand(s: &str) -> Vec<String> {
    match (s.find('{'), s.find('}')) {
        (Some(open), Some(close)) if open < close => s[open + 1..close]
            .split(',')
            .map(|alt| format!("{}{}{}", &s[..open], alt, &s[close + 1..]))
            .collect(),
        _ => vec![s.to_owned()],
    }
}

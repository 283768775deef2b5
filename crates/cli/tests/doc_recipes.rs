//! The shell recipes over telemetry in README.md and docs/*.md (issue 24, defect 4: "recipes
//! that lie"). Each is run with bash, exactly as the page gives it, on the files the app wrote
//! during a known workload, and must print exactly what that workload implies.
//!
//! A recipe is a fenced shell block preceded by `<!-- recipe: NAME -->` (or
//! `<!-- recipe: NAME; not run: WHY -->` for one that needs the compose stack). A page's
//! `<!-- recipe-setup -->` block (its variables) runs before each of its recipes. A shell block
//! that uses `jq`, `grep`, `wc`, `tail`, `uniq`, `awk` or `sed` without a marker fails
//! [`every_telemetry_command_in_the_docs_is_a_marked_recipe`], so none escapes the test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vidscope_core::domain::Role;
use vidscope_testkit::TestApp;

/// The recipes this test runs, by name. A new recipe in the docs needs an expectation here.
const RUN: &[&str] = &[
    "follow",
    "progress-calls",
    "categories",
    "errors",
    "trace",
    "trace-logs",
    "slow-loads",
    "failed-resumes",
    "failed-sign-ins",
    "long-spans",
];
/// Recipes that need Docker and the compose stack; the pages say so next to each.
const NOT_RUN: &[&str] = &["collector-follow", "collector-copy"];

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// Words that make a shell block a command over telemetry.
const TOOLS: &[&str] = &["jq", "grep", "wc", "tail", "uniq", "awk", "sed"];

#[derive(Debug, Clone)]
struct Recipe {
    doc: String,
    line: usize,
    name: String,
    body: String,
    not_run: Option<String>,
}

#[derive(Debug, Default)]
struct Docs {
    recipes: Vec<Recipe>,
    /// Setup block of each page.
    setup: BTreeMap<String, String>,
    problems: Vec<String>,
}

fn is_shell(info: &str) -> bool {
    matches!(info.trim(), "sh" | "bash" | "shell" | "console" | "")
}

fn uses_a_tool(body: &str) -> bool {
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .any(|w| TOOLS.contains(&w))
}

/// `recipe: NAME` / `recipe: NAME; not run: WHY` / `recipe-setup` from an HTML comment line.
fn marker(line: &str) -> Option<(String, Option<String>)> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    if inner == "recipe-setup" {
        return Some((String::new(), None));
    }
    let rest = inner.strip_prefix("recipe:")?;
    let (name, not_run) = match rest.split_once(';') {
        Some((name, why)) => (
            name,
            Some(
                why.trim()
                    .strip_prefix("not run:")
                    .unwrap_or(why)
                    .trim()
                    .to_owned(),
            ),
        ),
        None => (rest, None),
    };
    Some((name.trim().to_owned(), not_run))
}

fn parse_doc(doc: &str, text: &str, out: &mut Docs) {
    let lines: Vec<&str> = text.lines().collect();
    let mut pending: Option<(usize, String, Option<String>)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(fence) = line.trim_start().strip_prefix("```") {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && !lines[end].trim_start().starts_with("```") {
                end += 1;
            }
            let body = lines[start..end.min(lines.len())].join("\n");
            let mark = pending.take();
            if is_shell(fence) && (uses_a_tool(&body) || mark.is_some()) {
                match mark {
                    None => out.problems.push(format!(
                        "{doc}:{}: a shell command over telemetry without a `<!-- recipe: NAME -->` \
                         marker: mark it and give it an expectation in crates/cli/tests/doc_recipes.rs",
                        i + 1
                    )),
                    Some((_, name, _)) if name.is_empty() => {
                        out.setup.entry(doc.to_owned()).or_default().push_str(&body);
                    }
                    Some((_, name, not_run)) => out.recipes.push(Recipe {
                        doc: doc.to_owned(),
                        line: i + 1,
                        name,
                        body,
                        not_run,
                    }),
                }
            } else if let Some((at, ..)) = mark {
                out.problems.push(format!(
                    "{doc}:{at}: the recipe marker is not followed by a shell block"
                ));
            }
            i = end + 1;
            continue;
        }
        if let Some((name, not_run)) = marker(line) {
            if let Some((at, ..)) = pending.take() {
                out.problems.push(format!(
                    "{doc}:{at}: a recipe marker with no block after it"
                ));
            }
            pending = Some((i + 1, name, not_run));
        } else if !line.trim().is_empty()
            && let Some((at, ..)) = pending.take()
        {
            out.problems.push(format!(
                "{doc}:{at}: a recipe marker must be the line before its shell block"
            ));
        }
        i += 1;
    }
    if let Some((at, ..)) = pending {
        out.problems.push(format!(
            "{doc}:{at}: a recipe marker with no block after it"
        ));
    }
}

fn read_docs() -> Docs {
    let root = Path::new(ROOT);
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| PathBuf::from("docs").join(p.file_name().unwrap()))
        .collect();
    docs.sort();
    pages.extend(docs);
    let mut out = Docs::default();
    for page in pages {
        let text = std::fs::read_to_string(root.join(&page)).unwrap();
        parse_doc(&page.display().to_string(), &text, &mut out);
    }
    out
}

#[test]
fn every_telemetry_command_in_the_docs_is_a_marked_recipe() {
    let docs = read_docs();
    assert!(
        docs.problems.is_empty(),
        "recipes without a marker, or markers without a recipe:\n{}",
        docs.problems.join("\n")
    );
    let mut names = BTreeSet::new();
    for r in &docs.recipes {
        assert!(
            names.insert(r.name.as_str()),
            "{}:{}: recipe name {} used twice",
            r.doc,
            r.line,
            r.name
        );
        if let Some(why) = &r.not_run {
            assert!(
                !why.is_empty(),
                "{}:{}: say why it is not run",
                r.doc,
                r.line
            );
        }
    }
    let names = |not_run: bool| -> BTreeSet<&str> {
        docs.recipes
            .iter()
            .filter(|r| r.not_run.is_some() == not_run)
            .map(|r| r.name.as_str())
            .collect()
    };
    let (run, not_run) = (names(false), names(true));
    assert_eq!(
        run,
        RUN.iter().copied().collect(),
        "the recipes the docs mark as run must be those this test has expectations for"
    );
    assert_eq!(
        not_run,
        NOT_RUN.iter().copied().collect(),
        "recipes marked `not run`"
    );
    for r in docs.recipes.iter().filter(|r| r.not_run.is_none()) {
        assert!(
            docs.setup.contains_key(&r.doc),
            "{}: has recipes but no `<!-- recipe-setup -->` block defining their variables",
            r.doc
        );
    }
}

/// `bash` running `setup` then `body`, in `dir`, with `TRACE` set.
fn bash(dir: &Path, setup: &str, body: &str, trace: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("set -euo pipefail\n{setup}\n{body}"))
        .current_dir(dir)
        .env("TRACE", trace)
        .stdin(Stdio::null());
    c
}

fn run(dir: &Path, setup: &str, r: &Recipe, trace: &str) -> String {
    let out = bash(dir, setup, &r.body, trace).output().expect("bash");
    assert!(
        out.status.success(),
        "{}:{} recipe {} failed ({}):\n{}\n{}",
        r.doc,
        r.line,
        r.name,
        out.status,
        r.body,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A `traceparent` for a request whose trace id and parent span id the test chooses.
fn traceparent(trace: &str, parent: &str) -> String {
    format!("00-{trace}-{parent}-01")
}

/// The trace and span id of a response's `traceresponse` header.
fn trace_of(resp: &reqwest::Response) -> (String, String) {
    let v = resp.headers()["traceresponse"].to_str().unwrap();
    let parts: Vec<&str> = v.split('-').collect();
    (parts[1].to_owned(), parts[2].to_owned())
}

fn random_hex(bytes: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    s.truncate(bytes * 2);
    s
}

/// `POST path` over a raw connection whose body arrives in two halves `pause` apart, the way a
/// client on a bad connection sends it. Returns the status code.
fn post_slowly(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    pause: Duration,
) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let (first, second) = body.split_at(body.len() / 2);
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(first.as_bytes()).unwrap();
    s.flush().unwrap();
    std::thread::sleep(pause);
    s.write_all(second.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

// The default current-thread runtime: the app's telemetry is this thread's default dispatcher
// (see `TestApp`), so the server must run here; nothing below blocks the thread.
#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "an end-to-end test reads as one scenario, top to bottom"
)]
async fn doc_recipes_print_what_the_workload_implies() {
    let docs = read_docs();
    assert!(docs.problems.is_empty(), "{:?}", docs.problems);
    let recipe = |name: &str| -> Recipe {
        docs.recipes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no recipe {name} in the docs"))
            .clone()
    };
    let setup = |r: &Recipe| docs.setup.get(&r.doc).cloned().unwrap_or_default();

    // The app writes where `vidscope up` run in `dir` would: `.vidscope/telemetry/*.json`.
    let dir = tempfile::tempdir().unwrap();
    let telemetry_dir = dir.path().join(".vidscope/telemetry");
    let files = telemetry_dir.clone();
    let app = TestApp::builder()
        .telemetry(move |c, _| c.with_file_exporters(&files))
        .spawn()
        .await;
    let viewer = app.create_user(Role::Viewer).await;
    let video = "0b9e3c52-0000-4000-8000-00000000abcd";
    sqlx::query(
        "INSERT INTO videos (id, filename, title, content_type, size_bytes, status, \
         duration_seconds, created_at, updated_at) \
         VALUES ($1, $2, 'Lesson', 'video/mp4', 1000, 'ready', 600, 0, 0)",
    )
    .bind(video)
    .bind(format!("{video}.mp4"))
    .execute(app.state.db.pool())
    .await
    .unwrap();
    // A first database-touching request, not sampled (flags 00), so it writes no span: on
    // SQLite the first such request's server span is now and then not exported (see
    // crates/api/tests/api/progress.rs `warm_up`), which would make the counts flaky.
    let resp = app
        .client
        .get(app.url("/api/auth/session"))
        .header("cookie", &viewer.cookie)
        .header(
            "traceparent",
            format!("00-{}-{}-00", random_hex(16), random_hex(8)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.flush_telemetry().await;

    // --- follow: started before the request, so it sees exactly that request's spans.
    let follow = recipe("follow");
    let mut tail = bash(dir.path(), &setup(&follow), &follow.body, "")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // One request with a parent the test chose: the trace whose spans and logs are looked up.
    let (trace, client_span) = (random_hex(16), random_hex(8));
    let resp = app
        .client
        .get(app.url("/api/test-otel"))
        .header("traceparent", traceparent(&trace, &client_span))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (t, server_span) = trace_of(&resp);
    assert_eq!(t, trace);
    app.flush_telemetry().await;
    let mut followed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while followed.len() < 2 && Instant::now() < deadline {
        followed.extend(rx.try_iter());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything else that would arrive (it must not) arrives within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    followed.extend(rx.try_iter());
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", tail.id())])
        .status();
    let _ = tail.wait();
    assert_eq!(
        json_lines(&followed.join("\n")),
        [
            json!({"name": "test-otel", "traceId": trace}),
            json!({"name": "GET /api/test-otel", "traceId": trace}),
        ],
        "{}:{} follow: the request's two spans, child first (a span is written when it ends)",
        follow.doc,
        follow.line
    );

    // --- progress: two saves and a read by the viewer, one save without a session.
    let save = |cookie: Option<&str>, position: f64| {
        let mut req = app
            .client
            .post(app.url("/api/progress"))
            .json(&json!({"videoId": video, "positionSeconds": position, "watchTime": position}));
        if let Some(c) = cookie {
            req = req.header("cookie", c.to_owned());
        }
        req.send()
    };
    let resp = save(Some(&viewer.cookie), 30.0).await.unwrap();
    assert_eq!(resp.status(), 200);
    let saved = trace_of(&resp).0;
    let resp = app
        .client
        .get(app.url(&format!("/api/progress/{video}")))
        .header("cookie", &viewer.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let read = trace_of(&resp).0;
    let resp = save(None, 40.0).await.unwrap();
    assert_eq!(resp.status(), 401);
    let anonymous = trace_of(&resp).0;
    // A save whose body takes 1.5 s to arrive: the one span longer than a second.
    let slow = random_hex(16);
    let port = app.port;
    let (cookie, parent) = (viewer.cookie.clone(), traceparent(&slow, &random_hex(8)));
    let body = json!({"videoId": video, "positionSeconds": 90.0, "watchTime": 90.0}).to_string();
    let status = tokio::task::spawn_blocking(move || {
        post_slowly(
            port,
            "/api/progress",
            &[("cookie", &cookie), ("traceparent", &parent)],
            &body,
            Duration::from_millis(1500),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200);

    // --- player: one session with a slow load and a failed resume, one without either.
    // Each session's events are accepted; its trace id is returned.
    let player = |events: Value| {
        let sent = app
            .client
            .post(app.url("/api/telemetry/player"))
            .header("cookie", &viewer.cookie)
            .json(&json!({"videoId": video, "events": events}))
            .send();
        async move {
            let resp = sent.await.unwrap();
            assert_eq!(resp.status(), 200);
            trace_of(&resp).0
        }
    };
    let bad_session = player(json!([
        {"name": "video.loaded", "loadTimeMs": 1500},
        {"name": "video.resume_attempt", "success": false, "expected": 120, "actual": 0, "resumeTimeMs": 300},
    ]))
    .await;
    player(json!([
        {"name": "video.loaded", "loadTimeMs": 300},
        {"name": "video.resume_attempt", "success": true, "expected": 90, "actual": 90, "resumeTimeMs": 40},
    ]))
    .await;

    // --- two refused sign-ins.
    let mut refused = Vec::new();
    for email in [viewer.user.email.as_str(), "nobody@example.com"] {
        let resp = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"email": email, "password": "not the password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        refused.push(trace_of(&resp).0);
    }

    // --- one 5xx: the database goes away under the app.
    app.state.db.close().await;
    let resp = app.get("/api/test-otel").await;
    assert_eq!(resp.status(), 503);
    app.flush_telemetry().await;

    let output = |name: &str| -> (Recipe, String) {
        let r = recipe(name);
        let got = run(dir.path(), &setup(&r), &r, &trace);
        // Shown with `--nocapture`: what each recipe printed on this run.
        eprintln!("--- recipe {name} ({}:{}):\n{got}", r.doc, r.line);
        (r, got)
    };
    // Text output, byte for byte.
    let check = |name: &str, expected: String| {
        let (r, got) = output(name);
        assert_eq!(
            got, expected,
            "{}:{} recipe {name} printed the left, the workload implies the right",
            r.doc, r.line
        );
    };
    // JSON lines (`jq -c`), line for line; keys compared as JSON (serde_json sorts them).
    let check_json = |name: &str, expected: Vec<Value>| {
        let (r, got) = output(name);
        assert_eq!(
            json_lines(&got),
            expected,
            "{}:{} recipe {name} printed the left, the workload implies the right",
            r.doc,
            r.line
        );
    };

    check_json(
        "progress-calls",
        vec![
            json!({"name": "POST /api/progress", "traceId": saved, "status": 200}),
            json!({"name": "GET /api/progress/{video_id}", "traceId": read, "status": 200}),
            json!({"name": "POST /api/progress", "traceId": anonymous, "status": 401}),
            json!({"name": "POST /api/progress", "traceId": slow, "status": 200}),
        ],
    );
    // Server spans: 2 test-otel (system), 4 progress, 2 player batches (telemetry), 2 sign-ins.
    check(
        "categories",
        ["auth", "progress", "system", "telemetry"]
            .iter()
            .zip([2, 4, 2, 2])
            .map(|(c, n)| format!("{n:>7} {c}\n"))
            .collect(),
    );
    // The 503's server span is the one span with status Error.
    check("errors", "1\n".to_owned());
    let got = json_lines(&output("trace").1);
    assert_eq!(got.len(), 2, "trace: {got:?}");
    assert_eq!(
        got[0],
        json!({"name": "GET /api/test-otel", "spanId": server_span, "parentSpanId": client_span}),
        "trace: the server span first, under the client's span"
    );
    let child = got[1]["spanId"].as_str().unwrap_or_default().to_owned();
    assert!(child.len() == 16 && child != server_span, "{got:?}");
    assert_eq!(
        got[1],
        json!({"name": "test-otel", "spanId": child, "parentSpanId": server_span}),
        "trace: then its child"
    );
    check("trace-logs", "INFO telemetry check ran\n".to_owned());
    check_json(
        "slow-loads",
        vec![json!({"traceId": bad_session, "loadTimeMs": 1500})],
    );
    check_json(
        "failed-resumes",
        vec![json!({"traceId": bad_session, "expected": 120, "actual": 0})],
    );
    check_json(
        "failed-sign-ins",
        vec![
            json!({"traceId": anonymous, "reason": "no_session"}),
            json!({"traceId": refused[0], "reason": "wrong_password"}),
            json!({"traceId": refused[1], "reason": "unknown_email"}),
        ],
    );
    check_json(
        "long-spans",
        vec![json!({"name": "POST /api/progress", "traceId": slow})],
    );
    app.stop().await;
}

//! What the child-process tests share: each test binary has a `child` test that runs a
//! scenario named by `VIDSCOPE_TEST_CHILD` (see `process.rs`), and these run it.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::process::Command;

use vidscope_telemetry::Signal;
use vidscope_telemetry::export::ExportStats;

/// Runs `scenario` in a child process with `vars` (and none of this process's telemetry
/// variables) and returns its stdout.
pub(crate) fn run_child(scenario: &str, backend: &str, vars: &[(&str, String)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["child", "--exact", "--nocapture"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("VIDSCOPE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("VIDSCOPE_TEST_CHILD", scenario)
        .env("VIDSCOPE_TELEMETRY_BACKEND", backend);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{scenario} on {backend}: the child failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The child's stdout JSON log lines.
pub(crate) fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The child's unit of work: a span named `work` with one log record inside, both carrying
/// `round` (an i64: the stock bridge writes a u32 field as a string, the fast path as an int).
pub(crate) fn work(round: i64) {
    let span = tracing::info_span!(target: "vidscope_api", "work", round);
    span.in_scope(|| tracing::info!(target: "vidscope_api", round, "exported record"));
}

/// Prints the child's export counters as one `{"stats": …}` line, for [`stats_line`].
pub(crate) fn print_stats(stats: &ExportStats) {
    let of = |s: Signal| {
        serde_json::json!({
            "exported": stats.exported(s),
            "dropped": stats.dropped(s),
            "rejection_warnings": stats.rejection_warnings(s),
        })
    };
    let line = serde_json::json!({"stats": {
        "traces": of(Signal::Traces),
        "metrics": of(Signal::Metrics),
        "logs": of(Signal::Logs),
    }});
    println!("{line}");
}

/// The counters [`print_stats`] printed in a child's stdout.
pub(crate) fn stats_line(stdout: &str) -> serde_json::Value {
    json_lines(stdout)
        .into_iter()
        .find_map(|l| l.get("stats").cloned())
        .unwrap_or_else(|| panic!("no stats line:\n{stdout}"))
}

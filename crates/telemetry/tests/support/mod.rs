//! What the child-process tests share: each test binary has a `child` test that runs a
//! scenario named by `VIDSCOPE_TEST_CHILD` (see `process.rs`), and these run it.

use std::process::Command;

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

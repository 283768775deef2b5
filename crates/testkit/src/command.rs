//! Programs a test runs to their end: ffmpeg, mount.

use std::process::{Command, Output};

/// Runs `command` to its end and returns its output. Panics unless it succeeded, with `what`
/// (what the test needed it for), its exit status and its stderr: the reason is usually there.
pub fn run_ok(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", command.get_program()));
    assert!(
        out.status.success(),
        "{what}: {:?} {}: {}",
        command.get_program(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

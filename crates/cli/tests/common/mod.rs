//! Helpers for the tests that run the workspace's binaries as processes.
// Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus};

/// A child process that is killed if the test ends before stopping it.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// SIGTERM, then the exit status (a graceful stop flushes telemetry).
    pub fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        self.0.wait().unwrap()
    }
}

/// Reads `vidscope up`'s banner until its `liveness` line and returns the base URL; the rest
/// of stdout (JSON logs) is drained on a thread so the child never blocks on a full pipe.
pub fn up_base_url(stdout: ChildStdout) -> String {
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("vidscope up exited before printing its URLs")
            .unwrap();
        if let Some(rest) = line.trim().strip_prefix("liveness") {
            break rest.trim().trim_end_matches("/healthz").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    base
}

//! The shutdown deadline (`VIDSCOPE_API_SHUTDOWN_SECS`). On SIGTERM the server stops accepting
//! and lets requests in flight finish; one slow upload must not hold the process past the
//! orchestrator's grace period (it was seen to take 68 s), after which the kubelet's SIGKILL
//! would leave a half-written object and lose the telemetry not yet flushed.
//!
//! So when the deadline passes, [`Deadline`] is set: an upload still reading its body stops,
//! removes what it had stored and answers 503; [`crate::Application::run_until_stopped`] then
//! gives such answers [`ABORT_GRACE`] to go out and returns, cutting what is left (downloads,
//! which a player resumes with a `Range`), so the binary can flush telemetry and exit.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How long aborted requests get to answer and clean up after the deadline.
pub const ABORT_GRACE: Duration = Duration::from_secs(2);

/// Set once the shutdown deadline has passed. Cheap to clone; lives in [`crate::AppState`].
#[derive(Clone, Debug)]
pub struct Deadline(Arc<watch::Sender<bool>>);

impl Default for Deadline {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Deadline {
    /// Marks the deadline as passed: every [`Deadline::passed`] resolves.
    pub fn pass(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the deadline has passed (at once if it already has).
    pub async fn passed(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = rx.wait_for(|passed| *passed).await;
    }
}

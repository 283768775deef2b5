//! The thread the fake collectors ([`CaptureReceiver`](super::CaptureReceiver),
//! [`BlackHole`](super::BlackHole)) serve on: a runtime of their own, so a caller blocked on an
//! export cannot starve them, stopped through a watch channel.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::watch;

/// How long the tasks still running after the server's future returned (open connections) may
/// take before they are cut: waiting for them would let one stuck client keep the ports bound.
const GRACE: Duration = Duration::from_millis(100);

/// A server running on a thread of its own; asked to stop by [`shutdown`](Self::shutdown) or
/// drop.
#[derive(Debug)]
pub(super) struct ServerThread {
    stop: watch::Sender<bool>,
    /// Flips to `true` (or closes) once the server thread has finished.
    stopped: watch::Receiver<bool>,
}

impl ServerThread {
    /// Runs `serve` on `runtime` on a thread called `name`. `serve` gets the stop signal: it
    /// turns `true` (or its sender goes) when the server is to stop.
    pub(super) fn spawn<F, Fut>(name: &str, runtime: Runtime, serve: F) -> std::io::Result<Self>
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stop_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(serve(stop_rx));
                runtime.shutdown_timeout(GRACE);
                stopped_tx.send_replace(true);
            })?;
        Ok(ServerThread { stop, stopped })
    }

    /// Asks the server to stop and waits until its thread has finished (its ports released).
    pub(super) async fn shutdown(&self) {
        self.stop.send_replace(true);
        let mut stopped = self.stopped.clone();
        // An error means the server thread is gone, which is what we are waiting for.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

//! A collector that takes connections and never answers: what a hung Collector, or a balancer
//! in front of a dead one, looks like to an exporter. Unlike a closed port (refused at once),
//! every connection is accepted and every byte read, so an exporter's only way out is its own
//! timeout. The fault drill `scripts/drills/collector-blackholed.sh` runs it through
//! `otlp-sink --black-hole` to check that requests and shutdown do not wait on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::server_thread::ServerThread;

/// Listeners that accept, read and stay silent until [`shutdown`](Self::shutdown) or drop.
/// They run on a thread of their own, like [`CaptureReceiver`](super::CaptureReceiver), so a
/// caller blocked on an export cannot starve them.
#[derive(Debug)]
pub struct BlackHole {
    addrs: Vec<SocketAddr>,
    counts: Arc<Counts>,
    server: ServerThread,
}

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicU64,
    bytes: AtomicU64,
}

impl BlackHole {
    /// Binds every address before returning (port 0 picks a free one, see [`addrs`]), so a
    /// client started next connects to a listener that is already there.
    ///
    /// [`addrs`]: Self::addrs
    pub fn start(addrs: &[SocketAddr]) -> std::io::Result<BlackHole> {
        let listeners = addrs
            .iter()
            .map(|addr| super::bind(*addr, "black-hole"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let bound = listeners
            .iter()
            .map(std::net::TcpListener::local_addr)
            .collect::<std::io::Result<Vec<_>>>()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let counts = Arc::new(Counts::default());
        let thread_counts = Arc::clone(&counts);
        let server = ServerThread::spawn("otlp-black-hole", runtime, move |stop| async move {
            let mut tasks = tokio::task::JoinSet::new();
            for listener in listeners {
                let listener = match TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => {
                        eprintln!("OTLP black hole: cannot register a listener: {err}");
                        continue;
                    }
                };
                tasks.spawn(accept(listener, Arc::clone(&thread_counts), stop.clone()));
            }
            while tasks.join_next().await.is_some() {}
        })?;
        Ok(BlackHole {
            addrs: bound,
            counts,
            server,
        })
    }

    /// The bound addresses, in the order given to [`start`](Self::start).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }

    /// Bytes read (and thrown away) so far.
    pub fn bytes(&self) -> u64 {
        self.counts.bytes.load(Ordering::Relaxed)
    }

    /// Closes the listeners and every held connection, and waits until they are gone.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}

async fn accept(listener: TcpListener, counts: Arc<Counts>, stop: watch::Receiver<bool>) {
    let mut held = tokio::task::JoinSet::new();
    let mut stopped = std::pin::pin!(stopped(stop.clone()));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    counts.connections.fetch_add(1, Ordering::Relaxed);
                    held.spawn(swallow(stream, Arc::clone(&counts), stop.clone()));
                }
                // A failed accept (out of descriptors, a reset before accept) is the client's
                // problem; keep listening.
                Err(err) => eprintln!("OTLP black hole: accept failed: {err}"),
            },
            () = &mut stopped => break,
        }
    }
    held.abort_all();
}

/// Reads until the client gives up or the hole is shut; never writes.
async fn swallow(mut stream: TcpStream, counts: Arc<Counts>, stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut stopped = std::pin::pin!(stopped(stop));
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            () = &mut stopped => return,
        }
    }
}

/// Resolves once a stop is requested (or the sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

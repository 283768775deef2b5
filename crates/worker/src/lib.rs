//! The background worker. In this first version it owns the process lifecycle only: it
//! connects to the database the API uses and stops cleanly on shutdown. The job queue, the jobs
//! (probe, thumbnail, CRM sync) and the worker health endpoint arrive with the worker issue.

use std::time::Duration;

use vidscope_core::db::Db;

pub struct Worker {
    db: Db,
    idle_check: Duration,
}

impl Worker {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            idle_check: Duration::from_secs(30),
        }
    }

    /// Runs until `shutdown` resolves. Periodically checks that the database still answers so
    /// an outage shows up in the worker's logs, not only in the API's.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(backend = self.db.backend().system_name(), "worker started");
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.idle_check);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    if let Err(e) = self.db.ping().await {
                        tracing::warn!(error = %e, "worker cannot reach the database");
                    }
                }
            }
        }
        tracing::info!("worker stopped");
    }
}

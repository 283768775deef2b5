//! Shared helpers: queues on a fresh namespace, a Redis server a test may stop, videos made by
//! ffmpeg.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vidscope_core::db::Db;
use vidscope_core::jobs::crm_sync::CrmSyncPayload;
use vidscope_core::jobs::probe::ProbePayload;
use vidscope_core::jobs::{JobKind, JobPayload};
use vidscope_core::queue::{DbQueue, Queue, QueueSettings, RedisQueue};
use vidscope_testkit::media::make_clip;
use vidscope_worker::jobs::Registry;
use vidscope_worker::jobs::thumbnail::ThumbnailPayload;

pub(crate) const PROBE: JobKind = ProbePayload::KIND;
pub(crate) const THUMBNAIL: JobKind = ThumbnailPayload::KIND;
pub(crate) const CRM_SYNC: JobKind = CrmSyncPayload::KIND;

/// The kinds a production worker's queue serves.
pub(crate) fn kinds() -> Vec<JobKind> {
    Registry::standard().kinds()
}

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub(crate) fn settings(consumer: &str, visibility: Duration) -> QueueSettings {
    QueueSettings {
        visibility,
        consumer: consumer.to_owned(),
    }
}

/// A Redis queue under a prefix no other test uses.
pub(crate) async fn redis_queue(
    url: &str,
    prefix: &str,
    consumer: &str,
    visibility: Duration,
) -> Queue {
    let conn = vidscope_core::redis_conn::connect(url).await.unwrap();
    let q = Queue::Redis(RedisQueue::new(
        conn,
        prefix,
        &kinds(),
        settings(consumer, visibility),
    ));
    q.prepare().await.unwrap();
    q
}

pub(crate) fn db_queue(db: &Db, consumer: &str, visibility: Duration) -> Queue {
    Queue::Db(DbQueue::new(
        db.clone(),
        &kinds(),
        settings(consumer, visibility),
    ))
}

pub(crate) fn unique_prefix() -> String {
    format!("vidscope-test:{}", uuid::Uuid::new_v4().simple())
}

/// A 2-second H.264/AAC clip with a test pattern.
pub(crate) fn make_video(path: &Path) {
    make_clip(
        path,
        2,
        &[
            "-shortest",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-movflags",
            "+faststart",
        ],
    );
}

/// A redis-server of the test's own, on a free port, that the test can stop and start.
pub(crate) struct OwnRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.restart().await;
        r
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
            ])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the worker tests");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

//! One contract, two adapters: every test runs on the database queue (SQLite or Postgres, as
//! the suite is configured) and on Redis Streams.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use vidscope_core::db::now_millis;
use vidscope_core::jobs::{JobKind, JobMessage};
use vidscope_core::queue::{Delivery, Queue};
use vidscope_testkit::db::{TestDb, fresh_db};

use crate::common::{db_queue, redis_queue, redis_url, unique_prefix};

const NONE: Duration = Duration::ZERO;

/// Two workers' views of one queue (`a` and `b` are different consumers), per adapter.
struct Pair {
    name: &'static str,
    a: Queue,
    b: Queue,
    _db: TestDb,
}

impl Pair {
    /// Publishes a fresh `kind` job through `a` and claims it there.
    async fn publish_and_claim(&self, kind: JobKind) -> (JobMessage, Delivery) {
        let m = message(kind);
        self.a.publish(&m).await.unwrap();
        let d = self
            .a
            .claim(1, Duration::from_secs(1))
            .await
            .unwrap()
            .remove(0);
        (m, d)
    }
}

async fn pairs(visibility: Duration) -> Vec<Pair> {
    let db = fresh_db().await;
    let prefix = unique_prefix();
    let url = redis_url();
    vec![
        Pair {
            name: "db",
            a: db_queue(&db.db, "a", visibility),
            b: db_queue(&db.db, "b", visibility),
            _db: db,
        },
        Pair {
            name: "redis",
            a: redis_queue(&url, &prefix, "a", visibility).await,
            b: redis_queue(&url, &prefix, "b", visibility).await,
            _db: fresh_db().await,
        },
    ]
}

fn message(kind: JobKind) -> JobMessage {
    let now = now_millis();
    JobMessage {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        payload: json!({ "n": 1 }),
        trace: HashMap::from([(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )]),
        enqueued_at: now,
        available_at: now,
        attempt: 0,
    }
}

fn depth(counts: &[vidscope_core::queue::Depth], kind: JobKind, state: &str) -> i64 {
    counts
        .iter()
        .filter(|d| d.kind == kind && d.state == state)
        .map(|d| d.count)
        .sum()
}

#[tokio::test]
async fn a_published_job_is_claimed_once_and_acknowledged() {
    for p in pairs(Duration::from_secs(30)).await {
        let m = message(JobKind::VideoProbe);
        p.a.publish(&m).await.unwrap();
        assert_eq!(
            depth(&p.a.depth().await.unwrap(), m.kind, "ready"),
            1,
            "{}",
            p.name
        );

        let got = p.a.claim(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(got.len(), 1, "{}", p.name);
        assert_eq!(
            got[0].message, m,
            "{}: the envelope survives the queue",
            p.name
        );
        assert_eq!(got[0].attempt, 1, "{}", p.name);
        assert_eq!(
            depth(&p.a.depth().await.unwrap(), m.kind, "in_flight"),
            1,
            "{}",
            p.name
        );
        // Hidden from the other worker while leased.
        assert!(p.b.claim(10, NONE).await.unwrap().is_empty(), "{}", p.name);

        assert!(p.a.ack(&got[0]).await.unwrap(), "{}", p.name);
        let after = p.a.depth().await.unwrap();
        assert_eq!(
            after.iter().map(|d| d.count).sum::<i64>(),
            0,
            "{}: {after:?}",
            p.name
        );
        assert!(p.b.claim(10, NONE).await.unwrap().is_empty(), "{}", p.name);
    }
}

#[tokio::test]
async fn a_retry_waits_for_its_delay_and_counts_the_attempt() {
    for p in pairs(Duration::from_secs(30)).await {
        let (m, first) = p.publish_and_claim(JobKind::VideoThumbnail).await;
        p.a.retry(&first, Duration::from_millis(600), "boom")
            .await
            .unwrap();

        assert!(
            p.b.claim(1, NONE).await.unwrap().is_empty(),
            "{}: retried too early",
            p.name
        );
        assert_eq!(
            depth(&p.a.depth().await.unwrap(), m.kind, "delayed"),
            1,
            "{}",
            p.name
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let second = p.b.claim(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(second.len(), 1, "{}: due retry not delivered", p.name);
        assert_eq!(second[0].message.id, m.id, "{}", p.name);
        assert_eq!(second[0].attempt, 2, "{}", p.name);
        assert!(
            second[0].message.available_at >= first.message.available_at + 600,
            "{}",
            p.name
        );
        p.b.ack(&second[0]).await.unwrap();
    }
}

#[tokio::test]
async fn a_job_whose_worker_went_silent_is_reclaimed_after_the_visibility_timeout() {
    for p in pairs(Duration::from_millis(800)).await {
        let (m, lost) = p.publish_and_claim(JobKind::CrmSync).await;
        // Worker a dies: no ack, no heartbeat.
        assert!(p.b.claim(1, NONE).await.unwrap().is_empty(), "{}", p.name);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let again = p.b.claim(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(again.len(), 1, "{}: not reclaimed", p.name);
        assert_eq!(again[0].message.id, m.id, "{}", p.name);
        assert_eq!(
            again[0].attempt, 2,
            "{}: a reclaim is a new delivery",
            p.name
        );
        assert!(p.b.ack(&again[0]).await.unwrap(), "{}", p.name);
        // The dead worker's late ack finds nothing to settle (database: lease token; Redis:
        // the entry is gone).
        assert!(
            !p.a.ack(&lost).await.unwrap(),
            "{}: stale ack accepted",
            p.name
        );
    }
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_leased() {
    for p in pairs(Duration::from_millis(800)).await {
        let (_, d) = p.publish_and_claim(JobKind::VideoProbe).await;
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(p.a.heartbeat(&d).await.unwrap(), "{}", p.name);
        }
        assert!(
            p.b.claim(1, NONE).await.unwrap().is_empty(),
            "{}: stolen despite heartbeats",
            p.name
        );
        p.a.ack(&d).await.unwrap();
    }
}

#[tokio::test]
async fn dead_letters_keep_the_job_and_its_error_class() {
    for p in pairs(Duration::from_secs(30)).await {
        let (m, d) = p.publish_and_claim(JobKind::VideoProbe).await;
        p.a.dead_letter(&d, "permanent", "ffprobe exited with 1")
            .await
            .unwrap();
        assert!(p.b.claim(1, NONE).await.unwrap().is_empty(), "{}", p.name);
        let dead = p.a.dead_letters(JobKind::VideoProbe, 10).await.unwrap();
        assert_eq!(dead.len(), 1, "{}", p.name);
        assert_eq!(dead[0].message.id, m.id, "{}", p.name);
        assert_eq!(dead[0].error_class, "permanent", "{}", p.name);
        assert_eq!(dead[0].error, "ffprobe exited with 1", "{}", p.name);
        assert_eq!(dead[0].attempt, 1, "{}", p.name);
        assert_eq!(
            depth(&p.a.depth().await.unwrap(), m.kind, "dead"),
            1,
            "{}",
            p.name
        );
    }
}

#[tokio::test]
async fn a_released_job_is_claimable_at_once_without_counting_an_attempt() {
    for p in pairs(Duration::from_secs(30)).await {
        let (_, d) = p.publish_and_claim(JobKind::VideoThumbnail).await;
        p.a.release(&d).await.unwrap();
        let again = p.b.claim(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(again.len(), 1, "{}: released job not claimable", p.name);
        assert_eq!(again[0].attempt, 1, "{}", p.name);
        p.b.ack(&again[0]).await.unwrap();
    }
}

#[tokio::test]
async fn claims_respect_the_limit() {
    for p in pairs(Duration::from_secs(30)).await {
        for _ in 0..5 {
            p.a.publish(&message(JobKind::VideoProbe)).await.unwrap();
        }
        let got = p.a.claim(3, Duration::from_secs(1)).await.unwrap();
        assert_eq!(got.len(), 3, "{}", p.name);
        let rest = p.b.claim(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(rest.len(), 2, "{}", p.name);
        for d in got.iter().chain(&rest) {
            p.a.ack(d).await.unwrap();
        }
    }
}

//! One contract, two adapters: every test runs on the database queue (SQLite or Postgres, as
//! the suite is configured) and on Redis Streams.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use vidscope_core::db::now_millis;
use vidscope_core::jobs::{JobKind, JobMessage};
use vidscope_core::queue::{Delivery, Queue};
use vidscope_testkit::db::{TestDb, fresh_db};

use crate::common::{CRM_SYNC, PROBE, THUMBNAIL, db_queue, redis_queue, redis_url, unique_prefix};

const NONE: Duration = Duration::ZERO;

/// Two workers' views of one queue (`a` and `b` are different consumers), per adapter.
struct Pair {
    name: &'static str,
    a: Queue,
    b: Queue,
    db: TestDb,
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

    /// How many `kind` jobs the queue (as `a` sees it) holds in `state`.
    async fn depth_of(&self, kind: JobKind, state: &str) -> i64 {
        depth(&self.a.depth().await.unwrap(), kind, state)
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
            db,
        },
        Pair {
            name: "redis",
            a: redis_queue(&url, &prefix, "a", visibility).await,
            b: redis_queue(&url, &prefix, "b", visibility).await,
            db: fresh_db().await,
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
        let m = message(PROBE);
        p.a.publish(&m).await.unwrap();
        assert_eq!(p.depth_of(m.kind, "ready").await, 1, "{}", p.name);

        let got = p.a.claim(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(got.len(), 1, "{}", p.name);
        assert_eq!(
            got[0].message, m,
            "{}: the envelope survives the queue",
            p.name
        );
        assert_eq!(got[0].attempt, 1, "{}", p.name);
        assert_eq!(p.depth_of(m.kind, "in_flight").await, 1, "{}", p.name);
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
        let (m, first) = p.publish_and_claim(THUMBNAIL).await;
        p.a.retry(&first, Duration::from_millis(600), "boom")
            .await
            .unwrap();

        assert!(
            p.b.claim(1, NONE).await.unwrap().is_empty(),
            "{}: retried too early",
            p.name
        );
        assert_eq!(p.depth_of(m.kind, "delayed").await, 1, "{}", p.name);
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
        let (m, lost) = p.publish_and_claim(CRM_SYNC).await;
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
        let (_, d) = p.publish_and_claim(PROBE).await;
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
        let (m, d) = p.publish_and_claim(PROBE).await;
        p.a.dead_letter(&d, "permanent", "ffprobe exited with 1")
            .await
            .unwrap();
        assert!(p.b.claim(1, NONE).await.unwrap().is_empty(), "{}", p.name);
        let dead = p.a.dead_letters(PROBE, 10).await.unwrap();
        assert_eq!(dead.len(), 1, "{}", p.name);
        assert_eq!(dead[0].message.id, m.id, "{}", p.name);
        assert_eq!(dead[0].error_class, "permanent", "{}", p.name);
        assert_eq!(dead[0].error, "ffprobe exited with 1", "{}", p.name);
        assert_eq!(dead[0].attempt, 1, "{}", p.name);
        assert_eq!(p.depth_of(m.kind, "dead").await, 1, "{}", p.name);
    }
}

#[tokio::test]
async fn a_released_job_is_claimable_at_once_without_counting_an_attempt() {
    for p in pairs(Duration::from_secs(30)).await {
        let (_, d) = p.publish_and_claim(THUMBNAIL).await;
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
            p.a.publish(&message(PROBE)).await.unwrap();
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

/// Rows no worker can read, written straight into the table (a newer build's kind, a payload or
/// trace that is not JSON), ahead of a good job.
async fn corrupt_rows(db: &vidscope_core::db::Db) {
    let at = now_millis() - 1_000;
    for (id, kind, payload, trace) in [
        ("bad-kind", "video.transcode", "{}", "{}"),
        ("bad-payload", "video.probe", "{not json", "{}"),
        ("bad-trace", "video.probe", "{}", "nope"),
    ] {
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, trace_context, status, attempt, enqueued_at, \
             available_at, updated_at) VALUES ($1, $2, $3, $4, 'ready', 0, $5, $5, $5)",
        )
        .bind(id)
        .bind(kind)
        .bind(payload)
        .bind(trace)
        .bind(at)
        .execute(db.pool())
        .await
        .unwrap();
    }
}

/// Entries no worker can read, written straight into the probe stream: not JSON, a thumbnail
/// job in the probe stream, and a job of a kind no worker registered (a newer build's).
async fn corrupt_entries(url: &str, prefix: &str) {
    let mut conn = vidscope_core::redis_conn::connect(url).await.unwrap();
    let stream = format!("{prefix}:{}", PROBE.as_str());
    let misplaced = serde_json::to_string(&message(THUMBNAIL)).unwrap();
    let mut unknown = serde_json::to_value(message(PROBE)).unwrap();
    unknown["kind"] = "video.transcode".into();
    let unknown = unknown.to_string();
    for job in ["{not json", misplaced.as_str(), unknown.as_str()] {
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("job")
            .arg(job)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// How a dead letter names a job of a kind no registered job has.
const UNKNOWN_KIND: &str = "unknown job kind \"video.transcode\"";

/// An unreadable job used to fail every claim that returned it, so it and the good jobs
/// claimed with it stayed in flight for ever. Now it is dead-lettered at once, with the
/// reason, and the good job is delivered.
#[tokio::test]
async fn an_unreadable_job_is_dead_lettered_and_the_jobs_beside_it_are_delivered() {
    let db = fresh_db().await;
    let prefix = unique_prefix();
    let url = redis_url();
    corrupt_rows(&db.db).await;
    corrupt_entries(&url, &prefix).await;
    let queues = [
        ("db", db_queue(&db.db, "a", Duration::from_secs(30)), 2),
        (
            "redis",
            redis_queue(&url, &prefix, "a", Duration::from_secs(30)).await,
            3,
        ),
    ];
    for (name, q, unreadable_probes) in queues {
        let good = message(PROBE);
        q.publish(&good).await.unwrap();

        let got = q.claim(10, Duration::from_secs(1)).await.unwrap();
        let ids: Vec<_> = got.iter().map(|d| d.message.id.as_str()).collect();
        assert_eq!(ids, [good.id.as_str()], "{name}");
        q.ack(&got[0]).await.unwrap();
        // Nothing is left to fail a later claim.
        assert!(q.claim(10, NONE).await.unwrap().is_empty(), "{name}");

        let dead = q.dead_letters(PROBE, 10).await.unwrap();
        assert_eq!(dead.len(), unreadable_probes, "{name}: {dead:?}");
        for d in &dead {
            assert_eq!(d.error_class, "permanent", "{name}");
            assert!(!d.error.is_empty(), "{name}: no reason");
        }
        assert!(
            dead.iter()
                .any(|d| d.message.payload == serde_json::Value::String("{not json".into())),
            "{name}: the unreadable text is kept: {dead:?}"
        );
        if name == "redis" {
            assert!(
                dead.iter().any(|d| d.error.contains(UNKNOWN_KIND)),
                "{name}: the unknown kind is dead, with its reason: {dead:?}"
            );
        }
    }
    // The unknown kind is dead in the table, with its reason.
    let row = sqlx::query("SELECT status, last_error FROM jobs WHERE id = 'bad-kind'")
        .fetch_one(db.db.pool())
        .await
        .unwrap();
    use sqlx::Row as _;
    assert_eq!(row.get::<String, _>("status"), "dead");
    assert!(
        row.get::<String, _>("last_error").contains(UNKNOWN_KIND),
        "{:?}",
        row.get::<String, _>("last_error")
    );
}

/// The relay used to stop at the first outbox row it could not publish, for ever: a kind this
/// build does not know (a newer API during a rolling deploy) or a payload that is not JSON.
/// Now the unknown kind waits for a worker that knows it and the rows behind it go out; the
/// bad payload goes out as text, for the worker to dead-letter with the reason.
#[tokio::test]
async fn the_outbox_relay_passes_rows_it_cannot_publish() {
    let db = fresh_db().await;
    let q = db_queue(&db.db, "a", Duration::from_secs(30));
    let at = now_millis() - 1_000;
    for (i, (id, kind, payload)) in [
        ("newer-kind", "video.transcode", "{}"),
        ("not-json", "video.probe", "{not json"),
        ("good", "video.thumbnail", "{\"n\":1}"),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO outbox (id, kind, payload, trace_context, created_at) \
             VALUES ($1, $2, $3, '{}', $4)",
        )
        .bind(id)
        .bind(kind)
        .bind(payload)
        .bind(at + i as i64)
        .execute(db.db.pool())
        .await
        .unwrap();
    }

    let published = vidscope_core::outbox::relay_once(&db.db, &q, 10)
        .await
        .unwrap();
    assert_eq!(published, [PROBE, THUMBNAIL]);
    assert_eq!(
        vidscope_core::outbox::outbox_pending(&db.db).await.unwrap(),
        1
    );
    // Again: nothing more to publish, and no error.
    assert!(
        vidscope_core::outbox::relay_once(&db.db, &q, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut got = q.claim(10, Duration::from_secs(1)).await.unwrap();
    got.sort_by(|a, b| a.message.id.cmp(&b.message.id));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message.id, "good");
    assert_eq!(got[1].message.id, "not-json");
    assert_eq!(
        got[1].message.payload,
        serde_json::Value::String("{not json".into())
    );
}

/// Every worker replica runs an outbox relay. Two relays on two connections, racing over one
/// outbox, must put each row on the queue once: before rows were claimed in a transaction, both
/// read the same unpublished rows and both published them (the replica test saw a video probed
/// twice). Both adapters; the database is the suite's (SQLite or Postgres).
#[tokio::test]
async fn two_relays_racing_publish_each_outbox_row_once() {
    const ROWS: usize = 40;
    for pair in pairs(Duration::from_secs(30)).await {
        let db = &pair.db.db;
        let at = now_millis() - 1_000;
        for i in 0..ROWS {
            sqlx::query(
                "INSERT INTO outbox (id, kind, payload, trace_context, created_at) \
                 VALUES ($1, 'video.probe', '{}', '{}', $2)",
            )
            .bind(format!("row-{i:02}"))
            .bind(at + i as i64)
            .execute(db.pool())
            .await
            .unwrap();
        }
        // The second relay's own pool: another process, as far as the database can tell.
        let other = vidscope_core::db::Db::connect(&pair.db.url).await.unwrap();
        let relay = |db: vidscope_core::db::Db, queue: &Queue| {
            let queue = queue.clone();
            async move {
                let mut published = 0;
                while vidscope_core::outbox::outbox_pending(&db).await.unwrap() > 0 {
                    published += vidscope_core::outbox::relay_once(&db, &queue, 3)
                        .await
                        .unwrap_or_default()
                        .len();
                }
                published
            }
        };
        let (a, b) = tokio::join!(relay(db.clone(), &pair.a), relay(other, &pair.b));
        // The database queue may take a row twice (its INSERT drops the copy), Redis may not.
        if pair.name == "redis" {
            assert_eq!(a + b, ROWS, "{}: relays published {a} + {b}", pair.name);
        }

        let mut seen = HashMap::<String, usize>::new();
        loop {
            let batch = pair.a.claim(50, Duration::from_millis(200)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for d in batch {
                *seen.entry(d.message.id.clone()).or_default() += 1;
                pair.a.ack(&d).await.unwrap();
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{}: delivered more than once: {twice:?}",
            pair.name
        );
        assert_eq!(seen.len(), ROWS, "{}: every row delivered", pair.name);
    }
}

/// `job.queue_depth` stopped being reported when the table held one row of a kind this worker
/// does not run (a newer release's, or one written by hand): the whole sample failed. Such rows
/// are skipped; the kinds the worker runs are counted as before.
#[tokio::test]
async fn the_depth_of_the_database_queue_skips_kinds_the_worker_does_not_run() {
    let db = fresh_db().await;
    let q = db_queue(&db.db, "a", Duration::from_secs(30));
    corrupt_rows(&db.db).await;
    q.publish(&message(CRM_SYNC)).await.unwrap();
    let counts = q
        .depth()
        .await
        .expect("a row of an unknown kind fails the sample");
    assert_eq!(depth(&counts, CRM_SYNC, "ready"), 1, "{counts:?}");
    // The two unreadable probe rows are ready rows of a known kind.
    assert_eq!(depth(&counts, PROBE, "ready"), 2, "{counts:?}");
    assert!(
        counts.iter().all(|d| d.kind != THUMBNAIL || d.count == 0),
        "{counts:?}"
    );
}

/// Redis comes back empty (restart without persistence, failover, flush). A claim used to fail
/// with `NOGROUP` for ever; now it recreates the consumer groups from the start of each stream
/// (so what the relay published since is read) and counts the loss, and the outbox sends again
/// exactly the jobs Redis lost: not those completed, dead-lettered, or still held.
#[tokio::test]
async fn a_redis_that_lost_its_data_gets_its_groups_back_and_the_lost_jobs_again() {
    use vidscope_core::jobs::{self, NewJob, crm_sync};
    use vidscope_core::outbox;

    let redis = crate::common::OwnRedis::start().await;
    let db = fresh_db().await;
    let q = redis_queue(&redis.url(), &unique_prefix(), "a", Duration::from_secs(30)).await;
    let job = || {
        NewJob::new(&crm_sync::CrmSyncPayload {
            user_id: uuid::Uuid::new_v4().to_string(),
            event: crm_sync::CrmEvent::Registered,
        })
    };
    // Five jobs: one completed, one dead-lettered, one in flight, two waiting.
    let before: Vec<NewJob> = (0..5).map(|_| job()).collect();
    outbox::enqueue(&db.db, &before).await.unwrap();
    assert_eq!(outbox::relay_once(&db.db, &q, 10).await.unwrap().len(), 5);
    let claimed = q.claim(3, Duration::from_secs(1)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    jobs::mark_done(&db.db, &claimed[0].message.id, CRM_SYNC)
        .await
        .unwrap();
    q.ack(&claimed[0]).await.unwrap();
    q.dead_letter(&claimed[1], "permanent", "no such user")
        .await
        .unwrap();
    outbox::mark_dead_lettered(&db.db, &claimed[1].message.id)
        .await
        .unwrap();
    let settled = [&claimed[0].message.id, &claimed[1].message.id];

    let mut conn = vidscope_core::redis_conn::connect(&redis.url())
        .await
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    // Published after the loss, before any worker noticed: the stream exists again, without
    // its group.
    let after = job();
    outbox::enqueue(&db.db, std::slice::from_ref(&after))
        .await
        .unwrap();
    assert_eq!(outbox::relay_once(&db.db, &q, 10).await.unwrap().len(), 1);

    assert_eq!(q.losses(), 0);
    let first = q.claim(10, NONE).await.expect("a claim after the loss");
    assert!(
        first.is_empty(),
        "the claim that finds the loss takes nothing"
    );
    assert_eq!(q.losses(), 1, "the loss is counted");

    // Rows stamped within the margin are left to a later check; with none, the three jobs
    // Redis lost are sent again, once.
    assert_eq!(
        outbox::republish_lost(&db.db, &q, Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        outbox::republish_lost(&db.db, &q, NONE).await.unwrap(),
        3,
        "in flight, and the two waiting"
    );
    assert_eq!(outbox::relay_once(&db.db, &q, 10).await.unwrap().len(), 3);
    assert_eq!(
        outbox::republish_lost(&db.db, &q, NONE).await.unwrap(),
        0,
        "held again: nothing more to send"
    );

    let mut got: Vec<String> = q
        .claim(10, Duration::from_secs(1))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message.id)
        .collect();
    got.sort();
    let mut expected: Vec<String> = before
        .iter()
        .map(|j| j.id.clone())
        .filter(|id| !settled.contains(&id))
        .chain([after.id.clone()])
        .collect();
    expected.sort();
    assert_eq!(got, expected, "each lost job once, and the one sent after");
    assert_eq!(q.losses(), 1);
}

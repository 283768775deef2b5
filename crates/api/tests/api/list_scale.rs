//! The lesson list at 10 000 lessons (issue 28): the page query (`videos::list_page`, shared by
//! `GET /videos` and `GET /api/videos`) reads an index range, first page and deep page alike,
//! instead of sorting the library on each request. The plan is asserted (a test that can fail
//! whatever the machine's speed); the times are printed, not asserted:
//! `scripts/measure-video-list.sh` runs this on Postgres and prints them with the
//! `EXPLAIN ANALYZE` output (figures in docs/capacity.md).

use std::time::{Duration, Instant};

use sqlx::Row;
use vidscope_core::db::{Backend, Db};
use vidscope_core::domain::Role;
use vidscope_core::videos::{self, LIST_PAGE_SQL, ListCursor, ListQuery, TitleSearch};
use vidscope_testkit::app::create_user;
use vidscope_testkit::db::fresh_db;

const LESSONS: i64 = 10_000;
const PAGE: usize = 24;

/// 10 000 lessons (ids `00000000-0000-4000-8000-<n>`, three per `created_at` so the order's
/// tie-break on id is exercised), and progress of `user` in every tenth.
async fn seed(db: &Db, user: &str) {
    let id = match db.backend() {
        Backend::Postgres => "'00000000-0000-4000-8000-' || lpad(i::text, 12, '0')",
        Backend::Sqlite => "printf('00000000-0000-4000-8000-%012d', i)",
    };
    let numbers = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {LESSONS})"
    );
    let lessons = format!(
        "{numbers} INSERT INTO videos (id, filename, title, content_type, size_bytes, status, \
         duration_seconds, created_at, updated_at) \
         SELECT {id}, 'lesson.mp4', 'Lesson ' || i, 'video/mp4', 1000, 'ready', 600.0, \
         (i / 3) * 1000, 0 FROM n"
    );
    let progress = format!(
        "{numbers} INSERT INTO progress (user_id, video_id, position_seconds, \
         watch_time_seconds, completed, updated_at) \
         SELECT $1, {id}, 60.0, 60.0, 0, i FROM n WHERE i % 10 = 0"
    );
    sqlx::query(sqlx::AssertSqlSafe(lessons))
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(progress))
        .bind(user)
        .execute(db.pool())
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(db.pool()).await.unwrap();
}

/// The query plan of the page query with these parameters, one line per row.
async fn plan(db: &Db, user: &str, after: (i64, &str), pattern: &str) -> Vec<String> {
    let (explain, column) = match db.backend() {
        Backend::Postgres => ("EXPLAIN (ANALYZE, BUFFERS) ", 0_usize),
        Backend::Sqlite => ("EXPLAIN QUERY PLAN ", 3),
    };
    // Both parts are constants of this test and of core.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{explain}{LIST_PAGE_SQL}")))
        .bind(user)
        .bind(after.0)
        .bind(after.1)
        .bind(pattern)
        .bind(PAGE as i64 + 1)
        .fetch_all(db.pool())
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String, _>(column).unwrap())
        .collect()
}

/// The median wall time of `runs` calls of the page query, with its page's length.
async fn time(db: &Db, user: &str, q: &ListQuery<'_>, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut len = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let page = videos::list_page(db, Some(user), q).await.unwrap();
        times.push(start.elapsed());
        len = page.videos.len();
    }
    times.sort();
    (times[runs / 2], len)
}

#[tokio::test]
async fn the_list_query_reads_an_index_range_at_10000_lessons() {
    let test_db = fresh_db().await;
    let db = &test_db.db;
    let user = create_user(db, Role::Viewer).await.user.id;
    seed(db, &user).await;
    let backend = format!("{:?}", db.backend());

    // A deep page: after lesson 150 (newest first, so 9 850 lessons come before it).
    let deep = ListCursor {
        created_at: (150 / 3) * 1000,
        id: format!("00000000-0000-4000-8000-{:012}", 150),
    };
    let search = TitleSearch::parse("q", "lesson 99").unwrap().unwrap();
    let cases = [
        ("first page", None, None),
        ("deep page", Some(&deep), None),
        ("title search", None, Some(&search)),
    ];
    for (what, after, search) in cases {
        let q = ListQuery {
            search,
            after,
            limit: PAGE,
        };
        let (median, len) = time(db, &user, &q, 25).await;
        println!("{backend} {what}: {len} lessons in {median:?} (median of 25, wall time)");
        assert_eq!(len, PAGE, "{what}: a full page");
    }
    // The deep page is the right one: the next lessons in order, each with its progress row.
    let page = videos::list_page(
        db,
        Some(&user),
        &ListQuery {
            search: None,
            after: Some(&deep),
            limit: PAGE,
        },
    )
    .await
    .unwrap();
    assert_eq!(page.videos[0].video.title, "Lesson 149");
    assert_eq!(page.videos[23].video.title, "Lesson 126");
    let with_progress: Vec<_> = page
        .videos
        .iter()
        .filter(|l| l.progress.is_some())
        .map(|l| l.video.title.as_str())
        .collect();
    assert_eq!(with_progress, ["Lesson 140", "Lesson 130"]);

    // The plans: an index range on `videos_listing`, never a sort of the whole table.
    for (what, after) in [
        ("first page", (i64::MAX, "")),
        ("deep page", (deep.created_at, deep.id.as_str())),
    ] {
        let lines = plan(db, &user, after, "%").await;
        println!("{backend} {what} plan:\n  {}", lines.join("\n  "));
        assert!(
            lines.iter().any(|l| l.contains("videos_listing")),
            "{what}: the listing index is not used:\n{lines:#?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("Sort Key") || l.contains("TEMP B-TREE")),
            "{what}: the rows are sorted, not read in order:\n{lines:#?}"
        );
    }
    let lines = plan(db, &user, (i64::MAX, ""), "%lesson 99%").await;
    println!("{backend} title search plan:\n  {}", lines.join("\n  "));
}

//! `http.server.request.duration`: one series per (route, method, status), each counting
//! exactly its own requests. The middleware records through handles bound to a label set
//! (`catalog::RequestDurations`), so a handle reused for the wrong requests would show here as
//! a count in the wrong series.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use vidscope_testkit::otlp::CapturedPoint;

const WAIT: Duration = Duration::from_secs(10);
const NAME: &str = "http.server.request.duration";

/// A series by its labels; `route: None` is the unmatched series, which has no `http.route`.
struct Series {
    route: Option<&'static str>,
    method: &'static str,
    status: i64,
    category: &'static str,
}

impl Series {
    fn is(&self, p: &CapturedPoint) -> bool {
        p.attr_str("http.route") == self.route
            && p.attr_str("http.request.method") == Some(self.method)
            && p.attr_i64("http.response.status_code") == Some(self.status)
            && p.attr_str("api.category") == Some(self.category)
            && p.attributes.len() == 3 + usize::from(self.route.is_some())
    }
}

#[tokio::test]
async fn each_route_method_and_status_is_its_own_series() {
    // Arrange
    let app = vidscope_testkit::spawn_app().await;
    let get = |path: &'static str| app.client.get(app.url(path)).send();

    // Act: the first requests of a series arrive together, so several bind it at once.
    let healthz = join_all((0..20).map(|_| get("/healthz"))).await;
    for _ in 0..3 {
        assert_eq!(get("/api/test-otel").await.unwrap().status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(get("/no/such/route").await.unwrap().status(), 404);
    }
    let post = app.client.post(app.url("/api/test-otel")).send().await;
    assert_eq!(post.unwrap().status(), 405);
    // One route and method, two statuses.
    let login = |body| {
        app.client
            .post(app.url("/api/auth/login"))
            .json(&body)
            .send()
    };
    for _ in 0..2 {
        let unknown = json!({"email": "nobody@example.com", "password": "whatever123"});
        assert_eq!(login(unknown).await.unwrap().status(), 401);
    }
    let missing = json!({"email": "nobody@example.com"});
    assert_eq!(login(missing).await.unwrap().status(), 400);
    assert!(healthz.into_iter().all(|r| r.unwrap().status() == 200));
    app.flush_telemetry().await;

    // Assert
    let expected = [
        (
            Series {
                route: Some("/healthz"),
                method: "GET",
                status: 200,
                category: "system",
            },
            20,
        ),
        (
            Series {
                route: Some("/api/test-otel"),
                method: "GET",
                status: 200,
                category: "system",
            },
            3,
        ),
        (
            Series {
                route: Some("/api/test-otel"),
                method: "POST",
                status: 405,
                category: "system",
            },
            1,
        ),
        (
            Series {
                route: Some("/api/auth/login"),
                method: "POST",
                status: 401,
                category: "auth",
            },
            2,
        ),
        (
            Series {
                route: Some("/api/auth/login"),
                method: "POST",
                status: 400,
                category: "auth",
            },
            1,
        ),
        (
            Series {
                route: None,
                method: "GET",
                status: 404,
                category: "system",
            },
            2,
        ),
    ];
    for (series, count) in &expected {
        let found = app
            .otlp
            .wait_for_metric_point(
                NAME,
                |p| series.is(p) && p.value.count() == Some(*count),
                WAIT,
            )
            .await;
        if found.is_err() {
            let seen: Vec<_> = app
                .otlp
                .metric_points(NAME)
                .iter()
                .map(|p| format!("{:?} {:?}", p.attributes, p.value.count()))
                .collect();
            panic!("no point with count {count}: {seen:#?}");
        }
    }
    // Each request was recorded once, and in no other series: the newest point of every
    // series (cumulative) adds up to the requests sent.
    let total: u64 = expected.iter().map(|(_, c)| c).sum();
    let newest = app.otlp.metric_points(NAME);
    let mut latest: Vec<&CapturedPoint> = Vec::new();
    for p in newest.iter().rev() {
        if !latest.iter().any(|q| q.attributes == p.attributes) {
            latest.push(p);
        }
    }
    let recorded: u64 = latest.iter().filter_map(|p| p.value.count()).sum();
    assert_eq!(recorded, total, "{latest:#?}");
    app.stop().await;
}

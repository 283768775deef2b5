use vidscope_testkit::{TestApp, expect_error, spawn_app};

#[tokio::test]
async fn healthz_is_always_ok() {
    let app = spawn_app().await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn readyz_checks_every_dependency_and_names_the_one_that_fails() {
    let app = TestApp::builder().with_redis().spawn().await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    for dep in ["database", "store", "redis"] {
        assert_eq!(body["checks"][dep]["status"], "ok", "{dep}: {body}");
    }

    app.state.db.close().await;
    let resp = app.get("/readyz").await;
    assert!(resp.headers().contains_key("retry-after"));
    let body = expect_error(resp, 503, "not_ready", "readyz").await;
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("database"), "{msg}");
    assert!(!msg.contains("store") && !msg.contains("redis"), "{msg}");
    app.stop().await;
}

#[tokio::test]
async fn readyz_names_a_missing_object_store() {
    let app = spawn_app().await;
    if let vidscope_core::storage::StoreKind::Local { root } = &app.settings.store.kind {
        std::fs::remove_dir_all(root).unwrap();
    }
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["store"]["status"], "error", "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    app.stop().await;
}

/// Redis is optional for serving (uploads go through the outbox): while it is down the replica
/// stays ready, and the body shows Redis as degraded.
#[tokio::test]
async fn readyz_stays_ready_with_redis_down_and_shows_it_degraded() {
    // A port nothing listens on: connections are refused, as with a Redis that is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::builder()
        .with_redis()
        .settings(move |mut s| {
            s.redis_url = Some(format!("redis://127.0.0.1:{closed}"));
            s
        })
        .spawn()
        .await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"]["status"], "degraded", "{body}");
    assert!(body["checks"]["redis"]["error"].is_string(), "{body}");
    for dep in ["database", "store"] {
        assert_eq!(body["checks"][dep]["status"], "ok", "{dep}: {body}");
    }

    // What readiness promises: an upload still succeeds, its job waiting in the outbox.
    let admin = app.create_user(vidscope_core::domain::Role::Admin).await;
    let data = crate::videos::mp4_bytes(64 * 1024);
    let body = crate::upload::form(&[crate::upload::file("lesson.mp4", &data)]);
    let resp = crate::upload::upload(&app, Some(&admin.cookie), body).await;
    assert_eq!(resp.status(), 201);
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(pending, 1);
    app.stop().await;
}

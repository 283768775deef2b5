use vidscope_testkit::{TestApp, spawn_app};

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
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready");
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

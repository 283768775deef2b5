//! `GET /api/openapi.json`: the document parses, and it, the router and [`ROUTES`] name the same
//! routes, so a route cannot be added (or removed) without the document following.

use std::collections::BTreeSet;

use serde_json::Value;
use vidscope_testkit::spawn_app;

/// Every route of `router.rs`, as (method, path template). The authorization matrix
/// (`authz.rs`) is checked against this list too.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/test-otel"),
    ("GET", "/api/openapi.json"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/session"),
    ("POST", "/api/auth/register"),
    ("GET", "/api/videos"),
    ("GET", "/api/videos/{id_or_filename}"),
    ("GET", "/api/videos/{id_or_filename}/thumbnail"),
    ("POST", "/api/upload"),
    ("POST", "/api/progress"),
    ("GET", "/api/progress/{video_id}"),
    ("POST", "/api/telemetry/player"),
    ("GET", "/api/ws"),
    ("GET", "/login"),
    ("GET", "/"),
    ("GET", "/videos"),
    ("GET", "/player/{video_id}"),
    ("GET", "/trace-viewer"),
    ("GET", "/api/trace-viewer/traces"),
    ("GET", "/api/trace-viewer/traces/{trace_id}"),
];

const ROUTER_RS: &str = include_str!("../../src/router.rs");

fn set<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeSet<(String, String)> {
    items
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect()
}

/// The (method, path) of every `.route("path", get(..).post(..))` call in `router.rs`, read from
/// the source so a route added there without updating [`ROUTES`] fails this test.
fn routes_in_router_rs() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut rest = ROUTER_RS;
    while let Some(start) = rest.find(".route(") {
        let after = &rest[start + ".route(".len()..];
        let mut depth = 1;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a .route( call closes");
        let args = &after[..end];
        let path = args
            .split('"')
            .nth(1)
            .expect("a route's first argument is a string literal");
        for method in ["get", "post", "put", "patch", "delete"] {
            for (i, _) in args.match_indices(&format!("{method}(")) {
                // A method router, not the tail of `routes::upload::post::post(` or `forget(`.
                let prev = args[..i].chars().next_back();
                if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    found.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
        rest = &after[end..];
    }
    found
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in ["get", "post", "put", "patch", "delete", "head", "options"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A concrete URL path for a template: parameters become a syntactically valid id.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "00000000-0000-4000-8000-000000000000"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn missing(a: &BTreeSet<(String, String)>, b: &BTreeSet<(String, String)>) -> Vec<String> {
    a.difference(b).map(|(m, p)| format!("{m} {p}")).collect()
}

#[test]
fn the_route_list_is_the_router() {
    let listed = set(ROUTES.iter().copied());
    let in_router = routes_in_router_rs();
    assert!(
        in_router.len() >= 10,
        "parsed too few routes: {in_router:?}"
    );
    assert!(
        missing(&in_router, &listed).is_empty(),
        "routes in router.rs but not in ROUTES: {:?}",
        missing(&in_router, &listed)
    );
    assert!(
        missing(&listed, &in_router).is_empty(),
        "routes in ROUTES but not in router.rs: {:?}",
        missing(&listed, &in_router)
    );
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_only_routes() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let r = app.get("/api/openapi.json").await;

    // Assert: it parses as OpenAPI 3.1.
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Value = r.json().await.expect("the document is JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "vidscope API");

    // Every route of the router is documented, and nothing else is.
    let listed = set(ROUTES.iter().copied());
    let docs = documented(&doc);
    assert!(
        missing(&listed, &docs).is_empty(),
        "routes without documentation: {:?}",
        missing(&listed, &docs)
    );
    assert!(
        missing(&docs, &listed).is_empty(),
        "documented but not in ROUTES: {:?}",
        missing(&docs, &listed)
    );

    // Every documented operation reaches a handler (not the 404 fallback).
    for (method, path) in &docs {
        let url = app.url(&concrete(path));
        let resp = app
            .client
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status == 404 || status == 405 {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["error"]["code"], "route_not_found",
                "{method} {path} is documented but not routed"
            );
            assert_ne!(status, 405, "{method} {path}: method not allowed");
        }
    }

    // The shared pieces: the error body, the session cookie, unique operation ids.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert!(detail["properties"]["code"].is_object(), "{detail}");
    assert!(detail["properties"]["message"].is_object(), "{detail}");
    let scheme = &doc["components"]["securitySchemes"]["session"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "cookie");
    assert_eq!(scheme["name"], "vidscope_session");

    let mut ids = BTreeSet::new();
    for (method, path) in &docs {
        let op = &doc["paths"][path][method.to_lowercase()];
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        let responses = op["responses"].as_object().expect("responses");
        // A route behind the session says so, and documents its 401.
        let secured = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("session").is_some()));
        if secured {
            assert!(
                responses.contains_key("401"),
                "{method} {path} needs a session but documents no 401"
            );
        }
        // Every JSON error answer is the error body (readiness adds its checks to it).
        for (status, response) in responses {
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            let schema = response["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} {status}: no JSON error schema"));
            assert!(
                schema.ends_with("/ErrorBody") || schema.ends_with("/NotReady"),
                "{method} {path} {status}: {schema}"
            );
        }
    }
    app.stop().await;
}

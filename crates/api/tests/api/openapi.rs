//! `GET /api/openapi.json`: the document parses, it is the router's route list (utoipa-axum
//! registers each handler with its description), and every route it names reaches a handler.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use vidscope_testkit::spawn_app;

/// Every route the router serves, as (method, path template): the router registers each
/// handler with its OpenAPI description (utoipa-axum), so its document is the route list. The
/// authorization matrix (`authz.rs`) is checked against it.
pub(crate) fn routes() -> BTreeSet<(String, String)> {
    documented(
        &serde_json::to_value(vidscope_api::router::openapi()).expect("the document is JSON"),
    )
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

    // The document served is the route list's, and it is not empty.
    let listed = routes();
    assert!(listed.len() >= 20, "too few routes: {listed:?}");
    let docs = documented(&doc);
    assert!(
        missing(&listed, &docs).is_empty(),
        "routes without documentation: {:?}",
        missing(&listed, &docs)
    );
    assert!(
        missing(&docs, &listed).is_empty(),
        "documented but not routed: {:?}",
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

/// A method a route does not take gets the JSON error body and `Allow`, the upload route (which
/// sits outside the body limit) included.
#[tokio::test]
async fn a_wrong_method_gets_the_error_body_and_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("DELETE", "/api/videos", "GET,HEAD"),
        ("GET", "/api/upload", "POST"),
    ] {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
    app.stop().await;
}

/// A hyphenated UUID in any case: what every video-id parameter of the server accepts.
const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

fn document() -> Value {
    serde_json::from_str(&vidscope_api::router::openapi().to_json().unwrap())
        .expect("the document is JSON")
}

/// Every operation has one tag, from its route's group in `router.rs`, and the document
/// describes that tag (`trace-viewer` was used without a description).
#[test]
fn every_operation_has_one_described_tag() {
    let doc = document();
    let described: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("the document lists its tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no tags"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                matches!(tags.as_slice(), [tag] if described.contains(tag)),
                "{method} {path}: tags {tags:?}, described {described:?}"
            );
            operations += 1;
        }
    }
    assert!(operations >= 36, "only {operations} operations");
}

/// `schema`, or the component it refers to.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

/// The schema of parameter `name` of `method path`.
fn param<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    let p = doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    resolve(doc, &p["schema"])
}

/// The schema of property `name` of the JSON body of `method path`.
fn body_field<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    let body = &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    let field = &resolve(doc, body)["properties"][name];
    assert!(field.is_object(), "{method} {path}: no body field {name}");
    resolve(doc, field)
}

/// The bounds, formats and answers the server enforces, read from the document (issue 24: it
/// declared `limit` from 0 with no maximum, and ids as any string).
#[test]
fn the_document_states_the_bounds_and_formats_the_server_enforces() {
    let doc = document();

    // `limit`: 1 to 1000 traces, 1 to 500 videos.
    for (path, max) in [("/api/trace-viewer/traces", 1000), ("/api/videos", 500)] {
        let limit = param(&doc, "get", path, "limit");
        assert_eq!(
            (&limit["type"], &limit["minimum"], &limit["maximum"]),
            (&json!("integer"), &json!(1), &json!(max)),
            "{path}: {limit}"
        );
    }
    // The lesson list page pages the same way, 1 to 100 lessons; both take a title search.
    assert_eq!(param(&doc, "get", "/videos", "limit")["maximum"], 100);
    for path in ["/api/videos", "/videos"] {
        assert_eq!(param(&doc, "get", path, "q")["maxLength"], 200, "{path}");
        assert_eq!(
            param(&doc, "get", path, "cursor"),
            param(&doc, "get", "/api/videos", "cursor"),
            "{path}"
        );
    }

    // Every video id is a hyphenated UUID, the progress routes' and the player batch's too.
    let ids = [
        ("/api/videos/{id_or_filename}/thumbnail", "id_or_filename"),
        ("/api/videos/{id_or_filename}/{filename}", "id_or_filename"),
        ("/player/{video_id}", "video_id"),
        ("/api/progress/{video_id}", "video_id"),
    ]
    .map(|(path, name)| (path, param(&doc, "get", path, name)));
    let bodies = [
        (
            "/api/progress",
            body_field(&doc, "post", "/api/progress", "videoId"),
        ),
        (
            "/api/telemetry/player",
            body_field(&doc, "post", "/api/telemetry/player", "videoId"),
        ),
    ];
    for (path, id) in ids.into_iter().chain(bodies) {
        assert_eq!(
            (&id["type"], &id["format"], &id["pattern"]),
            (&json!("string"), &json!("uuid"), &json!(UUID_PATTERN)),
            "{path}: {id}"
        );
    }
    let cursor = param(&doc, "get", "/api/videos", "cursor");
    assert_eq!(
        cursor["pattern"],
        format!("^[0-9]{{1,18}}_{}", &UUID_PATTERN[1..])
    );
    let trace = param(
        &doc,
        "get",
        "/api/trace-viewer/traces/{trace_id}",
        "trace_id",
    );
    assert_eq!(trace["pattern"], "^[0-9a-f]{32}$");
    let either = param(
        &doc,
        "get",
        "/api/videos/{id_or_filename}",
        "id_or_filename",
    );
    assert_eq!(either["maxLength"], 200);

    // Bodies: e-mail addresses, password lengths, positions, batch sizes.
    let login_email = body_field(&doc, "post", "/api/auth/login", "email");
    let register_email = body_field(&doc, "post", "/api/auth/register", "email");
    assert_eq!(login_email, register_email);
    assert_eq!(register_email["maxLength"], 254);
    let password = body_field(&doc, "post", "/api/auth/register", "password");
    assert_eq!(
        (&password["minLength"], &password["maxLength"]),
        (&json!(8), &json!(128))
    );
    assert_eq!(
        body_field(&doc, "post", "/api/auth/login", "password")["minLength"],
        1
    );
    for field in ["positionSeconds", "watchTime"] {
        let s = body_field(&doc, "post", "/api/progress", field);
        assert_eq!(
            (&s["minimum"], &s["maximum"]),
            (&json!(0), &json!(604800)),
            "{field}"
        );
    }
    let events = body_field(&doc, "post", "/api/telemetry/player", "events");
    assert_eq!(
        (&events["minItems"], &events["maxItems"]),
        (&json!(1), &json!(100))
    );
    let event = resolve(&doc, &events["items"]);
    assert_eq!(event["discriminator"]["propertyName"], "name", "{event}");
    let kinds = event["oneOf"]
        .as_array()
        .expect("events are one of the known kinds")
        .iter()
        .map(|k| resolve(&doc, k)["properties"]["name"]["enum"][0].clone())
        .collect::<Vec<_>>();
    assert_eq!(
        kinds,
        [
            "video.loaded",
            "video.resume_attempt",
            "video.resume_position_mismatch",
            "video.buffering",
            "video.page_hidden"
        ]
    );

    // Answers the server gives that the document had left out.
    for (method, path, status) in [
        ("post", "/api/auth/login", "413"),
        ("post", "/api/auth/register", "413"),
        ("post", "/api/progress", "413"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"][status].is_object(),
            "{method} {path} does not document {status}"
        );
    }
}

/// Whether `value` conforms to a string `schema` (pattern and lengths, in characters).
fn conforms(schema: &Value, value: &str) -> bool {
    let pattern = schema["pattern"].as_str().expect("a pattern");
    let re = regex_lite::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    let n = value.chars().count() as u64;
    re.is_match(value)
        && schema["maxLength"].as_u64().is_none_or(|max| n <= max)
        && schema["minLength"].as_u64().is_none_or(|min| n >= min)
}

/// Each format's pattern accepts exactly what the parser it describes accepts, on inputs at
/// and around each rule's edge.
#[test]
fn the_documented_formats_are_the_parsers() {
    use vidscope_core::domain::{Email, UserId};
    use vidscope_core::videos::{Filename, VideoId};

    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let uuid = "0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90";
    let long_name = |n: usize| format!("{}.mp4", "x".repeat(n - 4));
    let long_email = |n: usize| format!("{}@example.com", "é".repeat(n - 12));

    let video_ids = [
        uuid.to_owned(),
        uuid.to_uppercase(),
        uuid.replace('-', ""),
        format!("{{{uuid}}}"),
        format!("urn:uuid:{uuid}"),
        format!("{uuid}\n"),
        uuid.replacen('0', "g", 1),
        uuid[1..].to_owned(),
        String::new(),
        "lesson.mp4".to_owned(),
    ];
    let filenames = [
        "a.mp4",
        "A.MKV",
        "lesson-01.webm",
        "-_.m4v",
        "a.tar.mov",
        ".mp4",
        "a..mp4",
        "a.mp3",
        "mp4",
        "a.mp4.",
        "a/b.mp4",
        "../x.mp4",
        "a b.mp4",
        "é.mp4",
        "a.mp4\n",
        &long_name(200),
        &long_name(201),
    ];
    let emails = [
        "a@b.co",
        " A@Example.COM ",
        "\u{3000}a@b.co\t",
        "a@b..c",
        "é@b.co",
        "",
        " ",
        "a",
        "a@b",
        "@b.c",
        "a@.c",
        "a@b.",
        "a b@c.d",
        "a@b@c.d",
        "a\u{0}@b.co",
        "a\u{a0}b@c.co",
        "a\u{85}b@c.co",
        "a@b.co\n",
        &long_email(254),
        &long_email(255),
    ];

    let mut checked = 0;
    let mut check = |schema: &str, value: &str, parses: bool| {
        let documented = conforms(&schemas[schema], value);
        assert_eq!(
            documented, parses,
            "{schema} {value:?}: the document says {documented}, the parser {parses}"
        );
        checked += 1;
    };
    let either = |v: &str| VideoId::parse(v).is_some() || Filename::parse(v).is_ok();
    for v in &video_ids {
        check("VideoId", v, VideoId::parse(v).is_some());
        check("UserId", v, UserId::parse(v).is_some());
        check("VideoIdOrFilename", v, either(v));
    }
    for v in filenames {
        check("Filename", v, Filename::parse(v).is_ok());
        check("VideoIdOrFilename", v, either(v));
    }
    for v in emails {
        check("Email", v, Email::parse(v).is_ok());
    }
    assert_eq!(
        checked,
        3 * video_ids.len() + 2 * filenames.len() + emails.len()
    );
}

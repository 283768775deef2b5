//! The global request-body limit answers with the API's JSON error body, whether the client
//! declared the length up front or streamed the body in chunks.

use vidscope_core::domain::Role;

use crate::helpers::app_with_user;
use crate::progress::V1;
use crate::videos::error_code;

/// A JSON body a bit over the 1 MiB limit: a long but otherwise valid progress save.
fn big_json() -> String {
    let padding = "x".repeat(1024 * 1024 + 10);
    format!(r#"{{"videoId":"{V1}","positionSeconds":1,"watchTime":1,"pad":"{padding}"}}"#)
}

#[tokio::test]
async fn an_oversized_json_body_with_a_length_is_413_json() {
    let (app, viewer) = app_with_user(Role::Viewer).await;

    let resp = app
        .client
        .post(app.url("/api/progress"))
        .header("cookie", &viewer.cookie)
        .header("content-type", "application/json")
        .body(big_json())
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(error_code(resp).await, "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_chunked_json_body_is_413_json() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, viewer) = app_with_user(Role::Viewer).await;
    let addr = app.address.trim_start_matches("http://").to_owned();

    // No Content-Length: the limit can only be found while reading, after the handler's
    // extractor started buffering.
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/progress HTTP/1.1\r\nHost: {addr}\r\nCookie: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        viewer.cookie
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let body = big_json();
    for chunk in body.as_bytes().chunks(64 * 1024) {
        let framed = [
            format!("{:x}\r\n", chunk.len()).as_bytes(),
            chunk,
            b"\r\n".as_slice(),
        ]
        .concat();
        // The server may answer and stop reading before the end: a failed write is fine.
        if conn.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);

    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let json = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(json["error"]["code"], "payload_too_large", "{json}");
    app.stop().await;
}

//! `vidscope-api` on SIGTERM, as a process: it stops accepting, lets a request that can finish
//! finish, aborts an upload that would outlast `VIDSCOPE_API_SHUTDOWN_SECS` without leaving a
//! temp file or a row behind, flushes its telemetry and exits within the deadline.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Process;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vidscope_testkit::otlp::CaptureReceiver;

const ADMIN: (&str, &str) = ("shutdown@example.com", "shutdown admin password");
const DEADLINE_SECS: u64 = 4;
const BOUNDARY: &str = "vidscope-shutdown-boundary";

/// A multipart form whose `file` part is an MP4 header then `len` bytes in all.
fn form(filename: &str, len: usize) -> Vec<u8> {
    let mut data = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    data.resize(len, 7);
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Sends an upload at `bytes_per_tick` every 100 ms on a raw connection (reqwest cannot pace a
/// body), reading the answer as it comes; resolves to the answer's status and body, or `None`
/// if the connection closed without one.
fn paced_upload(
    port: u16,
    cookie: &str,
    body: Vec<u8>,
    bytes_per_tick: usize,
) -> tokio::task::JoinHandle<Option<(u16, String)>> {
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tokio::spawn(async move {
        let conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut read, mut write) = conn.into_split();
        let writer = tokio::spawn(async move {
            write.write_all(head.as_bytes()).await?;
            for chunk in body.chunks(bytes_per_tick) {
                write.write_all(chunk).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            std::io::Result::Ok(())
        });
        let mut answer = Vec::new();
        let _ = read.read_to_end(&mut answer).await;
        writer.abort();
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        Some((status, text.split("\r\n\r\n").nth(1)?.to_owned()))
    })
}

/// Every file under `dir`, as text.
fn files_under(dir: &Path) -> Vec<String> {
    vidscope_testkit::files::files_under(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// `vidscope-api` over `db_url` with its objects in `data_dir` and the shutdown deadline under
/// test, exporting to `receiver`; the process and its port.
async fn start_api(db_url: &str, data_dir: &Path, receiver: &CaptureReceiver) -> (Process, u16) {
    let mut api = common::api_command(db_url, data_dir, ADMIN);
    api.env("VIDSCOPE_API_SHUTDOWN_SECS", DEADLINE_SECS.to_string())
        .env("OTEL_SERVICE_NAME", "vidscope-api")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        // Nothing is exported on schedule: what arrives was flushed on the way out.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("RUST_LOG", "info");
    common::spawn_api(api).await
}

/// The exit status of `api`, which must exit within the deadline and a margin of `since`.
async fn exited(api: &mut Process, since: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(exit) = api.0.try_wait().unwrap() {
            return exit;
        }
        assert!(
            since.elapsed() < Duration::from_secs(DEADLINE_SECS + 6),
            "still running {:?} after SIGTERM",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_can_finish_aborts_the_rest_and_exits_within_the_deadline() {
    let db = vidscope_testkit::db::fresh_db().await;
    let receiver = CaptureReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut api, port) = start_api(&db.url, dir.path(), &receiver).await;
    let cookie = common::session_cookie(port, ADMIN).await;

    // One upload that ends a second after SIGTERM, one that would take a minute.
    let quick = paced_upload(port, &cookie, form("quick.mp4", 1024 * 1024), 64 * 1024);
    let slow = paced_upload(port, &cookie, form("slow.mp4", 64 * 1024 * 1024), 64 * 1024);
    let objects = dir.path().join("objects");
    let started = Instant::now();
    while files_under(&objects)
        .iter()
        .filter(|f| f.contains("~tmp-"))
        .count()
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "both uploads should be writing: {:?}",
            files_under(&objects)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let signalled = Instant::now();
    let pid = api.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // No new connection is accepted while the drain runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "a connection was accepted after SIGTERM"
    );

    let (status, body) = quick.await.unwrap().expect("an answer to the quick upload");
    assert_eq!(status, 201, "{body}");
    let (status, body) = slow.await.unwrap().expect("an answer to the slow upload");
    let aborted_after = signalled.elapsed();
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");

    let exit = exited(&mut api, signalled).await;
    let exited_after = signalled.elapsed();
    eprintln!(
        "SIGTERM with a {DEADLINE_SECS} s deadline: slow upload aborted after {aborted_after:?}, \
         process exited after {exited_after:?}"
    );
    assert!(exit.success(), "{exit:?}");
    assert!(aborted_after >= Duration::from_secs(DEADLINE_SECS));

    // Only the finished upload is kept: its object and its row, nothing half-written.
    let mut left = files_under(&objects);
    left.sort();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left[0].ends_with("/quick.mp4") && left[1].ends_with("/quick.mp4~meta"),
        "{left:?}"
    );
    let filenames: Vec<String> = sqlx::query_scalar("SELECT filename FROM videos")
        .fetch_all(db.db.pool())
        .await
        .unwrap();
    assert_eq!(filenames, ["quick.mp4"]);

    // The telemetry of the last seconds was flushed on the way out.
    let rejected = receiver.spans_where(|s| {
        s.name == "api.upload" && s.attr_str("upload.rejected") == Some("shutdown")
    });
    assert_eq!(rejected.len(), 1, "the aborted upload's span");
    assert_eq!(rejected[0].attr_str("upload.filename"), Some("slow.mp4"));
}

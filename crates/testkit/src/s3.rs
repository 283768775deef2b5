//! An S3-compatible server for tests, so the S3 adapter is tested against a real wire protocol
//! (SigV4, path-style URLs, multipart, presigned URLs) rather than a mock.
//!
//! `scripts/test.sh` starts one s3s-fs for the whole run and exports `S3_ENDPOINT` and friends;
//! every test process then shares it (one bucket per test keeps them apart). Run outside that
//! script (`cargo test` in an editor), the first test to ask spawns a private s3s-fs instead,
//! so the same tests run everywhere and never skip.
//!
//! This file only uses `std`, `uuid`, `tempfile` and `vidscope_core`, so `vidscope-core`'s own
//! integration tests include it with `#[path]` instead of depending on this crate (which
//! depends on `vidscope-core`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use vidscope_core::storage::{ObjectStore, StoreKind, StoreSettings};

/// The s3s-fs release the tests are known to work with (also pinned in scripts/lib/services.sh).
pub const S3S_FS_VERSION: &str = "0.14.1";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs s3s-fs and ties its lifetime to the test process: statics are never dropped in Rust, so
/// "kill on drop" would never fire. Instead the shell holds the read end of a pipe whose write
/// end only the test process has; when the test process exits, however it exits (even
/// SIGKILL), the read returns EOF, the server is stopped and its data directory removed. If the
/// server dies on its own instead, the directory stays so the test can show the server's log.
/// `$1` is the scratch directory, the rest is the server's command line.
const WATCHDOG: &str = r#"
exec 3<&0 </dev/null
tmp=$1
shift
"$@" >"$tmp/s3s-fs.log" 2>&1 &
srv=$!
{ read -r _ <&3; : >"$tmp/parent-gone"; kill "$srv" 2>/dev/null; } &
exec 3<&-
wait "$srv"
status=$?
if [ -e "$tmp/parent-gone" ]; then
    rm -rf -- "$tmp"
fi
exit "$status"
"#;

pub struct S3TestServer {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// The watchdog shell when we spawned the server ourselves; holding it keeps the pipe open.
    process: Option<Mutex<Child>>,
}

impl std::fmt::Debug for S3TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3TestServer")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("spawned", &self.process.is_some())
            .finish_non_exhaustive()
    }
}

impl S3TestServer {
    /// The server shared by every test in this process: the one `scripts/test.sh` exported
    /// in `S3_ENDPOINT`, or else one spawned on first use.
    pub fn get() -> &'static S3TestServer {
        static SERVER: OnceLock<S3TestServer> = OnceLock::new();
        SERVER.get_or_init(|| match env("S3_ENDPOINT") {
            Some(endpoint) => S3TestServer {
                endpoint,
                access_key_id: env("S3_ACCESS_KEY_ID")
                    .unwrap_or_else(|| panic!("S3_ENDPOINT is set but S3_ACCESS_KEY_ID is not")),
                secret_access_key: env("S3_SECRET_ACCESS_KEY").unwrap_or_else(|| {
                    panic!("S3_ENDPOINT is set but S3_SECRET_ACCESS_KEY is not")
                }),
                region: env("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                process: None,
            },
            None => spawn(),
        })
    }

    /// Settings for `bucket` on this server (the bucket need not exist).
    pub fn settings(&self, bucket: &str) -> StoreSettings {
        StoreSettings {
            kind: StoreKind::S3 {
                endpoint: Some(self.endpoint.clone()),
                region: self.region.clone(),
                bucket: bucket.to_owned(),
                access_key_id: self.access_key_id.clone(),
                secret_access_key: self.secret_access_key.clone(),
                // s3s-fs only understands path-style URLs.
                force_path_style: true,
                presign_ttl: Duration::from_secs(300),
            },
        }
    }

    /// A new, empty bucket created through the real S3 API, so tests never see each other's
    /// objects, even when they share one server across processes.
    pub async fn fresh_bucket(&self) -> StoreSettings {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let bucket = format!("test-{}", &id[..20]);
        let settings = self.settings(&bucket);
        let store = ObjectStore::new(&settings)
            .unwrap_or_else(|e| panic!("S3 settings for the test server are invalid: {e}"));
        if let Err(e) = store.ensure_bucket().await {
            panic!(
                "could not create bucket {bucket} on the S3 test server {}: {e}",
                self.endpoint
            );
        }
        settings
    }

    /// Whether this process started the server (and will stop it on exit).
    pub fn is_spawned(&self) -> bool {
        self.process.is_some()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn spawn() -> S3TestServer {
    let bin = find_s3s_fs();
    let access_key_id = "vidscope-test".to_owned();
    let secret_access_key = format!("vidscope-test-{}", uuid::Uuid::new_v4().simple());
    // The port is picked by binding and releasing it, so another process may take it first;
    // the server then exits at once and we try another.
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        match start(&bin, port, &access_key_id, &secret_access_key) {
            Ok(child) => {
                return S3TestServer {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    access_key_id,
                    secret_access_key,
                    region: "us-east-1".into(),
                    process: Some(Mutex::new(child)),
                };
            }
            Err(e) => failures.push(e),
        }
    }
    panic!(
        "could not start s3s-fs ({}) for the tests:\n{}",
        bin.display(),
        failures.join("\n---\n")
    );
}

fn start(bin: &Path, port: u16, access_key: &str, secret_key: &str) -> Result<Child, String> {
    let scratch = tempfile::Builder::new()
        .prefix("vidscope-s3s-fs-")
        .tempdir()
        .map_err(|e| format!("creating a temp dir: {e}"))?
        .keep();
    let data = scratch.join("data");
    std::fs::create_dir(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("vidscope-s3s-fs-watchdog")
        .arg(&scratch)
        .arg(bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", access_key, "--secret-key", secret_key])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("running sh to start s3s-fs: {e}"))?;

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(scratch.join("s3s-fs.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(format!(
                "s3s-fs on port {port} exited with {status}:\n{log}"
            ));
        }
        if answers_http(addr) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(scratch.join("s3s-fs.log")).unwrap_or_default();
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(format!(
                "s3s-fs on port {port} did not answer within {STARTUP_TIMEOUT:?}:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Any HTTP response means the server is serving (anonymous requests get 403).
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// `s3s-fs` from `PATH`, else from cargo's bin directory (where `cargo install` puts it).
fn find_s3s_fs() -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("s3s-fs"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let from_cargo = cargo_home.map(|c| c.join("bin").join("s3s-fs"));
    from_path
        .chain(from_cargo)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs is needed for the S3 tests but was not found on PATH or in ~/.cargo/bin.\n\
                 Install it with:\n    cargo install s3s-fs@{S3S_FS_VERSION} --features binary --locked\n\
                 or run the suite with scripts/test.sh, which installs and starts it."
            )
        })
}

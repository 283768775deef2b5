//! Application settings (`VIDSCOPE_*`, `DATABASE_URL`, `REDIS_URL`, `S3_*`). Every adapter is
//! chosen here, by configuration alone; defaults are the embedded mode under the data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::domain::{Email, Password};
use crate::storage::{StoreKind, StoreSettings};

/// Reads a table of variables, one a line: `field => "VAR" with parse`. When `VAR` is set,
/// `field = parse("VAR", &value)?` (every parser names the variable on failure); otherwise the
/// field keeps its default. A macro so that each variable's name is written once and the table
/// stays one line a variable.
macro_rules! read_vars {
    ($get:expr, { $($field:expr => $var:literal with $parse:expr),* $(,)? }) => {
        $(if let Some(v) = $get($var) {
            $field = $parse($var, &v)?;
        })*
    };
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid {var}: {reason}")]
pub struct SettingsError {
    pub var: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub store: StoreSettings,
    pub api: ApiSettings,
    pub trace_viewer: TraceViewerSettings,
}

/// Where the built-in trace viewer (`/trace-viewer`) reads traces from, and where it links.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceViewerSettings {
    /// OTLP-JSON trace files (Collector file-exporter format), each read with its rotated
    /// backups (`<file>.1`, `<file>.2`, ...): the app's own `traces.json` in
    /// `VIDSCOPE_TELEMETRY_DIR` (default `<data dir>/telemetry`), then the comma-separated
    /// `VIDSCOPE_TRACE_VIEWER_FILES` (e.g. the Collector's `/var/log/otel-collector/traces.json`).
    pub files: Vec<PathBuf>,
    /// At most this many bytes are read from the end of each file (`VIDSCOPE_TRACE_VIEWER_MAX_MB`,
    /// default 16): the viewer is for recent traces, and its memory stays bounded.
    pub max_bytes_per_file: u64,
    /// `VIDSCOPE_GRAFANA_URL`: each trace gets an "Open in Grafana" link (Explore, Tempo).
    pub grafana_url: Option<String>,
}

impl TraceViewerSettings {
    fn new(data_dir: &Path) -> Self {
        Self {
            files: vec![telemetry_dir(data_dir).join("traces.json")],
            max_bytes_per_file: 16 * 1024 * 1024,
            grafana_url: None,
        }
    }

    fn from_lookup(
        data_dir: &Path,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let mut t = Self::new(data_dir);
        if let Some(dir) = get("VIDSCOPE_TELEMETRY_DIR") {
            t.files = vec![PathBuf::from(dir).join("traces.json")];
        }
        if let Some(v) = get("VIDSCOPE_TRACE_VIEWER_FILES") {
            for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                t.files.push(PathBuf::from(f));
            }
        }
        read_vars!(get, {
            t.max_bytes_per_file => "VIDSCOPE_TRACE_VIEWER_MAX_MB" with parse_mib,
            t.grafana_url => "VIDSCOPE_GRAFANA_URL" with parse_http_url,
        });
        Ok(t)
    }
}

/// How `GET /api/videos/{filename}` serves objects from S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3StreamMode {
    /// 302 to a presigned GET URL: the bytes never pass through the API.
    Redirect,
    /// The API fetches the requested range and streams it (for clients that cannot follow a
    /// redirect to another origin).
    Proxy,
}

/// Knobs of the HTTP API, all with defaults a single-user laptop install wants.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `Secure` on the session cookie (`VIDSCOPE_COOKIE_SECURE`, default false so plain
    /// `http://127.0.0.1` works; set true behind TLS).
    pub cookie_secure: bool,
    /// `POST /api/auth/register` and the `/signup` page create viewer accounts (`VIDSCOPE_REGISTRATION`, default false: a lesson platform usually decides who gets an
    /// account; admins create them with `vidscope user add`).
    pub registration_enabled: bool,
    /// Session lifetime (`VIDSCOPE_SESSION_TTL_SECS`, default 7 days).
    pub session_ttl: Duration,
    /// Largest accepted upload (`VIDSCOPE_UPLOAD_MAX_MB`, default 2048).
    pub upload_max_bytes: u64,
    /// An `upload.progress` event every this many bytes (`VIDSCOPE_UPLOAD_PROGRESS_MB`, default 8).
    pub upload_progress_every: u64,
    /// An upload whose client sends nothing for this long is abandoned with 408 and nothing is
    /// kept (`VIDSCOPE_UPLOAD_IDLE_SECS`, default 30). Uploads are exempt from the 30 s request
    /// timeout, so without it a stalled client would hold a connection and a multipart upload
    /// open for ever.
    pub upload_idle_timeout: Duration,
    /// After SIGTERM, how long requests in flight may take to finish
    /// (`VIDSCOPE_API_SHUTDOWN_SECS`, default 20: below Kubernetes' default 30 s grace period,
    /// leaving time to flush telemetry). Uploads still running then are aborted (503, nothing
    /// kept); the rest are cut when the process exits.
    pub shutdown_timeout: Duration,
    /// Failed logins allowed per account within the window (`VIDSCOPE_LOGIN_MAX_FAILURES`,
    /// default 5); a client address gets four times as many.
    pub login_max_failures: u32,
    /// The rate-limit window (`VIDSCOPE_LOGIN_WINDOW_SECS`, default 300).
    pub login_window: Duration,
    /// Prefix of the API's Redis keys: the login throttle (`{prefix}:login:`) and the cache
    /// (`{prefix}:cache:`) (`VIDSCOPE_REDIS_PREFIX`, default `vidscope`). Every replica of one
    /// deployment must use the same; two deployments on one Redis use two.
    pub redis_prefix: String,
    /// Balancers and proxies whose `X-Forwarded-For` is believed (`VIDSCOPE_TRUSTED_PROXIES`,
    /// comma-separated addresses or CIDR ranges, default none). Behind a balancer every TCP
    /// peer is the balancer: without this the login throttle would count all clients as one
    /// address, and spans would name the balancer as the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `VIDSCOPE_S3_STREAM=redirect|proxy` (default redirect).
    pub s3_stream: S3StreamMode,
    /// An admin account created at start-up when missing (`VIDSCOPE_ADMIN_EMAIL` with
    /// `VIDSCOPE_ADMIN_PASSWORD`): containers have no shell for `vidscope user add`, and the
    /// compose stack's load generator uploads as this user.
    pub bootstrap_admin: Option<(Email, Password)>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            cookie_secure: false,
            registration_enabled: false,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            upload_max_bytes: 2048 * 1024 * 1024,
            upload_progress_every: 8 * 1024 * 1024,
            upload_idle_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(20),
            login_max_failures: 5,
            login_window: Duration::from_secs(300),
            redis_prefix: "vidscope".into(),
            trusted_proxies: Vec::new(),
            s3_stream: S3StreamMode::Redirect,
            bootstrap_admin: None,
        }
    }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(SettingsError {
            var,
            reason: format!("{v:?} is not true or false"),
        }),
    }
}

/// A positive whole number from `var`, naming the variable and the unit on failure. Shared
/// by every crate's settings so the messages read the same.
pub fn parse_u64(var: &'static str, v: &str, what: &str) -> Result<u64, SettingsError> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(SettingsError {
            var,
            reason: format!("{v:?} is not a positive number of {what}"),
        })
}

impl ApiSettings {
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut a = Self::default();
        read_vars!(get, {
            a.cookie_secure => "VIDSCOPE_COOKIE_SECURE" with parse_bool,
            a.registration_enabled => "VIDSCOPE_REGISTRATION" with parse_bool,
            a.session_ttl => "VIDSCOPE_SESSION_TTL_SECS" with parse_secs,
            a.upload_max_bytes => "VIDSCOPE_UPLOAD_MAX_MB" with parse_mib,
            a.upload_progress_every => "VIDSCOPE_UPLOAD_PROGRESS_MB" with parse_mib,
            a.upload_idle_timeout => "VIDSCOPE_UPLOAD_IDLE_SECS" with parse_secs,
            a.shutdown_timeout => "VIDSCOPE_API_SHUTDOWN_SECS" with parse_secs,
            a.login_max_failures => "VIDSCOPE_LOGIN_MAX_FAILURES" with parse_attempts,
            a.login_window => "VIDSCOPE_LOGIN_WINDOW_SECS" with parse_secs,
            a.redis_prefix => "VIDSCOPE_REDIS_PREFIX" with parse_redis_prefix,
            a.trusted_proxies => "VIDSCOPE_TRUSTED_PROXIES" with parse_proxies,
            a.s3_stream => "VIDSCOPE_S3_STREAM" with parse_s3_stream,
        });
        a.bootstrap_admin = bootstrap_admin(&get)?;
        Ok(a)
    }
}

/// An `http://` or `https://` URL, without its trailing `/`.
fn parse_http_url(var: &'static str, v: &str) -> Result<Option<String>, SettingsError> {
    let v = v.trim().trim_end_matches('/');
    if !(v.starts_with("http://") || v.starts_with("https://")) || v.contains(char::is_whitespace) {
        return Err(SettingsError {
            var,
            reason: format!("{v:?} is not an http:// or https:// URL"),
        });
    }
    Ok(Some(v.to_owned()))
}

/// A positive number of seconds.
fn parse_secs(var: &'static str, v: &str) -> Result<Duration, SettingsError> {
    parse_u64(var, v, "seconds").map(Duration::from_secs)
}

/// A positive number of MiB, in bytes.
fn parse_mib(var: &'static str, v: &str) -> Result<u64, SettingsError> {
    Ok(parse_u64(var, v, "MiB")? * 1024 * 1024)
}

fn parse_attempts(var: &'static str, v: &str) -> Result<u32, SettingsError> {
    parse_u64(var, v, "attempts")?
        .try_into()
        .map_err(|_| SettingsError {
            var,
            reason: "too large".into(),
        })
}

/// A key prefix: no whitespace, no trailing `:` (the keys add their own).
fn parse_redis_prefix(var: &'static str, v: &str) -> Result<String, SettingsError> {
    let v = v.trim();
    if v.contains(char::is_whitespace) {
        return Err(SettingsError {
            var,
            reason: format!("{v:?} contains whitespace"),
        });
    }
    Ok(v.trim_end_matches(':').to_owned())
}

/// Comma-separated addresses (each a one-address range) or CIDR ranges.
fn parse_proxies(var: &'static str, v: &str) -> Result<Vec<ipnet::IpNet>, SettingsError> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| SettingsError {
                    var,
                    reason: format!("{p:?} is not an IP address or CIDR range"),
                })
        })
        .collect()
}

fn parse_s3_stream(var: &'static str, v: &str) -> Result<S3StreamMode, SettingsError> {
    match v.trim() {
        "redirect" => Ok(S3StreamMode::Redirect),
        "proxy" => Ok(S3StreamMode::Proxy),
        _ => Err(SettingsError {
            var,
            reason: format!("{v:?} is not redirect or proxy"),
        }),
    }
}

/// `VIDSCOPE_ADMIN_EMAIL` with `VIDSCOPE_ADMIN_PASSWORD`: both or neither.
fn bootstrap_admin(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(Email, Password)>, SettingsError> {
    const EMAIL: &str = "VIDSCOPE_ADMIN_EMAIL";
    const PASSWORD: &str = "VIDSCOPE_ADMIN_PASSWORD";
    let invalid = |var, e: crate::CoreError| SettingsError {
        var,
        reason: e.to_string(),
    };
    let required = |var, other| SettingsError {
        var,
        reason: format!("required when {other} is set"),
    };
    match (get(EMAIL), get(PASSWORD)) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => Ok(Some((
            Email::parse(&email).map_err(|e| invalid(EMAIL, e))?,
            Password::parse(&password).map_err(|e| invalid(PASSWORD, e))?,
        ))),
        (Some(_), None) => Err(required(PASSWORD, EMAIL)),
        (None, Some(_)) => Err(required(EMAIL, PASSWORD)),
    }
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = ".vidscope";

/// `VIDSCOPE_TELEMETRY_DIR`'s default: the telemetry files of a process whose data lives in
/// `data_dir`. Every binary's file exporter writes there and the trace viewer reads there, so
/// they cannot disagree.
pub fn telemetry_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("telemetry")
}

impl Settings {
    /// Embedded defaults under `data_dir`: SQLite, local object store.
    pub fn embedded(data_dir: &Path, addr: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            addr,
            database_url: format!("sqlite://{}", data_dir.join("vidscope.db").display()),
            redis_url: None,
            store: StoreSettings {
                kind: StoreKind::Local {
                    root: data_dir.join("objects"),
                },
            },
            api: ApiSettings::default(),
            trace_viewer: TraceViewerSettings::new(data_dir),
        }
    }

    /// What the container binaries use: `VIDSCOPE_DATA_DIR` and `VIDSCOPE_ADDR` (with their
    /// defaults) plus everything [`Settings::from_env`] reads.
    pub fn from_process_env() -> Result<Self, SettingsError> {
        let data_dir = PathBuf::from(
            std::env::var("VIDSCOPE_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.into()),
        );
        let addr = parse_addr(
            "VIDSCOPE_ADDR",
            &std::env::var("VIDSCOPE_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.into()),
        )?;
        Self::from_env(&data_dir, addr)
    }

    /// Reads the environment on top of the embedded defaults.
    pub fn from_env(data_dir: &Path, addr: SocketAddr) -> Result<Self, SettingsError> {
        Self::from_lookup(data_dir, addr, |k| std::env::var(k).ok())
    }

    pub fn from_lookup(
        data_dir: &Path,
        addr: SocketAddr,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut s = Self::embedded(data_dir, addr);
        s.api = ApiSettings::from_lookup(get)?;
        s.trace_viewer = TraceViewerSettings::from_lookup(data_dir, get)?;
        if let Some(url) = get("DATABASE_URL") {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(SettingsError {
                    var: "DATABASE_URL",
                    reason: "must start with sqlite: or postgres://".into(),
                });
            }
            s.database_url = url;
        }
        if let Some(url) = get("REDIS_URL") {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(SettingsError {
                    var: "REDIS_URL",
                    reason: "must start with redis:// or rediss://".into(),
                });
            }
            s.redis_url = Some(url);
        }
        if let Some(bucket) = get("S3_BUCKET_NAME") {
            let need = |var: &'static str, alt: &str| {
                get(var).or_else(|| get(alt)).ok_or(SettingsError {
                    var,
                    reason: format!("required when S3_BUCKET_NAME is set (or {alt})"),
                })
            };
            let ttl = match get("S3_PRESIGN_TTL_SECS") {
                Some(v) => v.parse::<u64>().map_err(|_| SettingsError {
                    var: "S3_PRESIGN_TTL_SECS",
                    reason: "expected a number of seconds".into(),
                })?,
                None => 900,
            };
            s.store = StoreSettings {
                kind: StoreKind::S3 {
                    endpoint: get("S3_ENDPOINT"),
                    region: get("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                    bucket,
                    access_key_id: need("S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")?,
                    secret_access_key: need("S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")?,
                    force_path_style: get("S3_FORCE_PATH_STYLE").is_none_or(|v| v != "false"),
                    presign_ttl: Duration::from_secs(ttl),
                },
            };
        }
        Ok(s)
    }
}

/// Parses `VIDSCOPE_ADDR`-style values with the variable named on failure.
pub fn parse_addr(var: &'static str, v: &str) -> Result<SocketAddr, SettingsError> {
    v.parse().map_err(|_| SettingsError {
        var,
        reason: format!("{v:?} is not host:port (e.g. 127.0.0.1:8080)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        let get = |k: &str| vars.get(k).map(|v| (*v).to_owned());
        Settings::from_lookup(Path::new("/d"), DEFAULT_ADDR.parse().unwrap(), get)
    }

    #[test]
    fn embedded_defaults_live_in_the_data_dir() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url, "sqlite:///d/vidscope.db");
        assert!(
            matches!(s.store.kind, StoreKind::Local { ref root } if root == Path::new("/d/objects"))
        );
        assert!(s.redis_url.is_none());
    }

    #[test]
    fn self_registration_is_off_unless_turned_on() {
        assert!(!settings(&[]).unwrap().api.registration_enabled);
        let on = settings(&[("VIDSCOPE_REGISTRATION", "true")]).unwrap();
        assert!(on.api.registration_enabled);
        let bad = settings(&[("VIDSCOPE_REGISTRATION", "maybe")]).unwrap_err();
        assert_eq!(bad.var, "VIDSCOPE_REGISTRATION");
    }

    #[test]
    fn bootstrap_admin_needs_both_variables_and_valid_values() {
        assert!(settings(&[]).unwrap().api.bootstrap_admin.is_none());
        let s = settings(&[
            ("VIDSCOPE_ADMIN_EMAIL", " Admin@Example.COM "),
            ("VIDSCOPE_ADMIN_PASSWORD", "correct horse"),
        ])
        .unwrap();
        let (email, password) = s.api.bootstrap_admin.expect("admin");
        assert_eq!(email.as_str(), "admin@example.com");
        assert_eq!(password.expose(), "correct horse");
        let only_email = settings(&[("VIDSCOPE_ADMIN_EMAIL", "a@b.io")]).unwrap_err();
        assert_eq!(only_email.var, "VIDSCOPE_ADMIN_PASSWORD");
        let only_password = settings(&[("VIDSCOPE_ADMIN_PASSWORD", "long enough")]).unwrap_err();
        assert_eq!(only_password.var, "VIDSCOPE_ADMIN_EMAIL");
        let short = settings(&[
            ("VIDSCOPE_ADMIN_EMAIL", "a@b.io"),
            ("VIDSCOPE_ADMIN_PASSWORD", "short"),
        ])
        .unwrap_err();
        assert_eq!(short.var, "VIDSCOPE_ADMIN_PASSWORD");
        assert!(!short.reason.contains("short"), "{}", short.reason);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges_and_the_redis_prefix_has_no_trailing_colon() {
        let s = settings(&[
            ("VIDSCOPE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,::1"),
            ("VIDSCOPE_REDIS_PREFIX", "tenant-a:"),
        ])
        .unwrap();
        let proxies: Vec<String> = s
            .api
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
        assert_eq!(s.api.redis_prefix, "tenant-a");
        let bad = settings(&[("VIDSCOPE_TRUSTED_PROXIES", "10.0.0.0/8,balancer")]).unwrap_err();
        assert_eq!(bad.var, "VIDSCOPE_TRUSTED_PROXIES");
        assert!(bad.reason.contains("balancer"), "{}", bad.reason);
        assert_eq!(
            settings(&[("VIDSCOPE_REDIS_PREFIX", "a b")])
                .unwrap_err()
                .var,
            "VIDSCOPE_REDIS_PREFIX"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(
            settings(&[("DATABASE_URL", "mysql://x")]).unwrap_err().var,
            "DATABASE_URL"
        );
        assert_eq!(
            settings(&[("REDIS_URL", "localhost")]).unwrap_err().var,
            "REDIS_URL"
        );
        assert_eq!(
            settings(&[("S3_BUCKET_NAME", "b")]).unwrap_err().var,
            "S3_ACCESS_KEY_ID"
        );
        assert_eq!(
            parse_addr("VIDSCOPE_ADDR", "8080").unwrap_err().var,
            "VIDSCOPE_ADDR"
        );
    }

    #[test]
    fn s3_is_chosen_by_configuration() {
        let s = settings(&[
            ("S3_BUCKET_NAME", "videos"),
            ("S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("S3_SECRET_ACCESS_KEY", "s"),
        ])
        .unwrap();
        assert!(matches!(s.store.kind, StoreKind::S3 { ref bucket, .. } if bucket == "videos"));
    }

    #[test]
    fn trace_viewer_sources_and_grafana_link() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.trace_viewer.files,
            [PathBuf::from("/d/telemetry/traces.json")]
        );
        assert_eq!(s.trace_viewer.grafana_url, None);
        let s = settings(&[
            ("VIDSCOPE_TELEMETRY_DIR", "/t"),
            (
                "VIDSCOPE_TRACE_VIEWER_FILES",
                "/var/log/otel-collector/traces.json, /x.json",
            ),
            ("VIDSCOPE_GRAFANA_URL", "http://localhost:3000/"),
            ("VIDSCOPE_TRACE_VIEWER_MAX_MB", "2"),
        ])
        .unwrap();
        assert_eq!(
            s.trace_viewer.files,
            [
                PathBuf::from("/t/traces.json"),
                PathBuf::from("/var/log/otel-collector/traces.json"),
                PathBuf::from("/x.json")
            ]
        );
        assert_eq!(
            s.trace_viewer.grafana_url.as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(s.trace_viewer.max_bytes_per_file, 2 * 1024 * 1024);
        for (var, value) in [
            ("VIDSCOPE_GRAFANA_URL", "localhost:3000"),
            ("VIDSCOPE_TRACE_VIEWER_MAX_MB", "0"),
        ] {
            assert_eq!(settings(&[(var, value)]).unwrap_err().var, var);
        }
    }
}

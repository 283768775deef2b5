//! Application settings (`VIDSCOPE_*`, `DATABASE_URL`, `REDIS_URL`, `S3_*`). Every adapter is
//! chosen here, by configuration alone; defaults are the embedded mode under the data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::storage::{StoreKind, StoreSettings};

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
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = ".vidscope";

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
        let m: HashMap<_, _> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(Path::new("/d"), DEFAULT_ADDR.parse().unwrap(), |k| {
            m.get(k).cloned()
        })
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
}

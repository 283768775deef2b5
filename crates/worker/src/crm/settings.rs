//! The CRM client's settings (`VIDSCOPE_CRM_*`, the table in [`super`]).

use std::time::Duration;

use reqwest::Url;
use vidscope_core::config::SettingsError;

use super::token::Secret;

/// How to reach the CRM and how hard to try. `Debug` never shows the client secret (a
/// [`Secret`] prints `[redacted]`).
#[derive(Clone, Debug)]
pub struct CrmSettings {
    /// Base URL; the API paths are appended to it (`{base}/oauth/token`, `{base}/contacts/upsert`).
    pub base_url: String,
    pub client_id: String,
    pub(super) client_secret: Secret,
    /// Timeout of each HTTP request (not of the whole call with its retries).
    pub timeout: Duration,
    /// Attempts per call, the first one included.
    pub max_attempts: u32,
    /// Consecutive transient failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker rejects calls before letting a probe through.
    pub breaker_cooldown: Duration,
    /// First retry delay (doubled per retry, full jitter) and the cap.
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
}

pub(super) const URL_VAR: &str = "VIDSCOPE_CRM_URL";

impl CrmSettings {
    /// Defaults for everything but the endpoint and the credentials.
    pub fn new(base_url: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Secret::new(client_secret),
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            retry_base_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(5),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn with_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures.max(1);
        self.breaker_cooldown = cooldown;
        self
    }

    pub fn with_retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// `None` when `VIDSCOPE_CRM_URL` is unset or empty (CRM sync off). A bad value fails with
    /// the variable's name; the secret's value is never part of an error.
    pub fn from_env() -> Result<Option<Self>, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup, for tests.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, SettingsError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let Some(url) = get(URL_VAR) else {
            return Ok(None);
        };
        parse_base_url(&url).map_err(|reason| SettingsError {
            var: URL_VAR,
            reason,
        })?;
        let required = |var: &'static str| {
            get(var).ok_or(SettingsError {
                var,
                reason: format!("must be set when {URL_VAR} is"),
            })
        };
        let client_id = required("VIDSCOPE_CRM_CLIENT_ID")?;
        let client_secret = required("VIDSCOPE_CRM_CLIENT_SECRET")?;
        let mut s = Self::new(url.trim(), client_id.trim(), &client_secret);
        let positive = |var: &'static str, what: &str| -> Result<Option<u64>, SettingsError> {
            get(var)
                .map(|v| vidscope_core::config::parse_u64(var, &v, what))
                .transpose()
        };
        let small = |var: &'static str, n: u64| {
            u32::try_from(n).map_err(|_| SettingsError {
                var,
                reason: format!("{n} is too large"),
            })
        };
        if let Some(ms) = positive("VIDSCOPE_CRM_TIMEOUT_MS", "milliseconds")? {
            s.timeout = Duration::from_millis(ms);
        }
        if let Some(n) = positive("VIDSCOPE_CRM_MAX_ATTEMPTS", "attempts")? {
            s.max_attempts = small("VIDSCOPE_CRM_MAX_ATTEMPTS", n)?;
        }
        if let Some(n) = positive("VIDSCOPE_CRM_BREAKER_FAILURES", "failures")? {
            s.breaker_failures = small("VIDSCOPE_CRM_BREAKER_FAILURES", n)?;
        }
        if let Some(secs) = positive("VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS", "seconds")? {
            s.breaker_cooldown = Duration::from_secs(secs);
        }
        Ok(Some(s))
    }
}

/// The base URL with a trailing slash, so relative endpoint paths are appended to it rather than
/// replacing its last segment. User info is refused: credentials belong in the client id and
/// secret, and a URL is recorded on every client span (`url.full`).
pub(super) fn parse_base_url(raw: &str) -> Result<Url, String> {
    let mut url = Url::parse(raw.trim()).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials; use VIDSCOPE_CRM_CLIENT_ID/_SECRET".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::token::TOKEN_ENDPOINT;
    use crate::crm::{CONTACTS_ENDPOINT, CrmContact, CrmEvent};
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const FULL: &[(&str, &str)] = &[
        ("VIDSCOPE_CRM_URL", "https://crm.example.com/api"),
        ("VIDSCOPE_CRM_CLIENT_ID", "id"),
        ("VIDSCOPE_CRM_CLIENT_SECRET", "s3cr3t-value"),
    ];

    #[test]
    fn unset_url_turns_sync_off() {
        assert!(CrmSettings::from_lookup(lookup(&[])).unwrap().is_none());
        assert!(
            CrmSettings::from_lookup(lookup(&[("VIDSCOPE_CRM_URL", " ")]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let s = CrmSettings::from_lookup(lookup(FULL)).unwrap().unwrap();
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.breaker_failures, 5);
        assert_eq!(s.breaker_cooldown, Duration::from_secs(30));

        let mut vars = FULL.to_vec();
        vars.extend([
            ("VIDSCOPE_CRM_TIMEOUT_MS", "1500"),
            ("VIDSCOPE_CRM_MAX_ATTEMPTS", "7"),
            ("VIDSCOPE_CRM_BREAKER_FAILURES", "2"),
            ("VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS", "9"),
        ]);
        let s = CrmSettings::from_lookup(lookup(&vars)).unwrap().unwrap();
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!(s.max_attempts, 7);
        assert_eq!(s.breaker_failures, 2);
        assert_eq!(s.breaker_cooldown, Duration::from_secs(9));
    }

    #[test]
    fn bad_values_name_the_variable() {
        // A non-HTTP scheme, not a URL, credentials in the URL.
        for url in ["ftp://crm", "not a url", "https://u:p@crm.example.com"] {
            let err = CrmSettings::from_lookup(lookup(&[(URL_VAR, url)])).expect_err(url);
            assert_eq!(err.var, URL_VAR, "{url}");
        }
        // The credentials are required with the URL: the first missing one is named.
        let url = (URL_VAR, "https://crm.example.com");
        let id = ("VIDSCOPE_CRM_CLIENT_ID", "id");
        for (vars, missing) in [
            (&[url][..], "VIDSCOPE_CRM_CLIENT_ID"),
            (&[url, id][..], "VIDSCOPE_CRM_CLIENT_SECRET"),
        ] {
            let err = CrmSettings::from_lookup(lookup(vars)).expect_err(missing);
            assert_eq!(err.var, missing);
        }
        for (var, value) in [
            ("VIDSCOPE_CRM_TIMEOUT_MS", "0"),
            ("VIDSCOPE_CRM_MAX_ATTEMPTS", "three"),
            ("VIDSCOPE_CRM_BREAKER_FAILURES", "-1"),
            ("VIDSCOPE_CRM_BREAKER_COOLDOWN_SECS", "1.5"),
            ("VIDSCOPE_CRM_MAX_ATTEMPTS", "99999999999"),
        ] {
            let mut vars = FULL.to_vec();
            vars.push((var, value));
            let err = CrmSettings::from_lookup(lookup(&vars)).expect_err(value);
            assert_eq!(err.var, var, "{value}");
        }
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let s = CrmSettings::from_lookup(lookup(FULL)).unwrap().unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        let contact = CrmContact {
            user_id: "u1".into(),
            email: "ada@example.com".into(),
            event: CrmEvent::Registered,
        };
        assert!(!format!("{contact:?}").contains("ada@"));
    }

    #[test]
    fn endpoints_are_appended_to_the_base_path() {
        let base = parse_base_url("https://crm.example.com/api").unwrap();
        assert_eq!(
            base.join(CONTACTS_ENDPOINT).unwrap().as_str(),
            "https://crm.example.com/api/contacts/upsert"
        );
        let base = parse_base_url("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            base.join(TOKEN_ENDPOINT).unwrap().as_str(),
            "http://127.0.0.1:9/oauth/token"
        );
    }
}

//! Why a CRM call failed, and whether retrying later can help ([`Classify`]).

use std::time::Duration;

use vidscope_telemetry::classify::classify_http_status;
use vidscope_telemetry::{Classify, ErrorClass};

/// Why a sync failed. [`Classify`] says whether retrying later can help.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// No response within [`CrmSettings::timeout`]. Transient.
    #[error("the CRM did not answer {endpoint} in time")]
    Timeout {
        endpoint: &'static str,
        #[source]
        source: reqwest_middleware::Error,
    },
    /// No connection (refused, DNS, TLS). Transient.
    #[error("cannot connect to the CRM for {endpoint}")]
    Connect {
        endpoint: &'static str,
        #[source]
        source: reqwest_middleware::Error,
    },
    /// The exchange broke off (connection reset, truncated body). Transient.
    #[error("the CRM request to {endpoint} failed")]
    Transport {
        endpoint: &'static str,
        #[source]
        source: reqwest_middleware::Error,
    },
    /// The CRM answered with a non-success status: transient for 408, 425, 429 and 5xx,
    /// permanent otherwise (a 401 here is the answer after the token was already replaced once).
    #[error("the CRM answered {status} to {endpoint}")]
    Status { endpoint: &'static str, status: u16 },
    /// The CRM answered 2xx with something unusable. Permanent.
    #[error("unusable answer from the CRM to {endpoint}: {reason}")]
    BadResponse {
        endpoint: &'static str,
        reason: &'static str,
    },
    /// The circuit breaker is open: the CRM was not called. Transient; try again after
    /// `retry_after` at the earliest.
    #[error("the CRM circuit breaker is open (retry in {retry_after:?})")]
    BreakerOpen { retry_after: Duration },
    /// The request cannot be built from this input or configuration. Permanent.
    #[error("invalid CRM request: {0}")]
    Invalid(String),
}

/// What kind of failure a request error is, read off the borrowed error.
#[derive(Clone, Copy)]
pub(super) enum TransportKind {
    Timeout,
    Connect,
    Invalid,
    Other,
}

impl TransportKind {
    pub(super) fn of(e: &reqwest_middleware::Error) -> Self {
        match e {
            reqwest_middleware::Error::Reqwest(r) if r.is_timeout() => TransportKind::Timeout,
            reqwest_middleware::Error::Reqwest(r) if r.is_connect() => TransportKind::Connect,
            reqwest_middleware::Error::Reqwest(r) if r.is_builder() || r.is_redirect() => {
                TransportKind::Invalid
            }
            _ => TransportKind::Other,
        }
    }
}

impl CrmError {
    pub(super) fn from_transport(
        endpoint: &'static str,
        source: reqwest_middleware::Error,
    ) -> Self {
        match TransportKind::of(&source) {
            TransportKind::Timeout => CrmError::Timeout { endpoint, source },
            TransportKind::Connect => CrmError::Connect { endpoint, source },
            TransportKind::Invalid => CrmError::Invalid(source.to_string()),
            TransportKind::Other => CrmError::Transport { endpoint, source },
        }
    }

    pub(super) fn status(&self) -> Option<u16> {
        match self {
            CrmError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl Classify for CrmError {
    fn class(&self) -> ErrorClass {
        match self {
            CrmError::Timeout { .. }
            | CrmError::Connect { .. }
            | CrmError::Transport { .. }
            | CrmError::BreakerOpen { .. } => ErrorClass::Transient,
            // Every 5xx, not only the gateway codes `classify_http_status` lists: a CRM's 501 or
            // 507 is as likely to pass as its 500.
            CrmError::Status { status, .. } if (500..600).contains(status) => ErrorClass::Transient,
            CrmError::Status { status, .. } => classify_http_status(*status),
            CrmError::BadResponse { .. } | CrmError::Invalid(_) => ErrorClass::Permanent,
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            CrmError::Timeout { .. } => "crm.timeout",
            CrmError::Connect { .. } => "crm.connect",
            CrmError::Transport { .. } => "crm.transport",
            CrmError::Status { status, .. } => status_error_type(*status),
            CrmError::BadResponse { .. } => "crm.bad_response",
            CrmError::BreakerOpen { .. } => "crm.breaker_open",
            CrmError::Invalid(_) => "crm.invalid",
        }
    }
}

/// A bounded set of names (it may become a metric label): common codes by number, the rest by
/// class.
pub(super) fn status_error_type(status: u16) -> &'static str {
    match status {
        400 => "crm.http.400",
        401 => "crm.http.401",
        403 => "crm.http.403",
        404 => "crm.http.404",
        408 => "crm.http.408",
        409 => "crm.http.409",
        422 => "crm.http.422",
        429 => "crm.http.429",
        500 => "crm.http.500",
        502 => "crm.http.502",
        503 => "crm.http.503",
        504 => "crm.http.504",
        s if s / 100 == 4 => "crm.http.4xx",
        s if s / 100 == 5 => "crm.http.5xx",
        _ => "crm.http.other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::CONTACTS_ENDPOINT;

    #[test]
    fn classes_and_error_types() {
        let status = |s| CrmError::Status {
            endpoint: CONTACTS_ENDPOINT,
            status: s,
        };
        for s in [429, 500, 501, 502, 503, 504, 408] {
            assert_eq!(status(s).class(), ErrorClass::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(status(s).class(), ErrorClass::Permanent, "{s}");
        }
        assert_eq!(status(503).error_type(), "crm.http.503");
        assert_eq!(status(418).error_type(), "crm.http.4xx");
        let open = CrmError::BreakerOpen {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(open.class(), ErrorClass::Transient);
        assert_eq!(CrmError::Invalid("x".into()).class(), ErrorClass::Permanent);
    }
}

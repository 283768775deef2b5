//! `/api/users`: admins manage accounts: list them ([`list`]), change a role or disable and
//! enable one ([`patch`]), set a temporary password ([`temporary_password`]). What a user does
//! to their own account is under `/api/account` ([`super::account`]).
//!
//! Every change is an event on the route's span and a log line, with the acting user
//! (`user.id`) and the account acted on (`target.user.id`), never a password or a token
//! ([`audit`]), and counted in `user.account_actions_total` ([`counted`]).

pub mod list;
pub mod patch;
pub mod temporary_password;

use opentelemetry::KeyValue;
use serde::Serialize;
use vidscope_core::domain::{Role, UserId};
use vidscope_core::users::Account;
use vidscope_telemetry::SpanExt as _;

use crate::error::ApiError;
use crate::state::AppState;

/// An account as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountBody {
    /// A UUID.
    pub id: String,
    pub email: String,
    /// `admin` or `viewer`.
    pub role: &'static str,
    /// Unix milliseconds.
    pub created_at: i64,
    /// An admin disabled it: it cannot sign in and has no session.
    pub disabled: bool,
    /// When it was disabled (Unix milliseconds); `null` while enabled.
    pub disabled_at: Option<i64>,
    /// It has a temporary password its user has not replaced yet.
    pub must_change_password: bool,
}

impl From<&Account> for AccountBody {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.clone(),
            email: a.email.clone(),
            role: a.role.as_str(),
            created_at: a.created_at,
            disabled: a.disabled_at.is_some(),
            disabled_at: a.disabled_at,
            must_change_password: a.must_change_password,
        }
    }
}

/// The `{id}` of a `/api/users/{id}` route: 400 `invalid_id` unless it is a UUID.
pub(crate) fn user_id(segment: &str) -> Result<UserId, ApiError> {
    let id = UserId::parse(segment)
        .ok_or_else(|| ApiError::bad_request("invalid_id", "id: a user id is a UUID"))?;
    tracing::Span::current().record("target.user.id", id.as_str());
    Ok(id)
}

/// The 404 of an unknown account.
pub(crate) fn no_such_user(id: &UserId) -> ApiError {
    ApiError::NotFound(format!("user {id} not found"))
}

/// The `action` labels of `user.account_actions_total`: users' own (`password_change`,
/// `sign_out_all`) and admins' (the rest).
pub(crate) const ACCOUNT_ACTIONS: [&str; 6] = [
    "password_change",
    "sign_out_all",
    "role_change",
    "disable",
    "enable",
    "temporary_password",
];

/// Counts `result` as each of `actions` in `user.account_actions_total`
/// ([`super::count_action`]), then hands it back.
pub(crate) fn counted<T>(
    state: &AppState,
    actions: &[&'static str],
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    super::count_action(&state.metrics.user_account_actions_total, actions, &result);
    result
}

/// What an account change records besides who did it to whom.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Detail {
    /// Sessions it ended.
    pub sessions_revoked: Option<usize>,
    /// The role before and after.
    pub roles: Option<(Role, Role)>,
}

/// The audit trail of an account change: event `name` on the route's span and a log line of
/// the same name, with the acting user and the account acted on.
pub(crate) fn audit(name: &'static str, actor: &str, target: &str, detail: Detail) {
    let mut attributes = vec![
        KeyValue::new("user.id", actor.to_owned()),
        KeyValue::new("target.user.id", target.to_owned()),
    ];
    if let Some(n) = detail.sessions_revoked {
        attributes.push(KeyValue::new("sessions.revoked", n as i64));
    }
    if let Some((previous, new)) = detail.roles {
        attributes.push(KeyValue::new("role.previous", previous.as_str()));
        attributes.push(KeyValue::new("role.new", new.as_str()));
    }
    tracing::Span::current().add_event(name, attributes);
    tracing::info!(
        user.id = actor,
        target.user.id = target,
        sessions.revoked = detail.sessions_revoked.map(|n| n as i64),
        role.previous = detail.roles.map(|r| r.0.as_str()),
        role.new = detail.roles.map(|r| r.1.as_str()),
        "{name}"
    );
}

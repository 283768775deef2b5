//! Password login and server-side sessions.
//!
//! The cookie carries a random 256-bit token; the database keeps only its SHA-256, so neither
//! a database dump nor a telemetry leak of the hash gives a usable session. Sessions are
//! looked up on every authenticated request, so `session_user` is a single indexed join.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::CoreError;
use crate::db::{Db, InDbSpan, now_millis, query_span};
use crate::domain::{Email, Password, Role};

/// An authenticated account as handlers see it. Serde so the session cache can hold it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// An admin set a temporary password: until the user chooses their own, the account may
    /// only change its password (and sign out). `default`: sessions cached before the field
    /// existed still read.
    #[serde(default)]
    pub must_change_password: bool,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The secret cookie value. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(hex::encode(bytes))
    }

    /// Parses a cookie value: 64 lowercase hex characters, anything else is not a token.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the session cache is keyed by: the SHA-256, never the token.
    pub fn cache_key(&self) -> String {
        self.stored().cache_key()
    }

    /// What telemetry shows for [`Self::cache_key`] ([`SessionHash::cache_label`]).
    pub fn cache_label(&self) -> String {
        self.stored().cache_label()
    }

    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The session as the database stores it.
    pub fn stored(&self) -> SessionHash {
        SessionHash(self.hash())
    }
}

/// A session as the database knows it: the SHA-256 of its token, useless to sign in with.
/// Ending sessions another way than logout (a password change, an admin disabling the
/// account) answers these, so the API can drop them from its session cache at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHash(String);

impl SessionHash {
    pub(crate) fn from_stored(hash: String) -> Self {
        Self(hash)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The session cache's key for this session.
    pub fn cache_key(&self) -> String {
        format!("session:{}", self.0)
    }

    /// What telemetry shows for [`Self::cache_key`]: a prefix of the hash, enough to
    /// correlate lookups of one session, useless to an attacker.
    pub fn cache_label(&self) -> String {
        let mut key = self.cache_key();
        key.truncate(20);
        key
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

/// Why a login was refused. The HTTP answer is the same for both (no account enumeration);
/// the reason goes to the `auth.failed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownEmail,
    WrongPassword,
    /// The password was right but an admin disabled the account. Only told after a right
    /// password, so it reveals nothing to someone guessing.
    Disabled,
}

impl LoginFailure {
    pub fn reason(self) -> &'static str {
        match self {
            LoginFailure::UnknownEmail => "unknown_email",
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Disabled => "account_disabled",
        }
    }
}

/// A [`User`] from a row with `id`, `email`, `role` and `must_change_password`.
pub(crate) fn row_user(row: &sqlx::any::AnyRow) -> Result<User, CoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: Role::parse(&role)?,
        must_change_password: row.try_get::<i64, _>("must_change_password")? != 0,
    })
}

/// A dummy argon2 hash verified when the e-mail is unknown, so both failures take as long
/// and response time does not reveal which addresses have accounts.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Hk0vIu0a3kGdCuWw5c9vD0c0f0sYVl8i1m4Qm9m3kQ";

/// Checks the credentials. `Ok(Err(_))` is a refused login, `Err(_)` a broken dependency.
#[tracing::instrument(name = "auth.verify_credentials", skip_all)]
pub async fn verify_credentials(
    db: &Db,
    email: &Email,
    password: &Password,
) -> Result<Result<User, LoginFailure>, CoreError> {
    const SQL: &str = "SELECT id, email, role, must_change_password, password_hash, disabled_at \
                       FROM users WHERE email = $1";
    let row = crate::db::select_by_key(db, "users", SQL, email.as_str()).await?;
    let (user, hash, disabled) = match &row {
        Some(r) => (
            Some(row_user(r)?),
            r.try_get::<String, _>("password_hash")?,
            r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
        ),
        None => (None, DUMMY_HASH.to_owned(), false),
    };
    let ok = password_matches(hash, password).await?;
    Ok(match (user, ok) {
        (Some(_), true) if disabled => Err(LoginFailure::Disabled),
        (Some(u), true) => Ok(u),
        (Some(_), false) => Err(LoginFailure::WrongPassword),
        (None, _) => Err(LoginFailure::UnknownEmail),
    })
}

/// Whether `password` is the one `hash` (an argon2 PHC string) was made from. Argon2 is
/// deliberately slow, so it runs off the async worker threads.
pub(crate) async fn password_matches(hash: String, password: &Password) -> Result<bool, CoreError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.expose().as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .map_err(|e| CoreError::Other(e.into()))
}

/// Creates a session for `user` valid for `ttl`.
#[tracing::instrument(name = "auth.create_session", skip_all, fields(user.id = %user.id))]
pub async fn create_session(
    db: &Db,
    user: &User,
    ttl: Duration,
) -> Result<SessionToken, CoreError> {
    let token = SessionToken::generate();
    let now = now_millis();
    const SQL: &str = "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
    let query = sqlx::query(SQL)
        .bind(token.hash())
        .bind(&user.id)
        .bind(now)
        .bind(now + ttl.as_millis() as i64);
    crate::db::execute(db, "INSERT", "sessions", SQL, query).await?;
    Ok(token)
}

/// The user behind a live session, `None` for unknown or expired tokens and for accounts an
/// admin disabled (their sessions are deleted then too: this is the second lock).
pub async fn session_user(db: &Db, token: &SessionToken) -> Result<Option<User>, CoreError> {
    const SQL: &str = "SELECT u.id, u.email, u.role, u.must_change_password \
                       FROM sessions s JOIN users u ON u.id = s.user_id \
                       WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL";
    let row = sqlx::query(SQL)
        .bind(token.hash())
        .bind(now_millis())
        .fetch_optional(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "sessions", SQL))
        .await?;
    row.as_ref().map(row_user).transpose()
}

/// Ends a session (idempotent).
pub async fn delete_session(db: &Db, token: &SessionToken) -> Result<(), CoreError> {
    const SQL: &str = "DELETE FROM sessions WHERE token_hash = $1";
    let query = sqlx::query(SQL).bind(token.hash());
    crate::db::execute(db, "DELETE", "sessions", SQL, query).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hidden_from_debug() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert!(SessionToken::parse(a.expose()).is_some());
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_ne!(a.hash(), a.expose());
        for bad in ["", "abc", &"G".repeat(64), &"a".repeat(63)] {
            assert!(SessionToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}

//! Accounts: creation with an argon2 hash, and what users and admins change afterwards (a
//! password, a role, disabling an account, ending sessions). Login and sessions are in
//! [`crate::auth`].

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use sqlx::Row;

use crate::CoreError;
use crate::auth::{SessionHash, SessionToken};
use crate::db::{Backend, Db, InDbSpan, now_millis, query_span};
use crate::domain::{Email, Password, Role};

/// Hashes with argon2id's default parameters (the OWASP baseline); the hash string carries
/// its parameters, so they can be raised later without a migration.
pub fn hash_password(p: &Password) -> Result<String, CoreError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(p.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Other(anyhow::anyhow!("hashing failed: {e}")))
}

/// Hashes `password` off the async worker threads (argon2 is deliberately slow).
async fn hash_off_thread(password: &Password) -> Result<String, CoreError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| CoreError::Other(e.into()))?
}

pub async fn create_user(
    db: &Db,
    email: &Email,
    password: &Password,
    role: Role,
) -> Result<String, CoreError> {
    create_user_with_jobs(db, email, password, role, |_| Vec::new()).await
}

/// [`create_user`] plus jobs about the new account (the CRM sync of a registration), written
/// to the outbox in the same transaction. `jobs` gets the new user's id.
#[tracing::instrument(name = "users.create", skip_all, fields(user.role = role.as_str(), user.id = tracing::field::Empty))]
pub async fn create_user_with_jobs(
    db: &Db,
    email: &Email,
    password: &Password,
    role: Role,
    jobs: impl FnOnce(&str) -> Vec<crate::jobs::NewJob>,
) -> Result<String, CoreError> {
    let hash = hash_off_thread(password).await?;
    let id = uuid::Uuid::new_v4().to_string();
    tracing::Span::current().record("user.id", id.as_str());
    const SQL: &str = "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)";
    let now = now_millis();
    let mut tx = crate::db::begin(db).await?;
    let result = sqlx::query(SQL)
        .bind(&id)
        .bind(email.as_str())
        .bind(hash)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .in_db_span(query_span(db.backend(), "INSERT", "users", SQL))
        .await;
    match result {
        Ok(_) => {
            crate::outbox::write_outbox(&mut tx, db.backend(), &jobs(&id)).await?;
            crate::db::commit(tx).await?;
            Ok(id)
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(CoreError::Conflict("a user with this email"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates an admin account unless a user with this e-mail exists (whatever its role or
/// password: an operator may have changed either since). `true` when it was created.
pub async fn ensure_admin(db: &Db, email: &Email, password: &Password) -> Result<bool, CoreError> {
    match create_user(db, email, password, Role::Admin).await {
        Ok(_) => Ok(true),
        Err(CoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The e-mail address of a user (`None` when the account is gone).
pub async fn email_of(db: &Db, id: &str) -> Result<Option<String>, CoreError> {
    const SQL: &str = "SELECT email FROM users WHERE id = $1";
    let row = crate::db::select_by_key(db, "users", SQL, id).await?;
    Ok(row.map(|row| row.try_get("email")).transpose()?)
}

/// An account as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// Unix milliseconds.
    pub created_at: i64,
    /// When an admin disabled it (Unix milliseconds); `None` while it is enabled.
    pub disabled_at: Option<i64>,
    /// An admin set a temporary password the user has not replaced yet.
    pub must_change_password: bool,
}

fn row_account(row: &sqlx::any::AnyRow) -> Result<Account, CoreError> {
    let user = crate::auth::row_user(row)?;
    Ok(Account {
        id: user.id,
        email: user.email,
        role: user.role,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
        must_change_password: user.must_change_password,
    })
}

/// Every account, by e-mail address. A lesson platform has hundreds of accounts, not
/// millions: the admin page shows them all.
#[tracing::instrument(name = "users.list", skip_all)]
pub async fn list(db: &Db) -> Result<Vec<Account>, CoreError> {
    const SQL: &str = "SELECT id, email, role, created_at, disabled_at, must_change_password \
                       FROM users ORDER BY email";
    let rows = sqlx::query(SQL)
        .fetch_all(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "users", SQL))
        .await?;
    rows.iter().map(row_account).collect()
}

/// One account, `None` when there is no such id.
pub async fn get(db: &Db, id: &str) -> Result<Option<Account>, CoreError> {
    const SQL: &str = "SELECT id, email, role, created_at, disabled_at, must_change_password \
                       FROM users WHERE id = $1";
    let row = crate::db::select_by_key(db, "users", SQL, id).await?;
    row.as_ref().map(row_account).transpose()
}

/// Whether `password` is the account's current one (`false` for an unknown account).
#[tracing::instrument(name = "users.verify_password", skip_all, fields(user.id = %id))]
pub async fn verify_password(db: &Db, id: &str, password: &Password) -> Result<bool, CoreError> {
    const SQL: &str = "SELECT password_hash FROM users WHERE id = $1";
    let Some(row) = crate::db::select_by_key(db, "users", SQL, id).await? else {
        return Ok(false);
    };
    crate::auth::password_matches(row.try_get("password_hash")?, password).await
}

/// Who chose a new password: the user (the account is theirs again) or an admin (a temporary
/// one, which the user must replace at their next sign-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPassword {
    Chosen,
    Temporary,
}

/// Sets the account's password and ends its sessions but `keep` (the one a user changes their
/// password from), in one transaction. The ended sessions, or `None` for an unknown account.
#[tracing::instrument(name = "users.set_password", skip_all, fields(user.id = %id))]
pub async fn set_password(
    db: &Db,
    id: &str,
    password: &Password,
    kind: NewPassword,
    keep: Option<&SessionToken>,
) -> Result<Option<Vec<SessionHash>>, CoreError> {
    let hash = hash_off_thread(password).await?;
    const SQL: &str =
        "UPDATE users SET password_hash = $1, must_change_password = $2 WHERE id = $3";
    let mut tx = crate::db::begin(db).await?;
    let updated = sqlx::query(SQL)
        .bind(hash)
        .bind(i64::from(kind == NewPassword::Temporary))
        .bind(id)
        .execute(&mut *tx)
        .in_db_span(query_span(db.backend(), "UPDATE", "users", SQL))
        .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    let ended = delete_sessions(&mut tx, db.backend(), id, keep).await?;
    crate::db::commit(tx).await?;
    Ok(Some(ended))
}

/// Ends every session of the account but `keep`; answers the ended ones.
#[tracing::instrument(name = "users.revoke_sessions", skip_all, fields(user.id = %id))]
pub async fn revoke_sessions(
    db: &Db,
    id: &str,
    keep: Option<&SessionToken>,
) -> Result<Vec<SessionHash>, CoreError> {
    let mut tx = crate::db::begin(db).await?;
    let ended = delete_sessions(&mut tx, db.backend(), id, keep).await?;
    crate::db::commit(tx).await?;
    Ok(ended)
}

async fn delete_sessions(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    id: &str,
    keep: Option<&SessionToken>,
) -> Result<Vec<SessionHash>, CoreError> {
    // `RETURNING` (Postgres, SQLite 3.35+) names what went, for the session cache.
    const SQL: &str =
        "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2 RETURNING token_hash";
    // No stored hash is empty, so "" keeps none.
    let keep = keep
        .map(|t| t.stored().as_str().to_owned())
        .unwrap_or_default();
    let hashes: Vec<String> = sqlx::query_scalar(SQL)
        .bind(id)
        .bind(keep)
        .fetch_all(&mut **tx)
        .in_db_span(query_span(backend, "DELETE", "sessions", SQL))
        .await?;
    Ok(hashes.into_iter().map(SessionHash::from_stored).collect())
}

/// The account's live sessions (a role change drops them from the session cache, which holds
/// the role).
pub async fn sessions_of(db: &Db, id: &str) -> Result<Vec<SessionHash>, CoreError> {
    const SQL: &str = "SELECT token_hash FROM sessions WHERE user_id = $1";
    let hashes: Vec<String> = sqlx::query_scalar(SQL)
        .bind(id)
        .fetch_all(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "sessions", SQL))
        .await?;
    Ok(hashes.into_iter().map(SessionHash::from_stored).collect())
}

/// What an admin changes on an account; `None` leaves it as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Why an admin's change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRefused {
    NoSuchAccount,
    /// An admin cannot disable their own account (nobody could enable it again if they were
    /// the last admin, and it would end the session they act from).
    DisablingSelf,
    /// The change would leave no enabled admin: nobody could manage accounts any more.
    LastAdmin,
}

/// An applied [`AccountChange`]: the account before and after, and the sessions a disable
/// ended.
#[derive(Debug, Clone)]
pub struct AccountChanged {
    pub before: Account,
    pub after: Account,
    pub ended_sessions: Vec<SessionHash>,
}

/// Applies `change` to account `id` on behalf of admin `actor_id`, in one transaction:
/// disabling ends the account's sessions, and no change may leave the platform without an
/// enabled admin. On Postgres the enabled admins' rows are locked while that is checked, so
/// two admins demoting each other at once cannot both succeed; SQLite's transactions take
/// the write lock at `BEGIN` ([`crate::db::begin`]) and are serial anyway.
#[tracing::instrument(name = "users.update", skip_all, fields(user.id = %id))]
pub async fn update(
    db: &Db,
    actor_id: &str,
    id: &str,
    change: AccountChange,
) -> Result<Result<AccountChanged, ChangeRefused>, CoreError> {
    const SELECT: &str = "SELECT id, email, role, created_at, disabled_at, must_change_password \
                          FROM users WHERE id = $1";
    const ADMINS_PG: &str =
        "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL FOR UPDATE";
    const ADMINS: &str = "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL";
    const UPDATE: &str = "UPDATE users SET role = $1, disabled_at = $2 WHERE id = $3";
    let backend = db.backend();
    if change.disabled == Some(true) && actor_id == id {
        return Ok(Err(ChangeRefused::DisablingSelf));
    }
    let mut tx = crate::db::begin(db).await?;
    let admins_sql = if backend == Backend::Postgres {
        ADMINS_PG
    } else {
        ADMINS
    };
    let admins: Vec<String> = sqlx::query_scalar(admins_sql)
        .fetch_all(&mut *tx)
        .in_db_span(query_span(backend, "SELECT", "users", admins_sql))
        .await?;
    let row = sqlx::query(SELECT)
        .bind(id)
        .fetch_optional(&mut *tx)
        .in_db_span(query_span(backend, "SELECT", "users", SELECT))
        .await?;
    let Some(before) = row.as_ref().map(row_account).transpose()? else {
        return Ok(Err(ChangeRefused::NoSuchAccount));
    };
    let mut after = before.clone();
    if let Some(role) = change.role {
        after.role = role;
    }
    match change.disabled {
        Some(true) if before.disabled_at.is_none() => after.disabled_at = Some(now_millis()),
        Some(false) => after.disabled_at = None,
        _ => {}
    }
    let enabled_admin = |a: &Account| a.role == Role::Admin && a.disabled_at.is_none();
    if enabled_admin(&before) && !enabled_admin(&after) && admins.iter().all(|a| a == id) {
        return Ok(Err(ChangeRefused::LastAdmin));
    }
    sqlx::query(UPDATE)
        .bind(after.role.as_str())
        .bind(after.disabled_at)
        .bind(id)
        .execute(&mut *tx)
        .in_db_span(query_span(backend, "UPDATE", "users", UPDATE))
        .await?;
    let ended_sessions = if after.disabled_at.is_some() && before.disabled_at.is_none() {
        delete_sessions(&mut tx, backend, id, None).await?
    } else {
        Vec::new()
    };
    crate::db::commit(tx).await?;
    Ok(Ok(AccountChanged {
        before,
        after,
        ended_sessions,
    }))
}

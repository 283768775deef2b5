//! Accounts: creation with an argon2 hash. Login and sessions are in [`crate::auth`].

use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};

use crate::CoreError;
use crate::db::{Db, InDbSpan, now_millis, query_span};
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
    let hash = {
        let password = password.clone();
        // Argon2 is deliberately slow; keep it off the async worker threads.
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| CoreError::Other(e.into()))??
    };
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
    let email: Option<String> = sqlx::query_scalar(SQL)
        .bind(id)
        .fetch_optional(db.pool())
        .in_db_span(query_span(db.backend(), "SELECT", "users", SQL))
        .await?;
    Ok(email)
}

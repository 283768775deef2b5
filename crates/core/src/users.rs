//! Accounts: creation with an argon2 hash. Login and sessions arrive with the auth routes.

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

#[tracing::instrument(name = "users.create", skip_all, fields(user.role = role.as_str(), user.id = tracing::field::Empty))]
pub async fn create_user(
    db: &Db,
    email: &Email,
    password: &Password,
    role: Role,
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
    let result = sqlx::query(SQL)
        .bind(&id)
        .bind(email.as_str())
        .bind(hash)
        .bind(role.as_str())
        .bind(now)
        .execute(db.pool())
        .in_db_span(query_span(db.backend(), "INSERT", "users", SQL))
        .await;
    match result {
        Ok(_) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(CoreError::Conflict("a user with this email"))
        }
        Err(e) => Err(e.into()),
    }
}

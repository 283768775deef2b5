pub mod login;
pub mod logout;
pub mod register;
pub mod session;

use serde::Serialize;
use vidscope_core::auth::User;

/// The public view of an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserBody {
    pub id: String,
    pub email: String,
    /// `admin` or `viewer`.
    pub role: &'static str,
    /// An admin set a temporary password: until the user chooses a new one
    /// (`POST /api/account/password`), every other route answers 403
    /// `password_change_required`.
    pub must_change_password: bool,
}

/// What login, register and session answer: the signed-in account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    pub user: UserBody,
}

impl From<&User> for UserResponse {
    fn from(u: &User) -> Self {
        Self { user: u.into() }
    }
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
            must_change_password: u.must_change_password,
        }
    }
}

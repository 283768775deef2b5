pub mod login;
pub mod logout;
pub mod register;
pub mod session;

use serde::Serialize;
use vidscope_core::auth::User;

/// The public view of an account.
#[derive(Debug, Serialize)]
pub struct UserBody {
    pub id: String,
    pub email: String,
    pub role: &'static str,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            role: u.role.as_str(),
        }
    }
}

//! `/api/account`: what signed-in users do to their own account: change the password
//! ([`password`]), sign out of every session ([`sessions`]). A user who must replace a
//! temporary password may call both. Admins' account management is [`super::users`].

pub mod password;
pub mod sessions;

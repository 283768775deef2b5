//! Validated input types: parse once at the edge, then trust the type.

use std::fmt;

use crate::CoreError;

/// A normalised (trimmed, lower-cased) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let s = s.trim().to_ascii_lowercase();
        // Characters, not bytes: the API document's `maxLength` counts characters.
        let valid = s.chars().count() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(s))
        } else {
            Err(CoreError::Invalid("email is not a valid address".into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password in transit. `Debug` never shows it, so it cannot leak through `?field`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let n = s.chars().count();
        if !(8..=128).contains(&n) {
            return Err(CoreError::Invalid(
                "password must be between 8 and 128 characters".into(),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            _ => Err(CoreError::Invalid("role must be admin or viewer".into())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// Declares an id type holding a UUID in its hyphenated lower-case form (how ids are generated
/// and stored), read with [`parse_uuid`]. A macro so that the id types, which differ in name
/// only, stay distinct types with one definition.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The hyphenated form only ([`parse_uuid`]).
            pub fn parse(s: &str) -> Option<Self> {
                parse_uuid(s).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id! {
    /// A video id: a UUID in its hyphenated lower-case form (how they are generated and stored).
    VideoId
}

impl VideoId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

uuid_id! {
    /// A user id: a UUID like [`VideoId`] (how accounts are created).
    UserId
}

/// A UUID in the hyphenated form only (`8-4-4-4-12` hex digits), in any case, normalised to
/// the stored lower-case form. The other spellings `uuid` reads (simple, braced, URN) are
/// refused so that the API's documented pattern is the whole rule.
fn parse_uuid(s: &str) -> Option<String> {
    if s.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(s)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" A@Example.COM ").unwrap().as_str(),
            "a@example.com"
        );
        for bad in ["", "a", "a@b", "@b.c", "a@.c", "a@b.", "a b@c.d", "a@b@c.d"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        // 254 characters at most, however many bytes they take.
        let long = format!("{}@example.com", "é".repeat(254 - 12));
        assert!(Email::parse(&long).is_ok());
        assert!(Email::parse(&format!("é{long}")).is_err());
    }

    #[test]
    fn passwords_are_bounded_and_hidden() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("admin").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
    }
}

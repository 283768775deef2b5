//! The error answers many routes share, each written once: a route lists the ones it gives,
//! `responses((status = 200, ...), BadInput, Unauthorized, NoSuchVideo, DbUnavailable)`, and
//! keeps a row of its own only where its answer says more than the shared one (the upload's
//! 413 names its own limit).
//!
//! Every one but the pages' [`ToLogin`] is the [`ErrorBody`]; the types exist for the
//! document and are never built.

#![allow(
    dead_code,
    reason = "responses of the OpenAPI document only: handlers answer through `ApiError`"
)]

use utoipa::IntoResponses;

use crate::error::ErrorBody;

/// A page asked for without a valid session: the redirect to the sign-in page, which comes
/// back to the page afterwards.
#[derive(IntoResponses)]
#[response(
    status = 303,
    description = "No valid session: to `/login?next=` and the page's path",
    headers(("Location" = String))
)]
pub struct ToLogin;

/// `Name: status, "description";` makes a response type with the [`ErrorBody`]; more
/// `#[response]` attributes may follow the description (the 503s' `Retry-After`).
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: $status:literal, $description:literal $(, $key:ident $args:tt)*;)*) => {
        $(
            $(#[$doc])*
            #[derive(IntoResponses)]
            #[response(status = $status, description = $description $(, $key $args)*)]
            pub struct $name(ErrorBody<'static>);
        )*
    };
}

error_responses! {
    /// A 400 of a route whose parameters or JSON fields are checked one by one.
    BadInput: 400, "A parameter or field is missing or not valid (the message names it)";
    /// A route behind the `session` scheme, called without a valid session cookie.
    Unauthorized: 401, "No valid session";
    /// A signed-in viewer on an admin-only route.
    AdminOnly: 403, "Not an admin";
    /// A video id that names no video.
    NoSuchVideo: 404, "No such video";
    /// An account id that names no account.
    NoSuchAccount: 404, "No such account";
    /// A JSON body over the router's limit ([`crate::limits::BODY_LIMIT`]).
    TooLarge: 413, "The body is over 1 MiB";
    /// A JSON route called with another content type.
    NotJson: 415, "The body is not `application/json`";
    /// Every route that reads the database (the session check included).
    DbUnavailable: 503, "The database is unavailable or busy for a moment (down, the connection dropped, a lock held too long): retry after `Retry-After`",
        headers(("Retry-After" = u32, description = "Seconds to wait"));
    /// Routes that also read or write the object store.
    StoreUnavailable: 503, "The database or object store is unavailable or busy for a moment: retry after `Retry-After`",
        headers(("Retry-After" = u32, description = "Seconds to wait"));
    /// Routes that write to the database.
    DbFull: 507, "The database is out of storage space; nothing was saved";
    /// The upload: it writes to the object store, then the database.
    StoreFull: 507, "The object store or the database is out of storage space; nothing was kept";
}

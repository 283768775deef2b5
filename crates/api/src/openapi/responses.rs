//! The error answers many routes share, each written once: a route lists the ones it gives,
//! `responses((status = 200, ...), BadInput, Unauthorized, NoSuchVideo, DbUnavailable)`, and
//! keeps a row of its own only where its answer says more than the shared one (the upload's
//! 413 names its own limit).
//!
//! Every one is the [`ErrorBody`]; the types exist for the document and are never built.

#![allow(
    dead_code,
    reason = "responses of the OpenAPI document only: handlers answer through `ApiError`"
)]

use utoipa::IntoResponses;

use crate::error::ErrorBody;

/// A 400 of a route whose parameters or JSON fields are checked one by one.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "A parameter or field is missing or not valid (the message names it)"
)]
pub struct BadInput(ErrorBody<'static>);

/// A route behind the `session` scheme, called without a valid session cookie.
#[derive(IntoResponses)]
#[response(status = 401, description = "No valid session")]
pub struct Unauthorized(ErrorBody<'static>);

/// A signed-in viewer on an admin-only route.
#[derive(IntoResponses)]
#[response(status = 403, description = "Not an admin")]
pub struct AdminOnly(ErrorBody<'static>);

/// A video id that names no video.
#[derive(IntoResponses)]
#[response(status = 404, description = "No such video")]
pub struct NoSuchVideo(ErrorBody<'static>);

/// A JSON body over the router's limit ([`crate::limits::BODY_LIMIT`]).
#[derive(IntoResponses)]
#[response(status = 413, description = "The body is over 1 MiB")]
pub struct TooLarge(ErrorBody<'static>);

/// A JSON route called with another content type.
#[derive(IntoResponses)]
#[response(status = 415, description = "The body is not `application/json`")]
pub struct NotJson(ErrorBody<'static>);

/// Every route that reads the database (the session check included).
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "The database is unavailable",
    headers(("Retry-After" = u32, description = "Seconds to wait"))
)]
pub struct DbUnavailable(ErrorBody<'static>);

/// Routes that also read or write the object store.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "The database or object store is unavailable",
    headers(("Retry-After" = u32, description = "Seconds to wait"))
)]
pub struct StoreUnavailable(ErrorBody<'static>);

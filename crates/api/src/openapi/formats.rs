//! The string formats the server checks, as named schemas of the OpenAPI document.
//!
//! Each parameter or field that takes one of these refers to it (`value_type = ...`), so a
//! rule is written once. Each pattern states exactly what the parser named in its doc accepts,
//! no more and no less: a client (or schemathesis, `scripts/schemathesis.sh`) that follows
//! the document never meets a 400 for the format, and one that does not always does. The
//! `openapi` integration test holds every pattern against its parser on the same inputs.
//!
//! Patterns are ECMA-262 (the OpenAPI dialect) without look-around, so the regex engines of
//! the usual tools (Rust's `regex`, Python's `re`, JavaScript) read them alike.

#![allow(
    dead_code,
    reason = "schemas only: the handlers parse these as strings with the parsers named here"
)]

use utoipa::ToSchema;

/// `Name: key = value, ...;` makes a string schema with these attributes (`pattern`, `example`,
/// lengths, `format`): a line each, so the formats read as a table.
macro_rules! string_formats {
    ($($(#[$doc:meta])* $name:ident: $($key:ident = $value:tt),+;)*) => {$(
        $(#[$doc])*
        #[derive(ToSchema)]
        #[schema(value_type = String, $($key = $value),+)]
        pub struct $name(String);
    )*};
}

string_formats! {
    /// A video id: a UUID in the hyphenated form (`8-4-4-4-12` hex digits, any case), as
    /// `vidscope_core::videos::VideoId::parse` accepts.
    VideoId: format = "uuid", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", example = "0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90";

    /// A user id: a UUID in the hyphenated form, as `vidscope_core::domain::UserId::parse`
    /// accepts (the same rule as [`VideoId`]).
    UserId: format = "uuid", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", example = "5d0c6f0e-2b6a-4c1e-8f3a-9b7d2e4c1a60";

    /// A video's file name (its `stream_url`'s last segment; not unique), as
    /// `vidscope_core::videos::Filename::parse` accepts: dot-separated runs of `A-Z a-z 0-9 _ -`
    /// (so no leading dot and no `..`), ending in `.mp4`, `.m4v`, `.mov`, `.webm` or `.mkv` (any
    /// case), at most 200 characters.
    Filename: max_length = 200, pattern = "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.([Mm][Pp]4|[Mm]4[Vv]|[Mm][Oo][Vv]|[Ww][Ee][Bb][Mm]|[Mm][Kk][Vv])$", example = "lesson-01.mp4";

    /// A [`VideoId`] (the video's metadata) or a [`Filename`] (its bytes). The two never overlap:
    /// a file name has a dot, an id has none.
    VideoIdOrFilename: max_length = 200, pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.([Mm][Pp]4|[Mm]4[Vv]|[Mm][Oo][Vv]|[Ww][Ee][Bb][Mm]|[Mm][Kk][Vv]))$", example = "lesson-01.mp4";

    /// An e-mail address, as `vidscope_core::domain::Email::parse` accepts: white space around
    /// it is dropped and it is lower-cased; then one `@`, a non-empty local part, a domain with a
    /// dot that neither starts nor ends it, no white space or control character anywhere, at most
    /// 254 characters.
    Email: max_length = 254, pattern = "^[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@]+@[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@.][^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@]*\\.[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000@.][\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$", example = "ada@example.com";

    /// A trace id: 32 lowercase hex digits.
    TraceId: pattern = "^[0-9a-f]{32}$", example = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// A W3C `traceparent` of version `00` with a valid (not all-zero) trace id and span id, as
    /// the player route checks it before handing it to the propagator.
    Traceparent: pattern = "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The `next` of a page of `GET /api/videos`: `<created_at>_<video id>`, the time in Unix
    /// milliseconds (1 to 18 digits).
    Cursor: pattern = "^[0-9]{1,18}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", example = "1733480000000_0b9e3c52-5f04-4a8e-9d1e-3f2a1c7d8e90";
}

//! `/api/upload`: admins add videos. Streamed end to end, type-checked by content.

pub mod post;
pub mod sniff;

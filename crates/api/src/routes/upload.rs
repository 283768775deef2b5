//! `/api/upload`: admins add videos. Streamed end to end, type-checked by content.

#[cfg(any(test, feature = "fuzzing"))]
pub mod paced;
pub mod post;
pub mod sniff;

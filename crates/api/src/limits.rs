//! The limits the router applies to every request but the upload, in one place below both the
//! router (which enforces them) and the error module (whose 413 body quotes the size).

use std::time::Duration;

/// Largest JSON body the API accepts (uploads get their own limit).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// How long a request may take before it is abandoned with a 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

//! proptest strategies shared by the property tests of the hand-written protobuf (`spans`,
//! `logs`).

use proptest::prelude::*;

/// Any text, with the shapes the redaction rules look for: `key=value` secrets, auth schemes,
/// signed URLs, the empty string, and long values (nested lengths past one byte).
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z ]{0,6}(password|token|secret)[=:] ?[a-zA-Z0-9.]{0,10}[ ,;]?[a-z]{0,5}",
        "(Bearer|Basic) [A-Za-z0-9.=]{0,12}",
        "https://s3/x\\?X-Amz-Signature=[a-f0-9]{1,16}&a=[0-9]",
        Just(String::new()),
        "y{120,300}",
    ]
}

/// An attribute key: secrets among them (replaced whole unless the value is a bool, or a
/// number under a namespace that only mentions a secret), and ordinary ones.
pub(crate) fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            "password",
            "token",
            "authorization",
            "cookie",
            "hasCookie",
            "crm.token.expires_in_s",
            "user.id",
            "http.route",
            "url.full",
            "error",
            "a",
        ][..],
    )
}

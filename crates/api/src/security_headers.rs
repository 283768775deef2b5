//! The headers that limit what a browser lets our responses do, on every response:
//!
//! - `Content-Security-Policy` on every HTML document: scripts, styles, images and requests
//!   from this origin only, no inline code (the pages' scripts and styles are files under
//!   `/assets/`), no plugins, no `<base>`, and no framing by any site (`frame-ancestors
//!   'none'`, which is what stops click-jacking). Media may also come from the S3 store when
//!   the player is redirected to presigned URLs there. Other responses are no documents, so
//!   they carry no policy.
//! - `X-Content-Type-Options: nosniff`: a response is only ever what its `Content-Type` says
//!   (a JSON body or a video is never run as a script or rendered as HTML).
//! - `Referrer-Policy: same-origin`: page URLs name lessons and users (the trace viewer's
//!   filters); a link or a media request to another origin does not get them.
//!
//! Each is set only if the handler has not set its own.

use axum::http::{HeaderValue, Response, header};
use tower::layer::util::Stack;
use tower_http::set_header::{MakeHeaderValue, SetResponseHeaderLayer};
use vidscope_core::config::{ApiSettings, S3StreamMode};
use vidscope_core::storage::ObjectStore;

/// The three headers, as one layer for `Router::layer`.
pub type SecurityHeaders = Stack<
    SetResponseHeaderLayer<PagePolicy>,
    Stack<SetResponseHeaderLayer<HeaderValue>, SetResponseHeaderLayer<HeaderValue>>,
>;

/// The layer for a router over `store` with `settings`.
pub fn layer(settings: &ApiSettings, store: &ObjectStore) -> SecurityHeaders {
    Stack::new(
        SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            PagePolicy::new(settings, store),
        ),
        Stack::new(
            SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ),
    )
}

/// The `Content-Security-Policy` of HTML responses.
#[derive(Clone)]
pub struct PagePolicy(HeaderValue);

impl PagePolicy {
    fn new(settings: &ApiSettings, store: &ObjectStore) -> Self {
        let mut media = String::from("'self'");
        if settings.s3_stream == S3StreamMode::Redirect {
            for origin in presigned_origins(store) {
                media.push(' ');
                media.push_str(&origin);
            }
        }
        let policy = format!(
            "default-src 'self'; media-src {media}; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
        // Every part is ASCII from this file or an origin filtered to host characters.
        Self(HeaderValue::from_str(&policy).unwrap_or_else(|_| {
            HeaderValue::from_static(
                "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                 frame-ancestors 'none'",
            )
        }))
    }

    /// The policy's text, for tests and the docs.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl<B> MakeHeaderValue<Response<B>> for PagePolicy {
    fn make_header_value(&mut self, response: &Response<B>) -> Option<HeaderValue> {
        let html = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        html.then(|| self.0.clone())
    }
}

/// Where presigned GET URLs of `store` point: the endpoint itself (path-style URLs) and the
/// bucket's host under it (virtual-hosted style; the SDK picks one by the bucket's name and
/// the endpoint, so both are allowed). `S3_ENDPOINT` unset means AWS in the store's region.
fn presigned_origins(store: &ObjectStore) -> Vec<String> {
    let ObjectStore::S3(s3) = store else {
        return Vec::new();
    };
    let (scheme, host) = match s3.endpoint() {
        Some(endpoint) => match endpoint.split_once("://") {
            Some((scheme, rest)) => (
                scheme,
                rest.split('/').next().unwrap_or_default().to_owned(),
            ),
            None => return Vec::new(),
        },
        None => ("https", format!("s3.{}.amazonaws.com", s3.region())),
    };
    let host_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    };
    [host.clone(), format!("{}.{host}", s3.bucket())]
        .into_iter()
        .filter(|h| host_chars(scheme) && host_chars(h))
        .map(|h| format!("{scheme}://{h}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vidscope_core::storage::{ObjectKey, StoreKind, StoreSettings};

    use super::*;

    fn s3(endpoint: Option<&str>, force_path_style: bool) -> ObjectStore {
        ObjectStore::new(&StoreSettings {
            kind: StoreKind::S3 {
                endpoint: endpoint.map(str::to_owned),
                region: "eu-west-3".into(),
                bucket: "lessons".into(),
                access_key_id: "k".into(),
                secret_access_key: "s".into(),
                force_path_style,
                presign_ttl: Duration::from_secs(60),
            },
        })
        .unwrap()
    }

    /// The origin of a presigned URL the store really makes (the SDK decides, no I/O) is one
    /// the policy allows for media, whatever the endpoint and URL style.
    #[tokio::test]
    async fn presigned_urls_are_allowed_media() {
        let settings = ApiSettings::default();
        assert_eq!(settings.s3_stream, S3StreamMode::Redirect);
        let key = ObjectKey::parse("videos/x.mp4").unwrap();
        for (endpoint, path_style) in [
            (Some("http://127.0.0.1:9000"), true),
            (Some("http://127.0.0.1:9000"), false),
            (Some("https://minio.example:9443/"), true),
            (Some("https://minio.example:9443"), false),
            (None, true),
            (None, false),
        ] {
            let store = s3(endpoint, path_style);
            let url = store
                .presign_get(&key, Duration::from_secs(60))
                .await
                .unwrap()
                .unwrap();
            let uri: axum::http::Uri = url.parse().unwrap();
            let origin = format!(
                "{}://{}",
                uri.scheme_str().unwrap(),
                uri.authority().unwrap()
            );
            let policy = PagePolicy::new(&settings, &store);
            let media = policy
                .as_str()
                .split(';')
                .find_map(|d| d.trim().strip_prefix("media-src "))
                .unwrap();
            assert!(
                media.split(' ').any(|s| s == origin),
                "{endpoint:?} path style {path_style}: {origin} not in {media:?}"
            );
        }
    }

    /// In proxy mode, or with the local store, media comes from this origin only.
    #[test]
    fn media_is_this_origin_only_unless_redirected_to_s3() {
        let proxy = ApiSettings {
            s3_stream: S3StreamMode::Proxy,
            ..ApiSettings::default()
        };
        let local = ObjectStore::new(&StoreSettings {
            kind: StoreKind::Local {
                root: "/nonexistent".into(),
            },
        })
        .unwrap();
        for (settings, store) in [(&proxy, s3(None, false)), (&ApiSettings::default(), local)] {
            let policy = PagePolicy::new(settings, &store);
            assert!(
                policy.as_str().contains("media-src 'self';"),
                "{}",
                policy.as_str()
            );
        }
    }
}

//! Who the client is, behind balancers: the TCP peer, unless the peer is a trusted proxy
//! (`VIDSCOPE_TRUSTED_PROXIES`), in which case `X-Forwarded-For` is read from the right, over
//! trusted hops, to the first address that is not one. Entries left of that were written by
//! the client itself and prove nothing. The login throttle keys on this address and the server
//! span reports it as `client.address`.
//!
//! Hand-written rather than a crate: the rule is these few lines, and the crates that do it
//! (e.g. `axum-client-ip`) bring their own extractor conventions and more header formats than
//! a balancer in front of vidscope sends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The resolved client address, in the request's extensions for handlers and telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Middleware: resolves [`ClientIp`] once per request (when the server gave a peer address).
pub async fn resolve(
    State(trusted): State<Arc<[IpNet]>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let ip = client_ip(peer.ip(), req.headers(), &trusted);
        req.extensions_mut().insert(ClientIp(ip));
    }
    next.run(req).await
}

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Several headers count as one list, in order (RFC 7239's rule for repeated fields).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // An unreadable entry ends the walk: what lies left of it cannot be trusted either.
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // A direct client cannot claim another address.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers(&["198.51.100.1"]), &trusted),
            ip("203.0.113.9")
        );
        // Behind the balancer: the address the balancer saw.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["198.51.100.1"]), &trusted),
            ip("198.51.100.1")
        );
        // A forged left-most entry is skipped: the right-most untrusted hop wins, across
        // repeated headers too.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                &headers(&["1.2.3.4, 198.51.100.1", "10.0.0.7"]),
                &trusted
            ),
            ip("198.51.100.1")
        );
        // Garbage stops the walk at the last readable hop.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                &headers(&["198.51.100.1, nonsense"]),
                &trusted
            ),
            ip("10.0.0.2")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&[]), &trusted),
            ip("10.0.0.2")
        );
        // Nothing trusted (the default): always the peer.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["198.51.100.1"]), &[]),
            ip("10.0.0.2")
        );
    }
}

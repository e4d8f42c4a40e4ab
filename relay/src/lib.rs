//! The relay between nodes (issue 34, ADR 0013): one QUIC connection per pair of nodes
//! that share rooms, mutually authenticated by the certificate fingerprints the node
//! registry publishes and by proof of the cluster secret bound to the connection; media
//! as QUIC datagrams (one layer of one track per flow, [`flow`]), control as
//! length-prefixed JSON messages on one stream ([`control`]).
//!
//! - [`identity`]: a node's self-signed certificate and its fingerprint;
//! - [`pinned`]: TLS verifiers that accept exactly the fingerprints the registry names;
//! - [`link`]: the endpoint (listen, connect, accept) and one authenticated link.
//!
//! What the rooms do with a link (relayed tracks as local publishers, demand-driven
//! layers) is the media plane's, not this crate's.

#![forbid(unsafe_code)]

pub mod control;
pub mod flow;
pub mod identity;
pub mod link;
pub mod pinned;

pub use control::Control;
pub use identity::{Fingerprint, Identity};
pub use link::{Link, RelayEndpoint, RelayError};
pub use pinned::Peers;

/// The relay's cluster secret: derived from the first API key's secret, which every node
/// of a cluster shares (as the REST forwarding mark's key is, with another label).
pub fn cluster_secret(api_secret: &str) -> [u8; 32] {
    use aws_lc_rs::hmac;
    let derive = hmac::Key::new(hmac::HMAC_SHA256, api_secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(&derive, b"switchboard cluster relay v1").as_ref());
    out
}

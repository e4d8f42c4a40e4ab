//! TURN servers handed to clients, with short-lived credentials in the TURN REST API
//! scheme that coturn's `use-auth-secret` checks: the user name is
//! `<expiry unix seconds>:<identity>`, the password the base64 HMAC-SHA1 of the user name
//! under the secret shared with the TURN server. Clients get them in the `joined` message
//! (protocol) and in WHIP/WHEP `Link` headers (RFC 9725 §4.4).

use aws_lc_rs::hmac;
use base64::Engine;
use serde::Serialize;

/// TURN settings (`turn_urls`, `turn_secret`, `turn_ttl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:host:3478?transport=udp`, `turn:host:3478?transport=tcp`, `turns:host:443`.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret: String,
    /// Seconds a credential is valid.
    pub ttl: u64,
}

/// One ICE server as `RTCPeerConnection`'s `iceServers` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl TurnConfig {
    /// Credentials for `identity`, valid from `now` (unix seconds) for the TTL.
    pub fn ice_server(&self, identity: &str, now: u64) -> IceServer {
        // A ':' in the identity would end coturn's timestamp field early: keep it out.
        let who: String = identity
            .chars()
            .map(|c| if c == ':' { '_' } else { c })
            .collect();
        let username = format!("{}:{who}", now + self.ttl);
        IceServer {
            urls: self.urls.clone(),
            credential: password(&self.secret, &username),
            username,
        }
    }
}

/// The TURN REST API password of `username`: base64(HMAC-SHA1(secret, username)).
pub fn password(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref())
}

/// The `Link` header values announcing `server` (RFC 9725 §4.4, RFC 8288): one per URL.
pub fn link_headers(server: &IceServer) -> Vec<String> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    server
        .urls
        .iter()
        .map(|u| {
            format!(
                "<{u}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                quote(&server.username),
                quote(&server.credential)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TurnConfig {
        TurnConfig {
            urls: vec![
                "turn:turn.example:3478?transport=udp".into(),
                "turns:turn.example:443".into(),
            ],
            secret: "north".into(),
            ttl: 3_600,
        }
    }

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let s = cfg().ice_server("ann:1", 1_700_000_000);
        assert_eq!(s.username, "1700003600:ann_1");
        // HMAC-SHA1("north", "1700003600:ann_1"), base64: what coturn computes.
        assert_eq!(s.credential, password("north", "1700003600:ann_1"));
        assert_eq!(s.credential.len(), 28, "20 bytes in base64");
        assert_ne!(s.credential, password("south", "1700003600:ann_1"));
        // A known vector: HMAC-SHA1(key "key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            password("key", "The quick brown fox jumps over the lazy dog"),
            "3nybhbi3iqa8ino29wqQcBydtNk="
        );
    }

    #[test]
    fn link_headers_name_each_url() {
        let s = cfg().ice_server("a\"b", 0);
        let l = link_headers(&s);
        assert_eq!(l.len(), 2);
        assert!(l[0].starts_with("<turn:turn.example:3478?transport=udp>; rel=\"ice-server\"; username=\"3600:a\\\"b\""), "{}", l[0]);
        assert!(l[1].ends_with("credential-type=\"password\""));
    }
}

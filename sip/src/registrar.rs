//! Registrations (RFC 3261 §10): where each SIP user can be reached, until its
//! registration expires. One binding per user (the latest REGISTER wins). Outbound calls
//! to a registered user go to the address its REGISTER came from (the phone may be behind
//! NAT), with its Contact as the request URI.
//!
//! Sans-IO: the clock (Unix seconds) comes from the caller.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Registration lifetimes granted, in seconds: asked-for values are clamped to this range
/// (RFC 3261 §10.3: a registrar may shorten, and may refuse too-short ones; we lengthen).
pub const MIN_EXPIRES: u32 = 60;
pub const MAX_EXPIRES: u32 = 3_600;
/// A phone that names no lifetime gets this one.
pub const DEFAULT_EXPIRES: u32 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The phone's Contact URI.
    pub contact: String,
    /// Where its REGISTER came from.
    pub source: SocketAddr,
    pub expires_at: u64,
}

#[derive(Debug, Default)]
pub struct Registrar {
    bindings: HashMap<String, Binding>,
}

impl Registrar {
    /// Record (or with `expires == Some(0)`, remove) `user`'s binding. The lifetime
    /// granted, 0 for a removal.
    pub fn register(
        &mut self,
        user: &str,
        contact: String,
        source: SocketAddr,
        expires: Option<u32>,
        now: u64,
    ) -> u32 {
        let asked = expires.unwrap_or(DEFAULT_EXPIRES);
        if asked == 0 {
            self.bindings.remove(user);
            return 0;
        }
        let granted = asked.clamp(MIN_EXPIRES, MAX_EXPIRES);
        self.bindings.insert(
            user.to_string(),
            Binding {
                contact,
                source,
                expires_at: now + u64::from(granted),
            },
        );
        granted
    }

    /// `user`'s binding, if it has not expired.
    pub fn lookup(&self, user: &str, now: u64) -> Option<&Binding> {
        self.bindings.get(user).filter(|b| b.expires_at > now)
    }

    /// Whether a live binding's REGISTER came from `ip`.
    pub fn has_source(&self, ip: std::net::IpAddr, now: u64) -> bool {
        self.bindings
            .values()
            .any(|b| b.expires_at > now && b.source.ip() == ip)
    }

    /// Forget expired bindings; how many are left.
    pub fn sweep(&mut self, now: u64) -> usize {
        self.bindings.retain(|_, b| b.expires_at > now);
        self.bindings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        "192.0.2.5:40000".parse().unwrap()
    }

    #[test]
    fn a_binding_lives_its_granted_lifetime_and_refreshes_extend_it() {
        let mut r = Registrar::default();
        assert_eq!(
            r.register(
                "alice",
                "sip:alice@10.0.0.2:5060".into(),
                src(),
                Some(120),
                1_000
            ),
            120
        );
        assert_eq!(r.lookup("alice", 1_119).map(|b| b.source), Some(src()));
        assert_eq!(r.lookup("alice", 1_120), None);
        // A refresh before the end extends it.
        r.register(
            "alice",
            "sip:alice@10.0.0.2:5060".into(),
            src(),
            Some(120),
            1_100,
        );
        assert!(r.lookup("alice", 1_200).is_some());
        assert_eq!(r.sweep(1_220), 0);
    }

    #[test]
    fn lifetimes_are_clamped_and_zero_unregisters() {
        let mut r = Registrar::default();
        assert_eq!(
            r.register("a", "sip:a@h".into(), src(), Some(5), 0),
            MIN_EXPIRES
        );
        assert_eq!(
            r.register("b", "sip:b@h".into(), src(), Some(86_400), 0),
            MAX_EXPIRES
        );
        assert_eq!(
            r.register("c", "sip:c@h".into(), src(), None, 0),
            DEFAULT_EXPIRES
        );
        assert_eq!(r.register("a", String::new(), src(), Some(0), 1), 0);
        assert_eq!(r.lookup("a", 1), None);
        assert_eq!(r.sweep(1), 2);
    }

    #[test]
    fn the_latest_register_wins() {
        let mut r = Registrar::default();
        let other: SocketAddr = "198.51.100.9:5062".parse().unwrap();
        r.register("alice", "sip:alice@old".into(), src(), Some(300), 0);
        r.register("alice", "sip:alice@new".into(), other, Some(300), 10);
        let b = r.lookup("alice", 11).unwrap();
        assert_eq!((b.contact.as_str(), b.source), ("sip:alice@new", other));
    }
}

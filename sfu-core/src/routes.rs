//! Which peer connection a datagram belongs to: by the address it came from once that
//! address is bound to a connection, else (a STUN connectivity check from a new address)
//! by the local ufrag it names, within a per-source-IP budget. An address is bound when
//! its connection accepts a datagram from it; a connection keeps its last
//! [`MAX_ADDRS_PER_PC`] addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::api::Transport;
use crate::demux::{stun_local_ufrag, DatagramKind};
use crate::timers::PcKey;

/// STUN requests per second each source IP may send from addresses not yet bound to a
/// peer (connectivity checks of new candidates). They cost a MESSAGE-INTEGRITY check
/// each; beyond this budget they are dropped and counted.
pub const NEW_SOURCE_STUN_PER_SEC: u32 = 50;
/// Addresses remembered per connection (a client's candidates and NAT rebindings);
/// the oldest is forgotten beyond this.
pub(crate) const MAX_ADDRS_PER_PC: usize = 8;
/// Source IPs whose STUN budget is tracked at once (the map is cleared every second).
const MAX_TRACKED_SOURCES: usize = 4096;

/// Where a datagram came from: its transport and address.
pub(crate) type Remote = (Transport, SocketAddr);

/// Why a datagram belongs to no connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unrouted {
    /// From an address no connection uses, and not a STUN check naming one of ours.
    UnknownSource,
    /// A STUN check from a new address, over its source IP's budget.
    RateLimited,
}

pub(crate) struct Routes {
    by_addr: HashMap<Remote, PcKey>,
    by_ufrag: HashMap<String, PcKey>,
    /// STUN from unbound addresses this second, per source IP.
    new_source_stun: HashMap<IpAddr, u32>,
    window: Instant,
}

impl Routes {
    pub fn new(now: Instant) -> Self {
        Self {
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            new_source_stun: HashMap::new(),
            window: now,
        }
    }

    /// The connection a datagram of `kind` from `remote` belongs to.
    pub fn route(
        &mut self,
        now: Instant,
        remote: Remote,
        kind: DatagramKind,
        contents: &[u8],
    ) -> Result<PcKey, Unrouted> {
        if let Some(w) = self.by_addr.get(&remote) {
            return Ok(*w);
        }
        let found = (kind == DatagramKind::Stun)
            .then(|| stun_local_ufrag(contents))
            .flatten()
            .and_then(|u| self.by_ufrag.get(u).copied())
            .ok_or(Unrouted::UnknownSource)?;
        if self.new_source_allowed(now, remote.1.ip()) {
            Ok(found)
        } else {
            Err(Unrouted::RateLimited)
        }
    }

    /// Spend one unit of `ip`'s budget for STUN from unbound addresses.
    fn new_source_allowed(&mut self, now: Instant, ip: IpAddr) -> bool {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(1)
            || self.new_source_stun.len() >= MAX_TRACKED_SOURCES
        {
            self.new_source_stun.clear();
            self.window = now;
        }
        let n = self.new_source_stun.entry(ip).or_insert(0);
        *n += 1;
        *n <= NEW_SOURCE_STUN_PER_SEC
    }

    /// `who`'s connection accepted a datagram from `remote`: bind the address to it
    /// (`addrs`: the connection's addresses, the oldest forgotten beyond
    /// [`MAX_ADDRS_PER_PC`]).
    pub fn bind_addr(&mut self, addrs: &mut Vec<Remote>, remote: Remote, who: PcKey) {
        if addrs.contains(&remote) {
            return;
        }
        if addrs.len() >= MAX_ADDRS_PER_PC {
            let old = addrs.remove(0);
            self.by_addr.remove(&old);
        }
        addrs.push(remote);
        self.by_addr.insert(remote, who);
    }

    /// STUN naming `ufrag` reaches `who` (a new connection, or one whose local ufrag
    /// changed: then `old` is unbound).
    pub fn bind_ufrag(&mut self, old: Option<&str>, ufrag: String, who: PcKey) {
        if let Some(o) = old {
            self.by_ufrag.remove(o);
        }
        self.by_ufrag.insert(ufrag, who);
    }

    /// The connection `ufrag` routes to.
    #[cfg(any(test, feature = "testkit"))]
    pub fn ufrag_owner(&self, ufrag: &str) -> Option<PcKey> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// Every bound address and ufrag, for the shard's invariants.
    #[cfg(any(test, feature = "testkit"))]
    pub fn bindings(
        &self,
    ) -> (
        impl Iterator<Item = (&Remote, &PcKey)>,
        impl Iterator<Item = (&String, &PcKey)>,
    ) {
        (self.by_addr.iter(), self.by_ufrag.iter())
    }

    /// A connection that is gone: nothing routes to it any more.
    pub fn forget(&mut self, ufrag: &str, addrs: &[Remote]) {
        self.by_ufrag.remove(ufrag);
        for a in addrs {
            self.by_addr.remove(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ParticipantId, PcKind};

    /// A STUN binding request naming `ufrag` (USERNAME "ufrag:remote"), enough for
    /// `stun_local_ufrag`.
    fn stun(ufrag: &str) -> Vec<u8> {
        let user = format!("{ufrag}:peer");
        let padded = user.len().div_ceil(4) * 4;
        let mut b = vec![0x00, 0x01];
        b.extend_from_slice(&((4 + padded) as u16).to_be_bytes());
        b.extend_from_slice(&0x2112_A442u32.to_be_bytes());
        b.extend_from_slice(&[7; 12]);
        b.extend_from_slice(&0x0006u16.to_be_bytes());
        b.extend_from_slice(&(user.len() as u16).to_be_bytes());
        b.extend_from_slice(user.as_bytes());
        b.resize(20 + 4 + padded, 0);
        b
    }

    #[test]
    fn datagrams_route_by_address_then_by_ufrag_within_a_budget() {
        let t0 = crate::test_clock::origin();
        let mut r = Routes::new(t0);
        let who = (ParticipantId(1), PcKind::Subscriber);
        r.bind_ufrag(None, "abcd".into(), who);
        let from = |port| (Transport::Udp, SocketAddr::from(([10, 0, 0, 1], port)));
        let check = stun("abcd");
        assert_eq!(crate::demux::classify(&check), DatagramKind::Stun);
        assert_eq!(r.route(t0, from(1), DatagramKind::Stun, &check), Ok(who));
        assert_eq!(
            r.route(t0, from(1), DatagramKind::Rtp, &[0x80; 12]),
            Err(Unrouted::UnknownSource),
            "not bound yet: only STUN finds its connection"
        );
        let mut addrs = Vec::new();
        r.bind_addr(&mut addrs, from(1), who);
        assert_eq!(
            r.route(t0, from(1), DatagramKind::Rtp, &[0x80; 12]),
            Ok(who)
        );
        assert_eq!(
            r.route(t0, from(2), DatagramKind::Stun, &stun("zzzz")),
            Err(Unrouted::UnknownSource)
        );
        // One source IP's checks from new addresses: 50 a second (two used above).
        let routed = (3..100)
            .filter(|p| r.route(t0, from(*p), DatagramKind::Stun, &check).is_ok())
            .count();
        assert_eq!(routed, NEW_SOURCE_STUN_PER_SEC as usize - 1);
        assert_eq!(
            r.route(
                t0 + Duration::from_secs(1),
                from(200),
                DatagramKind::Stun,
                &check
            ),
            Ok(who),
            "a new second, a new budget"
        );
        // A connection keeps its last eight addresses.
        for p in 2..=9 {
            r.bind_addr(&mut addrs, from(p), who);
        }
        assert_eq!(addrs.len(), MAX_ADDRS_PER_PC);
        assert_eq!(
            r.route(t0, from(1), DatagramKind::Rtp, &[0x80; 12]),
            Err(Unrouted::UnknownSource),
            "the oldest was forgotten"
        );
        // A changed ufrag and a forgotten connection.
        r.bind_ufrag(Some("abcd"), "efgh".into(), who);
        assert_eq!(
            (r.ufrag_owner("abcd"), r.ufrag_owner("efgh")),
            (None, Some(who))
        );
        r.forget("efgh", &addrs);
        assert_eq!(
            r.route(t0, from(9), DatagramKind::Rtp, &[0x80; 12]),
            Err(Unrouted::UnknownSource)
        );
    }
}

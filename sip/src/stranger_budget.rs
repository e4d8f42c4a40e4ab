//! How much a stranger may send the SIP port. A datagram from an address the gateway does
//! not know (no trunk's network, no registered phone) is charged to a budget per address
//! and to one for all strangers together, before it is parsed; past either it is dropped
//! and counted (`switchboard_sip_requests_dropped_total{reason="flood"}`).
//!
//! Without this an INVITE flood from strangers, each a new transaction that the gateway
//! drops, outruns the gateway's loop: the backlog waits in rsipstack's unbounded channels
//! and the server's memory grows with it (measured: +211 MB for 60,000 INVITEs). A
//! stranger's honest traffic (a SIP user's INVITE and its challenge, a phone's REGISTER)
//! is a few messages a second, far inside the budget; trunks and registered phones are
//! never charged.

use std::net::IpAddr;
use std::time::Instant;

use parking_lot::Mutex;
use signaling::token_bucket::{KeyedBuckets, Rate, TokenBucket};

/// Datagrams a second (and burst) from one unknown address.
pub const PER_ADDRESS: Rate = Rate::new(20.0, 40.0);
/// Datagrams a second (and burst) from all unknown addresses together.
pub const IN_ALL: Rate = Rate::new(1000.0, 2000.0);
/// Unknown addresses remembered at once (sources are spoofable: this bounds the memory).
pub const ADDRESSES: usize = 4096;

pub struct StrangerBudget {
    state: Mutex<(KeyedBuckets<IpAddr>, TokenBucket)>,
}

impl StrangerBudget {
    pub fn new(now: Instant) -> Self {
        StrangerBudget {
            state: Mutex::new((
                KeyedBuckets::new(PER_ADDRESS, ADDRESSES),
                TokenBucket::full(IN_ALL, now),
            )),
        }
    }

    /// Charge one datagram from `ip`; false: drop it.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut st = self.state.lock();
        let (per_address, in_all) = &mut *st;
        per_address.take(ip, now) && in_all.take(1.0, IN_ALL, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000u32 + n))
    }

    #[test]
    fn one_address_gets_its_burst_then_its_rate_and_others_are_untouched() {
        let t0 = Instant::now();
        let b = StrangerBudget::new(t0);
        let flood = (0..1000).filter(|_| b.allow(ip(1), t0)).count();
        assert_eq!(flood, PER_ADDRESS.burst as usize);
        assert!(b.allow(ip(2), t0), "another address is not held back");
        let later = t0 + Duration::from_secs(1);
        let more = (0..1000).filter(|_| b.allow(ip(1), later)).count();
        assert_eq!(more, PER_ADDRESS.per_second as usize);
    }

    #[test]
    fn many_addresses_share_one_budget() {
        let t0 = Instant::now();
        let b = StrangerBudget::new(t0);
        let passed = (0..100_000).filter(|n| b.allow(ip(*n), t0)).count();
        assert!(passed <= IN_ALL.burst as usize, "{passed}");
    }
}

//! Wrong PINs counted per caller address across calls: a PIN's few tries per call would
//! otherwise allow a hundred parallel calls a hundred times as many guesses. After
//! [`MAX_FAILURES`] wrong PINs from one address within [`WINDOW`] seconds, PIN calls from
//! it are refused for [`LOCKOUT`] seconds (403 before answering; an entry under way is
//! hung up). Sans-IO: the caller gives the clock (Unix seconds).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Wrong PINs from one address that lock it out.
pub const MAX_FAILURES: usize = 10;
/// How long a wrong PIN is remembered, in seconds.
pub const WINDOW: u64 = 600;
/// How long an address stays locked out, in seconds.
pub const LOCKOUT: u64 = 900;
/// Addresses remembered before forgotten ones are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
struct Record {
    failures: VecDeque<u64>,
    locked_until: u64,
}

#[derive(Default)]
pub struct PinLockout {
    by_ip: HashMap<IpAddr, Record>,
}

impl PinLockout {
    /// Whether PIN calls from `ip` are refused now.
    pub fn is_locked(&self, ip: IpAddr, now: u64) -> bool {
        self.by_ip.get(&ip).is_some_and(|r| r.locked_until > now)
    }

    /// A wrong PIN from `ip`: whether the address is locked out now.
    pub fn failed(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.by_ip.len() >= SWEEP_AT {
            self.by_ip.retain(|_, r| {
                r.locked_until > now || r.failures.back().is_some_and(|&t| t + WINDOW > now)
            });
        }
        let r = self.by_ip.entry(ip).or_default();
        while r.failures.front().is_some_and(|&t| t + WINDOW <= now) {
            r.failures.pop_front();
        }
        r.failures.push_back(now);
        if r.failures.len() >= MAX_FAILURES {
            r.locked_until = now + LOCKOUT;
            r.failures.clear();
            metrics::counter!("switchboard_sip_pin_lockouts_total").increment(1);
        }
        r.locked_until > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_wrong_pins_from_one_address_lock_it_for_a_while_and_no_other() {
        let (mallory, alice): (IpAddr, IpAddr) =
            ("192.0.2.66".parse().unwrap(), "192.0.2.7".parse().unwrap());
        let mut l = PinLockout::default();
        for i in 0..MAX_FAILURES as u64 - 1 {
            assert!(!l.failed(mallory, 1_000 + i));
        }
        assert!(!l.is_locked(mallory, 1_010));
        assert!(l.failed(mallory, 1_010));
        assert!(l.is_locked(mallory, 1_010 + LOCKOUT - 1));
        assert!(!l.is_locked(mallory, 1_010 + LOCKOUT));
        assert!(!l.is_locked(alice, 1_010));
    }

    #[test]
    fn old_failures_are_forgotten() {
        let ip: IpAddr = "192.0.2.66".parse().unwrap();
        let mut l = PinLockout::default();
        for i in 0..MAX_FAILURES as u64 - 1 {
            l.failed(ip, i);
        }
        assert!(!l.failed(ip, WINDOW + 5), "the first ones left the window");
    }
}

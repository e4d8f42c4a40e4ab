//! Connections counted in all and per client address, each held as a [`Slot`] that is
//! given back when dropped (however the connection ends). The listeners that face the
//! network — HTTP (`http_listener.rs`) and ICE-TCP's first frame (`tcp_accept.rs`) —
//! take a slot for every connection they accept and close the ones over a limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Which limit a connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Total,
    PerIp,
}

impl Over {
    pub fn label(self) -> &'static str {
        match self {
            Over::Total => "total",
            Over::PerIp => "per_ip",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Addresses the per-address limit does not apply to (a cluster's nodes: their relays
/// carry many clients' sessions), kept up to date by their owner.
pub type Exempt = Arc<parking_lot::RwLock<std::collections::HashSet<IpAddr>>>;

/// The counts and their limits.
#[derive(Clone)]
pub struct ConnSlots {
    max_total: usize,
    /// 0: no limit per address.
    max_per_ip: usize,
    exempt: Exempt,
    counts: Arc<Mutex<Counts>>,
}

impl ConnSlots {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnSlots {
            max_total,
            max_per_ip,
            exempt: Exempt::default(),
            counts: Arc::default(),
        }
    }

    /// The same limits, the per-address one not applying to `exempt`.
    pub fn with_exempt(self, exempt: Exempt) -> Self {
        ConnSlots { exempt, ..self }
    }

    /// A slot for a connection from `ip`, or the limit it is over.
    pub fn take(&self, ip: IpAddr) -> Result<Slot, Over> {
        let mut c = self.counts.lock();
        if c.total >= self.max_total {
            return Err(Over::Total);
        }
        let n = c.per_ip.entry(ip).or_default();
        if self.max_per_ip > 0 && *n >= self.max_per_ip && !self.exempt.read().contains(&ip) {
            if *n == 0 {
                c.per_ip.remove(&ip);
            }
            return Err(Over::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Slots held now (in all, and the addresses holding any).
    #[cfg(test)]
    fn in_use(&self) -> (usize, usize) {
        let c = self.counts.lock();
        (c.total, c.per_ip.len())
    }
}

/// One connection's place; given back when dropped.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock();
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_address_and_in_all_and_given_back() {
        let slots = ConnSlots::new(5, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let held: Vec<Slot> = (0..3).map(|_| slots.take(a).unwrap()).collect();
        assert_eq!(
            slots.take(a).err(),
            Some(Over::PerIp),
            "one address's share is full"
        );
        let other: Vec<Slot> = (0..2).map(|_| slots.take(b).unwrap()).collect();
        assert_eq!(slots.take(b).err(), Some(Over::Total));
        drop(held);
        drop(other);
        assert_eq!(slots.in_use(), (0, 0));
        assert!(slots.take(a).is_ok());
        let exempt = Exempt::default();
        let peers = ConnSlots::new(100, 1).with_exempt(exempt.clone());
        let node: IpAddr = "10.0.0.2".parse().unwrap();
        let _first = peers.take(node).unwrap();
        assert!(peers.take(node).is_err(), "limited until it is a peer");
        exempt.write().insert(node);
        let _second = peers.take(node).unwrap();
        let unlimited = ConnSlots::new(100, 0);
        let many: Vec<Slot> = (0..50).map(|_| unlimited.take(a).unwrap()).collect();
        assert_eq!(unlimited.in_use(), (50, 1), "{}", many.len());
    }
}

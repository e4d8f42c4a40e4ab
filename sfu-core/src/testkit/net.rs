//! A simulated network: per-host uplink and downlink with delay, random loss and a
//! bandwidth cap (a token-bucket-like serializer with a bounded queue, tail drop).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Conditions of one direction of one host's link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    pub delay: Duration,
    /// Probability in [0, 1] that a packet is lost.
    pub loss: f64,
    /// Bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// How long a packet may wait for the link before it is dropped.
    pub max_queue: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            loss: 0.0,
            rate_bps: None,
            max_queue: Duration::from_millis(300),
        }
    }
}

#[derive(Debug)]
struct Link {
    cfg: LinkConfig,
    busy_until: Option<Instant>,
}

impl Link {
    /// When the packet arrives, or None if it is lost.
    fn pass(&mut self, now: Instant, len: usize, rng: &mut ChaCha8Rng) -> Option<Instant> {
        if self.cfg.loss > 0.0 && rng.gen_bool(self.cfg.loss.min(1.0)) {
            return None;
        }
        let depart = match self.cfg.rate_bps {
            None => now,
            Some(rate) => {
                let start = self.busy_until.map_or(now, |b| b.max(now));
                if start.saturating_duration_since(now) > self.cfg.max_queue {
                    return None;
                }
                let tx = Duration::from_nanos((len as u64 * 8 * 1_000_000_000) / rate.max(1));
                self.busy_until = Some(start + tx);
                start + tx
            }
        };
        Some(depart + self.cfg.delay)
    }
}

/// A datagram in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// The network between the shard and the simulated clients.
pub struct SimNet {
    rng: ChaCha8Rng,
    up: HashMap<IpAddr, Link>,
    down: HashMap<IpAddr, Link>,
    server: IpAddr,
    queue: BinaryHeap<Reverse<(Instant, u64, PacketKey)>>,
    packets: HashMap<u64, Packet>,
    counter: u64,
    pub sent: u64,
    pub lost: u64,
    /// Bytes the server sent to each host (its downlink), lost ones included.
    pub down_bytes: HashMap<IpAddr, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PacketKey(u64);

impl SimNet {
    pub fn new(seed: u64, server: IpAddr) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            up: HashMap::new(),
            down: HashMap::new(),
            server,
            queue: BinaryHeap::new(),
            packets: HashMap::new(),
            counter: 0,
            sent: 0,
            lost: 0,
            down_bytes: HashMap::new(),
        }
    }

    /// Set the conditions of a host's uplink (host → server) and downlink.
    pub fn set_link(&mut self, host: IpAddr, up: LinkConfig, down: LinkConfig) {
        self.up.insert(
            host,
            Link {
                cfg: up,
                busy_until: None,
            },
        );
        self.down.insert(
            host,
            Link {
                cfg: down,
                busy_until: None,
            },
        );
    }

    pub fn send(&mut self, now: Instant, p: Packet) {
        self.sent += 1;
        let link = if p.source.ip() == self.server {
            *self.down_bytes.entry(p.destination.ip()).or_default() += p.contents.len() as u64;
            self.down.entry(p.destination.ip())
        } else {
            self.up.entry(p.source.ip())
        }
        .or_insert(Link {
            cfg: LinkConfig::default(),
            busy_until: None,
        });
        match link.pass(now, p.contents.len(), &mut self.rng) {
            Some(at) => {
                self.counter += 1;
                self.packets.insert(self.counter, p);
                self.queue
                    .push(Reverse((at, self.counter, PacketKey(self.counter))));
            }
            None => self.lost += 1,
        }
    }

    /// The arrival time of the next packet.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Packet)> {
        let Reverse((t, _, _)) = self.queue.peek()?;
        if *t > now {
            return None;
        }
        let Reverse((t, _, key)) = self.queue.pop()?;
        self.packets.remove(&key.0).map(|p| (t, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(from: &str, to: &str, len: usize) -> Packet {
        Packet {
            source: from.parse().unwrap(),
            destination: to.parse().unwrap(),
            contents: vec![0; len],
        }
    }

    #[test]
    fn delay_rate_and_queue_limit() {
        let t0 = crate::test_clock::origin();
        let server: IpAddr = "127.0.0.1".parse().unwrap();
        let mut n = SimNet::new(1, server);
        let host: IpAddr = "127.0.1.1".parse().unwrap();
        let down = LinkConfig {
            delay: Duration::from_millis(20),
            loss: 0.0,
            rate_bps: Some(80_000), // 10 kB/s: a 1,000-byte packet takes 100 ms
            max_queue: Duration::from_millis(250),
        };
        n.set_link(host, LinkConfig::default(), down);
        for _ in 0..5 {
            n.send(t0, pkt("127.0.0.1:1", "127.0.1.1:2", 1_000));
        }
        // 100, 200, 300 ms serialization (+20 ms); the 4th waits 300 ms > 250 ms: dropped.
        let mut arrivals = vec![];
        while let Some((t, _)) = n.pop_due(t0 + Duration::from_secs(5)) {
            arrivals.push((t - t0).as_millis());
        }
        assert_eq!(arrivals, vec![120, 220, 320]);
        assert_eq!(n.lost, 2);
        // uplink unaffected: default 10 ms
        n.send(t0, pkt("127.0.1.1:2", "127.0.0.1:1", 1_000));
        assert_eq!(n.next_arrival(), Some(t0 + Duration::from_millis(10)));
    }

    #[test]
    fn loss_rate_is_close_to_configured() {
        let t0 = crate::test_clock::origin();
        let server: IpAddr = "127.0.0.1".parse().unwrap();
        let mut n = SimNet::new(9, server);
        let host: IpAddr = "127.0.1.1".parse().unwrap();
        n.set_link(
            host,
            LinkConfig {
                loss: 0.05,
                ..Default::default()
            },
            LinkConfig::default(),
        );
        for _ in 0..10_000 {
            n.send(t0, pkt("127.0.1.1:2", "127.0.0.1:1", 10));
        }
        assert!((400..600).contains(&n.lost), "lost {}", n.lost);
    }
}

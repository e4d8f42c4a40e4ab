//! The worker's socket layer: batched receive (recvmmsg, GRO) and batched send. A
//! flush's packets are cut into runs per destination: the runs of one packet — a fan-out
//! to many subscribers — leave in one `sendmmsg` (through `rustix`), the runs of several
//! packets to one destination each in one GSO send (through `quinn-udp`). Neither lets
//! unsafe socket code into this crate. (One `sendmmsg` for the GSO runs too would need a
//! `UDP_SEGMENT` control message per message: `rustix` has no such message, and `nix`'s
//! `sendmmsg` does not say how many messages went without reading uninitialised memory;
//! ADR 0010.)

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};

/// Datagrams (or GRO batches of datagrams) read per receive call (recvmmsg batch).
pub const RECV_BATCH: usize = 32;
/// A receive buffer without GRO: more than any datagram a peer sends (its MTU).
const PLAIN_BUF: usize = 2048;
/// A receive buffer with GRO: the kernel coalesces up to 64 segments into one buffer, at
/// most one IP datagram's worth (64 KiB), so this holds any GRO batch whole.
const GRO_BUF: usize = 1 << 16;
/// The most bytes one GSO send may carry: a UDP datagram's maximum payload (65,507 over
/// IPv4), rounded down for headroom. A run over it fails as a whole with EMSGSIZE.
pub const MAX_GSO_BYTES: usize = 65_000;
/// Messages per `sendmmsg` call (the kernel takes at most `UIO_MAXIOV`, 1,024).
const MMSG_BATCH: usize = 256;

/// One outgoing datagram waiting for the next flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// A run of packets sent in one syscall: `count` packets of `segment` bytes (the last may
/// be shorter) to one destination, starting at `start` in the sorted order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub count: usize,
    pub segment: usize,
}

/// Order a batch by destination (keeping each destination's packet order) into `order`
/// (indices into `batch`) and cut it into GSO runs in `runs`: consecutive packets to one
/// destination, all of the first one's size except a shorter last one, at most
/// `max_segments` and `max_bytes` per run (UDP GSO's rules). Both vectors are cleared
/// first and reused, so a steady state allocates nothing.
pub fn plan_runs(
    batch: &[Pending],
    max_segments: usize,
    max_bytes: usize,
    order: &mut Vec<usize>,
    runs: &mut Vec<Run>,
) {
    order.clear();
    order.extend(0..batch.len());
    // Unstable sort on (destination, index) keeps each destination's order and, unlike
    // a stable sort, needs no scratch allocation.
    order.sort_unstable_by_key(|&i| (batch[i].destination, i));
    runs.clear();
    let mut i = 0;
    while i < order.len() {
        let first = &batch[order[i]];
        let seg = first.contents.len();
        let max = max_segments.max(1).min((max_bytes / seg.max(1)).max(1));
        let mut n = 1;
        while i + n < order.len() && n < max {
            let (prev, next) = (&batch[order[i + n - 1]], &batch[order[i + n]]);
            if next.destination != first.destination
                || prev.contents.len() != seg
                || next.contents.len() > seg
            {
                break;
            }
            n += 1;
        }
        runs.push(Run {
            start: i,
            count: n,
            segment: seg,
        });
        i += n;
    }
}

pub struct BatchSocket {
    pub socket: UdpSocket,
    state: UdpSocketState,
    /// `RECV_BATCH` receive buffers of `buf_len` bytes each, back to back.
    bufs: Vec<u8>,
    buf_len: usize,
    meta: Vec<RecvMeta>,
    scratch: Vec<u8>,
    order: Vec<usize>,
    runs: Vec<Run>,
    /// The datagrams sent alone (runs of one), for `sendmmsg`.
    singles: Vec<usize>,
    /// The socket is IPv6 (IPv4 destinations are sent to as mapped addresses).
    v6: bool,
    /// Datagrams lost to failed sends.
    pub send_errors: u64,
    /// Send syscalls made: one per GSO run, and one per `MMSG_BATCH` single datagrams
    /// (more when one fails midway).
    pub send_calls: u64,
    /// Receives that filled a whole buffer (possibly truncated: counted, and the
    /// datagrams in it passed on as they are).
    pub recv_truncated: u64,
}

impl BatchSocket {
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Bursts (a keyframe to many subscribers) must not overflow the kernel buffers.
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        // quinn-udp turns GRO on where the kernel has it: then one buffer may carry up
        // to `gro_segments` datagrams, and must be sized for them. (Zeroed memory is
        // mapped lazily: only the pages a burst fills become resident.)
        let v6 = socket.local_addr()?.is_ipv6();
        let buf_len = if state.gro_segments() > 1 {
            GRO_BUF
        } else {
            PLAIN_BUF
        };
        Ok(Self {
            socket,
            state,
            bufs: vec![0u8; RECV_BATCH * buf_len],
            buf_len,
            meta: vec![RecvMeta::default(); RECV_BATCH],
            scratch: Vec::with_capacity(MAX_GSO_BYTES),
            order: Vec::with_capacity(1024),
            runs: Vec::with_capacity(1024),
            singles: Vec::with_capacity(1024),
            v6,
            send_errors: 0,
            send_calls: 0,
            recv_truncated: 0,
        })
    }

    /// Read what is queued (one recvmmsg) and hand every datagram to `f`. Returns the
    /// number of datagrams, 0 when nothing was waiting.
    pub fn recv_batch(&mut self, mut f: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        let buf_len = self.buf_len;
        let mut chunks = self.bufs.chunks_mut(buf_len);
        let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().expect("RECV_BATCH buffers")));
        let n = match self
            .state
            .recv(UdpSockRef::from(&self.socket), &mut slices, &mut self.meta)
        {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for (m, buf) in self.meta.iter().zip(self.bufs.chunks(buf_len)).take(n) {
            // With GRO one buffer may hold several datagrams of `stride` bytes.
            if m.len == 0 {
                f(m.addr, &[]); // an empty datagram is still a datagram (counted, dropped)
                count += 1;
                continue;
            }
            if m.len >= buf_len {
                self.recv_truncated += 1;
            }
            let stride = m.stride.max(1);
            for chunk in buf[..m.len.min(buf_len)].chunks(stride) {
                f(m.addr, chunk);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Send a batch: the runs of one packet together in `sendmmsg` calls (a fan-out to
    /// many subscribers is one syscall, not one per destination), each run of several
    /// packets to one destination in one GSO send. A datagram whose send fails is counted
    /// and dropped; the rest still go.
    pub fn send_batch(&mut self, batch: &mut Vec<Pending>) {
        let max = self.state.max_gso_segments();
        plan_runs(batch, max, MAX_GSO_BYTES, &mut self.order, &mut self.runs);
        self.singles.clear();
        for run in &self.runs {
            let items = &self.order[run.start..run.start + run.count];
            if run.count == 1 {
                self.singles.push(items[0]);
                continue;
            }
            self.scratch.clear();
            for &i in items {
                self.scratch.extend_from_slice(&batch[i].contents);
            }
            let t = Transmit {
                destination: batch[items[0]].destination,
                ecn: None,
                contents: &self.scratch,
                segment_size: Some(run.segment),
                src_ip: None,
            };
            self.send_calls += 1;
            if let Err(e) = self.state.try_send(UdpSockRef::from(&self.socket), &t) {
                tracing::debug!(error = %e, packets = run.count, "send failed");
                self.send_errors += run.count as u64;
            }
        }
        for chunk in self.singles.chunks(MMSG_BATCH) {
            let sent = send_singles(&self.socket, self.v6, batch, chunk);
            self.send_calls += sent.calls;
            self.send_errors += sent.lost;
        }
        batch.clear();
    }
}

/// What the `sendmmsg` calls for one group of datagrams did.
struct Sent {
    calls: u64,
    /// Datagrams whose send failed.
    lost: u64,
}

/// Send `items` of `batch`, one datagram each, in as few `sendmmsg` calls as the kernel
/// allows: a datagram that fails is skipped (counted) and the next call resumes after it.
fn send_singles(socket: &UdpSocket, v6: bool, batch: &[Pending], items: &[usize]) -> Sent {
    let addrs: Vec<SocketAddrAny> = items
        .iter()
        .map(|&i| match batch[i].destination {
            SocketAddr::V4(a) if v6 => {
                SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()).into()
            }
            d => d.into(),
        })
        .collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = items
        .iter()
        .map(|&i| [IoSlice::new(&batch[i].contents)])
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = items
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(controls.iter_mut())
        .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
        .collect();
    let mut out = Sent { calls: 0, lost: 0 };
    let mut start = 0;
    while start < msgs.len() {
        out.calls += 1;
        match sendmmsg(socket, &mut msgs[start..], SendFlags::empty()) {
            Ok(k) if k > 0 => start += k,
            // The datagram at `start` failed (a `sendmmsg` that sent some returns their
            // count and leaves the error to the next call).
            other => {
                if let Err(e) = other {
                    tracing::debug!(error = %e, to = %batch[items[start]].destination, "send failed");
                }
                out.lost += 1;
                start += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(b: &[Pending], segs: usize, bytes: usize) -> Vec<Run> {
        let (mut order, mut runs) = (Vec::new(), Vec::new());
        plan_runs(b, segs, bytes, &mut order, &mut runs);
        runs
    }

    fn sorted(b: &[Pending]) -> Vec<usize> {
        let (mut order, mut runs) = (Vec::new(), Vec::new());
        plan_runs(b, 64, MAX_GSO_BYTES, &mut order, &mut runs);
        order
    }

    fn p(dest: u16, len: usize) -> Pending {
        Pending {
            destination: SocketAddr::from(([127, 0, 0, 1], dest)),
            contents: vec![0; len],
        }
    }

    #[test]
    fn runs_group_by_destination_and_size() {
        let b = vec![
            p(2, 100),
            p(1, 100),
            p(2, 100),
            p(1, 100),
            p(2, 60),
            p(1, 120),
            p(3, 10),
        ];
        let runs = plan(&b, 64, MAX_GSO_BYTES);
        let order = sorted(&b);
        let dests: Vec<u16> = order.iter().map(|&i| b[i].destination.port()).collect();
        assert_eq!(dests, vec![1, 1, 1, 2, 2, 2, 3]);
        assert_eq!(
            runs,
            vec![
                Run {
                    start: 0,
                    count: 2,
                    segment: 100
                }, // 120 is larger: a new run
                Run {
                    start: 2,
                    count: 1,
                    segment: 120
                },
                Run {
                    start: 3,
                    count: 3,
                    segment: 100
                }, // shorter last segment allowed
                Run {
                    start: 6,
                    count: 1,
                    segment: 10
                },
            ]
        );
        // a shorter packet ends a run even if more of the same size follow
        let b = vec![p(1, 100), p(1, 50), p(1, 100)];
        assert_eq!(plan(&b, 64, MAX_GSO_BYTES).len(), 2);
        // the segment limit
        let b: Vec<Pending> = (0..10).map(|_| p(1, 100)).collect();
        let counts = |r: Vec<Run>| r.iter().map(|r| r.count).collect::<Vec<_>>();
        assert_eq!(counts(plan(&b, 4, MAX_GSO_BYTES)), vec![4, 4, 2]);
        // the byte limit: 100 packets of 1,100 bytes are two runs under 65,000 bytes
        // (59 + 41), however many segments the kernel would take
        let b: Vec<Pending> = (0..100).map(|_| p(1, 1_100)).collect();
        let r = plan(&b, 128, MAX_GSO_BYTES);
        assert_eq!(counts(r.clone()), vec![59, 41]);
        assert!(r.iter().all(|r| r.count * r.segment <= MAX_GSO_BYTES));
        assert!(plan(&[], 4, MAX_GSO_BYTES).is_empty());
    }

    #[test]
    fn batches_cross_loopback() {
        let a = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let mut a = a.unwrap();
        let mut b = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let dest = b.socket.local_addr().unwrap();
        let mut batch: Vec<Pending> = (0..5u8)
            .map(|i| Pending {
                destination: dest,
                contents: vec![i; 300],
            })
            .collect();
        batch.push(Pending {
            destination: dest,
            contents: vec![9; 100],
        });
        a.send_batch(&mut batch);
        assert!(batch.is_empty());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut got = Vec::new();
        while b.recv_batch(|_, d| got.push(d.to_vec())).unwrap() > 0 {}
        assert_eq!(got.len(), 6, "GSO segments arrive as separate datagrams");
        assert_eq!(got[4], vec![4; 300]);
        assert_eq!(got[5], vec![9; 100]);
        assert_eq!(a.send_errors, 0);
    }

    #[test]
    fn a_fan_out_to_sixteen_destinations_is_one_syscall() {
        let mut a = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let mut subs: Vec<BatchSocket> = (0..16)
            .map(|_| BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap())
            .collect();
        let mut batch: Vec<Pending> = subs
            .iter()
            .enumerate()
            .map(|(i, s)| Pending {
                destination: s.socket.local_addr().unwrap(),
                contents: vec![i as u8; 200],
            })
            .collect();
        a.send_batch(&mut batch);
        assert_eq!((a.send_calls, a.send_errors), (1, 0));
        for (i, s) in subs.iter_mut().enumerate() {
            assert_eq!(drain(s), vec![vec![i as u8; 200]], "subscriber {i}");
        }
    }

    #[test]
    fn a_destination_that_fails_costs_only_its_own_datagram() {
        // Port 0 is refused by the kernel (EINVAL): once first in the sorted batch (the
        // call fails at once), once between two good ones (the call sends one, stops).
        let mut a = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let mut b = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let mut c = BatchSocket::new(UdpSocket::bind("127.0.0.3:0").unwrap()).unwrap();
        let (to_b, to_c) = (
            b.socket.local_addr().unwrap(),
            c.socket.local_addr().unwrap(),
        );
        let bad = |ip: [u8; 4]| Pending {
            destination: SocketAddr::from((ip, 0)),
            contents: vec![0; 50],
        };
        let good = |d: SocketAddr, v: u8| Pending {
            destination: d,
            contents: vec![v; 50],
        };
        let mut batch = vec![
            good(to_c, 3),
            bad([127, 0, 0, 2]),
            good(to_b, 2),
            bad([0, 0, 0, 0]),
        ];
        a.send_batch(&mut batch);
        assert_eq!(a.send_errors, 2, "the two bad datagrams");
        // 0.0.0.0:0 fails alone; b's goes, 127.0.0.2:0 fails; c's goes.
        assert_eq!(a.send_calls, 4);
        assert_eq!(drain(&mut b), vec![vec![2; 50]]);
        assert_eq!(drain(&mut c), vec![vec![3; 50]]);
    }

    /// Not a test: the cost of a fan-out flush, one `sendmmsg` against one send per
    /// destination (as before), alternated, medians. Figures in docs/benchmarks.md:
    /// `cargo test --release -p server --bin switchboard fan_out_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn fan_out_cost() {
        use std::time::Instant;
        let a = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let mut a = a;
        for fan in [4usize, 16, 64] {
            // Receivers that never read: the kernel drops what overflows their buffers,
            // which costs the sender the same either way.
            let subs: Vec<UdpSocket> = (0..fan)
                .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
                .collect();
            let dests: Vec<SocketAddr> = subs.iter().map(|s| s.local_addr().unwrap()).collect();
            let (mut one, mut each) = (Vec::new(), Vec::new());
            let flushes = 2_000;
            for round in 0..10 {
                let start = Instant::now();
                if round % 2 == 0 {
                    for _ in 0..flushes {
                        let mut batch: Vec<Pending> = dests
                            .iter()
                            .map(|&d| Pending {
                                destination: d,
                                contents: vec![7; 160],
                            })
                            .collect();
                        a.send_batch(&mut batch);
                    }
                    one.push(start.elapsed().as_nanos() as f64 / (flushes * fan) as f64);
                } else {
                    for _ in 0..flushes {
                        let batch: Vec<Pending> = dests
                            .iter()
                            .map(|&d| Pending {
                                destination: d,
                                contents: vec![7; 160],
                            })
                            .collect();
                        for p in &batch {
                            let t = Transmit {
                                destination: p.destination,
                                ecn: None,
                                contents: &p.contents,
                                segment_size: None,
                                src_ip: None,
                            };
                            let _ = a.state.try_send(UdpSockRef::from(&a.socket), &t);
                        }
                    }
                    each.push(start.elapsed().as_nanos() as f64 / (flushes * fan) as f64);
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(|x, y| x.partial_cmp(y).unwrap());
                v[v.len() / 2]
            };
            let (m1, me) = (median(&mut one), median(&mut each));
            println!(
                "fan-out to {fan}: sendmmsg {m1:.0} ns per datagram, one send each {me:.0} ns ({:.2}x)",
                m1 / me
            );
        }
    }

    /// Everything queued on `b` within a short wait, as datagrams.
    fn drain(b: &mut BatchSocket) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while std::time::Instant::now() < until {
            if b.recv_batch(|_, d| got.push(d.to_vec())).unwrap() == 0 {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        got
    }

    #[test]
    fn a_100_packet_keyframe_burst_to_one_subscriber_arrives_whole() {
        // A 1080p keyframe is 60-90 packets: 100 of 1,100 bytes is 110 KB to one
        // destination, more than one GSO send may carry.
        let mut a = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let mut b = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let dest = b.socket.local_addr().unwrap();
        let mut batch: Vec<Pending> = (0..100u8)
            .map(|i| Pending {
                destination: dest,
                contents: vec![i; 1_100],
            })
            .collect();
        a.send_batch(&mut batch);
        assert_eq!(a.send_errors, 0, "no run failed");
        let got = drain(&mut b);
        assert_eq!(got.len(), 100, "every packet arrives");
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &vec![i as u8; 1_100], "packet {i} whole and in order");
        }
        assert_eq!(b.recv_truncated, 0);
    }

    #[test]
    fn gro_batches_are_received_whole() {
        // A peer that sends with GSO (as str0m clients behind quinn-udp, or a browser's
        // burst through a GRO-capable path): on loopback the kernel hands the receiver
        // one coalesced buffer of all segments when the socket has GRO on.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let state = UdpSocketState::new(UdpSockRef::from(&sender)).unwrap();
        let mut b = BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let dest = b.socket.local_addr().unwrap();
        let segs = state.max_gso_segments().min(40);
        let mut contents = Vec::new();
        for i in 0..segs {
            contents.extend(std::iter::repeat_n(i as u8, 1_200));
        }
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents: &contents,
            segment_size: (segs > 1).then_some(1_200),
            src_ip: None,
        };
        state.try_send(UdpSockRef::from(&sender), &t).unwrap();
        let got = drain(&mut b);
        assert_eq!(got.len(), segs, "every segment is a datagram");
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &vec![i as u8; 1_200], "segment {i} whole");
        }
        assert_eq!(b.recv_truncated, 0);
    }
}

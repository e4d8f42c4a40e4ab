//! The worker's socket layer: batched receive (recvmmsg, GRO) and batched send with GSO
//! (one syscall for several packets to one destination), through `quinn-udp`, which
//! keeps the unsafe socket code out of this crate.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

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
    /// Datagrams lost to failed sends.
    pub send_errors: u64,
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
            send_errors: 0,
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

    /// Send a batch, one syscall per GSO run. Failed sends are counted and dropped.
    pub fn send_batch(&mut self, batch: &mut Vec<Pending>) {
        let max = self.state.max_gso_segments();
        plan_runs(batch, max, MAX_GSO_BYTES, &mut self.order, &mut self.runs);
        for run in &self.runs {
            let items = &self.order[run.start..run.start + run.count];
            let first = &batch[items[0]];
            let (contents, segment_size) = if run.count == 1 {
                (&first.contents[..], None)
            } else {
                self.scratch.clear();
                for &i in items {
                    self.scratch.extend_from_slice(&batch[i].contents);
                }
                (&self.scratch[..], Some(run.segment))
            };
            let t = Transmit {
                destination: first.destination,
                ecn: None,
                contents,
                segment_size,
                src_ip: None,
            };
            if let Err(e) = self.state.try_send(UdpSockRef::from(&self.socket), &t) {
                tracing::debug!(error = %e, packets = run.count, "send failed");
                self.send_errors += run.count as u64;
            }
        }
        batch.clear();
    }
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

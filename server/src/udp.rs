//! The worker's socket layer: batched receive (recvmmsg, GRO) and batched send with GSO
//! (one syscall for several packets to one destination), through `quinn-udp`, which
//! keeps the unsafe socket code out of this crate.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};

/// Datagrams read per receive call (recvmmsg batch).
pub const RECV_BATCH: usize = 32;
const BUF: usize = 2048;

/// One outgoing datagram waiting for the next flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// A run of packets sent in one syscall: `count` packets of `segment` bytes (the last may
/// be shorter) to one destination, starting at `start` in the sorted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub count: usize,
    pub segment: usize,
}

/// Order a batch by destination (keeping each destination's packet order) and cut it into
/// GSO runs: consecutive packets to one destination, all of the first one's size except a
/// shorter last one, at most `max_segments` per run (UDP GSO's rules).
pub fn plan_runs(batch: &mut [Pending], max_segments: usize) -> Vec<Run> {
    batch.sort_by_key(|p| p.destination); // stable: per-destination order is kept
    let mut runs = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        let seg = batch[i].contents.len();
        let mut n = 1;
        while i + n < batch.len()
            && n < max_segments.max(1)
            && batch[i + n].destination == batch[i].destination
            && batch[i + n - 1].contents.len() == seg
            && batch[i + n].contents.len() <= seg
        {
            n += 1;
        }
        runs.push(Run {
            start: i,
            count: n,
            segment: seg,
        });
        i += n;
    }
    runs
}

pub struct BatchSocket {
    pub socket: UdpSocket,
    state: UdpSocketState,
    bufs: Vec<[u8; BUF]>,
    meta: Vec<RecvMeta>,
    scratch: Vec<u8>,
    pub send_errors: u64,
}

impl BatchSocket {
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        // Bursts (a keyframe to many subscribers) must not overflow the kernel buffers.
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        Ok(Self {
            socket,
            state,
            bufs: vec![[0u8; BUF]; RECV_BATCH],
            meta: vec![RecvMeta::default(); RECV_BATCH],
            scratch: Vec::with_capacity(64 * 1024),
            send_errors: 0,
        })
    }

    /// Read what is queued (one recvmmsg) and hand every datagram to `f`. Returns the
    /// number of datagrams, 0 when nothing was waiting.
    pub fn recv_batch(&mut self, mut f: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        let mut slices: Vec<IoSliceMut<'_>> = self
            .bufs
            .iter_mut()
            .map(|b| IoSliceMut::new(&mut b[..]))
            .collect();
        let n = match self
            .state
            .recv(UdpSockRef::from(&self.socket), &mut slices, &mut self.meta)
        {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut count = 0;
        for (m, buf) in self.meta.iter().zip(self.bufs.iter()).take(n) {
            // With GRO one buffer may hold several datagrams of `stride` bytes.
            if m.len == 0 {
                f(m.addr, &[]); // an empty datagram is still a datagram (counted, dropped)
                count += 1;
                continue;
            }
            let stride = m.stride.max(1);
            for chunk in buf[..m.len.min(BUF)].chunks(stride) {
                f(m.addr, chunk);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Send a batch, one syscall per GSO run. Failed sends are counted and dropped.
    pub fn send_batch(&mut self, batch: &mut Vec<Pending>) {
        let max = self.state.max_gso_segments();
        for run in plan_runs(batch, max) {
            let items = &batch[run.start..run.start + run.count];
            let (contents, segment_size) = if run.count == 1 {
                (&items[0].contents[..], None)
            } else {
                self.scratch.clear();
                for p in items {
                    self.scratch.extend_from_slice(&p.contents);
                }
                (&self.scratch[..], Some(run.segment))
            };
            let t = Transmit {
                destination: items[0].destination,
                ecn: None,
                contents,
                segment_size,
                src_ip: None,
            };
            if self
                .state
                .try_send(UdpSockRef::from(&self.socket), &t)
                .is_err()
            {
                self.send_errors += run.count as u64;
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(dest: u16, len: usize) -> Pending {
        Pending {
            destination: SocketAddr::from(([127, 0, 0, 1], dest)),
            contents: vec![0; len],
        }
    }

    #[test]
    fn runs_group_by_destination_and_size() {
        let mut b = vec![
            p(2, 100),
            p(1, 100),
            p(2, 100),
            p(1, 100),
            p(2, 60),
            p(1, 120),
            p(3, 10),
        ];
        let runs = plan_runs(&mut b, 64);
        let dests: Vec<u16> = b.iter().map(|x| x.destination.port()).collect();
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
        let mut b = vec![p(1, 100), p(1, 50), p(1, 100)];
        assert_eq!(plan_runs(&mut b, 64).len(), 2);
        // the segment limit
        let mut b: Vec<Pending> = (0..10).map(|_| p(1, 100)).collect();
        assert_eq!(
            plan_runs(&mut b, 4)
                .iter()
                .map(|r| r.count)
                .collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        assert!(plan_runs(&mut [], 4).is_empty());
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
}

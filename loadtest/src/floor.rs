//! The floor: the least work any SFU must do per forwarded packet — receive it, encrypt it
//! once per subscriber with the SRTP cipher browsers negotiate with us (AEAD AES-256-GCM,
//! RFC 7714), and send it to each subscriber with the best batching the kernel offers
//! (recvmmsg in, one GSO send per subscriber per batch out). Everything runs on loopback;
//! loopback delivery is charged to the sender, so only ratios against a server measured
//! the same way mean anything.

use std::io::IoSliceMut;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub subscribers: usize,
    pub packets_in: u64,
    pub packets_out: u64,
    pub cpu_seconds: f64,
    /// CPU of the forwarding thread per packet sent to one subscriber.
    pub cpu_us_per_forwarded_packet: f64,
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| crate::procstat::parse_stat_cpu(&s))
        .unwrap_or_default()
}

/// Forward `packets` packets of 1,100 bytes to `subscribers` loopback sockets.
pub fn measure(subscribers: usize, packets: u64) -> anyhow::Result<FloorReport> {
    anyhow::ensure!(
        (1..=1000).contains(&subscribers),
        "subscribers must be 1..=1000"
    );
    anyhow::ensure!(
        (1..=10_000_000).contains(&packets),
        "packets must be 1..=10,000,000"
    );
    let sinks: Vec<UdpSocket> = (0..subscribers)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let dests: Vec<_> = sinks
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let fwd = UdpSocket::bind("127.0.0.1:0")?;
    let fwd_addr = fwd.local_addr()?;
    let state = UdpSocketState::new(UdpSockRef::from(&fwd))?;
    let _ = state.set_recv_buffer_size(UdpSockRef::from(&fwd), 8 << 20);
    let _ = state.set_send_buffer_size(UdpSockRef::from(&fwd), 8 << 20);
    let keys: Vec<LessSafeKey> = (0..subscribers)
        .map(|i| {
            let k = [i as u8 ^ 0x5a; 32];
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).expect("a 32-byte key"))
        })
        .collect();

    // The publisher: bursts of 8 packets (a video frame), paced so the kernel buffer holds.
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let payload = vec![0xAB_u8; 1_100];
        let mut sent = 0;
        while sent < packets {
            for _ in 0..8.min(packets - sent) {
                s.send_to(&payload, fwd_addr)?;
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Ok(())
    });

    let max_gso = state.max_gso_segments().max(1);
    let mut bufs = vec![[0u8; 2048]; 32];
    let mut meta = vec![RecvMeta::default(); 32];
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let (mut got, mut sent_out) = (0u64, 0u64);
    let mut seq = 0u64;
    let cpu0 = thread_cpu();
    let deadline = Instant::now() + Duration::from_secs(120);
    // quinn-udp makes the socket non-blocking: wait for readability with epoll, as the
    // server's worker does (one syscall per batch).
    let mut poll = mio::Poll::new()?;
    let mut registered = mio::net::UdpSocket::from_std(fwd.try_clone()?);
    poll.registry()
        .register(&mut registered, mio::Token(0), mio::Interest::READABLE)?;
    let mut events = mio::Events::with_capacity(4);
    let mut readable = false;
    while got < packets && Instant::now() < deadline {
        if !readable {
            poll.poll(&mut events, Some(Duration::from_millis(200)))?;
            readable = true;
        }
        let n = {
            let mut slices: Vec<IoSliceMut<'_>> = bufs
                .iter_mut()
                .map(|b| IoSliceMut::new(&mut b[..]))
                .collect();
            match state.recv(UdpSockRef::from(&fwd), &mut slices, &mut meta) {
                Ok(n) => n,
                Err(_) => {
                    readable = false; // drained (WouldBlock): wait for the next edge
                    continue;
                }
            }
        };
        let batch: Vec<&[u8]> = meta
            .iter()
            .zip(bufs.iter())
            .take(n)
            .map(|(m, b)| &b[..m.len])
            .collect();
        got += batch.len() as u64;
        for (key, dest) in keys.iter().zip(dests.iter()) {
            for chunk in batch.chunks(max_gso) {
                out.clear();
                let mut seg = 0;
                for p in chunk {
                    seq += 1;
                    let start = out.len();
                    out.extend_from_slice(&[
                        0x80,
                        96,
                        (seq >> 8) as u8,
                        seq as u8,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        1,
                    ]); // RTP header
                    out.extend_from_slice(p);
                    let mut iv = [0u8; 12];
                    iv[4..].copy_from_slice(&seq.to_be_bytes());
                    let (hdr, body) = out[start..].split_at_mut(12);
                    let tag = key
                        .seal_in_place_separate_tag(
                            Nonce::assume_unique_for_key(iv),
                            Aad::from(&hdr[..]),
                            body,
                        )
                        .map_err(|_| anyhow::anyhow!("seal failed"))?;
                    out.extend_from_slice(tag.as_ref());
                    seg = seg.max(out.len() - start);
                }
                let t = Transmit {
                    destination: *dest,
                    ecn: None,
                    contents: &out,
                    segment_size: (chunk.len() > 1).then_some(seg),
                    src_ip: None,
                };
                if state.try_send(UdpSockRef::from(&fwd), &t).is_ok() {
                    sent_out += chunk.len() as u64;
                }
            }
        }
    }
    let cpu = thread_cpu().saturating_sub(cpu0).as_secs_f64();
    let _ = sender.join();
    drop(sinks);
    Ok(FloorReport {
        subscribers,
        packets_in: got,
        packets_out: sent_out,
        cpu_seconds: cpu,
        cpu_us_per_forwarded_packet: if sent_out > 0 {
            cpu * 1e6 / sent_out as f64
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn floor_forwards_every_packet() {
        let r = super::measure(3, 400).unwrap();
        assert_eq!(r.packets_in, 400);
        assert_eq!(r.packets_out, 1_200);
    }
}

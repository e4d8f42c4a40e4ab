//! (Not built: the tests of docs/adr/0009/release-written.patch, kept with it.)
//! What the shard relies on from the str0m patch set (third_party/str0m-patches, ADR 0009),
//! shown on a pair of bare str0m connections: each test fails on str0m as published.
#![allow(clippy::disallowed_methods)] // Instant::now: the virtual clock's origin

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sfu_core::str0m::bwe::Bitrate;
use sfu_core::str0m::media::{Direction, MediaKind, Mid};
use sfu_core::str0m::net::{Protocol, Receive};
use sfu_core::str0m::rtp::RtpWrite;
use sfu_core::str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// One side of the pair: its connection, its address, what it sent and its next wake-up.
struct Side {
    rtc: Rtc,
    addr: SocketAddr,
    wake: Instant,
}

impl Side {
    fn new(rtc: Rtc, port: u16) -> Self {
        let addr = (Ipv4Addr::new(10, 0, 0, 1), port).into();
        let mut side = Self {
            rtc,
            addr,
            wake: Instant::now(),
        };
        let c = Candidate::host(addr, "udp").unwrap();
        side.rtc.add_local_candidate(c);
        side
    }

    /// Poll until str0m asks for a timeout; the datagrams it sent, and its events.
    fn drain(&mut self) -> (Vec<(SocketAddr, Vec<u8>)>, Vec<Event>) {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    self.wake = t;
                    return (sent, events);
                }
                Output::Transmit(t) => sent.push((t.destination, t.contents.to_vec())),
                Output::Event(e) => events.push(e),
            }
        }
    }

    fn receive(&mut self, now: Instant, from: SocketAddr, d: &[u8]) {
        let r = Receive::new(Protocol::Udp, from, self.addr, d).unwrap();
        self.rtc.handle_input(Input::Receive(now, r)).unwrap();
    }
}

/// A sender in RTP mode with bandwidth estimation (as the shard's subscriber connections
/// are), connected to a receiver over one sendonly video m-line; the virtual time.
fn connected_pair() -> (Side, Side, Mid, Instant) {
    let t0 = Instant::now();
    let sender = RtcConfig::new()
        .set_rtp_mode(true)
        .enable_bwe(Some(Bitrate::kbps(1_000)))
        .build(t0);
    let mut a = Side::new(sender, 1000);
    let mut b = Side::new(RtcConfig::new().set_rtp_mode(true).build(t0), 2000);
    let mut change = a.rtc.sdp_api();
    let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let answer = b.rtc.sdp_api().accept_offer(offer).unwrap();
    a.rtc.sdp_api().accept_answer(pending, answer).unwrap();

    let mut now = t0;
    for _ in 0..10_000 {
        let (from_a, _) = a.drain();
        let (from_b, _) = b.drain();
        for (_, d) in from_a {
            b.receive(now, a.addr, &d);
        }
        for (_, d) in from_b {
            a.receive(now, b.addr, &d);
        }
        if a.rtc.is_connected() && b.rtc.is_connected() && now > t0 + Duration::from_secs(1) {
            return (a, b, mid, now);
        }
        now = (a.wake.min(b.wake)).max(now + Duration::from_millis(1));
        a.rtc.handle_input(Input::Timeout(now)).unwrap();
        b.rtc.handle_input(Input::Timeout(now)).unwrap();
    }
    panic!("the pair never connected");
}

/// Write a frame of five 900-byte packets to the sender's unpaced video stream.
fn write_frame(a: &mut Side, mid: Mid, frame: u16, now: Instant) {
    let pt = a
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == sfu_core::str0m::format::Codec::Vp8)
        .unwrap()
        .pt();
    let mut api = a.rtc.direct_api();
    let tx = api.stream_tx_by_mid(mid, None).unwrap();
    tx.set_unpaced(true);
    for i in 0..5u16 {
        let seq = frame * 5 + i;
        let w = RtpWrite::new(pt, (seq as u64).into(), 3000 * frame as u32, now, vec![0x10; 900])
            .marker(i == 4);
        tx.write_rtp(w);
    }
}

fn media_sent(sent: &[(SocketAddr, Vec<u8>)]) -> usize {
    sent.iter().filter(|(_, d)| d.len() > 800).count()
}

#[test]
fn unpaced_packets_written_together_leave_after_one_clock_advance() {
    // str0m's leaky-bucket pacer releases one packet per handle_timeout and asks for the
    // next a microsecond later, unpaced streams included; the session now sends every
    // ready unpaced packet in one poll cycle.
    let (mut a, _b, mid, mut now) = connected_pair();
    for frame in 0..20u16 {
        now += Duration::from_millis(33);
        write_frame(&mut a, mid, frame, now);
        a.rtc.handle_input(Input::Timeout(now)).unwrap();
        let (sent, _) = a.drain();
        assert_eq!(media_sent(&sent), 5, "frame {frame}: one advance sends all five");
    }
}

#[test]
fn written_packets_leave_without_running_the_timers() {
    // Rtc::release_written: the packets of a turn are stamped and sent (the estimator and
    // the pacer see them); the session's other timers wait for their own deadline.
    let (mut a, mut b, mid, mut now) = connected_pair();
    let mut received = 0;
    for frame in 0..20u16 {
        now += Duration::from_millis(33);
        if a.wake <= now {
            a.rtc.handle_input(Input::Timeout(now)).unwrap();
            a.drain();
        }
        write_frame(&mut a, mid, frame, now);
        assert!(a.rtc.release_written(now), "frame {frame}: released");
        let (sent, _) = a.drain();
        assert_eq!(media_sent(&sent), 5, "frame {frame}: all five sent");
        for (_, d) in &sent {
            // In RTP mode a received packet is handed on at the next poll.
            b.receive(now, a.addr, d);
            let (_, events) = b.drain();
            received += events
                .iter()
                .filter(|e| matches!(e, Event::RtpPacket(_)))
                .count();
        }
    }
    assert_eq!(received, 100, "the receiver decrypted every packet");
}

#[test]
fn before_its_first_timeout_a_connection_is_not_released() {
    let t0 = Instant::now();
    let mut rtc = RtcConfig::new().set_rtp_mode(true).build(t0);
    assert!(!rtc.release_written(t0));
}

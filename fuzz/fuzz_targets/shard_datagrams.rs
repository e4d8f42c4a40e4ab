//! Datagrams of every kind (STUN, DTLS, RTP, RTCP, garbage), over UDP and as ICE-TCP
//! frames, fed into a shard whose peers
//! are live: two simulated str0m clients in a call (real ICE, DTLS-SRTP, media). The
//! input's datagrams arrive from the peers' own addresses and from strangers; the call
//! must go on: no panic, the shard's invariants hold, and what the subscribers receive
//! stays gap-free. The call is set up once per process and reused (rebuilt every 2,000
//! inputs) — a DTLS handshake per input would be a hundred times slower.
#![no_main]

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sfu_core::testkit::{ClientIdx, ClientSpec, Sim};
use sfu_core::{Input, TrackKind};

struct Call {
    sim: Sim,
    a: ClientIdx,
    b: ClientIdx,
    uses: u32,
}

fn call() -> Call {
    let mut sim = Sim::new(Instant::now(), 7);
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::simulcast());
    sim.run_for(Duration::from_secs(2));
    Call { sim, a, b, uses: 0 }
}

thread_local! {
    static CALL: RefCell<Option<Call>> = const { RefCell::new(None) };
}

#[derive(Arbitrary, Debug)]
struct Datagram {
    from: u8,
    port: u16,
    /// A frame from an ICE-TCP connection instead of a UDP datagram.
    tcp: bool,
    bytes: Vec<u8>,
}

fuzz_target!(|input: Vec<Datagram>| {
    CALL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.uses >= 2_000) {
            *slot = Some(call());
        }
        let c = slot.as_mut().unwrap();
        c.uses += 1;
        let (a_pub, a_sub) = c.sim.client(c.a).addrs();
        let (b_pub, b_sub) = c.sim.client(c.b).addrs();
        let peers = [a_pub, a_sub, b_pub, b_sub];
        for d in input.into_iter().take(32) {
            let source: SocketAddr = match d.from % 6 {
                k @ 0..=3 => match peers[k as usize] {
                    Some(p) => p,
                    None => continue,
                },
                4 => SocketAddr::from(([127, 0, 9, 9], d.port)),
                _ => SocketAddr::from(([10, 1, (d.port >> 8) as u8, d.port as u8], 5000)),
            };
            let now = c.sim.now;
            let input = if d.tcp {
                Input::TcpFrame { source, contents: &d.bytes }
            } else {
                Input::Datagram { source, contents: &d.bytes }
            };
            c.sim.shard.handle_input(now, input);
        }
        // Let the call run on (run_for checks the shard's invariants).
        c.sim.run_for(Duration::from_millis(30));
        let ida = c.sim.client(c.a).id;
        let idb = c.sim.client(c.b).id;
        for (me, from) in [(c.a, idb), (c.b, ida)] {
            for kind in [TrackKind::Audio, TrackKind::Video] {
                if let Some(s) = c.sim.client(me).stream_from(from, kind) {
                    assert_eq!(s.gaps(), 0, "a gap in what {me:?} receives");
                }
            }
        }
    });
});

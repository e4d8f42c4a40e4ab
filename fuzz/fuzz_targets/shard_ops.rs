//! The whole shard as a state machine: arbitrary interleavings of control-plane commands
//! (join, publish, answer, leave, viewport, preferred layer, mute, permissions, sources,
//! ICE restart, WHEP, candidates, relay taps and relayed tracks), datagrams, relayed
//! packets and time steps. After every step the
//! shard's invariants must hold: no subscription to a vanished track, no track of a
//! vanished publisher, no demux entry left behind after a leave, no empty room kept.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use sfu_core::testkit::{ClientSpec, SimClient};
use sfu_core::{Command, Input, Output, ParticipantId, PcKind, RoomId, Shard, ShardConfig, TrackId, TrackKind, TrackSource};

/// Real offers to publish with: audio + video, simulcast, audio only; and a WHEP
/// receive-only offer.
fn offers() -> &'static [String; 4] {
    static O: OnceLock<[String; 4]> = OnceLock::new();
    O.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let now = Instant::now();
        let mut make = |spec| SimClient::new(now, now, ParticipantId(0), spec, addr, addr, &mut rng);
        let a = make(ClientSpec::av()).make_offer().unwrap();
        let b = make(ClientSpec::simulcast()).make_offer().unwrap();
        let c = make(ClientSpec::audio_only()).make_offer().unwrap();
        let d = make(ClientSpec::viewer()).make_recv_offer(ParticipantId(1)).unwrap();
        [a, b, c, d]
    })
}

#[derive(Arbitrary, Debug)]
enum Op {
    Join { room: u8, who: u8, publish: bool, subscribe: bool },
    Publish { who: u8, offer: u8 },
    Answer { who: u8, sdp: String },
    Leave { who: u8 },
    Viewport { who: u8, track: u8, w: u32, h: u32, visible: bool },
    Preferred { who: u8, track: u8, max: Option<u8> },
    Mute { who: u8, video: bool, muted: bool },
    Permissions { who: u8, publish: bool, subscribe: bool },
    Sources { who: u8, mid: String, screen: bool },
    IceRestart { who: u8, sub: bool, ufrag: String, pwd: String },
    Whep { who: u8, target: Option<u8> },
    Candidate { who: u8, sub: bool, line: String },
    Datagram { port: u16, bytes: Vec<u8> },
    Subscribe { who: u8, tracks: Vec<u8>, subscribe: bool },
    Name { who: u8, mid: String, sid: String },
    Data { to: Vec<u8>, lossy: bool, bytes: Vec<u8> },
    Tick { ms: u16 },
    RelayPublish { room: u8, who: u8, video: bool, layers: u8 },
    RelayIn { flow: u8, bytes: Vec<u8> },
    RelayTap { track: u8, rids: Vec<String> },
    RelayKeyframe { flow: u16 },
}

/// The flows of a relayed track in this target: few, so that packets find them.
fn relay_flow(track: u8, layer: u8) -> u32 {
    sfu_core::relay::flow_of(TrackId(u64::from(track % 8)), usize::from(layer % 4))
}

fuzz_target!(|ops: Vec<Op>| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut shard = Shard::new(ShardConfig::new("127.0.0.1:5000".parse().unwrap()), t0);
    let pid = |w: u8| ParticipantId(u64::from(w % 8) + 1);
    for op in ops.into_iter().take(64) {
        let cmd = match op {
            Op::Join { room, who, publish, subscribe } => Some(Command::Join {
                room: RoomId(format!("room{}", room % 3)),
                participant: pid(who),
                can_publish: publish,
                can_subscribe: subscribe,
                track_streams: room % 2 == 0,
                auto_subscribe: room % 3 != 1,
            }),
            Op::Publish { who, offer } => Some(Command::PublishOffer { participant: pid(who), sdp: offers()[offer as usize % 3].clone() }),
            Op::Answer { who, sdp } => Some(Command::SubscribeAnswer { participant: pid(who), sdp }),
            Op::Leave { who } => Some(Command::Leave { participant: pid(who) }),
            Op::Viewport { who, track, w, h, visible } => Some(Command::SetViewport { participant: pid(who), track: TrackId(u64::from(track % 16)), width: w, height: h, visible }),
            Op::Preferred { who, track, max } => Some(Command::SetPreferredLayer { participant: pid(who), track: TrackId(u64::from(track % 16)), max_rank: max }),
            Op::Mute { who, video, muted } => Some(Command::SetMuted { participant: pid(who), kind: if video { TrackKind::Video } else { TrackKind::Audio }, muted }),
            Op::Permissions { who, publish, subscribe } => Some(Command::SetPermissions { participant: pid(who), can_publish: publish, can_subscribe: subscribe }),
            Op::Sources { who, mid, screen } => Some(Command::SetSources { participant: pid(who), sources: vec![(mid, if screen { TrackSource::ScreenShare } else { TrackSource::Camera })] }),
            Op::IceRestart { who, sub, ufrag, pwd } => Some(Command::IceRestart { participant: pid(who), pc: if sub { PcKind::Subscriber } else { PcKind::Publisher }, ufrag, pwd }),
            Op::Whep { who, target } => Some(Command::WhepOffer { participant: pid(who), target: target.map(pid), options: Default::default(), sdp: offers()[3].clone() }),
            Op::Candidate { who, sub, line } => Some(Command::Candidate { participant: pid(who), pc: if sub { PcKind::Subscriber } else { PcKind::Publisher }, candidate: line }),
            Op::Datagram { port, bytes } => {
                let source = SocketAddr::from(([127, 0, 0, 1], port));
                shard.handle_input(now, Input::Datagram { source, contents: &bytes });
                None
            }
            Op::RelayIn { flow, bytes } => {
                let contents = &bytes;
                shard.handle_input(now, Input::Relay { link: 1, flow: relay_flow(flow, flow / 8), contents });
                None
            }
            Op::RelayPublish { room, who, video, layers } => {
                let rids: Vec<String> = ["q", "h", "f"].iter().take(usize::from(layers % 4)).map(|r| r.to_string()).collect();
                let flows = (0..rids.len().max(1) as u8).map(|l| relay_flow(who, l)).collect();
                Some(Command::RelayPublish(sfu_core::RelayedTrack {
                    room: RoomId::from(format!("r{}", room % 3).as_str()),
                    participant: pid(who),
                    link: 1,
                    kind: if video { TrackKind::Video } else { TrackKind::Audio },
                    source: TrackSource::Camera,
                    mime: if video { "video/VP8" } else { "audio/opus" }.into(),
                    rids,
                    flows,
                }))
            }
            Op::RelayTap { track, rids } => Some(Command::RelayTap { track: TrackId(u64::from(track % 16)), link: 1, rids }),
            Op::RelayKeyframe { flow } => Some(Command::RelayKeyframe { flow: u32::from(flow) }),
            Op::Subscribe { who, tracks, subscribe } => Some(Command::Subscribe { participant: pid(who), tracks: tracks.iter().map(|t| TrackId(u64::from(t % 16))).collect(), subscribe }),
            Op::Name { who, mid, sid } => Some(Command::NameTracks { participant: pid(who), sids: vec![(mid, sid)] }),
            Op::Data { to, lossy, bytes } => Some(Command::SendData { to: to.iter().map(|w| pid(*w)).collect(), channel: if lossy { "_lossy" } else { "_reliable" }.to_string(), binary: true, data: bytes.into() }),
            Op::Tick { ms } => {
                now += Duration::from_millis(u64::from(ms));
                shard.handle_input(now, Input::Timeout);
                None
            }
        };
        if let Some(c) = cmd {
            shard.handle_input(now, Input::Command(c));
        }
        loop {
            match shard.poll_output() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => assert!(!t.contents.is_empty()),
                Output::Event(_) => {}
                Output::Relay(r) => assert!(r.contents.len() >= 12),
            }
        }
        if let Err(e) = shard.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }
});

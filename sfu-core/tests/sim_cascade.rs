//! One room across two shards (two nodes' workers), carried by relay taps and relayed
//! tracks (issue 34), in the deterministic simulation. The test plays both control planes
//! and the relay link: it announces the origin's tracks at the far node
//! (`Command::RelayPublish`), turns the far node's dynacast for a relayed track into the
//! origin's tap (`Command::RelayTap`), its keyframe requests into the origin's
//! (`Command::RelayKeyframe`), and carries the packets.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sfu_core::relay::flow_of;
use sfu_core::testkit::{ClientIdx, ClientSpec, Sim};
use sfu_core::{Command, Event, ParticipantId, RoomId, TrackId, TrackKind, TrackSource};

mod common;
use common::secs;

const LINK: u32 = 7;

/// Two simulated nodes, A (origin of what its clients publish) and B (far), one relay
/// link from A to B.
struct Cascade {
    a: Sim,
    b: Sim,
    seen: (usize, usize),
    /// B's relayed track → A's track.
    origin_of: HashMap<TrackId, TrackId>,
    /// Bytes carried per flow, and when each flow last carried one.
    pub carried: BTreeMap<u32, (u64, Instant)>,
}

impl Cascade {
    fn new(seed: u64) -> Self {
        let start = Instant::now();
        let a = Sim::new(start, seed);
        let mut b = Sim::new(start, seed ^ 0xb);
        b.ids_from(1_000);
        Self {
            a,
            b,
            seen: (0, 0),
            origin_of: HashMap::new(),
            carried: BTreeMap::new(),
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.a.now + d;
        while self.a.now < end {
            let t = (self.a.now + Duration::from_millis(2)).min(end);
            self.a.run_until(t);
            self.b.run_until(t);
            self.control();
            for r in std::mem::take(&mut self.a.relayed) {
                let c = self.carried.entry(r.flow).or_insert((0, t));
                *c = (c.0 + r.contents.len() as u64, t);
                self.b.relay_in(r.link, r.flow, &r.contents);
            }
        }
    }

    /// Both control planes: what each node's events ask of the other.
    fn control(&mut self) {
        let new_a: Vec<Event> = self.a.events[self.seen.0..]
            .iter()
            .map(|(_, e)| e.clone())
            .collect();
        self.seen.0 = self.a.events.len();
        for e in new_a {
            if let Event::TrackPublished {
                room,
                participant,
                track,
                kind,
                rids,
                mime,
                ..
            } = e
            {
                let flows: Vec<u32> = (0..rids.len().max(1)).map(|i| flow_of(track, i)).collect();
                let before = self.b.events.len();
                self.b
                    .command(Command::RelayPublish(sfu_core::RelayedTrack {
                        room,
                        participant,
                        link: LINK,
                        kind,
                        source: TrackSource::Camera,
                        mime: mime.unwrap_or_else(|| {
                            if kind == TrackKind::Audio {
                                "audio/opus"
                            } else {
                                "video/VP8"
                            }
                            .into()
                        }),
                        rids: rids.clone(),
                        flows,
                    }));
                let far = self.b.events[before..].iter().find_map(|(_, e)| match e {
                    Event::TrackPublished {
                        track: far,
                        participant: p,
                        ..
                    } if *p == participant => Some(*far),
                    _ => None,
                });
                if let Some(far) = far {
                    self.origin_of.insert(far, track);
                }
                // Until the far node's dynacast says otherwise, it takes every layer.
                let all = if rids.is_empty() {
                    vec![String::new()]
                } else {
                    rids
                };
                self.a.command(Command::RelayTap {
                    track,
                    link: LINK,
                    rids: all,
                });
            }
        }
        let new_b: Vec<Event> = self.b.events[self.seen.1..]
            .iter()
            .map(|(_, e)| e.clone())
            .collect();
        self.seen.1 = self.b.events.len();
        for e in new_b {
            match e {
                Event::PublisherLayers { track, layers, .. } => {
                    if let Some(&origin) = self.origin_of.get(&track) {
                        let rids = layers
                            .into_iter()
                            .filter(|l| l.active)
                            .map(|l| l.rid)
                            .collect();
                        self.a.command(Command::RelayTap {
                            track: origin,
                            link: LINK,
                            rids,
                        });
                    }
                }
                Event::RelayKeyframe { flow, .. } => {
                    self.a.command(Command::RelayKeyframe { flow })
                }
                _ => {}
            }
        }
    }

    /// Bytes flow `flow` carried during the last `window`.
    fn flowing(&self, flow: u32, window: Duration) -> bool {
        self.carried
            .get(&flow)
            .is_some_and(|(_, last)| self.a.now.saturating_duration_since(*last) < window)
    }
}

fn layer_of(sim: &Sim, viewer: ClientIdx, publisher: ParticipantId) -> Option<u8> {
    sim.client(viewer)
        .stream_from(publisher, TrackKind::Video)
        .and_then(|s| s.layer_at(sim.now))
}

#[test]
fn a_publisher_on_one_node_reaches_viewers_on_another_with_only_the_layers_they_need() {
    let mut c = Cascade::new(34);
    let p = c.a.join("webinar", ClientSpec::simulcast().speaking(-20));
    let pid = c.a.client(p).id;
    let wide = c.b.join("webinar", ClientSpec::viewer());
    let narrow = c.b.join("webinar", ClientSpec::viewer());
    c.b.cap_downlink(narrow, 400);
    c.run_for(secs(12));

    // Each far viewer gets the layer its own link allows: the top one and the lowest.
    assert_eq!(
        layer_of(&c.b, wide, pid),
        Some(2),
        "the uncapped far viewer on f"
    );
    assert_eq!(
        layer_of(&c.b, narrow, pid),
        Some(0),
        "the 400 kbps far viewer on q"
    );
    let v =
        c.b.client(wide)
            .stream_from(pid, TrackKind::Video)
            .unwrap()
            .clone();
    let gap = v.max_video_gap(c.b.start + secs(4), c.b.now);
    assert!(
        gap < Duration::from_millis(500),
        "far video stalled {gap:?}"
    );
    let audio =
        c.b.client(wide)
            .stream_from(pid, TrackKind::Audio)
            .map_or(0, |s| s.packets);
    assert!(
        audio > 400,
        "the publisher's audio reaches the far viewer: {audio} packets"
    );

    // The link carries the layers someone on B wants (f, q), not h, after dynacast's
    // hold; the publisher still encodes what the link takes.
    let video = c.a.events_matching(|e| {
        matches!(
            e,
            Event::TrackPublished {
                kind: TrackKind::Video,
                ..
            }
        )
    });
    let Some(Event::TrackPublished { track, .. }) = video.first() else {
        panic!("no video track")
    };
    let track = *track;
    let (q, h, f) = (flow_of(track, 0), flow_of(track, 1), flow_of(track, 2));
    let window = Duration::from_millis(500);
    eprintln!(
        "carried per flow: {:?}",
        c.carried.iter().map(|(k, v)| (k, v.0)).collect::<Vec<_>>()
    );
    assert!(
        c.flowing(q, window) && c.flowing(f, window),
        "q and f cross the link"
    );
    assert!(
        !c.flowing(h, window),
        "h, which nobody on B needs, stopped crossing"
    );

    // Keyframe requests crossed: the far viewers' switches asked the publisher.
    let asked =
        c.b.events_matching(|e| matches!(e, Event::RelayKeyframe { link: LINK, .. }))
            .len();
    assert!(
        asked > 0 && c.a.client(p).keyframe_requests_received > 0,
        "keyframe requests crossed ({asked})"
    );

    // The far node's speaker detection hears the relayed audio's levels.
    let spoke = c.b.events_matching(
        |e| matches!(e, Event::ActiveSpeaker { participant, .. } if *participant == pid),
    );
    assert!(
        !spoke.is_empty(),
        "the publisher is the far room's active speaker"
    );
}

#[test]
fn a_far_viewer_that_drops_to_a_lower_layer_is_fed_it_and_the_origin_lets_go_of_the_rest() {
    let mut c = Cascade::new(35);
    let p = c.a.join("room", ClientSpec::simulcast());
    let pid = c.a.client(p).id;
    let v = c.b.join("room", ClientSpec::viewer());
    c.run_for(secs(8));
    assert_eq!(layer_of(&c.b, v, pid), Some(2));
    c.b.cap_downlink(v, 350);
    c.run_for(secs(10));
    assert_eq!(
        layer_of(&c.b, v, pid),
        Some(0),
        "down to q on a 350 kbps link"
    );
    let video = c.a.events_matching(|e| {
        matches!(
            e,
            Event::TrackPublished {
                kind: TrackKind::Video,
                ..
            }
        )
    });
    let Some(Event::TrackPublished { track, .. }) = video.first() else {
        panic!()
    };
    let window = Duration::from_millis(500);
    assert!(c.flowing(flow_of(*track, 0), window));
    assert!(
        !c.flowing(flow_of(*track, 2), window),
        "f no longer crosses"
    );
    // Nobody needs h or f anywhere now: the publisher was told to stop them.
    let off = c.a.events_matching(|e| {
        matches!(e, Event::PublisherLayers { layers, .. }
        if layers.iter().any(|l| l.rid == "f" && !l.active))
    });
    assert!(!off.is_empty(), "the publisher stops encoding f");
}

#[test]
fn relay_packets_of_unknown_flows_or_not_rtp_are_dropped_and_counted() {
    let mut c = Cascade::new(36);
    let _v = c.b.join("room", ClientSpec::viewer());
    c.run_for(secs(1));
    let before = c.b.shard.stats().relay_dropped;
    c.b.relay_in(LINK, 12345, &[0x80; 40]);
    c.b.relay_in(LINK, 12345, &[]);
    c.b.command(Command::RelayPublish(sfu_core::RelayedTrack {
        room: RoomId::from("room"),
        participant: ParticipantId(77),
        link: LINK,
        kind: TrackKind::Audio,
        source: TrackSource::Microphone,
        mime: "audio/opus".into(),
        rids: vec![],
        flows: vec![flow_of(TrackId(1), 0)],
    }));
    c.b.relay_in(LINK, flow_of(TrackId(1), 0), &[0x40, 1, 2]);
    assert_eq!(c.b.shard.stats().relay_dropped - before, 3);
    // A codec the relay does not carry, or flows that do not match the layers: refused.
    c.b.command(Command::RelayPublish(sfu_core::RelayedTrack {
        room: RoomId::from("room"),
        participant: ParticipantId(78),
        link: LINK,
        kind: TrackKind::Video,
        source: TrackSource::Camera,
        mime: "video/theora".into(),
        rids: vec![],
        flows: vec![1],
    }));
    let failed = c.b.events_matching(|e| {
        matches!(
            e,
            Event::CommandFailed {
                participant: ParticipantId(78),
                ..
            }
        )
    });
    assert_eq!(failed.len(), 1);
    c.run_for(secs(1));
}

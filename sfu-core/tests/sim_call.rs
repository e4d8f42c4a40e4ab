//! Deterministic simulations of whole calls through one shard (the `testkit`).
//! `Instant::now()` only gives each simulation an origin for its virtual clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use sfu_core::testkit::{ClientIdx, ClientSpec, LinkConfig, Sim};
use sfu_core::{Event, GoneReason, TrackKind};

/// A downlink capped like `tbf`: `kbps`, with a 200 ms queue.
fn capped(kbps: u64) -> LinkConfig {
    LinkConfig {
        rate_bps: Some(kbps * 1000),
        max_queue: Duration::from_millis(200),
        ..Default::default()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn three_party(seed: u64) -> (Sim, [ClientIdx; 3]) {
    let mut sim = Sim::new(Instant::now(), seed);
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::av());
    let c = sim.join("room", ClientSpec::av());
    (sim, [a, b, c])
}

#[test]
fn three_participants_each_receive_the_other_two() {
    let (mut sim, all) = three_party(1);
    sim.run_for(secs(5));
    for &me in &all {
        for &other in all.iter().filter(|o| **o != me) {
            let from = sim.client(other).id;
            let c = sim.client(me);
            let audio = c
                .stream_from(from, TrackKind::Audio)
                .unwrap_or_else(|| panic!("{me:?} gets no audio from {other:?}: {:?}", c.received));
            let video = c.stream_from(from, TrackKind::Video).expect("video");
            // 5 s minus connection setup: 50 audio packets/s, 2 video packets × 30 fps.
            assert!(audio.packets > 150, "audio packets {}", audio.packets);
            assert!(video.packets > 200, "video packets {}", video.packets);
            assert!(video.keyframes >= 1);
            eprintln!(
                "{me:?} <- {other:?}: audio {} pkts, video {} pkts {} kf",
                audio.packets, video.packets, video.keyframes
            );
            assert_eq!(audio.gaps(), 0);
            assert_eq!(video.gaps(), 0);
        }
        let st = sim.shard.stats();
        assert_eq!(
            (st.tracks, st.subscriptions),
            (6, 12),
            "gauges: 3 × (audio, video) tracks, each received by 2"
        );
        assert!(
            st.video_packets_in > 0
                && st.audio_packets_in > 0
                && st.video_bytes_out > st.video_packets_out * 100
        );
        assert_eq!(
            st.video_packets_out + st.audio_packets_out,
            st.rtp_forwarded
        );
        // Nobody receives themselves.
        let id = sim.client(me).id;
        assert!(sim
            .client(me)
            .received
            .values()
            .all(|r| r.publisher != Some(id)));
    }
    assert_eq!(sim.shard.stats().dropped_unknown_source, 0);
}

#[test]
fn one_leaves_others_are_told_and_stop_receiving_it() {
    let (mut sim, [a, b, c]) = three_party(2);
    sim.run_for(secs(3));
    let gone = sim.client(c).id;
    let before_b = sim
        .client(b)
        .stream_from(gone, TrackKind::Video)
        .unwrap()
        .packets;
    let offers_b = sim.client(b).offers_received;
    sim.leave(c);
    sim.run_for(secs(3));
    // The shard says so: participant gone, both its tracks unpublished.
    assert_eq!(
        sim.events_matching(|e| matches!(e, Event::ParticipantGone { participant, reason: GoneReason::Left, .. } if *participant == gone)).len(),
        1
    );
    assert_eq!(
        sim.events_matching(
            |e| matches!(e, Event::TrackUnpublished { participant, .. } if *participant == gone)
        )
        .len(),
        2
    );
    for me in [a, b] {
        let cl = sim.client(me);
        // A renegotiation removed its m-lines from the track map.
        assert!(
            cl.offered.iter().all(|t| t.publisher != gone),
            "{:?}",
            cl.offered
        );
        let v = cl.stream_from(gone, TrackKind::Video).unwrap();
        assert!(
            v.last_at.unwrap() < sim.start + secs(3) + Duration::from_millis(100),
            "still receiving after leave"
        );
    }
    assert!(sim.client(b).offers_received > offers_b);
    assert!(
        sim.client(b)
            .stream_from(gone, TrackKind::Video)
            .unwrap()
            .packets
            >= before_b
    );
    // The two who stayed still hear and see each other.
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let later = sim.start + secs(5);
    assert!(
        sim.client(a)
            .stream_from(idb, TrackKind::Video)
            .unwrap()
            .last_at
            .unwrap()
            > later
    );
    assert!(
        sim.client(b)
            .stream_from(ida, TrackKind::Audio)
            .unwrap()
            .last_at
            .unwrap()
            > later
    );
}

#[test]
fn a_vanished_client_is_removed_after_the_ice_timeout() {
    let (mut sim, [a, _b, c]) = three_party(3);
    sim.run_for(secs(3));
    let gone = sim.client(c).id;
    sim.vanish(c);
    sim.run_for(secs(40));
    let ev = sim.events.iter().find(
        |(_, e)| matches!(e, Event::ParticipantGone { participant, .. } if *participant == gone),
    );
    let (at, e) = ev.expect("vanished participant removed");
    assert!(
        matches!(
            e,
            Event::ParticipantGone {
                reason: GoneReason::IceTimeout,
                ..
            }
        ),
        "{e:?}"
    );
    eprintln!("removed {:?} after vanishing", *at - (sim.start + secs(3)));
    assert!(sim.client(a).offered.iter().all(|t| t.publisher != gone));
    assert_eq!(sim.shard.participant_count(), 2);
}

#[test]
fn five_percent_loss_is_repaired_with_no_gap_reaching_subscribers() {
    let mut sim = Sim::new(Instant::now(), 4);
    let lossy = LinkConfig {
        loss: 0.05,
        delay: Duration::from_millis(20),
        ..Default::default()
    };
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::av());
    let c = sim.join("room", ClientSpec::av());
    for x in [a, b, c] {
        sim.set_link(x, lossy, lossy);
    }
    sim.run_for(secs(12));
    // Stop sending, then give the last retransmissions time to land.
    for x in [a, b, c] {
        sim.set_link(x, LinkConfig::default(), LinkConfig::default());
    }
    sim.run_for(secs(2));
    assert!(
        sim.net.lost > 500,
        "the network lost only {} packets",
        sim.net.lost
    );
    for me in [a, b, c] {
        for other in [a, b, c].into_iter().filter(|o| *o != me) {
            let v = sim
                .client(me)
                .stream_from(sim.client(other).id, TrackKind::Video)
                .unwrap();
            eprintln!(
                "{me:?} <- {other:?}: {} video packets, gaps {}",
                v.packets,
                v.gaps()
            );
            if v.gaps() > 0 {
                let (a, b) = (*v.seqs.first().unwrap(), *v.seqs.last().unwrap());
                let missing: Vec<u64> = (a..=b).filter(|s| !v.seqs.contains(s)).collect();
                let i = v
                    .video_seqs
                    .iter()
                    .position(|s| *s > missing[0])
                    .unwrap_or(0);
                eprintln!("missing {missing:?} of {a}..{b}; next arrival at {:?}; keyframes received {}; publisher keyframe requests {}", v.video_arrivals[i] - sim.start, v.keyframes, sim.client(other).keyframe_requests_received);
            }
            assert!(v.packets > 400);
            assert_eq!(v.gaps(), 0, "a gap reached the subscriber");
        }
    }
    // The repairs show in the shard's counters (for metrics).
    let st = sim.shard.stats();
    eprintln!("{st:?}");
    assert!(
        st.nacks_received > 10,
        "NACKs from subscribers counted: {}",
        st.nacks_received
    );
}

#[test]
fn encoder_restart_with_new_ssrc_keeps_the_outgoing_stream_continuous() {
    let mut sim = Sim::new(Instant::now(), 5);
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::av());
    sim.run_for(secs(2));
    sim.client_mut(a).restart_video(30_000);
    sim.run_for(secs(2));
    let v = sim
        .client(b)
        .stream_from(sim.client(a).id, TrackKind::Video)
        .unwrap();
    assert_eq!(v.ssrcs.len(), 1, "the subscriber sees one stream");
    assert_eq!(v.gaps(), 0, "sequence numbers continue across the restart");
    assert!(v.keyframes >= 2, "the new source starts on a keyframe");
    assert!(v.last_at.unwrap() > sim.start + secs(3));
    // picture ids continue too: each frame's is the previous + 1
    assert!(
        v.picture_ids.len() > 100,
        "{} picture ids seen",
        v.picture_ids.len()
    );
    assert!(
        v.picture_ids
            .windows(2)
            .all(|w| w[1] == (w[0] + 1) & 0x7fff),
        "picture ids jump"
    );
}

#[test]
fn a_late_subscriber_gets_a_keyframe_at_once() {
    let mut sim = Sim::new(Instant::now(), 6);
    let mut spec = ClientSpec::av();
    spec.keyframe_every = secs(1000); // no periodic keyframes: only requested ones
    let a = sim.join("room", spec);
    sim.run_for(secs(5));
    let joined = sim.now;
    let b = sim.join("room", ClientSpec::av());
    sim.run_for(secs(2));
    assert!(sim.client(a).keyframe_requests_received >= 1);
    let v = sim
        .client(b)
        .stream_from(sim.client(a).id, TrackKind::Video)
        .unwrap();
    let wait = v.first_at.unwrap() - joined;
    eprintln!("first video {:?} after join", wait);
    assert!(
        wait < Duration::from_millis(500),
        "first video after {wait:?}"
    );
    assert!(v.keyframes >= 1);
    assert!(v.packets > 60);
}

#[test]
fn simulcast_publisher_forwards_one_layer_continuously() {
    let mut sim = Sim::new(Instant::now(), 7);
    let a = sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::av());
    sim.run_for(secs(4));
    let v = sim
        .client(b)
        .stream_from(sim.client(a).id, TrackKind::Video)
        .unwrap();
    assert_eq!(v.ssrcs.len(), 1);
    assert_eq!(v.gaps(), 0);
    // Bandwidth estimation starts at 1 Mbps: the subscriber starts low and climbs to the
    // top layer (index 2, f), where it stays.
    assert_eq!(
        v.layer_runs.last().map(|r| r.0),
        Some(2),
        "{:?}",
        v.layer_runs
    );
    assert!(v.layers[&2] > v.packets / 2, "{:?}", v.layers);
    // 1.7 Mbps at 30 fps: about 210 packets/s
    assert!(v.packets > 500, "{} packets", v.packets);
}

#[test]
fn h264_and_vp9_are_forwarded_starting_on_keyframes() {
    use sfu_core::str0m::format::Codec;
    for codec in [Codec::H264, Codec::Vp9] {
        let mut sim = Sim::new(Instant::now(), 8);
        let a = sim.join(
            "room",
            ClientSpec {
                codec,
                ..ClientSpec::av()
            },
        );
        sim.run_for(secs(1));
        let b = sim.join("room", ClientSpec::av());
        sim.run_for(secs(3));
        let v = sim
            .client(b)
            .stream_from(sim.client(a).id, TrackKind::Video)
            .unwrap_or_else(|| panic!("{codec:?} video"));
        assert_eq!(v.codec, Some(codec));
        assert!(v.packets > 150, "{codec:?}: {} packets", v.packets);
        assert!(
            v.keyframes >= 1,
            "{codec:?}: the late subscriber starts on a keyframe"
        );
        assert_eq!(v.gaps(), 0);
    }
}

#[test]
fn one_way_latency_is_the_path_delay() {
    let mut sim = Sim::new(Instant::now(), 9);
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::av());
    let up = LinkConfig {
        delay: Duration::from_millis(15),
        ..Default::default()
    };
    let down = LinkConfig {
        delay: Duration::from_millis(25),
        ..Default::default()
    };
    sim.set_link(a, up, down);
    sim.set_link(b, up, down);
    sim.run_for(secs(3));
    let from_a = sim.client(a).id;
    for kind in [TrackKind::Audio, TrackKind::Video] {
        let s = sim.client(b).stream_from(from_a, kind).unwrap();
        assert!(
            s.latencies_us.len() as u64 >= s.packets * 9 / 10,
            "{kind:?}: stamps read from most packets"
        );
        let mut l = s.latencies_us.clone();
        l.sort_unstable();
        let median = l[l.len() / 2];
        // a's uplink 15 ms + b's downlink 25 ms; the virtual clock's 100 µs step at most
        assert!(
            (40_000..41_000).contains(&median),
            "{kind:?}: median one-way latency {median} µs"
        );
    }
}

#[test]
fn synthetic_media_rates_match_the_configuration() {
    let mut sim = Sim::new(Instant::now(), 10);
    sim.dynacast = false; // alone in its room, the publisher would be told to stop
    let mut spec = ClientSpec::simulcast();
    spec.keyframe_every = secs(1_000);
    let a = sim.join("room", spec.clone());
    sim.run_for(secs(1));
    let before = sim.client(a).video_sent();
    sim.run_for(secs(10));
    let after = sim.client(a).video_sent();
    for (i, layer) in spec.video.iter().enumerate() {
        let kbps = (after[i].0 - before[i].0) as f64 * 8.0 / 10.0 / 1000.0;
        let fps = (after[i].1 - before[i].1) as f64 / 10.0;
        eprintln!("layer {i}: {kbps:.1} kbps, {fps:.2} fps");
        assert!(
            (kbps / layer.kbps as f64 - 1.0).abs() < 0.05,
            "layer {i}: {kbps} kbps vs {}",
            layer.kbps
        );
        assert!(
            (fps / layer.fps as f64 - 1.0).abs() < 0.05,
            "layer {i}: {fps} fps vs {}",
            layer.fps
        );
    }
}

#[test]
fn a_keyframe_request_gets_a_keyframe_from_the_synthetic_publisher() {
    let mut sim = Sim::new(Instant::now(), 11);
    let mut spec = ClientSpec::av();
    spec.keyframe_every = secs(1_000);
    let a = sim.join("room", spec);
    let b = sim.join("room", ClientSpec::av());
    sim.run_for(secs(2));
    let id = sim.client(a).id;
    let k0 = sim
        .client(b)
        .stream_from(id, TrackKind::Video)
        .unwrap()
        .keyframes;
    let r0 = sim.client(a).keyframe_requests_received;
    // A third participant joins: the SFU asks a for a keyframe, which reaches b too.
    sim.join("room", ClientSpec::av());
    sim.run_for(secs(1));
    assert!(sim.client(a).keyframe_requests_received > r0);
    assert!(
        sim.client(b)
            .stream_from(id, TrackKind::Video)
            .unwrap()
            .keyframes
            > k0
    );
}

#[test]
fn permissions_and_mutes_apply_live() {
    use sfu_core::Command;
    let mut sim = Sim::new(Instant::now(), 12);
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::av());
    sim.run_for(secs(2));
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let count = |sim: &Sim, me, from, kind| {
        sim.client(me)
            .stream_from(from, kind)
            .map_or(0, |s| s.packets)
    };

    // An admin mutes a's audio: b stops getting it; video goes on.
    sim.command(Command::SetMuted {
        participant: ida,
        kind: TrackKind::Audio,
        muted: true,
    });
    sim.run_for(Duration::from_millis(200));
    let (au, vi) = (
        count(&sim, b, ida, TrackKind::Audio),
        count(&sim, b, ida, TrackKind::Video),
    );
    sim.run_for(secs(1));
    assert_eq!(
        count(&sim, b, ida, TrackKind::Audio),
        au,
        "muted audio still forwarded"
    );
    assert!(count(&sim, b, ida, TrackKind::Video) > vi + 30);
    // Unmuted: audio flows again with no gap in the outgoing sequence.
    sim.command(Command::SetMuted {
        participant: ida,
        kind: TrackKind::Audio,
        muted: false,
    });
    sim.run_for(secs(1));
    let audio = sim.client(b).stream_from(ida, TrackKind::Audio).unwrap();
    assert!(audio.packets > au + 30);
    assert_eq!(audio.gaps(), 0);

    // Revoke a's publish grant: its tracks are unpublished and b is told by renegotiation.
    sim.command(Command::SetPermissions {
        participant: ida,
        can_publish: false,
        can_subscribe: true,
    });
    sim.run_for(secs(1));
    assert_eq!(
        sim.events_matching(
            |e| matches!(e, Event::TrackUnpublished { participant, .. } if *participant == ida)
        )
        .len(),
        2
    );
    assert!(sim.client(b).offered.iter().all(|t| t.publisher != ida));
    // Revoke b's subscribe grant: a's... b no longer receives anything, a still gets b.
    sim.command(Command::SetPermissions {
        participant: idb,
        can_publish: true,
        can_subscribe: false,
    });
    sim.run_for(secs(1));
    assert!(
        sim.client(b).offered.is_empty(),
        "{:?}",
        sim.client(b).offered
    );
    let from_b = count(&sim, a, idb, TrackKind::Video);
    sim.run_for(secs(1));
    assert!(count(&sim, a, idb, TrackKind::Video) > from_b + 30);
    // Grant subscribe again: b gets what is published (nothing from a, which cannot publish).
    sim.command(Command::SetPermissions {
        participant: idb,
        can_publish: true,
        can_subscribe: true,
    });
    sim.run_for(secs(1));
    assert_eq!(sim.shard.participant_count(), 2);
}

#[test]
fn the_active_speaker_follows_the_audio_levels() {
    let mut sim = Sim::new(Instant::now(), 13);
    let a = sim.join(
        "room",
        ClientSpec {
            audio_level: -20,
            ..ClientSpec::av()
        },
    );
    let b = sim.join(
        "room",
        ClientSpec {
            audio_level: -90,
            ..ClientSpec::av()
        },
    );
    sim.run_for(secs(2));
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let speakers = |sim: &Sim| -> Vec<(Instant, sfu_core::ParticipantId)> {
        sim.events
            .iter()
            .filter_map(|(t, e)| {
                if let Event::ActiveSpeaker { participant, .. } = e {
                    Some((*t, *participant))
                } else {
                    None
                }
            })
            .collect()
    };
    assert_eq!(
        speakers(&sim).iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![ida]
    );
    let switch_at = sim.now;
    sim.client_mut(a).spec.audio_level = -100;
    sim.client_mut(b).spec.audio_level = -25;
    sim.run_for(secs(2));
    let s = speakers(&sim);
    assert_eq!(
        s.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![ida, idb],
        "exactly one change"
    );
    let took = s[1].0 - switch_at;
    eprintln!("speaker change took {took:?}");
    assert!(
        took < Duration::from_millis(1_000),
        "speaker change took {took:?}"
    );
}

#[test]
fn whep_viewers_play_a_participant_or_follow_the_speaker() {
    use sfu_core::str0m::format::Codec;
    let mut sim = Sim::new(Instant::now(), 14);
    // a: loud, VP8; b: quiet, H.264 — the codec tells the viewer whose video it gets.
    let a = sim.join(
        "room",
        ClientSpec {
            audio_level: -20,
            ..ClientSpec::av()
        },
    );
    let b = sim.join(
        "room",
        ClientSpec {
            audio_level: -90,
            codec: Codec::H264,
            ..ClientSpec::av()
        },
    );
    sim.run_for(secs(1));
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let fixed = sim.join_whep("room", Some(idb));
    let follower = sim.join_whep("room", None);
    sim.run_for(secs(3));
    let v = sim
        .client(fixed)
        .stream_from(idb, TrackKind::Video)
        .expect("fixed viewer gets b's video");
    assert_eq!(v.codec, Some(Codec::H264));
    assert!(v.packets > 100 && v.keyframes >= 1);
    let f = sim
        .client(follower)
        .received
        .values()
        .find(|r| r.kind == Some(TrackKind::Video))
        .expect("follower video")
        .clone();
    assert_eq!(
        f.codec,
        Some(Codec::Vp8),
        "the follower shows the speaker, a"
    );
    let before = f.packets;
    // b starts talking, a stops: the follower's m-lines switch to b, continuously.
    sim.client_mut(a).spec.audio_level = -100;
    sim.client_mut(b).spec.audio_level = -20;
    sim.run_for(secs(3));
    let f = sim
        .client(follower)
        .received
        .values()
        .find(|r| r.kind == Some(TrackKind::Video))
        .unwrap();
    assert_eq!(f.codec, Some(Codec::H264), "the follower switched to b");
    assert!(f.packets > before + 100);
    assert_eq!(f.ssrcs.len(), 1, "one outgoing stream");
    assert_eq!(f.gaps(), 0, "sequence numbers continue across the switch");
    let audio = sim
        .client(follower)
        .received
        .values()
        .find(|r| r.kind == Some(TrackKind::Audio))
        .unwrap();
    assert_eq!(audio.gaps(), 0);
    // WHEP viewers are no subscribers of the server's offers: none were made to them.
    assert_eq!(sim.client(fixed).offers_received, 0);
    let _ = ida;
}

/// When the subscriber's video first arrives on `layer` at or after `from`.
fn reached(v: &sfu_core::testkit::RecvStream, layer: u8, from: Instant) -> Option<Duration> {
    v.layer_runs
        .iter()
        .find(|(l, t)| *l == layer && *t >= from)
        .map(|(_, t)| *t - from)
        .or_else(|| (v.layer_at(from) == Some(layer)).then_some(Duration::ZERO))
}

#[test]
fn a_downlink_drop_moves_the_subscriber_down_and_back_up() {
    let mut sim = Sim::new(Instant::now(), 15);
    let a = sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::viewer());

    let cap = capped;
    sim.set_link(b, LinkConfig::default(), cap(3_000));
    sim.run_for(secs(10));
    let id = sim.client(a).id;
    let v = sim
        .client(b)
        .stream_from(id, TrackKind::Video)
        .unwrap()
        .clone();
    assert_eq!(
        v.layer_at(sim.now),
        Some(2),
        "on the top layer at 3 Mbps: {:?}",
        v.layer_runs
    );
    let k0 = sim.client(a).keyframe_requests_received;
    // t = 10 s: the downlink drops to 400 kbps.
    let drop_at = sim.now;
    sim.set_link(b, LinkConfig::default(), cap(400));
    sim.run_for(secs(20));
    let v = sim
        .client(b)
        .stream_from(id, TrackKind::Video)
        .unwrap()
        .clone();
    let down = reached(&v, 0, drop_at).expect("reaches the low layer");
    let gap = v.max_video_gap(drop_at, drop_at + secs(20));
    let k1 = sim.client(a).keyframe_requests_received;
    eprintln!(
        "down to q in {down:?}; longest video gap {gap:?}; keyframe requests {}; runs {:?}",
        k1 - k0,
        v.layer_runs
            .iter()
            .map(|r| (r.0, (r.1 - sim.start).as_millis()))
            .collect::<Vec<_>>()
    );
    assert!(down < secs(2), "took {down:?} to reach the low layer");
    assert!(gap < Duration::from_millis(500), "video stalled {gap:?}");
    let steps_down = v.layer_runs.iter().filter(|(_, t)| *t >= drop_at).count() as u32;
    assert_eq!(k1 - k0, steps_down, "one keyframe request per switch");
    // t = 30 s: the link recovers.
    let up_at = sim.now;
    sim.set_link(b, LinkConfig::default(), cap(3_000));
    sim.run_for(secs(15));
    let v = sim
        .client(b)
        .stream_from(id, TrackKind::Video)
        .unwrap()
        .clone();
    let up = reached(&v, 2, up_at).expect("climbs back to the top layer");
    eprintln!(
        "back to f in {up:?}; runs {:?}",
        v.layer_runs
            .iter()
            .map(|r| (r.0, (r.1 - sim.start).as_millis()))
            .collect::<Vec<_>>()
    );
    assert!(up < secs(10), "took {up:?} to recover");
    eprintln!(
        "gaps overall {}, after the recovery {}",
        v.gaps(),
        v.video_gaps_after(up_at + secs(1))
    );
    assert_eq!(
        v.video_gaps_after(up_at + secs(1)),
        0,
        "the upgrade caused no loss"
    );
}

#[test]
fn subscribers_with_different_caps_get_different_layers() {
    let mut sim = Sim::new(Instant::now(), 16);
    let a = sim.join("room", ClientSpec::simulcast());
    let viewer = || ClientSpec::viewer();
    let subs = [
        sim.join("room", viewer()),
        sim.join("room", viewer()),
        sim.join("room", viewer()),
    ];
    for (s, kbps) in subs.iter().zip([300u64, 900, 4_000]) {
        sim.set_link(
            *s,
            LinkConfig::default(),
            LinkConfig {
                rate_bps: Some(kbps * 1000),
                max_queue: Duration::from_millis(200),
                ..Default::default()
            },
        );
    }
    sim.run_for(secs(15));
    let id = sim.client(a).id;
    let layers: Vec<Option<u8>> = subs
        .iter()
        .map(|s| {
            sim.client(*s)
                .stream_from(id, TrackKind::Video)
                .and_then(|v| v.layer_at(sim.now))
        })
        .collect();
    eprintln!("layers at 300 / 900 / 4000 kbps: {layers:?}");
    assert_eq!(layers, vec![Some(0), Some(1), Some(2)]);
}

#[test]
fn subscribers_are_told_of_layer_changes_and_pauses() {
    let mut sim = Sim::new(Instant::now(), 17);
    sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::viewer());
    let cap = capped;
    sim.set_link(b, LinkConfig::default(), cap(3_000));
    sim.run_for(secs(8));
    let idb = sim.client(b).id;
    let changes = |sim: &Sim| -> Vec<(Option<String>, bool)> {
        sim.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::SubscriptionChanged {
                    participant,
                    layer,
                    paused,
                    ..
                } if *participant == idb => Some((layer.clone(), *paused)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        changes(&sim).last(),
        Some(&(Some("f".to_string()), false)),
        "{:?}",
        changes(&sim)
    );
    // Far too little for even the lowest layer: paused (audio would go on), then resumed.
    sim.set_link(b, LinkConfig::default(), cap(60));
    sim.run_for(secs(10));
    assert!(
        changes(&sim).contains(&(None, true)),
        "paused: {:?}",
        changes(&sim)
    );
    sim.set_link(b, LinkConfig::default(), cap(3_000));
    sim.run_for(secs(15));
    let c = changes(&sim);
    let after_pause = c.iter().rposition(|x| x.1).unwrap();
    assert!(
        c[after_pause + 1..].iter().any(|x| x.0.is_some() && !x.1),
        "resumed: {c:?}"
    );
    eprintln!("{c:?}");
}

#[test]
fn the_tile_size_caps_the_layer_and_a_hidden_tile_gets_no_video() {
    use sfu_core::Command;
    let mut sim = Sim::new(Instant::now(), 18);
    let a = sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(6));
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let video = sim
        .client(b)
        .offered
        .iter()
        .find(|t| t.kind == TrackKind::Video)
        .unwrap()
        .track;
    let layer = |sim: &Sim| {
        sim.client(b)
            .stream_from(ida, TrackKind::Video)
            .and_then(|v| v.layer_at(sim.now))
    };
    assert_eq!(layer(&sim), Some(2), "no viewport: the best layer");
    let set = |sim: &mut Sim, w, h, visible| {
        sim.command(Command::SetViewport {
            participant: idb,
            track: video,
            width: w,
            height: h,
            visible,
        })
    };
    set(&mut sim, 320, 180, true);
    sim.run_for(secs(2));
    assert_eq!(
        layer(&sim),
        Some(0),
        "a 320×180 tile gets the 320×180 layer"
    );
    set(&mut sim, 600, 338, true);
    sim.run_for(secs(5));
    assert_eq!(layer(&sim), Some(1), "a 600 px tile gets the 640 px layer");
    set(&mut sim, 1280, 720, false);
    sim.run_for(secs(2));
    let before = sim
        .client(b)
        .stream_from(ida, TrackKind::Video)
        .unwrap()
        .packets;
    sim.run_for(secs(2));
    assert_eq!(
        sim.client(b)
            .stream_from(ida, TrackKind::Video)
            .unwrap()
            .packets,
        before,
        "hidden: no video"
    );
    set(&mut sim, 1280, 720, true);
    sim.run_for(secs(5));
    assert_eq!(
        layer(&sim),
        Some(2),
        "visible and large again: the top layer"
    );
}

#[test]
fn the_speakers_video_gets_the_bandwidth_first() {
    let mut sim = Sim::new(Instant::now(), 19);
    let loud = sim.join(
        "room",
        ClientSpec {
            audio_level: -20,
            ..ClientSpec::simulcast()
        },
    );
    let quiet = sim.join(
        "room",
        ClientSpec {
            audio_level: -90,
            ..ClientSpec::simulcast()
        },
    );
    let v = sim.join("room", ClientSpec::viewer());
    // Room for the top layer of one video, not of both (1.7 Mbps each).
    sim.set_link(
        v,
        LinkConfig::default(),
        LinkConfig {
            rate_bps: Some(3_000_000),
            max_queue: Duration::from_millis(200),
            ..Default::default()
        },
    );
    sim.run_for(secs(12));
    let layer = |sim: &Sim, who| {
        sim.client(v)
            .stream_from(sim.client(who).id, TrackKind::Video)
            .and_then(|s| s.layer_at(sim.now))
    };
    eprintln!(
        "speaker {:?}, other {:?}",
        layer(&sim, loud),
        layer(&sim, quiet)
    );
    assert_eq!(
        layer(&sim, loud),
        Some(2),
        "the speaker's video on the top layer"
    );
    assert!(layer(&sim, quiet) < Some(2), "the other below it");
    // The other one speaks now: the roles swap.
    sim.client_mut(loud).spec.audio_level = -90;
    sim.client_mut(quiet).spec.audio_level = -20;
    sim.run_for(secs(12));
    eprintln!(
        "speaker {:?}, other {:?}",
        layer(&sim, quiet),
        layer(&sim, loud)
    );
    assert_eq!(layer(&sim, quiet), Some(2));
    assert!(layer(&sim, loud) < Some(2));
}

/// Frames the publisher sent per layer during `d`.
fn frames_during(sim: &mut Sim, c: ClientIdx, d: Duration) -> Vec<u64> {
    let before = sim.client(c).video_sent();
    sim.run_for(d);
    sim.client(c)
        .video_sent()
        .iter()
        .zip(before)
        .map(|(a, b)| a.1 - b.1)
        .collect()
}

#[test]
fn dynacast_stops_the_layers_nobody_needs_and_restarts_them() {
    use sfu_core::Command;
    let mut sim = Sim::new(Instant::now(), 20);
    let a = sim.join("room", ClientSpec::simulcast());
    // Alone in the room: after a few seconds the publisher is told to stop every layer.
    sim.run_for(secs(6));
    assert_eq!(
        frames_during(&mut sim, a, secs(2)),
        vec![0, 0, 0],
        "nobody subscribes: nothing encoded"
    );
    // A viewer joins: the layers come back at once and the viewer gets video.
    let joined = sim.now;
    let b = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(4));
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let v = sim
        .client(b)
        .stream_from(ida, TrackKind::Video)
        .expect("video reaches the late viewer")
        .clone();
    let first = v.video_arrivals.first().copied().unwrap();
    eprintln!("first video {:?} after the join", first - joined);
    assert!(first - joined < secs(3));
    // A 320 px tile: after a few seconds h and f are switched off, q keeps flowing.
    let video = sim
        .client(b)
        .offered
        .iter()
        .find(|t| t.kind == TrackKind::Video)
        .unwrap()
        .track;
    sim.command(Command::SetViewport {
        participant: idb,
        track: video,
        width: 320,
        height: 180,
        visible: true,
    });
    sim.run_for(secs(5));
    let sent = frames_during(&mut sim, a, secs(2));
    eprintln!("frames per layer in 2 s with a 320 px tile: {sent:?}");
    assert!(sent[0] > 10 && sent[1] == 0 && sent[2] == 0, "{sent:?}");
    let told: Vec<_> = sim
        .events_matching(|e| matches!(e, Event::PublisherLayers { .. }))
        .into_iter()
        .cloned()
        .collect();
    eprintln!("publisher told: {told:?}");
    // The tile grows: f is switched back on and the viewer climbs to it without a gap.
    let grown = sim.now;
    sim.command(Command::SetViewport {
        participant: idb,
        track: video,
        width: 1280,
        height: 720,
        visible: true,
    });
    sim.run_for(secs(6));
    let v = sim
        .client(b)
        .stream_from(ida, TrackKind::Video)
        .unwrap()
        .clone();
    let up = reached(&v, 2, grown).expect("the top layer again");
    eprintln!(
        "back on f {up:?} after the tile grew; longest gap {:?}",
        v.max_video_gap(grown, sim.now)
    );
    assert!(up < secs(3), "{up:?}");
    assert!(v.max_video_gap(grown, sim.now) < Duration::from_millis(300));
    assert_eq!(v.gaps(), 0, "sequence numbers stay continuous");
    // The viewer leaves: everything goes off again.
    sim.leave(b);
    sim.run_for(secs(5));
    assert_eq!(frames_during(&mut sim, a, secs(2)), vec![0, 0, 0]);
}

#[test]
fn a_preferred_layer_caps_what_the_subscriber_gets() {
    use sfu_core::Command;
    let mut sim = Sim::new(Instant::now(), 21);
    let a = sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(6));
    let (ida, idb) = (sim.client(a).id, sim.client(b).id);
    let video = sim
        .client(b)
        .offered
        .iter()
        .find(|t| t.kind == TrackKind::Video)
        .unwrap()
        .track;
    let layer = |sim: &Sim| {
        sim.client(b)
            .stream_from(ida, TrackKind::Video)
            .and_then(|v| v.layer_at(sim.now))
    };
    assert_eq!(layer(&sim), Some(2));
    sim.command(Command::SetPreferredLayer {
        participant: idb,
        track: video,
        max_rank: Some(1),
    });
    sim.run_for(secs(2));
    assert_eq!(layer(&sim), Some(1), "asked for at most h");
    sim.command(Command::SetPreferredLayer {
        participant: idb,
        track: video,
        max_rank: Some(0),
    });
    sim.run_for(secs(2));
    assert_eq!(layer(&sim), Some(0), "asked for q");
    sim.command(Command::SetPreferredLayer {
        participant: idb,
        track: video,
        max_rank: None,
    });
    sim.run_for(secs(6));
    assert_eq!(layer(&sim), Some(2), "the cap lifted");
    // An unknown track or participant is harmless.
    sim.command(Command::SetPreferredLayer {
        participant: idb,
        track: sfu_core::TrackId(999),
        max_rank: Some(0),
    });
    sim.command(Command::SetPreferredLayer {
        participant: sfu_core::ParticipantId(999),
        track: video,
        max_rank: Some(0),
    });
    sim.run_for(secs(1));
    assert_eq!(layer(&sim), Some(2));
}

#[test]
fn a_screen_share_goes_before_the_speakers_camera() {
    use sfu_core::{Command, TrackSource};
    let mut sim = Sim::new(Instant::now(), 22);
    let cam = sim.join(
        "room",
        ClientSpec {
            audio_level: -20,
            ..ClientSpec::simulcast()
        },
    );
    let screen = sim.join(
        "room",
        ClientSpec {
            audio_level: -90,
            ..ClientSpec::simulcast()
        },
    );
    let idscreen = sim.client(screen).id;
    sim.run_for(secs(1));
    // The screen sharer declares its video m-line.
    let mid = sim
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::TrackPublished {
                participant,
                kind: TrackKind::Video,
                mid,
                ..
            } if *participant == idscreen => Some(mid.clone()),
            _ => None,
        })
        .unwrap();
    sim.command(Command::SetSources {
        participant: idscreen,
        sources: vec![(mid, TrackSource::ScreenShare)],
    });
    let v = sim.join("room", ClientSpec::viewer());
    sim.set_link(
        v,
        LinkConfig::default(),
        LinkConfig {
            rate_bps: Some(2_600_000),
            max_queue: Duration::from_millis(200),
            ..Default::default()
        },
    );
    sim.run_for(secs(14));
    let layer = |sim: &Sim, who| {
        sim.client(v)
            .stream_from(sim.client(who).id, TrackKind::Video)
            .and_then(|s| s.layer_at(sim.now))
    };
    eprintln!(
        "screen {:?}, speaker's camera {:?}",
        layer(&sim, screen),
        layer(&sim, cam)
    );
    assert_eq!(
        layer(&sim, screen),
        Some(2),
        "the screen share on the top layer"
    );
    assert!(layer(&sim, cam) < Some(2), "the speaker's camera below it");
}

#[test]
fn subscription_stats_report_layers_rates_and_switches() {
    use sfu_core::Command;
    let mut sim = Sim::new(Instant::now(), 23);
    let a = sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(8));
    let idb = sim.client(b).id;
    let video = sim
        .client(b)
        .offered
        .iter()
        .find(|t| t.kind == TrackKind::Video)
        .unwrap()
        .track;
    let last = |sim: &Sim| {
        sim.events.iter().rev().find_map(|(_, e)| match e {
            Event::SubscriptionStats {
                participant,
                estimate_bps,
                subscriptions,
            } if *participant == idb => Some((*estimate_bps, subscriptions[0].clone())),
            _ => None,
        })
    };
    let (estimate, s) = last(&sim).expect("stats reported");
    eprintln!("estimate {estimate:?}: {s:?}");
    assert_eq!(s.publisher, sim.client(a).id);
    assert_eq!(
        (s.current.as_deref(), s.target.as_deref()),
        (Some("f"), Some("f"))
    );
    // h is switched off by dynacast: nobody needs it.
    assert_eq!(s.available, vec!["q", "f"]);
    assert!(
        (s.used_bps as f64 / 1_700_000.0 - 1.0).abs() < 0.3,
        "used {} bps of f",
        s.used_bps
    );
    assert!(s.allocated_bps > 1_000_000);
    assert!(estimate.unwrap_or(0) > 1_700_000);
    sim.command(Command::SetViewport {
        participant: idb,
        track: video,
        width: 320,
        height: 180,
        visible: true,
    });
    sim.run_for(secs(4));
    let (_, s) = last(&sim).unwrap();
    eprintln!("{s:?}");
    assert_eq!(s.current.as_deref(), Some("q"));
    assert!(s.switches >= 1);
    assert!(s.used_bps < 300_000, "{}", s.used_bps);
}

#[test]
fn vp8_temporal_layers_drop_frame_rate_before_resolution() {
    let mut sim = Sim::new(Instant::now(), 24);
    let a = sim.join(
        "room",
        ClientSpec {
            temporal_layers: 3,
            ..ClientSpec::simulcast()
        },
    );
    let open = sim.join("room", ClientSpec::viewer());
    let tight = sim.join("room", ClientSpec::viewer());
    // f alone is 1.7 Mbps; its T0+T1 frames half of that. 1.2 Mbps fits f at 15 fps,
    // not at 30, and is more than h at 30 fps needs.
    let cap = capped;
    sim.set_link(open, LinkConfig::default(), cap(4_000));
    sim.set_link(tight, LinkConfig::default(), cap(1_200));
    // GCC overshoots from its 2.5 Mbps start on the tight link, then climbs back.
    sim.run_for(secs(30));
    let id = sim.client(a).id;
    let (from, to) = (sim.now - secs(4), sim.now);
    for (who, name) in [(open, "open"), (tight, "1.2 Mbps")] {
        let v = sim.client(who).stream_from(id, TrackKind::Video).unwrap();
        let tids: std::collections::BTreeSet<Option<u8>> = v
            .frames
            .iter()
            .filter(|f| f.0 >= from)
            .map(|f| f.1)
            .collect();
        eprintln!(
            "{name}: layer {:?}, {:.1} fps, temporal layers {tids:?}, seq gaps {}",
            v.layer_at(to),
            v.fps(from, to),
            v.video_gaps_after(from)
        );
    }
    let idt = sim.client(tight).id;
    for (at, e) in &sim.events {
        if let Event::SubscriptionStats {
            participant,
            estimate_bps,
            subscriptions,
        } = e
        {
            if *participant == idt {
                let s = subscriptions.iter().find(|s| s.publisher == id).unwrap();
                eprintln!(
                    "{:>6} ms: estimate {estimate_bps:?}, {:?}/{:?} alloc {} used {}",
                    (*at - sim.start).as_millis(),
                    s.current,
                    s.target,
                    s.allocated_bps,
                    s.used_bps
                );
            }
        }
    }
    let o = sim.client(open).stream_from(id, TrackKind::Video).unwrap();
    assert_eq!(o.layer_at(to), Some(2));
    assert!(o.fps(from, to) > 27.0, "the open link gets every frame");
    let t = sim.client(tight).stream_from(id, TrackKind::Video).unwrap();
    assert_eq!(
        t.layer_at(to),
        Some(2),
        "full resolution at a lower frame rate"
    );
    // T0+T1 is 15 fps; near the link's rate the allocation sometimes dips to T0 (7.5 fps)
    // for a while (GCC's estimate wobbles around 1.2 Mbps), so the bound is loose: the
    // point is full resolution at a reduced frame rate, never h.
    let fps = t.fps(from, to);
    assert!(
        (7.0..20.0).contains(&fps),
        "T0(+T1): 7.5-15 fps, got {fps:.1}"
    );
    assert!(
        t.frames
            .iter()
            .filter(|f| f.0 >= from)
            .all(|f| f.1 < Some(2)),
        "no T2 frame reaches it"
    );
    // Dropped frames leave no hole: sequence numbers and picture ids stay dense.
    assert_eq!(t.video_gaps_after(from), 0);
    let pics: Vec<u16> = t.picture_ids.iter().rev().take(40).rev().copied().collect();
    assert!(
        pics.windows(2).all(|w| w[1] == (w[0] + 1) % 0x8000),
        "picture ids consecutive: {pics:?}"
    );
}

#[test]
fn a_panicking_peer_is_removed_and_nobody_else_notices() {
    use sfu_core::{GoneReason, PcKind};
    let mut sim = Sim::new(Instant::now(), 25);
    let a = sim.join("one", ClientSpec::av());
    let b = sim.join("one", ClientSpec::av());
    let c = sim.join("one", ClientSpec::av());
    let d = sim.join("two", ClientSpec::av());
    let e = sim.join("two", ClientSpec::av());
    sim.run_for(secs(3));
    let idb = sim.client(b).id;
    assert!(sim.shard.inject_panic(idb, PcKind::Publisher));
    let at = sim.now;
    sim.run_for(secs(4));
    // b is gone, as failed, and counted.
    let gone: Vec<_> = sim.events_matching(
        |ev| matches!(ev, Event::ParticipantGone { participant, .. } if *participant == idb),
    );
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(matches!(
        gone[0],
        Event::ParticipantGone {
            reason: GoneReason::Failed,
            ..
        }
    ));
    assert_eq!(sim.shard.stats().peer_panics, 1);
    assert!(!sim
        .events_matching(
            |ev| matches!(ev, Event::TrackUnpublished { participant, .. } if *participant == idb)
        )
        .is_empty());
    // Everyone else goes on: media in both rooms after the panic, no gap at all.
    for (me, other) in [(a, c), (c, a), (d, e), (e, d)] {
        let from = sim.client(other).id;
        let v = sim.client(me).stream_from(from, TrackKind::Video).unwrap();
        let after = v
            .video_arrivals
            .iter()
            .filter(|t| **t > at + secs(1))
            .count();
        assert!(
            after > 100,
            "{me:?} <- {other:?}: {after} video packets after the panic"
        );
        assert_eq!(v.gaps(), 0);
        assert_eq!(
            sim.client(me)
                .stream_from(from, TrackKind::Audio)
                .unwrap()
                .gaps(),
            0
        );
    }
    // Nothing from b arrives any more.
    let v = sim.client(a).stream_from(idb, TrackKind::Video).unwrap();
    assert!(v.video_arrivals.iter().all(|t| *t < at + secs(1)));
}

//! Deterministic simulations of whole calls through one shard (the `testkit`).
//! `Instant::now()` only gives each simulation an origin for its virtual clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use sfu_core::testkit::{ClientIdx, ClientSpec, LinkConfig, Sim};
use sfu_core::{Event, GoneReason, TrackKind, ViewerOptions};

mod common;
use common::secs;

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
    let after = *at - (sim.start + secs(3));
    eprintln!("removed {after:?} after vanishing");
    // First interrupted (kept for the grace period), then removed.
    let interrupted = sim.events.iter().find(
        |(_, e)| matches!(e, Event::MediaInterrupted { participant } if *participant == gone),
    );
    let (t_int, _) = interrupted.expect("interrupted before it is removed");
    assert!(*at - *t_int >= secs(20), "kept for the 20 s grace period");
    assert!(sim.client(a).offered.iter().all(|t| t.publisher != gone));
    assert_eq!(sim.shard.participant_count(), 2);
}

#[test]
fn a_client_whose_path_breaks_for_a_while_keeps_its_place_and_its_media() {
    let (mut sim, [a, _b, c]) = three_party(5);
    sim.run_for(secs(3));
    let id = sim.client(c).id;
    let cut = LinkConfig {
        loss: 1.0,
        ..Default::default()
    };
    sim.set_link(c, cut, cut);
    // str0m (ICE-lite) calls a connection disconnected about 15 s after its last check.
    sim.run_for(secs(17));
    let interrupted = sim.events_matching(
        |e| matches!(e, Event::MediaInterrupted { participant } if *participant == id),
    );
    assert_eq!(interrupted.len(), 1, "the shard noticed the silence");
    sim.set_link(c, LinkConfig::default(), LinkConfig::default());
    let before = sim
        .client(a)
        .stream_from(id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    sim.run_for(secs(8));
    assert!(
        sim.events_matching(
            |e| matches!(e, Event::MediaRestored { participant } if *participant == id)
        )
        .len()
            == 1,
        "its connections came back"
    );
    assert!(sim
        .events_matching(|e| matches!(e, Event::ParticipantGone { .. }))
        .is_empty());
    let after = sim
        .client(a)
        .stream_from(id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    assert!(
        after > before + 100,
        "its video flows again: {before} → {after}"
    );
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
    // Answered by the shard from the layers' stores and the subscriptions' logs (str0m
    // keeps no packets for NACKs): most of what was asked for is still known.
    assert!(
        st.nack_resends > 10 && st.nack_resends > 4 * st.nack_unknown,
        "resent {} of the NACKed packets, {} unknown",
        st.nack_resends,
        st.nack_unknown
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
fn a_subscriber_without_video_gets_no_padding() {
    // A viewer that turns the room's video off (to save a mobile plan, say) receives the
    // audio and its control traffic, not the estimator's padding toward a video rate.
    let mut sim = Sim::new(Instant::now(), 43);
    sim.join("room", ClientSpec::av());
    let v = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(8));
    let kbps = |sim: &mut Sim, d: u64| {
        let before = sim.downlink_bytes(v);
        sim.run_for(secs(d));
        (sim.downlink_bytes(v) - before) * 8 / 1000 / d
    };
    let with_video = kbps(&mut sim, 2);
    let video = sim.client(v).offered_track(TrackKind::Video);
    sim.subscribe(v, video, false);
    sim.run_for(secs(3));
    let audio_only = kbps(&mut sim, 3);
    println!("downlink with video {with_video} kbps, audio only {audio_only} kbps");
    assert!(with_video > 500, "video flowed: {with_video} kbps");
    // Opus and its RTP/RTCP come to ~90 kbps here; padding toward the video rate made
    // it 335 before.
    assert!(audio_only < 150, "audio only: {audio_only} kbps");
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
    let a = sim.join("room", ClientSpec::av().speaking(-20));
    let b = sim.join("room", ClientSpec::av().speaking(-90));
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
    let a = sim.join("room", ClientSpec::av().speaking(-20));
    let b = sim.join(
        "room",
        ClientSpec {
            codec: Codec::H264,
            ..ClientSpec::av().speaking(-90)
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

/// A room of a SIP video endpoint `p` and two others, each publishing a codec of its own
/// so that the codec tells whose picture a view carries (p VP8, then H.264, then VP9, at
/// the given levels), and the endpoint's speaker view (with `content`) after 2 s.
fn endpoint_room(seed: u64, levels: [i8; 3], content: bool) -> (Sim, [ClientIdx; 3], ClientIdx) {
    use sfu_core::str0m::format::Codec;
    let mut sim = Sim::new(Instant::now(), seed);
    let mut who = [ClientIdx(0); 3];
    for (i, codec) in [Codec::Vp8, Codec::H264, Codec::Vp9]
        .into_iter()
        .enumerate()
    {
        let spec = ClientSpec {
            codec,
            ..ClientSpec::av().speaking(levels[i])
        };
        who[i] = sim.join("room", spec);
    }
    sim.run_for(secs(2));
    let except = Some(sim.client(who[0]).id);
    let view = sim.join_speaker_view(
        "room",
        ViewerOptions {
            except,
            content,
            ..Default::default()
        },
    );
    (sim, who, view)
}

/// The video a viewer receives.
fn view_video(sim: &Sim, view: ClientIdx) -> sfu_core::testkit::RecvStream {
    sim.client(view)
        .received
        .values()
        .find(|r| r.kind == Some(TrackKind::Video))
        .cloned()
        .expect("the view receives video")
}

/// A SIP video endpoint's speaker view (a WHEP viewer that leaves out the endpoint's own
/// participant): never its own picture, and it follows the others within 500 ms of the
/// speaker change (the keyframe request and the switch on the new speaker's keyframe).
#[test]
fn a_video_endpoints_speaker_view_never_shows_itself_and_follows_within_500_ms() {
    use sfu_core::str0m::format::Codec;
    let (mut sim, [p, _b, a], view) = endpoint_room(33, [-20, -90, -90], false);
    let (idp, ida) = (sim.client(p).id, sim.client(a).id);
    sim.run_for(secs(3));
    assert_eq!(
        view_video(&sim, view).codec,
        Some(Codec::H264),
        "p speaks, but its own view shows the first other publisher (b)"
    );
    // a speaks: the view switches to a's picture.
    sim.client_mut(p).spec.audio_level = -100;
    sim.client_mut(a).spec.audio_level = -20;
    let spoke = sim.now;
    let mut switched = None;
    for _ in 0..250 {
        sim.run_for(Duration::from_millis(20));
        if view_video(&sim, view).codec == Some(Codec::Vp9) {
            switched = Some(sim.now);
            break;
        }
    }
    let switched = switched.expect("the view follows a");
    let changed = sim
        .events
        .iter()
        .find(|(at, e)| {
            *at >= spoke
                && matches!(e, Event::ActiveSpeaker { participant, .. } if *participant == ida)
        })
        .map(|(at, _)| *at)
        .expect("a becomes the speaker");
    let latency = switched.saturating_duration_since(changed);
    println!(
        "speaker change → the view on the new speaker: {} ms (speech onset → view: {} ms)",
        latency.as_millis(),
        switched.duration_since(spoke).as_millis()
    );
    assert!(latency <= Duration::from_millis(500), "{latency:?}");
    // The shard measures the same: the change to the new speaker's first packet.
    let idv = sim.client(view).id;
    let measured: Vec<Duration> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SpeakerViewSwitched { participant, after } if *participant == idv => {
                Some(*after)
            }
            _ => None,
        })
        .collect();
    assert_eq!(measured.len(), 1, "one switch so far: {measured:?}");
    assert!(
        measured[0] <= latency,
        "{measured:?} within the {latency:?} seen"
    );
    // p speaks again: its view stays on a.
    sim.client_mut(a).spec.audio_level = -100;
    sim.client_mut(p).spec.audio_level = -20;
    sim.run_for(secs(3));
    assert!(!sim
        .events_matching(
            |e| matches!(e, Event::ActiveSpeaker { participant, .. } if *participant == idp)
        )
        .is_empty());
    let v = view_video(&sim, view);
    assert_eq!(v.codec, Some(Codec::Vp9), "still a, never p itself");
    assert_eq!(v.ssrcs.len(), 1, "one outgoing stream");
    assert_eq!(v.gaps(), 0, "sequence numbers continue across the switches");
}

/// A video endpoint without a content channel sees a screen share in place of the speaker
/// while it is on, and the speaker again after — one stream, its numbering continuous
/// through both changes (the sharer's leaving included).
#[test]
fn a_video_endpoints_view_shows_a_screen_share_while_it_is_on() {
    use sfu_core::str0m::format::Codec;
    // s (H.264) will share; a (VP9) speaks.
    let (mut sim, [_p, s, _a], view) = endpoint_room(34, [-90, -90, -20], true);
    sim.run_for(secs(3));
    assert_eq!(
        view_video(&sim, view).codec,
        Some(Codec::Vp9),
        "the speaker, a"
    );
    sim.declare_screen_share(s);
    sim.run_for(secs(2));
    assert_eq!(view_video(&sim, view).codec, Some(Codec::H264), "the share");
    // The sharer leaves: back to the speaker on the same stream.
    sim.leave(s);
    sim.run_for(secs(2));
    let v = view_video(&sim, view);
    assert_eq!(v.codec, Some(Codec::Vp9), "the speaker again");
    assert_eq!(v.ssrcs.len(), 1, "one outgoing stream");
    assert_eq!(v.gaps(), 0, "numbering continuous through both changes");
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

/// (mid, msid stream id) of every audio/video m-line of an SDP that has an `a=msid`.
fn msid_streams(sdp: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut mid = None;
    for l in sdp.lines() {
        if l.starts_with("m=") {
            mid = None;
        } else if let Some(m) = l.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_string());
        } else if let Some(v) = l.strip_prefix("a=msid:") {
            let stream = v.split(' ').next().unwrap_or_default().to_string();
            out.push((mid.clone().expect("a=mid before a=msid"), stream));
        }
    }
    out
}

#[test]
fn a_publishers_tracks_share_one_stream_id_across_renegotiations_and_in_whep() {
    use std::collections::BTreeMap;
    let mut sim = Sim::new(Instant::now(), 31);
    let a = sim.join("room", ClientSpec::av());
    let b = sim.join("room", ClientSpec::av());
    let c = sim.join("room", ClientSpec::av());
    sim.run_for(secs(2));
    // A fourth publisher later: c's subscriber connection is renegotiated.
    let d = sim.join("room", ClientSpec::av());
    sim.run_for(secs(2));
    let ids = [a, b, d].map(|x| sim.client(x).id);
    let viewer = sim.client(c);
    assert!(viewer.sdps_received.len() >= 2, "c got a renegotiation");
    // publisher → the stream ids its m-lines carried, over every offer c received.
    let mut by_publisher: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mids: BTreeMap<String, String> = viewer
        .offered
        .iter()
        .map(|t| (t.mid.clone(), t.publisher.to_string()))
        .collect();
    for sdp in &viewer.sdps_received {
        for (mid, stream) in msid_streams(sdp) {
            by_publisher
                .entry(mids[&mid].clone())
                .or_default()
                .push(stream);
        }
    }
    assert_eq!(by_publisher.len(), 3, "{by_publisher:?}");
    let mut seen = Vec::new();
    for (publisher, streams) in &by_publisher {
        // two m-lines (audio and video) in each offer that carried them
        assert!(streams.len() >= 2, "{publisher}: {streams:?}");
        assert!(
            streams.iter().all(|s| s == &streams[0]),
            "{publisher}: {streams:?}"
        );
        seen.push(streams[0].clone());
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "one stream id per publisher: {seen:?}");
    // WHEP answers: one stream id for both m-lines, for a fixed target and the speaker view.
    let fixed = sim.join_whep("room", Some(ids[1]));
    let follower = sim.join_whep("room", None);
    sim.run_for(secs(1));
    for w in [fixed, follower] {
        let answer = sim
            .client(w)
            .sdps_received
            .first()
            .expect("WHEP answer")
            .clone();
        let streams = msid_streams(&answer);
        assert_eq!(streams.len(), 2, "{answer}");
        assert_eq!(streams[0].1, streams[1].1, "{answer}");
    }
    let fixed_answer = &sim.client(fixed).sdps_received[0];
    assert_eq!(msid_streams(fixed_answer)[0].1, format!("PA_{}", ids[1]));
}

#[test]
fn a_subscriber_ice_restart_renews_its_credentials_and_keeps_its_media() {
    let (mut sim, [a, b, _c]) = three_party(6);
    sim.run_for(secs(3));
    let (id, from) = (sim.client(a).id, sim.client(b).id);
    let ufrags = |sim: &Sim| -> Vec<String> {
        sim.events_matching(
            |e| matches!(e, Event::SubscribeOffer { participant, .. } if *participant == id),
        )
        .iter()
        .filter_map(|e| match e {
            Event::SubscribeOffer { sdp, .. } => sdp
                .lines()
                .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
                .map(str::to_string),
            _ => None,
        })
        .collect()
    };
    let before = ufrags(&sim);
    let video = |sim: &Sim| {
        sim.client(a)
            .stream_from(from, TrackKind::Video)
            .map_or(0, |v| v.packets)
    };
    let packets = video(&sim);
    sim.command(sfu_core::Command::RestartSubscriberIce { participant: id });
    // run_for checks the shard's invariants: the connection is found by its new ufrag.
    sim.run_for(secs(3));
    let after = ufrags(&sim);
    assert_eq!(after.len(), before.len() + 1, "one more offer");
    assert_ne!(after.last(), before.last(), "with new credentials");
    let (known, used) = sim
        .shard
        .local_ufrag(id, sfu_core::PcKind::Subscriber)
        .expect("demultiplexed by its ufrag");
    assert_eq!(Some(&known), after.last(), "by the new one");
    assert_eq!(known, used);
    assert!(video(&sim) > packets + 100, "media goes on");
    assert!(sim
        .events_matching(|e| matches!(
            e,
            Event::ParticipantGone { .. } | Event::CommandFailed { .. }
        ))
        .is_empty());
}

/// A WHEP viewer that arrives before anyone publishes (the speaker view of an empty room)
/// gets the tracks when they appear, with the payload types it offered: video it can
/// decode, audio too.
#[test]
fn a_whep_viewer_that_arrives_first_plays_the_publisher_that_comes_later() {
    use sfu_core::str0m::format::Codec;
    let mut sim = Sim::new(Instant::now(), 15);
    let early = sim.join_whep("room", None);
    sim.run_for(secs(2));
    let a = sim.join("room", ClientSpec::av().speaking(-20));
    sim.run_for(secs(4));
    let ida = sim.client(a).id;
    let _ = ida;
    let got = |kind| {
        sim.client(early)
            .received
            .values()
            .find(|r| r.kind == Some(kind))
            .cloned()
    };
    let v = got(TrackKind::Video).expect("the early viewer gets the video");
    assert_eq!(
        v.codec,
        Some(Codec::Vp8),
        "a payload type it offered for VP8"
    );
    assert!(
        v.packets > 100 && v.keyframes >= 1,
        "{} packets, {} keyframes",
        v.packets,
        v.keyframes
    );
    let au = got(TrackKind::Audio).expect("the early viewer gets the audio");
    assert_eq!(au.codec, Some(Codec::Opus));
    assert!(au.packets > 100);
}

#[test]
fn a_subscriber_that_takes_a_stream_per_track_gets_the_publishers_sids_as_stream_ids() {
    use sfu_core::Command;
    let mut sim = Sim::new(Instant::now(), 37);
    let a = sim.join("room", ClientSpec::av());
    let a_id = sim.client(a).id;
    sim.run_for(secs(1));
    // a's client names its m-lines' tracks (a LiveKit client does so before its offer;
    // named after publishing, the tracks take the names too).
    let mut mids: Vec<String> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            sfu_core::Event::TrackPublished { mid, .. } => Some(mid.clone()),
            _ => None,
        })
        .collect();
    mids.sort();
    assert_eq!(mids.len(), 2);
    sim.command(Command::NameTracks {
        participant: a_id,
        sids: mids
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), format!("TR_{}_{}", a_id.0, i + 1)))
            .collect(),
    });
    let per_track = sim.join(
        "room",
        ClientSpec {
            track_streams: true,
            ..ClientSpec::viewer()
        },
    );
    let per_publisher = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(2));
    let streams = |c| {
        let mut s: Vec<String> = sim
            .client(c)
            .sdps_received
            .iter()
            .flat_map(|sdp| msid_streams(sdp))
            .map(|(_, s)| s)
            .collect();
        s.sort();
        s.dedup();
        s
    };
    assert_eq!(
        streams(per_track),
        [
            format!("PA_{}|TR_{}_1", a_id.0, a_id.0),
            format!("PA_{}|TR_{}_2", a_id.0, a_id.0)
        ]
    );
    assert_eq!(streams(per_publisher), [format!("PA_{}", a_id.0)]);
    // Both receive the media.
    for c in [per_track, per_publisher] {
        let packets: u64 = sim.client(c).received.values().map(|r| r.packets).sum();
        assert!(packets > 50, "media at {c:?}: {packets} packets");
    }
}

#[test]
fn without_auto_subscribe_a_participant_receives_only_the_tracks_it_asks_for() {
    use sfu_core::{Event, TrackKind};
    let mut sim = Sim::new(Instant::now(), 41);
    let a = sim.join("room", ClientSpec::av());
    let picky = sim.join(
        "room",
        ClientSpec {
            auto_subscribe: false,
            ..ClientSpec::viewer()
        },
    );
    let all = sim.join("room", ClientSpec::viewer());
    sim.run_for(secs(2));
    let packets =
        |sim: &Sim, c| -> u64 { sim.client(c).received.values().map(|r| r.packets).sum() };
    assert_eq!(
        packets(&sim, picky),
        0,
        "nothing asked for, nothing received"
    );
    assert!(packets(&sim, all) > 50);
    let a_id = sim.client(a).id;
    let tracks: Vec<(sfu_core::TrackId, TrackKind)> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::TrackPublished {
                participant,
                track,
                kind,
                ..
            } if *participant == a_id => Some((*track, *kind)),
            _ => None,
        })
        .collect();
    let video = tracks
        .iter()
        .find(|(_, k)| *k == TrackKind::Video)
        .unwrap()
        .0;
    sim.subscribe(picky, video, true);
    sim.run_for(secs(2));
    let kinds: Vec<TrackKind> = sim.client(picky).offered.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TrackKind::Video], "only the video it asked for");
    let before = packets(&sim, picky);
    assert!(before > 20, "video arrives: {before}");
    // Unsubscribed: the flow stops (the m-line is stopped at the next negotiation).
    sim.subscribe(picky, video, false);
    sim.run_for(secs(1));
    let settled = packets(&sim, picky);
    sim.run_for(secs(2));
    assert_eq!(
        packets(&sim, picky),
        settled,
        "nothing more after unsubscribing"
    );
}

//! Simulcast layer selection, bandwidth allocation, dynacast, temporal layers and
//! subscription stats, in the deterministic simulation (`sfu_core::testkit`).
//! `Instant::now()` only gives each simulation an origin for its virtual clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use sfu_core::testkit::{ClientIdx, ClientSpec, Sim};
use sfu_core::{Event, TrackKind, ViewerOptions};

mod common;
use common::secs;

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

    sim.cap_downlink(b, 3_000);
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
    sim.cap_downlink(b, 400);
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
    // One keyframe request per switch, plus at most one for a fallback: when the
    // allocation lowers the subscriber to a layer that dynacast had switched off, the
    // lowest layer is the target until that layer flows again (and is asked for).
    assert!(
        k1 - k0 <= steps_down + 1,
        "{} keyframe requests for {steps_down} switches",
        k1 - k0
    );
    // t = 30 s: the link recovers.
    let up_at = sim.now;
    sim.cap_downlink(b, 3_000);
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
        sim.cap_downlink(*s, kbps);
    }
    sim.run_for(secs(15));
    let layers: Vec<Option<u8>> = subs.iter().map(|s| sim.video_layer(*s, a)).collect();
    eprintln!("layers at 300 / 900 / 4000 kbps: {layers:?}");
    assert_eq!(layers, vec![Some(0), Some(1), Some(2)]);
}

#[test]
fn subscribers_are_told_of_layer_changes_and_pauses() {
    let mut sim = Sim::new(Instant::now(), 17);
    sim.join("room", ClientSpec::simulcast());
    let b = sim.join("room", ClientSpec::viewer());
    sim.cap_downlink(b, 3_000);
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
    sim.cap_downlink(b, 60);
    sim.run_for(secs(10));
    assert!(
        changes(&sim).contains(&(None, true)),
        "paused: {:?}",
        changes(&sim)
    );
    sim.cap_downlink(b, 3_000);
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
    let video = sim.client(b).offered_track(TrackKind::Video);
    let layer = |sim: &Sim| sim.video_layer(b, a);
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
    let loud = sim.join("room", ClientSpec::simulcast().speaking(-20));
    let quiet = sim.join("room", ClientSpec::simulcast().speaking(-90));
    let v = sim.join("room", ClientSpec::viewer());
    // Room for the top layer of one video, not of both (1.7 Mbps each).
    sim.cap_downlink(v, 3_000);
    sim.run_for(secs(12));
    let layer = |sim: &Sim, who| sim.video_layer(v, who);
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
    // Upgrades wait 3 s after a step down and climb one layer per round: h then f.
    sim.run_for(secs(15));
    eprintln!(
        "speaker {:?}, other {:?}",
        layer(&sim, quiet),
        layer(&sim, loud)
    );
    assert_eq!(layer(&sim, quiet), Some(2));
    assert!(layer(&sim, loud) < Some(2));
}

/// A SIP video endpoint's `b=AS` caps its speaker view: on a free link it gets the layer
/// that fits (h, 500 kbps, under an 800 kbps cap) and no more bytes than the cap, where an
/// uncapped view reaches the top layer.
#[test]
fn a_video_endpoints_bandwidth_caps_its_speaker_view() {
    let mut sim = Sim::new(Instant::now(), 35);
    let _speaker = sim.join("room", ClientSpec::simulcast().speaking(-20));
    sim.run_for(secs(1));
    let cap = 800_000;
    let capped = sim.join_speaker_view(
        "room",
        ViewerOptions {
            max_bitrate: Some(cap),
            ..Default::default()
        },
    );
    let free = sim.join_speaker_view("room", ViewerOptions::default());
    sim.run_for(secs(12));
    let layer = |sim: &Sim, v: ClientIdx| {
        sim.client(v)
            .received
            .values()
            .find(|r| r.kind == Some(TrackKind::Video))
            .and_then(|r| r.layer_at(sim.now))
    };
    let before = sim.downlink_bytes(capped);
    sim.run_for(secs(5));
    let kbps = (sim.downlink_bytes(capped) - before) * 8 / 5 / 1_000;
    eprintln!(
        "capped view: layer {:?}, {kbps} kbps; free view: layer {:?}",
        layer(&sim, capped),
        layer(&sim, free)
    );
    assert_eq!(layer(&sim, capped), Some(1), "the layer under the cap");
    assert_eq!(layer(&sim, free), Some(2), "without a cap, the top layer");
    assert!(
        kbps <= cap / 1_000,
        "{kbps} kbps under a {} kbps cap",
        cap / 1_000
    );
    // The free one's endpoint limits it later (TMMBR/REMB): down to the layer that fits.
    let idfree = sim.client(free).id;
    sim.command(sfu_core::Command::SetMaxBitrate {
        participant: idfree,
        max_bitrate: Some(cap),
    });
    sim.run_for(secs(8));
    assert_eq!(
        layer(&sim, free),
        Some(1),
        "capped later: the layer under the cap"
    );
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
    let video = sim.client(b).offered_track(TrackKind::Video);
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
    let idb = sim.client(b).id;
    let video = sim.client(b).offered_track(TrackKind::Video);
    let layer = |sim: &Sim| sim.video_layer(b, a);
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
    let mut sim = Sim::new(Instant::now(), 22);
    let cam = sim.join("room", ClientSpec::simulcast().speaking(-20));
    let screen = sim.join("room", ClientSpec::simulcast().speaking(-90));
    sim.run_for(secs(1));
    // The screen sharer declares its video m-line.
    sim.declare_screen_share(screen);
    let v = sim.join("room", ClientSpec::viewer());
    sim.cap_downlink(v, 2_600);
    sim.run_for(secs(14));
    let layer = |sim: &Sim, who| sim.video_layer(v, who);
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
    let video = sim.client(b).offered_track(TrackKind::Video);
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

/// A simulcast publisher with `temporal_layers` per encoding and two viewers, on a 4 Mbps
/// ("open") and a 1.2 Mbps ("tight") downlink, after 30 s: (sim, publisher, open, tight).
/// f alone is 1.7 Mbps; its T0+T1 frames half of that. 1.2 Mbps fits f at 15 fps, not at
/// 30, and is more than h at full rate needs. GCC overshoots from its 2.5 Mbps start on
/// the tight link, then climbs back.
fn open_and_tight_viewers(temporal_layers: u8) -> (Sim, ClientIdx, ClientIdx, ClientIdx) {
    let mut sim = Sim::new(Instant::now(), 24);
    let a = sim.join(
        "room",
        ClientSpec {
            temporal_layers,
            ..ClientSpec::simulcast()
        },
    );
    let open = sim.join("room", ClientSpec::viewer());
    let tight = sim.join("room", ClientSpec::viewer());
    sim.cap_downlink(open, 4_000);
    sim.cap_downlink(tight, 1_200);
    sim.run_for(secs(30));
    (sim, a, open, tight)
}

#[test]
fn vp8_temporal_layers_drop_frame_rate_before_resolution() {
    let (sim, a, open, tight) = open_and_tight_viewers(3);
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

/// Firefox's simulcast has no temporal layers (it ignores L1T3): on the same 1.2 Mbps
/// link where an L1T3 publisher's f layer goes on at a lower frame rate, an L1T1
/// publisher's subscriber must step down a whole layer to h at the full frame rate, and
/// on an open link get f, with nothing waiting for a temporal step that never comes.
#[test]
fn an_l1t1_publisher_degrades_by_resolution_alone() {
    let (sim, a, open, tight) = open_and_tight_viewers(1);
    let id = sim.client(a).id;
    let (from, to) = (sim.now - secs(4), sim.now);
    let o = sim.client(open).stream_from(id, TrackKind::Video).unwrap();
    assert_eq!(o.layer_at(to), Some(2));
    assert!(o.fps(from, to) > 27.0, "the open link gets every frame");
    let t = sim.client(tight).stream_from(id, TrackKind::Video).unwrap();
    eprintln!(
        "1.2 Mbps: layer {:?}, {:.1} fps, runs {:?}",
        t.layer_at(to),
        t.fps(from, to),
        t.layer_runs
            .iter()
            .map(|(l, at)| (*l, (*at - sim.start).as_millis()))
            .collect::<Vec<_>>()
    );
    assert_eq!(t.layer_at(to), Some(1), "a whole layer down: h");
    // h's full frame rate is 15 fps in this publisher.
    assert!(
        t.fps(from, to) > 14.0,
        "at h's full frame rate, got {:.1}",
        t.fps(from, to)
    );
    assert!(
        t.frames
            .iter()
            .filter(|f| f.0 >= from)
            .all(|f| f.1.is_none()),
        "no temporal marks on an L1T1 stream"
    );
    assert_eq!(t.video_gaps_after(from), 0);
    // It stays there once there (nothing waits for a temporal step): h is the last run,
    // and it has lasted. (It gets there late: GCC's estimate falls to ~140 kbps after
    // its 2.5 Mbps start overshoots the link, and takes ~20 s to climb back; the
    // allocator follows the estimate.)
    let (layer, since) = *t.layer_runs.last().unwrap();
    assert_eq!(layer, 1);
    assert!(to - since >= secs(5), "{:?}", t.layer_runs);
}

/// A link that falls below what any video needs pauses every video; when it comes back,
/// the estimate climbs from the audio-only rate and every video flows again. What drives
/// the climb is str0m's probing toward `desired`, which the allocation keeps above the
/// estimate (with `desired` = the estimate, the estimate stays below 2 Mbps here).
#[test]
fn videos_paused_by_a_collapsed_link_come_back_when_it_recovers() {
    let mut sim = Sim::new(Instant::now(), 31);
    let pubs = [
        sim.join("room", ClientSpec::simulcast().speaking(-20)),
        sim.join("room", ClientSpec::simulcast().speaking(-60)),
        sim.join("room", ClientSpec::simulcast().speaking(-90)),
    ];
    let v = sim.join("room", ClientSpec::viewer());
    let idv = sim.client(v).id;
    // Video packets from each publisher that arrived within the last `d`.
    let recent = |sim: &Sim, d: Duration| {
        pubs.map(|p| {
            sim.client(v)
                .stream_from(sim.client(p).id, TrackKind::Video)
                .map_or(0, |s| {
                    s.video_arrivals
                        .iter()
                        .filter(|t| **t + d >= sim.now)
                        .count()
                })
        })
    };
    let estimate = |sim: &Sim| {
        sim.events.iter().rev().find_map(|(_, e)| match e {
            Event::SubscriptionStats {
                participant,
                estimate_bps,
                ..
            } if *participant == idv => *estimate_bps,
            _ => None,
        })
    };
    sim.cap_downlink(v, 3_000);
    sim.run_for(secs(20));
    eprintln!("at 3 Mbps, packets in 2 s: {:?}", recent(&sim, secs(2)));
    assert!(recent(&sim, secs(2)).iter().all(|n| *n > 0));
    // The link collapses to 100 kbps: less than the three audios and one lowest layer.
    sim.cap_downlink(v, 100);
    sim.run_for(secs(15));
    eprintln!(
        "at 100 kbps, packets in 3 s: {:?}, estimate {:?}",
        recent(&sim, secs(3)),
        estimate(&sim)
    );
    assert!(
        recent(&sim, secs(3)).iter().all(|n| *n == 0),
        "every video paused"
    );
    // It comes back: each video flows again within 10 s, the estimate passes 2 Mbps
    // within 20 s.
    let up_at = sim.now;
    sim.cap_downlink(v, 3_000);
    let mut back = [None; 3];
    let mut climbed = None;
    while sim.now < up_at + secs(20) {
        sim.run_for(Duration::from_millis(250));
        for (b, n) in back
            .iter_mut()
            .zip(recent(&sim, Duration::from_millis(250)))
        {
            if b.is_none() && n > 0 {
                *b = Some(sim.now - up_at);
            }
        }
        if climbed.is_none() && estimate(&sim).unwrap_or(0) > 2_000_000 {
            climbed = Some(sim.now - up_at);
        }
    }
    eprintln!("videos back after {back:?}; estimate above 2 Mbps after {climbed:?}");
    for (i, b) in back.iter().enumerate() {
        let b = b.unwrap_or_else(|| panic!("video {i} never came back: {back:?}"));
        assert!(b < secs(10), "video {i} took {b:?} to come back");
    }
    assert!(
        climbed.is_some(),
        "the estimate stayed at {:?}",
        estimate(&sim)
    );
}

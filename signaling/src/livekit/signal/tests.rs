use super::*;
use crate::protocol::{ParticipantKind, Permissions, TrackInfo};
use sfu_core::OfferedTrack;

fn person(id: u64, identity: &str) -> ParticipantInfo {
    ParticipantInfo {
        id: ParticipantId(id),
        identity: identity.into(),
        name: identity.into(),
        reconnecting: false,
        kind: ParticipantKind::Standard,
        tracks: vec![],
        audio_muted: false,
        video_muted: false,
        metadata: String::new(),
        attributes: Default::default(),
        permissions: Permissions {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        },
        joined_at: 0,
    }
}

fn session() -> Signal {
    let room = lk::Room {
        name: "r".into(),
        ..Default::default()
    };
    let (s, join) = Signal::joined(
        room,
        person(7, "me"),
        vec![person(8, "bob")],
        vec![],
        Some("RT_1".into()),
    );
    assert_eq!(join.participant.unwrap().sid, "PA_7");
    assert_eq!(join.other_participants[0].sid, "PA_8");
    assert!(
        !join.subscriber_primary,
        "the client offers its publisher connection first"
    );
    assert!(
        !join.server_info.unwrap().version.is_empty(),
        "livekit-client needs a version"
    );
    s
}

const OFFER: &str = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=msid:stream mic-cid\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:stream cam-cid\r\n";

fn add(cid: &str, ty: lk::TrackType, source: lk::TrackSource) -> Req {
    Req::AddTrack(lk::AddTrackRequest {
        cid: cid.into(),
        r#type: ty as i32,
        source: source as i32,
        ..Default::default()
    })
}

#[test]
fn announced_tracks_get_sids_at_once_and_their_m_lines_in_the_next_offer() {
    let mut s = session();
    // Announced in the other order than the offer's m-lines: matched by the msid's cid.
    let cam = s.on_request(
        add("cam-cid", lk::TrackType::Video, lk::TrackSource::Camera),
        0,
    );
    let Step::Reply(Resp::TrackPublished(r)) = &cam[0] else {
        panic!("{cam:?}")
    };
    assert_eq!(
        (r.cid.as_str(), r.track.as_ref().unwrap().sid.as_str()),
        ("cam-cid", "TR_7_1")
    );
    s.on_request(
        add("mic-cid", lk::TrackType::Audio, lk::TrackSource::Microphone),
        0,
    );
    let steps = s.on_request(
        Req::Offer(lk::SessionDescription {
            r#type: "offer".into(),
            sdp: OFFER.into(),
            id: 5,
            ..Default::default()
        }),
        0,
    );
    let [Step::Publish { sids, offer }] = &steps[..] else {
        panic!("{steps:?}")
    };
    assert_eq!(
        sids.iter()
            .map(|(m, n)| (m.as_str(), n.sid.as_str()))
            .collect::<Vec<_>>(),
        [("1", "TR_7_2"), ("2", "TR_7_1")]
    );
    let ClientMessage::PublishOffer { sources, .. } = offer else {
        panic!()
    };
    assert_eq!(sources.get("2"), Some(&TrackSource::Camera));
    assert_eq!(sources.get("1"), Some(&TrackSource::Microphone));
    // The answer carries the offer's id back; the client's mute of a sid is its kind's.
    let answer = s.on_server(ServerMessage::PublishAnswer { sdp: "v=0".into() });
    assert!(matches!(&answer[..], [Resp::Answer(sd)] if sd.id == 5 && sd.r#type == "answer"));
    assert_eq!(
        s.on_request(
            Req::Mute(lk::MuteTrackRequest {
                sid: "TR_7_1".into(),
                muted: true
            }),
            0
        ),
        [Step::Hub(ClientMessage::Mute {
            kind: TrackKind::Video,
            muted: true
        })]
    );
    assert_eq!(
        s.on_request(
            Req::Mute(lk::MuteTrackRequest {
                sid: "TR_9_1".into(),
                muted: true
            }),
            0
        ),
        [Step::Dropped("mute_unknown_track")]
    );
}

#[test]
fn others_tracks_are_known_by_their_sids_in_updates_offers_and_settings() {
    let mut s = session();
    let named = TrackInfo {
        id: TrackId(40),
        kind: TrackKind::Video,
        simulcast: vec!["q".into(), "h".into(), "f".into()],
        source: TrackSource::Camera,
        sid: Some("TR_8_1".into()),
        mime: Some("video/VP8".into()),
        encrypted: true,
    };
    let plain = TrackInfo {
        id: TrackId(41),
        kind: TrackKind::Audio,
        simulcast: vec![],
        source: TrackSource::Microphone,
        sid: None,
        mime: None,
        encrypted: false,
    };
    for t in [named, plain] {
        let out = s.on_server(ServerMessage::TrackPublished {
            participant: ParticipantId(8),
            track: t,
        });
        assert!(matches!(&out[..], [Resp::Update(_)]), "{out:?}");
    }
    let shown = s.update(&s.people[&ParticipantId(8)].clone());
    let Resp::Update(u) = shown else { panic!() };
    let t = &u.participants[0].tracks[0];
    assert_eq!(
        (t.sid.as_str(), t.mime_type.as_str()),
        ("TR_8_1", "video/VP8")
    );
    assert_eq!(
        t.encryption,
        lk::encryption::Type::Gcm as i32,
        "e2ee is shown"
    );
    let offer = s.on_server(ServerMessage::SubscribeOffer {
        sdp: "v=0".into(),
        tracks: [(40, "0"), (41, "1")]
            .map(|(t, mid)| OfferedTrack {
                mid: mid.into(),
                track: TrackId(t),
                publisher: ParticipantId(8),
                kind: TrackKind::Video,
            })
            .to_vec(),
    });
    let [Resp::Offer(sd)] = &offer[..] else {
        panic!("{offer:?}")
    };
    assert_eq!(
        sd.mid_to_track_id.get("0").map(String::as_str),
        Some("TR_8_1")
    );
    assert_eq!(
        sd.mid_to_track_id.get("1").map(String::as_str),
        Some("TR_41")
    );
    // Adaptive stream's size, and a hidden element.
    let steps = s.on_request(
        Req::TrackSetting(lk::UpdateTrackSettings {
            track_sids: vec!["TR_8_1".into()],
            width: 320,
            height: 180,
            ..Default::default()
        }),
        0,
    );
    assert_eq!(
        steps,
        [
            Step::Hub(ClientMessage::Viewport {
                track: TrackId(40),
                width: 320,
                height: 180,
                visible: true
            }),
            // With a size, the quality field (LOW when absent) caps nothing.
            Step::Hub(ClientMessage::PreferredQuality {
                track: TrackId(40),
                quality: None
            })
        ]
    );
    let steps = s.on_request(
        Req::TrackSetting(lk::UpdateTrackSettings {
            track_sids: vec!["TR_8_1".into()],
            quality: lk::VideoQuality::Medium as i32,
            ..Default::default()
        }),
        0,
    );
    assert_eq!(
        steps[1],
        Step::Hub(ClientMessage::PreferredQuality {
            track: TrackId(40),
            quality: Some(Quality::Medium)
        })
    );
    let steps = s.on_request(
        Req::TrackSetting(lk::UpdateTrackSettings {
            track_sids: vec!["TR_8_1".into(), "TR_nope".into()],
            disabled: true,
            ..Default::default()
        }),
        0,
    );
    assert!(matches!(
        steps[0],
        Step::Hub(ClientMessage::Viewport { visible: false, .. })
    ));
    assert_eq!(
        steps.last(),
        Some(&Step::Dropped("track_setting_unknown_track"))
    );
    // Paused for bandwidth, as a stream state.
    let out = s.on_server(ServerMessage::SubscriptionChanged {
        track: TrackId(40),
        layer: None,
        paused: true,
    });
    let [Resp::StreamStateUpdate(u)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            u.stream_states[0].participant_sid.as_str(),
            u.stream_states[0].track_sid.as_str()
        ),
        ("PA_8", "TR_8_1")
    );
    // Gone: shown as disconnected.
    let out = s.on_server(ServerMessage::ParticipantLeft {
        participant: ParticipantId(8),
        reason: "left".into(),
    });
    let [Resp::Update(u)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        u.participants[0].state,
        lk::participant_info::State::Disconnected as i32
    );
}

#[test]
fn pings_trickle_speakers_and_the_end() {
    let mut s = session();
    let out = s.on_request(
        Req::PingReq(lk::Ping {
            timestamp: 11,
            rtt: 0,
        }),
        99,
    );
    assert_eq!(
        out,
        [Step::Reply(Resp::PongResp(lk::Pong {
            last_ping_timestamp: 11,
            timestamp: 99
        }))]
    );
    let trickle = |init: &str, target: lk::SignalTarget| {
        Req::Trickle(lk::TrickleRequest {
            candidate_init: init.into(),
            target: target as i32,
            r#final: false,
        })
    };
    assert_eq!(
        s.on_request(
            trickle(
                r#"{"candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host","sdpMid":"0"}"#,
                lk::SignalTarget::Subscriber
            ),
            0
        ),
        [Step::Hub(ClientMessage::Candidate {
            pc: PcKind::Subscriber,
            candidate: "candidate:1 1 udp 1 127.0.0.1 5 typ host".into()
        })]
    );
    for junk in ["", "{", r#"{"candidate":""}"#, r#"{"candidate":7}"#] {
        assert!(s
            .on_request(trickle(junk, lk::SignalTarget::Publisher), 0)
            .is_empty());
    }
    s.on_server(ServerMessage::ActiveSpeaker {
        participant: ParticipantId(8),
    });
    let out = s.on_server(ServerMessage::ActiveSpeaker {
        participant: ParticipantId(7),
    });
    let [Resp::SpeakersChanged(c)] = &out[..] else {
        panic!("{out:?}")
    };
    let said: Vec<_> = c
        .speakers
        .iter()
        .map(|x| (x.sid.as_str(), x.active))
        .collect();
    assert_eq!(said, [("PA_7", true), ("PA_8", false)]);
    assert_eq!(
        s.on_request(Req::Leave(Default::default()), 0),
        [Step::Leave]
    );
    let Resp::Leave(l) = leave(crate::protocol::close_code::REMOVED, "removed by the API") else {
        panic!()
    };
    assert_eq!(l.reason, lk::DisconnectReason::ParticipantRemoved as i32);
    assert!(!l.can_reconnect);
}

#[test]
fn the_servers_view_of_a_subscribers_video_is_its_connection_quality() {
    let stat = |current: Option<&str>, target: Option<&str>| sfu_core::SubscriptionStat {
        track: TrackId(1),
        publisher: ParticipantId(8),
        current: current.map(Into::into),
        target: target.map(Into::into),
        available: vec!["q".into(), "h".into()],
        allocated_bps: 0,
        used_bps: 0,
        switches: 0,
        pauses: 0,
    };
    let mut s = session();
    let quality = |s: &mut Signal, subs| {
        let out = s.on_server(ServerMessage::SubscriptionStats {
            estimate_bps: None,
            subscriptions: subs,
        });
        let [Resp::ConnectionQuality(u)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(u.updates[0].participant_sid, "PA_7");
        lk::ConnectionQuality::try_from(u.updates[0].quality).unwrap()
    };
    assert_eq!(quality(&mut s, vec![]), lk::ConnectionQuality::Excellent);
    assert_eq!(
        quality(&mut s, vec![stat(Some("h"), Some("h"))]),
        lk::ConnectionQuality::Excellent
    );
    assert_eq!(
        quality(&mut s, vec![stat(Some("q"), Some("h"))]),
        lk::ConnectionQuality::Good
    );
    assert_eq!(
        quality(&mut s, vec![stat(Some("h"), Some("h")), stat(None, None)]),
        lk::ConnectionQuality::Poor
    );
}

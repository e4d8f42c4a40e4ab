//! The control plane against an in-memory media plane.

use std::sync::Arc;

use parking_lot::Mutex;
use sfu_core::{Command, Event, GoneReason, ParticipantId, PcKind, RoomId, TrackId, TrackKind};
use signaling::hub::{NamedTrack, Now, Outbound};
use signaling::outbound::OutboundRx;
use signaling::protocol::{ClientMessage, ErrorCode, ServerMessage};
use signaling::Error;
use signaling::{Claims, Hub, KeyStore, MediaPlane, PlaneError, VideoGrant};

#[derive(Default)]
struct FakePlane {
    commands: Mutex<Vec<Command>>,
    busy: Mutex<bool>,
    closed: Mutex<Vec<RoomId>>,
}

impl MediaPlane for FakePlane {
    fn send(&self, _room: &RoomId, cmd: Command) -> Result<(), PlaneError> {
        if *self.busy.lock() {
            return Err(PlaneError::Busy);
        }
        self.commands.lock().push(cmd);
        Ok(())
    }
    fn room_closed(&self, room: &RoomId) {
        self.closed.lock().push(room.clone());
    }
}

const NOW: u64 = 1_700_000_000;

/// The tests' clock: a fixed instant and [`NOW`].
fn at() -> Now {
    static T0: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    Now { at: *T0, unix: NOW }
}

fn setup() -> (Arc<FakePlane>, Hub, KeyStore) {
    let keys = KeyStore::new([("k".to_string(), "0123456789abcdef-secret".to_string())]);
    let plane = Arc::new(FakePlane::default());
    (plane.clone(), Hub::new(keys.clone(), plane), keys)
}

fn tok(keys: &KeyStore, room: &str, who: &str) -> String {
    keys.mint(
        "k",
        &Claims {
            iss: "k".into(),
            sub: who.into(),
            exp: NOW + 60,
            nbf: None,
            kind: Default::default(),
            metadata: None,
            name: Some(format!("  {who}  ")),
            attributes: Default::default(),
            sip: Default::default(),
            video: VideoGrant::join(room),
        },
    )
    .unwrap()
}

fn drain(rx: &mut OutboundRx) -> Vec<Outbound> {
    let mut v = vec![];
    while let Some(m) = rx.try_recv() {
        v.push(m);
    }
    v
}

fn msgs(rx: &mut OutboundRx) -> Vec<ServerMessage> {
    drain(rx)
        .into_iter()
        .filter_map(|o| {
            if let Outbound::Message(m) = o {
                Some(m)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn join_announces_and_routes_media_events() {
    let (plane, hub, keys) = setup();
    let (a, mut ra) = hub.join(&tok(&keys, "r", "alice"), Some(1), at()).unwrap();
    let (b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    let first = msgs(&mut ra);
    assert!(
        matches!(&first[0], ServerMessage::Joined { others, participant, .. } if others.is_empty() && participant.name == "alice")
    );
    assert!(
        matches!(&first[1], ServerMessage::ParticipantJoined { participant } if participant.id == b)
    );
    assert!(
        matches!(&msgs(&mut rb)[0], ServerMessage::Joined { others, .. } if others.len() == 1 && others[0].id == a)
    );
    assert_eq!(plane.commands.lock().len(), 2);

    // Client message → command; media event → message to the right client.
    hub.handle(
        a,
        ClientMessage::PublishOffer {
            sdp: "x".into(),
            sources: Default::default(),
        },
    );
    assert!(
        matches!(plane.commands.lock().last(), Some(Command::PublishOffer { participant, .. }) if *participant == a)
    );
    hub.on_media_event(
        Event::PublishAnswer {
            participant: a,
            sdp: "ans".into(),
        },
        at().at,
    );
    assert_eq!(
        msgs(&mut ra),
        vec![ServerMessage::PublishAnswer { sdp: "ans".into() }]
    );
    assert!(msgs(&mut rb).is_empty());
    hub.on_media_event(
        Event::TrackPublished {
            room: RoomId::from("r"),
            participant: a,
            track: TrackId(7),
            kind: TrackKind::Video,
            mid: "1".into(),
            rids: vec!["q".into()],
            mime: Some("video/VP8".into()),
        },
        at().at,
    );
    assert!(
        matches!(&msgs(&mut rb)[0], ServerMessage::TrackPublished { participant, track } if *participant == a && track.id == TrackId(7))
    );
    assert_eq!(
        hub.room_members("r")
            .iter()
            .find(|p| p.id == a)
            .unwrap()
            .tracks
            .len(),
        1
    );

    // Mute goes to the others.
    hub.handle(
        a,
        ClientMessage::Mute {
            kind: TrackKind::Audio,
            muted: true,
        },
    );
    assert_eq!(
        msgs(&mut rb),
        vec![ServerMessage::MuteChanged {
            participant: a,
            kind: TrackKind::Audio,
            muted: true,
            by_admin: false
        }]
    );

    // The media plane lost bob: alice is told, bob is closed with `connection lost`
    // (4012: he may join again, unlike after an administrator's removal, 4004).
    hub.on_media_event(
        Event::ParticipantGone {
            room: RoomId::from("r"),
            participant: b,
            reason: GoneReason::IceTimeout,
        },
        at().at,
    );
    assert!(
        matches!(&msgs(&mut ra)[0], ServerMessage::ParticipantLeft { participant, reason } if *participant == b && reason.contains("ICE"))
    );
    let out = drain(&mut rb);
    assert!(
        matches!(out.last(), Some(Outbound::Close { code: 4012, .. })),
        "{out:?}"
    );

    // Alice leaves: the room is empty, and closed once its empty timeout (300 s) passed.
    // The first sweep that finds it empty starts the count.
    hub.leave(a);
    assert!(plane.closed.lock().is_empty());
    let t = at().at + std::time::Duration::from_secs(1000);
    assert_eq!(hub.reap(t), 0);
    assert_eq!(hub.reap(t + std::time::Duration::from_secs(299)), 0);
    assert_eq!(hub.reap(t + std::time::Duration::from_secs(300)), 1);
    assert_eq!(plane.closed.lock().as_slice(), &[RoomId::from("r")]);
    assert!(hub.list_rooms().is_empty());
    assert!(
        matches!(plane.commands.lock().last(), Some(Command::Leave { participant }) if *participant == a)
    );
}

#[test]
fn errors_reach_only_the_client_concerned() {
    let (_plane, hub, keys) = setup();
    let (a, mut ra) = hub.join(&tok(&keys, "r", "alice"), None, at()).unwrap();
    let (_b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    drain(&mut ra);
    drain(&mut rb);
    hub.on_media_event(
        Event::CommandFailed {
            participant: a,
            error: sfu_core::CommandError::NoCommonCodec,
        },
        at().at,
    );
    assert!(
        matches!(&msgs(&mut ra)[0], ServerMessage::Error { code: ErrorCode::Media, message } if message.contains("no codec"))
    );
    assert!(msgs(&mut rb).is_empty());
    hub.handle(
        a,
        ClientMessage::Join {
            token: "t".into(),
            version: None,
            resume: false,
            moved: false,
        },
    );
    assert!(matches!(
        &msgs(&mut ra)[0],
        ServerMessage::Error {
            code: ErrorCode::BadState,
            ..
        }
    ));
}

#[test]
fn a_second_session_of_an_identity_replaces_the_first() {
    let (_plane, hub, keys) = setup();
    let (_a1, mut r1) = hub.join(&tok(&keys, "r", "alice"), None, at()).unwrap();
    let (a2, _r2) = hub.join(&tok(&keys, "r", "alice"), None, at()).unwrap();
    let out = drain(&mut r1);
    assert!(
        matches!(out.last(), Some(Outbound::Close { code: 4004, .. })),
        "{out:?}"
    );
    let members = hub.room_members("r");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, a2);
}

#[test]
fn refusals() {
    let (plane, hub, keys) = setup();
    assert!(matches!(
        hub.join(&tok(&keys, "bad room", "x"), None, at()),
        Err(Error::BadRoomName(_))
    ));
    assert!(matches!(
        hub.join(&tok(&keys, "r", "x"), Some(2), at()),
        Err(Error::UnsupportedVersion(2))
    ));
    assert!(matches!(
        hub.join(
            &tok(&keys, "r", "x"),
            None,
            Now {
                unix: NOW + 3600,
                ..at()
            }
        ),
        Err(Error::Auth(_))
    ));
    *plane.busy.lock() = true;
    assert!(matches!(
        hub.join(&tok(&keys, "r", "x"), None, at()),
        Err(Error::Plane(PlaneError::Busy))
    ));
    assert!(
        hub.room_members("r").is_empty(),
        "a refused join leaves nothing behind"
    );
    let _ = ParticipantId(0);
}

#[test]
fn publish_sources_are_enforced_when_the_token_limits_them() {
    let (plane, hub, keys) = setup();
    let limited = keys
        .mint(
            "k",
            &Claims {
                iss: "k".into(),
                sub: "mic-only".into(),
                exp: NOW + 60,
                nbf: None,
                kind: Default::default(),
                metadata: None,
                name: None,
                attributes: Default::default(),
                sip: Default::default(),
                video: VideoGrant {
                    can_publish_sources: vec![sfu_core::TrackSource::Microphone],
                    ..VideoGrant::join("r")
                },
            },
        )
        .unwrap();
    let (a, mut ra) = hub.join(&limited, None, at()).unwrap();
    drain(&mut ra);
    let offer = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\n";
    let sent = |plane: &FakePlane| {
        plane
            .commands
            .lock()
            .iter()
            .filter(|c| matches!(c, Command::PublishOffer { .. }))
            .count()
    };
    let src = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(m, s)| (m.to_string(), wire_source(s)))
            .collect()
    };
    // camera not granted; an undeclared m-line; an unknown source name
    for sources in [
        src(&[("0", "microphone"), ("1", "camera")]),
        src(&[("0", "microphone")]),
        src(&[("0", "microphone"), ("1", "hologram")]),
    ] {
        hub.handle(
            a,
            ClientMessage::PublishOffer {
                sdp: offer.into(),
                sources,
            },
        );
        assert!(matches!(
            &msgs(&mut ra)[0],
            ServerMessage::Error {
                code: ErrorCode::NotAllowed,
                ..
            }
        ));
    }
    assert_eq!(sent(&plane), 0);
    hub.handle(
        a,
        ClientMessage::PublishOffer {
            sdp: "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\n".into(),
            sources: src(&[("0", "microphone")]),
        },
    );
    assert_eq!(sent(&plane), 1);
    // The declared source shows on the published track.
    hub.on_media_event(
        Event::TrackPublished {
            room: RoomId::from("r"),
            participant: a,
            track: TrackId(1),
            kind: TrackKind::Audio,
            mid: "0".into(),
            rids: vec![],
            mime: Some("audio/opus".into()),
        },
        at().at,
    );
    assert_eq!(
        hub.room_members("r")[0].tracks[0].source,
        sfu_core::TrackSource::Microphone
    );
}

#[test]
fn layer_messages_reach_the_media_plane_and_the_publisher() {
    use sfu_core::{LayerState, TrackSource};
    let (plane, hub, keys) = setup();
    let (a, mut ra) = hub.join(&tok(&keys, "r", "alice"), Some(1), at()).unwrap();
    let (b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    drain(&mut ra);
    drain(&mut rb);
    // Declared sources go to the shard ahead of the offer (screen share priority).
    let sources = [
        ("0".to_string(), TrackSource::Microphone),
        ("1".to_string(), TrackSource::ScreenShare),
    ]
    .into_iter()
    .collect();
    hub.handle(
        a,
        ClientMessage::PublishOffer {
            sdp: "x".into(),
            sources,
        },
    );
    {
        let cmds = plane.commands.lock();
        let n = cmds.len();
        assert!(
            matches!(&cmds[n - 2], Command::SetSources { participant, sources } if *participant == a && sources.contains(&("1".to_string(), TrackSource::ScreenShare))),
            "{cmds:?}"
        );
        assert!(matches!(&cmds[n - 1], Command::PublishOffer { .. }));
    }
    // A preferred quality becomes a layer cap; null lifts it; an unknown quality is refused.
    let msg: ClientMessage =
        serde_json::from_str(r#"{"type":"preferred_quality","track":7,"quality":"medium"}"#)
            .unwrap();
    hub.handle(b, msg);
    assert!(
        matches!(plane.commands.lock().last(), Some(Command::SetPreferredLayer { participant, track: TrackId(7), max_rank: Some(1) }) if *participant == b)
    );
    let msg: ClientMessage =
        serde_json::from_str(r#"{"type":"preferred_quality","track":7,"quality":null}"#).unwrap();
    hub.handle(b, msg);
    assert!(matches!(
        plane.commands.lock().last(),
        Some(Command::SetPreferredLayer { max_rank: None, .. })
    ));
    assert!(serde_json::from_str::<ClientMessage>(
        r#"{"type":"preferred_quality","track":7,"quality":"ultra"}"#
    )
    .is_err());
    // Dynacast goes to the publisher only; stats to the subscriber only.
    let layers = vec![
        LayerState {
            rid: "q".into(),
            active: true,
        },
        LayerState {
            rid: "f".into(),
            active: false,
        },
    ];
    hub.on_media_event(
        Event::PublisherLayers {
            participant: a,
            track: TrackId(7),
            mid: "1".into(),
            layers: layers.clone(),
        },
        at().at,
    );
    assert_eq!(
        msgs(&mut ra),
        vec![ServerMessage::PublisherLayers {
            track: TrackId(7),
            mid: "1".into(),
            layers
        }]
    );
    assert!(msgs(&mut rb).is_empty());
    hub.on_media_event(
        Event::SubscriptionStats {
            participant: b,
            estimate_bps: Some(1_000_000),
            subscriptions: vec![],
        },
        at().at,
    );
    assert!(matches!(
        &msgs(&mut rb)[..],
        [ServerMessage::SubscriptionStats {
            estimate_bps: Some(1_000_000),
            ..
        }]
    ));
    let json = serde_json::to_string(&ServerMessage::PublisherLayers {
        track: TrackId(7),
        mid: "1".into(),
        layers: vec![LayerState {
            rid: "f".into(),
            active: false,
        }],
    })
    .unwrap();
    assert_eq!(
        json,
        r#"{"type":"publisher_layers","track":7,"mid":"1","layers":[{"rid":"f","active":false}]}"#
    );
}

/// The resume token a `joined` (or `resumed`) carried.
fn resume_token(m: &[ServerMessage]) -> String {
    m.iter()
        .find_map(|m| match m {
            ServerMessage::Joined { resume_token, .. } => resume_token.clone(),
            ServerMessage::Resumed { resume_token, .. } => Some(resume_token.clone()),
            _ => None,
        })
        .expect("a resume token")
}

#[test]
fn a_parked_session_is_resumed_once_with_what_was_queued_and_expires_after_the_grace() {
    use signaling::hub::{Parking, ResumeError};
    use std::time::{Duration, Instant};
    let (plane, hub, keys) = setup();
    let (a, mut ra) = hub.join(&tok(&keys, "r", "ann"), None, at()).unwrap();
    let (_b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    let token = resume_token(&msgs(&mut ra));
    msgs(&mut rb);
    let t0 = Instant::now();
    // Ann's socket drops: parked, and bob sees her reconnecting (not gone).
    assert_eq!(hub.park(a, 0, ra, t0), Parking::Parked);
    assert!(
        matches!(&msgs(&mut rb)[..], [ServerMessage::ParticipantUpdated { participant }] if participant.id == a && participant.reconnecting)
    );
    // Meanwhile the room tells her something: it waits in her queue.
    hub.handle(
        _b,
        ClientMessage::Data {
            payload: "while away".into(),
            topic: None,
            destination: vec![],
        },
    );
    // Her resume token with bob's access token, or hers for another room, or a forged
    // access token: refused, and the resume token still works for her.
    assert!(matches!(
        hub.resume(&token, &tok(&keys, "r", "bob"), NOW, t0),
        Err(ResumeError::Unknown)
    ));
    assert!(matches!(
        hub.resume(&token, &tok(&keys, "other", "ann"), NOW, t0),
        Err(ResumeError::Unknown)
    ));
    assert!(matches!(
        hub.resume(&token, "not.a.jwt", NOW, t0),
        Err(ResumeError::Access(_))
    ));
    // She resumes on a new socket: the same participant, the queued message, then resumed.
    let r = hub
        .resume(
            &token,
            &tok(&keys, "r", "ann"),
            NOW,
            t0 + Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!((r.id, r.epoch), (a, 1));
    let mut rx = r.rx;
    let got = msgs(&mut rx);
    assert!(
        matches!(&got[0], ServerMessage::Data { payload, .. } if payload == "while away"),
        "{got:?}"
    );
    assert!(
        matches!(&got[1], ServerMessage::Resumed { participant, others, .. } if participant.id == a && !participant.reconnecting && others.len() == 1)
    );
    assert!(
        matches!(&msgs(&mut rb)[..], [ServerMessage::ParticipantUpdated { participant }] if participant.id == a && !participant.reconnecting)
    );
    // The token works once; the next one is in `resumed`.
    assert!(matches!(
        hub.resume(&token, &tok(&keys, "r", "ann"), NOW, t0),
        Err(ResumeError::Unknown)
    ));
    let next = resume_token(&got);
    assert_ne!(next, token);
    // The old socket's late end changes nothing (its epoch is stale).
    hub.leave_session(a, 0);
    assert_eq!(hub.room_members("r").len(), 2);
    // Parked again and not resumed within the grace period (20 s): removed on the next reap.
    assert_eq!(
        hub.park(a, 1, rx, t0 + Duration::from_secs(10)),
        Parking::Parked
    );
    hub.reap(t0 + Duration::from_secs(25));
    assert_eq!(
        hub.room_members("r").len(),
        2,
        "still within the grace period"
    );
    hub.reap(t0 + Duration::from_secs(31));
    assert_eq!(hub.room_members("r").len(), 1);
    assert!(msgs(&mut rb).iter().any(
        |m| matches!(m, ServerMessage::ParticipantLeft { participant, .. } if *participant == a)
    ));
    assert!(plane
        .commands
        .lock()
        .iter()
        .any(|c| matches!(c, Command::Leave { participant } if *participant == a)));
    assert!(matches!(
        hub.resume(
            &next,
            &tok(&keys, "r", "ann"),
            NOW,
            t0 + Duration::from_secs(32)
        ),
        Err(ResumeError::Unknown)
    ));
}

#[test]
fn a_broken_media_path_shows_as_reconnecting_and_ice_restarts_reach_the_plane() {
    use signaling::hub::Parking;
    use std::time::{Duration, Instant};
    let (plane, hub, keys) = setup();
    let (a, mut ra) = hub.join(&tok(&keys, "r", "ann"), None, at()).unwrap();
    let (_b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    let token = resume_token(&msgs(&mut ra));
    msgs(&mut rb);
    let reconnecting = |m: &[ServerMessage]| -> Vec<bool> {
        m.iter()
            .filter_map(|m| match m {
                ServerMessage::ParticipantUpdated { participant } if participant.id == a => {
                    Some(participant.reconnecting)
                }
                _ => None,
            })
            .collect()
    };
    hub.on_media_event(Event::MediaInterrupted { participant: a }, at().at);
    assert_eq!(reconnecting(&msgs(&mut rb)), vec![true]);
    hub.on_media_event(Event::MediaInterrupted { participant: a }, at().at);
    assert!(
        reconnecting(&msgs(&mut rb)).is_empty(),
        "no news, no message"
    );
    // Its socket drops too, and it resumes: still reconnecting until the media is back.
    let t0 = Instant::now();
    assert_eq!(hub.park(a, 0, ra, t0), Parking::Parked);
    let r = hub
        .resume(
            &token,
            &tok(&keys, "r", "ann"),
            NOW,
            t0 + Duration::from_secs(1),
        )
        .unwrap();
    let mut ra = r.rx;
    assert!(msgs(&mut ra).iter().any(
        |m| matches!(m, ServerMessage::Resumed { participant, .. } if participant.reconnecting)
    ));
    assert_eq!(reconnecting(&msgs(&mut rb)).last(), Some(&true));
    hub.on_media_event(Event::MediaRestored { participant: a }, at().at);
    assert_eq!(reconnecting(&msgs(&mut rb)), vec![false]);
    // ICE restarts: of the subscriber without credentials, of either with them; half a
    // pair of credentials is refused.
    hub.handle(
        a,
        ClientMessage::IceRestart {
            pc: PcKind::Subscriber,
            ufrag: None,
            pwd: None,
        },
    );
    assert!(
        matches!(plane.commands.lock().last(), Some(Command::RestartSubscriberIce { participant }) if *participant == a)
    );
    hub.handle(
        a,
        ClientMessage::IceRestart {
            pc: PcKind::Publisher,
            ufrag: Some("abcd".into()),
            pwd: Some("0123456789012345678901".into()),
        },
    );
    assert!(
        matches!(plane.commands.lock().last(), Some(Command::IceRestart { participant, pc: PcKind::Publisher, .. }) if *participant == a)
    );
    let n = plane.commands.lock().len();
    hub.handle(
        a,
        ClientMessage::IceRestart {
            pc: PcKind::Publisher,
            ufrag: None,
            pwd: None,
        },
    );
    assert_eq!(plane.commands.lock().len(), n, "nothing reaches the plane");
    assert!(msgs(&mut ra).iter().any(|m| matches!(
        m,
        ServerMessage::Error {
            code: ErrorCode::BadMessage,
            ..
        }
    )));
}

/// A source as a client writes it on the wire (a name this server does not know is
/// `unknown`).
fn wire_source(s: &str) -> sfu_core::TrackSource {
    serde_json::from_value(serde_json::Value::String(s.into())).unwrap()
}

/// A client that stops reading (a frozen tab, a phone in a tunnel) while the room goes on:
/// its queue stays bounded in bytes, it ends up with the room's latest state (not an old
/// one), and a data flood never costs it a message it must have.
#[test]
fn a_client_that_stops_reading_keeps_the_latest_state_in_bounded_memory() {
    let (_plane, hub, keys) = setup();
    let (_a, mut ra) = hub.join(&tok(&keys, "r", "alice"), None, at()).unwrap();
    let (b, _rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    msgs(&mut ra);
    // Bob toggles his microphone 1,001 times (he ends muted) and sends 2,000 data
    // messages of 10 KB; alice reads nothing meanwhile.
    for i in 1..=1001u32 {
        hub.handle(
            b,
            ClientMessage::Mute {
                kind: TrackKind::Audio,
                muted: i % 2 == 1,
            },
        );
    }
    for _ in 0..2000 {
        hub.handle(
            b,
            ClientMessage::Data {
                payload: "d".repeat(10_000),
                topic: None,
                destination: vec![],
            },
        );
    }
    assert!(
        ra.queued_bytes() <= signaling::outbound::MAX_BYTES,
        "{} bytes queued for a client that reads nothing",
        ra.queued_bytes()
    );
    // Carol joins: alice must hear of it even though data filled her share.
    let (c, _rc) = hub.join(&tok(&keys, "r", "carol"), None, at()).unwrap();
    let got = msgs(&mut ra);
    let mutes: Vec<bool> = got
        .iter()
        .filter_map(|m| match m {
            ServerMessage::MuteChanged { muted, .. } => Some(*muted),
            _ => None,
        })
        .collect();
    assert_eq!(mutes, vec![true], "one mute message, the latest state");
    assert!(
        got.iter().any(
            |m| matches!(m, ServerMessage::ParticipantJoined { participant } if participant.id == c)
        ),
        "alice was not told carol joined"
    );
    let data = got
        .iter()
        .filter(|m| matches!(m, ServerMessage::Data { .. }))
        .count();
    assert!((1..2000).contains(&data), "{data} data messages queued");
}

/// WHEP viewers share one identity when a site hands one viewing token to every player:
/// they replace nobody and nobody replaces them, while a participant's second session
/// still replaces its first.
#[test]
fn whep_viewers_with_one_token_coexist_and_replace_nobody() {
    let (plane, hub, keys) = setup();
    let view = tok(&keys, "r", "audience");
    let (v1, mut r1) = hub.join_viewer(&view, at()).unwrap();
    let (v2, _r2) = hub.join_viewer(&view, at()).unwrap();
    let (v3, _r3) = hub.join_viewer(&view, at()).unwrap();
    // A participant whose identity happens to be a viewer's is not replaced by it, and
    // does not replace it.
    let (p1, _rp1) = hub.join(&tok(&keys, "r", "audience"), None, at()).unwrap();
    let (_v4, _r4) = hub.join_viewer(&view, at()).unwrap();
    let (p2, _rp2) = hub.join(&tok(&keys, "r", "audience"), None, at()).unwrap();
    let leaves: Vec<ParticipantId> = plane
        .commands
        .lock()
        .iter()
        .filter_map(|c| match c {
            Command::Leave { participant } => Some(*participant),
            _ => None,
        })
        .collect();
    assert_eq!(
        leaves,
        vec![p1],
        "only the participant's older session is replaced"
    );
    let ids: Vec<ParticipantId> = hub.room_members("r").iter().map(|p| p.id).collect();
    for v in [v1, v2, v3, p2] {
        assert!(ids.contains(&v), "{v} is still in: {ids:?}");
    }
    assert!(msgs(&mut r1)
        .iter()
        .all(|m| !matches!(m, ServerMessage::Error { .. })));
}

#[test]
fn livekit_track_sids_are_the_publishers_own_and_reach_the_others() {
    let (_plane, hub, keys) = setup();
    let (a, _ra) = hub.join(&tok(&keys, "r", "alice"), None, at()).unwrap();
    let (b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    let named = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, NamedTrack> {
        pairs
            .iter()
            .map(|(m, s)| {
                let n = NamedTrack {
                    sid: s.to_string(),
                    encrypted: true,
                };
                (m.to_string(), n)
            })
            .collect()
    };
    // Another participant's prefix, junk, an empty or overlong suffix: refused.
    for bad in [
        format!("TR_{}_1", b.0),
        "TR_x".to_string(),
        format!("TR_{}_", a.0),
        format!("TR_{}_a-b", a.0),
        format!("TR_{}_{}", a.0, "9".repeat(17)),
    ] {
        assert!(hub.name_tracks(a, named(&[("1", &bad)])).is_err(), "{bad}");
    }
    let sid = format!("TR_{}_1", a.0);
    hub.name_tracks(a, named(&[("1", &sid)])).unwrap();
    // The same sid on another m-line is refused; the same pair again is fine.
    assert!(hub.name_tracks(a, named(&[("2", &sid)])).is_err());
    hub.name_tracks(a, named(&[("1", &sid)])).unwrap();
    msgs(&mut rb);
    for (mid, track) in [("1", 7), ("2", 8)] {
        hub.on_media_event(
            Event::TrackPublished {
                room: RoomId::from("r"),
                participant: a,
                track: TrackId(track),
                kind: TrackKind::Video,
                mid: mid.into(),
                rids: vec![],
                mime: None,
            },
            at().at,
        );
    }
    let sids: Vec<(Option<String>, bool)> = msgs(&mut rb)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::TrackPublished { track, .. } => Some((track.sid, track.encrypted)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sids,
        [(Some(sid), true), (None, false)],
        "a named m-line's track carries its sid and whether it is encrypted"
    );
}

#[test]
fn a_newcomer_hears_who_is_speaking_right_after_joined() {
    let (_plane, hub, keys) = setup();
    let (a, _ra) = hub.join(&tok(&keys, "r", "alice"), None, at()).unwrap();
    hub.on_media_event(
        Event::ActiveSpeaker {
            room: RoomId::from("r"),
            participant: a,
        },
        at().at,
    );
    let (_b, mut rb) = hub.join(&tok(&keys, "r", "bob"), None, at()).unwrap();
    let m = msgs(&mut rb);
    assert!(matches!(m[0], ServerMessage::Joined { .. }), "{m:?}");
    assert_eq!(m[1], ServerMessage::ActiveSpeaker { participant: a });
    // Once the speaker has left, nobody is named.
    hub.leave(a);
    let (_c, mut rc) = hub.join(&tok(&keys, "r", "carol"), None, at()).unwrap();
    assert!(!msgs(&mut rc)
        .iter()
        .any(|m| matches!(m, ServerMessage::ActiveSpeaker { .. })));
}

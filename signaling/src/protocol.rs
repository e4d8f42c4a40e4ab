//! The signaling protocol: JSON messages over WebSocket, tagged by `type`. See
//! `docs/protocol.md` for the conversation and examples.

use serde::{Deserialize, Serialize};
use sfu_core::{
    LayerState, OfferedTrack, ParticipantId, PcKind, SubscriptionStat, TrackId, TrackKind,
    TrackSource,
};

/// The protocol version this server speaks. A client sends it in `join`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Messages from the client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Must be the first message.
    Join {
        token: String,
        #[serde(default)]
        version: Option<u32>,
        /// Keep the session for the resume grace period when the socket drops (the
        /// client reconnects with `resume`).
        #[serde(default)]
        resume: bool,
        /// In a cluster, when this node is not the room's home: answer `moved` (the
        /// client connects to the home itself) rather than relay the session there.
        #[serde(default)]
        moved: bool,
    },
    /// Instead of `join` on a new socket: take back a session whose socket dropped, with
    /// the `resume_token` of its `joined` (or last `resumed`).
    Resume {
        token: String,
        /// The access token the session joined with (or a fresh one for the same
        /// identity and room): a resume token works only for its own participant.
        access_token: String,
    },
    /// Offer for the publisher connection (first or renegotiation), with what each m-line
    /// carries (`mid` → `camera` | `microphone` | `screen_share` | `screen_share_audio`).
    /// Required for every m-line when the token limits `canPublishSources`.
    PublishOffer {
        sdp: String,
        #[serde(default)]
        sources: std::collections::BTreeMap<String, TrackSource>,
    },
    /// Answer to the latest `subscribe_offer`.
    SubscribeAnswer {
        sdp: String,
    },
    /// A trickled ICE candidate; an empty string ends gathering.
    Candidate {
        pc: PcKind,
        candidate: String,
    },
    /// An ICE restart of one connection. With the client's new credentials (`ufrag`,
    /// `pwd`): answered by `ice_restarted` with the server's. Of the subscriber
    /// connection without them: the server's next `subscribe_offer` carries new
    /// credentials (same tracks), answered as any other. (The publisher connection
    /// restarts with an offer of new credentials: `publish_offer`.)
    IceRestart {
        pc: PcKind,
        #[serde(default)]
        ufrag: Option<String>,
        #[serde(default)]
        pwd: Option<String>,
    },
    /// The client muted or unmuted its microphone or camera.
    Mute {
        kind: TrackKind,
        muted: bool,
    },
    /// How big this client shows a video track (device pixels) and whether it is visible:
    /// the server sends the smallest simulcast layer that covers it, nothing when hidden.
    Viewport {
        track: TrackId,
        width: u32,
        height: u32,
        visible: bool,
    },
    /// The most this client wants of a video track (`low`, `medium`, `high`; absent or
    /// null: no cap). The server may still send less when bandwidth is short.
    PreferredQuality {
        track: TrackId,
        #[serde(default)]
        quality: Option<Quality>,
    },
    /// Receive these tracks (`subscribe: true`) or stop receiving them. Every track of
    /// the room is received unless turned down this way (LiveKit clients may join with
    /// auto-subscribe off: then only those asked for).
    Subscribe {
        tracks: Vec<TrackId>,
        subscribe: bool,
    },
    /// A data message to the room, or to the listed participants.
    Data {
        payload: String,
        #[serde(default)]
        topic: Option<String>,
        #[serde(default)]
        destination: Vec<ParticipantId>,
    },
    Ping {},
    Leave {},
}

/// A simulcast quality a subscriber can ask for: the lowest, middle and highest layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Low,
    Medium,
    High,
}

impl Quality {
    /// The layer rank it caps at.
    pub fn max_rank(self) -> u8 {
        match self {
            Quality::Low => 0,
            Quality::Medium => 1,
            Quality::High => u8::MAX,
        }
    }
}

/// What kind of endpoint a participant is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantKind {
    /// A WebRTC client (browser, SDK, WHIP/WHEP).
    #[default]
    Standard,
    /// A phone call through the SIP gateway: audio only.
    Sip,
    /// LiveKit's other kinds, as access tokens name them (`kind`): a stream brought in,
    /// a recorder, an agent (voice AI). Shown as the token says; treated as standard.
    Ingress,
    Egress,
    Agent,
}

impl ParticipantKind {
    pub fn is_standard(&self) -> bool {
        *self == ParticipantKind::Standard
    }
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParticipantInfo {
    #[schema(value_type = u64)]
    pub id: ParticipantId,
    pub identity: String,
    pub name: String,
    /// Its signaling socket dropped; it may come back within the resume grace period.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconnecting: bool,
    /// `standard` or `sip`.
    #[serde(default)]
    pub kind: ParticipantKind,
    pub tracks: Vec<TrackInfo>,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub metadata: String,
    /// Key/value attributes from the access token (LiveKit's `attributes` claim).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub attributes: std::collections::BTreeMap<String, String>,
    pub permissions: Permissions,
    /// Unix seconds.
    pub joined_at: u64,
}

/// What a participant may do; changed live by the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Permissions {
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackInfo {
    #[schema(value_type = u64)]
    pub id: TrackId,
    #[schema(value_type = String, example = "video")]
    pub kind: TrackKind,
    pub simulcast: Vec<String>,
    /// As the publisher declared it: `camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`, or `unknown`.
    #[serde(default)]
    #[schema(value_type = String, example = "camera")]
    pub source: TrackSource,
    /// The id a LiveKit client gave the track when it announced it (`TR_<participant>_<n>`);
    /// absent for tracks published otherwise, whose LiveKit sid is `TR_<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The codec its publisher prefers on its m-line, as a MIME type (`audio/opus`,
    /// `video/VP8`, `video/H264`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Its frames are end-to-end encrypted by the publisher (the server forwards them as
    /// they are): a subscriber needs the key to decode them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

/// Messages from the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        version: u32,
        room: String,
        participant: ParticipantInfo,
        others: Vec<ParticipantInfo>,
        /// Single-use token for `resume` (when the server keeps sessions for resuming).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// TURN servers to use (with short-lived credentials), when the server has any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<crate::turn::IceServer>,
    },
    /// The session was resumed: the participant as it is now, the others, the next
    /// token. Messages queued while the socket was gone come before this one.
    Resumed {
        participant: ParticipantInfo,
        others: Vec<ParticipantInfo>,
        resume_token: String,
    },
    PublishAnswer {
        sdp: String,
    },
    SubscribeOffer {
        sdp: String,
        tracks: Vec<OfferedTrack>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant: ParticipantId,
        reason: String,
    },
    TrackPublished {
        participant: ParticipantId,
        track: TrackInfo,
    },
    TrackUnpublished {
        participant: ParticipantId,
        track: TrackId,
    },
    MuteChanged {
        participant: ParticipantId,
        kind: TrackKind,
        muted: bool,
        by_admin: bool,
    },
    /// Metadata or permissions of a participant changed (sent to everyone, itself too).
    ParticipantUpdated {
        participant: ParticipantInfo,
    },
    RoomUpdated {
        metadata: String,
    },
    /// The room's active speaker changed.
    ActiveSpeaker {
        participant: ParticipantId,
    },
    /// What this client receives of a video track changed: another simulcast layer, or
    /// paused for lack of bandwidth (`paused: true`), or resumed.
    SubscriptionChanged {
        track: TrackId,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<String>,
        paused: bool,
    },
    /// Dynacast, to a publisher: encode only the `active` simulcast layers of the video
    /// m-line `mid` (nobody needs the others); apply with `RTCRtpSender.setParameters`.
    PublisherLayers {
        track: TrackId,
        mid: String,
        layers: Vec<LayerState>,
    },
    /// Every few seconds: what this client receives of each video (layers, rates,
    /// switches), and its estimated downstream bandwidth. For debugging and statistics.
    SubscriptionStats {
        #[serde(skip_serializing_if = "Option::is_none")]
        estimate_bps: Option<u64>,
        subscriptions: Vec<SubscriptionStat>,
    },
    /// A data message from a participant (`from`) or from the server API (`from` absent).
    Data {
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<ParticipantId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        payload: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
    /// Cluster: the room lives on another node; connect to `url` and send the same
    /// `join` (or `resume`) there. The socket is closed with 4013.
    Moved {
        url: String,
    },
    /// The answer to an ICE restart: the server's new credentials and candidates
    /// (`candidate:` values, as in `a=candidate:` lines).
    IceRestarted {
        pc: PcKind,
        ufrag: String,
        pwd: String,
        candidates: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not valid JSON or not a known message.
    BadMessage,
    /// The token was missing, malformed, forged, expired or lacked the grant.
    Unauthorized,
    /// A message that needs `join` first, or a second `join`.
    BadState,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// The media plane refused the request (SDP, codecs, candidates).
    Media,
    /// The server is overloaded; try again.
    Busy,
    /// The participant was removed (by the API, ICE timeout, failure, room deleted).
    Removed,
    /// The room is at its participant limit.
    RoomFull,
    /// The room does not exist and rooms are not created on join.
    NoSuchRoom,
    /// The token does not grant this (publishing, data).
    NotAllowed,
    /// The server is draining (join another node).
    Draining,
    /// The node is at an admission limit.
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
    /// A `resume` with an unknown or used token, or after the grace period: join anew.
    ResumeRefused,
    /// Cluster: the room directory is unreachable; new rooms cannot be placed.
    Unavailable,
    /// The participant sends this kind of message faster than its budget allows
    /// (data, mute, negotiation, candidate): this one was refused, the session goes on.
    RateLimited,
}

/// WebSocket close codes (4000–4999 are the application's, RFC 6455 §7.4.2).
pub mod close_code {
    pub const UNAUTHORIZED: u16 = 4001;
    pub const BAD_STATE: u16 = 4002;
    pub const UNSUPPORTED_VERSION: u16 = 4003;
    pub const REMOVED: u16 = 4004;
    pub const BUSY: u16 = 4005;
    pub const ROOM_FULL: u16 = 4006;
    pub const NO_SUCH_ROOM: u16 = 4007;
    /// The server is draining and takes no new participants.
    pub const DRAINING: u16 = 4008;
    /// An admission limit of the node (tracks, load) refused the join.
    pub const SERVER_FULL: u16 = 4009;
    /// The server shut down (after draining, or at once on a second signal).
    pub const SHUTTING_DOWN: u16 = 4010;
    /// `resume` refused (unknown or used token, grace period over).
    pub const RESUME_REFUSED: u16 = 4011;
    /// Removed because its media connection was lost (ICE timeout, failure): unlike a
    /// removal by an administrator (4004), the client may join again.
    pub const CONNECTION_LOST: u16 = 4012;
    /// Cluster: the room lives on another node (the `moved` message says where).
    pub const MOVED: u16 = 4013;
    /// Cluster: the directory cannot be reached, so no room can be placed now.
    pub const UNAVAILABLE: u16 = 4014;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"join","token":"t","version":1}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Join {
                token: "t".into(),
                version: Some(1),
                resume: false,
                moved: false,
            }
        );
        let m: ClientMessage = serde_json::from_str(r#"{"type":"candidate","pc":"subscriber","candidate":"candidate:1 1 udp 1 127.0.0.1 5 typ host"}"#).unwrap();
        assert!(matches!(
            m,
            ClientMessage::Candidate {
                pc: PcKind::Subscriber,
                ..
            }
        ));
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"mute","kind":"audio","muted":true}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Mute {
                kind: TrackKind::Audio,
                muted: true
            }
        );
        for bad in [
            r#"{"type":"nope"}"#,
            r#"{"type":"join"}"#,
            r#"{"sdp":"x"}"#,
            "[]",
            "",
            r#"{"type":"ping","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_messages_are_tagged() {
        let s = serde_json::to_string(&ServerMessage::Error {
            code: ErrorCode::BadMessage,
            message: "x".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"type":"error","code":"bad_message","message":"x"}"#);
        let s = serde_json::to_string(&ServerMessage::Pong).unwrap();
        assert_eq!(s, r#"{"type":"pong"}"#);
    }
}

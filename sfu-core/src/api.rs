//! The shard's inputs and outputs: what the IO driver and the control plane exchange with it.

use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;

use crate::ids::{ParticipantId, PcKind, RoomId, TrackId, TrackKind, TrackSource};

/// How a packet travels between the shard and a peer: the UDP socket, or an ICE-TCP
/// connection (RFC 6544) whose RFC 4571 framing the driver owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the driver feeds into [`crate::Shard::handle_input`].
#[derive(Debug)]
pub enum Input<'a> {
    /// A UDP datagram received on the shard's socket.
    Datagram {
        source: SocketAddr,
        contents: &'a [u8],
    },
    /// One frame (the packet inside an RFC 4571 length prefix) read from the ICE-TCP
    /// connection whose peer is `source`, accepted on [`crate::ShardConfig::tcp_addr`].
    TcpFrame {
        source: SocketAddr,
        contents: &'a [u8],
    },
    /// A request from the control plane.
    Command(Command),
    /// A packet of a relayed track's flow, from another node over relay link `link`
    /// ([`crate::relay`]).
    Relay {
        link: u32,
        flow: u32,
        contents: &'a [u8],
    },
    /// Time passed; no other input.
    Timeout,
}

/// What [`crate::Shard::poll_output`] hands back, until `Timeout`.
#[derive(Debug)]
pub enum Output {
    /// Send `contents` to `destination`: a datagram from the shard's socket, or a frame
    /// on the TCP connection from that peer.
    Transmit(Transmit),
    /// Something for the control plane.
    Event(Event),
    /// A packet for another node: the flow of a tapped layer ([`crate::relay`]).
    Relay(RelayTransmit),
    /// Call `handle_input(_, Input::Timeout)` at this instant at the latest.
    Timeout(Instant),
}

#[derive(Debug)]
pub struct Transmit {
    pub transport: Transport,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// A packet of one flow for relay link `link` (the control plane's id of the link).
#[derive(Debug)]
pub struct RelayTransmit {
    pub link: u32,
    pub flow: u32,
    pub contents: Vec<u8>,
}

/// A track of another node, as [`Command::RelayPublish`] announces it ([`crate::relay`]).
#[derive(Debug, Clone)]
pub struct RelayedTrack {
    pub room: RoomId,
    /// Its publisher's id (cluster-wide), a remote participant here.
    pub participant: ParticipantId,
    pub link: u32,
    pub kind: TrackKind,
    pub source: TrackSource,
    /// `audio/opus`, `video/VP8`, `video/H264`, `video/VP9`, `video/AV1`.
    pub mime: String,
    /// Its layers (rids, in the origin's order; none without simulcast) and the flow
    /// that carries each over `link`.
    pub rids: Vec<String>,
    pub flows: Vec<u32>,
}

/// What a SIP video endpoint's speaker view adds to a WHEP viewer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerOptions {
    /// Never shown as the speaker (the endpoint's own participant: it sees the last other
    /// speaker while it speaks itself).
    pub except: Option<ParticipantId>,
    /// The most the viewer can receive (the endpoint's `b=TIAS`/`b=AS`), bits per second:
    /// the allocator's budget and the probing stay under it.
    pub max_bitrate: Option<u64>,
    /// A screen share in the room takes the video m-line while it is on (an endpoint
    /// without a content channel sees the shared screen in place of the speaker).
    pub content: bool,
}

/// Requests from the control plane. Each names the participant it is about; failures
/// come back as [`Event::CommandFailed`].
#[derive(Debug, Clone)]
pub enum Command {
    Join {
        room: RoomId,
        participant: ParticipantId,
        can_publish: bool,
        can_subscribe: bool,
        /// Each track it receives in a stream of its own, `PA_<publisher>|<track sid>`
        /// (LiveKit's SDKs read whose track it is, and which, from the stream id), rather
        /// than one stream per publisher (`PA_<publisher>`, which keeps a publisher's
        /// audio and video in sync for players that take `streams[0]`).
        track_streams: bool,
        /// It receives every other track of the room unless it turns one down; false:
        /// only those it asks for ([`Command::Subscribe`]).
        auto_subscribe: bool,
    },
    /// An SDP offer for the participant's publisher connection (first or renegotiation).
    PublishOffer {
        participant: ParticipantId,
        sdp: String,
    },
    /// The SDP answer to the last [`Event::SubscribeOffer`].
    SubscribeAnswer {
        participant: ParticipantId,
        sdp: String,
    },
    /// A trickled remote ICE candidate (`candidate:…` line) for one of the connections.
    Candidate {
        participant: ParticipantId,
        pc: PcKind,
        candidate: String,
    },
    Leave {
        participant: ParticipantId,
    },
    /// Subscribe the participant to these tracks, or unsubscribe it (tracks that do not
    /// exist, or are its own, are ignored).
    Subscribe {
        participant: ParticipantId,
        tracks: Vec<TrackId>,
        subscribe: bool,
    },
    /// The sids its client gave the tracks of its publisher m-lines (LiveKit's), by mid:
    /// the stream ids of those tracks at subscribers that take a stream per track.
    NameTracks {
        participant: ParticipantId,
        sids: Vec<(String, String)>,
    },
    /// Write `data` on the data channel labelled `channel` of each of `to` (those without
    /// one open, or whose send buffer is full, miss it: counted as dropped).
    SendData {
        to: Vec<ParticipantId>,
        channel: String,
        binary: bool,
        data: std::sync::Arc<[u8]>,
    },
    /// Grants changed live: revoking publish unpublishes the participant's tracks and
    /// refuses new ones; revoking subscribe removes its subscriptions; granting again
    /// restores them.
    SetPermissions {
        participant: ParticipantId,
        can_publish: bool,
        can_subscribe: bool,
    },
    /// WHEP: the client offers receive-only m-lines for its subscriber connection; the
    /// answer comes back as [`Event::PublishAnswer`]. The m-lines carry `target`'s tracks
    /// (one per kind, bound as they are published) and are never renegotiated. Without a
    /// target they follow the room's active speaker, switching on keyframes.
    WhepOffer {
        participant: ParticipantId,
        target: Option<ParticipantId>,
        options: ViewerOptions,
        sdp: String,
    },
    /// How big the subscriber shows a video track (CSS pixels × device pixel ratio), and
    /// whether it is visible: the layer is capped to what the tile needs; a hidden tile
    /// gets no video.
    SetViewport {
        participant: ParticipantId,
        track: TrackId,
        width: u32,
        height: u32,
        visible: bool,
    },
    /// Stop (or resume) forwarding the participant's tracks of one kind (an admin mute).
    /// Resuming video asks the publisher for a keyframe.
    SetMuted {
        participant: ParticipantId,
        kind: TrackKind,
        muted: bool,
    },
    /// What the participant's m-lines (by mid) carry; sent before or after the offer
    /// that adds them. A screen share goes first in every subscriber's allocation.
    SetSources {
        participant: ParticipantId,
        sources: Vec<(String, TrackSource)>,
    },
    /// The subscriber asks for at most this layer of a video track (rank: 0 lowest);
    /// None lifts the cap. The allocator may still choose less.
    SetPreferredLayer {
        participant: ParticipantId,
        track: TrackId,
        max_rank: Option<u8>,
    },
    /// The most a viewer can receive changed (a SIP video endpoint's TMMBR or REMB):
    /// [`ViewerOptions::max_bitrate`] from now on.
    SetMaxBitrate {
        participant: ParticipantId,
        max_bitrate: Option<u64>,
    },
    /// An ICE restart (RFC 8445 §2.4; WHIP/WHEP `PATCH`, RFC 9725 §4.3.2): the client's
    /// new credentials for one connection. The shard takes new local credentials and
    /// answers with [`Event::IceRestarted`].
    IceRestart {
        participant: ParticipantId,
        pc: PcKind,
        ufrag: String,
        pwd: String,
    },
    /// An ICE restart of the subscriber connection, which the server offers: the next
    /// [`Event::SubscribeOffer`] carries new credentials (and the same tracks).
    RestartSubscriberIce {
        participant: ParticipantId,
    },
    /// Origin: relay link `link` takes these layers of `track` (rids; an empty rid for a
    /// track without simulcast) from now on; none stops it ([`crate::relay`]).
    RelayTap {
        track: TrackId,
        link: u32,
        rids: Vec<String>,
    },
    /// Origin: another node asks for a keyframe of a flow it takes.
    RelayKeyframe {
        flow: u32,
    },
    /// Far node: a track of another node, published here by a remote participant (made
    /// by its first track, gone with [`Command::Leave`]); its subscribers get it like a
    /// local track; [`Event::TrackPublished`] follows.
    RelayPublish(RelayedTrack),
}

/// A track as offered to a subscriber: which m-line carries whose media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferedTrack {
    pub mid: String,
    pub track: TrackId,
    pub publisher: ParticipantId,
    pub kind: TrackKind,
}

/// One simulcast layer in a [`Event::PublisherLayers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerState {
    pub rid: String,
    pub active: bool,
}

/// One video subscription in a [`Event::SubscriptionStats`]. Layers are rids (empty
/// without simulcast).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionStat {
    pub track: TrackId,
    pub publisher: ParticipantId,
    /// The layer forwarded now (None: nothing yet, or paused).
    pub current: Option<String>,
    /// The highest layer the allocation allows, among those flowing (None: paused).
    pub target: Option<String>,
    /// The layers the publisher sends now.
    pub available: Vec<String>,
    /// Bits per second the allocator gave this track (the chosen layer's measured rate).
    pub allocated_bps: u64,
    /// Bits per second actually forwarded (payload, measured over the last period).
    pub used_bps: u64,
    /// Since the subscription began.
    pub switches: u32,
    pub pauses: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    /// The control plane asked (the participant left or was removed).
    Left,
    /// ICE connectivity was lost (the client vanished).
    IceTimeout,
    /// Its connection failed (DTLS failure, internal error).
    Failed,
}

/// Notifications for the control plane.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    PublishAnswer {
        participant: ParticipantId,
        sdp: String,
    },
    SubscribeOffer {
        participant: ParticipantId,
        sdp: String,
        tracks: Vec<OfferedTrack>,
    },
    Connected {
        participant: ParticipantId,
        pc: PcKind,
    },
    TrackPublished {
        room: RoomId,
        participant: ParticipantId,
        track: TrackId,
        kind: TrackKind,
        mid: String,
        rids: Vec<String>,
        /// The publisher's preferred codec on that m-line, as a MIME type
        /// (`audio/opus`, `video/VP8`, `video/H264`, `video/VP9`, `video/AV1`).
        mime: Option<String>,
    },
    TrackUnpublished {
        room: RoomId,
        participant: ParticipantId,
        track: TrackId,
    },
    /// What a subscriber receives of a video track changed: another simulcast layer
    /// (`layer`: its rid, empty without simulcast), or paused / resumed by the allocator.
    SubscriptionChanged {
        participant: ParticipantId,
        track: TrackId,
        layer: Option<String>,
        paused: bool,
    },
    /// Dynacast: which simulcast layers (rids) of a video track the publisher should
    /// encode. Sent when it changes: a layer no subscriber needs is switched off (after
    /// a few seconds unneeded), and back on as soon as one does.
    PublisherLayers {
        participant: ParticipantId,
        track: TrackId,
        mid: String,
        layers: Vec<LayerState>,
    },
    /// Every few seconds per subscriber: what each of its video subscriptions gets.
    SubscriptionStats {
        participant: ParticipantId,
        estimate_bps: Option<u64>,
        subscriptions: Vec<SubscriptionStat>,
    },
    /// The answer to [`Command::IceRestart`]: the server's new credentials and its
    /// candidates (`a=candidate:` values: UDP, and TCP when the node takes it).
    IceRestarted {
        participant: ParticipantId,
        pc: PcKind,
        ufrag: String,
        pwd: String,
        candidates: Vec<String>,
    },
    /// A speaker view (WHEP, a SIP video endpoint) sent the new speaker's first packet,
    /// `after` the speaker changed (the keyframe request and the switch on it).
    SpeakerViewSwitched {
        participant: ParticipantId,
        after: std::time::Duration,
    },
    /// The room's active speaker changed (RFC 6464 audio levels, smoothed).
    ActiveSpeaker {
        room: RoomId,
        participant: ParticipantId,
    },
    /// The participant's ICE went quiet (its network path broke): it keeps its place
    /// for [`crate::ShardConfig::media_grace`], for the path to come back or an ICE
    /// restart, then goes with `IceTimeout`.
    MediaInterrupted { participant: ParticipantId },
    /// Every connection of an interrupted participant is connected again.
    MediaRestored { participant: ParticipantId },
    /// A message on one of the participant's data channels (`channel`: its label), as
    /// received; at most [`crate::data::MAX_DATA_MESSAGE`] bytes.
    Data {
        participant: ParticipantId,
        channel: String,
        binary: bool,
        data: Vec<u8>,
    },
    /// The participant no longer exists in the shard.
    ParticipantGone {
        room: RoomId,
        participant: ParticipantId,
        reason: GoneReason,
    },
    CommandFailed {
        participant: ParticipantId,
        error: CommandError,
    },
    /// Far node: a relayed track's subscriber needs a keyframe of `flow`: for its origin
    /// ([`Command::RelayKeyframe`] there), throttled here already.
    RelayKeyframe { link: u32, flow: u32 },
}

/// Why a command failed, sorted by who is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum CommandError {
    // The client sent something wrong.
    #[error("the SDP could not be parsed: {0}")]
    BadSdp(String),
    #[error("no codec in common: the server takes Opus, VP8, H.264, VP9 and AV1")]
    NoCommonCodec,
    #[error("the ICE candidate could not be parsed: {0}")]
    BadCandidate(String),
    #[error("no subscriber offer is waiting for an answer")]
    NoPendingOffer,
    // The control plane asked for something impossible.
    #[error("unknown participant")]
    UnknownParticipant,
    #[error("participant already joined")]
    AlreadyJoined,
    #[error("the participant may not publish")]
    PublishNotAllowed,
    // Our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Counters of the shard, for metrics and tests. All monotonic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShardStats {
    pub datagrams_in: u64,
    /// From an address no peer uses, and not a STUN request naming one of ours.
    pub dropped_unknown_source: u64,
    /// Not parseable as STUN/DTLS/RTP, or refused by the peer's stack.
    pub dropped_malformed: u64,
    pub rtp_in: u64,
    pub rtp_forwarded: u64,
    /// Forwarding refused (waiting for a keyframe, stale source, no common codec).
    pub rtp_not_forwarded: u64,
    pub keyframe_requests: u64,
    /// Peer stacks that panicked and were dropped.
    pub peer_panics: u64,
    /// STUN from addresses no peer uses yet, over the per-source-IP budget
    /// ([`crate::shard::NEW_SOURCE_STUN_PER_SEC`]).
    pub dropped_rate_limited: u64,
    /// Media received from publishers and written to subscribers, by kind: packets and
    /// payload bytes.
    pub audio_packets_in: u64,
    pub audio_bytes_in: u64,
    pub video_packets_in: u64,
    pub video_bytes_in: u64,
    pub audio_packets_out: u64,
    pub audio_bytes_out: u64,
    pub video_packets_out: u64,
    pub video_bytes_out: u64,
    /// Why packets were not forwarded to a subscriber (the rest of `rtp_not_forwarded`:
    /// unknown stream, no common codec, a refused write).
    pub dropped_layer: u64,
    pub dropped_temporal: u64,
    pub dropped_muted: u64,
    /// Feedback from subscribers (from str0m's egress stats, every 2 s): NACKs, PLIs and
    /// FIRs.
    pub nacks_received: u64,
    /// NACKed packets written again (from the layers' stores), and NACKed packets no
    /// longer (or never) known.
    pub nack_resends: u64,
    pub nack_unknown: u64,
    pub plis_received: u64,
    pub firs_received: u64,
    /// Simulcast layer switches and allocator pauses across all subscriptions.
    pub layer_switches: u64,
    pub subscription_pauses: u64,
    /// Data channel messages received, written, and dropped (unknown channel, too large,
    /// a recipient without that channel or with a full send buffer).
    pub data_in: u64,
    pub data_out: u64,
    pub data_dropped: u64,
    /// Clock advances of peer connections (str0m's `handle_timeout`, a whole session's
    /// timers each): the per-connection cost a turn pays besides the packets themselves.
    pub clock_advances: u64,
    /// Relayed packets: sent to other nodes (per tap), received from them, and received
    /// but dropped (an unknown flow, not RTP).
    pub relay_packets_out: u64,
    pub relay_packets_in: u64,
    pub relay_dropped: u64,
    /// Now (gauges, not monotonic): published tracks and subscriptions in the shard.
    pub tracks: u64,
    pub subscriptions: u64,
}

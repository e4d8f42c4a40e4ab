//! LiveKit's signal protocol for one session, without I/O: what a LiveKit client's
//! `SignalRequest` means in our protocol, and what each of the hub's messages means to it.
//! `rtc.rs` carries the frames; this keeps what the mapping needs to remember (who is in
//! the room, the sids of the client's own tracks, the offer ids).
//!
//! The session runs LiveKit's two-connection protocol (`/rtc`, as livekit-client falls back
//! to it): the client offers on its publisher connection — at once, with its data channels,
//! since the join says the publisher is primary — and the server offers on the subscriber
//! connection, which is our own protocol's shape. A track is announced first
//! (`AddTrackRequest`): it is given its sid (`TR_<participant>_<n>`) then, and is matched to
//! its m-line in the next offer by the `a=msid` track id (the `cid`), or else by kind.

use std::collections::BTreeMap;

use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;
use sfu_core::{ParticipantId, PcKind, TrackId, TrackKind, TrackSource};

use super::model;
use crate::protocol::{ClientMessage, ParticipantInfo, Quality, ServerMessage};
use crate::turn::IceServer;

/// The most tracks a client may announce and not yet offer.
const MAX_ANNOUNCED: usize = 32;

/// What one client request comes to.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Step {
    /// To the hub, as our protocol's message.
    Hub(ClientMessage),
    /// A publisher offer: name its tracks ([`Hub::name_tracks`](crate::hub::Hub)), then
    /// hand the offer to the hub.
    Publish {
        sids: BTreeMap<String, crate::hub::NamedTrack>,
        offer: ClientMessage,
    },
    /// The client changes its own metadata, name or attributes
    /// ([`Hub::update_own`](crate::hub::Hub)); a refusal is answered with a
    /// `RequestResponse` for `request_id`.
    UpdateSelf {
        request_id: u32,
        update: crate::hub::ParticipantUpdate,
    },
    /// Straight back to the client.
    Reply(Resp),
    /// The client leaves.
    Leave,
    /// Not served here: counted under this label, and dropped.
    Dropped(&'static str),
}

/// A track of the client's own: announced, then (with its m-line) offered.
#[derive(Debug, Clone)]
struct Own {
    sid: String,
    kind: TrackKind,
    source: TrackSource,
    /// Its frames are end-to-end encrypted (the SDK's `e2ee`).
    encrypted: bool,
}

/// One session's memory of the conversation.
pub struct Signal {
    me: ParticipantId,
    room: lk::Room,
    /// Everyone in the room (this client too), as the hub last described them.
    people: BTreeMap<ParticipantId, ParticipantInfo>,
    /// Announced and not yet in an offer, in order: by `cid`.
    announced: Vec<(String, Own)>,
    /// Offered: by the publisher m-line's mid.
    own: BTreeMap<String, Own>,
    next_track: u32,
    /// The id of the client's latest publisher offer, which its answer carries back.
    publisher_offer: u32,
    next_offer: u32,
    speaker: Option<ParticipantId>,
    /// The hub's token to resume this session (when the server keeps sessions).
    resume_token: Option<String>,
    /// The ICE servers of the join, given again on a resume.
    ice_servers: Vec<lk::IceServer>,
}

impl Signal {
    /// The session after the hub's `joined`, and the `JoinResponse` that says so.
    pub fn joined(
        room: lk::Room,
        me: ParticipantInfo,
        others: Vec<ParticipantInfo>,
        ice_servers: Vec<IceServer>,
        resume_token: Option<String>,
    ) -> (Self, lk::JoinResponse) {
        let ice_servers: Vec<lk::IceServer> = ice_servers
            .into_iter()
            .map(|s| lk::IceServer {
                urls: s.urls,
                username: s.username,
                credential: s.credential,
            })
            .collect();
        let codec = |mime: &str| lk::Codec {
            mime: mime.to_string(),
            fmtp_line: String::new(),
        };
        let response = lk::JoinResponse {
            room: Some(room.clone()),
            participant: Some(model::participant(&me)),
            other_participants: others.iter().map(model::participant).collect(),
            server_version: model::SERVER_VERSION.to_string(),
            ice_servers: ice_servers.clone(),
            // The client offers its publisher connection at once (with its data
            // channels); the server offers the subscriber connection when there is
            // something to receive.
            subscriber_primary: false,
            ping_timeout: 15,
            ping_interval: 5,
            server_info: Some(server_info()),
            // Simulcast is forwarded for VP8 and H.264; VP9 and AV1 SVC layers are not
            // selected per subscriber yet, so clients are steered to VP8.
            client_configuration: Some(client_configuration(resume_token.is_some())),
            enabled_publish_codecs: vec![
                codec("video/VP8"),
                codec("video/H264"),
                codec("audio/opus"),
            ],
            ..Default::default()
        };
        let me_id = me.id;
        let mut people: BTreeMap<ParticipantId, ParticipantInfo> =
            others.into_iter().map(|p| (p.id, p)).collect();
        people.insert(me_id, me);
        let signal = Self {
            me: me_id,
            room,
            people,
            announced: Vec::new(),
            own: BTreeMap::new(),
            next_track: 1,
            publisher_offer: 0,
            next_offer: 1,
            speaker: None,
            resume_token,
            ice_servers,
        };
        (signal, response)
    }

    pub fn me(&self) -> ParticipantId {
        self.me
    }

    /// The hub's token to resume this session, if it keeps sessions.
    pub fn resume_token(&self) -> Option<&str> {
        self.resume_token.as_deref()
    }

    /// The first message of a resumed session.
    pub fn reconnect_response(&self) -> lk::ReconnectResponse {
        lk::ReconnectResponse {
            ice_servers: self.ice_servers.clone(),
            client_configuration: Some(client_configuration(true)),
            server_info: Some(server_info()),
            last_message_seq: 0,
        }
    }

    /// A client request; `now_ms` (unix milliseconds) stamps pong replies.
    pub fn on_request(&mut self, req: Req, now_ms: i64) -> Vec<Step> {
        match req {
            Req::Offer(sd) => vec![self.publish(sd)],
            Req::Answer(sd) => vec![Step::Hub(ClientMessage::SubscribeAnswer { sdp: sd.sdp })],
            Req::Trickle(t) => trickle(&t).map(Step::Hub).into_iter().collect(),
            Req::AddTrack(add) => vec![self.announce(add)],
            Req::Mute(m) => match self.own_track(&m.sid) {
                Some(own) => vec![Step::Hub(ClientMessage::Mute {
                    kind: own.kind,
                    muted: m.muted,
                })],
                None => vec![Step::Dropped("mute_unknown_track")],
            },
            Req::TrackSetting(s) => self.track_settings(&s),
            Req::Leave(_) => vec![Step::Leave],
            Req::Ping(t) => vec![Step::Reply(Resp::Pong(t))],
            Req::PingReq(p) => vec![Step::Reply(Resp::PongResp(lk::Pong {
                last_ping_timestamp: p.timestamp,
                timestamp: now_ms,
            }))],
            Req::Subscription(u) => {
                let sids = u.track_sids.iter().chain(
                    u.participant_tracks
                        .iter()
                        .flat_map(|p| p.track_sids.iter()),
                );
                let tracks: Vec<TrackId> = sids
                    .take(256)
                    .filter_map(|sid| self.track_by_sid(sid).map(|(_, t)| t))
                    .collect();
                if tracks.is_empty() {
                    return vec![Step::Dropped("update_subscription_unknown_track")];
                }
                vec![Step::Hub(ClientMessage::Subscribe {
                    tracks,
                    subscribe: u.subscribe,
                })]
            }
            #[allow(deprecated)]
            Req::UpdateLayers(_) => vec![Step::Dropped("update_layers")],
            Req::SubscriptionPermission(_) => vec![Step::Dropped("subscription_permission")],
            Req::SyncState(_) => vec![Step::Dropped("sync_state")],
            Req::Simulate(_) => vec![Step::Dropped("simulate")],
            Req::UpdateMetadata(u) => vec![Step::UpdateSelf {
                request_id: u.request_id,
                update: crate::hub::ParticipantUpdate {
                    metadata: Some(u.metadata),
                    permissions: None,
                    name: (!u.name.is_empty()).then_some(u.name),
                    attributes: u.attributes.into_iter().collect(),
                },
            }],
            Req::UpdateAudioTrack(_) | Req::UpdateVideoTrack(_) => {
                vec![Step::Dropped("update_local_track")]
            }
            _ => vec![Step::Dropped("other")],
        }
    }

    /// `AddTrackRequest`: the track's sid, answered at once (the client waits for it
    /// before it offers the m-line).
    fn announce(&mut self, add: lk::AddTrackRequest) -> Step {
        let kind = match lk::TrackType::try_from(add.r#type) {
            Ok(lk::TrackType::Audio) => TrackKind::Audio,
            Ok(lk::TrackType::Video) => TrackKind::Video,
            _ => return Step::Dropped("add_track_bad_type"),
        };
        let existing = self.announced.iter().find(|(cid, _)| *cid == add.cid);
        let own = match existing {
            Some((_, own)) => own.clone(),
            None if self.announced.len() >= MAX_ANNOUNCED => {
                return Step::Dropped("add_track_too_many")
            }
            None => {
                let own = Own {
                    sid: format!("TR_{}_{}", self.me.0, self.next_track),
                    kind,
                    source: model::our_source(add.source),
                    encrypted: add.encryption != lk::encryption::Type::None as i32,
                };
                self.next_track += 1;
                self.announced.push((add.cid.clone(), own.clone()));
                own
            }
        };
        let info = crate::protocol::TrackInfo {
            id: TrackId(0),
            kind,
            simulcast: add.layers.iter().map(|l| l.rid.clone()).collect(),
            source: own.source,
            sid: Some(own.sid.clone()),
            // What it will be sent as: Opus, or the first codec the SDK names.
            mime: match kind {
                TrackKind::Audio => Some("audio/opus".to_string()),
                TrackKind::Video => add
                    .simulcast_codecs
                    .first()
                    .filter(|c| !c.codec.is_empty())
                    .map(|c| format!("video/{}", c.codec)),
            },
            encrypted: own.encrypted,
        };
        let mut track = model::track(&info, add.muted);
        // `layers` and `simulcast` are deprecated for `codecs`, which the SDKs read alongside.
        #[allow(deprecated)]
        {
            track.layers = add.layers;
            track.simulcast = track.layers.len() > 1;
        }
        track.name = add.name;
        track.width = add.width;
        track.height = add.height;
        Step::Reply(Resp::TrackPublished(lk::TrackPublishedResponse {
            cid: add.cid,
            track: Some(track),
        }))
    }

    /// A publisher offer: its announced tracks are matched to their m-lines.
    fn publish(&mut self, sd: lk::SessionDescription) -> Step {
        self.publisher_offer = sd.id;
        for line in media_lines(&sd.sdp) {
            if self.own.contains_key(&line.mid) {
                continue;
            }
            let by_cid = line
                .track_id
                .as_ref()
                .and_then(|t| self.announced.iter().position(|(cid, _)| cid == t));
            let by_kind = || self.announced.iter().position(|(_, o)| o.kind == line.kind);
            if let Some(i) = by_cid.or_else(by_kind) {
                let (_, own) = self.announced.remove(i);
                self.own.insert(line.mid, own);
            }
        }
        let sids = self
            .own
            .iter()
            .map(|(mid, o)| {
                let named = crate::hub::NamedTrack {
                    sid: o.sid.clone(),
                    encrypted: o.encrypted,
                };
                (mid.clone(), named)
            })
            .collect();
        let sources = self
            .own
            .iter()
            .map(|(mid, o)| (mid.clone(), o.source))
            .collect();
        Step::Publish {
            sids,
            offer: ClientMessage::PublishOffer {
                sdp: sd.sdp,
                sources,
            },
        }
    }

    fn own_track(&self, sid: &str) -> Option<&Own> {
        self.own
            .values()
            .chain(self.announced.iter().map(|(_, o)| o))
            .find(|o| o.sid == sid)
    }

    /// Someone else's track by its sid: its owner and id.
    fn track_by_sid(&self, sid: &str) -> Option<(ParticipantId, TrackId)> {
        self.people.values().find_map(|p| {
            p.tracks
                .iter()
                .find(|t| model::track_sid(t) == sid)
                .map(|t| (p.id, t.id))
        })
    }

    fn track_sid_of(&self, id: TrackId) -> Option<(ParticipantId, String)> {
        self.people.values().find_map(|p| {
            p.tracks
                .iter()
                .find(|t| t.id == id)
                .map(|t| (p.id, model::track_sid(t)))
        })
    }

    /// `UpdateTrackSettings` (adaptive stream, `setVideoQuality`, `setEnabled`): our
    /// viewport (size and visibility) and quality cap, per track.
    fn track_settings(&self, s: &lk::UpdateTrackSettings) -> Vec<Step> {
        let mut steps = Vec::new();
        for sid in s.track_sids.iter().take(64) {
            let Some((_, track)) = self.track_by_sid(sid) else {
                steps.push(Step::Dropped("track_setting_unknown_track"));
                continue;
            };
            // A size when the client gives one (adaptive stream); else its quality
            // (`setVideoQuality`), with a size that covers every layer. (`quality` reads
            // LOW when absent: protobuf's default.)
            let sized = s.width > 0 && s.height > 0;
            let (width, height) = if sized {
                (s.width, s.height)
            } else {
                (u32::from(u16::MAX), u32::from(u16::MAX))
            };
            steps.push(Step::Hub(ClientMessage::Viewport {
                track,
                width,
                height,
                visible: !s.disabled,
            }));
            let quality = match lk::VideoQuality::try_from(s.quality) {
                _ if sized => None,
                Ok(lk::VideoQuality::Low) => Some(Quality::Low),
                Ok(lk::VideoQuality::Medium) => Some(Quality::Medium),
                _ => None,
            };
            steps.push(Step::Hub(ClientMessage::PreferredQuality {
                track,
                quality,
            }));
        }
        steps
    }

    /// A message of the hub's, as this client should hear it (often nothing).
    pub fn on_server(&mut self, msg: ServerMessage) -> Vec<Resp> {
        match msg {
            ServerMessage::PublishAnswer { sdp } => {
                vec![Resp::Answer(lk::SessionDescription {
                    r#type: "answer".into(),
                    sdp,
                    id: self.publisher_offer,
                    mid_to_track_id: Default::default(),
                })]
            }
            ServerMessage::SubscribeOffer { sdp, tracks } => {
                let mid_to_track_id = tracks
                    .iter()
                    .map(|t| {
                        let sid = self
                            .track_sid_of(t.track)
                            .map(|(_, sid)| sid)
                            .unwrap_or_else(|| format!("TR_{}", t.track.0));
                        (t.mid.clone(), sid)
                    })
                    .collect();
                let id = self.next_offer;
                self.next_offer += 1;
                vec![Resp::Offer(lk::SessionDescription {
                    r#type: "offer".into(),
                    sdp,
                    id,
                    mid_to_track_id,
                })]
            }
            ServerMessage::ParticipantJoined { participant }
            | ServerMessage::ParticipantUpdated { participant } => {
                let update = self.update(&participant);
                self.people.insert(participant.id, participant);
                vec![update]
            }
            ServerMessage::ParticipantLeft { participant, .. } => {
                if self.speaker == Some(participant) {
                    self.speaker = None;
                }
                match self.people.remove(&participant) {
                    Some(p) => {
                        let mut info = model::participant(&p);
                        info.state = lk::participant_info::State::Disconnected as i32;
                        vec![Resp::Update(lk::ParticipantUpdate {
                            participants: vec![info],
                        })]
                    }
                    None => vec![],
                }
            }
            ServerMessage::TrackPublished { participant, track } => self.change(participant, |p| {
                p.tracks.retain(|t| t.id != track.id);
                p.tracks.push(track);
            }),
            ServerMessage::TrackUnpublished { participant, track } => {
                self.change(participant, |p| p.tracks.retain(|t| t.id != track))
            }
            ServerMessage::MuteChanged {
                participant,
                kind,
                muted,
                by_admin,
            } => {
                let mut out = Vec::new();
                if participant == self.me && by_admin {
                    // The room's administrator muted this client: it mutes its tracks.
                    out.extend(self.own.values().filter(|o| o.kind == kind).map(|o| {
                        Resp::Mute(lk::MuteTrackRequest {
                            sid: o.sid.clone(),
                            muted,
                        })
                    }));
                }
                out.extend(self.change(participant, |p| match kind {
                    TrackKind::Audio => p.audio_muted = muted,
                    TrackKind::Video => p.video_muted = muted,
                }));
                out
            }
            ServerMessage::RoomUpdated { metadata } => {
                self.room.metadata = metadata;
                vec![Resp::RoomUpdate(lk::RoomUpdate {
                    room: Some(self.room.clone()),
                })]
            }
            ServerMessage::ActiveSpeaker { participant } => {
                let mut speakers = vec![lk::SpeakerInfo {
                    sid: model::participant_sid(participant),
                    level: 1.0,
                    active: true,
                }];
                if let Some(before) = self.speaker.filter(|b| *b != participant) {
                    speakers.push(lk::SpeakerInfo {
                        sid: model::participant_sid(before),
                        level: 0.0,
                        active: false,
                    });
                }
                self.speaker = Some(participant);
                vec![Resp::SpeakersChanged(lk::SpeakersChanged { speakers })]
            }
            ServerMessage::SubscriptionChanged { track, paused, .. } => {
                let Some((owner, sid)) = self.track_sid_of(track) else {
                    return vec![];
                };
                let state = if paused {
                    lk::StreamState::Paused
                } else {
                    lk::StreamState::Active
                };
                vec![Resp::StreamStateUpdate(lk::StreamStateUpdate {
                    stream_states: vec![lk::StreamStateInfo {
                        participant_sid: model::participant_sid(owner),
                        track_sid: sid,
                        state: state as i32,
                    }],
                })]
            }
            ServerMessage::PublisherLayers { mid, layers, .. } => {
                let Some(own) = self.own.get(&mid) else {
                    return vec![];
                };
                vec![Resp::SubscribedQualityUpdate(quality_update(
                    own.sid.clone(),
                    &layers,
                ))]
            }
            // After a resume: the session as it is now (what was queued meanwhile came
            // first), and the next resume token.
            ServerMessage::Resumed {
                participant,
                others,
                resume_token,
            } => {
                self.resume_token = Some(resume_token);
                self.people = others.into_iter().map(|p| (p.id, p)).collect();
                self.people.insert(participant.id, participant);
                let participants = self.people.values().map(model::participant).collect();
                vec![Resp::Update(lk::ParticipantUpdate { participants })]
            }
            // Every few seconds: this client's connection quality, as the server sees it.
            ServerMessage::SubscriptionStats { subscriptions, .. } => {
                let (quality, score) = downstream_quality(&subscriptions);
                vec![Resp::ConnectionQuality(lk::ConnectionQualityUpdate {
                    updates: vec![lk::ConnectionQualityInfo {
                        participant_sid: model::participant_sid(self.me),
                        quality: quality as i32,
                        score,
                    }],
                })]
            }
            // Answered by the session itself (pings), not this protocol's (cluster
            // moves), or carried elsewhere (data: the data channels); errors are logged
            // by the session.
            ServerMessage::Joined { .. }
            | ServerMessage::Pong
            | ServerMessage::Data { .. }
            | ServerMessage::Error { .. }
            | ServerMessage::Moved { .. }
            | ServerMessage::IceRestarted { .. } => vec![],
        }
    }

    /// Change what we know of `id` and tell the client the participant as it is now.
    fn change(&mut self, id: ParticipantId, f: impl FnOnce(&mut ParticipantInfo)) -> Vec<Resp> {
        let Some(p) = self.people.get_mut(&id) else {
            return vec![];
        };
        f(p);
        let p = p.clone();
        vec![self.update(&p)]
    }

    fn update(&self, p: &ParticipantInfo) -> Resp {
        let mut info = model::participant(p);
        if p.id == self.me {
            // Its own tracks as it knows them (the hub's list has them too, by the same
            // sids; the client matches publications by sid).
            info.is_publisher = !self.own.is_empty();
        }
        Resp::Update(lk::ParticipantUpdate {
            participants: vec![info],
        })
    }
}

/// This client's connection quality, as its video subscriptions fare (the server's view,
/// every few seconds): one paused for bandwidth is POOR, one still moving to the layer
/// the allocation gives it GOOD, else EXCELLENT. (Score: LiveKit's MOS-like 1–5.)
fn downstream_quality(subs: &[sfu_core::SubscriptionStat]) -> (lk::ConnectionQuality, f32) {
    let paused = subs
        .iter()
        .any(|s| s.target.is_none() && !s.available.is_empty());
    let held = subs.iter().any(|s| s.current != s.target);
    if paused {
        (lk::ConnectionQuality::Poor, 2.0)
    } else if held {
        (lk::ConnectionQuality::Good, 3.5)
    } else {
        (lk::ConnectionQuality::Excellent, 4.5)
    }
}

fn server_info() -> lk::ServerInfo {
    lk::ServerInfo {
        edition: lk::server_info::Edition::Standard as i32,
        version: model::SERVER_VERSION.to_string(),
        protocol: model::PROTOCOL,
        node_id: "switchboard".to_string(),
        ..Default::default()
    }
}

/// Whether the SDK may resume a dropped session (`reconnect=1`): when the server keeps
/// sessions for resuming. Otherwise it rejoins at once ("full reconnect").
fn client_configuration(resumable: bool) -> lk::ClientConfiguration {
    let resume = if resumable {
        lk::ClientConfigSetting::Enabled
    } else {
        lk::ClientConfigSetting::Disabled
    };
    lk::ClientConfiguration {
        resume_connection: resume as i32,
        ..Default::default()
    }
}

/// Dynacast to a publisher: which of its layers anyone receives. (`subscribed_qualities`
/// is deprecated for per-codec lists, which need the codec's name; livekit-client reads
/// either.)
#[allow(deprecated)]
fn quality_update(
    track_sid: String,
    layers: &[sfu_core::LayerState],
) -> lk::SubscribedQualityUpdate {
    lk::SubscribedQualityUpdate {
        track_sid,
        subscribed_qualities: layers
            .iter()
            .map(|l| lk::SubscribedQuality {
                quality: model::quality_of_rid(&l.rid) as i32,
                enabled: l.active,
            })
            .collect(),
        subscribed_codecs: vec![],
    }
}

/// The session's end, as LiveKit says it: a `LeaveRequest` with the reason.
pub fn leave(code: u16, reason: &str) -> Resp {
    use crate::protocol::close_code as c;
    use lk::DisconnectReason as R;
    let why = match code {
        c::REMOVED if reason.contains("room") => R::RoomDeleted,
        c::REMOVED => R::ParticipantRemoved,
        c::SHUTTING_DOWN | c::DRAINING => R::ServerShutdown,
        c::CONNECTION_LOST => R::ConnectionTimeout,
        c::UNAUTHORIZED | c::ROOM_FULL | c::NO_SUCH_ROOM | c::SERVER_FULL => R::JoinFailure,
        _ if reason.contains("replaced") || reason.contains("another session") => {
            R::DuplicateIdentity
        }
        _ => R::UnknownReason,
    };
    #[allow(deprecated)]
    Resp::Leave(lk::LeaveRequest {
        can_reconnect: code == c::CONNECTION_LOST,
        reason: why as i32,
        action: lk::leave_request::Action::Disconnect as i32,
        regions: None,
    })
}

/// A refused request (`request_id`), as LiveKit's SDKs expect to hear of it.
pub fn request_refused(request_id: u32, e: &crate::error::Error) -> Resp {
    use lk::request_response::Reason;
    let reason = match e {
        crate::error::Error::Forbidden(_) => Reason::NotAllowed,
        crate::error::Error::Invalid(_) => Reason::LimitExceeded,
        crate::error::Error::NotFound(_) => Reason::NotFound,
        _ => Reason::UnclassifiedError,
    };
    Resp::RequestResponse(lk::RequestResponse {
        request_id,
        reason: reason as i32,
        message: e.to_string(),
        request: None,
    })
}

/// The answer to a resume attempt (`reconnect=1`), which this server does not take: rejoin.
#[allow(deprecated)]
pub fn rejoin() -> Resp {
    Resp::Leave(lk::LeaveRequest {
        can_reconnect: true,
        reason: lk::DisconnectReason::StateMismatch as i32,
        action: lk::leave_request::Action::Reconnect as i32,
        regions: None,
    })
}

/// A trickled candidate (`candidateInit` is the browser's `RTCIceCandidateInit` as JSON).
fn trickle(t: &lk::TrickleRequest) -> Option<ClientMessage> {
    let init: serde_json::Value = serde_json::from_str(&t.candidate_init).ok()?;
    let candidate = init.get("candidate")?.as_str()?.trim().to_string();
    if candidate.is_empty() {
        return None; // end of candidates
    }
    let pc = match lk::SignalTarget::try_from(t.target) {
        Ok(lk::SignalTarget::Subscriber) => PcKind::Subscriber,
        _ => PcKind::Publisher,
    };
    Some(ClientMessage::Candidate { pc, candidate })
}

/// An audio or video m-line of an offer: its mid and the track id of its `a=msid`.
struct MediaLine {
    mid: String,
    kind: TrackKind,
    track_id: Option<String>,
}

fn media_lines(sdp: &str) -> Vec<MediaLine> {
    let mut out = Vec::new();
    let mut current: Option<(TrackKind, Option<String>, Option<String>)> = None;
    let mut flush = |c: Option<(TrackKind, Option<String>, Option<String>)>| {
        if let Some((kind, Some(mid), track_id)) = c {
            out.push(MediaLine {
                mid,
                kind,
                track_id,
            });
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            flush(current.take());
            current = if m.starts_with("audio ") {
                Some((TrackKind::Audio, None, None))
            } else if m.starts_with("video ") {
                Some((TrackKind::Video, None, None))
            } else {
                None
            };
        } else if let Some((_, mid, track)) = current.as_mut() {
            if let Some(v) = line.strip_prefix("a=mid:") {
                *mid = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("a=msid:") {
                *track = v.split_whitespace().nth(1).map(str::to_string);
            }
        }
    }
    flush(current);
    out
}

#[cfg(test)]
mod tests;

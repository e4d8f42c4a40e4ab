//! The room directory of the control plane: rooms (created by the API or on first join),
//! who is in them with which tracks, and the outbound queue of every signaling session.
//! Turns client messages and API calls into media-plane commands, and media-plane events
//! into client messages and webhooks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sfu_core::{Command, ParticipantId, RoomId, TrackKind, TrackSource};

use crate::auth::{unix_now, Claims, KeyStore};
use crate::error::Error;
use crate::outbound::{self, OutboundRx};
use crate::plane::MediaPlane;
use crate::protocol::{
    close_code, ClientMessage, ErrorCode, ParticipantInfo, Permissions, Quality, ServerMessage,
    PROTOCOL_VERSION,
};
use crate::room_name::RoomName;
use crate::webhook::{WebhookEvent, Webhooks};

/// The time of a call into the hub, read by its caller: the hub reads no clock, so its
/// tests choose the time.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For durations (join latency).
    pub at: Instant,
    /// Unix seconds: for tokens and the times the API reports.
    pub unix: u64,
}

impl Now {
    /// Both clocks, now: for the edges (a socket, a request, the media plane's events).
    pub fn read() -> Self {
        Self {
            at: Instant::now(),
            unix: unix_now(),
        }
    }
}

/// What a session's writer task sends on the WebSocket.
// Nearly every value is a `Message` (a `Close` ends a session): boxing the message to
// shrink the rare variant would cost an allocation per message instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Message(ServerMessage),
    Close { code: u16, reason: String },
}

/// What a LiveKit client said of one of its tracks before offering it ([`Hub::name_tracks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTrack {
    /// `TR_<participant>_<n>`.
    pub sid: String,
    /// Its frames are end-to-end encrypted.
    pub encrypted: bool,
}

/// Which kind of client a session is, as far as the directory and media plane care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Our protocol (WebSocket), or the SIP gateway, or a WHIP publisher.
    Ours,
    /// A WHEP viewer (see [`Takeover::Coexist`]).
    WhepViewer,
    /// LiveKit's protocol (`/rtc`).
    LiveKit { auto_subscribe: bool },
}

impl Client {
    fn is_livekit(self) -> bool {
        matches!(self, Client::LiveKit { .. })
    }
}

/// Largest data message payload, in bytes.
pub const MAX_DATA: usize = 15 * 1024;
/// Largest metadata string, in bytes.
pub const MAX_METADATA: usize = 16 * 1024;

/// Directory-wide settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// A join to a room that does not exist creates it.
    pub auto_create: bool,
    /// Default seconds an empty room lives before it is closed.
    pub empty_timeout: u64,
    /// Default participant limit (0: none).
    pub max_participants: u32,
    /// TURN servers handed to clients with short-lived credentials.
    pub turn: Option<crate::turn::TurnConfig>,
    /// Seconds a session whose socket dropped is kept for `resume` (0: not kept).
    pub resume_grace: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            auto_create: true,
            empty_timeout: 300,
            max_participants: 0,
            turn: None,
            resume_grace: 20,
        }
    }
}

/// What an administrator changes of a participant ([`Hub::update_participant`]); `None`
/// and an empty map leave things as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParticipantUpdate {
    pub metadata: Option<String>,
    pub permissions: Option<Permissions>,
    /// The display name.
    pub name: Option<String>,
    /// Merged into the participant's attributes; an empty value removes its key.
    pub attributes: BTreeMap<String, String>,
}

/// A room's settings and state, as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RoomInfo {
    pub name: String,
    /// Unique per incarnation of the name.
    pub sid: String,
    pub empty_timeout: u64,
    pub max_participants: u32,
    pub metadata: String,
    /// Unix seconds.
    pub created_at: u64,
    pub num_participants: usize,
}

/// Decides whether the node takes one more participant (`publishing`: it may publish);
/// `Some(reason)` refuses. Set by the server from its limits and worker load.
pub type Admission = Arc<dyn Fn(bool) -> Option<String> + Send + Sync>;

/// The REST API's operations on rooms and participants.
mod admin;
mod data;
mod directory;
mod media_events;
mod resume;
use directory::{
    announce_update, broadcast, kind_index, set_muted_flag, Directory, Member, Room, Takeover,
};
pub use resume::{Parking, ResumeError, Resumed};

/// The room-name rule ([`crate::RoomName`]), as a test.
pub fn valid_room_name(s: &str) -> bool {
    crate::RoomName::is_valid(s)
}

pub use crate::participant_names::clean_name;

pub struct Hub {
    keys: KeyStore,
    plane: Arc<dyn MediaPlane>,
    config: HubConfig,
    dir: Mutex<Directory>,
    next_id: AtomicU64,
    next_sid: AtomicU64,
    webhooks: Option<Webhooks>,
    draining: std::sync::atomic::AtomicBool,
    admission: parking_lot::RwLock<Option<Admission>>,
    placement: parking_lot::RwLock<Option<Arc<dyn crate::placement::Placement>>>,
    /// Signs and checks the mark on requests forwarded between nodes (none without keys).
    forwarding: Option<crate::forwarding_mark::MarkKey>,
}

impl Hub {
    pub fn new(keys: KeyStore, plane: Arc<dyn MediaPlane>) -> Self {
        Self::with_config(keys, plane, HubConfig::default(), None)
    }

    pub fn with_config(
        keys: KeyStore,
        plane: Arc<dyn MediaPlane>,
        config: HubConfig,
        webhooks: Option<Webhooks>,
    ) -> Self {
        let forwarding = keys
            .first_key()
            .and_then(|k| keys.secret(k))
            .map(crate::forwarding_mark::MarkKey::from_api_secret);
        Self {
            forwarding,
            keys,
            plane,
            config,
            dir: Mutex::new(Directory::default()),
            next_id: AtomicU64::new(1),
            next_sid: AtomicU64::new(1),
            webhooks,
            draining: std::sync::atomic::AtomicBool::new(false),
            admission: parking_lot::RwLock::new(None),
            placement: parking_lot::RwLock::new(None),
        }
    }

    /// Cluster mode: rooms are placed across nodes, and participant ids start at
    /// `id_base` (the node's slot in the high bits), unique across the cluster.
    pub fn set_placement(&self, p: Arc<dyn crate::placement::Placement>, id_base: u64) {
        *self.placement.write() = Some(p);
        self.next_id.fetch_max(id_base.max(1), Ordering::Relaxed);
    }

    pub fn placement(&self) -> Option<Arc<dyn crate::placement::Placement>> {
        self.placement.read().clone()
    }

    /// In a cluster, a room is joined and created only on its home: whatever path a
    /// request came by (WebSocket, REST, WHIP/WHEP, SIP), it must have been placed here.
    pub(crate) fn check_home(&self, room: &str) -> Result<(), Error> {
        match self.placement() {
            Some(p) if !p.is_home(room) => {
                metrics::counter!("switchboard_joins_refused_total", "reason" => "not_home")
                    .increment(1);
                Err(Error::Unavailable(format!(
                    "room {room} is not homed on this node (it was not placed here)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The key of the cluster's forwarding mark.
    pub fn forwarding_mark(&self) -> Option<&crate::forwarding_mark::MarkKey> {
        self.forwarding.as_ref()
    }

    /// The room an access token is for, if it verifies at `now`.
    pub fn token_room(&self, token: &str, now: u64) -> Option<String> {
        self.keys.verify(token, now).ok().map(|c| c.video.room)
    }

    /// Limits checked at every join (see [`Admission`]).
    pub fn set_admission(&self, a: Admission) {
        *self.admission.write() = Some(a);
    }

    /// Stop taking participants and rooms: joins and room creation are refused with
    /// "server draining"; running rooms go on.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Participants on this node.
    pub fn participant_count(&self) -> usize {
        self.dir.lock().room_of.len()
    }

    /// Tell every participant the server is shutting down and close its session; they
    /// leave the media plane. Returns how many there were.
    pub fn shutdown_all(&self) -> usize {
        let ids: Vec<ParticipantId> = self.dir.lock().room_of.keys().copied().collect();
        for id in &ids {
            if let Some(tx) = self.with_member(*id, |m| m.tx.clone()) {
                let why = "server shutting down".to_string();
                tx.send(ServerMessage::Error {
                    code: ErrorCode::ShuttingDown,
                    message: why.clone(),
                });
                tx.close(close_code::SHUTTING_DOWN, why);
            }
            self.remove(*id, "server shutting down", None);
        }
        ids.len()
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Webhook delivery counters, when webhooks are configured.
    pub fn webhook_stats(&self) -> Option<Arc<crate::webhook::WebhookStats>> {
        self.webhooks.as_ref().map(|w| w.stats.clone())
    }

    /// A SIP call event (`sip_call_started`, `sip_call_answered`, `sip_call_ended`,
    /// `sip_dtmf`) as a webhook. The room may not exist yet (an outbound call ringing):
    /// then only its name is filled in.
    pub fn sip_hook(&self, event: &str, call: &crate::sip_calls::SipCallInfo, digit: Option<char>) {
        let room = self.get_room(&call.room).unwrap_or_else(|_| RoomInfo {
            name: call.room.clone(),
            ..RoomInfo::default()
        });
        self.hook(WebhookEvent {
            digit: digit.map(String::from),
            ..WebhookEvent::sip(event, &room, call)
        });
    }

    /// The TURN servers for `identity`, with credentials valid from `now` (none when TURN
    /// is not configured).
    pub fn ice_servers(&self, identity: &str, now: u64) -> Vec<crate::turn::IceServer> {
        self.config
            .turn
            .iter()
            .map(|t| t.ice_server(identity, now))
            .collect()
    }

    fn hook(&self, e: WebhookEvent) {
        if let Some(w) = &self.webhooks {
            w.send(e);
        }
    }

    fn new_room(
        &self,
        name: &str,
        empty_timeout: Option<u64>,
        max_participants: Option<u32>,
        metadata: String,
        unix: u64,
    ) -> Room {
        let info = RoomInfo {
            name: name.to_string(),
            sid: format!("RM_{}", self.next_sid.fetch_add(1, Ordering::Relaxed)),
            empty_timeout: empty_timeout.unwrap_or(self.config.empty_timeout),
            max_participants: max_participants.unwrap_or(self.config.max_participants),
            metadata,
            created_at: unix,
            num_participants: 0,
        };
        self.hook(WebhookEvent::room("room_started", &info));
        Room {
            info,
            members: BTreeMap::new(),
            empty_since: None,
            speaker: None,
        }
    }

    /// Verify a token and admit its holder to the room.
    pub fn join(
        &self,
        token: &str,
        version: Option<u32>,
        now: Now,
    ) -> Result<(ParticipantId, OutboundRx), Error> {
        self.join_inner(token, version, now, Client::Ours, Takeover::Replace)
    }

    /// Join without replacing anyone: an identity already in the room is
    /// [`Error::Conflict`] (a phone dialled in through the API must not take over a
    /// participant's session).
    pub fn join_new(&self, token: &str, now: Now) -> Result<(ParticipantId, OutboundRx), Error> {
        self.join_inner(token, None, now, Client::Ours, Takeover::Refuse)
    }

    /// Whether `identity` is in `room` now.
    pub fn has_identity(&self, room: &str, identity: &str) -> bool {
        self.dir
            .lock()
            .rooms
            .get(room)
            .is_some_and(|r| r.members.values().any(|m| m.info.identity == identity))
    }

    /// A LiveKit client (`/rtc`): it takes a stream per track and its data over its
    /// data channels.
    /// `auto_subscribe`: false, it receives only the tracks it asks for.
    pub fn join_livekit(
        &self,
        token: &str,
        now: Now,
        auto_subscribe: bool,
    ) -> Result<(ParticipantId, OutboundRx), Error> {
        let client = Client::LiveKit { auto_subscribe };
        self.join_inner(token, None, now, client, Takeover::Replace)
    }

    /// A WHEP viewer: hidden, publishes nothing, and receives over m-lines it offers
    /// itself (see [`Hub::whep_offer`]).
    pub fn join_viewer(&self, token: &str, now: Now) -> Result<(ParticipantId, OutboundRx), Error> {
        self.join_inner(token, None, now, Client::WhepViewer, Takeover::Coexist)
    }

    /// Send a WHEP viewer's offer to the media plane, to receive `target_identity`, or
    /// the room's active speaker when None (with a SIP video endpoint's `options`).
    pub fn whep_offer(
        &self,
        id: ParticipantId,
        target_identity: Option<&str>,
        options: sfu_core::ViewerOptions,
        sdp: String,
    ) -> Result<(), Error> {
        let room = self
            .dir
            .lock()
            .room_of
            .get(&id)
            .cloned()
            .ok_or(Error::not_found("participant"))?;
        let target = match target_identity {
            Some(t) => Some(self.find(&room, t)?),
            None => None,
        };
        self.plane.send(
            &RoomId(room),
            Command::WhepOffer {
                participant: id,
                target,
                options,
                sdp,
            },
        )?;
        Ok(())
    }

    fn join_inner(
        &self,
        token: &str,
        version: Option<u32>,
        now: Now,
        client: Client,
        takeover: Takeover,
    ) -> Result<(ParticipantId, OutboundRx), Error> {
        let viewer = client == Client::WhepViewer;
        if let Some(v) = version {
            if v != PROTOCOL_VERSION {
                return Err(Error::UnsupportedVersion(v));
            }
        }
        let mut claims: Claims = self.keys.verify(token, now.unix)?;
        if self.is_draining() {
            return Err(Error::Draining);
        }
        let check = self.admission.read().clone();
        if let Some(reason) = check.and_then(|a| a(claims.video.can_publish && !viewer)) {
            metrics::counter!("switchboard_joins_refused_total", "reason" => "server_full")
                .increment(1);
            return Err(Error::ServerFull(reason));
        }
        if viewer {
            claims.video.can_publish = false;
            claims.video.hidden = true;
        }
        let g = &claims.video;
        let name = RoomName::parse(&g.room)?;
        self.check_home(name.as_str())?;
        let id = ParticipantId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let room = RoomId(g.room.clone());
        let resume_token = (self.config.resume_grace > 0).then(resume::new_token);
        let (tx, rx) = outbound::queue();
        let info = ParticipantInfo {
            id,
            identity: claims.sub.clone(),
            name: clean_name(claims.name.as_deref().unwrap_or(""), &claims.sub),
            reconnecting: false,
            kind: claims.kind,
            tracks: vec![],
            audio_muted: false,
            video_muted: false,
            metadata: claims.metadata.clone().unwrap_or_default(),
            attributes: claims.attributes.clone(),
            permissions: Permissions {
                can_publish: g.can_publish,
                can_subscribe: g.can_subscribe,
                can_publish_data: g.can_publish_data,
            },
            joined_at: now.unix,
        };
        // Registered before the media plane hears of it, so that no event for it is lost.
        let member = Member {
            info: info.clone(),
            hidden: g.hidden,
            viewer,
            allowed_sources: g.can_publish_sources.clone(),
            sources: HashMap::new(),
            sids: HashMap::new(),
            data_channels: client.is_livekit(),
            may_update_self: g.can_update_own_metadata,
            admin_muted: [false; 2],
            tx,
            resume_token: resume_token.clone(),
            epoch: 0,
            parked: None,
            media_interrupted: false,
            joined_at: Some(now.at),
        };
        let joined = |others| ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            room: room.0.clone(),
            participant: info.clone(),
            others,
            resume_token,
            ice_servers: self.ice_servers(&info.identity, now.unix),
        };
        let create = || {
            self.config
                .auto_create
                .then(|| self.new_room(&room.0, None, None, String::new(), now.unix))
        };
        let admitted = self
            .dir
            .lock()
            .admit(name, create, member, takeover, joined)?;
        self.hook(admitted.hook);
        let replaced = admitted.replaced;
        if let Some(old) = replaced {
            self.remove(
                old,
                "replaced by a new session of the same identity",
                Some(close_code::REMOVED),
            );
        }
        // A viewer's subscriber connection is made by its own offer, not by the server's.
        let can_subscribe = g.can_subscribe && !viewer;
        let join = Command::Join {
            room: room.clone(),
            participant: id,
            can_publish: g.can_publish,
            can_subscribe,
            track_streams: client.is_livekit(),
            auto_subscribe: !matches!(
                client,
                Client::LiveKit {
                    auto_subscribe: false
                }
            ),
        };
        if let Err(e) = self.plane.send(&room, join) {
            self.remove(id, "the media plane is busy", None);
            return Err(e.into());
        }
        tracing::info!(participant = %id, room = %room, "joined");
        Ok((id, rx))
    }

    /// A message from a joined client. Errors go back to that client only.
    pub fn handle(&self, id: ParticipantId, msg: ClientMessage) {
        let Some(room) = self.dir.lock().room_of.get(&id).cloned().map(RoomId) else {
            return;
        };
        let cmd = match msg {
            ClientMessage::Join { .. } | ClientMessage::Resume { .. } => {
                return self.reply_error(id, ErrorCode::BadState, "already joined")
            }
            ClientMessage::Ping {} => return self.send_to(id, ServerMessage::Pong),
            ClientMessage::Leave {} => return self.leave(id),
            ClientMessage::Mute { kind, muted } => return self.client_mute(id, &room, kind, muted),
            ClientMessage::Data {
                payload,
                topic,
                destination,
            } => {
                if !self
                    .with_member(id, |m| m.info.permissions.can_publish_data)
                    .unwrap_or(false)
                {
                    return self.reply_error(
                        id,
                        ErrorCode::NotAllowed,
                        "the token does not grant publishing data",
                    );
                }
                if payload.len() > MAX_DATA {
                    return self.reply_error(
                        id,
                        ErrorCode::BadMessage,
                        format!("data payload over {MAX_DATA} bytes"),
                    );
                }
                let out = data::Outgoing {
                    from: Some(id),
                    topic,
                    payload: Some(payload.into_bytes()),
                    packet: None,
                    lossy: false,
                };
                self.deliver_data(&room.0, out, |p| {
                    destination.is_empty() || destination.contains(&p.id)
                });
                return;
            }
            ClientMessage::PublishOffer { sdp, sources } => {
                if let Err(why) = crate::sdp_limits::check_media_sections(&sdp) {
                    return self.reply_error(id, ErrorCode::Media, why);
                }
                let checked = self.with_member(id, |m| {
                    if !m.info.permissions.can_publish {
                        return Err("the token does not grant publishing".to_string());
                    }
                    check_sources(&sdp, &sources, &m.allowed_sources)?;
                    m.sources.extend(sources.clone());
                    Ok(())
                });
                match checked {
                    Some(Ok(())) => {
                        // What each m-line carries sets its priority at subscribers (screen
                        // share first); the shard takes it before the offer.
                        let declared = sources.into_iter().collect();
                        if let Err(e) = self.plane.send(
                            &room,
                            Command::SetSources {
                                participant: id,
                                sources: declared,
                            },
                        ) {
                            return self.reply_error(id, ErrorCode::Busy, e.to_string());
                        }
                        Command::PublishOffer {
                            participant: id,
                            sdp,
                        }
                    }
                    Some(Err(why)) => return self.reply_error(id, ErrorCode::NotAllowed, why),
                    None => return,
                }
            }
            ClientMessage::SubscribeAnswer { sdp } => Command::SubscribeAnswer {
                participant: id,
                sdp,
            },
            ClientMessage::Viewport {
                track,
                width,
                height,
                visible,
            } => Command::SetViewport {
                participant: id,
                track,
                width,
                height,
                visible,
            },
            ClientMessage::Subscribe { tracks, subscribe } => Command::Subscribe {
                participant: id,
                tracks: tracks.into_iter().take(256).collect(),
                subscribe,
            },
            ClientMessage::PreferredQuality { track, quality } => Command::SetPreferredLayer {
                participant: id,
                track,
                max_rank: quality.map(Quality::max_rank),
            },
            ClientMessage::Candidate { pc, candidate } => {
                if candidate.trim().is_empty() {
                    return; // end of candidates
                }
                Command::Candidate {
                    participant: id,
                    pc,
                    candidate,
                }
            }
            ClientMessage::IceRestart { pc, ufrag, pwd } => match (pc, ufrag, pwd) {
                (pc, Some(ufrag), Some(pwd)) => Command::IceRestart {
                    participant: id,
                    pc,
                    ufrag,
                    pwd,
                },
                (sfu_core::PcKind::Subscriber, None, None) => {
                    Command::RestartSubscriberIce { participant: id }
                }
                _ => {
                    return self.reply_error(
                        id,
                        ErrorCode::BadMessage,
                        "ice_restart: `ufrag` and `pwd` together, or neither for the subscriber connection",
                    )
                }
            },
        };
        if let Err(e) = self.plane.send(&room, cmd) {
            self.reply_error(id, ErrorCode::Busy, e.to_string());
        }
    }

    fn with_member<T>(&self, id: ParticipantId, f: impl FnOnce(&mut Member) -> T) -> Option<T> {
        self.dir.lock().member_mut(id).map(f)
    }

    fn client_mute(&self, id: ParticipantId, room: &RoomId, kind: TrackKind, muted: bool) {
        let mut dir = self.dir.lock();
        let Some(r) = dir.rooms.get_mut(room.0.as_str()) else {
            return;
        };
        let Some(m) = r.members.get_mut(&id) else {
            return;
        };
        if !muted && m.admin_muted[kind_index(kind)] {
            m.tx.send(ServerMessage::Error {
                code: ErrorCode::NotAllowed,
                message: "muted by an administrator".into(),
            });
            return;
        }
        set_muted_flag(&mut m.info, kind, muted);
        broadcast(
            &r.members,
            Some(id),
            ServerMessage::MuteChanged {
                participant: id,
                kind,
                muted,
                by_admin: false,
            },
        );
    }

    /// The LiveKit sids a client chose for the tracks of its next publisher offer, by
    /// m-line (`TR_<its id>_<1–16 letters or digits>`): the tracks published from those
    /// m-lines carry them ([`TrackInfo::sid`](crate::protocol::TrackInfo)). A sid of
    /// another form, or one already on another m-line, is refused.
    pub fn name_tracks(
        &self,
        id: ParticipantId,
        named: std::collections::BTreeMap<String, NamedTrack>,
    ) -> Result<(), String> {
        let prefix = format!("TR_{}_", id.0);
        for sid in named.values().map(|n| &n.sid) {
            let rest = sid.strip_prefix(&prefix).unwrap_or("");
            if rest.is_empty()
                || rest.len() > 16
                || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "track sid {sid:.40} is not {prefix}<1-16 letters or digits>"
                ));
            }
        }
        self.with_member(id, |m| {
            if m.sids.len() + named.len() > 128 {
                return Err("more than 128 named m-lines".to_string());
            }
            for (mid, n) in &named {
                if m.sids
                    .iter()
                    .any(|(other, s)| s.sid == n.sid && other != mid)
                {
                    return Err(format!("track sid {} is already another m-line's", n.sid));
                }
            }
            m.sids.extend(named.clone());
            Ok(())
        })
        .unwrap_or(Ok(()))?;
        let room = self.dir.lock().room_of.get(&id).cloned();
        if let Some(room) = room {
            let named = Command::NameTracks {
                participant: id,
                sids: named.into_iter().map(|(mid, n)| (mid, n.sid)).collect(),
            };
            self.plane
                .send(&RoomId(room), named)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The most viewer `id` can receive, bits per second (a SIP video endpoint's RTCP
    /// bandwidth limit; None lifts it).
    pub fn set_max_bitrate(&self, id: ParticipantId, max_bitrate: Option<u64>) {
        let room = self.dir.lock().room_of.get(&id).cloned();
        if let Some(room) = room {
            let cmd = Command::SetMaxBitrate {
                participant: id,
                max_bitrate,
            };
            let _ = self.plane.send(&RoomId(room), cmd);
        }
    }

    /// The client left or its WebSocket closed.
    pub fn leave(&self, id: ParticipantId) {
        self.remove(id, "left", None);
    }

    /// Remove `id`; with `close`, tell its client why and close its socket with that code.
    fn remove(&self, id: ParticipantId, reason: &str, close: Option<u16>) {
        let Some(removed) = self.dir.lock().remove(id, reason) else {
            return;
        };
        let (room, member, hook) = (RoomId(removed.room), removed.member, removed.hook);
        if let Some(h) = hook {
            self.hook(h);
        }
        let _ = self.plane.send(&room, Command::Leave { participant: id });
        if let Some(code) = close {
            if let Some(m) = member {
                m.tx.send(ServerMessage::Error {
                    code: ErrorCode::Removed,
                    message: reason.to_string(),
                });
                m.tx.close(code, reason);
            }
        }
        tracing::info!(participant = %id, room = %room, reason, "left");
    }

    /// Tell one client its message was refused; the session stays up.
    pub fn reply_error(&self, id: ParticipantId, code: ErrorCode, message: impl Into<String>) {
        self.send_to(
            id,
            ServerMessage::Error {
                code,
                message: message.into(),
            },
        );
    }

    /// Queue `msg` for `id` (see [`outbound`] for what happens when it is far behind).
    fn send_to(&self, id: ParticipantId, msg: ServerMessage) {
        self.with_member(id, |m| m.tx.send(msg));
    }

    /// Close rooms that have been empty longer than their timeout (counted from the first
    /// sweep that found them empty), and remove sessions parked past the resume grace
    /// period. Call periodically (the server: every second).
    pub fn reap(&self, now: Instant) -> usize {
        self.expire_parked(now);
        let gone = self.dir.lock().sweep(now);
        for info in &gone {
            self.plane.room_closed(&RoomId(info.name.clone()));
            self.hook(WebhookEvent::room("room_finished", info));
        }
        gone.len()
    }

    /// Participants of a room (tests, API).
    pub fn room_members(&self, room: &str) -> Vec<ParticipantInfo> {
        self.dir
            .lock()
            .rooms
            .get(room)
            .map(|r| r.members.values().map(|m| m.info.clone()).collect())
            .unwrap_or_default()
    }
}

/// Every m-line of `sdp` must be declared with a known source, and one the token allows
/// when it limits sources.
fn check_sources(
    sdp: &str,
    declared: &std::collections::BTreeMap<String, TrackSource>,
    allowed: &[TrackSource],
) -> Result<(), String> {
    for (mid, src) in declared {
        if *src == TrackSource::Unknown {
            return Err(format!("m-line {mid}: unknown source (camera, microphone, screen_share, screen_share_audio)"));
        }
    }
    if allowed.is_empty() {
        return Ok(());
    }
    for mid in sdp.lines().filter_map(|l| l.trim().strip_prefix("a=mid:")) {
        match declared.get(mid) {
            None => {
                return Err(format!(
                    "m-line {mid}: the token limits sources, so each m-line needs one"
                ))
            }
            Some(s) if !allowed.contains(s) => {
                return Err(format!(
                    "the token does not grant publishing {}",
                    s.as_str()
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

//! The room directory of the control plane: who is in which room with which tracks, and
//! the outbound queue of every signaling session. Turns client messages into media-plane
//! commands and media-plane events into client messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use sfu_core::{Command, Event, GoneReason, ParticipantId, RoomId, TrackKind};
use tokio::sync::mpsc;

use crate::auth::{AuthError, Claims, KeyStore};
use crate::plane::{MediaPlane, PlaneError};
use crate::protocol::{close_code, ClientMessage, ErrorCode, ParticipantInfo, ServerMessage, TrackInfo, PROTOCOL_VERSION};

/// What a session's writer task sends on the WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Message(ServerMessage),
    Close { code: u16, reason: String },
}

/// Capacity of a session's outbound queue. A client that falls this far behind is cut off
/// rather than allowed to grow memory without bound.
pub const OUTBOUND_QUEUE: usize = 512;

struct Member {
    info: ParticipantInfo,
    can_publish: bool,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Default)]
struct Directory {
    rooms: HashMap<String, BTreeMap<ParticipantId, Member>>,
    room_of: HashMap<ParticipantId, String>,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("invalid room name: 1-128 characters of A-Z a-z 0-9 _ . -")]
    BadRoomName,
    #[error("unsupported protocol version {0}; this server speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion(u32),
    #[error(transparent)]
    Plane(#[from] PlaneError),
}

pub fn valid_room_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Display names: trimmed, at most 64 characters, never empty.
pub fn clean_name(s: &str, fallback: &str) -> String {
    let t: String = s.trim().chars().filter(|c| !c.is_control()).take(64).collect();
    if t.is_empty() {
        fallback.chars().take(64).collect()
    } else {
        t
    }
}

pub struct Hub {
    keys: KeyStore,
    plane: Arc<dyn MediaPlane>,
    dir: Mutex<Directory>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new(keys: KeyStore, plane: Arc<dyn MediaPlane>) -> Self {
        Self { keys, plane, dir: Mutex::new(Directory::default()), next_id: AtomicU64::new(1) }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Verify a token and admit its holder to the room.
    pub fn join(&self, token: &str, version: Option<u32>, now: u64) -> Result<(ParticipantId, mpsc::Receiver<Outbound>), JoinError> {
        if let Some(v) = version {
            if v != PROTOCOL_VERSION {
                return Err(JoinError::UnsupportedVersion(v));
            }
        }
        let claims: Claims = self.keys.verify(token, now)?;
        if !valid_room_name(&claims.video.room) {
            return Err(JoinError::BadRoomName);
        }
        let id = ParticipantId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let room = RoomId(claims.video.room.clone());
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let info = ParticipantInfo {
            id,
            identity: claims.sub.clone(),
            name: clean_name(claims.name.as_deref().unwrap_or(""), &claims.sub),
            tracks: vec![],
            audio_muted: false,
            video_muted: false,
        };
        // Registered before the media plane hears of it, so that no event for it is lost.
        let replaced = {
            let mut dir = self.dir.lock();
            let members = dir.rooms.entry(room.0.clone()).or_default();
            // One session per identity and room: a new join replaces the old session.
            let replaced = members.values().find(|m| m.info.identity == info.identity).map(|m| m.info.id);
            let others: Vec<ParticipantInfo> =
                members.values().filter(|m| Some(m.info.id) != replaced).map(|m| m.info.clone()).collect();
            let joined = ServerMessage::Joined { version: PROTOCOL_VERSION, room: room.0.clone(), participant: info.clone(), others };
            let _ = tx.try_send(Outbound::Message(joined));
            broadcast(members, None, ServerMessage::ParticipantJoined { participant: info.clone() });
            members.insert(id, Member { info, can_publish: claims.video.can_publish, tx });
            dir.room_of.insert(id, room.0.clone());
            replaced
        };
        if let Some(old) = replaced {
            self.remove(old, "replaced by a new session of the same identity", true);
        }
        let join = Command::Join {
            room: room.clone(),
            participant: id,
            can_publish: claims.video.can_publish,
            can_subscribe: claims.video.can_subscribe,
        };
        if let Err(e) = self.plane.send(&room, join) {
            self.remove(id, "the media plane is busy", false);
            return Err(e.into());
        }
        tracing::info!(participant = %id, room = %room, "joined");
        Ok((id, rx))
    }

    /// A message from a joined client. Errors go back to that client only.
    pub fn handle(&self, id: ParticipantId, msg: ClientMessage) {
        let Some(room) = self.dir.lock().room_of.get(&id).cloned().map(RoomId) else { return };
        let cmd = match msg {
            ClientMessage::Join { .. } => {
                return self.send_to(id, ServerMessage::Error { code: ErrorCode::BadState, message: "already joined".into() });
            }
            ClientMessage::Ping {} => return self.send_to(id, ServerMessage::Pong),
            ClientMessage::Leave {} => return self.leave(id),
            ClientMessage::Mute { kind, muted } => return self.set_mute(id, &room, kind, muted),
            ClientMessage::PublishOffer { sdp } => {
                let allowed = self.with_member(id, |m| m.can_publish).unwrap_or(false);
                if !allowed {
                    return self.send_to(id, ServerMessage::Error { code: ErrorCode::Media, message: "the token does not grant publishing".into() });
                }
                Command::PublishOffer { participant: id, sdp }
            }
            ClientMessage::SubscribeAnswer { sdp } => Command::SubscribeAnswer { participant: id, sdp },
            ClientMessage::Candidate { pc, candidate } => {
                if candidate.trim().is_empty() {
                    return; // end of candidates
                }
                Command::Candidate { participant: id, pc, candidate }
            }
        };
        if let Err(e) = self.plane.send(&room, cmd) {
            self.send_to(id, ServerMessage::Error { code: ErrorCode::Busy, message: e.to_string() });
        }
    }

    fn with_member<T>(&self, id: ParticipantId, f: impl FnOnce(&mut Member) -> T) -> Option<T> {
        let mut dir = self.dir.lock();
        let room = dir.room_of.get(&id)?.clone();
        dir.rooms.get_mut(&room)?.get_mut(&id).map(f)
    }

    fn set_mute(&self, id: ParticipantId, room: &RoomId, kind: TrackKind, muted: bool) {
        let mut dir = self.dir.lock();
        let Some(members) = dir.rooms.get_mut(&room.0) else { return };
        if let Some(m) = members.get_mut(&id) {
            match kind {
                TrackKind::Audio => m.info.audio_muted = muted,
                TrackKind::Video => m.info.video_muted = muted,
            }
        }
        broadcast(members, Some(id), ServerMessage::MuteChanged { participant: id, kind, muted });
    }

    /// The client left or its WebSocket closed.
    pub fn leave(&self, id: ParticipantId) {
        self.remove(id, "left", false);
    }

    fn remove(&self, id: ParticipantId, reason: &str, close: bool) {
        let (room, member, empty) = {
            let mut dir = self.dir.lock();
            let Some(room) = dir.room_of.remove(&id) else { return };
            let Some(members) = dir.rooms.get_mut(&room) else { return };
            let member = members.remove(&id);
            broadcast(members, None, ServerMessage::ParticipantLeft { participant: id, reason: reason.to_string() });
            let empty = members.is_empty();
            if empty {
                dir.rooms.remove(&room);
            }
            (RoomId(room), member, empty)
        };
        let _ = self.plane.send(&room, Command::Leave { participant: id });
        if close {
            if let Some(m) = member {
                let _ = m.tx.try_send(Outbound::Message(ServerMessage::Error { code: ErrorCode::Removed, message: reason.to_string() }));
                let _ = m.tx.try_send(Outbound::Close { code: close_code::REMOVED, reason: reason.to_string() });
            }
        }
        if empty {
            self.plane.room_closed(&room);
        }
        tracing::info!(participant = %id, room = %room, reason, "left");
    }

    /// Tell one client its message was refused; the session stays up.
    pub fn reply_error(&self, id: ParticipantId, code: ErrorCode, message: impl Into<String>) {
        self.send_to(id, ServerMessage::Error { code, message: message.into() });
    }

    fn send_to(&self, id: ParticipantId, msg: ServerMessage) {
        let full = self.with_member(id, |m| m.tx.try_send(Outbound::Message(msg)).is_err()).unwrap_or(false);
        if full {
            tracing::warn!(participant = %id, "signaling queue full: disconnecting");
            self.remove(id, "signaling queue overflow", true);
        }
    }

    /// An event from the media plane.
    pub fn on_media_event(&self, ev: Event) {
        match ev {
            Event::PublishAnswer { participant, sdp } => self.send_to(participant, ServerMessage::PublishAnswer { sdp }),
            Event::SubscribeOffer { participant, sdp, tracks } => {
                self.send_to(participant, ServerMessage::SubscribeOffer { sdp, tracks })
            }
            Event::Connected { .. } => {}
            Event::TrackPublished { room, participant, track, kind, rids, .. } => {
                let info = TrackInfo { id: track, kind, simulcast: rids };
                let mut dir = self.dir.lock();
                if let Some(members) = dir.rooms.get_mut(&room.0) {
                    if let Some(m) = members.get_mut(&participant) {
                        m.info.tracks.push(info.clone());
                    }
                    broadcast(members, Some(participant), ServerMessage::TrackPublished { participant, track: info });
                }
            }
            Event::TrackUnpublished { room, participant, track } => {
                let mut dir = self.dir.lock();
                if let Some(members) = dir.rooms.get_mut(&room.0) {
                    if let Some(m) = members.get_mut(&participant) {
                        m.info.tracks.retain(|t| t.id != track);
                    }
                    broadcast(members, Some(participant), ServerMessage::TrackUnpublished { participant, track });
                }
            }
            Event::ParticipantGone { participant, reason, .. } => {
                if reason != GoneReason::Left {
                    let why = match reason {
                        GoneReason::IceTimeout => "connection lost (ICE timeout)",
                        _ => "connection failed",
                    };
                    self.remove(participant, why, true);
                }
            }
            Event::CommandFailed { participant, error } => {
                self.send_to(participant, ServerMessage::Error { code: ErrorCode::Media, message: error.to_string() })
            }
        }
    }

    /// Participants of a room (for tests and the REST API later).
    pub fn room_members(&self, room: &str) -> Vec<ParticipantInfo> {
        self.dir.lock().rooms.get(room).map(|m| m.values().map(|m| m.info.clone()).collect()).unwrap_or_default()
    }
}

fn broadcast(members: &BTreeMap<ParticipantId, Member>, except: Option<ParticipantId>, msg: ServerMessage) {
    for m in members.values().filter(|m| Some(m.info.id) != except) {
        let _ = m.tx.try_send(Outbound::Message(msg.clone()));
    }
}

//! The directory itself: rooms, their members and which room each participant is in,
//! with the operations that change it — admitting a member, removing one, sweeping out
//! rooms left empty. Each returns what the caller must do next (a session replaced, a
//! webhook, rooms closed); nothing here locks, reads a clock, or talks to the media plane
//! or a webhook endpoint. The hub ([`super::Hub`]) holds it behind its lock and carries the
//! effects out.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sfu_core::{ParticipantId, TrackKind, TrackSource};

use super::resume;
use super::NamedTrack;
use super::RoomInfo;
use crate::error::Error;
use crate::outbound::{self, OutboundTx};
use crate::protocol::{ParticipantInfo, ServerMessage};
use crate::room_name::RoomName;
use crate::webhook::WebhookEvent;

pub(super) fn kind_index(k: TrackKind) -> usize {
    match k {
        TrackKind::Audio => 0,
        TrackKind::Video => 1,
    }
}

/// What a join does to a session of the same identity in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Takeover {
    /// One session per identity and room: the new one replaces the old (a reconnect).
    Replace,
    /// The join is refused.
    Refuse,
    /// WHEP viewers: any number share one identity (one viewing token handed to every
    /// player); they replace nobody and nobody replaces them.
    Coexist,
}

pub(super) struct Member {
    pub(super) info: ParticipantInfo,
    pub(super) hidden: bool,
    /// A WHEP viewer (see [`Takeover::Coexist`]).
    pub(super) viewer: bool,
    /// `canPublishSources` of the token (empty: any).
    pub(super) allowed_sources: Vec<TrackSource>,
    /// Declared source per publisher m-line.
    pub(super) sources: HashMap<String, TrackSource>,
    /// LiveKit track sids per publisher m-line (see [`Hub::name_tracks`]).
    pub(super) sids: HashMap<String, NamedTrack>,
    /// It takes data messages over its data channels, not its socket (LiveKit clients).
    pub(super) data_channels: bool,
    /// Its token grants `canUpdateOwnMetadata`.
    pub(super) may_update_self: bool,
    pub(super) admin_muted: [bool; 2],
    pub(super) tx: OutboundTx,
    /// Its `resume` token (none when sessions are not kept for resuming).
    pub(super) resume_token: Option<String>,
    /// Grows with each resume: a socket of an older epoch no longer owns the session.
    pub(super) epoch: u64,
    /// Its socket dropped: since when, and its queue meanwhile.
    pub(super) parked: Option<resume::Parked>,
    /// Its media path broke (ICE went quiet) and has not come back yet.
    pub(super) media_interrupted: bool,
    /// When it joined, until its first connection is up (join latency).
    pub(super) joined_at: Option<Instant>,
}

pub(super) struct Room {
    pub(super) info: RoomInfo,
    pub(super) members: BTreeMap<ParticipantId, Member>,
    /// Since when the room has been empty, as the first sweep ([`Hub::reap`]) that found
    /// it empty saw it; `None` while anyone is in it (or no sweep has seen it empty yet).
    pub(super) empty_since: Option<Instant>,
    /// The active speaker the media plane last named, told to each newcomer after its
    /// `joined` (otherwise it would hear of one only at the next change).
    pub(super) speaker: Option<ParticipantId>,
}

#[derive(Default)]
pub(super) struct Directory {
    pub(super) rooms: HashMap<RoomName, Room>,
    pub(super) room_of: HashMap<ParticipantId, String>,
}

/// A member admitted ([`Directory::admit`]).
pub(super) struct Admitted {
    /// The session of the same identity it replaces, to be removed by the caller.
    pub replaced: Option<ParticipantId>,
    /// `participant_joined`.
    pub hook: WebhookEvent,
}

/// A member removed ([`Directory::remove`]).
pub(super) struct Removed {
    pub room: String,
    pub member: Option<Member>,
    /// `participant_left`, when it was a member.
    pub hook: Option<WebhookEvent>,
}

impl Directory {
    /// Admit `member` to the room `name` — made by `create` when there is none (None:
    /// rooms are not created by joins). Its own queue first gets `joined(others)`; the
    /// others hear of it unless it is hidden. A session of the same identity is replaced
    /// or refused as `takeover` says; a full room refuses.
    pub fn admit(
        &mut self,
        name: RoomName,
        create: impl FnOnce() -> Option<Room>,
        member: Member,
        takeover: Takeover,
        joined: impl FnOnce(Vec<ParticipantInfo>) -> ServerMessage,
    ) -> Result<Admitted, Error> {
        if !self.rooms.contains_key(name.as_str()) {
            let r = create().ok_or(Error::NoSuchRoom)?;
            self.rooms.insert(name.clone(), r);
        }
        let r = self.rooms.get_mut(name.as_str()).expect("inserted above");
        let info = &member.info;
        // One session per identity and room: a new join replaces the old session (WHEP
        // viewers aside: they coexist).
        let replaced = match takeover {
            Takeover::Coexist => None,
            Takeover::Replace | Takeover::Refuse => r
                .members
                .values()
                .find(|m| !m.viewer && m.info.identity == info.identity)
                .map(|m| m.info.id),
        };
        if replaced.is_some() && takeover == Takeover::Refuse {
            return Err(Error::Conflict(format!(
                "identity {} is already in room {}",
                info.identity,
                name.as_str()
            )));
        }
        let max = r.info.max_participants;
        let counted = r.members.len() - usize::from(replaced.is_some());
        if max > 0 && counted >= max as usize {
            return Err(Error::RoomFull(max));
        }
        let others = r
            .members
            .values()
            .filter(|m| Some(m.info.id) != replaced && !m.hidden)
            .map(|m| m.info.clone())
            .collect();
        member.tx.send(joined(others));
        if let Some(s) = r
            .speaker
            .filter(|s| Some(*s) != replaced && r.members.contains_key(s))
        {
            member
                .tx
                .send(ServerMessage::ActiveSpeaker { participant: s });
        }
        if !member.hidden {
            broadcast(
                &r.members,
                None,
                ServerMessage::ParticipantJoined {
                    participant: info.clone(),
                },
            );
        }
        let (id, info) = (info.id, info.clone());
        r.members.insert(id, member);
        r.empty_since = None;
        r.info.num_participants = r.members.len();
        self.room_of.insert(id, name.as_str().to_string());
        let hook = WebhookEvent::participant("participant_joined", &r.info, &info);
        Ok(Admitted { replaced, hook })
    }

    /// Remove `id` from its room; the others hear why (unless it was hidden). None: it
    /// was in no room.
    pub fn remove(&mut self, id: ParticipantId, reason: &str) -> Option<Removed> {
        let room = self.room_of.remove(&id)?;
        let r = self.rooms.get_mut(room.as_str())?;
        let member = r.members.remove(&id);
        if member.as_ref().is_some_and(|m| !m.hidden) {
            broadcast(
                &r.members,
                None,
                ServerMessage::ParticipantLeft {
                    participant: id,
                    reason: reason.to_string(),
                },
            );
        }
        r.info.num_participants = r.members.len();
        let hook = member
            .as_ref()
            .map(|m| WebhookEvent::participant("participant_left", &r.info, &m.info));
        Some(Removed { room, member, hook })
    }

    /// Close the rooms that have been empty for their timeout, counted from the first
    /// sweep that found them empty; what they were is returned.
    pub fn sweep(&mut self, now: Instant) -> Vec<RoomInfo> {
        for r in self.rooms.values_mut() {
            r.empty_since = match r.empty_since {
                _ if !r.members.is_empty() => None,
                None => Some(now),
                since => since,
            };
        }
        let expired: Vec<RoomName> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                r.members.is_empty()
                    && r.empty_since.is_some_and(|t| {
                        now.saturating_duration_since(t)
                            >= Duration::from_secs(r.info.empty_timeout)
                    })
            })
            .map(|(n, _)| n.clone())
            .collect();
        expired
            .iter()
            .filter_map(|n| self.rooms.remove(n.as_str()))
            .map(|r| r.info)
            .collect()
    }

    /// The member `id`, wherever it is.
    pub fn member_mut(&mut self, id: ParticipantId) -> Option<&mut Member> {
        let room = self.room_of.get(&id)?;
        self.rooms.get_mut(room.as_str())?.members.get_mut(&id)
    }
}

pub(super) fn set_muted_flag(info: &mut ParticipantInfo, kind: TrackKind, muted: bool) {
    match kind {
        TrackKind::Audio => info.audio_muted = muted,
        TrackKind::Video => info.video_muted = muted,
    }
}

/// Tell the others of a room that `id` changed (unless it is hidden).
pub(super) fn announce_update(
    members: &BTreeMap<ParticipantId, Member>,
    id: ParticipantId,
    hidden: bool,
    info: ParticipantInfo,
) {
    if !hidden {
        broadcast(
            members,
            Some(id),
            ServerMessage::ParticipantUpdated { participant: info },
        );
    }
}

pub(super) fn broadcast(
    members: &BTreeMap<ParticipantId, Member>,
    except: Option<ParticipantId>,
    msg: ServerMessage,
) {
    let bytes = outbound::weigh(&msg);
    for m in members.values().filter(|m| Some(m.info.id) != except) {
        m.tx.send_weighed(msg.clone(), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::{queue, OutboundRx};
    use crate::protocol::Permissions;

    fn member(id: u64, identity: &str, hidden: bool) -> (Member, OutboundRx) {
        let (tx, rx) = queue();
        let info = ParticipantInfo {
            id: ParticipantId(id),
            identity: identity.into(),
            name: identity.into(),
            reconnecting: false,
            kind: Default::default(),
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
        };
        let m = Member {
            info,
            hidden,
            viewer: false,
            allowed_sources: vec![],
            sources: HashMap::new(),
            sids: HashMap::new(),
            data_channels: false,
            may_update_self: false,
            admin_muted: [false; 2],
            tx,
            resume_token: None,
            epoch: 0,
            parked: None,
            media_interrupted: false,
            joined_at: None,
        };
        (m, rx)
    }

    fn room(max: u32, empty_timeout: u64) -> Option<Room> {
        Some(Room {
            info: RoomInfo {
                name: "r".into(),
                max_participants: max,
                empty_timeout,
                ..RoomInfo::default()
            },
            members: BTreeMap::new(),
            empty_since: None,
            speaker: None,
        })
    }

    fn admit(
        d: &mut Directory,
        m: Member,
        takeover: Takeover,
        max: u32,
    ) -> Result<Admitted, Error> {
        d.admit(
            RoomName::parse("r").unwrap(),
            || room(max, 5),
            m,
            takeover,
            |others| ServerMessage::Data {
                from: None,
                topic: Some(format!("{} others", others.len())),
                payload: String::new(),
            },
        )
    }

    fn messages(rx: &mut OutboundRx) -> Vec<ServerMessage> {
        std::iter::from_fn(|| rx.try_recv())
            .filter_map(|o| match o {
                crate::hub::Outbound::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_member_is_admitted_told_who_is_there_and_announced_unless_hidden() {
        let mut d = Directory::default();
        let (a, mut ra) = member(1, "alice", false);
        let (h, mut rh) = member(2, "ghost", true);
        let (b, mut rb) = member(3, "bob", false);
        let hook = admit(&mut d, a, Takeover::Replace, 0).unwrap().hook;
        assert_eq!(hook.room.num_participants, 1);
        admit(&mut d, h, Takeover::Replace, 0).unwrap();
        admit(&mut d, b, Takeover::Replace, 0).unwrap();
        // bob's first message counts the others he may see: alice, not the hidden one.
        assert!(
            matches!(&messages(&mut rb)[..], [ServerMessage::Data { topic: Some(t), .. }] if t == "1 others")
        );
        let heard: Vec<_> = messages(&mut ra)
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::ParticipantJoined { participant } => Some(participant.identity),
                _ => None,
            })
            .collect();
        assert_eq!(heard, ["bob"]);
        assert!(messages(&mut rh).len() == 2);
        assert_eq!(d.room_of.len(), 3);
    }

    #[test]
    fn the_same_identity_is_replaced_or_refused_and_a_full_room_refuses() {
        let mut d = Directory::default();
        let (a, _ra) = member(1, "alice", false);
        admit(&mut d, a, Takeover::Replace, 2).unwrap();
        let (again, _) = member(2, "alice", false);
        assert!(matches!(
            admit(&mut d, again, Takeover::Refuse, 2),
            Err(Error::Conflict(_))
        ));
        let (again, _) = member(3, "alice", false);
        let replaced = admit(&mut d, again, Takeover::Replace, 2).unwrap().replaced;
        assert_eq!(replaced, Some(ParticipantId(1)));
        // The old session is the caller's to remove; the room counts it until then,
        // but the limit does not count the session being replaced.
        d.remove(ParticipantId(1), "replaced").unwrap();
        let (b, _) = member(4, "bob", false);
        admit(&mut d, b, Takeover::Replace, 2).unwrap();
        let (c, _) = member(5, "carol", false);
        assert!(matches!(
            admit(&mut d, c, Takeover::Replace, 2),
            Err(Error::RoomFull(2))
        ));
        // No room and none to be made: no such room.
        let (z, _) = member(6, "zed", false);
        assert!(matches!(
            d.admit(
                RoomName::parse("other").unwrap(),
                || None,
                z,
                Takeover::Replace,
                |_| ServerMessage::Pong
            ),
            Err(Error::NoSuchRoom)
        ));
    }

    #[test]
    fn a_removal_is_announced_and_an_empty_room_swept_after_its_timeout() {
        let mut d = Directory::default();
        let (a, _ra) = member(1, "alice", false);
        let (b, mut rb) = member(2, "bob", false);
        admit(&mut d, a, Takeover::Replace, 0).unwrap();
        admit(&mut d, b, Takeover::Replace, 0).unwrap();
        messages(&mut rb);
        let gone = d.remove(ParticipantId(1), "left").unwrap();
        assert_eq!(gone.hook.unwrap().room.num_participants, 1);
        assert!(
            matches!(&messages(&mut rb)[..], [ServerMessage::ParticipantLeft { reason, .. }] if reason == "left")
        );
        assert!(d.remove(ParticipantId(1), "left").is_none());
        d.remove(ParticipantId(2), "left").unwrap();
        // Empty from the first sweep that sees it so; closed 5 s (its timeout) later.
        let t0 = Instant::now();
        assert!(d.sweep(t0).is_empty());
        assert!(d.sweep(t0 + Duration::from_secs(4)).is_empty());
        let closed = d.sweep(t0 + Duration::from_secs(5));
        assert_eq!(closed.len(), 1);
        assert!(d.rooms.is_empty());
    }
}

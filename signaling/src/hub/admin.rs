//! The REST API's operations on the directory: rooms (create, list, update, delete) and
//! participants (list, update, remove, mute), data messages. Errors are [`Error`]s,
//! which the API maps to HTTP statuses.

use super::*;

impl Hub {
    pub fn create_room(
        &self,
        name: RoomName,
        empty_timeout: Option<u64>,
        max_participants: Option<u32>,
        metadata: String,
        now: Now,
    ) -> Result<RoomInfo, Error> {
        if self.is_draining() {
            return Err(Error::Unavailable(
                "server draining: create the room on another node".into(),
            ));
        }
        if metadata.len() > MAX_METADATA {
            return Err(Error::Invalid(format!(
                "metadata: at most {MAX_METADATA} bytes"
            )));
        }
        if empty_timeout.is_some_and(|t| t > 7 * 24 * 3600) {
            return Err(Error::Invalid(
                "empty_timeout: at most 604800 seconds".into(),
            ));
        }
        self.check_home(name.as_str())?;
        let mut dir = self.dir.lock();
        if dir.rooms.contains_key(name.as_str()) {
            return Err(Error::Conflict(format!("room {} exists", name.as_str())));
        }
        let r = self.new_room(
            name.as_str(),
            empty_timeout,
            max_participants,
            metadata,
            now.unix,
        );
        let info = r.info.clone();
        dir.rooms.insert(name, r);
        Ok(info)
    }

    pub fn list_rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self
            .dir
            .lock()
            .rooms
            .values()
            .map(|r| r.info.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn get_room(&self, name: &str) -> Result<RoomInfo, Error> {
        self.dir
            .lock()
            .rooms
            .get(name)
            .map(|r| r.info.clone())
            .ok_or(Error::not_found("room"))
    }

    /// Close a room now: everyone is disconnected with `reason`.
    pub fn delete_room(&self, name: &str, reason: &str) -> Result<(), Error> {
        let ids: Vec<ParticipantId> = {
            let dir = self.dir.lock();
            let r = dir.rooms.get(name).ok_or(Error::not_found("room"))?;
            r.members.keys().copied().collect()
        };
        for id in ids {
            self.remove(id, reason, Some(close_code::REMOVED));
        }
        let gone = self.dir.lock().rooms.remove(name);
        if let Some(r) = gone {
            self.plane.room_closed(&RoomId(name.to_string()));
            self.hook(WebhookEvent::room("room_finished", &r.info));
        }
        Ok(())
    }

    pub(super) fn find(&self, room: &str, identity: &str) -> Result<ParticipantId, Error> {
        let dir = self.dir.lock();
        let r = dir.rooms.get(room).ok_or(Error::not_found("room"))?;
        r.members
            .values()
            .find(|m| m.info.identity == identity)
            .map(|m| m.info.id)
            .ok_or(Error::not_found("participant"))
    }

    pub fn get_participant(&self, room: &str, identity: &str) -> Result<ParticipantInfo, Error> {
        let id = self.find(room, identity)?;
        self.with_member(id, |m| m.info.clone())
            .ok_or(Error::not_found("participant"))
    }

    pub fn list_participants(&self, room: &str) -> Result<Vec<ParticipantInfo>, Error> {
        let dir = self.dir.lock();
        let r = dir.rooms.get(room).ok_or(Error::not_found("room"))?;
        Ok(r.members.values().map(|m| m.info.clone()).collect())
    }

    pub fn remove_participant(
        &self,
        room: &str,
        identity: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let id = self.find(room, identity)?;
        self.remove(id, reason, Some(close_code::REMOVED));
        Ok(())
    }

    /// An admin mute: enforced by the media plane (nothing is forwarded) and shown to all.
    pub fn admin_mute(
        &self,
        room: &str,
        identity: &str,
        kind: TrackKind,
        muted: bool,
    ) -> Result<ParticipantInfo, Error> {
        let id = self.find(room, identity)?;
        self.plane.send(
            &RoomId(room.to_string()),
            Command::SetMuted {
                participant: id,
                kind,
                muted,
            },
        )?;
        let mut dir = self.dir.lock();
        let r = dir.rooms.get_mut(room).ok_or(Error::not_found("room"))?;
        let m = r
            .members
            .get_mut(&id)
            .ok_or(Error::not_found("participant"))?;
        m.admin_muted[kind_index(kind)] = muted;
        set_muted_flag(&mut m.info, kind, muted);
        let info = m.info.clone();
        broadcast(
            &r.members,
            None,
            ServerMessage::MuteChanged {
                participant: id,
                kind,
                muted,
                by_admin: true,
            },
        );
        Ok(info)
    }

    /// Subscribe a participant to tracks of its room, or unsubscribe it (RoomService's
    /// `UpdateSubscriptions`).
    pub fn subscribe(
        &self,
        room: &str,
        identity: &str,
        tracks: Vec<sfu_core::TrackId>,
        subscribe: bool,
    ) -> Result<(), Error> {
        let id = self.find(room, identity)?;
        let cmd = Command::Subscribe {
            participant: id,
            tracks: tracks.into_iter().take(256).collect(),
            subscribe,
        };
        self.plane.send(&RoomId(room.to_string()), cmd)?;
        Ok(())
    }

    /// A participant's own client changes its metadata, name or attributes (when its
    /// token grants `canUpdateOwnMetadata`; never its permissions).
    pub fn update_own(
        &self,
        id: ParticipantId,
        mut update: ParticipantUpdate,
    ) -> Result<ParticipantInfo, Error> {
        update.permissions = None;
        let who = {
            let dir = self.dir.lock();
            dir.room_of.get(&id).cloned().and_then(|room| {
                let m = dir.rooms.get(room.as_str())?.members.get(&id)?;
                Some((room, m.info.identity.clone(), m.may_update_self))
            })
        };
        match who {
            None => Err(Error::not_found("participant")),
            Some((_, _, false)) => Err(Error::Forbidden(
                "the token does not grant canUpdateOwnMetadata".into(),
            )),
            Some((room, identity, true)) => self.update_participant(&room, &identity, update),
        }
    }

    pub fn update_participant(
        &self,
        room: &str,
        identity: &str,
        update: ParticipantUpdate,
    ) -> Result<ParticipantInfo, Error> {
        let ParticipantUpdate {
            metadata,
            permissions,
            name,
            attributes,
        } = update;
        let attributes_size: usize = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        if attributes_size > MAX_METADATA {
            return Err(Error::Invalid(format!(
                "attributes: at most {MAX_METADATA} bytes"
            )));
        }
        if metadata.as_ref().is_some_and(|m| m.len() > MAX_METADATA) {
            return Err(Error::Invalid(format!(
                "metadata: at most {MAX_METADATA} bytes"
            )));
        }
        let id = self.find(room, identity)?;
        if let Some(p) = permissions {
            self.plane.send(
                &RoomId(room.to_string()),
                Command::SetPermissions {
                    participant: id,
                    can_publish: p.can_publish,
                    can_subscribe: p.can_subscribe,
                },
            )?;
        }
        let mut dir = self.dir.lock();
        let r = dir.rooms.get_mut(room).ok_or(Error::not_found("room"))?;
        let m = r
            .members
            .get_mut(&id)
            .ok_or(Error::not_found("participant"))?;
        if let Some(md) = metadata {
            m.info.metadata = md;
        }
        if let Some(n) = name {
            m.info.name = clean_name(&n, &m.info.identity);
        }
        // LiveKit's rule: attributes are merged; an empty value removes its key.
        for (k, v) in attributes {
            if v.is_empty() {
                m.info.attributes.remove(&k);
            } else {
                m.info.attributes.insert(k, v);
            }
        }
        if let Some(p) = permissions {
            // Tracks leave `info.tracks` as the media plane unpublishes them (and everyone
            // is told then).
            m.info.permissions = p;
        }
        let info = m.info.clone();
        let hidden = m.hidden;
        m.tx.send(ServerMessage::ParticipantUpdated {
            participant: info.clone(),
        });
        announce_update(&r.members, id, hidden, info.clone());
        Ok(info)
    }

    pub fn update_room(&self, room: &str, metadata: String) -> Result<RoomInfo, Error> {
        if metadata.len() > MAX_METADATA {
            return Err(Error::Invalid(format!(
                "metadata: at most {MAX_METADATA} bytes"
            )));
        }
        let mut dir = self.dir.lock();
        let r = dir.rooms.get_mut(room).ok_or(Error::not_found("room"))?;
        r.info.metadata = metadata.clone();
        broadcast(&r.members, None, ServerMessage::RoomUpdated { metadata });
        Ok(r.info.clone())
    }

    /// A data message from the API (to everyone, or to the listed identities).
    pub fn send_data(
        &self,
        room: &str,
        payload: Vec<u8>,
        topic: Option<String>,
        identities: &[String],
    ) -> Result<(), Error> {
        if payload.len() > MAX_DATA {
            return Err(Error::Invalid(format!("payload: at most {MAX_DATA} bytes")));
        }
        if !self.dir.lock().rooms.contains_key(room) {
            return Err(Error::not_found("room"));
        }
        let out = data::Outgoing {
            from: None,
            topic,
            payload: Some(payload),
            packet: None,
            lossy: false,
        };
        self.deliver_data(room, out, |p| {
            identities.is_empty() || identities.contains(&p.identity)
        });
        Ok(())
    }
}

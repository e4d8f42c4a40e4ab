//! Data messages to a room's members, each the way it takes them: our protocol's `data`
//! message over its socket, or LiveKit's `DataPacket` over its data channels (written by
//! the media plane, [`Command::SendData`]). From a socket, a data channel, or the REST
//! API, one path.

use super::*;
use crate::livekit::data::{self as lkdata, LOSSY, RELIABLE};

/// A data message on its way.
pub(super) struct Outgoing {
    pub from: Option<ParticipantId>,
    pub topic: Option<String>,
    /// A user payload (what our protocol's `data` carries, when it is UTF-8); None for
    /// LiveKit's other packets (RPC, streams, chat), which only LiveKit clients read.
    pub payload: Option<Vec<u8>>,
    /// The packet as data-channel receivers get it (None: a user packet made from the
    /// payload).
    pub packet: Option<Vec<u8>>,
    pub lossy: bool,
}

fn dropped(reason: &'static str) {
    metrics::counter!("switchboard_data_dropped_total", "reason" => reason).increment(1);
}

impl Hub {
    /// Returns how many members it was for.
    pub(super) fn deliver_data(
        &self,
        room: &str,
        out: Outgoing,
        to: impl Fn(&ParticipantInfo) -> bool,
    ) -> usize {
        let dir = self.dir.lock();
        let Some(r) = dir.rooms.get(room) else {
            return 0;
        };
        let sender = out
            .from
            .and_then(|f| r.members.get(&f))
            .map(|m| m.info.identity.clone());
        let text = out
            .payload
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok());
        let msg = text.map(|t| ServerMessage::Data {
            from: out.from,
            topic: out.topic.clone(),
            payload: t.to_string(),
        });
        let bytes = msg.as_ref().map(outbound::weigh).unwrap_or(0);
        let mut on_channels = Vec::new();
        let mut count = 0;
        for m in r
            .members
            .values()
            .filter(|m| Some(m.info.id) != out.from && to(&m.info))
        {
            count += 1;
            if m.data_channels {
                on_channels.push(m.info.id);
            } else if let Some(msg) = &msg {
                m.tx.send_weighed(msg.clone(), bytes);
            }
        }
        drop(dir);
        if on_channels.is_empty() {
            return count;
        }
        let packet = match (out.packet, &out.payload) {
            (Some(p), _) => p,
            (None, Some(payload)) => {
                lkdata::user_packet(out.from.zip(sender.as_deref()), out.topic.clone(), payload)
            }
            (None, None) => return count,
        };
        let send = Command::SendData {
            to: on_channels,
            channel: if out.lossy { LOSSY } else { RELIABLE }.to_string(),
            binary: true,
            data: packet.into(),
        };
        if self.plane.send(&RoomId(room.to_string()), send).is_err() {
            dropped("media_plane_busy");
        }
        count
    }

    /// A message from one of `id`'s data channels (media plane): LiveKit's packets on
    /// its `_reliable` and `_lossy` channels, to the room (or the identities it names).
    pub(super) fn channel_data(&self, id: ParticipantId, channel: &str, data: &[u8]) {
        let lossy = match channel {
            RELIABLE => false,
            LOSSY => true,
            _ => return dropped("unknown_channel"),
        };
        let sender = {
            let dir = self.dir.lock();
            dir.room_of.get(&id).cloned().and_then(|room| {
                let m = dir.rooms.get(room.as_str())?.members.get(&id)?;
                Some((
                    room,
                    m.info.identity.clone(),
                    m.info.permissions.can_publish_data,
                ))
            })
        };
        let Some((room, identity, allowed)) = sender else {
            return;
        };
        if !allowed {
            return dropped("not_allowed");
        }
        let inbound = match lkdata::inbound(id, &identity, data) {
            Ok(i) => i,
            Err(r) => return dropped(r.label()),
        };
        let (topic, payload) = match inbound.user {
            Some((topic, payload)) => (topic, Some(payload)),
            None => (None, None),
        };
        let destinations = inbound.destinations;
        let reached = self.deliver_data(
            &room,
            Outgoing {
                from: Some(id),
                topic,
                payload,
                packet: Some(inbound.bytes),
                lossy,
            },
            |p| destinations.is_empty() || destinations.contains(&p.identity),
        );
        if reached == 0 && !destinations.is_empty() {
            dropped("unknown_destination");
        }
    }
}

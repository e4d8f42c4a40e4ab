//! LiveKit's data packets (`DataPacket`), as they cross the server: read from a sender's
//! data channel, stamped with who sent them (a client cannot speak for someone else), and
//! written to the receivers' channels; user packets also become our protocol's `data`
//! messages for clients on it, and ours (and the REST API's) become user packets.

use livekit_protocol as lk;
use prost::Message;

use super::model::participant_sid;
use sfu_core::ParticipantId;

/// The channels LiveKit's SDKs open on their publisher connection.
pub const RELIABLE: &str = "_reliable";
pub const LOSSY: &str = "_lossy";

/// A data packet read from a participant, restamped.
#[derive(Debug)]
pub struct Inbound {
    /// Who it is for (identities; empty: everyone else in the room).
    pub destinations: Vec<String>,
    /// A user packet's topic and payload (what our protocol's `data` carries).
    pub user: Option<(Option<String>, Vec<u8>)>,
    /// The packet as the receivers get it.
    pub bytes: Vec<u8>,
}

/// Why a packet was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    /// Server-to-client only (speaker updates), or empty.
    NotFromClients,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::NotFromClients => "not_from_clients",
        }
    }
}

/// Read a packet that `from` (`identity`) sent, and stamp it as theirs. (A user packet's
/// own sender and destination fields are deprecated, but older SDKs still write and read
/// them: they are overwritten and read too.)
#[allow(deprecated)]
pub fn inbound(from: ParticipantId, identity: &str, data: &[u8]) -> Result<Inbound, Refused> {
    let mut p = lk::DataPacket::decode(data).map_err(|_| Refused::Malformed)?;
    p.participant_identity = identity.to_string();
    p.participant_sid = participant_sid(from);
    let mut destinations = std::mem::take(&mut p.destination_identities);
    let user = match &mut p.value {
        Some(lk::data_packet::Value::User(u)) => {
            u.participant_identity = identity.to_string();
            u.participant_sid = participant_sid(from);
            destinations.append(&mut u.destination_identities);
            u.destination_sids.clear();
            Some((u.topic.clone(), u.payload.clone()))
        }
        Some(lk::data_packet::Value::Speaker(_)) | None => return Err(Refused::NotFromClients),
        Some(_) => None,
    };
    destinations.sort();
    destinations.dedup();
    destinations.truncate(256);
    p.destination_identities = destinations.clone();
    Ok(Inbound {
        destinations,
        user,
        bytes: p.encode_to_vec(),
    })
}

/// A user packet for LiveKit receivers, from a participant on our protocol (`from`), or
/// from the server (the REST API: no sender).
pub fn user_packet(
    from: Option<(ParticipantId, &str)>,
    topic: Option<String>,
    payload: &[u8],
) -> Vec<u8> {
    let (sid, identity) = from
        .map(|(id, identity)| (participant_sid(id), identity.to_string()))
        .unwrap_or_default();
    #[allow(deprecated)]
    let packet = lk::DataPacket {
        kind: lk::data_packet::Kind::Reliable as i32,
        participant_identity: identity.clone(),
        participant_sid: sid.clone(),
        value: Some(lk::data_packet::Value::User(lk::UserPacket {
            participant_sid: sid,
            participant_identity: identity,
            payload: payload.to_vec(),
            topic,
            ..Default::default()
        })),
        ..Default::default()
    };
    packet.encode_to_vec()
}

#[cfg(test)]
#[allow(deprecated)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_stamped_with_its_real_sender_and_its_destinations_are_read() {
        #[allow(deprecated)]
        let forged = lk::DataPacket {
            participant_identity: "the-boss".into(),
            destination_identities: vec!["bob".into()],
            value: Some(lk::data_packet::Value::User(lk::UserPacket {
                participant_identity: "the-boss".into(),
                payload: b"hi".to_vec(),
                topic: Some("chat".into()),
                destination_identities: vec!["carol".into(), "bob".into()],
                ..Default::default()
            })),
            ..Default::default()
        };
        let i = inbound(ParticipantId(3), "mallory", &forged.encode_to_vec()).unwrap();
        assert_eq!(i.destinations, ["bob", "carol"]);
        assert_eq!(i.user, Some((Some("chat".into()), b"hi".to_vec())));
        let out = lk::DataPacket::decode(&i.bytes[..]).unwrap();
        assert_eq!(out.participant_identity, "mallory");
        assert_eq!(out.participant_sid, "PA_3");
        #[allow(deprecated)]
        let Some(lk::data_packet::Value::User(u)) = out.value
        else {
            panic!()
        };
        assert_eq!(u.participant_identity, "mallory");
        // Other kinds (RPC, streams, chat) pass as they are, stamped.
        let rpc = lk::DataPacket {
            value: Some(lk::data_packet::Value::RpcAck(lk::RpcAck {
                request_id: "r".into(),
            })),
            ..Default::default()
        };
        let i = inbound(ParticipantId(3), "mallory", &rpc.encode_to_vec()).unwrap();
        assert!(i.user.is_none() && i.destinations.is_empty());
        // Junk, nothing, and what only a server sends: refused.
        assert_eq!(
            inbound(ParticipantId(3), "m", &[0xff, 0xff, 0xff]).unwrap_err(),
            Refused::Malformed
        );
        assert_eq!(
            inbound(ParticipantId(3), "m", &[]).unwrap_err(),
            Refused::NotFromClients
        );
        let speaker = lk::DataPacket {
            value: Some(lk::data_packet::Value::Speaker(Default::default())),
            ..Default::default()
        };
        assert_eq!(
            inbound(ParticipantId(3), "m", &speaker.encode_to_vec()).unwrap_err(),
            Refused::NotFromClients
        );
        // Ours to LiveKit's.
        let p = lk::DataPacket::decode(&user_packet(None, None, b"x")[..]).unwrap();
        assert!(matches!(p.value, Some(lk::data_packet::Value::User(u)) if u.payload == b"x"));
    }
}

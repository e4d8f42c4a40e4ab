//! Negotiation of a participant's two connections: the publisher's offers (answered),
//! the subscriber's offers (made when the room's tracks change, one at a time) and their
//! answers, ICE restarts and the ufrag a connection is demultiplexed by.

use std::time::Instant;

use rand::Rng;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Direction;

use crate::api::{CommandError, Event, OfferedTrack};
use crate::forward::Subscription;
use crate::ids::{ParticipantId, PcKind, TrackId};
use crate::peers::Peers;
use crate::router::Router;

impl Router {
    pub(crate) fn on_publish_offer(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        sdp: &str,
    ) {
        let Some(p) = self.participants.get(&id) else {
            return peers.fail(id, CommandError::UnknownParticipant);
        };
        if !p.can_publish {
            return peers.fail(id, CommandError::PublishNotAllowed);
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => return peers.fail(id, CommandError::BadSdp(e.to_string())),
        };
        let first = p.publisher.is_none();
        if first {
            let pc = peers.new_pc(now, id, PcKind::Publisher, &mut self.rng);
            if let Some(p) = self.participants.get_mut(&id) {
                p.publisher = Some(pc);
            }
        }
        let Some(pc) = self
            .participants
            .get_mut(&id)
            .and_then(|p| p.publisher.as_mut())
        else {
            return;
        };
        let answer = match pc.guarded(|rtc| rtc.sdp_api().accept_offer(offer)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                if first {
                    self.drop_publisher(peers, id);
                }
                return peers.fail(id, CommandError::BadSdp(e.to_string()));
            }
            Err(f) => {
                peers.failures.report(id, f);
                return peers.fail(id, CommandError::Internal("offer handling panicked".into()));
            }
        };
        // An offer with new ICE credentials restarts ICE (RFC 8839 §4.4.1.1.1): str0m
        // answers with new local ones.
        self.sync_ufrag(peers, id, PcKind::Publisher);
        // Media the client offered that we cannot take comes back rejected (no payload
        // types in common). If nothing at all is left, the call would be broken: say so.
        let usable = answer
            .to_sdp_string()
            .lines()
            .filter(|l| l.starts_with("m=audio") || l.starts_with("m=video"))
            .any(|l| l.split(' ').nth(1) != Some("0"));
        if !usable
            && sdp
                .lines()
                .any(|l| l.starts_with("m=audio") || l.starts_with("m=video"))
        {
            if first {
                self.drop_publisher(peers, id);
            }
            return peers.fail(id, CommandError::NoCommonCodec);
        }
        peers.emit(Event::PublishAnswer {
            participant: id,
            sdp: answer.to_sdp_string(),
        });
        self.drain_pc(peers, id, PcKind::Publisher);
    }

    fn drop_publisher(&mut self, peers: &mut Peers, id: ParticipantId) {
        if let Some(pc) = self
            .participants
            .get_mut(&id)
            .and_then(|p| p.publisher.take())
        {
            peers.forget((id, PcKind::Publisher), &pc);
        }
    }

    pub(crate) fn on_subscribe_answer(&mut self, peers: &mut Peers, id: ParticipantId, sdp: &str) {
        let Some(p) = self.participants.get_mut(&id) else {
            return peers.fail(id, CommandError::UnknownParticipant);
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => return peers.fail(id, CommandError::BadSdp(e.to_string())),
        };
        let (Some(pending), Some(pc)) = (p.pending_offer.take(), p.subscriber.as_mut()) else {
            return peers.fail(id, CommandError::NoPendingOffer);
        };
        match pc.guarded(|rtc| rtc.sdp_api().accept_answer(pending, answer)) {
            // An answer to an offer that restarted ICE brings the new local credentials
            // into use.
            Ok(Ok(())) => self.sync_ufrag(peers, id, PcKind::Subscriber),
            Ok(Err(e)) => {
                // The offer is spent; try again with a fresh one.
                p.renegotiate = true;
                peers.fail(id, CommandError::BadSdp(e.to_string()));
            }
            Err(f) => return peers.failures.report(id, f),
        }
        if let Some(p) = self.participants.get_mut(&id) {
            for sub in p.subs.values_mut() {
                sub.ready = true;
            }
            if std::mem::take(&mut p.renegotiate) {
                self.sync_subscriptions(peers, id);
            }
        }
        self.drain_pc(peers, id, PcKind::Subscriber);
    }

    /// Bring a subscriber's connection in line with its room: offer new tracks, stop gone
    /// ones. One offer at a time; changes meanwhile wait for the answer.
    pub(crate) fn sync_subscriptions(&mut self, peers: &mut Peers, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.subscriber.is_none() || p.whep.is_some() {
            return;
        }
        if p.pending_offer.is_some() {
            p.renegotiate = true;
            return;
        }
        let Some(room) = self.rooms.get(&p.room) else {
            return;
        };
        let new: Vec<TrackId> = room
            .tracks
            .iter()
            .copied()
            .filter(|t| {
                p.can_subscribe
                    && p.selection.wants(*t)
                    && !p.subs.contains_key(t)
                    && self.tracks.get(t).is_some_and(|tr| tr.publisher != id)
            })
            .collect();
        if new.is_empty() && p.to_stop.is_empty() && !p.restart_ice {
            return;
        }
        let to_stop = std::mem::take(&mut p.to_stop);
        let restart = std::mem::take(&mut p.restart_ice);
        let Some(pc) = p.subscriber.as_mut() else {
            return;
        };
        let mut api = pc.rtc.sdp_api();
        if restart {
            // New credentials in the offer; the candidates stay.
            api.ice_restart(true);
        }
        for mid in to_stop {
            if Some(mid) == p.bundle_tag {
                api.set_direction(mid, Direction::Inactive);
            } else {
                api.stop_media(mid);
            }
        }
        let mut added = Vec::new();
        for t in new {
            let Some(track) = self.tracks.get_mut(&t) else {
                continue;
            };
            let stream = if p.track_streams {
                crate::msid::track_stream(track.publisher, t, track.sid.as_deref())
            } else {
                crate::msid::publisher_stream(track.publisher)
            };
            let mid = api.add_media(
                track.kind.into(),
                Direction::SendOnly,
                Some(stream),
                Some(format!("t{t}")),
                None,
            );
            track.subscribers.push(id);
            p.bundle_tag.get_or_insert(mid);
            let seq: u16 = self.rng.gen_range(0..16_384);
            let ts: u32 = self.rng.gen();
            added.push((t, Subscription::new(t, mid, track.kind, seq, ts)));
        }
        let applied = api.apply();
        for (t, s) in added {
            p.subs.insert(t, s);
        }
        if let Some((offer, pending)) = applied {
            p.pending_offer = Some(pending);
            let tracks = p
                .subs
                .values()
                .filter_map(|s| {
                    let tr = self.tracks.get(&s.track)?;
                    Some(OfferedTrack {
                        mid: s.mid.to_string(),
                        track: s.track,
                        publisher: tr.publisher,
                        kind: tr.kind,
                    })
                })
                .collect();
            peers.emit(Event::SubscribeOffer {
                participant: id,
                sdp: offer.to_sdp_string(),
                tracks,
            });
        }
        self.drain_pc(peers, id, PcKind::Subscriber);
    }

    /// ICE restart of one connection ([`crate::Command::IceRestart`]): the client's new
    /// credentials, new local ones, demux by the new ufrag.
    pub(crate) fn ice_restart(
        &mut self,
        peers: &mut Peers,
        id: ParticipantId,
        kind: PcKind,
        ufrag: String,
        pwd: String,
    ) {
        // RFC 8445 §5.3: ufrag at least 4 characters, password at least 22, ice-chars.
        let ice_chars = |s: &str, min: usize| {
            s.len() >= min
                && s.len() <= 256
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        if !ice_chars(&ufrag, 4) || !ice_chars(&pwd, 22) {
            return peers.fail(
                id,
                CommandError::BadCandidate(
                    "ICE credentials: a ufrag of 4+ and a password of 22+ ice-chars".into(),
                ),
            );
        }
        let (local_ufrag, local_pass) = crate::pc::new_credentials(&mut self.rng);
        let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(kind)) else {
            return peers.fail(id, CommandError::UnknownParticipant);
        };
        let old = std::mem::replace(&mut pc.ufrag, local_ufrag.clone());
        let set = pc.guarded(|rtc| {
            let mut api = rtc.direct_api();
            api.set_local_ice_credentials(str0m::IceCreds {
                ufrag: local_ufrag.clone(),
                pass: local_pass.clone(),
            });
            api.set_remote_ice_credentials(str0m::IceCreds { ufrag, pass: pwd });
        });
        peers
            .routes
            .bind_ufrag(Some(&old), local_ufrag.clone(), (id, kind));
        if let Err(f) = set {
            peers.failures.report(id, f);
            return peers.fail(id, CommandError::Internal("ICE restart failed".into()));
        }
        let candidates = peers.candidates();
        peers.emit(Event::IceRestarted {
            participant: id,
            pc: kind,
            ufrag: local_ufrag,
            pwd: local_pass,
            candidates,
        });
    }

    /// After a negotiation that may have restarted ICE: new paths' STUN is demultiplexed
    /// by the connection's current local ufrag.
    pub(crate) fn sync_ufrag(&mut self, peers: &mut Peers, id: ParticipantId, kind: PcKind) {
        let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(kind)) else {
            return;
        };
        let ufrag = pc.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != pc.ufrag {
            let old = std::mem::replace(&mut pc.ufrag, ufrag.clone());
            peers.routes.bind_ufrag(Some(&old), ufrag, (id, kind));
        }
    }
}

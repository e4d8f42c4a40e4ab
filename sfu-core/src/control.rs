//! Live control of a shard's participants: permission changes and admin mutes from the
//! control plane, and WHEP viewers (client-offered receive-only m-lines bound to one
//! participant's tracks, or following the room's active speaker).

use std::time::Instant;

use rand::Rng;
use str0m::change::SdpOffer;

use crate::api::{CommandError, Event};
use crate::forward::Subscription;
use crate::ids::{ParticipantId, PcKind, TrackId, TrackKind};
use crate::msid;
use crate::peers::Peers;
use crate::router::Router;
use crate::whep::{Answered, WhepTarget};

impl Router {
    pub(crate) fn set_permissions(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        can_publish: bool,
        can_subscribe: bool,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return peers.fail(id, CommandError::UnknownParticipant);
        };
        p.can_publish = can_publish;
        let was_subscribing = p.can_subscribe;
        p.can_subscribe = can_subscribe;
        if !can_publish {
            let tracks: Vec<TrackId> = p.published.values().copied().collect();
            for t in tracks {
                self.unpublish(peers, t);
            }
        }
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if !can_subscribe && was_subscribing {
            let subs = std::mem::take(&mut p.subs);
            for (tid, sub) in subs {
                p.to_stop.push(sub.mid);
                if let Some(t) = self.tracks.get_mut(&tid) {
                    t.subscribers.retain(|s| *s != id);
                }
            }
            self.sync_subscriptions(peers, id);
        } else if can_subscribe && !was_subscribing {
            if p.subscriber.is_none() {
                let pc = peers.new_pc(now, id, PcKind::Subscriber, &mut self.rng);
                if let Some(p) = self.participants.get_mut(&id) {
                    p.subscriber = Some(pc);
                }
            }
            self.sync_subscriptions(peers, id);
        }
    }

    pub(crate) fn update_speakers(&mut self, peers: &mut Peers, now: Instant) {
        let mut changed = Vec::new();
        for (name, room) in self.rooms.iter_mut() {
            if let Some(p) = room.speaker.update(now) {
                changed.push((name.clone(), p));
            }
        }
        for (room, participant) in changed {
            peers.emit(Event::ActiveSpeaker {
                room: room.clone(),
                participant,
            });
            let viewers = self
                .rooms
                .get(&room)
                .map(|r| crate::whep::speaker_viewers(r, &self.participants, participant))
                .unwrap_or_default();
            for v in viewers {
                self.retarget_whep(peers, now, v, participant);
            }
        }
    }

    /// A speaker-following WHEP viewer: move its m-lines to `speaker`'s tracks; each
    /// restarts on a keyframe, continuing its sequence numbers.
    pub(crate) fn retarget_whep(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        speaker: ParticipantId,
    ) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let Some(room) = self.rooms.get(&p.room) else {
            return;
        };
        let moves = crate::whep::moves(&p.subs, room, &self.tracks, speaker);
        for (old, new) in moves {
            if let Some(t) = self.tracks.get_mut(&old) {
                t.subscribers.retain(|s| *s != id);
            }
            let Some(epoch) = self.tracks.get(&new).map(|t| t.epoch) else {
                continue;
            };
            let Some(p) = self.participants.get_mut(&id) else {
                return;
            };
            let Some(mut sub) = p.subs.remove(&old) else {
                continue;
            };
            sub.retarget(new, epoch, now);
            p.subs.insert(new, sub);
            let layer = self.tracks.get_mut(&new).map(|t| {
                t.subscribers.push(id);
                t.target_layer(now)
            });
            if let Some(Some(li)) = layer {
                self.request_keyframe(peers, now, new, li);
            }
        }
        self.bind_whep(id);
    }

    pub(crate) fn on_whep_offer(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        target: WhepTarget,
        sdp: &str,
    ) {
        let stream = match target {
            WhepTarget::Participant(t) => msid::publisher_stream(t),
            WhepTarget::Speaker { .. } => msid::SPEAKER_STREAM.to_string(),
        };
        let offer = match SdpOffer::from_sdp_string(&msid::with_stream_id(sdp, &stream)) {
            Ok(o) => o,
            Err(e) => return peers.fail(id, CommandError::BadSdp(e.to_string())),
        };
        let Some(p) = self.participants.get(&id) else {
            return peers.fail(id, CommandError::UnknownParticipant);
        };
        if p.subscriber.is_none() {
            let pc = peers.new_pc(now, id, PcKind::Subscriber, &mut self.rng);
            if let Some(p) = self.participants.get_mut(&id) {
                p.subscriber = Some(pc);
            }
        }
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.whep_target = Some(target);
        let Some(pc) = p.subscriber.as_mut() else {
            return;
        };
        let answer = match pc.guarded(|rtc| rtc.sdp_api().accept_offer(offer)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return peers.fail(id, CommandError::BadSdp(e.to_string())),
            Err(f) => {
                peers.failures.report(id, f);
                return peers.fail(id, CommandError::Internal("offer handling panicked".into()));
            }
        };
        let sdp = answer.to_sdp_string();
        match crate::whep::answered_media(&sdp) {
            Answered::Sends => {}
            Answered::NoCodec => return peers.fail(id, CommandError::NoCommonCodec),
            Answered::Inactive => {
                return peers.fail(
                    id,
                    CommandError::BadSdp(
                        "the offer has no active audio or video m-line to receive on".into(),
                    ),
                )
            }
        }
        peers.emit(Event::PublishAnswer {
            participant: id,
            sdp,
        });
        self.drain_pc(peers, id, PcKind::Subscriber);
    }

    /// WHEP: put the target's tracks on free client-offered m-lines of the same kind.
    pub(crate) fn bind_whep(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let Some(room) = self.rooms.get(&p.room) else {
            return;
        };
        let Some(source) = p
            .whep_target
            .and_then(|t| crate::whep::source(t, room, &self.tracks))
        else {
            return;
        };
        let binds = crate::whep::binds(&p.whep_slots, &p.subs, room, &self.tracks, source);
        for (t, mid) in binds {
            let seq: u16 = self.rng.gen_range(0..16_384);
            let ts: u32 = self.rng.gen();
            let Some(track) = self.tracks.get_mut(&t) else {
                continue;
            };
            track.subscribers.push(id);
            let mut sub = Subscription::new(t, mid, track.kind, seq, ts);
            sub.ready = true;
            if let Some(p) = self.participants.get_mut(&id) {
                p.subs.insert(t, sub);
            }
        }
    }

    pub(crate) fn set_muted(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        kind: TrackKind,
        muted: bool,
    ) {
        let Some(p) = self.participants.get(&id) else {
            return peers.fail(id, CommandError::UnknownParticipant);
        };
        let tracks: Vec<TrackId> = p.published.values().copied().collect();
        for t in tracks {
            let Some(track) = self.tracks.get_mut(&t) else {
                continue;
            };
            if track.kind != kind || track.muted == muted {
                continue;
            }
            track.muted = muted;
            if !muted {
                track.epoch = track.epoch.wrapping_add(1);
            }
            if !muted && kind == TrackKind::Video {
                // Subscribers restart on a keyframe of the best layer.
                if let Some(li) = track.target_layer(now) {
                    self.request_keyframe(peers, now, t, li);
                }
            }
        }
    }
}

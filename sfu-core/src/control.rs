//! Live control of a shard's participants: permission changes and admin mutes from the
//! control plane, and WHEP viewers (client-offered receive-only m-lines bound to one
//! participant's tracks, or following the room's active speaker).

use std::time::Instant;

use rand::Rng;
use str0m::change::SdpOffer;

use crate::api::{CommandError, Event};
use crate::forward::Subscription;
use crate::ids::{ParticipantId, PcKind, RoomId, TrackId, TrackKind};
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
                self.unpublish(peers, now, t);
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
                .map(|r| r.participants.clone())
                .unwrap_or_default();
            for v in viewers {
                let view = self.participants.get_mut(&v).and_then(|p| p.whep.as_mut());
                if view.is_some_and(|view| view.follow(participant)) {
                    self.reconcile_whep(peers, now, v);
                }
            }
        }
    }

    /// Every WHEP viewer of `room` to what it should carry now.
    pub(crate) fn reconcile_room_views(&mut self, peers: &mut Peers, now: Instant, room: &RoomId) {
        let members = self
            .rooms
            .get(room)
            .map(|r| r.participants.clone())
            .unwrap_or_default();
        for v in members {
            self.reconcile_whep(peers, now, v);
        }
    }

    /// A WHEP viewer's m-lines to the tracks they should carry now
    /// ([`crate::whep::WhepView::wanted`]): a stream that changes track restarts on a
    /// keyframe of the new one, continuing its sequence numbers; a free m-line takes its
    /// parked stream (its track went away) or a new one.
    pub(crate) fn reconcile_whep(&mut self, peers: &mut Peers, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let (Some(view), Some(room)) = (p.whep.as_ref(), self.rooms.get(&p.room)) else {
            return;
        };
        for (mid, want) in view.wanted(room, &self.tracks) {
            let Some(want) = want else { continue };
            let Some(p) = self.participants.get_mut(&id) else {
                return;
            };
            if p.subs.contains_key(&want) {
                continue; // on this m-line already (or, for now, on another)
            }
            let current = p.subs.iter().find(|(_, s)| s.mid == mid).map(|(t, _)| *t);
            let sub = match current {
                Some(old) => {
                    if let Some(t) = self.tracks.get_mut(&old) {
                        t.subscribers.retain(|s| *s != id);
                    }
                    p.subs.remove(&old)
                }
                None => p.whep.as_mut().and_then(|v| v.unpark(mid)),
            };
            let Some(track) = self.tracks.get_mut(&want) else {
                continue;
            };
            let sub = match sub {
                Some(mut sub) => {
                    let video = track.kind == TrackKind::Video;
                    sub.retarget(want, track.epoch, video.then_some(now));
                    sub
                }
                None => {
                    let seq: u16 = self.rng.gen_range(0..16_384);
                    let mut sub = Subscription::new(want, mid, track.kind, seq, self.rng.gen());
                    sub.ready = true;
                    sub
                }
            };
            track.subscribers.push(id);
            let layer = track.target_layer(now);
            p.subs.insert(want, sub);
            if let Some(li) = layer {
                self.request_keyframe(peers, now, want, li);
            }
        }
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
        p.whep = Some(crate::whep::WhepView::new(target));
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

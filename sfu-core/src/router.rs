//! The rooms of one shard: who is in each, what each participant publishes and
//! receives, and what happens to them — commands from the control plane, events of their
//! connections, tracks published and gone, keyframe requests. The per-packet path is in
//! [`crate::forward`], negotiation in [`crate::negotiation`], live control and WHEP in
//! [`crate::control`], allocation in [`crate::allocator`], dynacast in
//! [`crate::dynacast`], interruptions in [`crate::interruption`]: each an `impl Router`
//! block next to the concept it serves.
//!
//! The router owns the participants and with them their connections; the endpoint
//! ([`Peers`]) is handed in for what goes out (events, failures, connections written to).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::Candidate;

use crate::api::{Command, CommandError, Event, GoneReason};
use crate::forward::Track;
use crate::ids::{ParticipantId, PcKind, RoomId, TrackId, TrackKind};
use crate::keyframe::KeyframeThrottle;
use crate::participant::{Participant, Room};
use crate::pc::Pc;
use crate::peers::Peers;
use crate::shard_config::ShardConfig;
use crate::timers::PcKey;
use crate::whep::WhepTarget;

/// See the module docs.
pub(crate) struct Router {
    pub rooms: BTreeMap<RoomId, Room>,
    pub participants: BTreeMap<ParticipantId, Participant>,
    pub tracks: BTreeMap<TrackId, Track>,
    next_track: u64,
    /// Relayed tracks' flows: (link, flow) → (track, layer) ([`crate::relay`]).
    pub relay_flows: HashMap<(u32, u32), (TrackId, usize)>,
    pub throttle: KeyframeThrottle<(TrackId, usize)>,
    /// Seeded by the config: connection credentials, first sequence numbers.
    pub rng: ChaCha8Rng,
}

impl Router {
    pub fn new(cfg: &ShardConfig) -> Self {
        Self {
            rooms: BTreeMap::new(),
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            next_track: 1,
            relay_flows: HashMap::new(),
            throttle: KeyframeThrottle::new(cfg.keyframe_interval),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        }
    }

    /// One connection of a participant.
    pub fn pc_mut(&mut self, (id, kind): PcKey) -> Option<&mut Pc> {
        self.participants.get_mut(&id)?.pc_mut(kind)
    }

    /// A control-plane command.
    pub(crate) fn on_command(&mut self, peers: &mut Peers, now: Instant, c: Command) {
        match c {
            Command::Join {
                room,
                participant,
                can_publish,
                can_subscribe,
                track_streams,
                auto_subscribe,
            } => {
                if self.participants.contains_key(&participant) {
                    return peers.fail(participant, CommandError::AlreadyJoined);
                }
                let subscriber = can_subscribe
                    .then(|| peers.new_pc(now, participant, PcKind::Subscriber, &mut self.rng));
                self.participants.insert(
                    participant,
                    Participant::new(
                        room.clone(),
                        can_publish,
                        can_subscribe,
                        subscriber,
                        track_streams,
                        auto_subscribe,
                    ),
                );
                self.rooms
                    .entry(room)
                    .or_default()
                    .participants
                    .push(participant);
                self.sync_subscriptions(peers, participant);
            }
            Command::PublishOffer { participant, sdp } => {
                self.on_publish_offer(peers, now, participant, &sdp)
            }
            Command::SubscribeAnswer { participant, sdp } => {
                self.on_subscribe_answer(peers, participant, &sdp)
            }
            Command::Candidate {
                participant,
                pc,
                candidate,
            } => {
                let line = candidate.trim().trim_start_matches("a=");
                let parsed = Candidate::from_sdp_string(line);
                let Some(p) = self.participants.get_mut(&participant) else {
                    return peers.fail(participant, CommandError::UnknownParticipant);
                };
                match (parsed, p.pc_mut(pc)) {
                    (Ok(c), Some(pc_ref)) => {
                        let _ = pc_ref.guarded(|rtc| rtc.add_remote_candidate(c));
                        self.drain_pc(peers, participant, pc);
                    }
                    // A candidate for a connection that does not exist yet is harmless.
                    (Ok(_), None) => {}
                    (Err(e), _) => {
                        peers.fail(participant, CommandError::BadCandidate(e.to_string()))
                    }
                }
            }
            Command::SetPermissions {
                participant,
                can_publish,
                can_subscribe,
            } => self.set_permissions(peers, now, participant, can_publish, can_subscribe),
            Command::SetMuted {
                participant,
                kind,
                muted,
            } => self.set_muted(peers, now, participant, kind, muted),
            Command::SetViewport {
                participant,
                track,
                width,
                height,
                visible,
            } => self.resubscribe(peers, now, participant, track, |sub| {
                sub.viewport = Some((width.min(16_384), height.min(16_384), visible));
            }),
            Command::SetSources {
                participant,
                sources,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return peers.fail(participant, CommandError::UnknownParticipant);
                };
                for (mid, source) in sources.into_iter().take(64) {
                    let mid = Mid::from(mid.as_str());
                    p.sources.insert(mid, source);
                    if let Some(t) = p.published.get(&mid).and_then(|t| self.tracks.get_mut(t)) {
                        t.source = source;
                    }
                }
                // A track declared a screen share late moves content views to it.
                let room = p.room.clone();
                self.reconcile_room_views(peers, now, &room);
            }
            Command::Subscribe {
                participant,
                tracks,
                subscribe,
            } => self.select(peers, participant, &tracks, subscribe),
            Command::NameTracks { participant, sids } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return peers.fail(participant, CommandError::UnknownParticipant);
                };
                for (mid, sid) in sids.into_iter().take(128) {
                    let mid = Mid::from(mid.as_str());
                    if let Some(t) = p.published.get(&mid).and_then(|t| self.tracks.get_mut(t)) {
                        t.sid = Some(sid.clone());
                    }
                    p.sids.insert(mid, sid);
                }
            }
            Command::SetPreferredLayer {
                participant,
                track,
                max_rank,
            } => self.resubscribe(peers, now, participant, track, |sub| {
                sub.preferred = max_rank
            }),
            Command::IceRestart {
                participant,
                pc,
                ufrag,
                pwd,
            } => self.ice_restart(peers, participant, pc, ufrag, pwd),
            Command::SetMaxBitrate {
                participant,
                max_bitrate,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return peers.fail(participant, CommandError::UnknownParticipant);
                };
                p.max_bitrate = max_bitrate;
                self.allocate(peers, now, participant);
            }
            Command::RestartSubscriberIce { participant } => {
                match self.participants.get_mut(&participant) {
                    Some(p) if p.subscriber.is_some() && p.whep.is_none() => {
                        p.restart_ice = true;
                        self.sync_subscriptions(peers, participant);
                    }
                    _ => peers.fail(participant, CommandError::UnknownParticipant),
                }
            }
            Command::WhepOffer {
                participant,
                target,
                options,
                sdp,
            } => {
                let target = match target {
                    Some(t) => WhepTarget::Participant(t),
                    None => WhepTarget::Speaker {
                        except: options.except,
                        content: options.content,
                    },
                };
                if let Some(p) = self.participants.get_mut(&participant) {
                    p.max_bitrate = options.max_bitrate;
                }
                self.on_whep_offer(peers, now, participant, target, &sdp)
            }
            Command::SendData {
                to,
                channel,
                binary,
                data,
            } => self.send_data(peers, &to, &channel, binary, &data),
            Command::RelayTap { track, link, rids } => self.relay_tap(track, link, &rids),
            Command::RelayKeyframe { flow } => self.relay_keyframe(peers, now, flow),
            Command::RelayPublish(t) => self.relay_publish(peers, now, t),
            Command::Leave { participant } => {
                if self.participants.contains_key(&participant) {
                    self.remove_participant(peers, now, participant, GoneReason::Left);
                } else {
                    peers.fail(participant, CommandError::UnknownParticipant);
                }
            }
        }
    }

    /// Change what `participant` asks of its subscription to `track` (its tile, its
    /// preferred layer), then divide its estimate again.
    fn resubscribe(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        participant: ParticipantId,
        track: TrackId,
        change: impl FnOnce(&mut crate::forward::Subscription),
    ) {
        let Some(p) = self.participants.get_mut(&participant) else {
            return peers.fail(participant, CommandError::UnknownParticipant);
        };
        if let Some(sub) = p.subs.get_mut(&track) {
            change(sub);
        }
        self.allocate(peers, now, participant);
    }

    /// One event of a connection, drained from str0m.
    pub(crate) fn on_rtc_event(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        kind: PcKind,
        ev: str0m::Event,
    ) {
        use str0m::Event as E;
        match ev {
            E::IceConnectionStateChange(state) => self.on_ice_state(peers, now, id, kind, state),
            E::Connected => {
                if let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(kind)) {
                    pc.connected = true;
                }
                peers.emit(Event::Connected {
                    participant: id,
                    pc: kind,
                });
            }
            E::MediaAdded(m)
                if kind == PcKind::Publisher
                    && m.direction.is_receiving()
                    && self.participants.get(&id).is_some_and(|p| p.can_publish) =>
            {
                let rids: Vec<String> = m
                    .simulcast
                    .iter()
                    .flat_map(|s| s.recv.iter().chain(s.send.iter()))
                    .map(|l| l.rid.to_string())
                    .collect();
                self.publish_track(peers, now, id, m.mid, m.kind.into(), rids, None);
            }
            E::MediaAdded(m) if kind == PcKind::Subscriber && m.direction.is_sending() => {
                if let Some(view) = self.participants.get_mut(&id).and_then(|p| p.whep.as_mut()) {
                    view.slots.push((m.mid, m.kind.into()));
                }
                self.reconcile_whep(peers, now, id);
            }
            E::MediaChanged(m) if kind == PcKind::Publisher && !m.direction.is_receiving() => {
                let tid = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.published.get(&m.mid).copied());
                if let Some(tid) = tid {
                    self.unpublish(peers, now, tid);
                }
            }
            E::RtpPacket(pkt) if kind == PcKind::Publisher => {
                self.forward(peers, now, id, pkt.into())
            }
            E::ChannelOpen(..) | E::ChannelData(_) | E::ChannelClose(_)
                if kind == PcKind::Publisher =>
            {
                self.on_channel(peers, id, ev)
            }
            E::StreamPaused(sp) if kind == PcKind::Publisher => {
                let tid = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.published.get(&sp.mid).copied());
                if let Some(track) = tid.and_then(|t| self.tracks.get_mut(&t)) {
                    track.set_paused(sp.rid, sp.paused);
                }
            }
            E::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. })
                if kind == PcKind::Subscriber =>
            {
                if let Some(p) = self.participants.get_mut(&id) {
                    // Under a cap, an estimate falling toward it is no congestion.
                    let e = p.within_cap(estimate.as_u64());
                    p.falling = match p.estimate {
                        Some(prev) if e < prev => p.falling + 1,
                        _ => 0,
                    };
                    p.estimate = Some(e);
                }
                self.allocate(peers, now, id);
            }
            E::MediaEgressStats(st) if kind == PcKind::Subscriber => {
                if let Some(p) = self.participants.get_mut(&id) {
                    let now_counts = [st.nacks, st.plis, st.firs];
                    let last = p.feedback.insert(st.mid, now_counts).unwrap_or([0; 3]);
                    let d = |i: usize| now_counts[i].saturating_sub(last[i]);
                    peers.stats.nacks_received += d(0);
                    peers.stats.plis_received += d(1);
                    peers.stats.firs_received += d(2);
                    if st.rtt.is_some() && st.rtt != p.rtt {
                        p.rtt = st.rtt;
                        self.follow_rtt(id);
                    }
                }
            }
            E::ResendRequest(req) if kind == PcKind::Subscriber => {
                self.on_resend_request(peers, now, id, req.mid, &req.seq_nos);
            }
            E::KeyframeRequest(req) if kind == PcKind::Subscriber => {
                let found = self.participants.get(&id).and_then(|p| {
                    p.subs
                        .values()
                        .find(|s| s.mid == req.mid)
                        .map(|s| (s.track, s.source_layer()))
                });
                if let Some((tid, Some(ssrc))) = found {
                    let layer = self.tracks.get(&tid).and_then(|t| t.layer_of_ssrc(ssrc));
                    if let Some(li) = layer {
                        self.request_keyframe(peers, now, tid, li);
                    }
                }
            }
            _ => {}
        }
    }

    /// A new track of `id` on its m-line `mid` (`mime`: its codec, read from the
    /// publisher connection when None); every other member's subscriptions follow.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn publish_track(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        mid: Mid,
        kind: TrackKind,
        rids: Vec<String>,
        mime: Option<String>,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.published.contains_key(&mid) {
            return;
        }
        let tid = TrackId(self.next_track);
        self.next_track += 1;
        p.published.insert(mid, tid);
        let room = p.room.clone();
        let mut track = Track::new(tid, room.clone(), id, mid, kind, &rids);
        track.source = p.sources.get(&mid).copied().unwrap_or_default();
        track.sid = p.sids.get(&mid).cloned();
        let mime = mime.or_else(|| {
            p.publisher
                .as_ref()
                .and_then(|pc| preferred_mime(&pc.rtc, mid))
        });
        self.tracks.insert(tid, track);
        let others = match self.rooms.get_mut(&room) {
            Some(r) => {
                r.tracks.push(tid);
                r.participants.clone()
            }
            None => vec![],
        };
        peers.emit(Event::TrackPublished {
            room,
            participant: id,
            track: tid,
            kind,
            mid: mid.to_string(),
            rids,
            mime,
        });
        for o in others.into_iter().filter(|o| *o != id) {
            self.sync_subscriptions(peers, o);
            self.reconcile_whep(peers, now, o);
        }
    }

    pub(crate) fn unpublish(&mut self, peers: &mut Peers, now: Instant, tid: TrackId) {
        let Some(track) = self.tracks.remove(&tid) else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(&track.room) {
            r.tracks.retain(|t| *t != tid);
        }
        if let Some(p) = self.participants.get_mut(&track.publisher) {
            p.published.remove(&track.mid);
            p.ssrcs.retain(|_, (t, _)| *t != tid);
        }
        self.relay_flows.retain(|_, (t, _)| *t != tid);
        self.throttle.forget(|(t, _)| *t == tid);
        if let Some(r) = self.rooms.get_mut(&track.room) {
            r.speaker.forget(tid);
        }
        for p in self.participants.values_mut() {
            p.selection.forget(tid);
        }
        for sid in &track.subscribers {
            if let Some(sp) = self.participants.get_mut(sid) {
                if let Some(sub) = sp.subs.remove(&tid) {
                    match sp.whep.as_mut() {
                        // A viewer's m-line takes the next track it should carry, its
                        // numbering continued.
                        Some(view) => view.parked.push(sub),
                        None => sp.to_stop.push(sub.mid),
                    }
                }
            }
            self.sync_subscriptions(peers, *sid);
            self.reconcile_whep(peers, now, *sid);
        }
        peers.emit(Event::TrackUnpublished {
            room: track.room,
            participant: track.publisher,
            track: tid,
        });
    }

    pub(crate) fn remove_participant(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        reason: GoneReason,
    ) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        peers.interrupted.forget(id);
        if let Some(pc) = &p.publisher {
            peers.forget((id, PcKind::Publisher), pc);
        }
        if let Some(pc) = &p.subscriber {
            peers.forget((id, PcKind::Subscriber), pc);
        }
        for tid in p.published.values() {
            self.unpublish(peers, now, *tid);
        }
        for tid in p.subs.keys() {
            if let Some(t) = self.tracks.get_mut(tid) {
                t.subscribers.retain(|s| *s != id);
            }
        }
        if let Some(r) = self.rooms.get_mut(&p.room) {
            r.participants.retain(|x| *x != id);
            if r.participants.is_empty() {
                self.rooms.remove(&p.room);
            }
        }
        peers.failures.forget(id);
        peers.emit(Event::ParticipantGone {
            room: p.room,
            participant: id,
            reason,
        });
    }

    /// Ask a publisher for a keyframe on one layer, at most once per throttle interval.
    pub(crate) fn request_keyframe(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        tid: TrackId,
        layer: usize,
    ) {
        if !self.throttle.allow((tid, layer), now) {
            return;
        }
        let Some(track) = self.tracks.get(&tid) else {
            return;
        };
        let (pid, mid, rid) = (
            track.publisher,
            track.mid,
            track.layers.get(layer).and_then(|l| l.rid),
        );
        if self.remote_keyframe(peers, tid, layer) {
            return;
        }
        let Some(pc) = self
            .participants
            .get_mut(&pid)
            .and_then(|p| p.publisher.as_mut())
        else {
            return;
        };
        let sent = pc
            .guarded(|rtc| {
                rtc.direct_api()
                    .stream_rx_by_mid(mid, rid)
                    .map(|s| s.request_keyframe(KeyframeRequestKind::Pli))
                    .is_some()
            })
            .unwrap_or(false);
        if sent {
            peers.stats.keyframe_requests += 1;
            self.drain_pc(peers, pid, PcKind::Publisher);
        }
    }

    /// Take what one connection has to send and say.
    pub(crate) fn drain_pc(&mut self, peers: &mut Peers, id: ParticipantId, kind: PcKind) {
        if let Some(pc) = self.pc_mut((id, kind)) {
            peers.drain((id, kind), pc);
        }
    }
}

/// The codec a publisher lists first on `mid` (what it sends unless it switches), as a
/// MIME type.
fn preferred_mime(rtc: &str0m::Rtc, mid: Mid) -> Option<String> {
    use str0m::format::Codec;
    let pt = *rtc.media(mid)?.remote_pts().first()?;
    let codec = rtc.codec_config().find(|c| c.pt() == pt)?.spec().codec;
    let mime = match codec {
        Codec::Opus => "audio/opus",
        Codec::PCMU => "audio/PCMU",
        Codec::PCMA => "audio/PCMA",
        Codec::G722 => "audio/G722",
        Codec::Vp8 => "video/VP8",
        Codec::Vp9 => "video/VP9",
        Codec::H264 => "video/H264",
        Codec::Av1 => "video/AV1",
        _ => return None,
    };
    Some(mime.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Output;

    fn parts() -> (Router, Peers, Instant) {
        let t0 = crate::test_clock::origin();
        let cfg = ShardConfig::new("127.0.0.1:5000".parse().unwrap());
        (Router::new(&cfg), Peers::new(&cfg, t0), t0)
    }

    fn join(r: &mut Router, peers: &mut Peers, now: Instant, id: u64, subscribe: bool) {
        r.on_command(
            peers,
            now,
            Command::Join {
                room: RoomId::from("r"),
                participant: ParticipantId(id),
                can_publish: true,
                can_subscribe: subscribe,
                track_streams: false,
                auto_subscribe: true,
            },
        );
    }

    fn events(peers: &mut Peers) -> Vec<Event> {
        peers
            .out
            .drain(..)
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_join_makes_a_member_with_a_routed_subscriber_connection() {
        let (mut r, mut peers, t0) = parts();
        join(&mut r, &mut peers, t0, 1, true);
        join(&mut r, &mut peers, t0, 2, false);
        assert_eq!(r.rooms[&RoomId::from("r")].participants.len(), 2);
        let ufrag = r.participants[&ParticipantId(1)]
            .subscriber
            .as_ref()
            .map(|pc| pc.ufrag.clone())
            .expect("a subscriber connection");
        assert_eq!(
            peers.routes.ufrag_owner(&ufrag),
            Some((ParticipantId(1), PcKind::Subscriber))
        );
        assert!(r.participants[&ParticipantId(2)].subscriber.is_none());
        // A second join of the same participant is refused; the first stays.
        join(&mut r, &mut peers, t0, 1, true);
        assert!(events(&mut peers).iter().any(|e| matches!(
            e,
            Event::CommandFailed {
                error: CommandError::AlreadyJoined,
                ..
            }
        )));
        assert_eq!(r.participants.len(), 2);
    }

    #[test]
    fn a_leave_removes_the_member_its_routes_and_an_empty_room() {
        let (mut r, mut peers, t0) = parts();
        join(&mut r, &mut peers, t0, 1, true);
        let ufrag = r.participants[&ParticipantId(1)]
            .subscriber
            .as_ref()
            .unwrap()
            .ufrag
            .clone();
        r.on_command(
            &mut peers,
            t0,
            Command::Leave {
                participant: ParticipantId(1),
            },
        );
        assert!(r.participants.is_empty() && r.rooms.is_empty());
        assert_eq!(peers.routes.ufrag_owner(&ufrag), None);
        assert!(events(&mut peers).iter().any(|e| matches!(
            e,
            Event::ParticipantGone {
                reason: GoneReason::Left,
                ..
            }
        )));
        // Leaving again, or muting a stranger, is an error for the caller alone.
        r.on_command(
            &mut peers,
            t0,
            Command::Leave {
                participant: ParticipantId(1),
            },
        );
        r.on_command(
            &mut peers,
            t0,
            Command::SetMuted {
                participant: ParticipantId(9),
                kind: TrackKind::Audio,
                muted: true,
            },
        );
        let e = events(&mut peers);
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|e| matches!(
            e,
            Event::CommandFailed {
                error: CommandError::UnknownParticipant,
                ..
            }
        )));
    }

    #[test]
    fn an_offer_from_a_member_without_the_right_to_publish_is_refused() {
        let (mut r, mut peers, t0) = parts();
        join(&mut r, &mut peers, t0, 1, true);
        r.on_command(
            &mut peers,
            t0,
            Command::SetPermissions {
                participant: ParticipantId(1),
                can_publish: false,
                can_subscribe: true,
            },
        );
        events(&mut peers);
        r.on_command(
            &mut peers,
            t0,
            Command::PublishOffer {
                participant: ParticipantId(1),
                sdp: "v=0\r\n".into(),
            },
        );
        assert!(matches!(
            events(&mut peers).as_slice(),
            [Event::CommandFailed {
                error: CommandError::PublishNotAllowed,
                ..
            }]
        ));
        assert!(r.participants[&ParticipantId(1)].publisher.is_none());
    }
}

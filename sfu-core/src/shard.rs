//! The shard: every peer connection, room and forwarding path of one worker thread.
//!
//! Run loop (the same shape as str0m's `Rtc`):
//!
//! ```text
//! loop {
//!     let deadline = loop {
//!         match shard.poll_output() {
//!             Output::Transmit(t) => socket.send_to(&t.contents, t.destination),
//!             Output::Event(e) => control_plane.send(e),
//!             Output::Timeout(t) => break t,
//!         }
//!     };
//!     // wait for a datagram, a command, or the deadline; then:
//!     shard.handle_input(now, input);
//! }
//! ```
//!
//! Nothing here reads the clock, touches a socket or draws unseeded randomness: time comes
//! in with every input and randomness comes from a generator seeded by the config. That is
//! what makes whole calls simulable in a unit test (see the `testkit` feature).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::Candidate;

use crate::api::{
    Command, CommandError, Event, GoneReason, Input, OfferedTrack, Output, ShardStats, Transport,
};
use crate::demux::{classify, DatagramKind};
use crate::forward::{Subscription, Track};
use crate::ids::{ParticipantId, PcKind, RoomId, TrackId, TrackKind};
use crate::interruption::{Change, Interruptions};
use crate::keyframe::KeyframeThrottle;
use crate::pc::{Failures, Pc, PcFailure};
use crate::periodic::{Job, Periodic};
use crate::routes::{Routes, Unrouted};
use crate::timers::{PcKey, Timers};

pub(crate) use crate::participant::{Participant, Room};
pub use crate::shard_config::ShardConfig;

/// One worker's media state. See the module docs for the run loop.
pub struct Shard {
    pub(crate) cfg: ShardConfig,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) rooms: BTreeMap<RoomId, Room>,
    pub(crate) participants: BTreeMap<ParticipantId, Participant>,
    pub(crate) tracks: BTreeMap<TrackId, Track>,
    /// Connections whose ICE went quiet, within their grace period.
    pub(crate) interrupted: Interruptions,
    /// Which connection a datagram belongs to ([`crate::routes`]).
    pub(crate) routes: Routes,
    pub(crate) out: VecDeque<Output>,
    pub(crate) pending: VecDeque<(ParticipantId, PcKind, str0m::Event)>,
    /// Failed connections, removed at the next pump.
    pub(crate) failures: Failures,
    /// When each connection is next due ([`Timers`]).
    pub(crate) timers: Timers,
    /// Connections written to in this turn, advanced once at its end.
    pub(crate) dirty: Vec<PcKey>,
    /// Scratch for the connections due at a timeout (kept to avoid allocating).
    due: Vec<PcKey>,
    pub(crate) throttle: KeyframeThrottle<(TrackId, usize)>,
    next_track: u64,
    pub(crate) stats: ShardStats,
    last_now: Instant,
    /// The shard's own periodic jobs ([`crate::periodic`]).
    periodic: Periodic,
    /// The DTLS certificate every connection of this shard presents (made at first use).
    cert: Option<str0m::config::DtlsCert>,
}

pub use crate::routes::NEW_SOURCE_STUN_PER_SEC;

/// At most this many extra clock advances per connection and turn settle its pacer.
const SETTLE_ROUNDS: usize = 128;
/// How far ahead of the turn's time a settling advance may go (str0m steps 1 µs).
const SETTLE_AHEAD: Duration = Duration::from_micros(200);

impl Shard {
    /// `now` is the shard's start time (the driver reads the clock, not the shard).
    pub fn new(cfg: ShardConfig, now: Instant) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let throttle = KeyframeThrottle::new(cfg.keyframe_interval);
        let interrupted = Interruptions::new(cfg.media_grace);
        Self {
            interrupted,
            cfg,
            rng,
            rooms: BTreeMap::new(),
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            routes: Routes::new(now),
            out: VecDeque::new(),
            pending: VecDeque::new(),
            failures: Failures::default(),
            timers: Timers::default(),
            dirty: Vec::new(),
            due: Vec::new(),
            throttle,
            next_track: 1,
            stats: ShardStats::default(),
            last_now: now,
            periodic: Periodic::new(now),
            cert: None,
        }
    }

    /// Test hook: the next str0m call on this participant's connection of `kind` panics,
    /// as str0m does on an internal bug. The shard must drop that peer, count it, and
    /// leave everything else untouched.
    /// Test hook: the ICE ufrag a connection is demultiplexed by, if it is, and the one
    /// its str0m connection uses (the two must agree).
    #[cfg(feature = "testkit")]
    pub fn local_ufrag(
        &mut self,
        participant: ParticipantId,
        kind: PcKind,
    ) -> Option<(String, String)> {
        let pc = self.participants.get_mut(&participant)?.pc_mut(kind)?;
        let known = pc.ufrag.clone();
        let used = pc.rtc.direct_api().local_ice_credentials().ufrag;
        (self.routes.ufrag_owner(&known) == Some((participant, kind))).then_some((known, used))
    }

    #[cfg(feature = "testkit")]
    pub fn inject_panic(&mut self, participant: ParticipantId, kind: PcKind) -> bool {
        match self
            .participants
            .get_mut(&participant)
            .and_then(|p| p.pc_mut(kind))
        {
            Some(pc) => {
                pc.inject_panic = true;
                true
            }
            None => false,
        }
    }

    pub fn stats(&self) -> ShardStats {
        let mut s = self.stats;
        s.peer_panics = self.failures.panics;
        s.tracks = self.tracks.len() as u64;
        s.subscriptions = self
            .participants
            .values()
            .map(|p| p.subs.len() as u64)
            .sum();
        s
    }

    /// Number of participants (the load measure used to place rooms).
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        // Time never goes backwards inside the shard, whatever the caller passes.
        let now = now.max(self.last_now);
        self.last_now = now;
        match input {
            Input::Datagram { source, contents } => {
                self.on_datagram(now, Transport::Udp, source, contents)
            }
            Input::TcpFrame { source, contents } => {
                self.on_datagram(now, Transport::Tcp, source, contents)
            }
            Input::Command(c) => self.on_command(now, c),
            Input::Timeout => self.on_timeout(now),
        }
        for (job, since) in self.periodic.take_due(now).into_iter().flatten() {
            self.run_periodic(now, job, since);
        }
        self.pump(now);
    }

    /// The next output. Connections written to since the last call are advanced here,
    /// once each, so that everything written to one subscriber in a turn leaves together.
    pub fn poll_output(&mut self) -> Output {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            if self.dirty.is_empty() {
                return Output::Timeout(self.deadline());
            }
            self.flush(self.last_now);
        }
    }

    /// The earliest of every connection's deadline and the shard's own periodic work.
    fn deadline(&self) -> Instant {
        let mut next = self.last_now + Duration::from_secs(1);
        if let Some(t) = self.timers.earliest() {
            next = next.min(t);
        }
        if let Some(t) = self.interrupted.deadline() {
            next = next.min(t);
        }
        let jobs: &[Job] = match (self.rooms.is_empty(), self.participants.is_empty()) {
            (true, true) => &[],
            (false, true) => &[Job::Speakers],
            (true, false) => &[Job::Allocation, Job::Reports],
            (false, false) => &[Job::Speakers, Job::Allocation, Job::Reports],
        };
        match self.periodic.next(jobs) {
            Some(t) => next.min(t),
            None => next,
        }
    }

    /// Advance every connection written to in this turn, once, and send what it holds.
    fn flush(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for who in dirty.drain(..) {
            self.advance(now, who, false);
        }
        self.dirty = dirty;
        self.pump(now);
    }

    /// Advance one connection's clock to `now` (if `due`, its timer was taken from the
    /// table; otherwise only if it was written to) and drain it.
    fn advance(&mut self, now: Instant, who: PcKey, due: bool) {
        let Some(pc) = self
            .participants
            .get_mut(&who.0)
            .and_then(|p| p.pc_mut(who.1))
        else {
            return;
        };
        if due {
            pc.timeout = None;
        } else if pc.written == 0 {
            return; // already advanced in this turn by its timer
        }
        let mut r = pc
            .advance(now)
            .and_then(|_| pc.drain(who, &mut self.out, &mut self.pending, &mut self.timers));
        // str0m's pacer releases one packet per clock advance and then asks for another
        // advance a microsecond later: settle that here, so that everything queued for this
        // connection leaves in this turn (one GSO run) rather than one packet per turn.
        // Only as many rounds as packets were written: the pacer would also release its
        // padding this way, which it otherwise spreads out.
        let written = std::mem::take(&mut pc.written).min(SETTLE_ROUNDS);
        let mut rounds = 1;
        while r.is_ok() && rounds < written {
            let Some(t) = pc.timeout.filter(|t| *t <= now + SETTLE_AHEAD) else {
                break;
            };
            if pc.rtc.last_timeout_reason() != str0m::Reason::Pacer(str0m::PacerReason::Immediate) {
                break;
            }
            rounds += 1;
            r = pc
                .advance(t)
                .and_then(|_| pc.drain(who, &mut self.out, &mut self.pending, &mut self.timers));
        }
        if let Err(f) = r {
            self.failures.report(who.0, f);
        }
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        contents: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        let kind = classify(contents);
        let remote = (transport, source);
        let who = match self.routes.route(now, remote, kind, contents) {
            Ok(w) => w,
            Err(Unrouted::RateLimited) => {
                self.stats.dropped_rate_limited += 1;
                return;
            }
            Err(Unrouted::UnknownSource) => {
                self.stats.dropped_unknown_source += 1;
                tracing::trace!("datagram from unknown source dropped");
                return;
            }
        };
        if kind == DatagramKind::Unknown {
            self.stats.dropped_malformed += 1;
            return;
        }
        let (proto, local) = match (transport, self.cfg.tcp_addr) {
            (Transport::Udp, _) => (Protocol::Udp, self.cfg.public_addr),
            (Transport::Tcp, Some(tcp)) => (Protocol::Tcp, tcp),
            (Transport::Tcp, None) => {
                self.stats.dropped_unknown_source += 1;
                return;
            }
        };
        let Ok(recv) = Receive::new(proto, source, local, contents) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let Some(pc) = self
            .participants
            .get_mut(&who.0)
            .and_then(|p| p.pc_mut(who.1))
        else {
            self.stats.dropped_unknown_source += 1;
            return;
        };
        let input = str0m::Input::Receive(now, recv);
        if !pc.rtc.accepts(&input) {
            self.stats.dropped_malformed += 1;
            return;
        }
        if kind == DatagramKind::Rtp {
            self.stats.rtp_in += 1;
        }
        match pc.guarded(|rtc| rtc.handle_input(input)) {
            Ok(Ok(())) => self.routes.bind_addr(&mut pc.addrs, remote, who),
            Ok(Err(e)) => {
                self.stats.dropped_malformed += 1;
                tracing::trace!(error = %e, "datagram refused by peer connection");
            }
            Err(f) => return self.failures.report(who.0, f),
        }
        if let Err(f) = pc.drain(who, &mut self.out, &mut self.pending, &mut self.timers) {
            self.failures.report(who.0, f);
        }
    }

    /// Advance the connections that are due, and only those.
    fn on_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        for who in due.drain(..) {
            self.advance(now, who, true);
        }
        self.due = due;
        let mut lost = Vec::new();
        self.interrupted.expired(now, &mut lost);
        for id in lost {
            self.failures.report(id, PcFailure::Disconnected);
        }
        self.pump(now);
    }

    /// Process str0m events and failures until nothing is left.
    fn pump(&mut self, now: Instant) {
        loop {
            if let Some((id, kind, ev)) = self.pending.pop_front() {
                self.on_rtc_event(now, id, kind, ev);
            } else if let Some((id, reason)) = self.failures.pop() {
                self.remove_participant(now, id, reason);
            } else {
                break;
            }
        }
    }

    pub(crate) fn drain_pc(&mut self, id: ParticipantId, kind: PcKind) {
        let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(kind)) else {
            return;
        };
        if let Err(f) = pc.drain(
            (id, kind),
            &mut self.out,
            &mut self.pending,
            &mut self.timers,
        ) {
            self.failures.report(id, f);
        }
    }

    /// One periodic job ([`crate::periodic`]), `since` its last run.
    fn run_periodic(&mut self, now: Instant, job: Job, since: Duration) {
        match job {
            Job::Speakers => self.update_speakers(now),
            Job::Allocation => {
                let ids: Vec<ParticipantId> = self
                    .participants
                    .iter()
                    .filter(|(_, p)| p.estimate.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.allocate(now, id);
                }
                self.dynacast(now);
            }
            Job::Reports => self.report_subscriptions(now, since),
        }
    }

    /// Divide subscriber `sid`'s bandwidth estimate among its tracks
    /// ([`crate::allocator`]), apply it to its subscriptions, and steer its probing
    /// toward what it would take.
    pub(crate) fn allocate(&mut self, now: Instant, sid: ParticipantId) {
        use crate::allocator::{self, VideoDemand};
        let Some(p) = self.participants.get(&sid) else {
            return;
        };
        let Some(estimate) = p.estimate else { return };
        let speaker = |room: &RoomId| self.rooms.get(room).and_then(|r| r.speaker.current());
        let mut audio = 0;
        let (mut keys, mut demands): (Vec<TrackId>, Vec<VideoDemand>) = (Vec::new(), Vec::new());
        for (tid, sub) in &p.subs {
            let Some(track) = self.tracks.get(tid) else {
                continue;
            };
            match track.kind {
                TrackKind::Audio => audio += 1,
                TrackKind::Video => {
                    let mut d =
                        track.demand(now, sub.current_rank(track), sub.viewport, sub.preferred);
                    d.priority = allocator::priority(
                        track.source == crate::ids::TrackSource::ScreenShare,
                        speaker(&track.room) == Some(track.publisher),
                        sub.viewport,
                    );
                    keys.push(*tid);
                    demands.push(d);
                }
            }
        }
        let budget = allocator::budget(estimate, p.falling >= 2, audio, &demands);
        let a = allocator::allocate(budget, audio, &demands);
        let Some(p) = self.participants.get_mut(&sid) else {
            return;
        };
        let mut paused = Vec::new();
        for ((tid, d), allocated) in keys.iter().zip(&demands).zip(&a.video) {
            let Some(sub) = p.subs.get_mut(tid) else {
                continue;
            };
            let measured = self
                .tracks
                .get(tid)
                .is_some_and(|t| t.layers.iter().any(|l| l.bps > 0));
            if allocator::settle(sub, *allocated, d, measured, now) {
                self.stats.subscription_pauses += 1;
                paused.push(*tid);
            }
        }
        if let Some(pc) = p.subscriber.as_mut() {
            let (min, desired) = allocator::probe_bounds(&a, budget, estimate);
            let set = pc.guarded(|rtc| {
                rtc.bwe().set_bitrate(
                    str0m::bwe::Bitrate::bps(min),
                    str0m::bwe::Bitrate::bps(desired),
                )
            });
            if let Err(f) = set {
                self.failures.report(sid, f);
            }
        }
        for track in paused {
            self.emit(Event::SubscriptionChanged {
                participant: sid,
                track,
                layer: None,
                paused: true,
            });
        }
        self.drain_pc(sid, PcKind::Subscriber);
    }

    /// ICE of one connection went quiet or came back ([`crate::interruption`]). A
    /// connection that came back restarts its media: keyframes for what crossed the gap,
    /// and a subscriber's estimate from the initial one (the one it fell to while no
    /// feedback came says nothing about the path now), then its allocation.
    fn on_ice_state(
        &mut self,
        now: Instant,
        id: ParticipantId,
        kind: PcKind,
        state: str0m::IceConnectionState,
    ) {
        let Some(ice) = self.interrupted.on_ice((id, kind), state, now) else {
            return;
        };
        if ice.resumed {
            let subscriber = kind == PcKind::Subscriber;
            let asks = match self.participants.get_mut(&id) {
                Some(p) => {
                    if subscriber {
                        p.restart_estimate();
                    }
                    crate::interruption::keyframes_after_resume(kind, p, &self.tracks)
                }
                None => Vec::new(),
            };
            for (tid, li) in asks {
                self.request_keyframe(now, tid, li);
            }
            if subscriber {
                self.allocate(now, id);
            }
        }
        match ice.change {
            Change::Began => self.emit(Event::MediaInterrupted { participant: id }),
            Change::Ended => self.emit(Event::MediaRestored { participant: id }),
            Change::Same => {}
        }
    }

    /// Dynacast: which simulcast layers each track's subscribers need
    /// ([`crate::dynacast::evaluate`]); the changes go to the publishers.
    fn dynacast(&mut self, now: Instant) {
        use crate::dynacast::{evaluate, Demand};
        let mut demands = Vec::new();
        for (tid, track) in self.tracks.iter_mut() {
            demands.clear();
            demands.extend(
                track
                    .subscribers
                    .iter()
                    .filter_map(|sid| self.participants.get(sid)?.subs.get(tid))
                    .map(Demand::of),
            );
            if let Some(e) = evaluate(*tid, track, &demands, now) {
                self.out.push_back(Output::Event(e));
            }
        }
    }

    /// Every subscriber's [`Event::SubscriptionStats`]
    /// ([`crate::dynacast::subscription_stats`]).
    fn report_subscriptions(&mut self, now: Instant, period: Duration) {
        for (id, p) in self.participants.iter_mut() {
            let stats = crate::dynacast::subscription_stats(
                *id,
                &mut p.subs,
                p.estimate,
                &self.tracks,
                now,
                period,
            );
            if let Some(e) = stats {
                self.out.push_back(Output::Event(e));
            }
        }
    }

    pub(crate) fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    pub(crate) fn fail(&mut self, participant: ParticipantId, error: CommandError) {
        self.emit(Event::CommandFailed { participant, error });
    }

    fn on_command(&mut self, now: Instant, c: Command) {
        match c {
            Command::Join {
                room,
                participant,
                can_publish,
                can_subscribe,
            } => {
                if self.participants.contains_key(&participant) {
                    return self.fail(participant, CommandError::AlreadyJoined);
                }
                let subscriber =
                    can_subscribe.then(|| self.new_pc(now, participant, PcKind::Subscriber));
                self.participants.insert(
                    participant,
                    Participant {
                        room: room.clone(),
                        can_publish,
                        can_subscribe,
                        publisher: None,
                        subscriber,
                        published: BTreeMap::new(),
                        ssrcs: HashMap::new(),
                        subs: BTreeMap::new(),
                        pending_offer: None,
                        renegotiate: false,
                        restart_ice: false,
                        to_stop: Vec::new(),
                        bundle_tag: None,
                        whep_target: None,
                        whep_slots: Vec::new(),
                        estimate: None,
                        falling: 0,
                        sources: HashMap::new(),
                        feedback: HashMap::new(),
                        rtt: None,
                    },
                );
                let r = self.rooms.entry(room).or_insert_with(|| Room {
                    participants: vec![],
                    tracks: vec![],
                    speaker: Default::default(),
                });
                r.participants.push(participant);
                self.sync_subscriptions(participant);
            }
            Command::PublishOffer { participant, sdp } => {
                self.on_publish_offer(now, participant, &sdp)
            }
            Command::SubscribeAnswer { participant, sdp } => {
                self.on_subscribe_answer(participant, &sdp)
            }
            Command::Candidate {
                participant,
                pc,
                candidate,
            } => {
                let line = candidate.trim().trim_start_matches("a=");
                let parsed = Candidate::from_sdp_string(line);
                let Some(p) = self.participants.get_mut(&participant) else {
                    return self.fail(participant, CommandError::UnknownParticipant);
                };
                match (parsed, p.pc_mut(pc)) {
                    (Ok(c), Some(pc_ref)) => {
                        let _ = pc_ref.guarded(|rtc| rtc.add_remote_candidate(c));
                        self.drain_pc(participant, pc);
                    }
                    // A candidate for a connection that does not exist yet is harmless.
                    (Ok(_), None) => {}
                    (Err(e), _) => {
                        self.fail(participant, CommandError::BadCandidate(e.to_string()))
                    }
                }
            }
            Command::SetPermissions {
                participant,
                can_publish,
                can_subscribe,
            } => self.set_permissions(now, participant, can_publish, can_subscribe),
            Command::SetMuted {
                participant,
                kind,
                muted,
            } => self.set_muted(now, participant, kind, muted),
            Command::SetViewport {
                participant,
                track,
                width,
                height,
                visible,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return self.fail(participant, CommandError::UnknownParticipant);
                };
                if let Some(sub) = p.subs.get_mut(&track) {
                    sub.viewport = Some((width.min(16_384), height.min(16_384), visible));
                }
                self.allocate(now, participant);
            }
            Command::SetSources {
                participant,
                sources,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return self.fail(participant, CommandError::UnknownParticipant);
                };
                for (mid, source) in sources.into_iter().take(64) {
                    let mid = Mid::from(mid.as_str());
                    p.sources.insert(mid, source);
                    if let Some(t) = p.published.get(&mid).and_then(|t| self.tracks.get_mut(t)) {
                        t.source = source;
                    }
                }
            }
            Command::SetPreferredLayer {
                participant,
                track,
                max_rank,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return self.fail(participant, CommandError::UnknownParticipant);
                };
                if let Some(sub) = p.subs.get_mut(&track) {
                    sub.preferred = max_rank;
                }
                self.allocate(now, participant);
            }
            Command::IceRestart {
                participant,
                pc,
                ufrag,
                pwd,
            } => self.ice_restart(participant, pc, ufrag, pwd),
            Command::RestartSubscriberIce { participant } => {
                match self.participants.get_mut(&participant) {
                    Some(p) if p.subscriber.is_some() && p.whep_target.is_none() => {
                        p.restart_ice = true;
                        self.sync_subscriptions(participant);
                    }
                    _ => self.fail(participant, CommandError::UnknownParticipant),
                }
            }
            Command::WhepOffer {
                participant,
                target,
                sdp,
            } => self.on_whep_offer(now, participant, target, &sdp),
            Command::Leave { participant } => {
                if self.participants.contains_key(&participant) {
                    self.remove_participant(now, participant, GoneReason::Left);
                } else {
                    self.fail(participant, CommandError::UnknownParticipant);
                }
            }
        }
    }

    pub(crate) fn new_pc(&mut self, now: Instant, id: ParticipantId, kind: PcKind) -> Pc {
        if self.cert.is_none() {
            self.cert = str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate();
        }
        let pc = Pc::new(
            now,
            self.cfg.public_addr,
            self.cfg.tcp_addr,
            &mut self.rng,
            kind == PcKind::Subscriber,
            self.cert.as_ref(),
        );
        self.routes.bind_ufrag(None, pc.ufrag.clone(), (id, kind));
        pc
    }

    fn on_publish_offer(&mut self, now: Instant, id: ParticipantId, sdp: &str) {
        let Some(p) = self.participants.get(&id) else {
            return self.fail(id, CommandError::UnknownParticipant);
        };
        if !p.can_publish {
            return self.fail(id, CommandError::PublishNotAllowed);
        }
        let offer = match SdpOffer::from_sdp_string(sdp) {
            Ok(o) => o,
            Err(e) => return self.fail(id, CommandError::BadSdp(e.to_string())),
        };
        let first = p.publisher.is_none();
        if first {
            let pc = self.new_pc(now, id, PcKind::Publisher);
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
                    self.drop_publisher(id);
                }
                return self.fail(id, CommandError::BadSdp(e.to_string()));
            }
            Err(f) => {
                self.failures.report(id, f);
                return self.fail(id, CommandError::Internal("offer handling panicked".into()));
            }
        };
        // An offer with new ICE credentials restarts ICE (RFC 8839 §4.4.1.1.1): str0m
        // answers with new local ones.
        self.sync_ufrag(id, PcKind::Publisher);
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
                self.drop_publisher(id);
            }
            return self.fail(id, CommandError::NoCommonCodec);
        }
        self.emit(Event::PublishAnswer {
            participant: id,
            sdp: answer.to_sdp_string(),
        });
        self.drain_pc(id, PcKind::Publisher);
    }

    fn drop_publisher(&mut self, id: ParticipantId) {
        if let Some(pc) = self
            .participants
            .get_mut(&id)
            .and_then(|p| p.publisher.take())
        {
            self.forget_pc((id, PcKind::Publisher), &pc);
        }
    }

    /// A connection that is gone: datagrams are no longer routed to it, and its timer
    /// is dropped.
    fn forget_pc(&mut self, who: PcKey, pc: &Pc) {
        self.routes.forget(&pc.ufrag, &pc.addrs);
        self.timers.remove(who, pc.timeout);
    }

    fn on_subscribe_answer(&mut self, id: ParticipantId, sdp: &str) {
        let Some(p) = self.participants.get_mut(&id) else {
            return self.fail(id, CommandError::UnknownParticipant);
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => return self.fail(id, CommandError::BadSdp(e.to_string())),
        };
        let (Some(pending), Some(pc)) = (p.pending_offer.take(), p.subscriber.as_mut()) else {
            return self.fail(id, CommandError::NoPendingOffer);
        };
        match pc.guarded(|rtc| rtc.sdp_api().accept_answer(pending, answer)) {
            // An answer to an offer that restarted ICE brings the new local credentials
            // into use.
            Ok(Ok(())) => self.sync_ufrag(id, PcKind::Subscriber),
            Ok(Err(e)) => {
                // The offer is spent; try again with a fresh one.
                p.renegotiate = true;
                self.fail(id, CommandError::BadSdp(e.to_string()));
            }
            Err(f) => return self.failures.report(id, f),
        }
        if let Some(p) = self.participants.get_mut(&id) {
            for sub in p.subs.values_mut() {
                sub.ready = true;
            }
            if std::mem::take(&mut p.renegotiate) {
                self.sync_subscriptions(id);
            }
        }
        self.drain_pc(id, PcKind::Subscriber);
    }

    /// Bring a subscriber's connection in line with its room: offer new tracks, stop gone
    /// ones. One offer at a time; changes meanwhile wait for the answer.
    pub(crate) fn sync_subscriptions(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if p.subscriber.is_none() || p.whep_target.is_some() {
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
            let mid = api.add_media(
                track.kind.into(),
                Direction::SendOnly,
                Some(crate::msid::publisher_stream(track.publisher)),
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
            self.emit(Event::SubscribeOffer {
                participant: id,
                sdp: offer.to_sdp_string(),
                tracks,
            });
        }
        self.drain_pc(id, PcKind::Subscriber);
    }

    fn on_rtc_event(&mut self, now: Instant, id: ParticipantId, kind: PcKind, ev: str0m::Event) {
        use str0m::Event as E;
        match ev {
            E::IceConnectionStateChange(state) => self.on_ice_state(now, id, kind, state),
            E::Connected => {
                if let Some(pc) = self.participants.get_mut(&id).and_then(|p| p.pc_mut(kind)) {
                    pc.connected = true;
                }
                self.emit(Event::Connected {
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
                self.publish(id, m.mid, m.kind.into(), rids);
            }
            E::MediaAdded(m) if kind == PcKind::Subscriber && m.direction.is_sending() => {
                if let Some(p) = self.participants.get_mut(&id) {
                    if p.whep_target.is_some() {
                        p.whep_slots.push((m.mid, m.kind.into()));
                    }
                }
                self.bind_whep(id);
            }
            E::MediaChanged(m) if kind == PcKind::Publisher && !m.direction.is_receiving() => {
                let tid = self
                    .participants
                    .get(&id)
                    .and_then(|p| p.published.get(&m.mid).copied());
                if let Some(tid) = tid {
                    self.unpublish(tid);
                }
            }
            E::RtpPacket(pkt) if kind == PcKind::Publisher => self.forward(now, id, pkt),
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
                    let e = estimate.as_u64();
                    p.falling = match p.estimate {
                        Some(prev) if e < prev => p.falling + 1,
                        _ => 0,
                    };
                    p.estimate = Some(e);
                }
                self.allocate(now, id);
            }
            E::MediaEgressStats(st) if kind == PcKind::Subscriber => {
                if let Some(p) = self.participants.get_mut(&id) {
                    let now_counts = [st.nacks, st.plis, st.firs];
                    let last = p.feedback.insert(st.mid, now_counts).unwrap_or([0; 3]);
                    let d = |i: usize| now_counts[i].saturating_sub(last[i]);
                    self.stats.nacks_received += d(0);
                    self.stats.plis_received += d(1);
                    self.stats.firs_received += d(2);
                    if st.rtt.is_some() && st.rtt != p.rtt {
                        p.rtt = st.rtt;
                        self.resize_rtx(id);
                    }
                }
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
                        self.request_keyframe(now, tid, li);
                    }
                }
            }
            _ => {}
        }
    }

    fn publish(&mut self, id: ParticipantId, mid: Mid, kind: TrackKind, rids: Vec<String>) {
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
        self.tracks.insert(tid, track);
        let others = match self.rooms.get_mut(&room) {
            Some(r) => {
                r.tracks.push(tid);
                r.participants.clone()
            }
            None => vec![],
        };
        self.emit(Event::TrackPublished {
            room,
            participant: id,
            track: tid,
            kind,
            mid: mid.to_string(),
            rids,
        });
        for o in others.into_iter().filter(|o| *o != id) {
            self.sync_subscriptions(o);
            self.bind_whep(o);
        }
    }

    pub(crate) fn unpublish(&mut self, tid: TrackId) {
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
        self.throttle.forget(|(t, _)| *t == tid);
        if let Some(r) = self.rooms.get_mut(&track.room) {
            r.speaker.forget(tid);
        }
        for sid in &track.subscribers {
            if let Some(sp) = self.participants.get_mut(sid) {
                if let Some(sub) = sp.subs.remove(&tid) {
                    if sp.whep_target.is_none() {
                        sp.to_stop.push(sub.mid);
                    }
                }
            }
            self.sync_subscriptions(*sid);
        }
        self.emit(Event::TrackUnpublished {
            room: track.room,
            participant: track.publisher,
            track: tid,
        });
    }

    fn remove_participant(&mut self, _now: Instant, id: ParticipantId, reason: GoneReason) {
        let Some(p) = self.participants.remove(&id) else {
            return;
        };
        self.interrupted.forget(id);
        if let Some(pc) = &p.publisher {
            self.forget_pc((id, PcKind::Publisher), pc);
        }
        if let Some(pc) = &p.subscriber {
            self.forget_pc((id, PcKind::Subscriber), pc);
        }
        for tid in p.published.values() {
            self.unpublish(*tid);
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
        self.failures.forget(id);
        self.emit(Event::ParticipantGone {
            room: p.room,
            participant: id,
            reason,
        });
    }

    /// Ask a publisher for a keyframe on one layer, at most once per throttle interval.
    pub(crate) fn request_keyframe(&mut self, now: Instant, tid: TrackId, layer: usize) {
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
            self.stats.keyframe_requests += 1;
            self.drain_pc(pid, PcKind::Publisher);
        }
    }
}

#[cfg(feature = "testkit")]
mod invariants;

#[cfg(test)]
mod tests;

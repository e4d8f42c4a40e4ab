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

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::{Input, Output, ShardStats, Transport};
use crate::ids::ParticipantId;
#[cfg(feature = "testkit")]
use crate::ids::PcKind;
use crate::peers::Peers;
use crate::periodic::{Job, Periodic};
use crate::router::Router;

pub(crate) use crate::participant::{Participant, Room};
pub use crate::shard_config::ShardConfig;

/// One worker's media state. See the module docs for the run loop.
pub struct Shard {
    /// The endpoint: demux, timers, output, failures ([`crate::peers`]).
    pub(crate) peers: Peers,
    /// The rooms, participants and tracks ([`crate::router`]).
    pub(crate) router: Router,
    last_now: Instant,
    /// The shard's own periodic jobs ([`crate::periodic`]).
    periodic: Periodic,
}

pub use crate::routes::NEW_SOURCE_STUN_PER_SEC;

impl Shard {
    /// `now` is the shard's start time (the driver reads the clock, not the shard).
    pub fn new(cfg: ShardConfig, now: Instant) -> Self {
        Self {
            peers: Peers::new(&cfg, now),
            router: Router::new(&cfg),
            last_now: now,
            periodic: Periodic::new(now),
        }
    }

    /// Test hook: the ICE ufrag a connection is demultiplexed by, if it is, and the one
    /// its str0m connection uses (the two must agree).
    #[cfg(feature = "testkit")]
    pub fn local_ufrag(
        &mut self,
        participant: ParticipantId,
        kind: PcKind,
    ) -> Option<(String, String)> {
        let pc = self.router.pc_mut((participant, kind))?;
        let known = pc.ufrag.clone();
        let used = pc.rtc.direct_api().local_ice_credentials().ufrag;
        (self.peers.routes.ufrag_owner(&known) == Some((participant, kind)))
            .then_some((known, used))
    }

    /// Test hook: the next str0m call on this participant's connection of `kind` panics,
    /// as str0m does on an internal bug. The shard must drop that peer, count it, and
    /// leave everything else untouched.
    #[cfg(feature = "testkit")]
    pub fn inject_panic(&mut self, participant: ParticipantId, kind: PcKind) -> bool {
        match self.router.pc_mut((participant, kind)) {
            Some(pc) => {
                pc.inject_panic = true;
                true
            }
            None => false,
        }
    }

    pub fn stats(&self) -> ShardStats {
        let mut s = self.peers.stats;
        s.peer_panics = self.peers.failures.panics;
        s.tracks = self.router.tracks.len() as u64;
        s.subscriptions = self
            .router
            .participants
            .values()
            .map(|p| p.subs.len() as u64)
            .sum();
        s
    }

    /// Number of participants (the load measure used to place rooms).
    pub fn participant_count(&self) -> usize {
        self.router.participants.len()
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
            Input::Command(c) => self.router.on_command(&mut self.peers, now, c),
            Input::Relay {
                link,
                flow,
                contents,
            } => self
                .router
                .on_relay(&mut self.peers, now, link, flow, contents),
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
            if let Some(o) = self.peers.out.pop_front() {
                return o;
            }
            if self.peers.dirty.is_empty() {
                return Output::Timeout(self.deadline());
            }
            self.flush(self.last_now);
        }
    }

    /// The earliest of every connection's deadline and the shard's own periodic work.
    fn deadline(&self) -> Instant {
        let mut next = self.last_now + Duration::from_secs(1);
        if let Some(t) = self.peers.deadline() {
            next = next.min(t);
        }
        let r = &self.router;
        let jobs: &[Job] = match (r.rooms.is_empty(), r.participants.is_empty()) {
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
        let mut dirty = self.peers.take_dirty();
        for who in dirty.drain(..) {
            if let Some(pc) = self.router.pc_mut(who) {
                self.peers.advance(now, who, pc, false);
            }
        }
        self.peers.restore_dirty(dirty);
        self.pump(now);
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        contents: &[u8],
    ) {
        let Some((who, kind, recv)) = self.peers.route(now, transport, source, contents) else {
            return;
        };
        match self.router.pc_mut(who) {
            Some(pc) => self.peers.receive(now, who, kind, transport, recv, pc),
            None => self.peers.stats.dropped_unknown_source += 1,
        }
    }

    /// Advance the connections that are due, and only those.
    fn on_timeout(&mut self, now: Instant) {
        let mut due = self.peers.take_due(now);
        for who in due.drain(..) {
            if let Some(pc) = self.router.pc_mut(who) {
                self.peers.advance(now, who, pc, true);
            }
        }
        self.peers.restore_due(due);
        self.peers.expire_interrupted(now);
        self.pump(now);
    }

    /// Process str0m events and failures until nothing is left.
    fn pump(&mut self, now: Instant) {
        loop {
            if let Some((id, kind, ev)) = self.peers.pending.pop_front() {
                self.router.on_rtc_event(&mut self.peers, now, id, kind, ev);
            } else if let Some((id, reason)) = self.peers.failures.pop() {
                self.router
                    .remove_participant(&mut self.peers, now, id, reason);
            } else {
                break;
            }
        }
    }

    /// One periodic job ([`crate::periodic`]), `since` its last run.
    fn run_periodic(&mut self, now: Instant, job: Job, since: Duration) {
        let (r, peers) = (&mut self.router, &mut self.peers);
        match job {
            Job::Speakers => r.update_speakers(peers, now),
            Job::Allocation => {
                let ids: Vec<ParticipantId> = r
                    .participants
                    .iter()
                    .filter(|(_, p)| p.estimate.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    r.allocate(peers, now, id);
                }
                r.dynacast(peers, now);
            }
            Job::Reports => r.report_subscriptions(peers, now, since),
        }
    }
}

#[cfg(feature = "testkit")]
mod invariants;

#[cfg(test)]
mod tests;

//! The shard's endpoint: everything about its peer connections that is not a room's
//! business — which connection a datagram is for ([`Routes`]), when each connection is
//! next due ([`Timers`]) and which were written to in this turn, connections that failed
//! or went quiet, what the shard has to say (the output queue and str0m's events waiting
//! to be handled), the DTLS certificate and the counters.
//!
//! The connections themselves (one [`Pc`] each) belong to their participants
//! ([`crate::router::Router`]); the endpoint is handed the one it works on. This is the
//! shape of quinn-proto's `Endpoint`, which demultiplexes to `Connection`s it does not own
//! the state of.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use str0m::net::{Protocol, Receive};

use crate::api::{CommandError, Event, Output, ShardStats, Transport};
use crate::demux::{classify, DatagramKind};
use crate::ids::{ParticipantId, PcKind};
use crate::interruption::Interruptions;
use crate::pc::{Failures, Pc};
use crate::routes::{Routes, Unrouted};
use crate::shard_config::ShardConfig;
use crate::timers::{PcKey, Timers};

/// At most this many extra clock advances per connection and turn settle its pacer.
const SETTLE_ROUNDS: usize = 128;
/// How far ahead of the turn's time a settling advance may go (str0m steps 1 µs).
const SETTLE_AHEAD: Duration = Duration::from_micros(200);

/// See the module docs.
pub(crate) struct Peers {
    /// The addresses every connection offers as candidates.
    public_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
    /// Which connection a datagram belongs to ([`crate::routes`]).
    pub routes: Routes,
    /// When each connection is next due ([`Timers`]).
    pub timers: Timers,
    /// Connections written to in this turn, advanced once at its end.
    pub dirty: Vec<PcKey>,
    /// Scratch for the connections due at a timeout (kept to avoid allocating).
    due: Vec<PcKey>,
    /// Failed connections, removed at the next pump.
    pub failures: Failures,
    /// Connections whose ICE went quiet, within their grace period.
    pub interrupted: Interruptions,
    /// What the shard has to say, in order.
    pub out: VecDeque<Output>,
    /// str0m events drained from connections, handled at the next pump.
    pub pending: VecDeque<(ParticipantId, PcKind, str0m::Event)>,
    pub stats: ShardStats,
    /// The DTLS certificate every connection of this shard presents (made at first use).
    cert: Option<str0m::config::DtlsCert>,
}

impl Peers {
    pub fn new(cfg: &ShardConfig, now: Instant) -> Self {
        Self {
            public_addr: cfg.public_addr,
            tcp_addr: cfg.tcp_addr,
            routes: Routes::new(now),
            timers: Timers::default(),
            dirty: Vec::new(),
            due: Vec::new(),
            failures: Failures::default(),
            interrupted: Interruptions::new(cfg.media_grace),
            out: VecDeque::new(),
            pending: VecDeque::new(),
            stats: ShardStats::default(),
            cert: None,
        }
    }

    pub fn emit(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    pub fn fail(&mut self, participant: ParticipantId, error: CommandError) {
        self.emit(Event::CommandFailed { participant, error });
    }

    /// A new connection for `id`, demultiplexed by its ufrag from now on.
    pub fn new_pc(
        &mut self,
        now: Instant,
        id: ParticipantId,
        kind: PcKind,
        rng: &mut impl Rng,
    ) -> Pc {
        if self.cert.is_none() {
            self.cert = str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate();
        }
        let pc = Pc::new(
            now,
            self.public_addr,
            self.tcp_addr,
            rng,
            kind == PcKind::Subscriber,
            self.cert.as_ref(),
        );
        self.routes.bind_ufrag(None, pc.ufrag.clone(), (id, kind));
        pc
    }

    /// The `candidate:` values every connection offers.
    pub fn candidates(&self) -> Vec<String> {
        crate::pc::local_candidates(self.public_addr, self.tcp_addr)
            .iter()
            .map(|c| c.to_sdp_string())
            .collect()
    }

    /// A connection that is gone: datagrams are no longer routed to it, and its timer
    /// is dropped.
    pub fn forget(&mut self, who: PcKey, pc: &Pc) {
        self.routes.forget(&pc.ufrag, &pc.addrs);
        self.timers.remove(who, pc.timeout);
    }

    /// Take what `pc` has to send and say; a failure is reported.
    pub fn drain(&mut self, who: PcKey, pc: &mut Pc) {
        if let Err(f) = pc.drain(who, &mut self.out, &mut self.pending, &mut self.timers) {
            self.failures.report(who.0, f);
        }
    }

    /// `pc` was written to: advanced at the end of the turn.
    pub fn written(&mut self, who: PcKey, pc: &mut Pc) {
        if pc.written == 0 {
            self.dirty.push(who);
        }
        pc.written += 1;
    }

    /// Advance one connection's clock to `now` (if `due`, its timer was taken from the
    /// table; otherwise only if it was written to) and drain it.
    pub fn advance(&mut self, now: Instant, who: PcKey, pc: &mut Pc, due: bool) {
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
        self.stats.clock_advances += rounds as u64;
        if let Err(f) = r {
            self.failures.report(who.0, f);
        }
    }

    /// The connections written to in this turn (to [`Peers::advance`] each); the list is
    /// handed back with [`Peers::restore_dirty`] so that its buffer is kept.
    pub fn take_dirty(&mut self) -> Vec<PcKey> {
        std::mem::take(&mut self.dirty)
    }

    pub fn restore_dirty(&mut self, dirty: Vec<PcKey>) {
        debug_assert!(dirty.is_empty());
        self.dirty = dirty;
    }

    /// The connections due at `now`, taken from the timer table (to [`Peers::advance`]
    /// each); handed back with [`Peers::restore_due`].
    pub fn take_due(&mut self, now: Instant) -> Vec<PcKey> {
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        due
    }

    /// Connections whose grace period after losing ICE ran out by `now` are failed.
    pub fn expire_interrupted(&mut self, now: Instant) {
        let mut lost = Vec::new();
        self.interrupted.expired(now, &mut lost);
        for id in lost {
            self.failures.report(id, crate::pc::PcFailure::Disconnected);
        }
    }

    pub fn restore_due(&mut self, mut due: Vec<PcKey>) {
        due.clear();
        self.due = due;
    }

    /// The earliest wake-up any connection or grace period wants, if any.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.timers.earliest(), self.interrupted.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Which connection a datagram is for, and str0m's form of it. None: dropped, and
    /// counted.
    pub fn route<'a>(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        contents: &'a [u8],
    ) -> Option<(PcKey, DatagramKind, Receive<'a>)> {
        self.stats.datagrams_in += 1;
        let kind = classify(contents);
        let who = match self.routes.route(now, (transport, source), kind, contents) {
            Ok(w) => w,
            Err(Unrouted::RateLimited) => {
                self.stats.dropped_rate_limited += 1;
                return None;
            }
            Err(Unrouted::UnknownSource) => {
                self.stats.dropped_unknown_source += 1;
                tracing::trace!("datagram from unknown source dropped");
                return None;
            }
        };
        if kind == DatagramKind::Unknown {
            self.stats.dropped_malformed += 1;
            return None;
        }
        let (proto, local) = match (transport, self.tcp_addr) {
            (Transport::Udp, _) => (Protocol::Udp, self.public_addr),
            (Transport::Tcp, Some(tcp)) => (Protocol::Tcp, tcp),
            (Transport::Tcp, None) => {
                self.stats.dropped_unknown_source += 1;
                return None;
            }
        };
        let Ok(recv) = Receive::new(proto, source, local, contents) else {
            self.stats.dropped_malformed += 1;
            return None;
        };
        Some((who, kind, recv))
    }

    /// A routed datagram into its connection `pc`; the path it came on is bound to the
    /// connection once str0m takes it.
    pub fn receive(
        &mut self,
        now: Instant,
        who: PcKey,
        kind: DatagramKind,
        transport: Transport,
        recv: Receive<'_>,
        pc: &mut Pc,
    ) {
        let remote = (transport, recv.source);
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
        self.drain(who, pc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn peers() -> (Peers, Instant, rand_chacha::ChaCha8Rng) {
        let t0 = crate::test_clock::origin();
        let cfg = ShardConfig::new("127.0.0.1:5000".parse().unwrap());
        (
            Peers::new(&cfg, t0),
            t0,
            rand_chacha::ChaCha8Rng::seed_from_u64(7),
        )
    }

    #[test]
    fn a_datagram_nobody_owns_is_counted_and_dropped() {
        let (mut p, t0, _) = peers();
        // RTP from an address no connection has used, and bytes that are no protocol.
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        rtp.extend([0; 20]);
        let from = "10.0.0.9:4000".parse().unwrap();
        assert!(p.route(t0, Transport::Udp, from, &rtp).is_none());
        assert!(p.route(t0, Transport::Udp, from, &[0xff; 3]).is_none());
        assert_eq!(p.stats.datagrams_in, 2);
        assert_eq!(p.stats.dropped_unknown_source, 2);
        // TCP frames on a shard without an ICE-TCP address go nowhere either.
        assert!(p.route(t0, Transport::Tcp, from, &rtp).is_none());
        assert_eq!(p.stats.dropped_unknown_source, 3);
    }

    #[test]
    fn a_connection_is_routed_by_its_ufrag_until_forgotten() {
        let (mut p, t0, mut rng) = peers();
        let who = (ParticipantId(1), PcKind::Subscriber);
        let pc = p.new_pc(t0, who.0, who.1, &mut rng);
        assert_eq!(p.routes.ufrag_owner(&pc.ufrag), Some(who));
        p.forget(who, &pc);
        assert_eq!(p.routes.ufrag_owner(&pc.ufrag), None);
    }

    #[test]
    fn a_connection_written_to_twice_is_advanced_once_in_the_turn() {
        let (mut p, t0, mut rng) = peers();
        let who = (ParticipantId(1), PcKind::Subscriber);
        let mut pc = p.new_pc(t0, who.0, who.1, &mut rng);
        p.written(who, &mut pc);
        p.written(who, &mut pc);
        let mut dirty = p.take_dirty();
        assert_eq!(dirty, vec![who]);
        for w in dirty.drain(..) {
            p.advance(t0, w, &mut pc, false);
        }
        p.restore_dirty(dirty);
        assert_eq!(pc.written, 0);
        assert_eq!(p.stats.clock_advances, 1);
        // Drained: it wants its clock again, and the endpoint knows when.
        let next = pc.timeout.expect("a deadline after the drain");
        assert_eq!(p.deadline(), Some(next));
        // Advanced by its timer, it is not advanced again as written.
        let due = p.take_due(next);
        assert_eq!(due, vec![who]);
        p.restore_due(due);
    }

    #[test]
    fn commands_that_fail_say_so_in_order() {
        let (mut p, _, _) = peers();
        p.fail(ParticipantId(3), CommandError::UnknownParticipant);
        p.emit(Event::MediaRestored {
            participant: ParticipantId(3),
        });
        assert!(matches!(
            p.out.pop_front(),
            Some(Output::Event(Event::CommandFailed { .. }))
        ));
        assert!(matches!(
            p.out.pop_front(),
            Some(Output::Event(Event::MediaRestored { .. }))
        ));
    }
}

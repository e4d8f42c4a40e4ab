//! One str0m peer connection and how the shard drives it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rand::distributions::Alphanumeric;
use rand::Rng;
use str0m::net::{Protocol, TcpType};
use str0m::{Candidate, Rtc, RtcConfig};

use crate::api::{GoneReason, Output, Transmit, Transport};
use crate::ids::{ParticipantId, PcKind};
use crate::timers::{PcKey, Timers};

/// Where a subscriber's bandwidth estimate starts: enough for the middle layer of a
/// typical simulcast camera; GCC probes up from there.
pub const INITIAL_ESTIMATE_KBPS: u64 = 2_500;

/// Fresh local ICE credentials: a 16-character ufrag and a 32-character password.
pub(crate) fn new_credentials(rng: &mut impl Rng) -> (String, String) {
    let ufrag: String = (0..16).map(|_| rng.sample(Alphanumeric) as char).collect();
    let pass: String = (0..32).map(|_| rng.sample(Alphanumeric) as char).collect();
    (ufrag, pass)
}

/// The host candidates every connection offers: UDP, and a passive ICE-TCP one (RFC 6544)
/// when the node takes TCP. str0m gives TCP a lower type preference, so a client that
/// reaches both uses UDP.
pub(crate) fn local_candidates(udp: SocketAddr, tcp: Option<SocketAddr>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Candidate::host(udp, "udp").into_iter().collect();
    if let Some(tcp) = tcp {
        out.extend(
            Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build(),
        );
    }
    out
}

/// A str0m `Rtc` in RTP mode, ICE-lite, with the shard's bookkeeping around it.
pub(crate) struct Pc {
    pub rtc: Rtc,
    pub ufrag: String,
    /// The peer's addresses seen so far, each with the transport it arrived on.
    pub addrs: Vec<(Transport, SocketAddr)>,
    /// The deadline str0m asked for at the last drain, as held in the shard's
    /// [`Timers`] (None before the first drain).
    pub timeout: Option<Instant>,
    pub connected: bool,
    /// Packets written since the clock was last advanced. While it is not zero the
    /// connection is on the shard's flush list: it is advanced at the end of the turn,
    /// once for all of them (and its pacer settled, up to this many rounds).
    pub written: usize,
    /// Why this connection failed, once it has: from then on it is inert (every call
    /// returns the failure, nothing more is written to it) until the shard removes it.
    failed: Option<PcFailure>,
    /// Test hook ([`crate::Shard::inject_panic`]): the next str0m call panics.
    #[cfg(feature = "testkit")]
    pub inject_panic: bool,
}

/// Why a peer connection must be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PcFailure {
    Disconnected,
    Error,
    Panicked,
}

impl PcFailure {
    pub fn reason(self) -> GoneReason {
        match self {
            PcFailure::Disconnected => GoneReason::IceTimeout,
            PcFailure::Error | PcFailure::Panicked => GoneReason::Failed,
        }
    }
}

/// Failed connections waiting to be removed, and how many of them panicked. The one
/// path every failure of a peer takes ([`Failures::report`]).
#[derive(Debug, Default)]
pub(crate) struct Failures {
    queue: Vec<(ParticipantId, GoneReason)>,
    pub panics: u64,
}

impl Failures {
    /// `who`'s connection failed (it has already made itself inert): count it and queue
    /// the participant's removal.
    pub fn report(&mut self, who: ParticipantId, f: PcFailure) {
        if f == PcFailure::Panicked {
            self.panics += 1;
            tracing::error!(participant = %who, "a peer connection panicked (str0m); the peer is dropped, the rest of the shard goes on");
        }
        if !self.queue.iter().any(|(id, _)| *id == who) {
            self.queue.push((who, f.reason()));
        }
    }

    pub fn pop(&mut self) -> Option<(ParticipantId, GoneReason)> {
        self.queue.pop()
    }

    /// `id` was removed for another reason: nothing more to do for it.
    pub fn forget(&mut self, id: ParticipantId) {
        self.queue.retain(|(x, _)| *x != id);
    }
}

impl Pc {
    /// `bwe`: estimate the downstream bandwidth (subscriber connections), starting from
    /// [`INITIAL_ESTIMATE_KBPS`].
    pub fn new(
        now: Instant,
        public_addr: SocketAddr,
        tcp_addr: Option<SocketAddr>,
        rng: &mut impl Rng,
        bwe: bool,
        cert: Option<&str0m::config::DtlsCert>,
    ) -> Self {
        let (ufrag, pass) = new_credentials(rng);
        let mut config = RtcConfig::new();
        if let Some(c) = cert {
            // One certificate per shard: generating a key pair per connection costs more
            // than the rest of a join.
            config = config.set_dtls_cert(c.clone());
        }
        let mut rtc = config
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(str0m::IceCreds {
                ufrag: ufrag.clone(),
                pass,
            })
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_vp9(true)
            .enable_av1(true)
            // Each outgoing stream's RTX cache is sized when it is first written
            // (`crate::rtx`); this is only the bound before that.
            .set_send_buffer_video(crate::rtx::MAX_VIDEO_PACKETS)
            .enable_bwe(bwe.then_some(str0m::bwe::Bitrate::kbps(INITIAL_ESTIMATE_KBPS)))
            // Subscriber connections report NACK / PLI / FIR counts and the RTT.
            .set_stats_interval(bwe.then_some(std::time::Duration::from_secs(2)))
            .build(now);
        for c in local_candidates(public_addr, tcp_addr) {
            rtc.add_local_candidate(c);
        }
        Self {
            rtc,
            ufrag,
            addrs: Vec::new(),
            timeout: None,
            connected: false,
            written: 0,
            failed: None,
            #[cfg(feature = "testkit")]
            inject_panic: false,
        }
    }

    /// Inert: failed, waiting for removal.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail(&mut self, f: PcFailure) -> PcFailure {
        *self.failed.get_or_insert(f)
    }

    /// Poll the Rtc until it wants a timeout: transmits go to `out`, events to `events`,
    /// the deadline into `timers`. Any str0m panic is contained here and reported as a
    /// failure of this connection.
    pub fn drain(
        &mut self,
        who: PcKey,
        out: &mut VecDeque<Output>,
        events: &mut VecDeque<(ParticipantId, PcKind, str0m::Event)>,
        timers: &mut Timers,
    ) -> Result<(), PcFailure> {
        if let Some(f) = self.failed {
            return Err(f);
        }
        #[cfg(feature = "testkit")]
        let inject = std::mem::take(&mut self.inject_panic);
        #[cfg(not(feature = "testkit"))]
        let inject = false;
        let rtc = &mut self.rtc;
        let result = catch_unwind(AssertUnwindSafe(|| loop {
            if inject {
                panic!("injected panic (test hook)");
            }
            match rtc.poll_output() {
                Ok(str0m::Output::Timeout(t)) => return Ok(t),
                Ok(str0m::Output::Transmit(t)) => out.push_back(Output::Transmit(Transmit {
                    transport: if t.proto == Protocol::Udp {
                        Transport::Udp
                    } else {
                        Transport::Tcp
                    },
                    destination: t.destination,
                    contents: t.contents.into(),
                })),
                // ICE state changes (a disconnected one included: the path may come
                // back) are the shard's to handle (`crate::interruption`).
                Ok(str0m::Output::Event(e)) => events.push_back((who.0, who.1, e)),
                Err(e) => {
                    tracing::debug!(participant = %who.0, pc = ?who.1, error = %e, "peer connection failed");
                    return Err(PcFailure::Error);
                }
            }
        }));
        match result {
            Ok(Ok(t)) if self.rtc.is_alive() => {
                timers.set(who, self.timeout.replace(t), t);
                Ok(())
            }
            Ok(Ok(_)) => Err(self.fail(PcFailure::Disconnected)),
            Ok(Err(f)) => Err(self.fail(f)),
            Err(_) => Err(self.fail(PcFailure::Panicked)),
        }
    }

    /// Run `f` on the Rtc with panics contained. A failed connection runs nothing.
    pub fn guarded<T>(&mut self, f: impl FnOnce(&mut Rtc) -> T) -> Result<T, PcFailure> {
        if let Some(f) = self.failed {
            return Err(f);
        }
        catch_unwind(AssertUnwindSafe(|| f(&mut self.rtc)))
            .map_err(|_| self.fail(PcFailure::Panicked))
    }

    /// Bring the Rtc's clock to `now` (its timers, and the packets written since the last
    /// advance leave). A str0m error here is a failure of the connection.
    pub fn advance(&mut self, now: Instant) -> Result<(), PcFailure> {
        match self.guarded(|rtc| rtc.handle_input(str0m::Input::Timeout(now))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.fail(PcFailure::Error)),
            Err(f) => Err(f),
        }
    }
}

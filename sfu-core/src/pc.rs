//! One str0m peer connection and how the shard drives it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rand::distributions::Alphanumeric;
use rand::Rng;
use str0m::{Candidate, IceConnectionState, Rtc, RtcConfig};

use crate::api::{Output, Transmit};
use crate::ids::{ParticipantId, PcKind};

/// Where a subscriber's bandwidth estimate starts: enough for the middle layer of a
/// typical simulcast camera; GCC probes up from there.
pub const INITIAL_ESTIMATE_KBPS: u64 = 2_500;

/// Fresh local ICE credentials: a 16-character ufrag and a 32-character password.
pub(crate) fn new_credentials(rng: &mut impl Rng) -> (String, String) {
    let ufrag: String = (0..16).map(|_| rng.sample(Alphanumeric) as char).collect();
    let pass: String = (0..32).map(|_| rng.sample(Alphanumeric) as char).collect();
    (ufrag, pass)
}

/// A str0m `Rtc` in RTP mode, ICE-lite, with the shard's bookkeeping around it.
pub(crate) struct Pc {
    pub rtc: Rtc,
    pub ufrag: String,
    pub addrs: Vec<SocketAddr>,
    pub timeout: Instant,
    pub connected: bool,
    /// A str0m call panicked: the `Rtc` may be inconsistent, so the connection is dropped
    /// at its next drain.
    poisoned: bool,
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

impl Pc {
    /// `bwe`: estimate the downstream bandwidth (subscriber connections), starting from
    /// [`INITIAL_ESTIMATE_KBPS`].
    pub fn new(
        now: Instant,
        public_addr: SocketAddr,
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
            // The RTX cache answers NACKs: 300 packets is 1.4 s of a 1.7 Mbps layer, far more
            // than any useful retransmission delay, and a third of str0m's default.
            .set_send_buffer_video(300)
            .enable_bwe(bwe.then_some(str0m::bwe::Bitrate::kbps(INITIAL_ESTIMATE_KBPS)))
            // Subscriber connections report NACK / PLI / FIR counts (for metrics).
            .set_stats_interval(bwe.then_some(std::time::Duration::from_secs(2)))
            .build(now);
        if let Ok(c) = Candidate::host(public_addr, "udp") {
            rtc.add_local_candidate(c);
        }
        Self {
            rtc,
            ufrag,
            addrs: Vec::new(),
            timeout: now,
            connected: false,
            poisoned: false,
            #[cfg(feature = "testkit")]
            inject_panic: false,
        }
    }

    /// Poll the Rtc until it wants a timeout: transmits go to `out`, events to `events`.
    /// Any str0m panic is contained here and reported as a failure of this connection.
    pub fn drain(
        &mut self,
        who: (ParticipantId, PcKind),
        out: &mut VecDeque<Output>,
        events: &mut VecDeque<(ParticipantId, PcKind, str0m::Event)>,
    ) -> Result<(), PcFailure> {
        if self.poisoned {
            return Err(PcFailure::Panicked);
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
                    destination: t.destination,
                    contents: t.contents.into(),
                })),
                Ok(str0m::Output::Event(e)) => {
                    if let str0m::Event::IceConnectionStateChange(
                        IceConnectionState::Disconnected,
                    ) = e
                    {
                        return Err(PcFailure::Disconnected);
                    }
                    events.push_back((who.0, who.1, e));
                }
                Err(e) => {
                    tracing::debug!(participant = %who.0, pc = ?who.1, error = %e, "peer connection failed");
                    return Err(PcFailure::Error);
                }
            }
        }));
        match result {
            Ok(Ok(t)) => {
                self.timeout = t;
                if !self.rtc.is_alive() {
                    return Err(PcFailure::Disconnected);
                }
                Ok(())
            }
            Ok(Err(f)) => Err(f),
            Err(_) => Err(PcFailure::Panicked),
        }
    }

    /// Run `f` on the Rtc with panics contained.
    pub fn guarded<T>(&mut self, f: impl FnOnce(&mut Rtc) -> T) -> Result<T, PcFailure> {
        let r =
            catch_unwind(AssertUnwindSafe(|| f(&mut self.rtc))).map_err(|_| PcFailure::Panicked);
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }
}

//! How much of each outgoing stream str0m keeps for answering NACKs (RFC 4585).
//!
//! str0m's RTX cache keeps every nackable packet written to a subscriber stream until it
//! is `age` old (at most `packets` of them); its slot array grows to what that holds. A
//! retransmission is only useful while the receiver still waits for the packet: a few
//! round trips. So the age follows the subscriber's RTT, and the bound follows the
//! track's packet rate (the slot array itself grows to rate × age: str0m doubles it when
//! a live entry would be overwritten). The payloads are shared with the publisher's
//! packet (`Arc`), so what a subscriber stream costs is its slots.
//!
//! str0m empties a stream's cache when it is resized, which loses the packets a pending
//! NACK may still ask for; so a cache is only ever grown (the RTT rose, or the track's
//! rate exceeds the bound), never shrunk (see ADR 0002).

use std::time::Duration;

use crate::ids::TrackKind;

/// The most packets any video stream keeps (a 2.5 Mbps layer at 250 packets/s for 2 s).
pub const MAX_VIDEO_PACKETS: usize = 512;
/// RTT assumed before the subscriber's first receiver report.
pub const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Retransmissions wanted within this many round trips (the NACK, a lost resend, the
/// NACK again...), plus a margin for the receiver's reordering wait.
const ROUND_TRIPS: u32 = 4;
const MARGIN: Duration = Duration::from_millis(100);
const MIN_AGE: Duration = Duration::from_millis(250);
const MAX_AGE: Duration = Duration::from_millis(2_000);
/// Resends allowed, as a share of a stream's bytes (str0m's `rtx_ratio_cap`).
const RESEND_CAP: f32 = 0.5;
/// Packet rate assumed for a video track not measured yet.
const DEFAULT_VIDEO_PPS: u32 = 250;

/// What one subscriber stream keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtxCache {
    pub packets: usize,
    pub age: Duration,
}

impl RtxCache {
    /// The cache for a stream of `kind` whose track peaks at `pps` packets per second
    /// (0: not measured yet), to a subscriber `rtt` away.
    pub fn for_stream(kind: TrackKind, pps: u32, rtt: Option<Duration>) -> Self {
        if kind == TrackKind::Audio {
            // Audio is not nackable here: a late Opus frame is concealed, not repaired.
            return Self {
                packets: 0,
                age: Duration::ZERO,
            };
        }
        let rtt = rtt.unwrap_or(DEFAULT_RTT);
        let age = (rtt * ROUND_TRIPS + MARGIN).clamp(MIN_AGE, MAX_AGE);
        let pps = if pps == 0 { DEFAULT_VIDEO_PPS } else { pps };
        let held = (u64::from(pps) * age.as_millis() as u64).div_ceil(1_000) as usize;
        // A quarter more for bursts (a keyframe arrives faster than the average rate).
        let packets = (held + held / 4 + 8).min(MAX_VIDEO_PACKETS);
        Self { packets, age }
    }

    /// Set this cache on an outgoing stream (str0m empties what the stream held). str0m
    /// drops queued resends once they pass 15 % of the stream's bytes; a lossy link (5 %
    /// each way, retried NACKs) needs more, so up to half — which also bounds what a
    /// subscriber's NACKs can make the server resend — and the allocator lowers the layer
    /// if it hurts.
    pub fn apply(&self, tx: &mut str0m::rtp::StreamTx) {
        tx.set_rtx_cache(self.packets, self.age, Some(RESEND_CAP));
    }

    /// Whether this cache is too small for `want` by more than a fifth (a smaller want
    /// is not worth emptying the cache for).
    pub fn must_grow_to(&self, want: &Self) -> bool {
        want.age.as_millis() * 4 > self.age.as_millis() * 5 || want.packets * 4 > self.packets * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_rate_and_rtt() {
        let ms = Duration::from_millis;
        // (kind, pps, rtt ms, packets, age ms)
        let table = [
            (TrackKind::Video, 135, Some(1), 50, 250), // loopback: the floor
            (TrackKind::Video, 135, Some(50), 59, 300),
            (TrackKind::Video, 135, Some(200), 160, 900),
            (TrackKind::Video, 30, Some(200), 41, 900),
            (TrackKind::Video, 0, None, 164, 500), // not measured: defaults
            (TrackKind::Video, 250, Some(1_000), 512, 2_000), // capped
            (TrackKind::Audio, 50, Some(50), 0, 0),
        ];
        for (i, (kind, pps, rtt, packets, age)) in table.into_iter().enumerate() {
            let c = RtxCache::for_stream(kind, pps, rtt.map(ms));
            assert_eq!((c.packets, c.age), (packets, ms(age)), "row {i}");
        }
        // The old fixed cache was 300 packets for 3 s whatever the stream.
        assert!(RtxCache::for_stream(TrackKind::Video, 135, Some(ms(20))).packets < 300 / 4);
    }

    #[test]
    fn caches_only_grow() {
        let rtt = |ms| Some(Duration::from_millis(ms));
        let first = RtxCache::for_stream(TrackKind::Video, 0, None);
        // Measured later: a lower rate and a short RTT need less, which is not worth
        // emptying the cache for; a long RTT needs more.
        assert!(!first.must_grow_to(&RtxCache::for_stream(TrackKind::Video, 135, rtt(40))));
        assert!(!first.must_grow_to(&RtxCache::for_stream(TrackKind::Video, 140, rtt(110))));
        assert!(first.must_grow_to(&RtxCache::for_stream(TrackKind::Video, 135, rtt(200))));
        assert!(first.must_grow_to(&RtxCache::for_stream(TrackKind::Video, 400, rtt(100))));
    }
}

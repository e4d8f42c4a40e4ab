//! NACK repair (RFC 4585) without a packet cache per subscriber: each published video
//! layer keeps its recent packets once ([`LayerStore`], payloads shared), and each
//! subscription keeps, by its own sequence number, what it made of each packet it wrote
//! ([`SentLog`]: the source packet's number and the rewritten timestamp, picture id and
//! TL0PICIDX; 24 bytes a packet). str0m's streams keep only a few recent packets, for
//! padding (ADR 0009's patch: `StreamTx::set_external_resends`); a subscriber's NACK
//! surfaces as a
//! `ResendRequest`, which [`resend_write`] answers by rebuilding each packet as it was
//! first written.
//!
//! A retransmission is only useful while the receiver still waits for the packet: a few
//! round trips (six). So a subscription keeps its log for an age that follows its RTT, and a
//! layer keeps its packets for the longest age of any subscription it feeds; both rings
//! grow to rate × age ([`SeqRing`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::media::Pt;
use str0m::rtp::{RtpWrite, StreamTx, Vp8Descriptor};

use crate::seq_ring::SeqRing;

/// The most packets a video stream's send queue holds (a 2.5 Mbps layer at 250
/// packets/s for 2 s).
pub const MAX_VIDEO_PACKETS: usize = 512;
/// The most packets a store or log keeps (a 2 s age at 500 packets/s).
const MAX_KEPT: usize = 1024;
/// RTT assumed before the subscriber's first receiver report.
pub const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Retransmissions wanted within this many round trips (the NACK, a lost resend, the
/// NACK again...), plus a margin for the receiver's reordering wait. Six: a receiver
/// NACKs again about every RTT + 25 ms, and on a 5 % loss link one lost packet in
/// 20 per thousand needs a fourth try (str0m's per-subscriber caches kept four round
/// trips; the shard's records are small enough to keep more).
const ROUND_TRIPS: u32 = 6;
const MARGIN: Duration = Duration::from_millis(100);
const MIN_AGE: Duration = Duration::from_millis(250);
const MAX_AGE: Duration = Duration::from_millis(2_000);
/// Resends allowed, as a share of a stream's bytes (str0m's `rtx_ratio_cap`).
const RESEND_CAP: f32 = 0.5;
/// What str0m's own cache keeps of a stream with application resends: recent packets
/// for its padding (bandwidth probes are spurious resends of recent packets of about the
/// size asked for; blank padding packets are small, and the estimator ramps more slowly
/// on them).
const PADDING_PACKETS: usize = 16;
const PADDING_AGE: Duration = Duration::from_millis(500);

/// How long a subscriber `rtt` away may still ask for a packet.
pub(crate) fn age_for(rtt: Option<Duration>) -> Duration {
    let rtt = rtt.unwrap_or(DEFAULT_RTT);
    (rtt * ROUND_TRIPS + MARGIN).clamp(MIN_AGE, MAX_AGE)
}

/// A published layer's packet, kept for repair.
pub(crate) struct Stored {
    pub payload: Arc<[u8]>,
    pub marker: bool,
}

/// A published layer's recent packets, by the publisher's extended sequence number.
pub(crate) type LayerStore = SeqRing<Stored>;

pub(crate) fn layer_store() -> LayerStore {
    SeqRing::new(age_for(None), MAX_KEPT)
}

/// What a subscription made of one packet it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The source: the layer's SSRC and the publisher's extended sequence number.
    pub ssrc: u32,
    pub src_seq: u64,
    /// As written: the payload type, the timestamp, VP8 picture id and TL0PICIDX.
    pub pt: Pt,
    pub ts: u32,
    pub pic: Option<u16>,
    pub tl0: Option<u8>,
}

/// A subscription's written packets, by its own extended sequence number.
pub(crate) type SentLog = SeqRing<Sent>;

pub(crate) fn sent_log(rtt: Option<Duration>) -> SentLog {
    SeqRing::new(age_for(rtt), MAX_KEPT)
}

/// Set up a subscriber stream for application resends (str0m keeps only a few recent
/// packets, for padding). str0m
/// drops queued resends once they pass 15 % of the stream's bytes; a lossy link (5 %
/// each way, retried NACKs) needs more, so up to half — which also bounds what a
/// subscriber's NACKs can make the server resend — and the allocator lowers the layer
/// if it hurts.
pub(crate) fn set_up(tx: &mut StreamTx) {
    tx.set_external_resends(true);
    tx.set_rtx_cache(PADDING_PACKETS, PADDING_AGE, Some(RESEND_CAP));
}

/// The packet `seq` of a subscription as it was first written, from its log entry and
/// the layer's stored packet.
pub(crate) fn resend_write(seq: u64, sent: &Sent, stored: &Stored, now: Instant) -> RtpWrite {
    let w = RtpWrite::new(sent.pt, seq.into(), sent.ts, now, stored.payload.clone())
        .marker(stored.marker)
        .nackable(true);
    if sent.pic.is_none() && sent.tl0.is_none() {
        return w;
    }
    let patch = Vp8Descriptor::parse(&stored.payload)
        .ok()
        .and_then(|d| crate::vp8::continuity_patch(&d, sent.pic, sent.tl0));
    match patch {
        Some(p) => w.vp8_patch(p),
        None => w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_follow_rtt() {
        let ms = Duration::from_millis;
        // (rtt ms, age ms)
        let table = [
            (Some(1), 250), // loopback: the floor
            (Some(50), 400),
            (Some(200), 1_300),
            (None, 700),          // not measured: the default RTT
            (Some(1_000), 2_000), // capped
        ];
        for (i, (rtt, age)) in table.into_iter().enumerate() {
            assert_eq!(age_for(rtt.map(ms)), ms(age), "row {i}");
        }
    }

    #[test]
    fn a_resend_is_the_packet_as_first_written() {
        // X=1, I=1 (15-bit picture id 0x1234), L=1 (TL0PICIDX 7), T=1 (TID 1), then VP8
        // payload bytes.
        let payload: Arc<[u8]> =
            Arc::from(&[0x90u8, 0xe0, 0x92, 0x34, 7, 0x40, 0x10, 0x02, 0x9d][..]);
        let stored = Stored {
            payload: payload.clone(),
            marker: true,
        };
        let sent = Sent {
            ssrc: 1,
            src_seq: 10,
            pt: 96.into(),
            ts: 9_000,
            pic: Some(0x0042),
            tl0: Some(3),
        };
        let now = crate::test_clock::origin();
        let w = format!("{:?}", resend_write(500, &sent, &stored, now));
        assert!(
            w.contains("seq_no: SeqNo(500)") && w.contains("time: 9000"),
            "{w}"
        );
        assert!(
            w.contains("marker: true") && w.contains("nackable: true"),
            "{w}"
        );
        // The subscriber's picture id and TL0PICIDX, as at the first write.
        assert!(w.contains("vp8_patch: Some"), "{w}");
        let plain = Sent {
            pic: None,
            tl0: None,
            ..sent
        };
        let w = format!("{:?}", resend_write(500, &plain, &stored, now));
        assert!(w.contains("vp8_patch: None"), "{w}");
    }
}

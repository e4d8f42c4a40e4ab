//! Keyframe detection per codec and the throttle for keyframe requests (RFC 4585 PLI,
//! RFC 5104 FIR) sent upstream to publishers.

pub use crate::vp8::{vp8_keyframe_size, vp8_temporal};
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::format::{
    detect_av1_keyframe, detect_h264_nalu, detect_vp8_keyframe, detect_vp9_keyframe,
};

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;

/// Whether an RTP payload of `codec` starts a keyframe: the packet a subscriber can start
/// decoding from.
///
/// - VP8 (RFC 7741): S=1, PID=0 and the P bit of the VP8 header clear.
/// - VP9 (RFC 9628): P=0 (not inter-predicted) and B=1 (first packet of the frame).
/// - H.264 (RFC 6184): a packet carrying the SPS (browsers send SPS/PPS in a STAP-A right
///   before the IDR), or else the IDR itself (single NAL, STAP-A or FU-A start).
/// - AV1: a new coded video sequence (str0m's detector).
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => detect_vp8_keyframe(payload),
        Codec::Vp9 => detect_vp9_keyframe(payload) && payload[0] & 0x08 != 0,
        Codec::H264 => detect_h264_nalu(payload, H264_SPS) || detect_h264_nalu(payload, H264_IDR),
        Codec::Av1 => detect_av1_keyframe(payload),
        _ => false,
    }
}

/// Lets one keyframe request per key through per `interval`; the rest are absorbed.
///
/// Subscribers' PLIs and the SFU's own needs (a new subscriber, a layer switch) all funnel
/// through here so that a publisher never sees a storm of requests.
#[derive(Debug)]
pub struct KeyframeThrottle<K> {
    interval: Duration,
    last: HashMap<K, Instant>,
}

impl<K: Hash + Eq> KeyframeThrottle<K> {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// True if a request for `key` may be sent now (and records it).
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        match self.last.get(&key) {
            Some(t) if now.saturating_duration_since(*t) < self.interval => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }

    /// Forget all keys matching the predicate (a track went away).
    pub fn forget(&mut self, mut f: impl FnMut(&K) -> bool) {
        self.last.retain(|k, _| !f(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_table() {
        let t0 = crate::test_clock::origin();
        let ms = Duration::from_millis;
        let mut th = KeyframeThrottle::new(ms(300));
        // (key, offset ms, expected)
        let table = [
            (1, 0, true),
            (1, 10, false),
            (2, 10, true),
            (1, 299, false),
            (1, 300, true),
            (1, 301, false),
            (2, 400, true),
        ];
        for (key, at, want) in table {
            assert_eq!(th.allow(key, t0 + ms(at)), want, "key {key} at {at} ms");
        }
        th.forget(|k| *k == 1);
        assert!(th.allow(1, t0 + ms(302)));
    }

    #[test]
    fn vp8_keyframe_detection() {
        // X=1 S=1 PID=0, I=1 with 15-bit picture id, then P=0 (keyframe).
        assert!(starts_keyframe(
            Codec::Vp8,
            &[0x90, 0x80, 0x80, 0x01, 0x10, 0, 0]
        ));
        // Same but P=1 (interframe).
        assert!(!starts_keyframe(
            Codec::Vp8,
            &[0x90, 0x80, 0x80, 0x01, 0x11, 0, 0]
        ));
        // Continuation packet (S=0).
        assert!(!starts_keyframe(
            Codec::Vp8,
            &[0x80, 0x80, 0x80, 0x01, 0x10, 0, 0]
        ));
        // Garbage and empty payloads never count.
        assert!(!starts_keyframe(Codec::Vp8, &[]));
        assert!(!starts_keyframe(Codec::Vp8, &[0x90]));
        assert!(!starts_keyframe(
            Codec::Opus,
            &[0x90, 0x80, 0x80, 0x01, 0x10]
        ));
    }

    #[test]
    fn h264_and_vp9_keyframe_detection() {
        // STAP-A with SPS and PPS
        assert!(starts_keyframe(
            Codec::H264,
            &[0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce]
        ));
        // single IDR NAL; FU-A start of an IDR
        assert!(starts_keyframe(Codec::H264, &[0x65, 1, 2]));
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 1, 2]));
        // FU-A middle of an IDR, and a non-IDR slice
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 1, 2]));
        assert!(!starts_keyframe(Codec::H264, &[0x41, 1, 2]));
        assert!(!starts_keyframe(Codec::H264, &[]));
        // VP9: P=0 and B=1; P=0 but not the first packet; P=1
        assert!(starts_keyframe(Codec::Vp9, &[0x88, 0x80, 1]));
        assert!(!starts_keyframe(Codec::Vp9, &[0x84, 0x80, 1]));
        assert!(!starts_keyframe(Codec::Vp9, &[0xc8, 0x80, 1]));
        assert!(!starts_keyframe(Codec::Vp9, &[]));
    }
}

//! Synthetic media for simulated publishers: well-formed RTP payloads at configured rates,
//! each carrying a *stamp* (send time on a shared clock, layer index) that subscribers read
//! back to measure one-way latency and which layer they got.
//!
//! Payload layout: codec header | 0x5B | send time µs (u64, big-endian) | layer | filler.
//! The SFU rewrites RTP headers and at most the VP8 picture id / TL0PICIDX in place, so
//! the stamp arrives at the same offset it was written.

use str0m::format::Codec;

/// One video encoding: optional rid, target bitrate and frame rate.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    pub rid: Option<String>,
    pub kbps: u32,
    pub fps: f32,
}

impl LayerSpec {
    /// Bytes per delta frame at the target rate.
    pub fn frame_bytes(&self) -> usize {
        ((self.kbps as f64 * 1000.0 / 8.0) / self.fps.max(0.1) as f64)
            .round()
            .max(64.0) as usize
    }
}

/// Largest payload written (fits a 1,200-byte MTU with headers and SRTP).
pub const MAX_PAYLOAD: usize = 1_100;
/// Keyframes are this many times a delta frame.
pub const KEYFRAME_FACTOR: usize = 3;
const MAGIC: u8 = 0x5B;
/// Bytes of VP8 frame header written after the descriptor: the 3-byte frame tag, and on
/// keyframes the start code and dimensions (RFC 6386 §9.1); zero padding otherwise, so
/// the stamp sits at one offset. Rivals that parse keyframes (Janus) accept these.
const VP8_HEADER: usize = 10;
pub const STAMP_LEN: usize = 10;

/// What a subscriber reads back from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Microseconds since the shared clock origin when the publisher wrote the packet.
    pub sent_us: u64,
    /// Simulcast layer index (0 = lowest); 255 for audio.
    pub layer: u8,
}

fn put_stamp(p: &mut Vec<u8>, s: Stamp) {
    p.push(MAGIC);
    p.extend_from_slice(&s.sent_us.to_be_bytes());
    p.push(s.layer);
}

fn stamp_offset(codec: Codec, payload: &[u8]) -> Option<usize> {
    match codec {
        // 4 descriptor bytes, 2 more with temporal fields (L and T set)
        Codec::Vp8 => Some(if payload.get(1)? & 0x60 == 0x60 { 6 } else { 4 } + VP8_HEADER),
        Codec::Vp9 => Some(3),
        Codec::H264 => (payload.first()? & 0x1f == 28).then_some(2),
        Codec::Opus => Some(0),
        _ => None,
    }
}

/// Read the stamp of a payload written by [`video_payload`] or [`audio_payload`].
pub fn read_stamp(codec: Codec, payload: &[u8]) -> Option<Stamp> {
    let at = stamp_offset(codec, payload)?;
    let s = payload.get(at..at + STAMP_LEN)?;
    if s[0] != MAGIC {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&s[1..9]);
    Some(Stamp {
        sent_us: u64::from_be_bytes(t),
        layer: s[9],
    })
}

/// An Opus-sized audio payload (80 bytes, about 32 kbps at 50 packets/s).
pub fn audio_payload(stamp: Stamp) -> Vec<u8> {
    let mut p = Vec::with_capacity(80);
    put_stamp(&mut p, stamp);
    p.resize(80, 0xF8);
    p
}

/// A VP8 temporal layer mark (RFC 7741 §4.2): TL0PICIDX, TID and the layer sync bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    pub tl0: u8,
    pub tid: u8,
    pub sync: bool,
}

/// The L1T3 pattern libwebrtc uses: frame i of a cycle of 4 is T0, T2, T1, T2; the first
/// T1 and T2 frames after a T0 are sync frames (they reference only T0). `tl0` counts T0
/// frames.
pub fn l1t3(frame: u64) -> Temporal {
    let tid = match frame % 4 {
        0 => 0,
        2 => 1,
        _ => 2,
    };
    Temporal {
        tl0: (frame / 4) as u8,
        tid,
        sync: frame % 4 == 1 || frame % 4 == 2,
    }
}

/// Packet `index` of a video frame of `size` bytes cut into `count` packets; for VP8,
/// `temporal` adds the temporal-layer fields to the descriptor.
///
/// - VP8 (RFC 7741): descriptor X=1, S on the first packet, 15-bit picture id; then the
///   VP8 header byte with P=0 on keyframes.
/// - H.264 (RFC 6184): keyframes open with a STAP-A carrying SPS and PPS, then FU-A
///   fragments of the IDR; delta frames are FU-A fragments of a non-IDR slice.
/// - VP9 (RFC 9628): descriptor with I, P (clear on keyframes), B and E, 15-bit picture id.
#[allow(clippy::too_many_arguments)]
pub fn video_payload(
    codec: Codec,
    key: bool,
    index: usize,
    count: usize,
    pic: u16,
    size: usize,
    stamp: Stamp,
    temporal: Option<Temporal>,
) -> Vec<u8> {
    let first = index == 0;
    let last = index + 1 == count;
    let mut p = Vec::with_capacity(size.max(16));
    match codec {
        Codec::H264 if key && first => {
            p.extend_from_slice(&[0x78, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 0, 3, 0x68, 0xce, 0x3c]);
            return p;
        }
        Codec::H264 => {
            let (nal, start) = if key { (5, index == 1) } else { (1, first) };
            p.push(0x60 | 28); // FU-A indicator, NRI=3
            p.push(nal | if start { 0x80 } else { 0 } | if last { 0x40 } else { 0 });
        }
        Codec::Vp9 => {
            let b0 = 0x80
                | if key { 0 } else { 0x40 }
                | if first { 0x08 } else { 0 }
                | if last { 0x04 } else { 0 };
            p.extend_from_slice(&[b0, 0x80 | (pic >> 8) as u8, pic as u8]);
        }
        _ => {
            p.push(if first { 0x90 } else { 0x80 });
            p.push(if temporal.is_some() { 0xe0 } else { 0x80 }); // I, and L + T
            p.push(0x80 | (pic >> 8) as u8);
            p.push(pic as u8);
            if let Some(t) = temporal {
                p.push(t.tl0);
                p.push((t.tid << 6) | if t.sync { 0x20 } else { 0 });
            }
            // frame tag: P (0 = key), version 0, show_frame, first partition size 64
            let tag: u32 = (64 << 5) | (1 << 4) | u32::from(!key);
            p.extend_from_slice(&tag.to_le_bytes()[..3]);
            if key && first {
                let (w, h) = vp8_size(stamp.layer);
                p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                p.extend_from_slice(&w.to_le_bytes());
                p.extend_from_slice(&h.to_le_bytes());
            } else {
                p.extend_from_slice(&[0; VP8_HEADER - 3]);
            }
        }
    }
    put_stamp(&mut p, stamp);
    p.resize(size.max(p.len()), 0xAB);
    p
}

/// A STUN binding request (RFC 8489) naming `user` in USERNAME, without integrity: what
/// an attacker who learned a ufrag can send. `id` varies the transaction id.
pub fn stun_binding_request(user: &str, id: u16) -> Vec<u8> {
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
    attr.extend_from_slice(user.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[(id >> 8) as u8, id as u8, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
    m.extend_from_slice(&attr);
    m
}

/// Picture size written in synthetic VP8 keyframes per layer: 320×180, 640×360, 1280×720.
fn vp8_size(layer: u8) -> (u16, u16) {
    match layer {
        0 => (320, 180),
        1 => (640, 360),
        _ => (1280, 720),
    }
}

/// How a frame of `bytes` is cut: (packets, bytes per packet).
pub fn packetize(bytes: usize) -> (usize, usize) {
    let n = bytes.div_ceil(MAX_PAYLOAD).max(1);
    (n, bytes.div_ceil(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyframe::starts_keyframe;

    #[test]
    fn payloads_are_well_formed_and_stamped() {
        let st = Stamp {
            sent_us: 123_456_789,
            layer: 2,
        };
        for codec in [Codec::Vp8, Codec::Vp9, Codec::H264] {
            for key in [true, false] {
                let n = 3;
                for i in 0..n {
                    let p = video_payload(codec, key, i, n, 300, 900, st, None);
                    let starts = starts_keyframe(codec, &p);
                    // H.264: the STAP-A (SPS) and the IDR's first fragment both qualify.
                    let want = key && (i == 0 || (codec == Codec::H264 && i == 1));
                    assert_eq!(starts, want, "{codec:?} key={key} packet {i}");
                    let is_stap = codec == Codec::H264 && key && i == 0;
                    assert_eq!(
                        read_stamp(codec, &p),
                        (!is_stap).then_some(st),
                        "{codec:?} key={key} packet {i}"
                    );
                    if !is_stap {
                        assert_eq!(p.len(), 900);
                    }
                }
            }
        }
        let v = video_payload(Codec::Vp8, true, 0, 1, 0x1234, 500, st, None);
        let d = str0m::rtp::Vp8Descriptor::parse(&v).unwrap();
        assert_eq!(d.picture_id(), Some(0x1234));
        // RFC 6386 keyframe: start code and 1280×720 (layer 2) after the frame tag
        assert_eq!(&v[7..14], &[0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
        assert_eq!(read_stamp(Codec::Opus, &audio_payload(st)), Some(st));
        assert_eq!(
            read_stamp(Codec::Opus, &[0; 80]),
            None,
            "no magic, no stamp"
        );
        assert_eq!(
            read_stamp(Codec::Vp8, &[0x90, 0x80]),
            None,
            "short payloads never panic"
        );
    }

    #[test]
    fn frame_sizes_follow_the_bitrate() {
        let l = LayerSpec {
            rid: Some("f".into()),
            kbps: 1_700,
            fps: 30.0,
        };
        assert_eq!(l.frame_bytes(), 7_083);
        assert_eq!(packetize(7_083), (7, 1_012));
        assert_eq!(packetize(100), (1, 100));
        let q = LayerSpec {
            rid: Some("q".into()),
            kbps: 150,
            fps: 7.5,
        };
        assert_eq!(q.frame_bytes(), 2_500);
    }
}

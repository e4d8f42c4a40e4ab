//! VP8 payload descriptors (RFC 7741) and keyframe headers (RFC 6386): what the
//! forwarding path reads of a VP8 packet, and the descriptor patch that keeps picture ids
//! continuous for a subscriber.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// The VP8 temporal layer of a packet (RFC 7741 §4.2: TID and the layer-sync bit Y), when
/// its descriptor carries one.
pub fn vp8_temporal(payload: &[u8]) -> Option<(u8, bool)> {
    let b0 = *payload.first()?;
    if b0 & 0x80 == 0 {
        return None;
    }
    let x = *payload.get(1)?;
    if x & 0x20 == 0 {
        return None; // no T bit
    }
    let mut i = 2;
    if x & 0x80 != 0 {
        i += if payload.get(i)? & 0x80 != 0 { 2 } else { 1 };
    }
    if x & 0x40 != 0 {
        i += 1;
    }
    let t = *payload.get(i)?;
    Some((t >> 6, t & 0x20 != 0))
}

/// Whether a VP8 packet starts a frame (S bit with partition index 0).
pub fn vp8_frame_start(payload: &[u8]) -> bool {
    payload
        .first()
        .is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0)
}

/// The picture size in a VP8 keyframe's first packet (RFC 7741 descriptor, then the
/// RFC 6386 frame tag, start code 9d 01 2a, 14-bit width and height).
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let b0 = *payload.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            i += if payload.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    let h = payload.get(i..i + 10)?;
    if h[0] & 0x01 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    Some((w, ht))
}

/// The descriptor patch that gives a forwarded packet the subscriber's picture id and
/// TL0PICIDX (`pic`, `tl0`), when they differ from the packet's own; None when nothing
/// needs patching. A 7-bit picture id field keeps the low bits (RFC 7741 §4.2, M=0).
pub fn continuity_patch(d: &Vp8Descriptor, pic: Option<u16>, tl0: Option<u8>) -> Option<Vp8Patch> {
    if pic == d.picture_id() && tl0 == d.tl0_pic_idx() {
        return None;
    }
    let build = |pic: Option<u16>, tl0: Option<u8>| {
        let mut b = d.patch();
        if let Some(p) = pic {
            b = b.picture_id(p);
        }
        if let Some(t) = tl0 {
            b = b.tl0_pic_idx(t);
        }
        b.build()
    };
    build(pic, tl0)
        .or_else(|_| build(pic.map(|p| p & 0x7f), None))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_sizes() {
        // X, I (15-bit picture id), then tag (P=0), start code, 1280 × 720
        let p = [
            0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02,
            0xAB,
        ];
        assert_eq!(vp8_keyframe_size(&p), Some((1280, 720)));
        // an interframe, a short payload, garbage
        let mut q = p;
        q[4] |= 1;
        assert_eq!(vp8_keyframe_size(&q), None);
        assert_eq!(vp8_keyframe_size(&p[..9]), None);
        assert_eq!(vp8_keyframe_size(&[0xff; 3]), None);
        assert_eq!(vp8_keyframe_size(&[]), None);
    }
}

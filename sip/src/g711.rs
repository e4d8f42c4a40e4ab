//! G.711 (ITU-T G.711, 1988): 8-bit μ-law (PCMU, RTP payload type 0) and A-law (PCMA,
//! payload type 8) companding of 16-bit linear PCM at 8 kHz, as in the reference
//! implementation of the recommendation (segment search, no tables needed at run time).

/// μ-law bias added before the segment search (33 × 4: the 14-bit bias of G.711 in 16-bit
/// units).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude μ-law represents, so that the bias cannot overflow the top segment.
const ULAW_CLIP: i32 = 32_635;

/// One linear sample to μ-law.
pub fn ulaw_encode(pcm: i16) -> u8 {
    let x = i32::from(pcm);
    let (sign, magnitude) = if x < 0 { (0x80, -x) } else { (0, x) };
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    // The segment is the position of the highest set bit above bit 7 (biased ≥ 0x84).
    let exponent = (31 - (biased as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (biased >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// One μ-law code to linear.
pub fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// The top of each A-law segment, in 13-bit magnitude units.
const ALAW_SEGMENT_END: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

/// One linear sample to A-law.
pub fn alaw_encode(pcm: i16) -> u8 {
    let x = i32::from(pcm) >> 3; // 13 bits
    let (mask, magnitude) = if x >= 0 { (0xd5, x) } else { (0x55, -x - 1) };
    let Some(segment) = ALAW_SEGMENT_END.iter().position(|end| magnitude <= *end) else {
        return (0x7f ^ mask) as u8;
    };
    let shift = if segment < 2 { 1 } else { segment as i32 };
    let code = ((segment as i32) << 4) | ((magnitude >> shift) & 0x0f);
    (code ^ mask) as u8
}

/// One A-law code to linear.
pub fn alaw_decode(code: u8) -> i16 {
    let a = i32::from(code ^ 0x55);
    let mut t = (a & 0x0f) << 4;
    let segment = (a & 0x70) >> 4;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        s => t = (t + 0x108) << (s - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// The two G.711 laws, as negotiated (`PCMU/8000`, `PCMA/8000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Ulaw,
    Alaw,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }

    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        let f = match self {
            Law::Ulaw => ulaw_encode,
            Law::Alaw => alaw_encode,
        };
        out.extend(pcm.iter().map(|s| f(*s)));
    }

    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        let f = match self {
            Law::Ulaw => ulaw_decode,
            Law::Alaw => alaw_decode,
        };
        out.extend(codes.iter().map(|c| f(*c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_codes() {
        // (linear, μ-law, A-law) from the reference implementation.
        for (pcm, u, a) in [
            (0i16, 0xffu8, 0xd5u8),
            (-1, 0x7f, 0x55),
            (8, 0xfe, 0xd5),
            (1_000, 0xce, 0xfa),
            (-1_000, 0x4e, 0x7a),
            (32_767, 0x80, 0xaa),
            (-32_768, 0x00, 0x2a),
        ] {
            assert_eq!(ulaw_encode(pcm), u, "μ-law of {pcm}");
            assert_eq!(alaw_encode(pcm), a, "A-law of {pcm}");
        }
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32_256);
        assert_eq!(alaw_decode(0x2a), -32_256);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for c in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A-law {c:#04x}");
            // μ-law has two zeros (0x7f is "negative zero"): both decode to 0.
            if c != 0x7f {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c, "μ-law {c:#04x}");
            }
        }
    }

    proptest! {
        /// The quantisation error stays within half a step of the sample's segment
        /// (steps double per segment: relative error about 3 %, at least a few units).
        #[test]
        fn quantisation_error_is_bounded(x in i16::MIN..=i16::MAX) {
            let x32 = i32::from(x).clamp(-ULAW_CLIP, ULAW_CLIP);
            let bound = x32.abs() / 16 + 16;
            let u = i32::from(ulaw_decode(ulaw_encode(x)));
            prop_assert!((u - x32).abs() <= bound, "μ-law {x} -> {u}");
            let a = i32::from(alaw_decode(alaw_encode(x)));
            prop_assert!((a - i32::from(x)).abs() <= i32::from(x).abs() / 16 + 16, "A-law {x} -> {a}");
        }
    }
}

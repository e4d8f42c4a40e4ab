//! Opus on the gateway's room side: 8 kHz mono, 20 ms frames, the VoIP application. The
//! codec is `opus-rs`, a pure-Rust port of libopus 1.6 (ADR 0008): it builds with cargo
//! alone (no cmake, no pkg-config, no libopus), so `cargo run -p server` works on a machine
//! with nothing but Rust and a C compiler.
//!
//! The room's Opus comes from other participants: a packet that makes the decoder panic
//! (a bug in the port) costs that one frame and a fresh decoder, never the call.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Samples a second.
const RATE: i32 = 8_000;
/// Samples in one 20 ms frame.
const FRAME: usize = 160;
/// The longest Opus packet: 120 ms.
const MAX_PACKET_SAMPLES: usize = 960;
/// What the encoder aims at: narrowband speech.
const BITRATE: i32 = 16_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("opus: {0}")]
    Codec(&'static str),
    #[error("opus: the decoder failed on a packet (a fresh one takes over)")]
    Panicked,
}

/// The phone's audio into the room.
pub struct Encoder(opus_rs::OpusEncoder);

impl Encoder {
    pub fn new() -> Result<Self, OpusError> {
        let mut e = opus_rs::OpusEncoder::new(RATE, 1, opus_rs::Application::Voip)
            .map_err(OpusError::Codec)?;
        e.bitrate_bps = BITRATE;
        Ok(Encoder(e))
    }

    /// One 20 ms frame (160 samples) into `out`: the packet's length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        self.0.encode_i16(pcm, FRAME, out).map_err(OpusError::Codec)
    }
}

/// One room participant's audio, for the phone's mix.
pub struct Decoder {
    inner: opus_rs::OpusDecoder,
    pcm: Vec<f32>,
}

impl Decoder {
    pub fn new() -> Result<Self, OpusError> {
        Ok(Decoder {
            inner: opus_rs::OpusDecoder::new(RATE, 1).map_err(OpusError::Codec)?,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
        })
    }

    /// Decode `packet` (None: it was lost, conceal one 20 ms frame) into `out`: the
    /// number of samples written.
    pub fn decode(&mut self, packet: Option<&[u8]>, out: &mut [i16]) -> Result<usize, OpusError> {
        let (input, frame) = match packet {
            Some(p) => (p, MAX_PACKET_SAMPLES),
            None => (&[][..], FRAME),
        };
        let (inner, pcm) = (&mut self.inner, &mut self.pcm);
        let decoded = catch_unwind(AssertUnwindSafe(|| inner.decode(input, frame, pcm)));
        let n = match decoded {
            Ok(r) => r.map_err(OpusError::Codec)?,
            Err(_) => {
                *self = Decoder::new()?;
                return Err(OpusError::Panicked);
            }
        };
        let n = n.min(out.len());
        for (o, s) in out.iter_mut().zip(&self.pcm[..n]) {
            *o = (s * 32_768.0).clamp(-32_768.0, 32_767.0) as i16;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, from: usize) -> Vec<i16> {
        (from..from + FRAME)
            .map(|i| {
                (8_000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8_000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_tone_survives_encode_and_decode_and_losses_are_concealed() {
        let (mut enc, mut dec) = (Encoder::new().unwrap(), Decoder::new().unwrap());
        let mut out = [0i16; FRAME];
        let mut energy = 0f64;
        for i in 0..50 {
            let mut packet = [0u8; 400];
            let n = enc.encode(&tone(440.0, i * FRAME), &mut packet).unwrap();
            assert!(n > 0 && n < 200, "a narrowband packet: {n} bytes");
            let got = dec.decode(Some(&packet[..n]), &mut out).unwrap();
            assert_eq!(got, FRAME);
            if i > 10 {
                energy += out.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            }
        }
        assert!(
            energy / (39.0 * FRAME as f64) > 1e6,
            "the tone comes through"
        );
        assert_eq!(
            dec.decode(None, &mut out),
            Ok(FRAME),
            "a lost frame is concealed"
        );
    }

    #[test]
    fn junk_is_an_error_or_a_frame_never_a_panic() {
        let mut dec = Decoder::new().unwrap();
        let mut out = [0i16; FRAME];
        let mut x: u32 = 1;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 24) as u8
                })
                .collect();
            let _ = dec.decode(Some(&junk), &mut out);
        }
        assert!(
            dec.decode(None, &mut out).is_ok(),
            "still decoding after junk"
        );
    }
}

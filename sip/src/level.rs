//! The audio level of a frame as RFC 6464 carries it: the frame's RMS in -dBov, 0 (full
//! scale) to 127 (silence or quieter), so that phones are ranked by the room's
//! active-speaker logic like every WebRTC publisher.

/// RFC 6464 level of a frame of 16-bit PCM.
pub fn audio_level(pcm: &[i16]) -> u8 {
    if pcm.is_empty() {
        return 127;
    }
    let energy: f64 = pcm.iter().map(|s| f64::from(*s).powi(2)).sum();
    let rms = (energy / pcm.len() as f64).sqrt() / 32_768.0;
    if rms <= 0.0 {
        return 127;
    }
    (-20.0 * rms.log10()).round().clamp(0.0, 127.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8_000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn levels() {
        assert_eq!(audio_level(&[]), 127);
        assert_eq!(audio_level(&[0; 160]), 127);
        assert_eq!(audio_level(&[i16::MIN; 160]), 0, "full-scale square wave");
        // A full-scale sine is 3 dB below a square wave; each factor 10 is 20 dB.
        assert_eq!(audio_level(&sine(32_767.0, 160)), 3);
        assert_eq!(audio_level(&sine(3_276.7, 160)), 23);
        assert_eq!(audio_level(&sine(327.67, 160)), 43);
        assert_eq!(audio_level(&[1, -1, 1, -1]), 90, "one LSB: about -90 dBov");
    }
}

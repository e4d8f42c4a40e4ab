//! How good a phone's incoming audio is: packet loss (frames the jitter buffer had to
//! conceal), interarrival jitter (RFC 3550 §6.4.1), and a MOS-like score from them (the
//! ITU-T G.107 E-model, simplified: G.711 with packet-loss concealment, no echo, delay
//! from the jitter buffer's depth).
//!
//! Sans-IO: arrival times come from the caller, in milliseconds.

/// RTP clock units per millisecond on a G.711 leg.
const UNITS_PER_MS: f64 = 8.0;
/// G.711's packet-loss robustness with concealment (G.113 Appendix I: Bpl = 25.1 with
/// PLC; 4.3 without). We conceal one frame by repetition, then silence: in between.
const BPL: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Report {
    /// Lost frames over expected ones, 0 to 1.
    pub loss: f64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// 1 (bad) to about 4.4 (G.711 at its best).
    pub mos: f64,
}

#[derive(Debug, Default)]
pub struct Quality {
    received: u64,
    lost: u64,
    /// RFC 3550 jitter estimate, in RTP units (×16 kept as a float).
    jitter: f64,
    /// The previous packet's transit time (arrival − RTP timestamp), in RTP units.
    last_transit: Option<f64>,
}

impl Quality {
    /// A packet with RTP `timestamp` arrived at `now_ms`.
    pub fn arrival(&mut self, timestamp: u32, now_ms: u64) {
        let transit = now_ms as f64 * UNITS_PER_MS - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs();
            // A jump of more than 10 s is a new stream or a timestamp reset, not jitter.
            if d < 80_000.0 {
                self.jitter += (d - self.jitter) / 16.0;
            }
        }
        self.last_transit = Some(transit);
    }

    /// The jitter buffer played a frame (`lost`: concealed it).
    pub fn frame(&mut self, lost: bool) {
        if lost {
            self.lost += 1;
        } else {
            self.received += 1;
        }
    }

    /// A new stream from the phone: the transit times start over.
    pub fn restart(&mut self) {
        self.last_transit = None;
    }

    pub fn report(&self, buffer_ms: f64) -> Report {
        let expected = self.received + self.lost;
        let loss = if expected == 0 {
            0.0
        } else {
            self.lost as f64 / expected as f64
        };
        let jitter_ms = self.jitter / UNITS_PER_MS;
        Report {
            loss,
            jitter_ms,
            mos: mos(loss, buffer_ms + 2.0 * jitter_ms),
        }
    }
}

/// The E-model's R factor turned into a MOS, for G.711 (Ie = 0) with `loss` (0–1) and a
/// one-way delay of `delay_ms` on our side.
pub fn mos(loss: f64, delay_ms: f64) -> f64 {
    let ppl = loss * 100.0;
    let ie_eff = 95.0 * ppl / (ppl + BPL);
    // G.107's delay impairment, simplified: about 0.024/ms, and more past 177 ms.
    let id = 0.024 * delay_ms
        + if delay_ms > 177.3 {
            0.11 * (delay_ms - 177.3)
        } else {
            0.0
        };
    let r = (93.2 - ie_eff - id).clamp(0.0, 100.0);
    (1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_has_no_jitter_and_a_late_packet_some() {
        let mut q = Quality::default();
        for i in 0..100u32 {
            q.arrival(i * 160, 1_000 + u64::from(i) * 20);
            q.frame(false);
        }
        assert!(q.report(40.0).jitter_ms < 0.01);
        // Every other packet 10 ms late: RFC 3550's estimate converges to about 10 ms.
        let mut q = Quality::default();
        for i in 0..400u32 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            q.arrival(i * 160, 1_000 + u64::from(i) * 20 + late);
        }
        let j = q.report(40.0).jitter_ms;
        assert!((9.0..11.0).contains(&j), "{j}");
    }

    #[test]
    fn loss_lowers_the_score() {
        let mut q = Quality::default();
        for i in 0..100 {
            q.frame(i % 10 == 0);
        }
        let r = q.report(40.0);
        assert!((r.loss - 0.1).abs() < 1e-9);
        let clean = mos(0.0, 40.0);
        assert!(clean > 4.3 && clean <= 4.5, "{clean}");
        assert!(mos(0.01, 40.0) < clean && mos(0.01, 40.0) > 3.9);
        assert!(r.mos < 3.0, "{}", r.mos);
        assert!(mos(0.5, 40.0) < 1.5);
        assert!(mos(0.0, 400.0) < mos(0.0, 40.0), "delay costs too");
        assert_eq!(Quality::default().report(40.0).loss, 0.0);
    }
}

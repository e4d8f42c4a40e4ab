//! RTP header rewriting for one outgoing stream (RFC 3550 §5.1, RFC 7741 §4.2).
//!
//! An outgoing stream towards a subscriber is fed by one source at a time: one simulcast
//! layer (an SSRC) of one publisher's track. When the source changes — a layer switch, or
//! the publisher's encoder restarting with a new SSRC — the subscriber must still see one
//! continuous stream: sequence numbers that go on from where they were, timestamps that
//! advance by the wall-clock time that passed, and VP8 picture ids / TL0PICIDX that follow
//! on. The [`Rewriter`] keeps one offset per field for the current source, fixed at the
//! moment of the switch (which must happen on a keyframe of the new source for video).
//!
//! Retransmissions arrive late with their original sequence number: they map through the
//! same offset, so they fill the hole they left. Packets of an earlier source, or of the
//! current source from before the switch point, would collide with numbers already used
//! and are refused.
//!
//! Packets dropped on purpose within a source (frames of a VP8 temporal layer the
//! subscriber does not get) are [`Rewriter::skip`]ped: later packets move down by one
//! sequence number per dropped packet and one picture id per dropped frame, so the
//! subscriber sees no hole. Late packets map through the offsets in force at their
//! sequence number (a short history of them is kept).

use std::time::Instant;

/// The parts of an incoming packet the rewriter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    pub ssrc: u32,
    /// Extended (rollover-free) sequence number.
    pub seq: u64,
    pub ts: u32,
    /// VP8 picture id (15-bit space), when the payload carries one.
    pub pic: Option<u16>,
    /// VP8 TL0PICIDX, when the payload carries one.
    pub tl0: Option<u8>,
}

/// Header values for the outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutHeader {
    pub seq: u64,
    pub ts: u32,
    pub pic: Option<u16>,
    pub tl0: Option<u8>,
}

/// Why the rewriter refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No source has been switched to yet.
    NoSource,
    /// The packet belongs to another source than the current one.
    OtherSource,
    /// The packet is from the current source but precedes the switch point.
    BeforeSwitch,
    /// A late packet older than the offset history.
    TooOld,
}

/// How many offset changes (skips) are remembered for late packets.
const HISTORY: usize = 128;

const PIC_MOD: u16 = 1 << 15;

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    first_seq: u64,
    ts_offset: u32, // out = in + offset (wrapping)
    tl0_offset: u8, // out = in + offset (wrapping)
    /// Sequence-number and picture-id offsets, piecewise by incoming sequence number:
    /// (from_seq, seq_offset: out = in + offset wrapping, pic_offset: mod 2^15). The last
    /// segment is in force; earlier ones serve late packets. Starts with one segment.
    segments: std::collections::VecDeque<(u64, u64, u16)>,
    /// The newest incoming sequence number seen (forwarded or skipped).
    highest: u64,
    /// The picture id of the last skipped frame (a frame's packets share it).
    skipped_pic: Option<u16>,
}

impl Source {
    /// The offsets in force for incoming `seq`.
    fn offsets(&self, seq: u64) -> Result<(u64, u16), Refused> {
        if seq < self.first_seq {
            return Err(Refused::BeforeSwitch);
        }
        match self.segments.iter().rev().find(|s| s.0 <= seq) {
            Some(&(_, so, po)) => Ok((so, po)),
            None => Err(Refused::TooOld),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    ts: u32,
    at: Instant,
    pic: Option<u16>,
    tl0: Option<u8>,
}

/// Continuity state of one outgoing stream. See the module docs.
#[derive(Debug, Clone)]
pub struct Rewriter {
    clock_rate: u32,
    initial_seq: u64,
    initial_ts: u32,
    source: Option<Source>,
    last: Option<Last>,
}

impl Rewriter {
    /// `initial_seq` and `initial_ts` are the first values put on the wire (RFC 3550 asks
    /// for random ones: the shard draws them from its seeded generator). `initial_seq`
    /// must be below 65,536 so that the SRTP rollover counter starts at zero.
    pub fn new(clock_rate: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            initial_seq: initial_seq as u64,
            initial_ts,
            source: None,
            last: None,
        }
    }

    /// The SSRC of the current source, if any.
    pub fn source_ssrc(&self) -> Option<u32> {
        self.source.as_ref().map(|s| s.ssrc)
    }

    /// Drop a packet of the current source on purpose, without leaving a hole. Only
    /// packets newer than any seen can be skipped (false otherwise: a late packet of a
    /// dropped layer is simply not forwarded).
    pub fn skip(&mut self, h: &InHeader) -> bool {
        let Some(src) = self.source.as_mut() else {
            return false;
        };
        if src.ssrc != h.ssrc || h.seq <= src.highest {
            return false;
        }
        let Some(&(from, so, po)) = src.segments.back() else {
            return false;
        };
        let po = match h.pic {
            Some(p) if src.skipped_pic != Some(p) => {
                src.skipped_pic = Some(p);
                (po + PIC_MOD - 1) % PIC_MOD
            }
            _ => po,
        };
        let seg = (h.seq + 1, so.wrapping_sub(1), po);
        if from == h.seq {
            // Consecutive skips (one frame's packets): no packet lies in between.
            if let Some(last) = src.segments.back_mut() {
                *last = seg;
            }
        } else {
            if src.segments.len() == HISTORY {
                src.segments.pop_front();
            }
            src.segments.push_back(seg);
        }
        src.highest = h.seq;
        true
    }

    /// Make `h` (arriving at `now`) the first packet of a new current source.
    pub fn switch_to(&mut self, h: &InHeader, now: Instant) -> OutHeader {
        let (out_seq, out_ts, out_pic, out_tl0) = match self.last {
            None => (self.initial_seq, self.initial_ts, h.pic, h.tl0),
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                let ticks =
                    (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000).max(1);
                (
                    last.seq + 1,
                    last.ts.wrapping_add(ticks as u32),
                    h.pic.map(|_| last.pic.map_or(0, |p| (p + 1) % PIC_MOD)),
                    h.tl0.map(|_| last.tl0.map_or(0, |t| t.wrapping_add(1))),
                )
            }
        };
        let pic_offset = match (h.pic, out_pic) {
            (Some(i), Some(o)) => (o + PIC_MOD - i % PIC_MOD) % PIC_MOD,
            _ => 0,
        };
        self.source = Some(Source {
            ssrc: h.ssrc,
            first_seq: h.seq,
            ts_offset: out_ts.wrapping_sub(h.ts),
            tl0_offset: match (h.tl0, out_tl0) {
                (Some(i), Some(o)) => o.wrapping_sub(i),
                _ => 0,
            },
            segments: std::collections::VecDeque::from([(
                h.seq,
                out_seq.wrapping_sub(h.seq),
                pic_offset,
            )]),
            highest: h.seq,
            skipped_pic: None,
        });
        self.last = None; // re-seeded below
        let out = OutHeader {
            seq: out_seq,
            ts: out_ts,
            pic: out_pic,
            tl0: out_tl0,
        };
        self.note(out, now);
        out
    }

    /// Rewrite a packet of the current source.
    pub fn rewrite(&mut self, h: &InHeader, now: Instant) -> Result<OutHeader, Refused> {
        let src = self.source.as_mut().ok_or(Refused::NoSource)?;
        if src.ssrc != h.ssrc {
            return Err(Refused::OtherSource);
        }
        let (seq_offset, pic_offset) = src.offsets(h.seq)?;
        src.highest = src.highest.max(h.seq);
        let out = OutHeader {
            seq: h.seq.wrapping_add(seq_offset),
            ts: h.ts.wrapping_add(src.ts_offset),
            pic: h.pic.map(|p| (p % PIC_MOD + pic_offset) % PIC_MOD),
            tl0: h.tl0.map(|t| t.wrapping_add(src.tl0_offset)),
        };
        self.note(out, now);
        Ok(out)
    }

    fn note(&mut self, out: OutHeader, now: Instant) {
        let newer = self.last.is_none_or(|l| out.seq > l.seq);
        if newer {
            let prev = self.last;
            self.last = Some(Last {
                seq: out.seq,
                ts: out.ts,
                at: now,
                pic: out.pic.or(prev.and_then(|p| p.pic)),
                tl0: out.tl0.or(prev.and_then(|p| p.tl0)),
            });
        }
    }
}

/// A 16-bit RTP sequence number extended to 64 bits next to the previous extended one
/// (None: the first of its stream).
pub fn extend_seq(prev: Option<u64>, seq: u16) -> u64 {
    let Some(prev) = prev else {
        return u64::from(seq);
    };
    let base = prev & !0xffff;
    let candidates = [base.wrapping_sub(0x1_0000), base, base + 0x1_0000];
    candidates
        .into_iter()
        .map(|b| b | u64::from(seq))
        .filter(|c| *c < (1 << 48))
        .min_by_key(|c| c.abs_diff(prev))
        .unwrap_or(u64::from(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn h(ssrc: u32, seq: u64, ts: u32) -> InHeader {
        InHeader {
            ssrc,
            seq,
            ts,
            pic: None,
            tl0: None,
        }
    }

    #[test]
    fn table_switch_and_forward() {
        let t0 = crate::test_clock::origin();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = Rewriter::new(90_000, 100, 5_000);
        assert_eq!(r.rewrite(&h(1, 10, 0), ms(0)), Err(Refused::NoSource));
        // (ssrc, seq, ts, at ms, switch?, expected seq, expected ts) — None = refused
        type Row = (u32, u64, u32, u64, bool, Option<(u64, u32)>);
        let table: &[Row] = &[
            (1, 10, 1_000, 0, true, Some((100, 5_000))),
            (1, 11, 1_000, 1, false, Some((101, 5_000))),
            (1, 13, 4_000, 33, false, Some((103, 8_000))),
            (1, 12, 1_000, 40, false, Some((102, 5_000))), // late retransmission fills the hole
            (1, 9, 1_000, 41, false, None),                // before the switch point
            (2, 500, 77, 50, false, None),                 // other source, no switch
            // switch 100 ms after the last newest packet (at 33 ms): ts advances 9,000 - 1,530
            (2, 500, 77, 133, true, Some((104, 17_000))),
            (2, 501, 3_077, 166, false, Some((105, 20_000))),
            (1, 14, 7_000, 167, false, None), // old source after the switch
        ];
        for (i, &(ssrc, seq, ts, at, switch, want)) in table.iter().enumerate() {
            let got = if switch {
                Ok(r.switch_to(&h(ssrc, seq, ts), ms(at)))
            } else {
                r.rewrite(&h(ssrc, seq, ts), ms(at))
            };
            assert_eq!(got.ok().map(|o| (o.seq, o.ts)), want, "row {i}");
        }
    }

    #[test]
    fn vp8_picture_id_and_tl0_follow_on_across_switch() {
        let t0 = crate::test_clock::origin();
        let mut r = Rewriter::new(90_000, 0, 0);
        let a = |seq, pic, tl0| InHeader {
            ssrc: 1,
            seq,
            ts: 0,
            pic: Some(pic),
            tl0: Some(tl0),
        };
        let b = |seq, pic, tl0| InHeader {
            ssrc: 2,
            seq,
            ts: 0,
            pic: Some(pic),
            tl0: Some(tl0),
        };
        assert_eq!(r.switch_to(&a(1, 32_766, 255), t0).pic, Some(32_766));
        let o = r.rewrite(&a(2, 32_767, 0), t0).unwrap();
        assert_eq!((o.pic, o.tl0), (Some(32_767), Some(0)));
        let o = r.switch_to(&b(90, 7, 40), t0);
        assert_eq!(
            (o.pic, o.tl0),
            (Some(0), Some(1)),
            "picture id wraps at 2^15"
        );
        let o = r.rewrite(&b(91, 8, 41), t0).unwrap();
        assert_eq!((o.pic, o.tl0), (Some(1), Some(2)));
    }

    #[test]
    fn skipped_packets_leave_no_hole() {
        let t0 = crate::test_clock::origin();
        let mut r = Rewriter::new(90_000, 1_000, 0);
        let p = |seq, pic| InHeader {
            ssrc: 1,
            seq,
            ts: 0,
            pic: Some(pic),
            tl0: Some(0),
        };
        assert!(!r.skip(&p(9, 1)), "no source yet");
        assert_eq!(r.switch_to(&p(10, 100), t0).seq, 1_000);
        assert!(r.skip(&p(11, 101)));
        assert!(r.skip(&p(12, 101))); // the same frame: one picture id
        let o = r.rewrite(&p(13, 102), t0).unwrap();
        assert_eq!((o.seq, o.pic), (1_001, Some(101)));
        assert!(!r.skip(&p(12, 101)), "not newer than what was seen");
        assert!(r.skip(&p(15, 103)));
        // 14 arrives late: the offsets before the skip of 15 apply.
        assert_eq!(r.rewrite(&p(14, 102), t0).unwrap().seq, 1_002);
        assert_eq!(r.rewrite(&p(16, 104), t0).unwrap().seq, 1_003);
        assert_eq!(r.rewrite(&p(16, 104), t0).unwrap().pic, Some(102)); // frames 101 and 103 dropped
        assert_eq!(r.rewrite(&p(9, 99), t0), Err(Refused::BeforeSwitch));
    }

    proptest! {
        /// Frames of temporal layers above a cap are skipped while the others are
        /// forwarded, some of them late: the forwarded packets get exactly consecutive
        /// sequence numbers and the forwarded frames consecutive picture ids.
        #[test]
        fn skips_keep_sequence_and_picture_ids_dense(
            frames in proptest::collection::vec((1usize..4, 0u8..3), 1..150),
            cap in 0u8..3,
            delays in proptest::collection::vec(0usize..4, 600),
            start_pic in 0u16..0x7fff,
        ) {
            let t0 = crate::test_clock::origin();
            let mut r = Rewriter::new(90_000, 500, 0);
            // (seq, pic, keep) in send order; the first frame is always kept (T0).
            let mut pkts = Vec::new();
            let mut seq = 100u64;
            for (i, (n, tid)) in frames.iter().enumerate() {
                let tid = if i == 0 { 0 } else { *tid };
                let pic = (start_pic + i as u16) % PIC_MOD;
                for _ in 0..*n {
                    pkts.push((seq, pic, tid <= cap));
                    seq += 1;
                }
            }
            // Forwarded packets (not the first) may arrive up to 3 places late.
            let mut order: Vec<(usize, (u64, u16, bool))> = pkts.iter().enumerate().map(|(i, p)| {
                let d = if p.2 && i > 0 { delays[i % delays.len()] } else { 0 };
                (i + d, *p)
            }).collect();
            order.sort_by_key(|(k, p)| (*k, p.0));
            let mut outs = Vec::new();
            let mut pics = std::collections::BTreeSet::new();
            for (_, (seq, pic, keep)) in order {
                let h = InHeader { ssrc: 7, seq, ts: 0, pic: Some(pic), tl0: None };
                if r.source_ssrc().is_none() {
                    let o = r.switch_to(&h, t0);
                    outs.push(o.seq);
                    pics.insert(o.pic.unwrap());
                } else if keep {
                    let o = r.rewrite(&h, t0).unwrap();
                    outs.push(o.seq);
                    pics.insert(o.pic.unwrap());
                } else {
                    // A dropped packet arriving after a later one cannot be skipped; the
                    // generator never delays dropped ones, so every skip succeeds.
                    prop_assert!(r.skip(&h));
                }
            }
            outs.sort_unstable();
            let want: Vec<u64> = (500..500 + outs.len() as u64).collect();
            prop_assert_eq!(outs, want);
            let kept_frames = frames.iter().enumerate().filter(|(i, (_, t))| *i == 0 || *t <= cap).count();
            prop_assert_eq!(pics.len(), kept_frames);
            // Dense modulo 2^15: counted from the first forwarded picture id, exactly
            // 0, 1, …, kept_frames − 1.
            let rel: std::collections::BTreeSet<u16> = pics.iter().map(|p| (p + PIC_MOD - start_pic) % PIC_MOD).collect();
            prop_assert_eq!(rel, (0..kept_frames as u16).collect::<std::collections::BTreeSet<u16>>());
        }

        /// Whatever series of sources and switches, every packet that is forwarded in
        /// order gets the next sequence number, and timestamps never go backwards.
        #[test]
        fn continuity_across_any_switches(
            steps in proptest::collection::vec((0u32..4, 1u64..5, 0u32..6000, 0u64..80, any::<bool>()), 1..200),
            start_seq in 0u16..u16::MAX, start_ts in any::<u32>(),
        ) {
            let t0 = crate::test_clock::origin();
            let mut r = Rewriter::new(90_000, start_seq, start_ts);
            let mut seqs = [1_000u64, 70_000, 5, 65_530];
            let mut tss = [0u32, u32::MAX - 10_000, 77, 1 << 31];
            let mut now = 0u64;
            let mut last: Option<OutHeader> = None;
            for (src, seq_step, ts_step, dt, switch) in steps {
                let i = src as usize;
                seqs[i] += seq_step;
                tss[i] = tss[i].wrapping_add(ts_step);
                now += dt;
                let hh = h(src, seqs[i], tss[i]);
                let out = if switch || r.source_ssrc().is_none() {
                    Some(r.switch_to(&hh, t0 + Duration::from_millis(now)))
                } else {
                    r.rewrite(&hh, t0 + Duration::from_millis(now)).ok()
                };
                if let Some(o) = out {
                    if let Some(l) = last {
                        prop_assert!(o.seq > l.seq);
                        // a switch continues at exactly +1; gaps only mirror source gaps
                        if switch { prop_assert_eq!(o.seq, l.seq + 1); }
                        let adv = o.ts.wrapping_sub(l.ts);
                        prop_assert!(adv < 1 << 31, "timestamp went backwards");
                        if switch { prop_assert!(adv >= 1); }
                    } else {
                        prop_assert_eq!(o.seq, start_seq as u64);
                        prop_assert_eq!(o.ts, start_ts);
                    }
                    last = Some(o);
                }
            }
        }
    }
}

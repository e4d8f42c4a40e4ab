//! The continuity rewriter under arbitrary sequences of switches, forwarded packets,
//! skipped packets and late arrivals (retransmissions): new packets get strictly
//! increasing numbers, never one used before; a switch continues at +1; timestamps never
//! go backwards across a switch; a retransmitted packet gets exactly the number it had.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sfu_core::rewrite::{InHeader, Rewriter};

#[derive(Arbitrary, Debug)]
enum Op {
    Switch { ssrc: u8, seq_step: u8, ts_step: u16, pic: Option<u16>, tl0: Option<u8> },
    Forward { seq_step: u8, ts_step: u16, pic_step: u8 },
    Skip { seq_step: u8, pic_step: u8 },
    Late { back: u8 },
    Wait { ms: u8 },
}

fuzz_target!(|input: (u16, u32, Vec<Op>)| {
    let (start_seq, start_ts, ops) = input;
    let t0 = Instant::now();
    let mut now = t0;
    let mut r = Rewriter::new(90_000, start_seq, start_ts);
    // the current source's newest incoming header
    let mut cur: Option<InHeader> = None;
    let mut last_out: Option<(u64, u32)> = None;
    let mut sent: std::collections::BTreeSet<u64> = Default::default();
    // incoming → outgoing numbers of the current source's forwarded packets
    let mut forwarded: Vec<(u64, u64)> = Vec::new();
    for op in ops.into_iter().take(500) {
        match op {
            Op::Switch { ssrc, seq_step, ts_step, pic, tl0 } => {
                let base = cur.filter(|c| c.ssrc == ssrc as u32);
                let h = InHeader {
                    ssrc: ssrc as u32,
                    seq: base.map_or(1_000, |b| b.seq) + seq_step as u64 + 1,
                    ts: base.map_or(0, |b| b.ts).wrapping_add(ts_step as u32),
                    pic: pic.map(|p| p & 0x7fff),
                    tl0,
                };
                let o = r.switch_to(&h, now);
                if let Some((s, ts)) = last_out {
                    assert_eq!(o.seq, s + 1, "a switch continues at +1");
                    assert!(o.ts.wrapping_sub(ts) < 1 << 31, "timestamp went backwards");
                }
                assert!(sent.insert(o.seq), "sequence number reused");
                last_out = Some((o.seq, o.ts));
                cur = Some(h);
                forwarded = vec![(h.seq, o.seq)];
            }
            Op::Forward { seq_step, ts_step, pic_step } => {
                let Some(c) = cur.as_mut() else { continue };
                c.seq += seq_step as u64 % 3 + 1;
                c.ts = c.ts.wrapping_add(ts_step as u32);
                c.pic = c.pic.map(|p| (p + pic_step as u16) & 0x7fff);
                if let Ok(o) = r.rewrite(c, now) {
                    assert!(sent.insert(o.seq), "sequence number reused: {}", o.seq);
                    if let Some((s, _)) = last_out {
                        assert!(o.seq > s, "new packet numbered backwards");
                    }
                    last_out = Some((o.seq, o.ts));
                    forwarded.push((c.seq, o.seq));
                }
            }
            Op::Skip { seq_step, pic_step } => {
                let Some(c) = cur.as_mut() else { continue };
                c.seq += seq_step as u64 % 3 + 1;
                c.pic = c.pic.map(|p| (p + pic_step as u16) & 0x7fff);
                r.skip(c);
            }
            Op::Late { back } => {
                let Some(c) = cur else { continue };
                let Some(&(in_seq, out_seq)) = forwarded.iter().rev().nth(back as usize % forwarded.len().max(1)) else { continue };
                let h = InHeader { seq: in_seq, ..c };
                let o = r.rewrite(&h, now);
                // Within the offset history a retransmission keeps its number; beyond it,
                // it is refused (never renumbered).
                if let Ok(o) = o {
                    assert_eq!(o.seq, out_seq, "a retransmission got another number");
                }
            }
            Op::Wait { ms } => now += Duration::from_millis(ms as u64),
        }
    }
});

//! What the shard keeps per subscriber: its live heap, measured with a counting allocator
//! (the shard dropped at the end of a simulated webinar frees exactly what it held; the
//! simulated clients' own heap is not counted). One test in this binary, so no other
//! test's allocations are counted. The instrument for ADR 0009's memory patches.
#![allow(clippy::disallowed_methods)] // Instant::now: the virtual clock's origin

use std::time::{Duration, Instant};

use sfu_core::testkit::{ClientSpec, Sim};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn live() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize + s.bytes_reallocated - s.bytes_deallocated as isize
}

/// The shard's heap after `secs` of a webinar of one simulcast publisher and `viewers`.
fn shard_heap(viewers: usize, secs: u64) -> isize {
    let mut sim = Sim::new(Instant::now(), 11);
    sim.join("r", ClientSpec::simulcast());
    for _ in 0..viewers {
        sim.join("r", ClientSpec::viewer());
    }
    sim.run_for(Duration::from_secs(secs));
    let before = live();
    let shard = sim.shard;
    drop(shard);
    before - live()
}

#[test]
fn a_viewer_costs_the_shard_little_heap() {
    // Long enough for the send history and the RTX caches to fill (1,000 records of
    // transport-cc history are 4 s of a 250 packet/s stream).
    let secs = 8;
    let (few, many) = (2, 10);
    let small = shard_heap(few, secs);
    let large = shard_heap(many, secs);
    let per_viewer = (large - small) / (many - few) as isize;
    println!(
        "shard heap: {few} viewers {:.1} KB, {many} viewers {:.1} KB; {:.1} KB per viewer (audio + video)",
        small as f64 / 1024.0,
        large as f64 / 1024.0,
        per_viewer as f64 / 1024.0
    );
    // 229 KB on 2026-12-07 with str0m's RTX caches per subscriber stream; 186 KB since the
    // shard answers NACKs from one store per published layer (ADR 0009, patch 0002). Of
    // what remains, str0m's transport-cc send history (1,000 records) is the largest part
    // (docs/benchmarks.md, "Memory per subscribed track"). The bound leaves 9 % for drift:
    // it fails when a per-subscriber packet cache comes back.
    assert!(
        per_viewer < 196 * 1024,
        "{:.1} KB of shard heap per viewer",
        per_viewer as f64 / 1024.0
    );
}

//! Micro-benchmarks of the per-packet hot path (see docs/benchmarks.md):
//! parse (VP8 descriptor + keyframe detection), layer choice, header rewrite, a whole
//! simulated call (shard + simulated str0m clients) per forwarded packet, and the heap
//! allocations the shard makes per forwarded packet (a counting allocator, counting only
//! inside calls into the shard).
#![allow(clippy::disallowed_methods)] // Instant::now: a benchmark's clock origin

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sfu_core::keyframe::starts_keyframe;
use sfu_core::rewrite::{InHeader, Rewriter};
use sfu_core::str0m::format::Codec;
use sfu_core::str0m::rtp::Vp8Descriptor;
use sfu_core::testkit::media::{video_payload, Stamp};
use sfu_core::testkit::{ClientSpec, Sim};
use sfu_core::TrackKind;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations made inside calls into the shard, and the count when the current call
/// began.
static IN_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static AT_ENTRY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn shard_hook(entering: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = GLOBAL.stats().allocations;
    if entering {
        AT_ENTRY.store(now, Relaxed);
    } else {
        IN_SHARD.fetch_add(now - AT_ENTRY.load(Relaxed), Relaxed);
    }
}

/// Heap allocations by the shard per forwarded packet, in a webinar of one simulcast
/// publisher and N viewers after 2 s of warm-up (printed; criterion times nothing here).
fn allocations(_: &mut Criterion) {
    use std::sync::atomic::Ordering::Relaxed;
    for n in [1usize, 4, 16] {
        let mut sim = Sim::new(Instant::now(), 7);
        sim.join("r", ClientSpec::simulcast());
        for _ in 0..n {
            sim.join("r", ClientSpec::viewer());
        }
        sim.run_for(Duration::from_secs(2));
        sim.shard_hook = Some(shard_hook);
        let before = (sim.shard.stats().rtp_forwarded, IN_SHARD.load(Relaxed));
        sim.run_for(Duration::from_secs(2));
        let forwarded = (sim.shard.stats().rtp_forwarded - before.0).max(1);
        let allocs = IN_SHARD.load(Relaxed) - before.1;
        println!(
            "allocations in the shard, 1 publisher -> {n} subscribers: {:.2} per forwarded packet ({allocs} for {forwarded})",
            allocs as f64 / forwarded as f64
        );
    }
}

fn parse(c: &mut Criterion) {
    let p = video_payload(
        Codec::Vp8,
        false,
        1,
        3,
        1234,
        1_100,
        Stamp {
            sent_us: 1,
            layer: 2,
        },
        None,
    );
    c.bench_function("parse: VP8 descriptor + keyframe check", |b| {
        b.iter(|| {
            let d = Vp8Descriptor::parse(black_box(&p)).ok();
            (
                d.and_then(|d| d.picture_id()),
                starts_keyframe(Codec::Vp8, black_box(&p)),
            )
        })
    });
}

fn rewrite(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut r = Rewriter::new(90_000, 100, 5);
    let mut h = InHeader {
        ssrc: 7,
        seq: 1_000,
        ts: 90_000,
        pic: Some(10),
        tl0: Some(3),
    };
    r.switch_to(&h, t0);
    c.bench_function("rewrite: seq/ts/picture id", |b| {
        b.iter(|| {
            h.seq += 1;
            h.ts = h.ts.wrapping_add(3_000);
            black_box(r.rewrite(black_box(&h), t0))
        })
    });
}

/// A webinar of one simulcast publisher and N subscribers, 2 simulated seconds: wall time
/// per forwarded packet. This includes the simulated clients' own str0m work (encrypting
/// what they send, decrypting what they receive), so it is an upper bound on the shard.
fn call(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulated call");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for n in [1usize, 4, 16] {
        g.bench_function(
            format!("1 publisher, {n} subscribers, per forwarded packet"),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let mut sim = Sim::new(Instant::now(), i);
                        let a = sim.join("r", ClientSpec::simulcast());
                        let subs: Vec<_> = (0..n)
                            .map(|_| sim.join("r", ClientSpec::viewer()))
                            .collect();
                        sim.run_for(Duration::from_secs(2));
                        let before = sim.shard.stats().rtp_forwarded;
                        let t = Instant::now();
                        sim.run_for(Duration::from_secs(2));
                        let spent = t.elapsed();
                        let fwd = (sim.shard.stats().rtp_forwarded - before).max(1);
                        assert!(subs.iter().all(|s| sim
                            .client(*s)
                            .stream_from(sim.client(a).id, TrackKind::Video)
                            .is_some()));
                        total += spent / fwd as u32;
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, parse, rewrite, allocations, call);
criterion_main!(benches);

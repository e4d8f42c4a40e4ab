//! Live heap of a long simulated call (shard + two str0m clients), measured with a
//! counting global allocator. Outside the workspace: it needs `unsafe` for the allocator.
//! `cargo run --release --manifest-path tools/memprobe/Cargo.toml -- 900` (virtual seconds).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, Relaxed);
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

fn main() {
    use sfu_core::testkit::{ClientSpec, Sim};
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut sim = Sim::new(Instant::now(), 3);
    let a = sim.join("r", ClientSpec::simulcast());
    let b = sim.join("r", ClientSpec::simulcast());
    for t in (0..secs).step_by(30) {
        sim.run_for(Duration::from_secs(30));
        for c in [a, b] {
            for r in sim.client_mut(c).received.values_mut() {
                r.seqs = Default::default();
                r.video_arrivals = Vec::new();
                r.video_seqs = Vec::new();
                r.picture_ids = Vec::new();
                r.frames = Vec::new();
                r.latencies_us = Vec::new();
                r.layer_runs = Vec::new();
            }
        }
        sim.events = Vec::new();
        println!(
            "{:>5} s: live heap {:.3} MB",
            t + 30,
            LIVE.load(Relaxed) as f64 / 1e6
        );
    }
}

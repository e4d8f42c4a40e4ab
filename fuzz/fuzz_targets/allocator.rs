//! The bandwidth allocator with arbitrary budgets and demands: never over budget, only
//! real layers, the top priority paused only when even its lowest layer cannot fit.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sfu_core::allocator::{allocate, VideoDemand, AUDIO_BPS};

#[derive(Arbitrary, Debug)]
struct Video {
    rates: Vec<u32>,
    current: Option<u8>,
    priority: u32,
}

fuzz_target!(|input: (u64, u8, Vec<Video>)| {
    let (budget, audio, videos) = input;
    let audio = audio as usize % 8;
    let demands: Vec<VideoDemand> = videos
        .into_iter()
        .take(12)
        .map(|v| {
            let mut rates: Vec<u64> = v.rates.into_iter().take(12).map(|r| r as u64 + 1).collect();
            rates.sort_unstable();
            let layers: Vec<(u8, u64)> = rates.into_iter().enumerate().map(|(i, r)| (i as u8 * 4 + 3, r)).collect();
            VideoDemand { current: v.current.filter(|c| layers.iter().any(|l| l.0 == *c)), layers, priority: v.priority }
        })
        .collect();
    let a = allocate(budget, audio, &demands);
    assert_eq!(a.video.len(), demands.len());
    assert!(a.used <= budget.max(AUDIO_BPS * audio as u64));
    for (pick, d) in a.video.iter().zip(&demands) {
        if let Some(r) = pick {
            assert!(d.layers.iter().any(|l| l.0 == *r));
        }
    }
    assert!(a.next >= a.used);
});

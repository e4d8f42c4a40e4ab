//! Helpers shared by the simulation test files.
#![allow(dead_code)]

use std::time::Duration;

use sfu_core::testkit::LinkConfig;

/// A downlink capped like `tbf`: `kbps`, with a 200 ms queue.
pub fn capped(kbps: u64) -> LinkConfig {
    LinkConfig {
        rate_bps: Some(kbps * 1000),
        max_queue: Duration::from_millis(200),
        ..Default::default()
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

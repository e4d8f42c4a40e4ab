//! Helpers shared by the simulation test files.
#![allow(dead_code)]

use std::time::Duration;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

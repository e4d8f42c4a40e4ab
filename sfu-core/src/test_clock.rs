//! Unit tests need an arbitrary `Instant` as the origin of their virtual time (there is no
//! constant one). This is the only clock read in the crate, and it is compiled for tests
//! only; nothing measures real time with it.

use std::time::Instant;

#[allow(clippy::disallowed_methods)]
pub fn origin() -> Instant {
    Instant::now()
}

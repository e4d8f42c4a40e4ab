//! A loopback port for a test's server, shared by the workspace's integration tests
//! (included with `#[path]`, so that no test-only crate is needed).

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The ports handed out: below Linux's ephemeral range (32768-60999), so that no
/// outgoing connection or `:0` bind takes one between the probe and the process that
/// binds it (CI once failed on "Address already in use" for a port in that range).
const FIRST: u32 = 20_000;
const SPAN: u32 = 12_000;

/// A port that is free on 127.0.0.1 for both UDP and TCP (a media worker binds both).
/// Each call in a process moves on to the next candidate, so tests running in parallel
/// never get the same one; processes start at different offsets.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        let free = UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no port free for UDP and TCP in {FIRST}..{}", FIRST + SPAN);
}

//! A `redis-server` on loopback for one test (Debian's, installed by scripts/test.sh),
//! shared by the workspace's integration tests (included with `#[path]`). Needs the
//! `free_port` module next to it in the including crate.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
pub struct RedisServer {
    pub child: Child,
    pub url: String,
    pub port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// A fresh Redis on a free port.
    pub fn start() -> Self {
        Self::start_on(super::free_port::free_port())
    }

    /// A fresh (empty) Redis on `port`: also a restart after an outage.
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test.sh installs Debian's redis-server)");
        wait_for_port(port);
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
            port,
        }
    }
}

/// Waits (at most 5 s) until something accepts TCP connections on loopback `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

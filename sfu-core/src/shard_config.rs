//! The settings of one shard.

use std::net::SocketAddr;
use std::time::Duration;

/// Settings of one shard.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The address put in ICE candidates: where clients send their packets. Also used as
    /// the destination of every received datagram (the socket may be bound to 0.0.0.0 or
    /// sit behind NAT).
    pub public_addr: SocketAddr,
    /// The passive ICE-TCP candidate's address (None: UDP only). Frames from connections
    /// accepted there come as [`Input::TcpFrame`]; it is also their destination address.
    pub tcp_addr: Option<SocketAddr>,
    /// Seed for ICE credentials and initial RTP sequence numbers / timestamps.
    pub seed: u64,
    /// At most one keyframe request per publisher layer in this interval.
    pub keyframe_interval: Duration,
    /// How long a participant whose ICE went quiet keeps its place for the path to come
    /// back ([`crate::interruption`]) before it is removed as lost (`IceTimeout`).
    pub media_grace: Duration,
}

impl ShardConfig {
    pub fn new(public_addr: SocketAddr) -> Self {
        Self {
            public_addr,
            tcp_addr: None,
            seed: 0,
            keyframe_interval: Duration::from_millis(300),
            media_grace: Duration::from_secs(20),
        }
    }
}

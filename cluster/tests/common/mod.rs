//! What the cluster crate's tests share.
#![allow(dead_code)]

use cluster::registry::{NodeRecord, NodeState};

#[path = "../../../tests/support/free_port.rs"]
mod free_port;
#[path = "../../../tests/support/redis_server.rs"]
mod redis_server;
#[allow(unused_imports)]
pub use free_port::free_port;
#[allow(unused_imports)]
pub use redis_server::{wait_for_port, RedisServer};

/// A serving node's registry record, named `id`, with no load.
pub fn node(id: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        url: format!("http://{id}.test:7880"),
        media: vec![],
        state: NodeState::Serving,
        participants: 0,
        rooms: 0,
        packet_rate: 0,
        version: "test".into(),
        sip: None,
        relay: None,
    }
}

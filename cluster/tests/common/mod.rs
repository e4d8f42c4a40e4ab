//! What the cluster crate's tests share.

use cluster::registry::{NodeRecord, NodeState};

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
    }
}

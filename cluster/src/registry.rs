//! The node registry: each node's record under `sb:node:<id>` with a TTL of [`TTL`],
//! rewritten every [`HEARTBEAT`]. A node is alive while its key exists; a node that dies
//! drops out within [`TTL`] without anyone removing it.

use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::{ClusterError, Redis, PREFIX};

pub const HEARTBEAT: Duration = Duration::from_secs(2);
pub const TTL: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Serving,
    /// Shutting down: its rooms go on, no new room is placed on it.
    Draining,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    /// The node's HTTP base URL as clients reach it (`http://10.0.0.5:7880`).
    pub url: String,
    /// Its media ports, for operators (`udp 10.0.0.5:7882`…).
    pub media: Vec<String>,
    pub state: NodeState,
    pub participants: u64,
    pub rooms: u64,
    /// Packets per second its workers receive.
    pub packet_rate: u64,
    pub version: String,
    /// Its SIP gateway's address (`10.0.0.5:5060`), where a call for a room homed on it is
    /// redirected; none without `sip_listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<String>,
    /// Its relay endpoint (issue 34, ADR 0013): where the other nodes open their link to
    /// it, and the certificate they pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayRecord>,
}

/// A node's relay endpoint as the registry publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRecord {
    /// `ip:port` (UDP, QUIC).
    pub addr: String,
    /// SHA-256 of its certificate, hex.
    pub fingerprint: String,
}

pub fn node_key(id: &str) -> String {
    format!("{PREFIX}node:{id}")
}

/// Write (or refresh) a node's record.
pub async fn publish(redis: &Redis, record: &NodeRecord) -> Result<(), ClusterError> {
    let mut c = redis.conn().await?;
    let json =
        serde_json::to_string(record).map_err(|e| ClusterError::Unavailable(e.to_string()))?;
    let ttl = TTL.as_millis() as u64;
    redis
        .bounded(c.pset_ex::<_, _, ()>(node_key(&record.id), json, ttl))
        .await
}

/// Remove a node's record (a clean shutdown).
pub async fn withdraw(redis: &Redis, id: &str) -> Result<(), ClusterError> {
    let mut c = redis.conn().await?;
    redis.bounded(c.del::<_, ()>(node_key(id))).await
}

/// Every live node's record.
pub async fn nodes(redis: &Redis) -> Result<Vec<NodeRecord>, ClusterError> {
    let mut c = redis.conn().await?;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis
            .bounded(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(node_key("*"))
                    .arg("COUNT")
                    .arg(100)
                    .query_async(&mut c),
            )
            .await?;
        keys.extend(batch);
        if next == 0 || keys.len() > 10_000 {
            break;
        }
        cursor = next;
    }
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> = redis.bounded(c.mget(&keys)).await?;
    let mut out: Vec<NodeRecord> = values
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_str(&v).ok())
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A number no other node of the cluster got: the high bits of this node's participant
/// ids.
pub async fn take_slot(redis: &Redis) -> Result<u64, ClusterError> {
    let mut c = redis.conn().await?;
    redis.bounded(c.incr(format!("{PREFIX}slots"), 1)).await
}

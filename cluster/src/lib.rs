//! Many nodes, one service: the cluster's shared state in Redis (ADR 0007).
//!
//! - [`registry`]: each node's record (addresses, state, load) under a key with a short
//!   TTL, refreshed every [`registry::HEARTBEAT`]; a node is alive while its key exists.
//! - [`rooms`]: each room's one home node, claimed and released atomically by Lua
//!   scripts with a fencing epoch: never two homes, a dead home's rooms re-homed on the
//!   next join, a returning node with a stale epoch stepping down.
//!
//! Every call is bounded by [`TIMEOUT`]: a slow or absent Redis is an error
//! ([`ClusterError::Unavailable`]) to the caller, never a stuck control plane, and never a
//! reason to claim a room locally.

pub mod registry;
pub mod rooms;

use std::time::Duration;

/// The longest any Redis call may take.
pub const TIMEOUT: Duration = Duration::from_millis(800);
/// Every key this crate writes starts with this.
pub const PREFIX: &str = "sb:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Redis did not answer in time, or refused: new rooms cannot be placed.
    #[error("the cluster directory (Redis) is unavailable: {0}")]
    Unavailable(String),
    /// No serving node is alive to take a room.
    #[error("no serving node is available")]
    NoNode,
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Unavailable(e.to_string())
    }
}

/// The node's Redis connection: opened on first use and again after a failure to open
/// (a node may start while Redis is down), reconnecting by itself once open.
pub struct Redis {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

impl Redis {
    /// Checks the URL only; nothing is sent yet.
    pub fn new(url: &str) -> Result<Self, ClusterError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(ClusterError::from)?,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// A connection (cheap to clone), opened within [`TIMEOUT`] if there is none.
    pub async fn conn(&self) -> Result<redis::aio::ConnectionManager, ClusterError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(TIMEOUT))
            .set_connection_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            TIMEOUT * 2,
            redis::aio::ConnectionManager::new_with_config(self.client.clone(), cfg),
        )
        .await
        .map_err(|_| ClusterError::Unavailable("connecting timed out".into()))?
        .map_err(ClusterError::from)?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// Run a Redis call within [`TIMEOUT`].
pub(crate) async fn bounded<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .map_err(|_| ClusterError::Unavailable("timed out".into()))?
        .map_err(ClusterError::from)
}

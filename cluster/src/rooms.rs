//! The room directory: `sb:room:<name>` holds the room's home node and a fencing epoch.
//! Claims and releases are Lua scripts, so they are atomic: concurrent first joins on
//! different nodes all get the same home, and a home is replaced only when its node's
//! registry key is gone — with the epoch one higher, so the old home, should it come
//! back, can tell that the room is no longer its own.

use std::sync::LazyLock;

use redis::Script;

use crate::registry::node_key;
use crate::{ClusterError, Redis, PREFIX};

/// Rooms homed per node (a hash), for placement.
fn counts_key() -> String {
    format!("{PREFIX}rooms_per_node")
}

pub fn room_key(room: &str) -> String {
    format!("{PREFIX}room:{room}")
}

/// Where a room lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub node: String,
    pub epoch: u64,
    /// This call placed it (a new room, or re-homed from a dead node).
    pub placed: bool,
}

// KEYS[1] the room, KEYS[2] the per-node room counts. ARGV[1] the node key prefix
// (`sb:node:`), ARGV[2..] the candidate nodes (serving when the caller looked).
const CLAIM: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] and redis.call('EXISTS', ARGV[1] .. cur[1]) == 1 then
  return {cur[1], cur[2], 0}
end
local best, fewest = nil, nil
for i = 2, #ARGV do
  local n = ARGV[i]
  if redis.call('EXISTS', ARGV[1] .. n) == 1 then
    local c = tonumber(redis.call('HGET', KEYS[2], n) or '0')
    if fewest == nil or c < fewest then best, fewest = n, c end
  end
end
if best == nil then return redis.error_reply('NONODE no serving node') end
if cur[1] then redis.call('HINCRBY', KEYS[2], cur[1], -1) end
local epoch = (tonumber(cur[2]) or 0) + 1
redis.call('HSET', KEYS[1], 'node', best, 'epoch', epoch)
redis.call('HINCRBY', KEYS[2], best, 1)
return {best, tostring(epoch), 1}
"#;

// KEYS[1] the room, KEYS[2] the counts. ARGV[1] the node, ARGV[2] its epoch.
const RELEASE: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'node', 'epoch')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
  return 1
end
return 0
"#;

static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

/// The room's home: the current one if its node is alive, else (a new room, or its
/// node is gone) the candidate with the fewest rooms, claimed with the next epoch.
pub async fn claim(redis: &Redis, room: &str, candidates: &[String]) -> Result<Home, ClusterError> {
    let mut c = redis.conn().await?;
    let mut inv = CLAIM_SCRIPT.prepare_invoke();
    inv.key(room_key(room)).key(counts_key()).arg(node_key(""));
    for n in candidates {
        inv.arg(n);
    }
    let r: Result<(String, String, u8), ClusterError> =
        redis.bounded(inv.invoke_async(&mut c)).await;
    match r {
        Ok((node, epoch, placed)) => Ok(Home {
            node,
            epoch: epoch.parse().unwrap_or(0),
            placed: placed == 1,
        }),
        Err(ClusterError::Unavailable(m)) if m.contains("NONODE") => Err(ClusterError::NoNode),
        Err(e) => Err(e),
    }
}

/// Give a room up (it closed), if `node` at `epoch` still holds it. True if it did.
pub async fn release(
    redis: &Redis,
    room: &str,
    node: &str,
    epoch: u64,
) -> Result<bool, ClusterError> {
    let mut c = redis.conn().await?;
    let mut inv = RELEASE_SCRIPT.prepare_invoke();
    inv.key(room_key(room))
        .key(counts_key())
        .arg(node)
        .arg(epoch.to_string());
    let n: u8 = redis.bounded(inv.invoke_async(&mut c)).await?;
    Ok(n == 1)
}

/// The room's current home, without claiming it.
pub async fn home(redis: &Redis, room: &str) -> Result<Option<(String, u64)>, ClusterError> {
    let mut c = redis.conn().await?;
    let (node, epoch): (Option<String>, Option<String>) = redis
        .bounded(
            redis::cmd("HMGET")
                .arg(room_key(room))
                .arg("node")
                .arg("epoch")
                .query_async(&mut c),
        )
        .await?;
    Ok(node.map(|n| (n, epoch.and_then(|e| e.parse().ok()).unwrap_or(0))))
}

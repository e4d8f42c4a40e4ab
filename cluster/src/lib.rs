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
///
/// With Sentinel (`redis+sentinel://…`), the primary is asked of the Sentinels whenever a
/// connection is opened, and a call that fails drops the connection, so that the next one
/// finds the new primary after a failover.
pub struct Redis {
    source: Source,
    conn: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

enum Source {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

impl Redis {
    /// Checks the URL only; nothing is sent yet. `redis://…` is one Redis;
    /// `redis+sentinel://[:password@]host:port[,host:port…]/primary-name` asks those
    /// Sentinels for the primary they call `primary-name` (the password is the primary's).
    pub fn new(url: &str) -> Result<Self, ClusterError> {
        let source = match SentinelUrl::parse(url)? {
            None => Source::Direct(redis::Client::open(url).map_err(ClusterError::from)?),
            Some(s) => Source::Sentinel(tokio::sync::Mutex::new(s.client()?)),
        };
        Ok(Self {
            source,
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
        let c = tokio::time::timeout(TIMEOUT * 2, async {
            let client = self.client().await?;
            redis::aio::ConnectionManager::new_with_config(client, cfg).await
        })
        .await
        .map_err(|_| ClusterError::Unavailable("connecting timed out".into()))?
        .map_err(ClusterError::from)?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The client of the Redis to talk to: the configured one, or the Sentinels' primary.
    async fn client(&self) -> redis::RedisResult<redis::Client> {
        match &self.source {
            Source::Direct(c) => Ok(c.clone()),
            Source::Sentinel(s) => s.lock().await.async_get_client().await,
        }
    }

    /// Run a Redis call within [`TIMEOUT`]; with Sentinel, a failure drops the connection
    /// (the primary may have moved).
    pub(crate) async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        let r = bounded(f).await;
        if r.is_err() && matches!(self.source, Source::Sentinel(_)) {
            *self.conn.lock().await = None;
        }
        r
    }
}

/// A `redis+sentinel://` (or, over TLS to the Sentinels and the primary,
/// `rediss+sentinel://`) URL, taken apart.
#[derive(Debug, PartialEq, Eq)]
struct SentinelUrl {
    sentinels: Vec<String>,
    primary: String,
    password: Option<String>,
    tls: bool,
}

impl SentinelUrl {
    /// `None` for any other scheme; an error for a Sentinel URL without hosts or name.
    fn parse(url: &str) -> Result<Option<Self>, ClusterError> {
        let (rest, tls) = if let Some(r) = url.strip_prefix("redis+sentinel://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("rediss+sentinel://") {
            (r, true)
        } else {
            return Ok(None);
        };
        let bad = |why: &str| ClusterError::Unavailable(format!("{url}: {why}"));
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (hosts, primary) = rest
            .split_once('/')
            .ok_or_else(|| bad("no primary name (…/primary-name)"))?;
        let primary = primary.trim_end_matches('/');
        if primary.is_empty() || primary.contains('/') {
            return Err(bad("the primary name is one path segment"));
        }
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{}://{h}", if tls { "rediss" } else { "redis" }))
            .collect();
        if sentinels.is_empty() {
            return Err(bad("no Sentinel host:port"));
        }
        let password = auth
            .map(|a| a.rsplit_once(':').map_or(a, |(_, p)| p).to_string())
            .filter(|p| !p.is_empty());
        Ok(Some(Self {
            sentinels,
            primary: primary.to_string(),
            password,
            tls,
        }))
    }

    fn client(&self) -> Result<redis::sentinel::SentinelClient, ClusterError> {
        let mut node = redis::RedisConnectionInfo::default();
        if let Some(p) = &self.password {
            node = node.set_password(p);
        }
        let mut info =
            redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
        if self.tls {
            // The primary is verified like the Sentinels: the system's roots and SSL_CERT_FILE.
            info = info.set_tls_mode(redis::TlsMode::Secure);
        }
        redis::sentinel::SentinelClient::build(
            self.sentinels.clone(),
            self.primary.clone(),
            Some(info),
            redis::sentinel::SentinelServerType::Master,
        )
        .map_err(ClusterError::from)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        assert_eq!(SentinelUrl::parse("redis://10.0.0.5:6379").unwrap(), None);
        assert_eq!(
            SentinelUrl::parse("redis+sentinel://:pw@a:26379,b:26380/sb").unwrap(),
            Some(SentinelUrl {
                sentinels: vec!["redis://a:26379".into(), "redis://b:26380".into()],
                primary: "sb".into(),
                password: Some("pw".into()),
                tls: false,
            })
        );
        assert_eq!(
            SentinelUrl::parse("rediss+sentinel://a:26379/sb").unwrap(),
            Some(SentinelUrl {
                sentinels: vec!["rediss://a:26379".into()],
                primary: "sb".into(),
                password: None,
                tls: true,
            })
        );
        assert_eq!(
            SentinelUrl::parse("redis+sentinel://a:26379/sb/")
                .unwrap()
                .unwrap()
                .password,
            None
        );
        for bad in [
            "redis+sentinel://a:26379",
            "redis+sentinel:///sb",
            "redis+sentinel://a/x/y",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

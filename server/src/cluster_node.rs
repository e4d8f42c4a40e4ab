//! This node as a member of a cluster (`redis_url` set; ADR 0007): its registry record,
//! the rooms it is home to, and the hub's [`Placement`].
//!
//! Every [`HEARTBEAT`] the node publishes its record (state, load) and reconciles its
//! homes: a room that closed here is released in the directory; a room the directory
//! lost (Redis restarted empty) is claimed back; a room whose claim is another node's
//! (this node's key expired while Redis was unreachable and another node re-homed the
//! room with a higher epoch) is closed here — the stale home steps down.
//! Joins to a room already homed here need no Redis at all, so running rooms go on
//! through a Redis outage; only placing a new room needs it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cluster::registry::{self, NodeRecord, NodeState, HEARTBEAT};
use cluster::rooms;
use cluster::{ClusterError, Redis};
use dashmap::DashMap;
use signaling::placement::{PeersFuture, PlaceFuture, Placed, Placement, PlacementError};
use signaling::Hub;

use anyhow::Context;

use crate::config::Config;
use crate::plane::WorkerPool;
use crate::relay_links::RelayLinks;
use crate::secret;

pub struct ClusterNode {
    redis: Redis,
    pub id: String,
    url: String,
    media: Vec<String>,
    /// Rooms homed here, with the epoch of the claim.
    homes: DashMap<String, u64>,
    /// The cluster's nodes' addresses (refreshed each heartbeat), which the HTTP listener
    /// exempts from its per-address limit.
    pub peer_ips: crate::conn_slots::Exempt,
    /// Its SIP gateway's advertised address, if it has one.
    sip: Option<String>,
    /// Its relay endpoint and links to the other nodes.
    pub relay: Arc<RelayLinks>,
    /// The last heartbeat reached Redis.
    pub healthy: AtomicBool,
    /// Shutting down: the heartbeat stops, the record is withdrawn.
    leaving: AtomicBool,
}

impl ClusterNode {
    pub fn new(
        redis: Redis,
        id: String,
        url: String,
        media: Vec<String>,
        sip: Option<String>,
        relay: Arc<RelayLinks>,
    ) -> Self {
        Self {
            redis,
            id,
            url,
            media,
            sip,
            relay,
            homes: DashMap::new(),
            peer_ips: Default::default(),
            healthy: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
        }
    }

    /// This node's slot (participant ids start at `slot << 40`).
    pub async fn id_base(&self) -> Result<u64, ClusterError> {
        Ok(registry::take_slot(&self.redis).await? << 40)
    }

    fn record(&self, hub: &Hub, pool: &WorkerPool) -> NodeRecord {
        NodeRecord {
            id: self.id.clone(),
            url: self.url.clone(),
            media: self.media.clone(),
            state: if hub.is_draining() {
                NodeState::Draining
            } else {
                NodeState::Serving
            },
            participants: hub.participant_count() as u64,
            rooms: self.homes.len() as u64,
            packet_rate: pool
                .workers
                .iter()
                .map(|w| w.tel.packet_rate.load(Ordering::Relaxed))
                .sum(),
            version: env!("CARGO_PKG_VERSION").into(),
            sip: self.sip.clone(),
            relay: Some(self.relay.record()),
        }
    }

    /// Publish this node's record now (also at a drain's start).
    pub async fn publish(&self, hub: &Hub, pool: &WorkerPool) -> Result<(), ClusterError> {
        let r = registry::publish(&self.redis, &self.record(hub, pool)).await;
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
        r
    }

    /// Heartbeat and reconciliation, forever.
    pub async fn run(self: Arc<Self>, hub: Arc<Hub>, pool: Arc<WorkerPool>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tick.tick().await;
            if self.leaving.load(Ordering::Relaxed) {
                return;
            }
            if let Err(e) = self.publish(&hub, &pool).await {
                tracing::warn!(error = %e, "cluster heartbeat failed");
                continue;
            }
            self.reconcile(&hub).await;
            if let Ok(nodes) = registry::nodes(&self.redis).await {
                self.refresh_peer_ips(&nodes);
                self.relay.reconcile(&nodes);
            }
        }
    }

    /// The nodes' addresses, for the HTTP listener: a node's relays carry many clients'
    /// sessions, so the per-address connection limit does not apply to it.
    fn refresh_peer_ips(&self, nodes: &[NodeRecord]) {
        let ips = nodes.iter().filter_map(|n| url_ip(&n.url)).collect();
        *self.peer_ips.write() = ips;
    }

    /// The rooms homed here and their epochs, copied (no map lock held across awaits).
    fn homes_now(&self) -> Vec<(String, u64)> {
        self.homes
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect()
    }

    /// The end of a drain, before the last sessions are closed: give up every room and
    /// withdraw the record, so that the clients' reconnections are placed on live nodes
    /// at once (not after the registry key's TTL).
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::Relaxed);
        for (room, epoch) in self.homes_now() {
            let _ = rooms::release(&self.redis, &room, &self.id, epoch).await;
        }
        self.homes.clear();
        let _ = registry::withdraw(&self.redis, &self.id).await;
        self.relay.close();
    }

    async fn reconcile(&self, hub: &Hub) {
        let local: std::collections::HashSet<String> =
            hub.list_rooms().into_iter().map(|r| r.name).collect();
        for (room, epoch) in self.homes_now() {
            if !local.contains(&room) {
                // Closed here: give it up (unless a join re-created it meanwhile).
                if rooms::release(&self.redis, &room, &self.id, epoch)
                    .await
                    .is_ok()
                    && hub.get_room(&room).is_err()
                {
                    self.homes.remove(&room);
                }
                continue;
            }
            match rooms::home(&self.redis, &room).await {
                Ok(Some((node, e))) if node == self.id && e == epoch => {}
                // The directory lost it (a Redis restarted empty): claim it back, or
                // every room of the cluster would end with a Redis restart.
                Ok(None) => {
                    if let Ok(h) =
                        rooms::claim(&self.redis, &room, std::slice::from_ref(&self.id)).await
                    {
                        if h.node == self.id {
                            self.homes.insert(room, h.epoch);
                        }
                    }
                }
                Ok(other) => {
                    tracing::warn!(
                        room,
                        ?other,
                        "the room is homed elsewhere now: stepping down"
                    );
                    self.homes.remove(&room);
                    let _ = hub.delete_room(&room, "the room moved to another node");
                }
                Err(_) => {}
            }
        }
    }

    async fn place_room(&self, room: &str) -> Result<Placed, ClusterError> {
        if self.homes.contains_key(room) {
            return Ok(Placed::Here);
        }
        let nodes = registry::nodes(&self.redis).await?;
        let serving: Vec<String> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Serving)
            .map(|n| n.id.clone())
            .collect();
        let home = rooms::claim(&self.redis, room, &serving).await?;
        if home.node == self.id {
            self.homes.insert(room.to_string(), home.epoch);
            return Ok(Placed::Here);
        }
        let n = match nodes.into_iter().find(|n| n.id == home.node) {
            Some(n) => n,
            None => registry::nodes(&self.redis)
                .await?
                .into_iter()
                .find(|n| n.id == home.node)
                .ok_or_else(|| {
                    ClusterError::Unavailable("the room's home is not registered".into())
                })?,
        };
        Ok(Placed::Elsewhere {
            url: n.url,
            sip: n.sip,
        })
    }

    async fn locate_room(&self, room: &str) -> Result<Placed, ClusterError> {
        if self.homes.contains_key(room) {
            return Ok(Placed::Here);
        }
        let Some((node, _)) = rooms::home(&self.redis, room).await? else {
            return Ok(Placed::Here);
        };
        if node == self.id {
            return Ok(Placed::Here);
        }
        Ok(registry::nodes(&self.redis)
            .await?
            .into_iter()
            .find(|n| n.id == node)
            .map_or(Placed::Here, |n| Placed::Elsewhere {
                url: n.url,
                sip: n.sip,
            }))
    }
}

fn unavailable(e: ClusterError) -> PlacementError {
    PlacementError::Unavailable(e.to_string())
}

impl Placement for ClusterNode {
    fn is_home(&self, room: &str) -> bool {
        self.homes.contains_key(room)
    }

    fn place<'a>(&'a self, room: &'a str) -> PlaceFuture<'a> {
        Box::pin(async move { self.place_room(room).await.map_err(unavailable) })
    }

    fn locate<'a>(&'a self, room: &'a str) -> PlaceFuture<'a> {
        Box::pin(async move { self.locate_room(room).await.map_err(unavailable) })
    }

    fn peers(&self) -> PeersFuture<'_> {
        Box::pin(async move {
            Ok(registry::nodes(&self.redis)
                .await
                .map_err(unavailable)?
                .into_iter()
                .map(|n| n.url)
                .collect())
        })
    }
}

/// The IP of a node's URL, when its host is one (not a name).
fn url_ip(url: &str) -> Option<std::net::IpAddr> {
    let uri = url.parse::<axum::http::Uri>().ok()?;
    uri.host()?.trim_matches(['[', ']']).parse().ok()
}

/// Cluster mode: register this node, take its id slot, and place rooms through Redis.
pub async fn join(
    args: &Config,
    url: &secret::Secret<secret::UrlPassword>,
    http_port: u16,
    hub: &Arc<Hub>,
    pool: &Arc<WorkerPool>,
) -> anyhow::Result<Arc<ClusterNode>> {
    // `url` shows (in these errors) without its password; the client gets the whole.
    let redis = cluster::Redis::new(url.expose())
        .map_err(|e| anyhow::anyhow!("{}", secret::redact_in(&e.to_string(), url.expose())))
        .context("redis_url")?;
    let id = args
        .node_id
        .clone()
        .unwrap_or_else(|| format!("node-{:08x}", rand::random::<u32>()));
    let http = args
        .cluster_url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{http_port}", args.advertise_ip()));
    let media = pool
        .workers
        .iter()
        .map(|w| format!("udp {}", w.addr))
        .collect();
    // Where calls for rooms homed here are redirected by other nodes' gateways.
    let sip = args.sip_listen.map(|l| {
        let ip = args.sip_advertise.unwrap_or(if l.ip().is_unspecified() {
            args.advertise_ip()
        } else {
            l.ip()
        });
        std::net::SocketAddr::new(ip, l.port()).to_string()
    });
    // The relay's secret: every node of a cluster shares the first API key.
    let keys = hub.keys();
    let api_secret = keys
        .first_key()
        .and_then(|k| keys.secret(k))
        .context("cluster mode needs an API key (the relay's secret derives from it)")?;
    // The relay is reached where the other nodes reach this node: `cluster_url`'s host
    // when it is an address, else the media's advertised one.
    let relay_ip = url_ip(&http).unwrap_or_else(|| args.advertise_ip());
    let relay = RelayLinks::start(
        std::net::SocketAddr::new(args.rtc_bind, args.relay_port),
        relay_ip,
        &id,
        &relay::cluster_secret(api_secret),
    )
    .context("relay_port")?;
    let node = Arc::new(ClusterNode::new(
        redis,
        id.clone(),
        http.clone(),
        media,
        sip,
        relay,
    ));
    let base = node
        .id_base()
        .await
        .with_context(|| format!("redis_url: cannot reach {url}"))?;
    node.publish(hub, pool)
        .await
        .with_context(|| format!("redis_url: cannot register at {url}"))?;
    hub.set_placement(node.clone(), base);
    tokio::spawn(node.clone().run(hub.clone(), pool.clone()));
    tracing::info!(node = %id, url = %http, id_base = base, "joined the cluster");
    Ok(node)
}

//! This node's relay links to the other nodes of its cluster (issue 34, ADR 0013).
//!
//! In cluster mode every node runs a relay endpoint (QUIC on UDP) with a certificate made
//! at start, and publishes the endpoint's address and the certificate's fingerprint in its
//! registry record. At each heartbeat the node reconciles with the registry: the nodes
//! that may connect are exactly those the registry lists (their fingerprints pinned), a
//! link to a node that left is closed, and a missing link is dialed — by the node of the
//! lower id, so a pair has one link, and again at the next heartbeat when it failed or
//! died. Links are authenticated both ways (pinned certificates, proof of the cluster
//! secret bound to the connection: `relay::link`).
//!
//! What crosses the links (relayed tracks, demand for layers, keyframe requests) is the
//! next step of issue 34; until then a control message other than the hello is counted
//! and ignored.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use cluster::registry::{NodeRecord, RelayRecord};
use dashmap::DashMap;
use relay::{Fingerprint, Identity, Link, Peers, RelayEndpoint, RelayError};
use tokio::sync::Notify;

/// One peer node's link: being dialed, or up with a node of that certificate (`close`
/// asks its task to end it).
enum State {
    Dialing,
    Up {
        close: Arc<Notify>,
        fingerprint: Fingerprint,
    },
}

pub struct RelayLinks {
    node: String,
    endpoint: RelayEndpoint,
    peers: Peers,
    advertised: SocketAddr,
    links: DashMap<String, State>,
    /// Peers whose link failed since it was last up (warned once, then quiet).
    failing: DashMap<String, ()>,
}

impl RelayLinks {
    /// Listen on `bind` as node `node` (`advertise`: the IP the other nodes reach it at,
    /// when `bind`'s is unspecified); `secret` is the cluster's (`relay::cluster_secret`).
    pub fn start(
        bind: SocketAddr,
        advertise: IpAddr,
        node: &str,
        secret: &[u8],
    ) -> anyhow::Result<Arc<RelayLinks>> {
        let identity = Identity::generate(node)?;
        let peers = Peers::default();
        let endpoint = RelayEndpoint::bind(bind, node, identity, peers.clone(), secret)?;
        let local = endpoint.local_addr()?;
        let ip = if local.ip().is_unspecified() {
            advertise
        } else {
            local.ip()
        };
        let links = Arc::new(RelayLinks {
            node: node.to_string(),
            endpoint,
            peers,
            advertised: SocketAddr::new(ip, local.port()),
            links: DashMap::new(),
            failing: DashMap::new(),
        });
        tokio::spawn(links.clone().accept_all());
        tracing::info!(addr = %links.advertised, "relay listening");
        Ok(links)
    }

    /// What the registry publishes for this node.
    pub fn record(&self) -> RelayRecord {
        RelayRecord {
            addr: self.advertised.to_string(),
            fingerprint: self.endpoint.fingerprint().to_string(),
        }
    }

    /// The registry's nodes now: pin them, close links to nodes that left, dial the
    /// links this node owes.
    pub fn reconcile(self: &Arc<Self>, nodes: &[NodeRecord]) {
        let others: Vec<(&NodeRecord, SocketAddr, Fingerprint)> = nodes
            .iter()
            .filter(|n| n.id != self.node)
            .filter_map(|n| {
                let r = n.relay.as_ref()?;
                Some((n, r.addr.parse().ok()?, Fingerprint::parse(&r.fingerprint)?))
            })
            .collect();
        self.peers
            .set(others.iter().map(|(n, _, f)| (*f, n.id.clone())));
        // Links to nodes that left, or to an earlier process of a node that restarted
        // under the same id (the registry names a new certificate), are closed.
        self.links.retain(|id, state| {
            let current = others.iter().any(|(n, _, f)| {
                &n.id == id && !matches!(state, State::Up { fingerprint, .. } if fingerprint != f)
            });
            if !current {
                if let State::Up { close, .. } = state {
                    close.notify_one();
                }
            }
            current
        });
        for (n, addr, fingerprint) in others {
            if self.node < n.id && !self.links.contains_key(&n.id) {
                self.links.insert(n.id.clone(), State::Dialing);
                tokio::spawn(self.clone().dial(n.id.clone(), addr, fingerprint));
            }
        }
        self.count();
    }

    async fn dial(self: Arc<Self>, peer: String, addr: SocketAddr, expect: Fingerprint) {
        match self.endpoint.connect(addr, expect).await {
            Ok(link) => self.hold(link).await,
            Err(e) => {
                self.failed("dial", &peer, &e);
                self.links.remove(&peer);
                self.count();
            }
        }
    }

    async fn accept_all(self: Arc<Self>) {
        while let Some(incoming) = self.endpoint.accept().await {
            match incoming {
                Ok(link) => {
                    tokio::spawn(self.clone().hold(link));
                }
                Err(e) => self.failed("accept", "?", &e),
            }
        }
    }

    /// A link that is up, until it ends (or this node is told to close it).
    async fn hold(self: Arc<Self>, mut link: Link) {
        let peer = link.peer().to_string();
        let close = Arc::new(Notify::new());
        if let Some(State::Up { close: old, .. }) = self.links.insert(
            peer.clone(),
            State::Up {
                close: close.clone(),
                fingerprint: link.fingerprint(),
            },
        ) {
            // The peer dialed again (it lost the link before this node noticed).
            old.notify_one();
        }
        self.count();
        self.failing.remove(&peer);
        tracing::info!(%peer, "relay link up");
        let why = loop {
            tokio::select! {
                _ = close.notified() => {
                    link.close("left the cluster");
                    break "closed".to_string();
                }
                m = link.recv_control() => match m {
                    Ok(Some(m)) => {
                        tracing::debug!(%peer, ?m, "relay control message not handled yet");
                        metrics::counter!("switchboard_relay_control_ignored_total").increment(1);
                    }
                    Ok(None) => break "the peer closed it".to_string(),
                    Err(e) => break e.to_string(),
                },
            }
        };
        tracing::info!(%peer, %why, "relay link down");
        self.links.remove_if(
            &peer,
            |_, s| matches!(s, State::Up { close: c, .. } if Arc::ptr_eq(c, &close)),
        );
        self.count();
    }

    fn failed(&self, side: &'static str, peer: &str, e: &RelayError) {
        if self.failing.insert(peer.to_string(), ()).is_none() {
            tracing::warn!(%peer, error = %e, "relay link {side} failed (retried every heartbeat)");
        } else {
            tracing::debug!(%peer, error = %e, "relay link {side} failed again");
        }
        metrics::counter!("switchboard_relay_link_failures_total", "side" => side).increment(1);
    }

    fn count(&self) {
        let up = self
            .links
            .iter()
            .filter(|e| matches!(e.value(), State::Up { .. }))
            .count();
        metrics::gauge!("switchboard_relay_links").set(up as f64);
    }

    /// Close every link and stop listening (the node is leaving).
    pub fn close(&self) {
        self.endpoint.close();
    }
}

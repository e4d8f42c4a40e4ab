//! Graceful stop: SIGTERM or SIGINT drains the node, a second signal stops it at once.

use std::sync::Arc;
use std::time::Duration;

use signaling::Hub;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cluster_node::ClusterNode;
use crate::plane::WorkerPool;

/// The stop signals, listened to from the moment this is made. Made before the server
/// says it is running: a signal sent on that line must drain, not take the default
/// action (which ends the process at once, as CI saw for a SIGTERM sent just after it).
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Must run inside the Tokio runtime.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGTERM or SIGINT, by name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// On the first signal: drain (not ready, no new joins; marked draining in the cluster
/// directory), wait until every room is empty or `timeout` passed, tell the remaining
/// participants the server is shutting down, then report `done`. A second signal cuts
/// the wait short.
pub async fn drain_on_signals(
    mut signals: StopSignals,
    hub: Arc<Hub>,
    pool: Arc<WorkerPool>,
    cluster: Option<Arc<ClusterNode>>,
    timeout: Duration,
    done: tokio::sync::watch::Sender<bool>,
) {
    let first = signals.next().await;
    hub.start_drain();
    if let Some(c) = &cluster {
        // Marked draining in the directory at once: no new room is placed here.
        let _ = c.publish(&hub, &pool).await;
    }
    let n = hub.participant_count();
    tracing::info!(
        signal = %first,
        participants = n,
        timeout_s = timeout.as_secs(),
        "draining (a second signal stops at once)"
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let emptied = async {
        while hub.participant_count() > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = emptied => tracing::info!("drained: no participants left"),
        _ = tokio::time::sleep_until(deadline) => tracing::warn!("drain timeout: closing the remaining sessions"),
        _ = signals.next() => tracing::warn!("second signal: stopping now"),
    }
    if let Some(c) = &cluster {
        c.leave().await;
    }
    let closed = hub.shutdown_all();
    if closed > 0 {
        // Let the "server shutting down" messages and close frames go out.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    done.send_replace(true);
}

//! The node's load limits: who may join (admission) and whether the node takes new
//! participants at all (`/readyz`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use signaling::Hub;

use crate::cluster_node::ClusterNode;
use crate::plane::WorkerPool;

/// The node's admission limits: tracks per node, received packets per second per worker.
pub fn admission(
    pool: Arc<WorkerPool>,
    max_tracks: u32,
    max_rate: u64,
) -> signaling::hub::Admission {
    Arc::new(move |publishing| {
        if max_tracks > 0 && publishing {
            let tracks: u64 = pool.workers.iter().map(|w| w.stats.lock().tracks).sum();
            if tracks >= u64::from(max_tracks) {
                return Some(format!(
                    "the node carries {tracks} published tracks (max_tracks = {max_tracks})"
                ));
            }
        }
        overloaded(&pool, max_rate)
    })
}

/// A worker over the packet-rate limit, if any.
fn overloaded(pool: &WorkerPool, max_rate: u64) -> Option<String> {
    if max_rate == 0 {
        return None;
    }
    pool.workers.iter().find_map(|w| {
        let rate = w.tel.packet_rate.load(Ordering::Relaxed);
        (rate > max_rate).then(|| {
            format!(
                "worker {} receives {rate} packets/s (max_worker_packet_rate = {max_rate})",
                w.index
            )
        })
    })
}

/// `/readyz`: 200 while the node takes participants; 503 with the reason while draining
/// or over a load limit.
pub fn readiness(
    hub: Arc<Hub>,
    pool: Arc<WorkerPool>,
    max_rate: u64,
    cluster: Option<Arc<ClusterNode>>,
) -> impl Fn() -> axum::response::Response + Clone + Send + 'static {
    move || {
        use axum::response::IntoResponse;
        let reason = if hub.is_draining() {
            Some("draining".to_string())
        } else if cluster
            .as_ref()
            .is_some_and(|c| !c.healthy.load(Ordering::Relaxed))
        {
            Some("the cluster directory (Redis) is unreachable: no new rooms".to_string())
        } else {
            overloaded(&pool, max_rate)
        };
        match reason {
            None => axum::Json(serde_json::json!({ "ready": true })).into_response(),
            Some(r) => (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "ready": false, "reason": r })),
            )
                .into_response(),
        }
    }
}

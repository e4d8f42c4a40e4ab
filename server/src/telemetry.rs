//! Prometheus metrics at `/metrics`, through the `metrics` crate. The media workers keep
//! their counters in `ShardStats` (no per-packet cost beyond the shard's own counters);
//! a control-plane task publishes them, with room and participant gauges, every second.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use signaling::Hub;

use crate::plane::WorkerPool;

/// Install the recorder (once per process).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    Ok(PrometheusBuilder::new().install_recorder()?)
}

/// Publish worker and directory figures every second (runs forever on the runtime).
pub async fn publish(pool: Arc<WorkerPool>, hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for w in &pool.workers {
            let s = *w.stats.lock();
            let l = [("worker", w.index.to_string())];
            metrics::counter!("switchboard_datagrams_received_total", &l).absolute(s.datagrams_in);
            metrics::counter!(
                "switchboard_datagrams_dropped_total",
                &[
                    ("worker", w.index.to_string()),
                    ("reason", "unknown_source".into())
                ]
            )
            .absolute(s.dropped_unknown_source);
            metrics::counter!(
                "switchboard_datagrams_dropped_total",
                &[
                    ("worker", w.index.to_string()),
                    ("reason", "malformed".into())
                ]
            )
            .absolute(s.dropped_malformed);
            metrics::counter!("switchboard_rtp_received_total", &l).absolute(s.rtp_in);
            metrics::counter!("switchboard_rtp_forwarded_total", &l).absolute(s.rtp_forwarded);
            metrics::counter!("switchboard_rtp_not_forwarded_total", &l)
                .absolute(s.rtp_not_forwarded);
            metrics::counter!("switchboard_keyframe_requests_total", &l)
                .absolute(s.keyframe_requests);
            metrics::counter!("switchboard_peer_panics_total", &l).absolute(s.peer_panics);
            metrics::gauge!("switchboard_worker_participants", &l)
                .set(w.load.load(std::sync::atomic::Ordering::Relaxed) as f64);
        }
        let rooms = hub.list_rooms();
        metrics::gauge!("switchboard_rooms").set(rooms.len() as f64);
        metrics::gauge!("switchboard_participants")
            .set(rooms.iter().map(|r| r.num_participants).sum::<usize>() as f64);
        if let Some(w) = hub.webhook_stats() {
            use std::sync::atomic::Ordering::Relaxed;
            metrics::counter!("switchboard_webhooks_delivered_total")
                .absolute(w.delivered.load(Relaxed));
            metrics::counter!("switchboard_webhooks_failed_total").absolute(w.failed.load(Relaxed));
            metrics::counter!("switchboard_webhooks_dropped_total")
                .absolute(w.dropped.load(Relaxed));
        }
    }
}

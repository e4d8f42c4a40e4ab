//! Prometheus metrics at `/metrics`, through the `metrics` crate. The media workers keep
//! their counters in `ShardStats` and `WorkerTelemetry` (plain increments; the only
//! metric recorded on the media path is one forwarding-latency sample per loop turn, on a
//! handle registered at start); a control-plane task publishes them, with room and
//! participant gauges, every second. Events from the media plane feed the layer-switch
//! and bandwidth-estimate figures.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sfu_core::Event;
use signaling::Hub;

use crate::plane::WorkerPool;

/// Install the recorder (once per process), with histogram buckets.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let latency = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    ];
    let join = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];
    let bps = [100e3, 250e3, 500e3, 1e6, 2e6, 3e6, 5e6, 10e6, 20e6];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("switchboard_forwarding_latency_seconds".into()),
            &latency,
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_join_latency_seconds".into()),
            &join,
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_speaker_view_switch_seconds".into()),
            &join,
        )?
        .set_buckets_for_metric(
            Matcher::Full("switchboard_bandwidth_estimate_bps".into()),
            &bps,
        )?
        .install_recorder()?)
}

/// What the control plane learns from media-plane events.
pub fn observe(e: &Event) {
    if let Event::SubscriptionStats {
        estimate_bps: Some(bps),
        ..
    } = e
    {
        metrics::histogram!("switchboard_bandwidth_estimate_bps").record(*bps as f64);
    }
}

/// Publish worker and directory figures every second (runs forever on the runtime).
pub async fn publish(pool: Arc<WorkerPool>, hub: Arc<Hub>, prometheus: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last: Vec<(Instant, u64, u64)> = pool
        .workers
        .iter()
        .map(|_| (Instant::now(), 0, 0))
        .collect();
    loop {
        tick.tick().await;
        // Histogram samples wait in per-handle buckets until drained into their fixed
        // bucket counts; without this they pile up while nobody scrapes /metrics (the
        // soak's RSS growth: 9.4 MB of forwarding-latency samples in 8 minutes).
        prometheus.run_upkeep();
        let (mut tracks, mut subscriptions) = (0, 0);
        for (w, prev) in pool.workers.iter().zip(last.iter_mut()) {
            let s = *w.stats.lock();
            let worker = w.index.to_string();
            let l = [("worker", worker.clone())];
            let with =
                |k: &'static str, v: &'static str| [("worker", worker.clone()), (k, v.to_string())];
            metrics::counter!("switchboard_datagrams_received_total", &l).absolute(s.datagrams_in);
            metrics::counter!("switchboard_datagrams_sent_total", &l)
                .absolute(w.tel.datagrams_out.load(Relaxed));
            metrics::counter!("switchboard_udp_send_errors_total", &l)
                .absolute(w.tel.send_errors.load(Relaxed));
            metrics::counter!("switchboard_udp_send_syscalls_total", &l)
                .absolute(w.tel.send_calls.load(Relaxed));
            metrics::counter!("switchboard_udp_receive_truncated_total", &l)
                .absolute(w.tel.recv_truncated.load(Relaxed));
            metrics::gauge!("switchboard_ice_tcp_connections", &l)
                .set(w.tel.tcp_links.load(Relaxed) as f64);
            metrics::counter!("switchboard_ice_tcp_frames_received_total", &l)
                .absolute(w.tel.tcp_frames_in.load(Relaxed));
            metrics::counter!("switchboard_ice_tcp_frames_sent_total", &l)
                .absolute(w.tel.tcp_frames_out.load(Relaxed));
            metrics::counter!("switchboard_ice_tcp_bad_frames_total", &l)
                .absolute(w.tel.tcp_bad_frames.load(Relaxed));
            metrics::counter!("switchboard_ice_tcp_backlog_drops_total", &l)
                .absolute(w.tel.tcp_backlog_drops.load(Relaxed));
            metrics::counter!("switchboard_udp_bytes_received_total", &l)
                .absolute(w.tel.bytes_in.load(Relaxed));
            metrics::counter!("switchboard_udp_bytes_sent_total", &l)
                .absolute(w.tel.bytes_out.load(Relaxed));
            metrics::counter!(
                "switchboard_datagrams_dropped_total",
                &with("reason", "unknown_source")
            )
            .absolute(s.dropped_unknown_source);
            metrics::counter!(
                "switchboard_datagrams_dropped_total",
                &with("reason", "malformed")
            )
            .absolute(s.dropped_malformed);
            metrics::counter!(
                "switchboard_datagrams_dropped_total",
                &with("reason", "rate_limited")
            )
            .absolute(s.dropped_rate_limited);
            metrics::counter!("switchboard_rtp_received_total", &l).absolute(s.rtp_in);
            metrics::counter!("switchboard_rtp_forwarded_total", &l).absolute(s.rtp_forwarded);
            for (kind, pi, bi, po, bo) in [
                (
                    "audio",
                    s.audio_packets_in,
                    s.audio_bytes_in,
                    s.audio_packets_out,
                    s.audio_bytes_out,
                ),
                (
                    "video",
                    s.video_packets_in,
                    s.video_bytes_in,
                    s.video_packets_out,
                    s.video_bytes_out,
                ),
            ] {
                metrics::counter!("switchboard_media_packets_in_total", &with("kind", kind))
                    .absolute(pi);
                metrics::counter!("switchboard_media_bytes_in_total", &with("kind", kind))
                    .absolute(bi);
                metrics::counter!("switchboard_media_packets_out_total", &with("kind", kind))
                    .absolute(po);
                metrics::counter!("switchboard_media_bytes_out_total", &with("kind", kind))
                    .absolute(bo);
            }
            let other = s
                .rtp_not_forwarded
                .saturating_sub(s.dropped_layer + s.dropped_temporal + s.dropped_muted);
            for (reason, v) in [
                ("layer_switching", s.dropped_layer),
                ("temporal_layer", s.dropped_temporal),
                ("muted", s.dropped_muted),
                ("other", other),
            ] {
                metrics::counter!(
                    "switchboard_rtp_not_forwarded_total",
                    &with("reason", reason)
                )
                .absolute(v);
            }
            metrics::counter!("switchboard_nacks_received_total", &l).absolute(s.nacks_received);
            metrics::counter!("switchboard_nack_resends_total", &l).absolute(s.nack_resends);
            metrics::counter!("switchboard_nack_unknown_total", &l).absolute(s.nack_unknown);
            metrics::counter!(
                "switchboard_keyframe_requests_received_total",
                &with("type", "pli")
            )
            .absolute(s.plis_received);
            metrics::counter!(
                "switchboard_keyframe_requests_received_total",
                &with("type", "fir")
            )
            .absolute(s.firs_received);
            metrics::counter!("switchboard_keyframe_requests_sent_total", &l)
                .absolute(s.keyframe_requests);
            metrics::counter!("switchboard_layer_switches_total", &l).absolute(s.layer_switches);
            metrics::counter!("switchboard_subscription_pauses_total", &l)
                .absolute(s.subscription_pauses);
            metrics::counter!("switchboard_peer_panics_total", &l).absolute(s.peer_panics);
            metrics::counter!("switchboard_peer_clock_advances_total", &l)
                .absolute(s.clock_advances);
            for (dir, v) in [
                ("in", s.data_in),
                ("out", s.data_out),
                ("dropped", s.data_dropped),
            ] {
                metrics::counter!(
                    "switchboard_data_channel_messages_total",
                    &with("direction", dir)
                )
                .absolute(v);
            }
            metrics::gauge!("switchboard_worker_participants", &l).set(w.load.load(Relaxed) as f64);
            metrics::gauge!("switchboard_worker_command_queue", &l)
                .set(w.tel.queued.load(Relaxed) as f64);
            // Busy ratio and packet rate over the last tick.
            let now = Instant::now();
            let busy = w.tel.busy_ns.load(Relaxed);
            let wall = now.saturating_duration_since(prev.0).as_nanos().max(1) as f64;
            metrics::gauge!("switchboard_worker_busy_ratio", &l)
                .set((busy.saturating_sub(prev.1) as f64 / wall).min(1.0));
            let rate = (s.datagrams_in.saturating_sub(prev.2) as f64 * 1e9 / wall) as u64;
            w.tel.packet_rate.store(rate, Relaxed);
            metrics::gauge!("switchboard_worker_packet_rate", &l).set(rate as f64);
            *prev = (now, busy, s.datagrams_in);
            tracks += s.tracks;
            subscriptions += s.subscriptions;
        }
        metrics::gauge!("switchboard_published_tracks").set(tracks as f64);
        metrics::gauge!("switchboard_subscriptions").set(subscriptions as f64);
        let rooms = hub.list_rooms();
        metrics::gauge!("switchboard_rooms").set(rooms.len() as f64);
        metrics::gauge!("switchboard_participants")
            .set(rooms.iter().map(|r| r.num_participants).sum::<usize>() as f64);
        metrics::gauge!("switchboard_draining").set(if hub.is_draining() { 1.0 } else { 0.0 });
        if let Some(w) = hub.webhook_stats() {
            metrics::counter!("switchboard_webhooks_delivered_total")
                .absolute(w.delivered.load(Relaxed));
            metrics::counter!("switchboard_webhooks_failed_total").absolute(w.failed.load(Relaxed));
            metrics::counter!("switchboard_webhooks_dropped_total")
                .absolute(w.dropped.load(Relaxed));
        }
    }
}

//! What the harness measures, and the report it prints and writes.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency histograms record microseconds from 1 µs to 60 s with 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            samples: h.len(),
        }
    }
}

/// Running totals, shared by all participant tasks (behind a mutex; tasks flush in batches).
pub struct Agg {
    pub joins_attempted: u64,
    pub joins_ok: u64,
    pub join_failures: BTreeMap<String, u64>,
    pub join_ms: Histogram<u64>,
    pub latency: Histogram<u64>,
    /// Latency of the current second (for the timeline), reset each tick.
    pub latency_window: Histogram<u64>,
    pub packets: u64,
    pub bytes: u64,
    pub audio_packets: u64,
    pub video_packets: u64,
    pub window_bytes: u64,
    pub window_packets: u64,
    /// Sequence-number holes opened (minus those filled) in the current second.
    pub window_missing: i64,
    pub layers: BTreeMap<u8, u64>,
    pub missing: u64,
    pub nacks_sent: u64,
    pub nacks_received: u64,
    pub streams_expected: u64,
    pub streams_with_media: u64,
}

impl Default for Agg {
    fn default() -> Self {
        Self {
            joins_attempted: 0,
            joins_ok: 0,
            join_failures: BTreeMap::new(),
            join_ms: latency_histogram(),
            latency: latency_histogram(),
            latency_window: latency_histogram(),
            packets: 0,
            bytes: 0,
            audio_packets: 0,
            video_packets: 0,
            window_bytes: 0,
            window_packets: 0,
            window_missing: 0,
            layers: BTreeMap::new(),
            missing: 0,
            nacks_sent: 0,
            nacks_received: 0,
            streams_expected: 0,
            streams_with_media: 0,
        }
    }
}

impl Agg {
    pub fn record_latency_us(&mut self, us: u64) {
        let v = us.clamp(1, 60_000_000);
        let _ = self.latency.record(v);
        let _ = self.latency_window.record(v);
    }

    pub fn fail_join(&mut self, reason: impl Into<String>) {
        *self.join_failures.entry(reason.into()).or_default() += 1;
    }

    /// Close the current one-second window.
    pub fn tick(&mut self, t: Duration, server: Option<(f64, u64)>) -> TimelinePoint {
        let p = TimelinePoint {
            t: t.as_secs_f64(),
            mbps: self.window_bytes as f64 * 8.0 / 1e6,
            packets: self.window_packets,
            p50_ms: Percentiles::of(&self.latency_window).p50,
            p99_ms: Percentiles::of(&self.latency_window).p99,
            server_cpu: server.map(|s| s.0),
            server_rss_mb: server.map(|s| s.1 as f64 / 1e6),
            joined: self.joins_ok,
            missing: self.window_missing.max(0) as u64,
        };
        self.window_missing = 0;
        self.window_bytes = 0;
        self.window_packets = 0;
        self.latency_window.reset();
        p
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelinePoint {
    pub t: f64,
    /// Received by all subscribers in this second.
    pub mbps: f64,
    pub packets: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Server CPU use in this second (1.0 = one core).
    pub server_cpu: Option<f64>,
    pub server_rss_mb: Option<f64>,
    pub joined: u64,
    /// Packets missing at subscribers that went missing in this second (net of repairs).
    pub missing: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JoinReport {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: BTreeMap<String, u64>,
    /// From opening the signaling connection to the first media packet received (or to
    /// the publisher connection being up, for a participant with nobody to watch).
    pub time_ms: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReceiveReport {
    pub packets: u64,
    pub bytes: u64,
    pub audio_packets: u64,
    pub video_packets: u64,
    pub mbps: f64,
    pub streams_expected: u64,
    pub streams_with_media: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LossReport {
    /// Sequence numbers never received, between the first and last of each stream.
    pub missing_packets: u64,
    pub loss_pct: f64,
    pub nacks_sent_by_subscribers: u64,
    pub nacks_received_by_publishers: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// (pid, CPU seconds in the window) of each server process (several for mediasoup:
    /// the Node process first, then its workers).
    pub cpu_seconds_by_process: Vec<(u32, f64)>,
    /// Server CPU time divided by the packets the subscribers received in the measured
    /// window (each forwarded packet reaches one subscriber).
    pub cpu_us_per_forwarded_packet: f64,
    /// Peak RSS during the run.
    pub rss_mb: f64,
    /// RSS before the first participant joined.
    pub baseline_rss_mb: f64,
    /// (peak − baseline) / subscribed tracks.
    pub rss_kb_per_subscribed_track: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub scenario: crate::scenario::ScenarioArgs,
    pub measured_seconds: f64,
    pub joins: JoinReport,
    pub received: ReceiveReport,
    pub latency_ms: Percentiles,
    pub loss: LossReport,
    /// Video packets received per simulcast layer (q, h, f).
    pub layers: BTreeMap<String, u64>,
    pub server: Option<ServerReport>,
    /// The harness's CPU time in the measured window (as the server's).
    pub harness_cpu_seconds: f64,
    pub timeline: Vec<TimelinePoint>,
}

impl Report {
    /// A human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let l = &self.latency_ms;
        let row = |s: &mut String, k: &str, v: String| s.push_str(&format!("  {k:<34} {v}\n"));
        s.push_str(&format!(
            "== {} — {:?}, {:.1} s measured\n",
            self.target, self.scenario.scenario, self.measured_seconds
        ));
        row(
            &mut s,
            "joins (ok / attempted)",
            format!("{} / {}", self.joins.succeeded, self.joins.attempted),
        );
        for (why, n) in &self.joins.failed {
            row(&mut s, &format!("  failed: {why}"), n.to_string());
        }
        row(
            &mut s,
            "join time p50 / p95 / max (ms)",
            format!(
                "{:.1} / {:.1} / {:.1}",
                self.joins.time_ms.p50, self.joins.time_ms.p95, self.joins.time_ms.max
            ),
        );
        row(
            &mut s,
            "streams with media / expected",
            format!(
                "{} / {}",
                self.received.streams_with_media, self.received.streams_expected
            ),
        );
        row(
            &mut s,
            "received packets (audio / video)",
            format!(
                "{} ({} / {})",
                self.received.packets, self.received.audio_packets, self.received.video_packets
            ),
        );
        row(
            &mut s,
            "received Mbps",
            format!("{:.2}", self.received.mbps),
        );
        row(
            &mut s,
            "one-way latency p50/p95/p99/max ms",
            format!("{:.2} / {:.2} / {:.2} / {:.2}", l.p50, l.p95, l.p99, l.max),
        );
        row(
            &mut s,
            "missing packets (loss %)",
            format!(
                "{} ({:.3} %)",
                self.loss.missing_packets, self.loss.loss_pct
            ),
        );
        row(
            &mut s,
            "NACKs sent / received",
            format!(
                "{} / {}",
                self.loss.nacks_sent_by_subscribers, self.loss.nacks_received_by_publishers
            ),
        );
        row(&mut s, "layers received", format!("{:?}", self.layers));
        if let Some(sv) = &self.server {
            row(&mut s, "server CPU s", format!("{:.2}", sv.cpu_seconds));
            row(
                &mut s,
                "server CPU µs / forwarded packet",
                format!("{:.2}", sv.cpu_us_per_forwarded_packet),
            );
            row(
                &mut s,
                "server RSS MB (baseline; KB / sub. track)",
                format!(
                    "{:.1} ({:.1}; {:.1})",
                    sv.rss_mb, sv.baseline_rss_mb, sv.rss_kb_per_subscribed_track
                ),
            );
        }
        row(
            &mut s,
            "harness CPU s",
            format!("{:.2}", self.harness_cpu_seconds),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_windows() {
        let mut a = Agg::default();
        for us in 1..=1000u64 {
            a.record_latency_us(us * 10); // 10 µs .. 10 ms, uniform
        }
        let p = Percentiles::of(&a.latency);
        assert!((p.p50 - 5.0).abs() < 0.05, "{p:?}");
        assert!((p.p99 - 9.9).abs() < 0.05, "{p:?}");
        assert!((p.max - 10.0).abs() < 0.02, "{p:?}");
        assert_eq!(p.samples, 1000);
        a.window_bytes = 125_000;
        let t = a.tick(Duration::from_secs(1), Some((0.5, 10_000_000)));
        assert!((t.mbps - 1.0).abs() < 1e-9);
        assert!((t.p50_ms - 5.0).abs() < 0.05);
        // the window resets, the totals do not
        let t2 = a.tick(Duration::from_secs(2), None);
        assert_eq!((t2.mbps, t2.p99_ms), (0.0, 0.0));
        assert_eq!(Percentiles::of(&a.latency).samples, 1000);
        // out-of-range samples are clamped, not lost or panicking
        a.record_latency_us(0);
        a.record_latency_us(u64::MAX);
        assert_eq!(Percentiles::of(&a.latency).samples, 1002);
        assert_eq!(
            Percentiles::of(&latency_histogram()),
            Percentiles::default()
        );
    }
}

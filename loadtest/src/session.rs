//! The media side of one simulated participant, shared by every target: a testkit str0m
//! client on two real UDP sockets, driven until the run ends, with its measurements
//! flushed into the shared aggregate. The signaling side is a [`Signal`] per target.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu_core::testkit::SimClient;
use sfu_core::{ParticipantId, TrackKind};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::driver::Ctx;
use crate::metrics::Agg;
use crate::scenario::Plan;

/// The tracks a rival's subscribe offer carries, from a JSON list in which each entry
/// names its kind, mid and publisher under the given keys (Janus: `type`/`mid`/`feed_id`;
/// the mediasoup bridge: `kind`/`mid`/`publisher`). Entries of other kinds are skipped.
pub fn offered_tracks(list: &Value, kind: &str, publisher: &str) -> Vec<sfu_core::OfferedTrack> {
    list.as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let kind = match t[kind].as_str()? {
                        "audio" => TrackKind::Audio,
                        "video" => TrackKind::Video,
                        _ => return None,
                    };
                    Some(sfu_core::OfferedTrack {
                        mid: t["mid"].as_str()?.to_string(),
                        track: sfu_core::TrackId(i as u64),
                        publisher: ParticipantId(t[publisher].as_u64().unwrap_or(0)),
                        kind,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A target's signaling, as the media loop sees it.
pub trait Signal {
    /// A message from the server (WebSocket message, Janus event).
    async fn on_message(
        &mut self,
        v: Value,
        client: &mut SimClient,
        ctx: &Ctx,
    ) -> Result<(), String>;
    /// Called about every 250 ms (keepalives, deferred subscriptions).
    async fn tick(&mut self, client: &mut SimClient, ctx: &Ctx) -> Result<(), String>;
    /// Leave cleanly.
    async fn leave(&mut self);
}

/// Totals already flushed into the shared aggregate, per m-line.
#[derive(Default)]
struct Flushed {
    packets: BTreeMap<String, (u64, u64)>,
    gaps: BTreeMap<String, i64>,
}

fn flush(client: &mut SimClient, flushed: &mut Flushed, agg: &mut Agg) {
    for (mid, r) in client.received.iter_mut() {
        for us in r.latencies_us.drain(..) {
            agg.record_latency_us(us);
        }
        let prev = flushed.packets.entry(mid.clone()).or_default();
        let (dp, db) = (r.packets - prev.0, r.bytes - prev.1);
        *prev = (r.packets, r.bytes);
        // Holes in the sequence numbers (a retransmission that fills one later counts back).
        let gaps = r.gaps() as i64;
        let g = flushed.gaps.entry(mid.clone()).or_default();
        agg.window_missing += gaps - *g;
        *g = gaps;
        agg.packets += dp;
        agg.bytes += db;
        agg.window_packets += dp;
        agg.window_bytes += db;
        match r.kind {
            Some(TrackKind::Audio) => agg.audio_packets += dp,
            Some(TrackKind::Video) => agg.video_packets += dp,
            None => {}
        }
    }
}

pub struct Media {
    pub client: SimClient,
    pub_sock: UdpSocket,
    sub_sock: UdpSocket,
    pub pub_addr: SocketAddr,
    pub sub_addr: SocketAddr,
}

impl Media {
    pub async fn bind(ctx: &Ctx, plan: &Plan, id: ParticipantId) -> Result<Self, String> {
        use rand::SeedableRng;
        let pub_sock = UdpSocket::bind(SocketAddr::new(ctx.bind_ip, 0))
            .await
            .map_err(|e| format!("udp bind: {e}"))?;
        let sub_sock = UdpSocket::bind(SocketAddr::new(ctx.bind_ip, 0))
            .await
            .map_err(|e| format!("udp bind: {e}"))?;
        let pub_addr = pub_sock.local_addr().map_err(|e| e.to_string())?;
        let sub_addr = sub_sock.local_addr().map_err(|e| e.to_string())?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ id.0);
        let client = SimClient::new(
            Instant::now(),
            ctx.origin,
            id,
            plan.spec.clone(),
            pub_addr,
            sub_addr,
            &mut rng,
        );
        Ok(Self {
            client,
            pub_sock,
            sub_sock,
            pub_addr,
            sub_addr,
        })
    }

    /// Run until the context's leave time. `started` is when joining began.
    pub async fn run<S: Signal>(
        &mut self,
        sig: &mut S,
        events: &mut mpsc::Receiver<Value>,
        ctx: &Ctx,
        plan: &Plan,
        started: Instant,
    ) -> Result<(), String> {
        let mut flushed = Flushed::default();
        let mut joined_at: Option<Instant> = None;
        let mut next_tick = Instant::now() + Duration::from_millis(250);
        let (mut b1, mut b2) = (vec![0u8; 2048], vec![0u8; 2048]);
        let mut out = Vec::new();
        let wants_media = plan.spec.subscribe;
        let mut result = Ok(());
        loop {
            let now = Instant::now();
            if now >= ctx.leave_at {
                break;
            }
            let wake = self
                .client
                .next_wake()
                .unwrap_or(now + Duration::from_millis(20))
                .min(next_tick)
                .min(ctx.leave_at)
                .max(now);
            tokio::select! {
                r = self.pub_sock.recv_from(&mut b1) => if let Ok((n, from)) = r {
                    self.client.receive(Instant::now(), from, self.pub_addr, &b1[..n]);
                },
                r = self.sub_sock.recv_from(&mut b2) => if let Ok((n, from)) = r {
                    self.client.receive(Instant::now(), from, self.sub_addr, &b2[..n]);
                },
                m = events.recv() => match m {
                    Some(v) => if let Err(e) = sig.on_message(v, &mut self.client, ctx).await {
                        result = Err(e);
                        break;
                    },
                    None => {
                        result = Err("signaling closed by the server".into());
                        break;
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            self.client.timeout(now);
            if now < ctx.produce_until {
                self.client.produce(now);
            }
            self.client
                .drain(now, |src, dst, data| out.push((src, dst, data)));
            for (src, dst, data) in out.drain(..) {
                if ctx.allowed.check_addr(dst).is_err() {
                    continue; // never send anywhere else, whatever a server says
                }
                let sock = if src == self.pub_addr {
                    &self.pub_sock
                } else {
                    &self.sub_sock
                };
                let _ = sock.send_to(&data, dst).await;
            }
            if joined_at.is_none() {
                let done = if wants_media {
                    self.client.received.values().any(|r| r.packets > 0)
                } else {
                    self.client.connected
                };
                if done {
                    joined_at = Some(now);
                    let mut a = ctx.agg.lock();
                    a.joins_ok += 1;
                    let _ = a.join_ms.record((now - started).as_micros().max(1) as u64);
                }
            }
            if now >= next_tick {
                next_tick = now + Duration::from_millis(250);
                flush(&mut self.client, &mut flushed, &mut ctx.agg.lock());
                if let Err(e) = sig.tick(&mut self.client, ctx).await {
                    result = Err(e);
                    break;
                }
            }
        }
        sig.leave().await;
        let mut a = ctx.agg.lock();
        flush(&mut self.client, &mut flushed, &mut a);
        for r in self.client.received.values() {
            a.missing += r.gaps();
            if r.packets > 0 {
                a.streams_with_media += 1;
            }
            if r.kind == Some(TrackKind::Video) {
                for (l, n) in &r.layers {
                    *a.layers.entry(*l).or_default() += n;
                }
            }
        }
        let (sent, received) = self.client.nacks();
        a.nacks_sent += sent;
        a.nacks_received += received;
        result?;
        if joined_at.is_none() {
            return Err(if self.client.connected || !plan.spec.publishes() {
                "no media received"
            } else {
                "media connection not established"
            }
            .into());
        }
        Ok(())
    }
}

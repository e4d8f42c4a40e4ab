//! One simulated participant against a Switchboard server: the WebSocket signaling
//! protocol, and a testkit str0m client on two real UDP sockets.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use rand::SeedableRng;
use serde_json::{json, Value};
use sfu_core::testkit::SimClient;
use sfu_core::{OfferedTrack, ParticipantId, TrackId, TrackKind};
use signaling::{Claims, KeyStore, VideoGrant};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::guard::Allowed;
use crate::metrics::Agg;
use crate::scenario::Plan;

/// What every participant task shares.
pub struct Ctx {
    pub origin: Instant,
    pub agg: Mutex<Agg>,
    pub allowed: Allowed,
    pub ws_url: String,
    pub keys: KeyStore,
    pub key: String,
    /// Publishers stop sending at this instant…
    pub produce_until: Instant,
    /// …and everyone leaves at this one (the gap lets retransmissions land).
    pub leave_at: Instant,
    /// Local address for the media sockets.
    pub bind_ip: IpAddr,
    pub seed: u64,
}

impl Ctx {
    fn token(&self, room: &str, identity: &str) -> Option<String> {
        let claims = Claims {
            iss: self.key.clone(),
            sub: identity.to_string(),
            exp: signaling::auth::unix_now() + 3_600,
            nbf: None,
            name: Some(identity.to_string()),
            video: VideoGrant { room: room.to_string(), room_join: true, can_publish: true, can_subscribe: true },
        };
        self.keys.mint(&self.key, &claims)
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn offered_tracks(v: &Value) -> Vec<OfferedTrack> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(OfferedTrack {
                        mid: t["mid"].as_str()?.to_string(),
                        track: TrackId(t["track"].as_u64()?),
                        publisher: ParticipantId(t["publisher"].as_u64()?),
                        kind: if t["kind"] == "audio" { TrackKind::Audio } else { TrackKind::Video },
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Totals already flushed into the shared aggregate.
#[derive(Default)]
struct Flushed {
    packets: BTreeMap<String, (u64, u64)>,
}

fn flush(client: &mut SimClient, flushed: &mut Flushed, agg: &mut Agg) {
    for (mid, r) in client.received.iter_mut() {
        for us in r.latencies_us.drain(..) {
            agg.record_latency_us(us);
        }
        let prev = flushed.packets.entry(mid.clone()).or_default();
        let (dp, db) = (r.packets - prev.0, r.bytes - prev.1);
        *prev = (r.packets, r.bytes);
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

/// Run one participant from join to leave. Failures are counted in the aggregate, never
/// returned: a load test reports them.
pub async fn run(plan: Plan, ctx: Arc<Ctx>) {
    ctx.agg.lock().joins_attempted += 1;
    if let Err(reason) = run_inner(&plan, &ctx).await {
        ctx.agg.lock().fail_join(reason);
    }
}

async fn run_inner(plan: &Plan, ctx: &Ctx) -> Result<(), String> {
    let started = Instant::now();
    let (mut ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(ctx.ws_url.as_str()))
        .await
        .map_err(|_| "signaling connect timeout".to_string())?
        .map_err(|e| format!("signaling connect: {}", short(&e.to_string())))?;
    let token = ctx.token(&plan.room, &plan.name).ok_or("token minting failed")?;
    send(&mut ws, json!({"type": "join", "token": token, "version": 1})).await?;
    let joined = tokio::time::timeout(CONNECT_TIMEOUT, next_json(&mut ws))
        .await
        .map_err(|_| "join timeout".to_string())??;
    if joined["type"] != "joined" {
        return Err(format!("join refused: {}", joined["code"].as_str().unwrap_or("?")));
    }
    let id = ParticipantId(joined["participant"]["id"].as_u64().ok_or("joined without id")?);
    let pub_sock = UdpSocket::bind(SocketAddr::new(ctx.bind_ip, 0)).await.map_err(|e| format!("udp bind: {e}"))?;
    let sub_sock = UdpSocket::bind(SocketAddr::new(ctx.bind_ip, 0)).await.map_err(|e| format!("udp bind: {e}"))?;
    let (pub_addr, sub_addr) = (pub_sock.local_addr().map_err(|e| e.to_string())?, sub_sock.local_addr().map_err(|e| e.to_string())?);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ id.0);
    let mut client = SimClient::new(Instant::now(), ctx.origin, id, plan.spec.clone(), pub_addr, sub_addr, &mut rng);
    if let Some(offer) = client.make_offer() {
        send(&mut ws, json!({"type": "publish_offer", "sdp": offer})).await?;
    }
    let mut flushed = Flushed::default();
    let mut joined_at: Option<Instant> = None;
    let mut next_flush = Instant::now() + Duration::from_millis(250);
    let (mut b1, mut b2) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut out = Vec::new();
    let wants_media = plan.spec.subscribe;
    loop {
        let now = Instant::now();
        if now >= ctx.leave_at {
            break;
        }
        let wake = client.next_wake().unwrap_or(now + Duration::from_millis(20)).min(next_flush).min(ctx.leave_at).max(now);
        tokio::select! {
            r = pub_sock.recv_from(&mut b1) => if let Ok((n, from)) = r {
                client.receive(Instant::now(), from, pub_addr, &b1[..n]);
            },
            r = sub_sock.recv_from(&mut b2) => if let Ok((n, from)) = r {
                client.receive(Instant::now(), from, sub_addr, &b2[..n]);
            },
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("publish_answer") => {
                            let sdp = v["sdp"].as_str().unwrap_or("");
                            ctx.allowed.check_sdp(sdp).map_err(|e| e.to_string())?;
                            client.accept_publish_answer(sdp);
                        }
                        Some("subscribe_offer") => {
                            let sdp = v["sdp"].as_str().unwrap_or("");
                            ctx.allowed.check_sdp(sdp).map_err(|e| e.to_string())?;
                            if let Some(answer) = client.accept_subscribe_offer(sdp, offered_tracks(&v["tracks"])) {
                                send(&mut ws, json!({"type": "subscribe_answer", "sdp": answer})).await?;
                            }
                        }
                        Some("error") => tracing::debug!(participant = %plan.name, "server error: {v}"),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => return Err("signaling closed by the server".into()),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        client.timeout(now);
        if now < ctx.produce_until {
            client.produce(now);
        }
        client.drain(now, |src, dst, data| out.push((src, dst, data)));
        for (src, dst, data) in out.drain(..) {
            if ctx.allowed.check_addr(dst).is_err() {
                continue; // never send anywhere else, whatever the server says
            }
            let sock = if src == pub_addr { &pub_sock } else { &sub_sock };
            let _ = sock.send_to(&data, dst).await;
        }
        if joined_at.is_none() {
            let done = if wants_media { client.received.values().any(|r| r.packets > 0) } else { client.connected };
            if done {
                joined_at = Some(now);
                let mut a = ctx.agg.lock();
                a.joins_ok += 1;
                let _ = a.join_ms.record((now - started).as_micros().max(1) as u64);
            }
        }
        if now >= next_flush {
            next_flush = now + Duration::from_millis(250);
            flush(&mut client, &mut flushed, &mut ctx.agg.lock());
        }
    }
    let _ = send(&mut ws, json!({"type": "leave"})).await;
    let mut a = ctx.agg.lock();
    flush(&mut client, &mut flushed, &mut a);
    for r in client.received.values() {
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
    let (sent, received) = client.nacks();
    a.nacks_sent += sent;
    a.nacks_received += received;
    if joined_at.is_none() {
        drop(a);
        return Err(if client.connected || !plan.spec.publishes() { "no media received" } else { "media connection not established" }.into());
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

async fn send(ws: &mut Ws, v: Value) -> Result<(), String> {
    ws.send(Message::Text(v.to_string().into())).await.map_err(|e| format!("signaling send: {}", short(&e.to_string())))
}

async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).map_err(|e| e.to_string()),
            Some(Ok(_)) => continue,
            _ => return Err("signaling closed during join".into()),
        }
    }
}

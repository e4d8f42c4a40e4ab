//! Switchboard as a target: its WebSocket signaling protocol (docs/protocol.md).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use sfu_core::testkit::SimClient;
use sfu_core::{OfferedTrack, ParticipantId, TrackId, TrackKind};
use signaling::{Claims, KeyStore, VideoGrant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::guard::Allowed;
use crate::metrics::Agg;
use crate::scenario::Plan;
use crate::session::{Media, Signal};

/// Which kind of server the participants talk to.
#[derive(Debug, Clone)]
pub enum TargetKind {
    Switchboard {
        ws_url: String,
        keys: KeyStore,
        key: String,
    },
    /// Janus VideoRoom over its HTTP API at this base URL (`http://IP:8088/janus`).
    Janus { base: String },
    /// mediasoup through the bridge in `loadtest/mediasoup/` (`http://IP:PORT`).
    Mediasoup { base: String },
}

/// What every participant task shares.
pub struct Ctx {
    pub origin: Instant,
    pub agg: Mutex<Agg>,
    pub allowed: Allowed,
    pub target: TargetKind,
    /// Publishers stop sending at this instant…
    pub produce_until: Instant,
    /// …and everyone leaves at this one (the gap lets retransmissions land).
    pub leave_at: Instant,
    /// Local address for the media sockets.
    pub bind_ip: IpAddr,
    pub seed: u64,
    /// Publishers expected per room (Janus subscribers wait for all of them).
    pub publishers_per_room: usize,
}

type WsSink = SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Run one participant from join to leave. Failures are counted in the aggregate, never
/// returned: a load test reports them.
pub async fn run(plan: Plan, ctx: Arc<Ctx>) {
    ctx.agg.lock().joins_attempted += 1;
    let r = match &ctx.target {
        TargetKind::Switchboard { ws_url, keys, key } => {
            run_switchboard(&plan, &ctx, ws_url, keys, key).await
        }
        TargetKind::Janus { base } => crate::janus::run(&plan, &ctx, base).await,
        TargetKind::Mediasoup { base } => crate::mediasoup::run(&plan, &ctx, base).await,
    };
    if let Err(reason) = r {
        ctx.agg.lock().fail_join(reason);
    }
}

struct SwitchboardSignal {
    sink: WsSink,
}

fn offered_tracks(v: &Value) -> Vec<OfferedTrack> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(OfferedTrack {
                        mid: t["mid"].as_str()?.to_string(),
                        track: TrackId(t["track"].as_u64()?),
                        publisher: ParticipantId(t["publisher"].as_u64()?),
                        kind: if t["kind"] == "audio" {
                            TrackKind::Audio
                        } else {
                            TrackKind::Video
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl SwitchboardSignal {
    async fn send(&mut self, v: Value) -> Result<(), String> {
        self.sink
            .send(Message::Text(v.to_string().into()))
            .await
            .map_err(|e| format!("signaling send: {}", short(&e.to_string())))
    }
}

impl Signal for SwitchboardSignal {
    async fn on_message(
        &mut self,
        v: Value,
        client: &mut SimClient,
        ctx: &Ctx,
    ) -> Result<(), String> {
        match v["type"].as_str() {
            Some("publish_answer") => {
                let sdp = v["sdp"].as_str().unwrap_or("");
                ctx.allowed.check_sdp(sdp).map_err(|e| e.to_string())?;
                client.accept_publish_answer(sdp);
            }
            Some("subscribe_offer") => {
                let sdp = v["sdp"].as_str().unwrap_or("");
                ctx.allowed.check_sdp(sdp).map_err(|e| e.to_string())?;
                if let Some(answer) =
                    client.accept_subscribe_offer(sdp, offered_tracks(&v["tracks"]))
                {
                    self.send(json!({"type": "subscribe_answer", "sdp": answer}))
                        .await?;
                }
            }
            Some("error") => tracing::debug!("server error: {v}"),
            _ => {}
        }
        Ok(())
    }

    async fn tick(&mut self, _client: &mut SimClient, _ctx: &Ctx) -> Result<(), String> {
        Ok(())
    }

    async fn leave(&mut self) {
        let _ = self.send(json!({"type": "leave"})).await;
    }
}

fn token(keys: &KeyStore, key: &str, room: &str, identity: &str) -> Option<String> {
    let claims = Claims {
        iss: key.to_string(),
        sub: identity.to_string(),
        exp: signaling::auth::unix_now() + 3_600,
        nbf: None,
        kind: Default::default(),
        metadata: None,
        name: Some(identity.to_string()),
        attributes: Default::default(),
        sip: Default::default(),
        video: VideoGrant::join(room),
    };
    keys.mint(key, &claims)
}

async fn run_switchboard(
    plan: &Plan,
    ctx: &Ctx,
    ws_url: &str,
    keys: &KeyStore,
    key: &str,
) -> Result<(), String> {
    let started = Instant::now();
    let (ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(ws_url))
        .await
        .map_err(|_| "signaling connect timeout".to_string())?
        .map_err(|e| format!("signaling connect: {}", short(&e.to_string())))?;
    let (sink, mut stream) = ws.split();
    let (tx, mut events) = mpsc::channel::<Value>(256);
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if tx.send(v).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut sig = SwitchboardSignal { sink };
    let token = token(keys, key, &plan.room, &plan.name).ok_or("token minting failed")?;
    sig.send(json!({"type": "join", "token": token, "version": 1}))
        .await?;
    let joined = tokio::time::timeout(CONNECT_TIMEOUT, events.recv())
        .await
        .map_err(|_| "join timeout".to_string())?
        .ok_or("signaling closed during join")?;
    if joined["type"] != "joined" {
        return Err(format!(
            "join refused: {}",
            joined["code"].as_str().unwrap_or("?")
        ));
    }
    let id = ParticipantId(
        joined["participant"]["id"]
            .as_u64()
            .ok_or("joined without id")?,
    );
    let mut media = Media::bind(ctx, plan, id).await?;
    if let Some(offer) = media.client.make_offer() {
        sig.send(json!({"type": "publish_offer", "sdp": offer}))
            .await?;
    }
    media.run(&mut sig, &mut events, ctx, plan, started).await
}

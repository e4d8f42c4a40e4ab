//! Webhooks: room and participant events POSTed as JSON to configured URLs, signed so the
//! receiver can check body and sender, delivered asynchronously with retries. Each
//! receiver has its own bounded queue and its own delivery task: a slow or dead receiver
//! delays only its own events, never another receiver's, media or signaling (its full
//! queue drops and counts: `dropped`).
//!
//! Signature scheme (documented in docs/api.md): headers
//! `X-Switchboard-Key: <api key>` and
//! `X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! where `secret` is that API key's secret. Receivers recompute the HMAC over the exact
//! body bytes, compare in constant time, and reject stale `t` (replays).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::auth::unix_now;
use crate::hub::RoomInfo;
use crate::protocol::{ParticipantInfo, TrackInfo};

/// Events waiting for delivery to one receiver before new ones are dropped.
pub const QUEUE: usize = 1024;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct WebhookEvent {
    /// Unique per event; receivers may use it to drop duplicates after retries.
    pub id: String,
    /// `room_started`, `room_finished`, `participant_joined`, `participant_left`,
    /// `track_published`, `track_unpublished`; with the SIP gateway `sip_call_started`,
    /// `sip_call_answered`, `sip_call_ended` (with `sip_call.end_cause`) and `sip_dtmf`
    /// (with `digit`).
    pub event: String,
    /// Unix seconds.
    pub created_at: u64,
    pub room: RoomInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_call: Option<crate::sip_calls::SipCallInfo>,
    /// `sip_dtmf`: the digit typed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digit: Option<String>,
}

static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

impl WebhookEvent {
    fn new(event: &str, room: &RoomInfo) -> Self {
        Self {
            id: format!(
                "EV_{:x}_{}",
                unix_now(),
                NEXT_EVENT.fetch_add(1, Ordering::Relaxed)
            ),
            event: event.to_string(),
            created_at: unix_now(),
            room: room.clone(),
            participant: None,
            track: None,
            sip_call: None,
            digit: None,
        }
    }

    pub fn sip(event: &str, room: &RoomInfo, call: &crate::sip_calls::SipCallInfo) -> Self {
        Self {
            sip_call: Some(call.clone()),
            ..Self::new(event, room)
        }
    }

    pub fn room(event: &str, room: &RoomInfo) -> Self {
        Self::new(event, room)
    }

    pub fn participant(event: &str, room: &RoomInfo, p: &ParticipantInfo) -> Self {
        Self {
            participant: Some(p.clone()),
            ..Self::new(event, room)
        }
    }

    pub fn track(event: &str, room: &RoomInfo, p: &ParticipantInfo, t: &TrackInfo) -> Self {
        Self {
            participant: Some(p.clone()),
            track: Some(t.clone()),
            ..Self::new(event, room)
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub key: String,
    pub secret: String,
    /// Delivery attempts per URL (first try included).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub backoff: Duration,
    pub timeout: Duration,
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
}

/// The sending side, held by the hub: one queue per receiver.
#[derive(Clone)]
pub struct Webhooks {
    queues: Vec<mpsc::Sender<Arc<WebhookEvent>>>,
    pub stats: Arc<WebhookStats>,
}

/// The delivery tasks (one per receiver); run it on the control plane's runtime.
pub struct WebhookWorker {
    queues: Vec<(String, mpsc::Receiver<Arc<WebhookEvent>>)>,
    cfg: WebhookConfig,
    stats: Arc<WebhookStats>,
}

impl Webhooks {
    pub fn new(cfg: WebhookConfig) -> (Self, WebhookWorker) {
        let (queues, receivers): (Vec<_>, Vec<_>) = cfg
            .urls
            .iter()
            .map(|url| {
                let (tx, rx) = mpsc::channel(QUEUE);
                (tx, (url.clone(), rx))
            })
            .unzip();
        let stats = Arc::new(WebhookStats::default());
        (
            Self {
                queues,
                stats: stats.clone(),
            },
            WebhookWorker {
                queues: receivers,
                cfg,
                stats,
            },
        )
    }

    /// Queue an event for every receiver; never blocks. A receiver whose queue is full
    /// misses it (counted and logged); the others do not.
    pub fn send(&self, e: WebhookEvent) {
        let e = Arc::new(e);
        for q in &self.queues {
            if q.try_send(e.clone()).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("switchboard_webhooks_dropped_total").increment(1);
                tracing::warn!(event = %e.event, "a webhook receiver's queue is full: event dropped for it");
            }
        }
    }
}

/// `t=<t>,v1=<hex>` for `body` at time `t`.
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Check a signature header against `body` (constant-time), accepting timestamps within
/// `tolerance` seconds of `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: u64, tolerance: u64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (t, v1) else {
        return false;
    };
    if t.abs_diff(now) > tolerance {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = t.to_string().into_bytes();
    msg.push(b'.');
    msg.extend_from_slice(body);
    hmac::verify(&key, &msg, &sig).is_ok()
}

impl WebhookWorker {
    /// Deliver until the hub is gone: every receiver at its own pace.
    pub async fn run(self) {
        let client = match reqwest::Client::builder().timeout(self.cfg.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhook client");
                return;
            }
        };
        let cfg = Arc::new(self.cfg);
        let tasks: Vec<_> = self
            .queues
            .into_iter()
            .map(|(url, rx)| {
                let receiver = Receiver {
                    url,
                    client: client.clone(),
                    cfg: cfg.clone(),
                    stats: self.stats.clone(),
                };
                tokio::spawn(receiver.deliver_all(rx))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// One receiver's delivery: its events in order, each with its retries.
struct Receiver {
    url: String,
    client: reqwest::Client,
    cfg: Arc<WebhookConfig>,
    stats: Arc<WebhookStats>,
}

impl Receiver {
    async fn deliver_all(self, mut rx: mpsc::Receiver<Arc<WebhookEvent>>) {
        while let Some(e) = rx.recv().await {
            let Ok(body) = serde_json::to_vec(&*e) else {
                continue;
            };
            if self.deliver(&e, body).await {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event = %e.event, id = %e.id, url = %self.url, "webhook delivery failed after retries");
            }
        }
    }

    /// One event, retried with backoff: whether the receiver took it.
    async fn deliver(&self, e: &WebhookEvent, body: Vec<u8>) -> bool {
        let mut wait = self.cfg.backoff;
        for attempt in 0..self.cfg.attempts.max(1) {
            if attempt > 0 {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            let sig = sign(&self.cfg.secret, unix_now(), &body);
            let r = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-switchboard-key", &self.cfg.key)
                .header("x-switchboard-signature", sig)
                .header("x-switchboard-event-id", &e.id)
                .body(body.clone())
                .send()
                .await;
            if r.as_ref().is_ok_and(|r| r.status().is_success()) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that accepts connections and never answers; and one that answers 204
    /// and counts. Their URLs, and the count.
    async fn receivers() -> (String, String, Arc<AtomicU64>) {
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = dead.accept().await {
                held.push(s); // kept open, never answered
            }
        });
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move || {
                g.fetch_add(1, Ordering::Relaxed);
                std::future::ready(axum::http::StatusCode::NO_CONTENT)
            }),
        );
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_url = format!("http://{}/hook", live.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(live, app).await });
        (dead_url, live_url, got)
    }

    #[tokio::test]
    async fn a_dead_receiver_never_holds_back_another() {
        let (dead, live, got) = receivers().await;
        let (hooks, worker) = Webhooks::new(WebhookConfig {
            urls: vec![dead, live],
            key: "k".into(),
            secret: "s".into(),
            attempts: 3,
            backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
        });
        tokio::spawn(worker.run());
        let room = RoomInfo {
            name: "r".into(),
            sid: "RM_1".into(),
            empty_timeout: 0,
            max_participants: 0,
            metadata: String::new(),
            created_at: 0,
            num_participants: 0,
        };
        let t0 = std::time::Instant::now();
        for _ in 0..5 {
            hooks.send(WebhookEvent::room("room_started", &room));
        }
        while got.load(Ordering::Relaxed) < 5 && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Serially, the live receiver would wait 3 × 2 s (+ backoff) per event behind the
        // dead one: 33 s for five.
        assert_eq!(got.load(Ordering::Relaxed), 5);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    #[test]
    fn sign_and_verify() {
        let body = br#"{"event":"room_started"}"#;
        let h = sign("s3cret", 1_000, body);
        assert!(h.starts_with("t=1000,v1="));
        assert!(verify("s3cret", &h, body, 1_010, 300));
        assert!(!verify("other", &h, body, 1_010, 300), "wrong secret");
        assert!(!verify("s3cret", &h, b"{}", 1_010, 300), "tampered body");
        assert!(!verify("s3cret", &h, body, 2_000, 300), "stale timestamp");
        assert!(!verify("s3cret", "garbage", body, 1_000, 300));
        assert!(!verify("s3cret", "t=1000,v1=zz", body, 1_000, 300));
    }
}

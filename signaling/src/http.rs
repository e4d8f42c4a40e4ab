//! HTTP routes of the control plane: the WebSocket endpoint, health, and the development
//! token route.

use std::sync::Arc;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{unix_now, Claims, VideoGrant};
use crate::error::Error;
use crate::hub::{clean_name, valid_room_name, Hub};
use crate::ws::{session, MAX_MESSAGE};

/// Settings of the HTTP side.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    /// In development mode: the API key whose secret signs tokens handed out by
    /// `/api/dev/token`. `None` turns that route off.
    pub dev_key: Option<String>,
    /// REST requests per second and burst, per API key.
    pub rate: (f64, f64),
    /// The SIP gateway, when it runs.
    pub sip: Option<Arc<dyn crate::sip_calls::SipCalls>>,
}

pub fn router(state: AppState) -> Router {
    let api = crate::api::router(crate::api::ApiState {
        hub: state.hub.clone(),
        limiter: Arc::new(crate::api::RateLimiter::new(state.rate.0, state.rate.1)),
        sip: state.sip.clone(),
    });
    let whip = crate::whip::router(crate::whip::WhipState::new(state.hub.clone()));
    let hub = state.hub.clone();
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/dev/token", get(dev_token))
        .with_state(state)
        .merge(api)
        .merge(whip)
        .merge(crate::livekit::rtc::router(hub.clone()))
        // In a cluster: requests about rooms homed elsewhere go there.
        .layer(axum::middleware::from_fn_with_state(
            hub,
            crate::cluster_http::route_to_home,
        ))
}

/// Bytes a signaling connection reads at a time.
const WS_READ_BUFFER: usize = 4 * 1024;

async fn ws(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    let hub = s.hub.clone();
    // A relay from another node: its mark was verified on the way in (`route_to_home`).
    let forwarded = headers.contains_key(crate::cluster_http::FORWARDED);
    // Signaling messages are small and rare: tungstenite's 128 KiB read and write
    // buffers per connection were the largest per-participant allocation (more than
    // str0m's whole media state); larger messages still arrive, in more reads.
    up.max_message_size(MAX_MESSAGE)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session(hub, socket, forwarded))
}

#[derive(Deserialize)]
struct DevTokenQuery {
    room: Option<String>,
    name: Option<String>,
}

#[derive(Serialize)]
struct DevToken {
    token: String,
    room: String,
    identity: String,
}

async fn dev_token(State(s): State<AppState>, Query(q): Query<DevTokenQuery>) -> Response {
    let Some(key) = s.dev_key.as_deref() else {
        return Error::NotFound(
            "development tokens are off (the server is not in dev mode)".into(),
        )
        .into_response();
    };
    let room = q.room.unwrap_or_default();
    if !valid_room_name(&room) {
        return Error::from(crate::room_name::BadRoomName).into_response();
    }
    let name = clean_name(q.name.as_deref().unwrap_or(""), "guest");
    // Identities are unique per session in dev mode: the name plus a random suffix.
    let identity = format!(
        "{}-{:08x}",
        name.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(32)
            .collect::<String>(),
        rand::random::<u32>()
    );
    let claims = Claims {
        iss: key.to_string(),
        sub: identity.clone(),
        exp: unix_now() + 6 * 3600,
        nbf: None,
        kind: Default::default(),
        metadata: None,
        name: Some(name),
        attributes: Default::default(),
        sip: Default::default(),
        video: VideoGrant::join(&room),
    };
    match s.hub.keys().mint(key, &claims) {
        Some(token) => Json(DevToken {
            token,
            room,
            identity,
        })
        .into_response(),
        None => Error::Internal("the dev key is not configured".into()).into_response(),
    }
}

//! LiveKit's signal endpoint: `GET /rtc?access_token=…` upgraded to a WebSocket of
//! protobuf `SignalRequest`/`SignalResponse` frames (binary; a client that sends protobuf's
//! JSON mapping as text is answered in JSON), and `GET /rtc/validate`, which livekit-client
//! asks when a connection fails. The access token is checked and the participant admitted
//! before the upgrade, so a refusal is an HTTP status (which the SDKs turn into the right
//! error). `signal.rs` does the mapping; this carries frames.
//!
//! `/rtc/v1` (LiveKit's one-connection protocol) is not served: livekit-client asks
//! `/rtc/v1/validate`, gets 404, and uses `/rtc`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use livekit_protocol as lk;
use prost::Message as _;
use serde::Deserialize;
use sfu_core::ParticipantId;

use super::model;
use super::signal::{leave, rejoin, request_refused, Signal, Step};
use crate::auth::unix_now;
use crate::hub::{Hub, Now, Outbound};
use crate::message_budget::MessageBudget;
use crate::outbound::OutboundRx;
use crate::protocol::ServerMessage;
use crate::ws::{MAX_MESSAGE, WRITE_TIMEOUT};

/// How long the hub may take to confirm a join.
const JOINED_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .with_state(hub)
}

#[derive(Deserialize)]
struct RtcQuery {
    access_token: Option<String>,
    /// `1`: the SDK tries to resume a session (not served: it is told to rejoin).
    #[serde(default)]
    reconnect: Option<String>,
    /// `0`: receive only the tracks asked for (`UpdateSubscription`).
    #[serde(default)]
    auto_subscribe: Option<String>,
}

/// The token from `?access_token=` or `Authorization: Bearer`.
fn token(q: &RtcQuery, headers: &HeaderMap) -> Option<String> {
    q.access_token.clone().or_else(|| {
        headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::to_string)
    })
}

fn refused(status: StatusCode, why: impl Into<String>) -> Response {
    (status, why.into()).into_response()
}

/// `GET /rtc/validate`: 200 when the token would be let in, else the status and why.
async fn validate(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<RtcQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = token(&q, &headers) else {
        return refused(StatusCode::UNAUTHORIZED, "no access token");
    };
    match hub.token_room(&token, unix_now()) {
        Some(_) => (StatusCode::OK, "success").into_response(),
        None => refused(
            StatusCode::UNAUTHORIZED,
            "invalid token: malformed, forged, expired or without a room grant",
        ),
    }
}

/// A participant admitted before the upgrade: it leaves if the socket never comes.
struct Admitted {
    hub: Arc<Hub>,
    id: ParticipantId,
    rx: Option<OutboundRx>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.rx.is_some() {
            self.hub.leave(self.id);
        }
    }
}

async fn rtc(
    State(hub): State<Arc<Hub>>,
    Query(q): Query<RtcQuery>,
    headers: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    let Some(token) = token(&q, &headers) else {
        return refused(StatusCode::UNAUTHORIZED, "no access token");
    };
    if q.reconnect.as_deref() == Some("1") {
        return up.on_upgrade(|socket| async move {
            let (mut sink, _) = socket.split();
            let wire = Wire { json: false };
            let _ = send(&mut sink, wire.frame(rejoin())).await;
            let _ = sink.close().await;
        });
    }
    let auto_subscribe = q.auto_subscribe.as_deref() != Some("0");
    let admitted = match hub.join_livekit(&token, Now::read(), auto_subscribe) {
        Ok((id, rx)) => Admitted {
            hub: hub.clone(),
            id,
            rx: Some(rx),
        },
        Err(e) => {
            let (status, _) = e.http();
            return refused(status, e.to_string());
        }
    };
    up.max_message_size(MAX_MESSAGE)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session(socket, admitted))
}

fn dropped(kind: &'static str) {
    metrics::counter!("switchboard_livekit_signal_dropped_total", "kind" => kind).increment(1);
}

/// Frames in the encoding the client speaks.
struct Wire {
    json: bool,
}

impl Wire {
    fn frame(&self, msg: Resp) -> Message {
        let res = lk::SignalResponse { message: Some(msg) };
        if self.json {
            Message::Text(serde_json::to_string(&res).unwrap_or_default().into())
        } else {
            Message::Binary(res.encode_to_vec().into())
        }
    }

    fn read(&mut self, msg: &Message) -> Option<Result<lk::SignalRequest, String>> {
        match msg {
            Message::Binary(b) => {
                self.json = false;
                Some(lk::SignalRequest::decode(b.as_ref()).map_err(|e| e.to_string()))
            }
            Message::Text(t) => {
                self.json = true;
                Some(serde_json::from_str(t.as_str()).map_err(|e| e.to_string()))
            }
            _ => None,
        }
    }
}

use lk::signal_response::Message as Resp;

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// One frame out; false when the client does not take it in time or the socket failed.
async fn send(sink: &mut Sink, m: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(m)).await,
        Ok(Ok(()))
    )
}

async fn session(socket: WebSocket, mut admitted: Admitted) {
    let (mut sink, mut stream) = socket.split();
    let hub = admitted.hub.clone();
    let id = admitted.id;
    let Some(mut rx) = admitted.rx.take() else {
        return;
    };
    drop(admitted);
    let mut wire = Wire { json: false };

    // The hub's first word is `joined`.
    let first = tokio::time::timeout(JOINED_TIMEOUT, rx.recv()).await;
    let Ok(Some(Outbound::Message(ServerMessage::Joined {
        room,
        participant,
        others,
        ice_servers,
        ..
    }))) = first
    else {
        hub.leave_session(id, 0);
        return;
    };
    let room = hub
        .get_room(&room)
        .map(|r| model::room(&r))
        .unwrap_or_else(|_| lk::Room {
            name: room,
            ..Default::default()
        });
    let (mut signal, join) = Signal::joined(room, participant, others, ice_servers);
    if !send(&mut sink, wire.frame(Resp::Join(join))).await {
        hub.leave_session(id, 0);
        return;
    }

    let mut budget = MessageBudget::new(Instant::now());
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outbound::Message(m)) => {
                    if let ServerMessage::Error { code, message } = &m {
                        tracing::debug!(participant = %id, ?code, message, "refused (LiveKit session)");
                        dropped("refused");
                    }
                    for r in signal.on_server(m) {
                        if !send(&mut sink, wire.frame(r)).await {
                            hub.leave_session(id, 0);
                            return;
                        }
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    let _ = send(&mut sink, wire.frame(leave(code, &reason))).await;
                    let _ = sink.close().await;
                    return;
                }
                None => return,
            },
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                let len = match &msg {
                    Message::Binary(b) => b.len(),
                    Message::Text(t) => t.len(),
                    _ => 0,
                };
                let req = match wire.read(&msg) {
                    None => continue,
                    Some(Err(e)) => {
                        tracing::debug!(participant = %id, error = %e, "bad LiveKit signal frame");
                        dropped("malformed");
                        continue;
                    }
                    Some(Ok(lk::SignalRequest { message: None })) => {
                        dropped("empty");
                        continue;
                    }
                    Some(Ok(lk::SignalRequest { message: Some(req) })) => req,
                };
                let now_ms = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis())
                        .unwrap_or(0),
                )
                .unwrap_or(0);
                for step in signal.on_request(req, now_ms) {
                    match step {
                        Step::Hub(m) => match budget.allow(&m, len, Instant::now()) {
                            Ok(()) => hub.handle(id, m),
                            Err(kind) => {
                                metrics::counter!("switchboard_signaling_rate_limited_total", "kind" => kind.label())
                                    .increment(1);
                            }
                        },
                        Step::Publish { sids, offer } => match budget.allow(&offer, len, Instant::now()) {
                            Ok(()) => match hub.name_tracks(id, sids) {
                                Ok(()) => hub.handle(id, offer),
                                Err(why) => {
                                    tracing::debug!(participant = %id, why, "track sids refused");
                                    dropped("bad_track_sid");
                                }
                            },
                            Err(kind) => {
                                metrics::counter!("switchboard_signaling_rate_limited_total", "kind" => kind.label())
                                    .increment(1);
                            }
                        },
                        Step::UpdateSelf { request_id, update } => {
                            if let Err(e) = hub.update_own(id, update) {
                                if !send(&mut sink, wire.frame(request_refused(request_id, &e))).await {
                                    hub.leave_session(id, 0);
                                    return;
                                }
                            }
                        }
                        Step::Reply(r) => {
                            if !send(&mut sink, wire.frame(r)).await {
                                hub.leave_session(id, 0);
                                return;
                            }
                        }
                        Step::Leave => {
                            hub.leave_session(id, 0);
                            let bye = Message::Close(Some(axum::extract::ws::CloseFrame {
                                code: 1000,
                                reason: "left".into(),
                            }));
                            let _ = send(&mut sink, bye).await;
                            return;
                        }
                        Step::Dropped(kind) => dropped(kind),
                    }
                }
            }
        }
    }
    hub.leave_session(id, 0);
}

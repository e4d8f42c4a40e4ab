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
use crate::hub::{Hub, Now, Outbound, Parking};
use crate::message_budget::MessageBudget;
use crate::outbound::OutboundRx;
use crate::protocol::ClientMessage;
use crate::protocol::ServerMessage;
use crate::ws::{MAX_MESSAGE, WRITE_TIMEOUT};
use lk::signal_request::Message as Req;
use parking_lot::Mutex;
use std::collections::HashMap;

/// How long the hub may take to confirm a join.
const JOINED_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that sends nothing this long (it pings every 5 s, as the join response asks)
/// has lost its connection, whether or not the socket noticed: its session is parked for
/// a resume. The same figure as the join response's `ping_timeout`.
const SILENCE: Duration = Duration::from_secs(15);

pub fn router(hub: Arc<Hub>) -> Router {
    let rtc = Arc::new(Rtc {
        hub,
        parked: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/rtc", get(self::rtc))
        .route("/rtc/validate", get(validate))
        .with_state(rtc)
}

#[derive(Deserialize)]
struct RtcQuery {
    access_token: Option<String>,
    /// `1`: the SDK tries to resume a session (not served: it is told to rejoin).
    #[serde(default)]
    reconnect: Option<String>,
    /// With `reconnect=1`: the session to resume (`PA_<id>`).
    #[serde(default)]
    sid: Option<String>,
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
    State(rtc): State<Arc<Rtc>>,
    Query(q): Query<RtcQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = token(&q, &headers) else {
        return refused(StatusCode::UNAUTHORIZED, "no access token");
    };
    match rtc.hub.token_room(&token, unix_now()) {
        Some(_) => (StatusCode::OK, "success").into_response(),
        None => refused(
            StatusCode::UNAUTHORIZED,
            "invalid token: malformed, forged, expired or without a room grant",
        ),
    }
}

/// The endpoint: the hub, and the sessions whose socket dropped without a leave, kept for
/// the hub's resume grace period with what their mapping remembers (a LiveKit client
/// resumes with `reconnect=1&sid=PA_<id>` and its access token; the hub's resume token
/// for the session stays here, on the server).
pub struct Rtc {
    hub: Arc<Hub>,
    parked: Mutex<HashMap<ParticipantId, Signal>>,
}

/// A session admitted before the upgrade: it leaves if the socket never comes.
struct Admitted {
    rtc: Arc<Rtc>,
    id: ParticipantId,
    start: Option<Start>,
}

/// How a session starts on its socket.
enum Start {
    /// A join: the hub's `joined` is the first on the queue.
    Join(OutboundRx),
    /// A resume: the session's queue (what was queued meanwhile, then `resumed`), its
    /// epoch, and its mapping as it was.
    Resume(OutboundRx, u64, Box<Signal>),
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.start.is_some() {
            self.rtc.hub.leave(self.id);
        }
    }
}

async fn rtc(
    State(rtc): State<Arc<Rtc>>,
    Query(q): Query<RtcQuery>,
    headers: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    up: WebSocketUpgrade,
) -> Response {
    let Some(token) = token(&q, &headers) else {
        return refused(StatusCode::UNAUTHORIZED, "no access token");
    };
    let up = up
        .max_message_size(MAX_MESSAGE)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    // In a cluster: a room homed on another node is served there, through this node.
    if !headers.contains_key(crate::cluster_http::FORWARDED) {
        let target = uri.path_and_query().map_or("/rtc", |p| p.as_str());
        if let Some(home) = rtc.home_elsewhere(&token, target).await {
            return match home {
                Ok(home) => up.on_upgrade(move |socket| async move {
                    let (sink, stream) = socket.split();
                    crate::ws_relay::pipe(sink, stream, *home).await
                }),
                Err(why) => refused(StatusCode::SERVICE_UNAVAILABLE, why),
            };
        }
    }
    if q.reconnect.as_deref() == Some("1") {
        return match rtc.resume(q.sid.as_deref(), &token) {
            Some(admitted) => up.on_upgrade(move |socket| session(socket, admitted)),
            // Gone, expired, or never resumable: the SDK is told to join anew.
            None => up.on_upgrade(|socket| async move {
                let (mut sink, _) = socket.split();
                let _ = send(&mut sink, Wire { json: false }.frame(rejoin())).await;
                let _ = sink.close().await;
            }),
        };
    }
    let auto_subscribe = q.auto_subscribe.as_deref() != Some("0");
    match rtc.hub.join_livekit(&token, Now::read(), auto_subscribe) {
        Ok((id, rx)) => {
            let admitted = Admitted {
                rtc: rtc.clone(),
                id,
                start: Some(Start::Join(rx)),
            };
            up.on_upgrade(move |socket| session(socket, admitted))
        }
        Err(e) => {
            let (status, _) = e.http();
            refused(status, e.to_string())
        }
    }
}

impl Rtc {
    /// In a cluster, when `token`'s room lives on another node: a socket to the same
    /// request there (or why there is none). None: served here.
    async fn home_elsewhere(
        &self,
        token: &str,
        target: &str,
    ) -> Option<Result<Box<crate::ws_relay::HomeSocket>, String>> {
        let placement = self.hub.placement()?;
        let room = self.hub.token_room(token, unix_now())?;
        let home = match placement.place(&room).await {
            Ok(crate::placement::Placed::Here) => return None,
            Ok(crate::placement::Placed::Elsewhere { url, .. }) => url,
            Err(e) => return Some(Err(e.to_string())),
        };
        let Some(mark) = self.hub.forwarding_mark() else {
            return Some(Err("a cluster node needs API keys".into()));
        };
        // The same request (query and all) at the home: it checks the token itself.
        Some(
            crate::ws_relay::connect_to(mark, &home, target)
                .await
                .map(Box::new)
                .map_err(|e| e.to_string()),
        )
    }

    /// Take back the parked session `sid` with an access token for its identity and room.
    fn resume(self: &Arc<Self>, sid: Option<&str>, access: &str) -> Option<Admitted> {
        let id = model::participant_id(sid?)?;
        let signal = self.parked.lock().remove(&id)?;
        let token = signal.resume_token()?.to_string();
        let r = self
            .hub
            .resume(&token, access, unix_now(), Instant::now())
            .ok()?;
        (r.id == id).then(|| Admitted {
            rtc: self.clone(),
            id,
            start: Some(Start::Resume(r.rx, r.epoch, Box::new(signal))),
        })
    }

    /// The socket of `id`'s session dropped without a leave: park it for a resume, or
    /// end it.
    fn park(&self, id: ParticipantId, epoch: u64, rx: OutboundRx, signal: Signal) {
        match self.hub.park(id, epoch, rx, Instant::now()) {
            Parking::Parked => {
                let mut parked = self.parked.lock();
                // Sessions that expired meanwhile are forgotten here.
                parked.retain(|p, _| self.hub.is_present(*p));
                parked.insert(id, signal);
            }
            Parking::NotResumable => self.hub.leave_session(id, epoch),
            Parking::Resumed | Parking::Gone => {}
        }
    }
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
    let (mut sink, stream) = socket.split();
    let rtc = admitted.rtc.clone();
    let hub = rtc.hub.clone();
    let id = admitted.id;
    let Some(start) = admitted.start.take() else {
        return;
    };
    drop(admitted);
    let mut wire = Wire { json: false };
    let (signal, rx, epoch) = match start {
        Start::Join(mut rx) => {
            let Some((signal, join)) = first_joined(&hub, &mut rx).await else {
                return hub.leave_session(id, 0);
            };
            if !send(&mut sink, wire.frame(Resp::Join(join))).await {
                return hub.leave_session(id, 0);
            }
            (signal, rx, 0)
        }
        Start::Resume(rx, epoch, signal) => {
            let reconnect = signal.reconnect_response();
            if !send(&mut sink, wire.frame(Resp::Reconnect(reconnect))).await {
                return rtc.park(id, epoch, rx, *signal);
            }
            // The client restarts ICE on its publisher connection with its next offer;
            // the server's next subscriber offer carries new credentials.
            let restart = ClientMessage::IceRestart {
                pc: sfu_core::PcKind::Subscriber,
                ufrag: None,
                pwd: None,
            };
            hub.handle(id, restart);
            (*signal, rx, epoch)
        }
    };
    let conn = Conn {
        hub: &hub,
        id,
        sink,
        wire: &mut wire,
    };
    match conn.run(stream, signal, rx).await {
        End::Left | End::Failed => hub.leave_session(id, epoch),
        End::Closed => {}
        End::Dropped(rx, signal) => rtc.park(id, epoch, rx, *signal),
    }
}

/// The hub's first word on a join is `joined`: the mapping starts from it.
async fn first_joined(hub: &Hub, rx: &mut OutboundRx) -> Option<(Signal, lk::JoinResponse)> {
    let first = tokio::time::timeout(JOINED_TIMEOUT, rx.recv()).await;
    let Ok(Some(Outbound::Message(ServerMessage::Joined {
        room,
        participant,
        others,
        ice_servers,
        resume_token,
        ..
    }))) = first
    else {
        return None;
    };
    let room = hub
        .get_room(&room)
        .map(|r| model::room(&r))
        .unwrap_or_else(|_| lk::Room {
            name: room,
            ..Default::default()
        });
    Some(Signal::joined(
        room,
        participant,
        others,
        ice_servers,
        resume_token,
    ))
}

/// How a session's socket ended.
enum End {
    /// The client said `leave`.
    Left,
    /// The hub ended the session (removed, room closed, resumed elsewhere).
    Closed,
    /// Writing failed (a client that does not read): the session ends.
    Failed,
    /// The socket dropped: the queue and the mapping, to park for a resume.
    Dropped(OutboundRx, Box<Signal>),
}

/// One session on one socket.
struct Conn<'a> {
    hub: &'a Hub,
    id: ParticipantId,
    sink: Sink,
    wire: &'a mut Wire,
}

impl Conn<'_> {
    async fn send(&mut self, r: Resp) -> bool {
        send(&mut self.sink, self.wire.frame(r)).await
    }

    /// Relay both ways until the socket or the session ends.
    async fn run(
        mut self,
        mut stream: futures_util::stream::SplitStream<WebSocket>,
        mut signal: Signal,
        mut rx: OutboundRx,
    ) -> End {
        let mut budget = MessageBudget::new(Instant::now());
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(heard + SILENCE) => {
                    tracing::info!(participant = %self.id, "LiveKit client silent: parked for a resume");
                    return End::Dropped(rx, Box::new(signal));
                }
                out = rx.recv() => match out {
                    Some(Outbound::Message(m)) => {
                        if let ServerMessage::Error { code, message } = &m {
                            tracing::debug!(participant = %self.id, ?code, message, "refused (LiveKit session)");
                            dropped("refused");
                        }
                        for r in signal.on_server(m) {
                            if !self.send(r).await {
                                return End::Failed;
                            }
                        }
                    }
                    Some(Outbound::Close { code, reason }) => {
                        let _ = self.send(leave(code, &reason)).await;
                        let _ = self.sink.close().await;
                        return End::Closed;
                    }
                    None => return End::Closed,
                },
                msg = stream.next() => {
                    let Some(Ok(msg)) = msg else {
                        return End::Dropped(rx, Box::new(signal));
                    };
                    heard = tokio::time::Instant::now();
                    if matches!(msg, Message::Close(_)) {
                        return End::Dropped(rx, Box::new(signal));
                    }
                    let Some(req) = self.read(&msg) else { continue };
                    let len = match &msg {
                        Message::Binary(b) => b.len(),
                        Message::Text(t) => t.len(),
                        _ => 0,
                    };
                    for step in signal.on_request(req, crate::auth::unix_now_ms()) {
                        match self.step(step, len, &mut budget).await {
                            Ok(()) => {}
                            Err(end) => return end,
                        }
                    }
                }
            }
        }
    }

    /// A frame as a request; None (counted) when it is not one.
    fn read(&mut self, msg: &Message) -> Option<Req> {
        match self.wire.read(msg)? {
            Err(e) => {
                tracing::debug!(participant = %self.id, error = %e, "bad LiveKit signal frame");
                dropped("malformed");
                None
            }
            Ok(lk::SignalRequest { message: None }) => {
                dropped("empty");
                None
            }
            Ok(lk::SignalRequest { message: Some(req) }) => Some(req),
        }
    }

    /// Carry out one step of a request; Err when the session ends.
    async fn step(
        &mut self,
        step: Step,
        len: usize,
        budget: &mut MessageBudget,
    ) -> Result<(), End> {
        let (hub, id) = (self.hub, self.id);
        let within = |budget: &mut MessageBudget, m: &ClientMessage| match budget.allow(
            m,
            len,
            Instant::now(),
        ) {
            Ok(()) => true,
            Err(kind) => {
                metrics::counter!("switchboard_signaling_rate_limited_total", "kind" => kind.label())
                    .increment(1);
                false
            }
        };
        match step {
            Step::Hub(m) => {
                if within(budget, &m) {
                    hub.handle(id, m);
                }
            }
            Step::Publish { sids, offer } => {
                if within(budget, &offer) {
                    match hub.name_tracks(id, sids) {
                        Ok(()) => hub.handle(id, offer),
                        Err(why) => {
                            tracing::debug!(participant = %id, why, "track sids refused");
                            dropped("bad_track_sid");
                        }
                    }
                }
            }
            Step::UpdateSelf { request_id, update } => {
                if let Err(e) = hub.update_own(id, update) {
                    if !self.send(request_refused(request_id, &e)).await {
                        return Err(End::Failed);
                    }
                }
            }
            Step::Reply(r) => {
                if !self.send(r).await {
                    return Err(End::Failed);
                }
            }
            Step::Leave => {
                let bye = Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1000,
                    reason: "left".into(),
                }));
                let _ = send(&mut self.sink, bye).await;
                return Err(End::Left);
            }
            Step::Dropped(kind) => dropped(kind),
        }
        Ok(())
    }
}

//! One WebSocket signaling session: wait for `join` (or `resume`), then relay both ways.
//! A session that joined with `resume: true` and whose socket ends without `leave` is
//! parked in the hub for the grace period instead of leaving (`hub/resume.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sfu_core::ParticipantId;
use tokio::sync::oneshot;

use crate::auth::unix_now;
use crate::hub::{Hub, Outbound, Parking};
use crate::message_budget::MessageBudget;
use crate::outbound::OutboundRx;
use crate::placement::Placed;
use crate::protocol::{close_code, ClientMessage, ErrorCode, ServerMessage};

/// Largest signaling message accepted (an SDP with many m-lines fits easily).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// The longest one frame may take to go out before the client counts as not reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send `join`.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

fn text(msg: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(msg).unwrap_or_default(),
    ))
}

fn error(code: ErrorCode, message: impl Into<String>) -> Message {
    text(&ServerMessage::Error {
        code,
        message: message.into(),
    })
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(100).collect::<String>()),
    }))
}

/// A session attached to this socket.
struct Attached {
    id: ParticipantId,
    rx: OutboundRx,
    /// The hub's epoch of the session (it grows with each resume).
    epoch: u64,
    /// Parked rather than left when the socket drops.
    resumable: bool,
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// Where a session whose first message names `token`'s room is served.
enum Routed {
    /// Here (one node, or the room's home).
    Here,
    /// Send these and close (`moved` for a client that asked for it, or `unavailable`).
    Reply([Message; 2]),
    /// Relayed to the home at this base URL.
    Relay(String),
}

/// In a cluster: where the room `token` is for lives. A client that asked for `moved`
/// gets it; a socket that is itself a relay (`forwarded`) is never relayed again.
async fn route(hub: &Hub, token: &str, wants_moved: bool, forwarded: bool) -> Routed {
    let Some(placement) = hub.placement() else {
        return Routed::Here;
    };
    let Some(room) = hub.token_room(token, unix_now()) else {
        return Routed::Here; // a bad token: the hub says why
    };
    let unavailable = |why: String| {
        Routed::Reply([
            error(ErrorCode::Unavailable, why),
            close(close_code::UNAVAILABLE, "unavailable"),
        ])
    };
    match placement.place(&room).await {
        Ok(Placed::Here) => Routed::Here,
        Ok(Placed::Elsewhere { url, .. }) if wants_moved => Routed::Reply([
            text(&ServerMessage::Moved {
                url: crate::placement::ws_url(&url),
            }),
            close(close_code::MOVED, "moved"),
        ]),
        Ok(Placed::Elsewhere { .. }) if forwarded => {
            unavailable("the room moved to another node meanwhile: connect again".into())
        }
        Ok(Placed::Elsewhere { url, .. }) => Routed::Relay(url),
        Err(e) => unavailable(e.to_string()),
    }
}

/// How phase 1 ended.
enum Attach {
    Session(Attached),
    /// A socket to the room's home, the first message sent: copy both ways.
    Relay(Box<crate::ws_relay::HomeSocket>),
    Done,
}

/// Phase 1: the first message must be `join` or `resume`.
async fn attach(hub: &Hub, sink: &mut Sink, stream: &mut Stream, forwarded: bool) -> Attach {
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(t) = msg else {
            if matches!(msg, Message::Close(_)) {
                return Attach::Done;
            }
            continue;
        };
        let parsed = serde_json::from_str::<ClientMessage>(&t);
        let routed_by = match &parsed {
            Ok(ClientMessage::Join { token, moved, .. }) => Some((token.as_str(), *moved)),
            Ok(ClientMessage::Resume { access_token, .. }) => Some((access_token.as_str(), false)),
            _ => None,
        };
        let routed = match routed_by {
            Some((token, wants_moved)) => route(hub, token, wants_moved, forwarded).await,
            None => Routed::Here,
        };
        match routed {
            Routed::Here => {}
            Routed::Reply(frames) => {
                for f in frames {
                    let _ = sink.send(f).await;
                }
                return Attach::Done;
            }
            Routed::Relay(home) => {
                let Some(mark) = hub.forwarding_mark() else {
                    let _ = sink
                        .send(error(
                            ErrorCode::Unavailable,
                            "a cluster node needs API keys",
                        ))
                        .await;
                    return Attach::Done;
                };
                return match crate::ws_relay::connect(mark, &home, t.as_str()).await {
                    Ok(home) => Attach::Relay(Box::new(home)),
                    Err(e) => {
                        let _ = sink
                            .send(error(ErrorCode::Unavailable, e.to_string()))
                            .await;
                        let _ = sink
                            .send(close(close_code::UNAVAILABLE, "unavailable"))
                            .await;
                        Attach::Done
                    }
                };
            }
        }
        let reply = match parsed {
            Ok(ClientMessage::Join {
                token,
                version,
                resume,
                ..
            }) => match hub.join(&token, version, crate::hub::Now::read()) {
                Ok((id, rx)) => {
                    return Attach::Session(Attached {
                        id,
                        rx,
                        epoch: 0,
                        resumable: resume,
                    })
                }
                Err(e) => {
                    let (code, close_with) = e.ws();
                    let _ = sink.send(error(code, e.to_string())).await;
                    let _ = sink.send(close(close_with, &e.to_string())).await;
                    return Attach::Done;
                }
            },
            Ok(ClientMessage::Resume {
                token,
                access_token,
            }) => match hub.resume(
                &token,
                &access_token,
                crate::auth::unix_now(),
                Instant::now(),
            ) {
                Ok(r) => {
                    return Attach::Session(Attached {
                        id: r.id,
                        rx: r.rx,
                        epoch: r.epoch,
                        resumable: true,
                    })
                }
                Err(e) => {
                    let _ = sink
                        .send(error(ErrorCode::ResumeRefused, e.to_string()))
                        .await;
                    let _ = sink
                        .send(close(close_code::RESUME_REFUSED, &e.to_string()))
                        .await;
                    return Attach::Done;
                }
            },
            Ok(_) => error(ErrorCode::BadState, "send join first"),
            Err(e) => error(ErrorCode::BadMessage, format!("invalid message: {e}")),
        };
        let _ = sink.send(reply).await;
    }
    Attach::Done
}

/// How the writer ended.
enum WriterEnd {
    /// The hub closed the session (removed, overflowed, shut down).
    Closed,
    /// Told to stop: the queue, to park it.
    Stopped(OutboundRx),
    /// The client did not read, or the socket failed.
    Failed,
}

/// Drains the outbound queue into the socket until the hub closes the session, the socket
/// fails, or `stop` fires (then hands the queue back).
async fn write(mut sink: Sink, mut rx: OutboundRx, mut stop: oneshot::Receiver<()>) -> WriterEnd {
    loop {
        let out = tokio::select! {
            o = rx.recv() => o,
            _ = &mut stop => return WriterEnd::Stopped(rx),
        };
        let frame = match out {
            Some(Outbound::Message(m)) => text(&m),
            Some(Outbound::Close { code, reason }) => {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(close(code, &reason))).await;
                return WriterEnd::Closed;
            }
            // A newer socket resumed the session: this one has nothing more to say.
            None => return WriterEnd::Closed,
        };
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await {
            Ok(Ok(())) => {}
            _ => return WriterEnd::Failed,
        }
    }
}

/// A signaling socket. `forwarded`: it is a relay from another node (its mark verified).
pub async fn session(hub: Arc<Hub>, socket: WebSocket, forwarded: bool) {
    let (mut sink, mut stream) = socket.split();
    let attached = tokio::time::timeout(
        JOIN_TIMEOUT,
        attach(&hub, &mut sink, &mut stream, forwarded),
    )
    .await;
    let Attached {
        id,
        rx,
        epoch,
        resumable,
    } = match attached {
        Ok(Attach::Session(a)) => a,
        Ok(Attach::Relay(home)) => return crate::ws_relay::pipe(sink, stream, *home).await,
        Ok(Attach::Done) => return,
        Err(_) => {
            let _ = sink.send(close(close_code::BAD_STATE, "no join")).await;
            return;
        }
    };

    // Phase 2: a writer task drains the outbound queue; this task reads. A client that
    // does not read blocks the writer: after WRITE_TIMEOUT on one frame it is cut off
    // (meanwhile its queue stays bounded, see `outbound`), and the session ends.
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write(sink, rx, stop_rx));
    let mut left = false;
    let mut ended_by_writer = None;
    let mut budget = MessageBudget::new(Instant::now());
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            w = &mut writer => {
                ended_by_writer = Some(w);
                break;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        match msg {
            Message::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                Ok(ClientMessage::Leave {}) => {
                    left = true;
                    break;
                }
                Ok(m) => match budget.allow(&m, t.len(), Instant::now()) {
                    Ok(()) => hub.handle(id, m),
                    Err(kind) => {
                        metrics::counter!("switchboard_signaling_rate_limited_total", "kind" => kind.label())
                            .increment(1);
                        hub.reply_error(
                            id,
                            ErrorCode::RateLimited,
                            format!("too many {} messages: this one was dropped", kind.label()),
                        )
                    }
                },
                Err(e) => {
                    hub.reply_error(id, ErrorCode::BadMessage, format!("invalid message: {e}"))
                }
            },
            Message::Binary(_) => hub.reply_error(
                id,
                ErrorCode::BadMessage,
                "binary messages are not part of the protocol",
            ),
            Message::Close(_) => break,
            _ => {}
        }
    }
    if ended_by_writer.is_some() {
        // The hub closed the session, a newer socket resumed it (then this epoch is stale
        // and nothing happens), or the client stopped reading.
        hub.leave_session(id, epoch);
        return;
    }
    let _ = stop_tx.send(());
    let end = writer.await;
    match end {
        Ok(WriterEnd::Stopped(rx)) if resumable && !left => {
            match hub.park(id, epoch, rx, Instant::now()) {
                Parking::Parked | Parking::Resumed | Parking::Gone => {}
                Parking::NotResumable => hub.leave_session(id, epoch),
            }
        }
        _ => hub.leave_session(id, epoch),
    }
}

//! One WebSocket signaling session: wait for `join`, then relay both ways.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};

use crate::auth::unix_now;
use crate::hub::{Hub, JoinError, Outbound};
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

pub async fn session(hub: Arc<Hub>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    // Phase 1: wait for a valid join.
    let joined = tokio::time::timeout(JOIN_TIMEOUT, async {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(t) = msg else {
                if matches!(msg, Message::Close(_)) {
                    return None;
                }
                continue;
            };
            match serde_json::from_str::<ClientMessage>(&t) {
                Ok(ClientMessage::Join { token, version }) => {
                    match hub.join(&token, version, unix_now()) {
                        Ok(ok) => return Some(ok),
                        Err(e) => {
                            let (code, close_with) = match &e {
                                JoinError::UnsupportedVersion(_) => (
                                    ErrorCode::UnsupportedVersion,
                                    close_code::UNSUPPORTED_VERSION,
                                ),
                                JoinError::Plane(_) => (ErrorCode::Busy, close_code::BUSY),
                                JoinError::RoomFull(_) => {
                                    (ErrorCode::RoomFull, close_code::ROOM_FULL)
                                }
                                JoinError::NoSuchRoom => {
                                    (ErrorCode::NoSuchRoom, close_code::NO_SUCH_ROOM)
                                }
                                JoinError::Draining => (ErrorCode::Draining, close_code::DRAINING),
                                JoinError::ServerFull(_) => {
                                    (ErrorCode::ServerFull, close_code::SERVER_FULL)
                                }
                                _ => (ErrorCode::Unauthorized, close_code::UNAUTHORIZED),
                            };
                            let _ = sink.send(error(code, e.to_string())).await;
                            let _ = sink.send(close(close_with, &e.to_string())).await;
                            return None;
                        }
                    }
                }
                Ok(_) => {
                    let _ = sink
                        .send(error(ErrorCode::BadState, "send join first"))
                        .await;
                }
                Err(e) => {
                    let _ = sink
                        .send(error(
                            ErrorCode::BadMessage,
                            format!("invalid message: {e}"),
                        ))
                        .await;
                }
            }
        }
        None
    })
    .await;
    let Ok(Some((id, mut rx))) = joined else {
        let _ = sink.send(close(close_code::BAD_STATE, "no join")).await;
        return;
    };

    // Phase 2: a writer task drains the outbound queue; this task reads. A client that
    // does not read blocks the writer: after WRITE_TIMEOUT on one frame it is cut off
    // (its queue, bounded at OUTBOUND_QUEUE, overflowing meanwhile removes it from the
    // room), and the session ends.
    let mut writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let frame = match out {
                Outbound::Message(m) => text(&m),
                Outbound::Close { code, reason } => {
                    let _ =
                        tokio::time::timeout(WRITE_TIMEOUT, sink.send(close(code, &reason))).await;
                    break;
                }
            };
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    });
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = &mut writer => break,
        };
        let Some(Ok(msg)) = msg else { break };
        match msg {
            Message::Text(t) => match serde_json::from_str::<ClientMessage>(&t) {
                Ok(ClientMessage::Leave {}) => break,
                Ok(m) => hub.handle(id, m),
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
    hub.leave(id);
    writer.abort();
}

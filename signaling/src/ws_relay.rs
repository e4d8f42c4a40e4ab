//! The signal relay: in a cluster behind one public name, a client whose WebSocket reached
//! a node that is not its room's home is served there, not sent elsewhere. The node opens
//! a WebSocket to the home's internal URL, marked as forwarded (an HMAC only nodes can
//! make, `forwarding_mark.rs`), sends it the client's first message (`join` or `resume`)
//! and from then on copies messages both ways until either side ends. Media goes to the
//! home's advertised addresses, as its answers say; only signaling passes through here.
//!
//! The home treats a relayed socket as any other (it checks the token itself: relaying
//! grants nothing) except that it never relays it again: a room that moved meanwhile is
//! `unavailable`, and the client reconnects. A client that prefers to connect to the home
//! itself says so with `"moved": true` in its `join` (and gets `moved` as before).

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as TCloseFrame;
use tokio_tungstenite::tungstenite::Message as TMessage;

use crate::forwarding_mark::{MarkKey, FORWARDED};
use crate::placement::ws_base;

/// How long the home has to accept the relay's connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a relay could not start (the client gets `unavailable`).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the room's home node cannot be reached: {0}")]
    Unreachable(String),
}

/// The relay's socket to the room's home.
pub type HomeSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket to the room's home (our protocol's `/ws`), marked, with `first` already sent.
pub async fn connect(mark: &MarkKey, home: &str, first: &str) -> Result<HomeSocket, RelayError> {
    let mut home_ws = connect_to(mark, home, "/ws").await?;
    home_ws
        .send(TMessage::text(first.to_string()))
        .await
        .map_err(|e| RelayError::Unreachable(e.to_string()))?;
    Ok(home_ws)
}

/// A socket to `target` (a path with its query: LiveKit's `/rtc?access_token=…`) on the
/// room's home at `home` (its HTTP base URL), marked.
pub async fn connect_to(
    mark: &MarkKey,
    home: &str,
    target: &str,
) -> Result<HomeSocket, RelayError> {
    let url = format!("{}{target}", ws_base(home));
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| RelayError::Unreachable(e.to_string()))?;
    let signed = mark.sign(crate::auth::unix_now(), "GET", target);
    let value = signed
        .parse()
        .map_err(|_| RelayError::Unreachable("unusable mark".into()))?;
    req.headers_mut().insert(FORWARDED, value);
    // The URL may carry an access token: errors name the home, not the URL.
    let (home_ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| RelayError::Unreachable(format!("{home}: no answer in 5 s")))?
        .map_err(|e| RelayError::Unreachable(format!("{home}: {e}")))?;
    metrics::counter!("switchboard_cluster_relayed_sessions_total").increment(1);
    Ok(home_ws)
}

/// Copy messages between the client's socket and the home's until either ends; the
/// other is then closed (with the home's close code, when it gave one).
pub async fn pipe<S, R>(mut client_tx: S, mut client_rx: R, home: HomeSocket)
where
    S: futures_util::Sink<Message> + Unpin,
    R: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let (mut home_tx, mut home_rx) = home.split();
    loop {
        tokio::select! {
            m = client_rx.next() => match m.and_then(Result::ok).and_then(to_home) {
                Some(TMessage::Close(c)) => {
                    let _ = home_tx.send(TMessage::Close(c)).await;
                    return;
                }
                Some(m) => {
                    if home_tx.send(m).await.is_err() {
                        let _ = client_tx.send(close(1011, "the room's home went away")).await;
                        return;
                    }
                }
                None => {
                    let _ = home_tx.send(TMessage::Close(None)).await;
                    return;
                }
            },
            m = home_rx.next() => match m.and_then(Result::ok) {
                Some(TMessage::Close(c)) => {
                    let (code, reason) = c.map_or((1000, String::new()), |c| (u16::from(c.code), c.reason.to_string()));
                    let _ = client_tx.send(close(code, &reason)).await;
                    return;
                }
                Some(m) => {
                    if let Some(m) = to_client(m) {
                        if client_tx.send(m).await.is_err() {
                            let _ = home_tx.send(TMessage::Close(None)).await;
                            return;
                        }
                    }
                }
                None => {
                    let _ = client_tx.send(close(1011, "the room's home went away")).await;
                    return;
                }
            },
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(100).collect::<String>()),
    }))
}

/// A client's frame as the home should get it (pings are answered hop by hop).
fn to_home(m: Message) -> Option<TMessage> {
    match m {
        Message::Text(t) => Some(TMessage::text(t.as_str().to_string())),
        Message::Binary(b) => Some(TMessage::binary(b.to_vec())),
        Message::Close(c) => Some(TMessage::Close(c.map(|c| TCloseFrame {
            code: CloseCode::from(c.code),
            reason: c.reason.as_str().to_string().into(),
        }))),
        Message::Ping(_) | Message::Pong(_) => None,
    }
}

/// The home's frame as the client should get it.
fn to_client(m: TMessage) -> Option<Message> {
    match m {
        TMessage::Text(t) => Some(Message::Text(Utf8Bytes::from(t.as_str().to_string()))),
        TMessage::Binary(b) => Some(Message::Binary(b.to_vec().into())),
        _ => None,
    }
}

//! Where a room lives when nodes form a cluster (ADR 0007). The hub asks its
//! [`Placement`] before a `join` or `resume` is admitted: a room homed here is joined
//! here; one homed elsewhere gets `moved` with the home's address (the client connects
//! there with the same message); when the directory cannot be reached, new rooms are
//! refused (`unavailable`) — never claimed locally, which is how rooms split. Without a
//! placement (a single node) every room is here.

use std::future::Future;
use std::pin::Pin;

/// Where a room is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    Here,
    /// Another node: its HTTP base URL (`http://10.0.0.6:7880`) and its SIP gateway's
    /// address (`10.0.0.6:5060`), if it has one.
    Elsewhere {
        url: String,
        sip: Option<String>,
    },
}

/// A node's WebSocket base (`ws://` or `wss://`, no trailing slash) from its HTTP base URL.
pub fn ws_base(http: &str) -> String {
    let base = http.trim_end_matches('/');
    base.strip_prefix("https://")
        .map(|h| format!("wss://{h}"))
        .or_else(|| base.strip_prefix("http://").map(|h| format!("ws://{h}")))
        .unwrap_or_else(|| base.to_string())
}

/// A node's WebSocket URL (our protocol's `/ws`) from its HTTP base URL.
pub fn ws_url(http: &str) -> String {
    format!("{}/ws", ws_base(http))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("the cluster cannot place rooms now: {0}")]
    Unavailable(String),
}

pub type PlaceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Placed, PlacementError>> + Send + 'a>>;
pub type PeersFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<String>, PlacementError>> + Send + 'a>>;

pub trait Placement: Send + Sync {
    /// Whether the room is homed here now (claimed by this node): the hub admits joins
    /// and creates rooms only then, whatever path they came by.
    fn is_home(&self, room: &str) -> bool;
    /// The room's home, claiming one (here or on another node) for a new room.
    fn place<'a>(&'a self, room: &'a str) -> PlaceFuture<'a>;
    /// The room's home without claiming: `Here` also for a room that lives nowhere
    /// (this node then answers, "no such room").
    fn locate<'a>(&'a self, room: &'a str) -> PlaceFuture<'a>;
    /// Every live node's HTTP base URL, this one included.
    fn peers(&self) -> PeersFuture<'_>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_follow_the_scheme() {
        assert_eq!(ws_url("http://10.0.0.5:7880"), "ws://10.0.0.5:7880/ws");
        assert_eq!(
            ws_url("https://sfu.example.com/"),
            "wss://sfu.example.com/ws"
        );
    }
}

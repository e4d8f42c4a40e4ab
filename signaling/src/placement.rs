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
    /// Another node: its WebSocket URL (`ws://10.0.0.6:7880/ws`).
    Elsewhere { ws_url: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("the cluster cannot place rooms now: {0}")]
    Unavailable(String),
}

pub type PlaceFuture<'a> = Pin<Box<dyn Future<Output = Result<Placed, PlacementError>> + Send + 'a>>;

pub trait Placement: Send + Sync {
    /// The room's home, claiming one (here or on another node) for a new room.
    fn place<'a>(&'a self, room: &'a str) -> PlaceFuture<'a>;
}

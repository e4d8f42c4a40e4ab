//! The boundary to the media plane. The server implements it with worker threads; tests
//! implement it in memory.

use sfu_core::{Command, RoomId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaneError {
    /// The shard's command queue is full: answer 503 / `busy`, never block.
    #[error("the media plane is busy")]
    Busy,
    /// The media plane has shut down.
    #[error("the media plane is stopped")]
    Stopped,
}

/// Where the control plane sends [`Command`]s. Events come back through
/// [`crate::Hub::on_media_event`], which the implementation (or its owner) calls.
pub trait MediaPlane: Send + Sync + 'static {
    /// Deliver `cmd` to the shard that hosts `room`, placing the room first if it is new.
    fn send(&self, room: &RoomId, cmd: Command) -> Result<(), PlaneError>;

    /// The control plane has no one left in `room`: the placement may be forgotten.
    fn room_closed(&self, _room: &RoomId) {}
}

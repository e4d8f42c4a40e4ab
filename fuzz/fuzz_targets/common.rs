//! Shared by the fuzz targets: a media plane that takes every command.

use sfu_core::{Command, RoomId};
use signaling::{MediaPlane, PlaneError};

pub struct Plane;

impl MediaPlane for Plane {
    fn send(&self, _: &RoomId, _: Command) -> Result<(), PlaneError> {
        Ok(())
    }
    fn room_closed(&self, _: &RoomId) {}
}

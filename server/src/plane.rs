//! The media plane as the control plane sees it: rooms placed on workers.

use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;

use dashmap::DashMap;
use sfu_core::{Command, RoomId};
use signaling::{MediaPlane, PlaneError};

use crate::worker::WorkerHandle;

pub struct WorkerPool {
    pub workers: Vec<WorkerHandle>,
    placement: DashMap<RoomId, usize>,
}

impl WorkerPool {
    pub fn new(workers: Vec<WorkerHandle>) -> Self {
        Self {
            workers,
            placement: DashMap::new(),
        }
    }

    /// The worker hosting `room`, placing a new room on the least-loaded worker (by
    /// participants, counting rooms placed but not yet populated).
    pub fn place(&self, room: &RoomId) -> usize {
        if let Some(i) = self.placement.get(room) {
            return *i;
        }
        // Computed outside `entry`: iterating the map while holding one of its locks
        // would deadlock.
        let mut rooms_per = vec![0usize; self.workers.len()];
        for e in self.placement.iter() {
            if let Some(n) = rooms_per.get_mut(*e.value()) {
                *n += 1;
            }
        }
        let best = (0..self.workers.len())
            .min_by_key(|&i| {
                (
                    self.workers[i].load.load(Ordering::Relaxed),
                    rooms_per[i],
                    i,
                )
            })
            .unwrap_or(0);
        *self.placement.entry(room.clone()).or_insert(best)
    }
}

impl MediaPlane for WorkerPool {
    fn send(&self, room: &RoomId, cmd: Command) -> Result<(), PlaneError> {
        let i = self.place(room);
        match self.workers[i].try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(PlaneError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(PlaneError::Stopped),
        }
    }

    fn room_closed(&self, room: &RoomId) {
        self.placement.remove(room);
    }
}

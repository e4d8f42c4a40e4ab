//! The shard's structural invariants, checked by every simulation and the fuzz targets.

use super::*;

impl Shard {
    /// Test and fuzzing hook: the shard's structural invariants. Every subscription is to a
    /// live track that lists its subscriber; every track's publisher, room and subscribers
    /// exist; rooms list only live participants and tracks; every demux entry points at a
    /// live connection (no peer left behind after a leave); the timer table holds exactly
    /// one entry per connection with a deadline.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, p) in &self.router.participants {
            for tid in p.subs.keys() {
                let t = self
                    .router
                    .tracks
                    .get(tid)
                    .ok_or(format!("{id} subscribes to vanished track {tid}"))?;
                if !t.subscribers.contains(id) {
                    return Err(format!("track {tid} does not list its subscriber {id}"));
                }
            }
            for tid in p.published.values() {
                if !self.router.tracks.contains_key(tid) {
                    return Err(format!("{id} publishes vanished track {tid}"));
                }
            }
            let room = self
                .router
                .rooms
                .get(&p.room)
                .ok_or(format!("{id} is in a vanished room"))?;
            if !room.participants.contains(id) {
                return Err(format!("room {} does not list {id}", p.room));
            }
        }
        for (tid, t) in &self.router.tracks {
            let publisher = self
                .router
                .participants
                .get(&t.publisher)
                .ok_or(format!("track {tid} of a vanished publisher"))?;
            if publisher.published.get(&t.mid) != Some(tid) {
                return Err(format!("track {tid} not in its publisher's list"));
            }
            for s in &t.subscribers {
                if !self
                    .router
                    .participants
                    .get(s)
                    .is_some_and(|p| p.subs.contains_key(tid))
                {
                    return Err(format!(
                        "track {tid} lists {s}, who does not subscribe to it"
                    ));
                }
            }
            if !self
                .router
                .rooms
                .get(&t.room)
                .is_some_and(|r| r.tracks.contains(tid))
            {
                return Err(format!("track {tid} missing from its room"));
            }
        }
        for (name, r) in &self.router.rooms {
            if r.participants.is_empty() {
                return Err(format!("empty room {name} kept"));
            }
            for p in &r.participants {
                if !self.router.participants.contains_key(p) {
                    return Err(format!("room {name} lists vanished {p}"));
                }
            }
        }
        let live = |id: &ParticipantId, kind: PcKind| {
            self.router
                .participants
                .get(id)
                .is_some_and(|p| match kind {
                    PcKind::Publisher => p.publisher.is_some(),
                    PcKind::Subscriber => p.subscriber.is_some(),
                })
        };
        let (addrs, ufrags) = self.peers.routes.bindings();
        for (addr, (id, kind)) in addrs {
            if !live(id, *kind) {
                return Err(format!("address {addr:?} left behind for {id} {kind:?}"));
            }
        }
        for (ufrag, (id, kind)) in ufrags {
            if !live(id, *kind) {
                return Err(format!("ufrag {ufrag} left behind for {id} {kind:?}"));
            }
        }
        // Each connection is found by the ufrag it uses now (ICE restarts change it).
        for (id, p) in &self.router.participants {
            for (kind, pc) in [
                (PcKind::Publisher, p.publisher.as_ref()),
                (PcKind::Subscriber, p.subscriber.as_ref()),
            ] {
                let Some(pc) = pc else { continue };
                if self.peers.routes.ufrag_owner(&pc.ufrag) != Some((*id, kind)) {
                    return Err(format!(
                        "{id} {kind:?}: ufrag {} not demultiplexed",
                        pc.ufrag
                    ));
                }
            }
        }
        let mut with_deadline = 0;
        for (id, p) in &self.router.participants {
            for (kind, pc) in [
                (PcKind::Publisher, p.publisher.as_ref()),
                (PcKind::Subscriber, p.subscriber.as_ref()),
            ] {
                if let Some(t) = pc.and_then(|pc| pc.timeout) {
                    with_deadline += 1;
                    if !self.peers.timers.contains((*id, kind), t) {
                        return Err(format!("{id} {kind:?} due at a time the timer table lacks"));
                    }
                }
            }
        }
        if self.peers.timers.len() != with_deadline {
            return Err(format!(
                "{} timers for {with_deadline} connections with a deadline",
                self.peers.timers.len()
            ));
        }
        Ok(())
    }
}

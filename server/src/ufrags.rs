//! Which worker owns an ICE ufrag: how the node's single ICE-TCP port routes a new
//! connection (its first frame is a STUN binding request whose USERNAME starts with our
//! ufrag) to the worker whose shard holds that connection.
//!
//! Each worker records the ufrags of its participants as it passes their events on: the
//! SDP it answers or offers (`a=ice-ufrag:`), and ICE restarts; a participant's ufrags
//! are withdrawn when it is gone. The event is recorded before the control plane sees it,
//! so a client never learns a ufrag the directory does not know yet.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use sfu_core::{Event, ParticipantId};

/// Ufrags a participant keeps at most (two connections, each ICE restart adds one; the
/// oldest is withdrawn).
const PER_PARTICIPANT: usize = 6;

#[derive(Default)]
pub struct UfragDirectory {
    owners: DashMap<String, usize>,
}

impl UfragDirectory {
    /// The worker owning `ufrag`.
    pub fn owner(&self, ufrag: &str) -> Option<usize> {
        self.owners.get(ufrag).map(|w| *w)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.owners.len()
    }
}

/// One worker's writer to the directory.
pub struct UfragRecorder {
    worker: usize,
    directory: Arc<UfragDirectory>,
    mine: HashMap<ParticipantId, Vec<String>>,
}

impl UfragRecorder {
    pub fn new(worker: usize, directory: Arc<UfragDirectory>) -> Self {
        Self {
            worker,
            directory,
            mine: HashMap::new(),
        }
    }

    /// Record what `e` says about local ufrags.
    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::PublishAnswer { participant, sdp }
            | Event::SubscribeOffer {
                participant, sdp, ..
            } => {
                if let Some(u) = sdp
                    .lines()
                    .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
                {
                    self.add(*participant, u);
                }
            }
            Event::IceRestarted {
                participant, ufrag, ..
            } => self.add(*participant, ufrag),
            Event::ParticipantGone { participant, .. } => {
                for u in self.mine.remove(participant).unwrap_or_default() {
                    self.directory.owners.remove(&u);
                }
            }
            _ => {}
        }
    }

    fn add(&mut self, participant: ParticipantId, ufrag: &str) {
        let list = self.mine.entry(participant).or_default();
        if list.iter().any(|u| u == ufrag) {
            return;
        }
        if list.len() >= PER_PARTICIPANT {
            let old = list.remove(0);
            self.directory.owners.remove(&old);
        }
        list.push(ufrag.to_string());
        self.directory.owners.insert(ufrag.to_string(), self.worker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu_core::{GoneReason, PcKind, RoomId};

    #[test]
    fn ufrags_follow_answers_offers_restarts_and_departures() {
        let dir = Arc::new(UfragDirectory::default());
        let mut w1 = UfragRecorder::new(1, dir.clone());
        let p = ParticipantId(7);
        w1.observe(&Event::PublishAnswer {
            participant: p,
            sdp: "v=0\r\na=ice-ufrag:pubA\r\na=ice-pwd:x\r\n".into(),
        });
        w1.observe(&Event::SubscribeOffer {
            participant: p,
            sdp: "v=0\r\na=ice-ufrag:subB\r\n".into(),
            tracks: Vec::new(),
        });
        assert_eq!(dir.owner("pubA"), Some(1));
        assert_eq!(dir.owner("subB"), Some(1));
        assert_eq!(dir.owner("nobody"), None);
        for i in 0..10 {
            w1.observe(&Event::IceRestarted {
                participant: p,
                pc: PcKind::Subscriber,
                ufrag: format!("r{i}"),
                pwd: String::new(),
                candidates: Vec::new(),
            });
        }
        assert_eq!(dir.len(), PER_PARTICIPANT, "old ones are withdrawn");
        assert_eq!(dir.owner("r9"), Some(1));
        w1.observe(&Event::ParticipantGone {
            room: RoomId::from("r"),
            participant: p,
            reason: GoneReason::Left,
        });
        assert_eq!(dir.len(), 0);
    }
}

//! Which tracks a participant receives: every other track of its room (auto-subscribe,
//! the default), less those it turned down; or, when it joined without auto-subscribe,
//! only those it asked for. [`Command::Subscribe`](crate::Command) changes it; the
//! subscriber connection follows at its next negotiation.

use std::collections::BTreeSet;

use crate::ids::{ParticipantId, TrackId};
use crate::peers::Peers;
use crate::router::Router;

/// The most tracks one participant may name (asked for or turned down).
const MAX_NAMED: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Joined without auto-subscribe: only `chosen` tracks.
    pub manual: bool,
    chosen: BTreeSet<TrackId>,
    refused: BTreeSet<TrackId>,
}

impl Selection {
    pub fn manual(manual: bool) -> Self {
        Self {
            manual,
            ..Self::default()
        }
    }

    pub fn wants(&self, t: TrackId) -> bool {
        if self.manual {
            self.chosen.contains(&t)
        } else {
            !self.refused.contains(&t)
        }
    }

    pub fn set(&mut self, t: TrackId, subscribe: bool) {
        if subscribe {
            self.refused.remove(&t);
            if self.chosen.len() < MAX_NAMED {
                self.chosen.insert(t);
            }
        } else {
            self.chosen.remove(&t);
            if self.refused.len() < MAX_NAMED {
                self.refused.insert(t);
            }
        }
    }

    /// A track that is gone for good.
    pub fn forget(&mut self, t: TrackId) {
        self.chosen.remove(&t);
        self.refused.remove(&t);
    }
}

impl Router {
    /// `id` subscribes to `tracks`, or unsubscribes from them.
    pub(crate) fn select(
        &mut self,
        peers: &mut Peers,
        id: ParticipantId,
        tracks: &[TrackId],
        subscribe: bool,
    ) {
        let Some(p) = self.participants.get_mut(&id) else {
            return peers.fail(id, crate::api::CommandError::UnknownParticipant);
        };
        for t in tracks.iter().take(MAX_NAMED) {
            p.selection.set(*t, subscribe);
            if subscribe {
                continue;
            }
            if let Some(sub) = p.subs.remove(t) {
                p.to_stop.push(sub.mid);
                if let Some(track) = self.tracks.get_mut(t) {
                    track.subscribers.retain(|s| *s != id);
                }
            }
        }
        self.sync_subscriptions(peers, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_subscribe_takes_all_but_the_refused_and_manual_only_the_chosen() {
        let (a, b) = (TrackId(1), TrackId(2));
        let mut auto = Selection::manual(false);
        assert!(auto.wants(a) && auto.wants(b));
        auto.set(a, false);
        assert!(!auto.wants(a) && auto.wants(b));
        auto.set(a, true);
        assert!(auto.wants(a));
        let mut manual = Selection::manual(true);
        assert!(!manual.wants(a));
        manual.set(b, true);
        assert!(!manual.wants(a) && manual.wants(b));
        manual.forget(b);
        assert!(!manual.wants(b));
        for n in 0..5000 {
            manual.set(TrackId(100 + n), true);
        }
        assert_eq!(manual.chosen.len(), MAX_NAMED, "bounded");
    }
}

//! The shard's timer table: when each peer connection next wants its clock advanced.
//!
//! Every drain of a connection records the deadline str0m returned; the shard then knows
//! its true earliest deadline without scanning its peers, and a timeout wakes only the
//! connections that are due.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::ids::{ParticipantId, PcKind};

/// One connection of a participant.
pub(crate) type PcKey = (ParticipantId, PcKind);

#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// (deadline, connection), earliest first. One entry per live connection.
    queue: BTreeSet<(Instant, PcKey)>,
}

impl Timers {
    /// `who`'s deadline moved from `old` (if it had one) to `new`.
    pub fn set(&mut self, who: PcKey, old: Option<Instant>, new: Instant) {
        if old == Some(new) {
            return;
        }
        if let Some(o) = old {
            self.queue.remove(&(o, who));
        }
        self.queue.insert((new, who));
    }

    /// `who` is gone: its deadline (if any) is dropped.
    pub fn remove(&mut self, who: PcKey, at: Option<Instant>) {
        if let Some(t) = at {
            self.queue.remove(&(t, who));
        }
    }

    pub fn earliest(&self) -> Option<Instant> {
        self.queue.first().map(|(t, _)| *t)
    }

    /// Move every connection due at `now` into `due` (earliest first), leaving them out of
    /// the table until their next drain puts them back.
    pub fn take_due(&mut self, now: Instant, due: &mut Vec<PcKey>) {
        while let Some(&(t, who)) = self.queue.first() {
            if t > now {
                break;
            }
            self.queue.pop_first();
            due.push(who);
        }
    }

    #[cfg(any(test, feature = "testkit"))]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(any(test, feature = "testkit"))]
    pub fn contains(&self, who: PcKey, at: Instant) -> bool {
        self.queue.contains(&(at, who))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_and_due_follow_every_move() {
        let t0 = crate::test_clock::origin();
        let ms = |n| t0 + Duration::from_millis(n);
        let a = (ParticipantId(1), PcKind::Publisher);
        let b = (ParticipantId(1), PcKind::Subscriber);
        let c = (ParticipantId(2), PcKind::Subscriber);
        let mut t = Timers::default();
        assert_eq!(t.earliest(), None);
        t.set(a, None, ms(30));
        t.set(b, None, ms(10));
        t.set(c, None, ms(20));
        assert_eq!(t.earliest(), Some(ms(10)));
        // b moves later: c is now first; the old entry is gone.
        t.set(b, Some(ms(10)), ms(50));
        assert_eq!(t.earliest(), Some(ms(20)));
        assert_eq!(t.len(), 3);
        let mut due = Vec::new();
        t.take_due(ms(30), &mut due);
        assert_eq!(due, vec![c, a]);
        assert_eq!(t.earliest(), Some(ms(50)));
        t.remove(b, Some(ms(50)));
        assert_eq!(t.earliest(), None);
    }
}

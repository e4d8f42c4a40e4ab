//! Connections whose ICE went quiet: the peer's path broke (a Wi-Fi hand-over, a laptop
//! lid, a cut cable). str0m reports such a connection disconnected but keeps it: consent
//! checks that come back, or an ICE restart over signaling, bring it back to connected.
//! The participant keeps its place meanwhile (others see it reconnecting) for a grace
//! period, after which it is removed as lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::api::Event;
use crate::ids::{ParticipantId, PcKind, TrackId, TrackKind};
use crate::shard::Shard;
use crate::timers::PcKey;

#[derive(Debug)]
pub(crate) struct Interruptions {
    grace: Duration,
    since: BTreeMap<PcKey, Instant>,
}

/// What a change means for the participant as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Its first interrupted connection: tell the control plane.
    Began,
    /// Its last interrupted connection is back.
    Ended,
    /// Nothing new for the participant.
    Same,
}

impl Interruptions {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            since: BTreeMap::new(),
        }
    }

    fn any(&self, id: ParticipantId) -> bool {
        self.since.contains_key(&(id, PcKind::Publisher))
            || self.since.contains_key(&(id, PcKind::Subscriber))
    }

    pub fn contains(&self, who: PcKey) -> bool {
        self.since.contains_key(&who)
    }

    /// `who`'s ICE went quiet at `now`.
    pub fn begin(&mut self, who: PcKey, now: Instant) -> Change {
        let before = self.any(who.0);
        self.since.entry(who).or_insert(now);
        if before {
            Change::Same
        } else {
            Change::Began
        }
    }

    /// `who`'s ICE is connected (again).
    pub fn end(&mut self, who: PcKey) -> Change {
        if self.since.remove(&who).is_none() || self.any(who.0) {
            Change::Same
        } else {
            Change::Ended
        }
    }

    /// Forget a participant that is gone.
    pub fn forget(&mut self, id: ParticipantId) {
        self.since.remove(&(id, PcKind::Publisher));
        self.since.remove(&(id, PcKind::Subscriber));
    }

    /// Participants interrupted for longer than the grace period (taken out).
    pub fn expired(&mut self, now: Instant, out: &mut Vec<ParticipantId>) {
        if self.since.is_empty() {
            return;
        }
        let grace = self.grace;
        let due: Vec<PcKey> = self
            .since
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= grace)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            if !out.contains(&k.0) {
                out.push(k.0);
            }
            self.forget(k.0);
        }
    }

    /// When the next participant's grace period ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.values().min().map(|t| *t + self.grace)
    }
}

impl Shard {
    /// ICE of one connection went quiet or came back ([`crate::interruption`]).
    pub(crate) fn on_ice_state(
        &mut self,
        now: Instant,
        id: ParticipantId,
        kind: PcKind,
        state: str0m::IceConnectionState,
    ) {
        use str0m::IceConnectionState as S;
        let change = match state {
            S::Disconnected => self.interrupted.begin((id, kind), now),
            S::Connected | S::Completed if self.interrupted.contains((id, kind)) => {
                match kind {
                    PcKind::Subscriber => self.resume_subscriber(now, id),
                    PcKind::Publisher => self.resume_publisher(now, id),
                }
                self.interrupted.end((id, kind))
            }
            S::Connected | S::Completed | S::New | S::Checking => return,
        };
        match change {
            Change::Began => self.emit(Event::MediaInterrupted { participant: id }),
            Change::Ended => self.emit(Event::MediaRestored { participant: id }),
            Change::Same => {}
        }
    }

    /// A subscriber's path is back after an interruption. The estimate it fell to while
    /// no feedback came says nothing about the path now: estimation starts again from the
    /// initial estimate (as at join). Its decoders lost every packet of the gap: each
    /// video it receives restarts on a keyframe, asked for now rather than when the
    /// browser gives up waiting (Chromium: 3 s without a decodable frame).
    fn resume_subscriber(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let Some(pc) = p.subscriber.as_mut() else {
            return;
        };
        let initial = crate::pc::INITIAL_ESTIMATE_KBPS;
        if pc
            .guarded(|rtc| rtc.bwe().reset(str0m::bwe::Bitrate::kbps(initial)))
            .is_ok()
        {
            p.estimate = Some(initial * 1_000);
            p.falling = 0;
        }
        let sources: Vec<(TrackId, u32)> = p
            .subs
            .values()
            .filter_map(|s| Some((s.track, s.source_layer()?)))
            .collect();
        for (tid, ssrc) in sources {
            if let Some(li) = self.tracks.get(&tid).and_then(|t| t.layer_of_ssrc(ssrc)) {
                self.request_keyframe(now, tid, li);
            }
        }
        self.allocate(now, id);
    }

    /// A publisher's path is back after an interruption: its subscribers' decoders lost
    /// the gap, so each of its video tracks restarts on a keyframe of every layer.
    fn resume_publisher(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let tracks: Vec<(TrackId, usize)> = p
            .published
            .values()
            .filter_map(|t| {
                let tr = self.tracks.get(t)?;
                (tr.kind == TrackKind::Video).then_some((*t, tr.layers.len()))
            })
            .collect();
        for (tid, layers) in tracks {
            for li in 0..layers {
                self.request_keyframe(now, tid, li);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_participant_is_interrupted_while_any_connection_is() {
        let t0 = crate::test_clock::origin();
        let mut i = Interruptions::new(Duration::from_secs(20));
        let (a, b) = (ParticipantId(1), ParticipantId(2));
        assert_eq!(i.begin((a, PcKind::Subscriber), t0), Change::Began);
        assert_eq!(
            i.begin((a, PcKind::Publisher), t0 + Duration::from_secs(1)),
            Change::Same
        );
        assert_eq!(
            i.begin((b, PcKind::Publisher), t0 + Duration::from_secs(5)),
            Change::Began
        );
        assert_eq!(
            i.end((a, PcKind::Subscriber)),
            Change::Same,
            "its publisher is still out"
        );
        assert_eq!(i.end((a, PcKind::Publisher)), Change::Ended);
        assert_eq!(
            i.end((a, PcKind::Publisher)),
            Change::Same,
            "not interrupted"
        );
        assert_eq!(i.deadline(), Some(t0 + Duration::from_secs(25)));
        let mut out = Vec::new();
        i.expired(t0 + Duration::from_secs(24), &mut out);
        assert!(out.is_empty());
        i.expired(t0 + Duration::from_secs(25), &mut out);
        assert_eq!(out, vec![b]);
        assert_eq!(i.deadline(), None);
        assert_eq!(i.begin((a, PcKind::Subscriber), t0), Change::Began);
        i.forget(a);
        assert_eq!(i.deadline(), None);
    }
}

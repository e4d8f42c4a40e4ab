//! Connections whose ICE went quiet: the peer's path broke (a Wi-Fi hand-over, a laptop
//! lid, a cut cable). str0m reports such a connection disconnected but keeps it: consent
//! checks that come back, or an ICE restart over signaling, bring it back to connected.
//! The participant keeps its place meanwhile (others see it reconnecting) for a grace
//! period, after which it is removed as lost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::api::Event;
use crate::forward::Track;
use crate::ids::{ParticipantId, PcKind, TrackId, TrackKind};
use crate::peers::Peers;
use crate::shard::Participant;
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

/// What an ICE state change of one connection means ([`Interruptions::on_ice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IceChange {
    /// For the participant as a whole.
    pub change: Change,
    /// The connection came back from an interruption: its media restarts (keyframes,
    /// and for a subscriber a fresh estimate).
    pub resumed: bool,
}

impl Interruptions {
    /// ICE of one connection went quiet or came back; None when that changes nothing.
    pub fn on_ice(
        &mut self,
        who: PcKey,
        state: str0m::IceConnectionState,
        now: Instant,
    ) -> Option<IceChange> {
        use str0m::IceConnectionState as S;
        match state {
            S::Disconnected => Some(IceChange {
                change: self.begin(who, now),
                resumed: false,
            }),
            S::Connected | S::Completed if self.contains(who) => Some(IceChange {
                change: self.end(who),
                resumed: true,
            }),
            S::Connected | S::Completed | S::New | S::Checking => None,
        }
    }
}

/// The keyframes to ask for when a connection of `p` comes back from an interruption:
/// the decoders on the far side lost every packet of the gap. A subscriber's: each
/// video it receives, on the layer it receives (asked now rather than when the browser
/// gives up waiting; Chromium waits 3 s without a decodable frame). A publisher's: every
/// layer of each of its video tracks, for all its subscribers.
pub(crate) fn keyframes_after_resume(
    kind: PcKind,
    p: &Participant,
    tracks: &BTreeMap<TrackId, Track>,
) -> Vec<(TrackId, usize)> {
    match kind {
        PcKind::Subscriber => p
            .subs
            .values()
            .filter_map(|s| {
                let li = tracks.get(&s.track)?.layer_of_ssrc(s.source_layer()?)?;
                Some((s.track, li))
            })
            .collect(),
        PcKind::Publisher => p
            .published
            .values()
            .filter_map(|t| {
                tracks
                    .get(t)
                    .filter(|tr| tr.kind == TrackKind::Video)
                    .map(|tr| (*t, tr))
            })
            .flat_map(|(t, tr)| (0..tr.layers.len()).map(move |li| (t, li)))
            .collect(),
    }
}

impl crate::router::Router {
    /// ICE of one connection went quiet or came back ([`crate::interruption`]). A
    /// connection that came back restarts its media: keyframes for what crossed the gap,
    /// and a subscriber's estimate from the initial one (the one it fell to while no
    /// feedback came says nothing about the path now), then its allocation.
    pub(crate) fn on_ice_state(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        id: ParticipantId,
        kind: PcKind,
        state: str0m::IceConnectionState,
    ) {
        let Some(ice) = peers.interrupted.on_ice((id, kind), state, now) else {
            return;
        };
        if ice.resumed {
            let subscriber = kind == PcKind::Subscriber;
            let asks = match self.participants.get_mut(&id) {
                Some(p) => {
                    if subscriber {
                        p.restart_estimate();
                    }
                    crate::interruption::keyframes_after_resume(kind, p, &self.tracks)
                }
                None => Vec::new(),
            };
            for (tid, li) in asks {
                self.request_keyframe(peers, now, tid, li);
            }
            if subscriber {
                self.allocate(peers, now, id);
            }
        }
        match ice.change {
            Change::Began => peers.emit(Event::MediaInterrupted { participant: id }),
            Change::Ended => peers.emit(Event::MediaRestored { participant: id }),
            Change::Same => {}
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

    #[test]
    fn ice_states_begin_and_end_interruptions() {
        use str0m::IceConnectionState as S;
        let t0 = crate::test_clock::origin();
        let mut i = Interruptions::new(Duration::from_secs(20));
        let who = (ParticipantId(1), PcKind::Subscriber);
        assert_eq!(
            i.on_ice(who, S::Connected, t0),
            None,
            "connected, never interrupted"
        );
        let quiet = i.on_ice(who, S::Disconnected, t0);
        assert_eq!(
            quiet,
            Some(IceChange {
                change: Change::Began,
                resumed: false
            })
        );
        assert_eq!(i.on_ice(who, S::Checking, t0), None);
        let back = i.on_ice(who, S::Completed, t0);
        assert_eq!(
            back,
            Some(IceChange {
                change: Change::Ended,
                resumed: true
            })
        );
        assert_eq!(i.on_ice(who, S::Connected, t0), None, "only once");
    }
}

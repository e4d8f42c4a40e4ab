//! Dynacast: publishers stop encoding simulcast layers that no subscriber needs, and
//! start again as soon as one does (the control plane relays
//! [`Event::PublisherLayers`]; the web client applies it with `setParameters`).
//!
//! A layer is needed by a subscriber when it is the layer the subscriber's allocation
//! allows (the best declared layer up to its `max_rank`, whether flowing or not) or the
//! layer it receives now (until a switch completes). While anyone subscribes, the lowest
//! layer stays on too: a sudden drop in someone's bandwidth then never waits for an
//! encoder to start. A layer goes off after [`PAUSE_AFTER`] unneeded, and on at once.
//! Suspended layers keep their measured rate, so the allocator can still choose them;
//! choosing one is what turns it back on. A layer never measured is never switched off.
//!
//! Subscription stats (also here: they read the same state) are reported every
//! [`STATS_INTERVAL`] per subscriber with video.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use crate::api::{Event, LayerState, SubscriptionStat};
use crate::forward::{Subscription, Track};
use crate::ids::{ParticipantId, TrackId, TrackKind};
use crate::peers::Peers;

/// How long a layer must be unneeded before its publisher is told to stop it.
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// How often each subscriber's [`Event::SubscriptionStats`] is emitted.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// What one subscriber asks of a track: the layer it receives now (its SSRC) and the
/// rank its allocation allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Demand {
    pub source: Option<u32>,
    pub max_rank: Option<u8>,
}

impl Demand {
    pub(crate) fn of(sub: &Subscription) -> Self {
        Self {
            source: sub.source_layer(),
            max_rank: sub.max_rank,
        }
    }
}

/// Re-evaluate which layers of a simulcast video track its subscribers need; the event
/// for its publisher when a layer goes off or on.
pub(crate) fn evaluate(
    tid: TrackId,
    track: &mut Track,
    demands: &[Demand],
    now: Instant,
) -> Option<Event> {
    if track.kind != TrackKind::Video
        || track.layers.len() < 2
        || track.layers.iter().any(|l| l.rid.is_none())
    {
        return None;
    }
    let mut needed = vec![false; track.layers.len()];
    for d in demands {
        if let Some(i) = d.source.and_then(|s| track.layer_of_ssrc(s)) {
            needed[i] = true;
        }
        if let Some(i) = track.needed_within(d.max_rank) {
            needed[i] = true;
        }
    }
    if !demands.is_empty() {
        if let Some(i) = track.needed_within(Some(0)) {
            needed[i] = true;
        }
    }
    let mut changed = false;
    for (layer, need) in track.layers.iter_mut().zip(needed) {
        if need {
            layer.unneeded_since = None;
            changed |= std::mem::replace(&mut layer.suspended, false);
        } else {
            let since = *layer.unneeded_since.get_or_insert(now);
            // A layer never measured stays on: the allocator could not ask for it back
            // (it knows no rate for it). Publishers ramp layers up one by one, so the
            // top one often starts late.
            if !layer.suspended
                && layer.bps > 0
                && now.saturating_duration_since(since) >= PAUSE_AFTER
            {
                layer.suspended = true;
                changed = true;
            }
        }
    }
    changed.then(|| Event::PublisherLayers {
        participant: track.publisher,
        track: tid,
        mid: track.mid.to_string(),
        layers: track
            .layers
            .iter()
            .filter_map(|l| {
                l.rid.map(|r| LayerState {
                    rid: r.to_string(),
                    active: !l.suspended,
                })
            })
            .collect(),
    })
}

/// One subscriber's [`Event::SubscriptionStats`] (None without video subscriptions);
/// `period` is the time since the last report (for the used rate, whose byte counts it
/// resets).
pub(crate) fn subscription_stats(
    participant: ParticipantId,
    subs: &mut BTreeMap<TrackId, Subscription>,
    estimate_bps: Option<u64>,
    tracks: &BTreeMap<TrackId, Track>,
    now: Instant,
    period: Duration,
) -> Option<Event> {
    let mut subscriptions = Vec::new();
    for (tid, sub) in subs.iter_mut() {
        let Some(track) = tracks.get(tid).filter(|t| t.kind == TrackKind::Video) else {
            continue;
        };
        let rid = |i: usize| {
            track.layers[i]
                .rid
                .map(|r| r.to_string())
                .unwrap_or_default()
        };
        let used_bps = sub.sent_bytes * 8 * 1_000 / period.as_millis().max(1) as u64;
        sub.sent_bytes = 0;
        subscriptions.push(SubscriptionStat {
            track: *tid,
            publisher: track.publisher,
            current: sub
                .source_layer()
                .and_then(|s| track.layer_of_ssrc(s))
                .filter(|_| sub.max_rank.is_some())
                .map(rid),
            target: track.target_within(now, sub.max_rank).map(rid),
            available: (0..track.layers.len())
                .filter(|&i| track.layers[i].active(now))
                .map(rid)
                .collect(),
            allocated_bps: sub.allocated_bps,
            used_bps,
            switches: sub.switches,
            pauses: sub.pauses,
        });
    }
    (!subscriptions.is_empty()).then_some(Event::SubscriptionStats {
        participant,
        estimate_bps,
        subscriptions,
    })
}

impl crate::router::Router {
    /// Dynacast: which simulcast layers each track's subscribers need
    /// ([`crate::dynacast::evaluate`]); the changes go to the publishers.
    pub(crate) fn dynacast(&mut self, peers: &mut Peers, now: Instant) {
        use crate::dynacast::{evaluate, Demand};
        let mut demands = Vec::new();
        for (tid, track) in self.tracks.iter_mut() {
            demands.clear();
            demands.extend(
                track
                    .subscribers
                    .iter()
                    .filter_map(|sid| self.participants.get(sid)?.subs.get(tid))
                    .map(Demand::of),
            );
            // A relay tap needs exactly the layers it takes.
            demands.extend(
                track
                    .taps
                    .iter()
                    .flat_map(|tap| tap.layers.iter())
                    .map(|&li| Demand {
                        source: track.layers[li].ssrc,
                        max_rank: None,
                    }),
            );
            if let Some(e) = evaluate(*tid, track, &demands, now) {
                peers.emit(e);
            }
        }
    }

    /// Every subscriber's [`Event::SubscriptionStats`]
    /// ([`crate::dynacast::subscription_stats`]).
    pub(crate) fn report_subscriptions(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        period: Duration,
    ) {
        for (id, p) in self.participants.iter_mut() {
            let stats = crate::dynacast::subscription_stats(
                *id,
                &mut p.subs,
                p.estimate,
                &self.tracks,
                now,
                period,
            );
            if let Some(e) = stats {
                peers.emit(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Rid;

    /// A layer nobody needs goes off after PAUSE_AFTER (once measured), and on at once
    /// when a subscriber's allocation asks for it again; the lowest stays on while anyone
    /// subscribes.
    #[test]
    fn unneeded_layers_go_off_after_the_hold_and_on_at_once() {
        let t0 = crate::test_clock::origin();
        let mut t = Track::test_video(&["q", "h", "f"]);
        let ls: Vec<usize> = [("q", 10), ("h", 20), ("f", 30)]
            .into_iter()
            .map(|(r, ssrc)| t.layer_index(Some(Rid::from(r)), ssrc))
            .collect();
        for &li in &ls {
            t.layers[li].bps = 100_000;
        }
        let on_q = [Demand {
            source: Some(10),
            max_rank: Some(0),
        }];
        assert_eq!(evaluate(TrackId(1), &mut t, &on_q, t0), None, "nothing yet");
        let later = t0 + PAUSE_AFTER;
        let Some(Event::PublisherLayers { layers, .. }) =
            evaluate(TrackId(1), &mut t, &on_q, later)
        else {
            panic!("h and f go off");
        };
        let active: Vec<bool> = layers.iter().map(|l| l.active).collect();
        assert_eq!(active, [true, false, false]);
        assert_eq!(
            evaluate(TrackId(1), &mut t, &on_q, later),
            None,
            "no repeat"
        );
        let wants_f = [Demand {
            source: Some(10),
            max_rank: Some(u8::MAX),
        }];
        let Some(Event::PublisherLayers { layers, .. }) =
            evaluate(TrackId(1), &mut t, &wants_f, later)
        else {
            panic!("f comes back at once");
        };
        let active: Vec<bool> = layers.iter().map(|l| l.active).collect();
        assert_eq!(active, [true, false, true]);
    }
}

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

use crate::api::{Event, LayerState, SubscriptionStat};
use crate::ids::{ParticipantId, TrackKind};
use crate::shard::Shard;

/// How long a layer must be unneeded before its publisher is told to stop it.
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// How often each subscriber's [`Event::SubscriptionStats`] is emitted.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

impl Shard {
    /// Re-evaluate which layers every simulcast video track needs; emit the changes.
    pub(crate) fn dynacast(&mut self, now: Instant) {
        let mut events = Vec::new();
        for (tid, track) in self.tracks.iter_mut() {
            if track.kind != TrackKind::Video
                || track.layers.len() < 2
                || track.layers.iter().any(|l| l.rid.is_none())
            {
                continue;
            }
            let mut needed = vec![false; track.layers.len()];
            let mut any = false;
            for sid in &track.subscribers {
                let Some(sub) = self.participants.get(sid).and_then(|p| p.subs.get(tid)) else {
                    continue;
                };
                any = true;
                if let Some(i) = sub.source_layer().and_then(|s| track.layer_of_ssrc(s)) {
                    needed[i] = true;
                }
                if let Some(i) = track.needed_within(sub.max_rank) {
                    needed[i] = true;
                }
            }
            if any {
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
                    // (it knows no rate for it). Publishers ramp layers up one by one, so
                    // the top one often starts late.
                    if !layer.suspended
                        && layer.bps > 0
                        && now.saturating_duration_since(since) >= PAUSE_AFTER
                    {
                        layer.suspended = true;
                        changed = true;
                    }
                }
            }
            if changed {
                let layers = track
                    .layers
                    .iter()
                    .filter_map(|l| {
                        l.rid.map(|r| LayerState {
                            rid: r.to_string(),
                            active: !l.suspended,
                        })
                    })
                    .collect();
                events.push(Event::PublisherLayers {
                    participant: track.publisher,
                    track: *tid,
                    mid: track.mid.to_string(),
                    layers,
                });
            }
        }
        for e in events {
            self.emit(e);
        }
    }

    /// Emit [`Event::SubscriptionStats`] for every subscriber with video; `period` is the
    /// time since the last report (for the used rate).
    pub(crate) fn report_subscriptions(&mut self, now: Instant, period: Duration) {
        let mut events = Vec::new();
        let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for id in ids {
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            let mut subscriptions = Vec::new();
            for (tid, sub) in p.subs.iter_mut() {
                let Some(track) = self.tracks.get(tid).filter(|t| t.kind == TrackKind::Video)
                else {
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
            if !subscriptions.is_empty() {
                events.push(Event::SubscriptionStats {
                    participant: id,
                    estimate_bps: p.estimate,
                    subscriptions,
                });
            }
        }
        for e in events {
            self.emit(e);
        }
    }
}

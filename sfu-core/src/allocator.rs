//! Bandwidth allocation: divide one subscriber's estimated downstream bandwidth (str0m's
//! TWCC-based GCC estimate, draft-ietf-rmcat-gcc) among the tracks it receives.
//!
//! Rules, in order:
//! 1. Audio always: each audio track is reserved [`AUDIO_BPS`].
//! 2. Video by priority (higher first): every video first gets its lowest layer if it
//!    fits; what does not fit is paused.
//! 3. Then upgrades while they fit: higher priorities are served fully first; videos of
//!    equal priority take turns, one layer at a time.
//! 4. A video already forwarded keeps its lowest layer down to [`KEEP_LOWEST`] of its
//!    rate: pausing is the last resort.
//! 5. Hysteresis: a layer above the one currently forwarded costs [`UPGRADE_HEADROOM`]
//!    times its bitrate, so that an estimate hovering at a layer's rate does not make the
//!    subscriber flap between layers; a downgrade happens as soon as the current layer no
//!    longer fits.

use std::time::Instant;

use crate::api::Event;
use crate::ids::{ParticipantId, PcKind, RoomId, TrackId, TrackKind};
use crate::peers::Peers;

/// Reserved per audio track (Opus with headers).
pub const AUDIO_BPS: u64 = 48_000;
/// Extra room an upgrade needs above the layer's measured rate.
pub const UPGRADE_HEADROOM: f64 = 1.15;

/// One video track as the allocator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoDemand {
    /// (rank, measured bits per second) of the layers flowing now, lowest rank first.
    pub layers: Vec<(u8, u64)>,
    /// Rank currently forwarded, if any.
    pub current: Option<u8>,
    /// Higher goes first (screen share > active speaker > the rest).
    pub priority: u32,
}

/// A video being forwarded keeps its lowest layer down to this share of the layer's rate:
/// pausing is the last resort (GCC undershoots for a moment after congestion).
pub const KEEP_LOWEST: f64 = 0.5;

fn cost(d: &VideoDemand, i: usize) -> u64 {
    let (rank, bps) = d.layers[i];
    if d.current.is_none_or(|c| rank > c) {
        (bps as f64 * UPGRADE_HEADROOM) as u64
    } else if i == 0 {
        (bps as f64 * KEEP_LOWEST) as u64
    } else {
        bps
    }
}

/// The result for one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Per video (same order as the input): the highest rank allowed, None = paused.
    pub video: Vec<Option<u8>>,
    /// Bits per second the allocation uses (audio included).
    pub used: u64,
    /// What the subscriber would take with unlimited bandwidth: the rate to probe for.
    pub desired: u64,
    /// The rate that would let the next layer in (the cheapest step up from this
    /// allocation): the sender keeps at least this much flowing, padding if need be, so
    /// that the estimate can grow to it.
    pub next: u64,
}

pub fn allocate(budget: u64, audio_tracks: usize, videos: &[VideoDemand]) -> Allocation {
    let audio = AUDIO_BPS * audio_tracks as u64;
    let mut left = budget.saturating_sub(audio);
    let mut order: Vec<usize> = (0..videos.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(videos[i].priority));
    // index into each video's layers, None = paused
    let mut pick: Vec<Option<usize>> = vec![None; videos.len()];
    for &i in &order {
        if videos[i].layers.is_empty() {
            continue;
        }
        let c = cost(&videos[i], 0);
        if c <= left {
            pick[i] = Some(0);
            left -= c;
        }
    }
    // Upgrades: a higher priority is served fully before a lower one; videos of equal
    // priority take turns, one layer at a time.
    let mut start = 0;
    while start < order.len() {
        let prio = videos[order[start]].priority;
        let end = order[start..]
            .iter()
            .position(|&i| videos[i].priority != prio)
            .map_or(order.len(), |n| start + n);
        loop {
            let mut changed = false;
            for &i in &order[start..end] {
                let Some(cur) = pick[i] else { continue };
                if cur + 1 >= videos[i].layers.len() {
                    continue;
                }
                let extra = cost(&videos[i], cur + 1).saturating_sub(cost(&videos[i], cur));
                if extra <= left {
                    left -= extra;
                    pick[i] = Some(cur + 1);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        start = end;
    }
    let video: Vec<Option<u8>> = pick
        .iter()
        .zip(videos)
        .map(|(p, v)| p.map(|i| v.layers[i].0))
        .collect();
    let used = budget.saturating_sub(audio).saturating_sub(left) + audio;
    let desired = audio
        + videos
            .iter()
            .map(|v| v.layers.last().map_or(0, |l| l.1))
            .sum::<u64>();
    let step = pick
        .iter()
        .zip(videos)
        .filter_map(|(p, v)| match p {
            None => (!v.layers.is_empty()).then(|| cost(v, 0)),
            Some(i) if i + 1 < v.layers.len() => Some(cost(v, i + 1).saturating_sub(cost(v, *i))),
            Some(_) => None,
        })
        .min()
        .unwrap_or(0);
    let used = used.min(budget.max(audio));
    Allocation {
        video,
        used,
        desired,
        next: used + step,
    }
}

/// How long after a step down a subscription may step up again.
pub(crate) const UPGRADE_HOLD: std::time::Duration = std::time::Duration::from_secs(3);

/// A video's place in one subscriber's allocation: screen shares first, then the room's
/// active speaker, then the rest; larger tiles first within each.
pub(crate) fn priority(
    screen_share: bool,
    speaker: bool,
    viewport: Option<(u32, u32, bool)>,
) -> u32 {
    let area = viewport.map_or(0, |(w, h, _)| {
        (w as u64 * h as u64 / 1_000).min(1_000_000) as u32
    });
    let class = if screen_share {
        4_000_000
    } else if speaker {
        2_000_000
    } else {
        0
    };
    class + area
}

/// The budget to divide. GCC steps down multiplicatively after congestion; while it
/// keeps falling, allocate ahead of it (so the subscriber reaches a layer that fits in one
/// or two steps), but never so far ahead that a video is paused for it: pausing waits for
/// the estimate.
pub(crate) fn budget(
    estimate: u64,
    falling: bool,
    audio_tracks: usize,
    videos: &[VideoDemand],
) -> u64 {
    if !falling {
        return estimate;
    }
    let keep: u64 = videos
        .iter()
        .filter(|d| d.current.is_some())
        .filter_map(|d| d.layers.first())
        .map(|l| (l.1 as f64 * KEEP_LOWEST) as u64)
        .sum::<u64>()
        + AUDIO_BPS * audio_tracks as u64;
    (estimate * 6 / 10).max(keep.min(estimate))
}

/// The estimator's (min, desired) after an allocation. The estimator does not look past
/// `desired`: leave room above the top layers. Padding keeps the rate up toward the next
/// layer, but never past the budget: above it, probes (driven by `desired`) find out
/// whether the link has more. Asking for less than the current estimate lets GCC's
/// estimate decay while the link is application limited (then a subscriber slides off
/// its layer on an idle 3 Mbps link), so `desired` is at least the estimate: str0m keeps
/// probing upward as the estimate grows. That probing costs padding; see
/// docs/simulcast-and-bwe.md.
///
/// A subscriber that declines the room's video (`declines_video`: there is video it does
/// not take — unsubscribed, or never asked for) has nothing to grow into: it asks for what
/// it receives, so that it gets its audio and not the padding that would hold a video
/// rate (a viewer who turned video off to save a mobile plan). Its estimate is found
/// again by probing when it takes video. (A room with no video yet keeps probing: the
/// first video then starts on a warm estimate.)
pub(crate) fn probe_bounds(
    a: &Allocation,
    budget: u64,
    estimate: u64,
    declines_video: bool,
) -> (u64, u64) {
    if declines_video && a.video.is_empty() {
        return (a.used.min(budget), a.desired * 5 / 4);
    }
    (
        a.next.min(budget),
        (a.desired * 5 / 4).max(a.next).max(estimate),
    )
}

/// Apply one video's allocated rank (`allocated`, None: paused) to its subscription:
/// down at once; up only [`UPGRADE_HOLD`] after the last step down (an estimate that
/// bounces back is not trusted at once, so the subscriber does not flap) and one layer
/// at a time while something flows (each upgrade is taken only after the previous one
/// held for an allocation round, so a big jump never lands on the link at once). Layers
/// not measured yet (`measured` false) are not withheld: before the first measurement
/// the allocation cannot know their cost. True when this paused the subscription.
pub(crate) fn settle(
    sub: &mut crate::forward::Subscription,
    allocated: Option<u8>,
    demand: &VideoDemand,
    measured: bool,
    now: std::time::Instant,
) -> bool {
    sub.allocated_bps = allocated
        .and_then(|m| demand.layers.iter().rev().find(|l| l.0 <= m))
        .map_or(0, |l| l.1);
    let new = if measured { allocated } else { Some(u8::MAX) };
    let (old_rank, new_rank) = (
        sub.max_rank.map_or(-1, i32::from),
        new.map_or(-1, i32::from),
    );
    let paused = new.is_none() && sub.max_rank.is_some();
    if paused {
        sub.pauses += 1;
    }
    if new_rank < old_rank {
        sub.lowered_at = Some(now);
        sub.max_rank = new;
    } else if new_rank > old_rank
        && sub
            .lowered_at
            .is_none_or(|t| now.saturating_duration_since(t) >= UPGRADE_HOLD)
    {
        let step = demand
            .current
            .and_then(|c| demand.layers.iter().map(|l| l.0).find(|r| *r > c));
        sub.max_rank = match (step, new) {
            (Some(step), Some(n)) if sub.max_rank.is_some() => Some(n.min(step)),
            _ => new,
        };
    }
    paused
}

impl crate::router::Router {
    /// Divide subscriber `sid`'s bandwidth estimate among its tracks
    /// ([`crate::allocator`]), apply it to its subscriptions, and steer its probing
    /// toward what it would take.
    pub(crate) fn allocate(&mut self, peers: &mut Peers, now: Instant, sid: ParticipantId) {
        use crate::allocator::{self, VideoDemand};
        let Some(p) = self.participants.get(&sid) else {
            return;
        };
        let Some(estimate) = p.estimate else { return };
        // A viewer that cannot take more (a SIP endpoint's b=AS) is allocated and probed
        // as if its link ended at its cap.
        let cap = p.max_bitrate.map(|c| p.within_cap(c));
        let estimate = p.within_cap(estimate);
        let speaker = |room: &RoomId| self.rooms.get(room).and_then(|r| r.speaker.current());
        let mut audio = 0;
        let (mut keys, mut demands): (Vec<TrackId>, Vec<VideoDemand>) = (Vec::new(), Vec::new());
        for (tid, sub) in &p.subs {
            let Some(track) = self.tracks.get(tid) else {
                continue;
            };
            match track.kind {
                TrackKind::Audio => audio += 1,
                TrackKind::Video => {
                    let mut d =
                        track.demand(now, sub.current_rank(track), sub.viewport, sub.preferred);
                    d.priority = allocator::priority(
                        track.source == crate::ids::TrackSource::ScreenShare,
                        speaker(&track.room) == Some(track.publisher),
                        sub.viewport,
                    );
                    keys.push(*tid);
                    demands.push(d);
                }
            }
        }
        let room_tracks = self.rooms.get(&p.room).map_or(&[][..], |r| &r.tracks[..]);
        let declines_video = room_tracks.iter().any(|tid| {
            !p.subs.contains_key(tid)
                && self
                    .tracks
                    .get(tid)
                    .is_some_and(|t| t.kind == TrackKind::Video && t.publisher != sid)
        });
        let budget = allocator::budget(estimate, p.falling >= 2, audio, &demands);
        let a = allocator::allocate(budget, audio, &demands);
        let Some(p) = self.participants.get_mut(&sid) else {
            return;
        };
        let mut paused = Vec::new();
        for ((tid, d), allocated) in keys.iter().zip(&demands).zip(&a.video) {
            let Some(sub) = p.subs.get_mut(tid) else {
                continue;
            };
            let measured = self
                .tracks
                .get(tid)
                .is_some_and(|t| t.layers.iter().any(|l| l.bps > 0));
            if allocator::settle(sub, *allocated, d, measured, now) {
                peers.stats.subscription_pauses += 1;
                paused.push(*tid);
            }
        }
        if let Some(pc) = p.subscriber.as_mut() {
            let (min, desired) = allocator::probe_bounds(&a, budget, estimate, declines_video);
            // Under a cap, padding toward the next layer only while that layer fits under
            // it; never probing past it.
            let (min, desired) = match cap {
                Some(cap) if a.next > cap => (a.used.min(min), desired.min(cap).max(a.used)),
                Some(cap) => (min, desired.min(cap).max(min)),
                None => (min, desired),
            };
            let set = pc.guarded(|rtc| {
                rtc.bwe().set_bitrate(
                    str0m::bwe::Bitrate::bps(min),
                    str0m::bwe::Bitrate::bps(desired),
                )
            });
            if let Err(f) = set {
                peers.failures.report(sid, f);
            }
        }
        for track in paused {
            peers.emit(Event::SubscriptionChanged {
                participant: sid,
                track,
                layer: None,
                paused: true,
            });
        }
        self.drain_pc(peers, sid, PcKind::Subscriber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(current: Option<u8>, priority: u32) -> VideoDemand {
        VideoDemand {
            layers: vec![(0, 150_000), (1, 500_000), (2, 1_700_000)],
            current,
            priority,
        }
    }

    #[test]
    fn table() {
        // (budget, audio, videos, expected)
        type Case = (u64, usize, Vec<VideoDemand>, Vec<Option<u8>>);
        let cases: Vec<Case> = vec![
            (5_000_000, 1, vec![sim(None, 0)], vec![Some(2)]),
            (1_000_000, 1, vec![sim(None, 0)], vec![Some(1)]),
            (400_000, 1, vec![sim(None, 0)], vec![Some(0)]),
            (100_000, 1, vec![sim(None, 0)], vec![None]), // paused: audio only
            (170_000, 0, vec![sim(Some(0), 0)], vec![Some(0)]), // kept: 113 % of q
            (80_000, 0, vec![sim(Some(1), 0)], vec![Some(0)]), // kept at 53 %, stepping down
            (70_000, 0, vec![sim(Some(0), 0)], vec![None]), // 47 %: paused
            (100_000, 0, vec![sim(None, 0)], vec![None]),
            // two videos share: both get h before either gets f
            (
                1_400_000,
                0,
                vec![sim(None, 0), sim(None, 0)],
                vec![Some(1), Some(1)],
            ),
            // priority first: the screen share gets f, the camera what is left
            (
                2_500_000,
                0,
                vec![sim(None, 0), sim(None, 10)],
                vec![Some(0), Some(2)],
            ),
            (
                2_700_000,
                0,
                vec![sim(None, 0), sim(None, 10)],
                vec![Some(1), Some(2)],
            ),
            // the lower priority is paused when only one lowest layer fits
            (
                200_000,
                0,
                vec![sim(None, 0), sim(None, 10)],
                vec![None, Some(0)],
            ),
            // hysteresis: f is kept at 1.75 Mbps once forwarded, not reached from h
            (1_800_000, 0, vec![sim(Some(2), 0)], vec![Some(2)]),
            (1_800_000, 0, vec![sim(Some(1), 0)], vec![Some(1)]),
            // a single-layer video
            (
                800_000,
                0,
                vec![VideoDemand {
                    layers: vec![(0, 600_000)],
                    current: None,
                    priority: 0,
                }],
                vec![Some(0)],
            ),
            // nothing flowing yet
            (
                800_000,
                0,
                vec![VideoDemand {
                    layers: vec![],
                    current: None,
                    priority: 0,
                }],
                vec![None],
            ),
        ];
        for (i, (budget, audio, videos, want)) in cases.into_iter().enumerate() {
            let a = allocate(budget, audio, &videos);
            assert_eq!(a.video, want, "case {i}");
            assert!(
                a.used <= budget.max(AUDIO_BPS * audio as u64),
                "case {i}: used {} of {budget}",
                a.used
            );
        }
        assert_eq!(
            allocate(0, 2, &[sim(None, 0)]).desired,
            2 * AUDIO_BPS + 1_700_000
        );
        // the next step: from h (575 kbps with headroom) to f needs 1,955 − 575 kbps more
        let a = allocate(1_000_000, 0, &[sim(None, 0)]);
        assert!(
            (a.next as i64 - (a.used + 1_955_000 - 575_000) as i64).abs() <= 1,
            "{a:?}"
        ); // float rounding
           // paused: the lowest layer is the next step
        let a = allocate(100_000, 1, &[sim(None, 0)]);
        assert_eq!((a.used, a.next), (48_000, 48_000 + 172_500));
    }

    /// What the estimator is asked to probe for: up to the estimate while video could use
    /// it (on its top layer, or paused for bandwidth), only the audio without video.
    #[test]
    fn only_a_subscriber_with_video_keeps_its_estimate_up() {
        let estimate = 3_000_000;
        let top = allocate(estimate, 1, &[sim(Some(2), 0)]);
        assert_eq!(probe_bounds(&top, estimate, estimate, false).1, estimate);
        let paused = allocate(100_000, 1, &[sim(None, 0)]);
        assert!(paused.video[0].is_none());
        assert_eq!(probe_bounds(&paused, 100_000, estimate, false).1, estimate);
        let muted = VideoDemand {
            layers: vec![],
            current: None,
            priority: 0,
        };
        let muted = allocate(estimate, 1, &[muted]);
        assert_eq!(probe_bounds(&muted, estimate, estimate, false).1, estimate);
        // No video taken: with the room's video declined, only the audio; in a room with
        // no video yet, the estimate is kept warm.
        let none = allocate(estimate, 1, &[]);
        assert_eq!(
            probe_bounds(&none, estimate, estimate, true),
            (AUDIO_BPS, AUDIO_BPS * 5 / 4)
        );
        assert_eq!(probe_bounds(&none, estimate, estimate, false).1, estimate);
    }

    /// Applying an allocation to a subscription: down at once, up only after the hold
    /// and one layer at a time while something flows; a pause is reported once.
    #[test]
    fn a_subscription_steps_down_at_once_and_up_after_the_hold_one_layer_at_a_time() {
        use crate::forward::Subscription;
        use crate::ids::{TrackId, TrackKind};
        let t0 = crate::test_clock::origin();
        let mut sub = Subscription::new(
            TrackId(1),
            str0m::media::Mid::from("1"),
            TrackKind::Video,
            0,
            0,
        );
        let on = |current| VideoDemand {
            layers: vec![(0, 150_000), (4, 500_000), (8, 1_700_000)],
            current,
            priority: 0,
        };
        assert!(!settle(&mut sub, Some(8), &on(None), true, t0));
        assert_eq!((sub.max_rank, sub.allocated_bps), (Some(8), 1_700_000));
        // Down at once.
        assert!(!settle(&mut sub, Some(0), &on(Some(8)), true, t0));
        assert_eq!(sub.max_rank, Some(0));
        // Up is held after a step down...
        let soon = t0 + UPGRADE_HOLD / 2;
        assert!(!settle(&mut sub, Some(8), &on(Some(0)), true, soon));
        assert_eq!(sub.max_rank, Some(0), "held");
        // ... then taken one layer at a time while q flows.
        let later = t0 + UPGRADE_HOLD;
        assert!(!settle(&mut sub, Some(8), &on(Some(0)), true, later));
        assert_eq!(sub.max_rank, Some(4), "one step");
        assert!(!settle(&mut sub, Some(8), &on(Some(4)), true, later));
        assert_eq!(sub.max_rank, Some(8));
        // Paused: reported once, counted.
        assert!(settle(&mut sub, None, &on(Some(8)), true, later));
        assert!(
            !settle(&mut sub, None, &on(None), true, later),
            "already paused"
        );
        assert_eq!((sub.max_rank, sub.pauses, sub.allocated_bps), (None, 1, 0));
        // Layers never measured are not withheld.
        let mut fresh = Subscription::new(
            TrackId(2),
            str0m::media::Mid::from("2"),
            TrackKind::Video,
            0,
            0,
        );
        assert!(!settle(&mut fresh, None, &on(None), false, t0));
        assert_eq!(fresh.max_rank, Some(u8::MAX));
    }

    #[test]
    fn priority_puts_screen_shares_then_the_speaker_then_larger_tiles_first() {
        let big = Some((1280, 720, true));
        let small = Some((320, 180, true));
        let order = [
            priority(true, false, small),
            priority(false, true, small),
            priority(false, false, big),
            priority(false, false, small),
            priority(false, false, None),
        ];
        assert!(order.windows(2).all(|w| w[0] > w[1]), "{order:?}");
    }

    use proptest::prelude::*;

    fn demand() -> impl Strategy<Value = VideoDemand> {
        (
            proptest::collection::vec(1_000u64..3_000_000, 1..5),
            proptest::option::of(0u8..5),
            0u32..3,
        )
            .prop_map(|(mut rates, current, priority)| {
                rates.sort_unstable();
                let layers: Vec<(u8, u64)> = rates
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (i as u8, r))
                    .collect();
                let current = current.filter(|c| (*c as usize) < layers.len());
                VideoDemand {
                    layers,
                    current,
                    priority,
                }
            })
    }

    proptest! {
        /// Whatever the demands: never more than the budget (beyond audio), every choice
        /// is a layer the video has, and the top priority is paused only when its lowest
        /// layer cannot fit.
        #[test]
        fn allocations_fit_and_choose_real_layers(
            budget in 0u64..10_000_000,
            audio in 0usize..4,
            videos in proptest::collection::vec(demand(), 0..5),
        ) {
            let a = allocate(budget, audio, &videos);
            prop_assert_eq!(a.video.len(), videos.len());
            let audio_bps = AUDIO_BPS * audio as u64;
            prop_assert!(a.used <= budget.max(audio_bps));
            for (pick, v) in a.video.iter().zip(&videos) {
                if let Some(r) = pick {
                    prop_assert!(v.layers.iter().any(|l| l.0 == *r));
                }
            }
            if let Some((i, top)) = videos.iter().enumerate().max_by_key(|(i, v)| (v.priority, std::cmp::Reverse(*i))) {
                if a.video[i].is_none() {
                    prop_assert!(budget.saturating_sub(audio_bps) < cost(top, 0), "top priority paused though {} fits", cost(top, 0));
                }
            }
            prop_assert!(a.next >= a.used);
        }

        /// For one video, more bandwidth never means a lower layer.
        #[test]
        fn more_budget_never_lowers_the_layer(v in demand(), budget in 0u64..5_000_000, more in 0u64..5_000_000) {
            let low = allocate(budget, 1, std::slice::from_ref(&v)).video[0];
            let high = allocate(budget + more, 1, std::slice::from_ref(&v)).video[0];
            prop_assert!(high >= low, "{high:?} < {low:?}");
        }
    }
}

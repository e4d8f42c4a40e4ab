//! Active speaker detection from the RFC 6464 audio-level header extension.
//!
//! Each audio track's level (dBov, 0 loudest, −127 silence) is smoothed per packet with an
//! exponential average (α = 0.2, about 100 ms at 50 packets/s). The loudest track above
//! [`SPEECH_DBOV`] that sent within [`STALE`] is the candidate; it becomes the active
//! speaker once it has stayed the candidate for [`HOLD`] and, while someone else speaks,
//! is at least [`MARGIN_DB`] louder than them. Silence does not clear the speaker: the
//! last one stays (what a speaker view wants).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::{ParticipantId, TrackId};

/// Quieter than this is not speech.
pub const SPEECH_DBOV: f32 = -50.0;
/// A candidate must lead this long before it takes over.
pub const HOLD: Duration = Duration::from_millis(300);
/// …and be this much louder than a current speaker who is still talking.
pub const MARGIN_DB: f32 = 3.0;
/// A track silent (no packets) this long is not considered.
pub const STALE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Level {
    participant: ParticipantId,
    smoothed: f32,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct SpeakerDetector {
    levels: BTreeMap<TrackId, Level>,
    current: Option<ParticipantId>,
    candidate: Option<(ParticipantId, Instant)>,
}

impl SpeakerDetector {
    /// One audio packet's level, in dBov (str0m's `audio_level`: 0 loudest, −127 silent).
    pub fn observe(&mut self, track: TrackId, participant: ParticipantId, dbov: i8, now: Instant) {
        let v = f32::from(dbov.clamp(-127, 0));
        let l = self.levels.entry(track).or_insert(Level {
            participant,
            smoothed: -127.0,
            last: now,
        });
        l.smoothed = 0.8 * l.smoothed + 0.2 * v;
        l.last = now;
    }

    pub fn forget(&mut self, track: TrackId) {
        if let Some(l) = self.levels.remove(&track) {
            if self.current == Some(l.participant)
                && !self.levels.values().any(|x| x.participant == l.participant)
            {
                self.current = None;
            }
        }
    }

    pub fn current(&self) -> Option<ParticipantId> {
        self.current
    }

    /// Re-evaluate; returns the new speaker when it changed.
    pub fn update(&mut self, now: Instant) -> Option<ParticipantId> {
        let live = |l: &&Level| now.saturating_duration_since(l.last) < STALE;
        let loudest = self
            .levels
            .values()
            .filter(live)
            .filter(|l| l.smoothed > SPEECH_DBOV)
            .max_by(|a, b| a.smoothed.total_cmp(&b.smoothed))
            .copied();
        let Some(top) = loudest else {
            self.candidate = None;
            return None;
        };
        if Some(top.participant) == self.current {
            self.candidate = None;
            return None;
        }
        let current_level = self
            .levels
            .values()
            .filter(live)
            .filter(|l| Some(l.participant) == self.current)
            .map(|l| l.smoothed)
            .fold(f32::NEG_INFINITY, f32::max);
        if current_level > SPEECH_DBOV && top.smoothed < current_level + MARGIN_DB {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((p, since)) if p == top.participant => {
                if now.saturating_duration_since(since) >= HOLD {
                    self.current = Some(p);
                    self.candidate = None;
                    return Some(p);
                }
            }
            _ => self.candidate = Some((top.participant, now)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_changes_with_hold_and_margin() {
        let t0 = crate::test_clock::origin();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (a, b) = (ParticipantId(1), ParticipantId(2));
        let mut d = SpeakerDetector::default();
        let mut changes = vec![];
        // a speaks (-20 dBov), b is quiet (-90): a becomes the speaker after the hold.
        for i in 0..50u64 {
            d.observe(TrackId(1), a, -20, ms(i * 20));
            d.observe(TrackId(2), b, -90, ms(i * 20));
            if let Some(p) = d.update(ms(i * 20)) {
                changes.push((p, i * 20));
            }
        }
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, a);
        assert!((300..600).contains(&changes[0].1), "{changes:?}");
        // b talks only slightly louder than a: no change (margin)
        for i in 50..100u64 {
            d.observe(TrackId(1), a, -20, ms(i * 20));
            d.observe(TrackId(2), b, -19, ms(i * 20));
            assert_eq!(d.update(ms(i * 20)), None);
        }
        // a falls silent, b goes on: b takes over
        let mut got = None;
        for i in 100..150u64 {
            d.observe(TrackId(1), a, -100, ms(i * 20));
            d.observe(TrackId(2), b, -25, ms(i * 20));
            got = got.or(d.update(ms(i * 20)));
        }
        assert_eq!(got, Some(b));
        // everyone silent: the last speaker stays
        for i in 150..200u64 {
            d.observe(TrackId(1), a, -127, ms(i * 20));
            d.observe(TrackId(2), b, -127, ms(i * 20));
            assert_eq!(d.update(ms(i * 20)), None);
        }
        assert_eq!(d.current(), Some(b));
        d.forget(TrackId(2));
        assert_eq!(d.current(), None);
    }
}

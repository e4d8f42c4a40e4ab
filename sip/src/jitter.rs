//! A jitter buffer for one incoming audio stream of fixed-duration frames (one RTP packet
//! per frame, as phones and Opus senders send): reorders by sequence number, drops late
//! and duplicate packets, reports a missing frame as lost so that the decoder conceals
//! it, and re-buffers after a pause (silence suppression, DTX, a source that stopped)
//! instead of counting the pause as loss. Driven by its caller's frame clock: one
//! [`JitterBuffer::pop`] per frame interval.

use std::collections::BTreeMap;

/// What the next frame interval plays.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<T> {
    Frame(T),
    /// The frame is missing while later ones are here: conceal it.
    Lost,
    /// Nothing to play: not started, or paused (the source sends nothing).
    Idle,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// Its frame was already played or concealed.
    Late,
    Duplicate,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub played: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    /// Frames dropped because the buffer was over its maximum depth.
    pub overflow: u64,
}

#[derive(Debug)]
pub struct JitterBuffer<T> {
    /// Frames held before playing starts (the added delay, in frames).
    target: usize,
    /// Most frames held; beyond it the oldest are dropped to bound the delay.
    max: usize,
    frames: BTreeMap<u64, T>,
    /// The extended sequence number of the next frame to play, while playing.
    next: Option<u64>,
    /// The last frame played or concealed: anything at or before it is late, also
    /// after a pause.
    done: Option<u64>,
    highest: Option<u64>,
    stats: JitterStats,
}

impl<T> JitterBuffer<T> {
    pub fn new(target: usize, max: usize) -> Self {
        let target = target.max(1);
        JitterBuffer {
            target,
            max: max.max(target),
            frames: BTreeMap::new(),
            next: None,
            done: None,
            highest: None,
            stats: JitterStats::default(),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// How many frames are held.
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// The sequence number extended past wraps, relative to the highest seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => (1u64 << 32) + u64::from(seq),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                (h as i64 + delta) as u64
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// Forget everything: the source restarted (a new SSRC).
    pub fn reset(&mut self) {
        self.frames.clear();
        self.next = None;
        self.done = None;
        self.highest = None;
    }

    pub fn push(&mut self, seq: u16, frame: T) -> Push {
        let ext = self.extend(seq);
        if self.next.is_some_and(|n| ext < n) || self.done.is_some_and(|d| ext <= d) {
            self.stats.late += 1;
            return Push::Late;
        }
        if self.frames.contains_key(&ext) {
            self.stats.duplicate += 1;
            return Push::Duplicate;
        }
        self.frames.insert(ext, frame);
        while self.frames.len() > self.max {
            if let Some((k, _)) = self.frames.pop_first() {
                self.stats.overflow += 1;
                self.done = self.done.max(Some(k));
                if let Some(n) = self.next.as_mut() {
                    *n = (*n).max(k + 1);
                }
            }
        }
        Push::Queued
    }

    /// The frame for this interval.
    pub fn pop(&mut self) -> Pop<T> {
        let next = match self.next {
            Some(n) => n,
            None if self.frames.len() >= self.target => match self.frames.keys().next() {
                Some(k) => *k,
                None => return Pop::Idle,
            },
            None => return Pop::Idle,
        };
        if let Some(f) = self.frames.remove(&next) {
            self.next = Some(next + 1);
            self.done = Some(next);
            self.stats.played += 1;
            return Pop::Frame(f);
        }
        if self.frames.is_empty() {
            // A pause, not a loss: buffer up again when the source resumes.
            self.next = None;
            return Pop::Idle;
        }
        self.next = Some(next + 1);
        self.done = Some(next);
        self.stats.lost += 1;
        Pop::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain(j: &mut JitterBuffer<u16>, n: usize) -> Vec<Pop<u16>> {
        (0..n).map(|_| j.pop()).collect()
    }

    #[test]
    fn buffers_to_its_target_then_plays_in_order() {
        let mut j = JitterBuffer::new(2, 10);
        assert_eq!(j.push(10, 10), Push::Queued);
        assert_eq!(j.pop(), Pop::Idle, "one frame is under the target");
        j.push(12, 12);
        j.push(11, 11); // reordered
        assert_eq!(
            drain(&mut j, 3),
            [Pop::Frame(10), Pop::Frame(11), Pop::Frame(12)]
        );
        assert_eq!(j.pop(), Pop::Idle);
    }

    #[test]
    fn a_gap_is_lost_a_late_packet_is_dropped_a_duplicate_too() {
        let mut j = JitterBuffer::new(1, 10);
        j.push(1, 1);
        j.push(3, 3);
        assert_eq!(drain(&mut j, 3), [Pop::Frame(1), Pop::Lost, Pop::Frame(3)]);
        assert_eq!(j.push(2, 2), Push::Late, "2 was concealed already");
        j.push(4, 4);
        assert_eq!(j.push(4, 4), Push::Duplicate);
        let s = j.stats();
        assert_eq!((s.played, s.lost, s.late, s.duplicate), (2, 1, 1, 1));
    }

    #[test]
    fn a_pause_is_idle_not_loss_and_it_rebuffers() {
        let mut j = JitterBuffer::new(2, 10);
        j.push(1, 1);
        j.push(2, 2);
        assert_eq!(
            drain(&mut j, 4),
            [Pop::Frame(1), Pop::Frame(2), Pop::Idle, Pop::Idle]
        );
        // The source resumes after silence suppression, sequence numbers continuing.
        j.push(3, 3);
        assert_eq!(j.pop(), Pop::Idle, "buffering again");
        j.push(4, 4);
        assert_eq!(drain(&mut j, 2), [Pop::Frame(3), Pop::Frame(4)]);
        assert_eq!(j.stats().lost, 0);
    }

    #[test]
    fn a_packet_from_before_a_pause_is_late_and_a_reset_forgets() {
        let mut j = JitterBuffer::new(1, 10);
        j.push(10, 10);
        assert_eq!(drain(&mut j, 2), [Pop::Frame(10), Pop::Idle]);
        assert_eq!(j.push(9, 9), Push::Late);
        j.reset();
        assert_eq!(j.push(9, 9), Push::Queued, "a new source starts anywhere");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut j = JitterBuffer::new(1, 10);
        for s in [65_534u16, 65_535, 0, 1] {
            j.push(s, s);
        }
        assert_eq!(
            drain(&mut j, 4),
            [
                Pop::Frame(65_534),
                Pop::Frame(65_535),
                Pop::Frame(0),
                Pop::Frame(1)
            ]
        );
    }

    #[test]
    fn the_depth_is_bounded() {
        let mut j = JitterBuffer::new(2, 4);
        for s in 0..10u16 {
            j.push(s, s);
        }
        assert_eq!(j.depth(), 4);
        assert_eq!(j.stats().overflow, 6);
        assert_eq!(j.pop(), Pop::Frame(6));
    }

    proptest! {
        /// Whatever the arrival order (a window of reordering), duplicates and drops:
        /// frames come out in increasing order, each at most once, and every frame pushed
        /// before its turn is played.
        #[test]
        fn plays_in_order_each_once(
            order in proptest::collection::vec((0u16..200, 0u8..4), 1..300),
        ) {
            let mut j = JitterBuffer::new(3, 50);
            let mut out = Vec::new();
            for (i, (s, rep)) in order.iter().enumerate() {
                for _ in 0..=*rep % 2 {
                    j.push(*s, *s);
                }
                if i % 2 == 1 {
                    if let Pop::Frame(f) = j.pop() { out.push(f); }
                }
            }
            for _ in 0..1_000 {
                if let Pop::Frame(f) = j.pop() { out.push(f); }
            }
            prop_assert!(out.windows(2).all(|w| w[0] < w[1]), "{out:?}");
        }
    }
}

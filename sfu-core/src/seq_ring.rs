//! A ring of recent items by extended sequence number, kept for an age: what NACK repair
//! looks packets up in ([`crate::rtx`]).
//!
//! Slot `seq mod capacity` holds the item of `seq`. A push onto a slot whose item is
//! still younger than the ring's age doubles the ring (up to its bound) rather than lose
//! it, so a ring grows to its stream's rate × age and no further; an item older than the
//! age is not returned, and is dropped when its slot is reused.

use std::time::{Duration, Instant};

/// The first allocation, at the first push.
const INITIAL: usize = 16;

struct Slot<T> {
    seq: u64,
    at: Instant,
    item: T,
}

pub(crate) struct SeqRing<T> {
    slots: Vec<Option<Slot<T>>>,
    age: Duration,
    max: usize,
}

impl<T> std::fmt::Debug for SeqRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqRing")
            .field("capacity", &self.slots.len())
            .field("age", &self.age)
            .finish()
    }
}

impl<T> SeqRing<T> {
    /// An empty ring (nothing allocated) keeping items for `age`, of at most `max` slots
    /// (rounded up to a power of two).
    pub fn new(age: Duration, max: usize) -> Self {
        Self {
            slots: Vec::new(),
            age,
            max: max.next_power_of_two().max(INITIAL),
        }
    }

    pub fn age(&self) -> Duration {
        self.age
    }

    /// Keep items for `age` from now on.
    pub fn set_age(&mut self, age: Duration) {
        self.age = age;
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, seq: u64) -> usize {
        (seq & (self.slots.len() as u64 - 1)) as usize
    }

    pub fn push(&mut self, seq: u64, at: Instant, item: T) {
        if self.slots.is_empty() {
            self.slots = std::iter::repeat_with(|| None).take(INITIAL).collect();
        }
        let i = self.index(seq);
        let young = self.slots[i]
            .as_ref()
            .is_some_and(|s| s.seq != seq && at.saturating_duration_since(s.at) < self.age);
        if young && self.slots.len() < self.max {
            self.grow();
        }
        let i = self.index(seq);
        self.slots[i] = Some(Slot { seq, at, item });
    }

    /// The item of `seq`, if it is still kept at `now`.
    pub fn get(&self, seq: u64, now: Instant) -> Option<&T> {
        if self.slots.is_empty() {
            return None;
        }
        match &self.slots[self.index(seq)] {
            Some(s) if s.seq == seq && now.saturating_duration_since(s.at) <= self.age => {
                Some(&s.item)
            }
            _ => None,
        }
    }

    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = std::iter::repeat_with(|| None)
            .take(old.len() * 2)
            .collect();
        for s in old.into_iter().flatten() {
            let i = self.index(s.seq);
            self.slots[i] = Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        crate::test_clock::origin() + Duration::from_millis(ms)
    }

    #[test]
    fn keeps_items_for_its_age_and_grows_to_rate_times_age() {
        let mut r = SeqRing::new(Duration::from_millis(500), 1024);
        assert_eq!(r.capacity(), 0);
        // 100 packets a second for 2 s: 50 are younger than 500 ms at any time.
        for seq in 0..200u64 {
            r.push(seq, at(seq * 10), seq);
        }
        assert_eq!(r.capacity(), 64);
        let now = at(1990);
        assert_eq!(r.get(199, now), Some(&199));
        assert_eq!(r.get(150, now), Some(&150));
        // Older than the age, or overwritten.
        assert_eq!(r.get(140, now), None);
        assert_eq!(r.get(100, now), None);
        // Never pushed.
        assert_eq!(r.get(200, now), None);
    }

    #[test]
    fn stops_growing_at_its_bound() {
        let mut r = SeqRing::new(Duration::from_secs(10), 32);
        for seq in 0..100u64 {
            r.push(seq, at(seq), ());
        }
        assert_eq!(r.capacity(), 32);
        assert!(r.get(99, at(100)).is_some());
        assert!(r.get(67, at(100)).is_none());
    }

    #[test]
    fn out_of_order_pushes_and_clear() {
        let mut r = SeqRing::new(Duration::from_secs(1), 64);
        r.push(5, at(0), 'b');
        r.push(4, at(1), 'a');
        assert_eq!(r.get(4, at(2)), Some(&'a'));
        assert_eq!(r.get(5, at(2)), Some(&'b'));
        r.clear();
        assert_eq!(r.get(5, at(2)), None);
    }
}

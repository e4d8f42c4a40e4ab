//! Token buckets: a rate with a burst, one bucket or one per key. The REST API's limit per
//! caller, the WebSocket's budgets per participant and message kind, and the SIP gateway's
//! budget for strangers are all this.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

/// Tokens a second, and how many may gather.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub const fn new(per_second: f64, burst: f64) -> Self {
        Rate { per_second, burst }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn full(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            tokens: rate.burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
    }

    /// Take `cost` tokens if there are that many.
    pub fn take(&mut self, cost: f64, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now` (then it is as good as a new one).
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate.per_second
            >= rate.burst
    }
}

/// One bucket per key, at most `max` of them: when that many are kept, the full ones are
/// forgotten; a new key that still finds no room is refused (keys an attacker can invent,
/// such as source addresses, never grow memory).
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: Rate,
    max: usize,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq> KeyedBuckets<K> {
    pub fn new(rate: Rate, max: usize) -> Self {
        KeyedBuckets {
            rate,
            max,
            buckets: HashMap::new(),
        }
    }

    /// Take one token from `key`'s bucket.
    pub fn take(&mut self, key: K, now: Instant) -> bool {
        if self.buckets.len() >= self.max && !self.buckets.contains_key(&key) {
            let rate = self.rate;
            self.buckets.retain(|_, b| !b.is_full(rate, now));
            if self.buckets.len() >= self.max {
                return false;
            }
        }
        let rate = self.rate;
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(rate, now))
            .take(1.0, rate, now)
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let rate = Rate::new(10.0, 5.0);
        let mut b = TokenBucket::full(rate, t0);
        assert_eq!((0..8).filter(|_| b.take(1.0, rate, t0)).count(), 5);
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!((0..8).filter(|_| b.take(1.0, rate, t1)).count(), 3);
        // Never more than the burst, however long it waited.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| b.take(1.0, rate, t2)).count(), 5);
    }

    #[test]
    fn keyed_buckets_stay_within_max_and_refuse_new_keys_when_none_is_full() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(Rate::new(1.0, 2.0), 3);
        for key in 0..3 {
            assert!(k.take(key, t0));
        }
        // Three half-spent buckets: a fourth key finds no room.
        assert!(!k.take(99, t0));
        assert_eq!(k.len(), 3);
        // A second later they are full again, forgotten, and the new key gets one.
        assert!(k.take(99, t0 + Duration::from_secs(1)));
        assert_eq!(k.len(), 1);
    }
}

//! How many calls one API key may place through the REST API: at most `max_active` at
//! once and `per_minute` in any 60 seconds. One sipCall token (or a leaked one) cannot
//! run up a phone bill faster than that. Sans-IO: the caller gives the clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// The limits, per API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    pub max_active: usize,
    pub per_minute: u32,
}

impl Default for KeyLimits {
    fn default() -> Self {
        KeyLimits {
            max_active: 10,
            per_minute: 30,
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// `max_active` calls of this key are in progress.
    Concurrent,
    /// `per_minute` calls of this key started in the last 60 seconds.
    Rate,
}

impl LimitHit {
    pub fn label(self) -> &'static str {
        match self {
            LimitHit::Concurrent => "concurrent",
            LimitHit::Rate => "rate",
        }
    }
}

#[derive(Default)]
struct KeyUse {
    active: usize,
    /// Start times (seconds) within the last minute, oldest first.
    started: VecDeque<u64>,
}

/// Every key's calls.
pub struct CallLimits {
    limits: KeyLimits,
    keys: HashMap<String, KeyUse>,
}

impl CallLimits {
    pub fn new(limits: KeyLimits) -> Self {
        CallLimits {
            limits,
            keys: HashMap::new(),
        }
    }

    /// Count a call of `key` starting at `now` (seconds), or say which limit it hits.
    pub fn start(&mut self, key: &str, now: u64) -> Result<(), LimitHit> {
        let u = self.keys.entry(key.to_string()).or_default();
        while u.started.front().is_some_and(|&t| t + 60 <= now) {
            u.started.pop_front();
        }
        if u.active >= self.limits.max_active {
            return Err(LimitHit::Concurrent);
        }
        if u.started.len() >= self.limits.per_minute as usize {
            return Err(LimitHit::Rate);
        }
        u.active += 1;
        u.started.push_back(now);
        Ok(())
    }

    /// A call of `key` is over.
    pub fn end(&mut self, key: &str) {
        if let Some(u) = self.keys.get_mut(key) {
            u.active = u.active.saturating_sub(1);
            if u.active == 0 && u.started.is_empty() {
                self.keys.remove(key);
            }
        }
    }
}

/// One call counted against its key, given back when dropped (however the call ends).
pub struct KeySlot {
    limits: Arc<Mutex<CallLimits>>,
    key: String,
}

impl KeySlot {
    /// Take a slot for `key`, or say which limit it hits (counted in
    /// `switchboard_sip_outbound_refused_total{reason}`).
    pub fn take(limits: &Arc<Mutex<CallLimits>>, key: &str, now: u64) -> Result<Self, LimitHit> {
        limits.lock().start(key, now).inspect_err(|hit| {
            metrics::counter!("switchboard_sip_outbound_refused_total", "reason" => hit.label())
                .increment(1);
        })?;
        Ok(KeySlot {
            limits: limits.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        self.limits.lock().end(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_active_at_once_per_key() {
        let mut l = CallLimits::new(KeyLimits {
            max_active: 2,
            per_minute: 100,
        });
        assert_eq!(l.start("a", 0), Ok(()));
        assert_eq!(l.start("a", 0), Ok(()));
        assert_eq!(l.start("a", 0), Err(LimitHit::Concurrent));
        assert_eq!(l.start("b", 0), Ok(()), "another key has its own");
        l.end("a");
        assert_eq!(l.start("a", 1), Ok(()));
    }

    #[test]
    fn at_most_per_minute_in_any_60_seconds() {
        let mut l = CallLimits::new(KeyLimits {
            max_active: 100,
            per_minute: 3,
        });
        for t in [0, 10, 20] {
            assert_eq!(l.start("a", t), Ok(()));
            l.end("a");
        }
        assert_eq!(l.start("a", 59), Err(LimitHit::Rate));
        assert_eq!(l.start("a", 60), Ok(()), "the call at 0 left the window");
        assert_eq!(l.start("a", 61), Err(LimitHit::Rate));
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let limits = Arc::new(Mutex::new(CallLimits::new(KeyLimits {
            max_active: 1,
            per_minute: 100,
        })));
        let slot = KeySlot::take(&limits, "a", 0).unwrap();
        assert!(KeySlot::take(&limits, "a", 0).is_err());
        drop(slot);
        assert!(KeySlot::take(&limits, "a", 0).is_ok());
    }
}

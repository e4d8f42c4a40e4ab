//! How fast one participant may send each kind of message on its signaling socket. A
//! data message is copied to every recipient, a mute or an offer makes every subscriber
//! renegotiate or update, a candidate reaches a media worker: one participant sending them
//! at full speed must not slow the room, fill other participants' queues or the workers'
//! command queues. Each kind has a token bucket; a message over its budget is refused with
//! a `rate_limited` error (and counted), the session goes on. Sans-IO: the caller gives
//! the clock.

use std::time::Instant;

use crate::protocol::ClientMessage;
use crate::token_bucket::{Rate, TokenBucket};

/// The kinds that have a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Mute,
    /// Offers, answers, ICE restarts: each renegotiates a connection.
    Negotiation,
    Candidate,
    /// Viewport and preferred quality: state a client may report for every tile on each
    /// frame of a window resize (the latest wins, and each is one small command).
    View,
    /// Ping, anything else.
    Other,
}

impl Kind {
    pub fn of(m: &ClientMessage) -> Self {
        use ClientMessage::*;
        match m {
            Data { .. } => Kind::Data,
            Mute { .. } => Kind::Mute,
            PublishOffer { .. } | SubscribeAnswer { .. } | IceRestart { .. } => Kind::Negotiation,
            Candidate { .. } => Kind::Candidate,
            Viewport { .. } | PreferredQuality { .. } | Subscribe { .. } => Kind::View,
            _ => Kind::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Mute => "mute",
            Kind::Negotiation => "negotiation",
            Kind::Candidate => "candidate",
            Kind::View => "view",
            Kind::Other => "other",
        }
    }

    /// Messages a second, and the burst.
    fn rate(self) -> Rate {
        match self {
            Kind::Data => Rate::new(30.0, 60.0),
            Kind::Mute => Rate::new(5.0, 20.0),
            Kind::Negotiation => Rate::new(5.0, 20.0),
            Kind::Candidate => Rate::new(50.0, 200.0),
            Kind::View => Rate::new(200.0, 400.0),
            Kind::Other => Rate::new(20.0, 60.0),
        }
    }

    const ALL: [Kind; 6] = [
        Kind::Data,
        Kind::Mute,
        Kind::Negotiation,
        Kind::Candidate,
        Kind::View,
        Kind::Other,
    ];
}

/// Data bytes a second (and their burst): a data message is up to 15 KiB, copied to every
/// recipient.
const DATA_BYTES: Rate = Rate::new(64.0 * 1024.0, 256.0 * 1024.0);

/// One participant's budgets.
#[derive(Debug, Clone)]
pub struct MessageBudget {
    kinds: [TokenBucket; 6],
    data_bytes: TokenBucket,
}

impl MessageBudget {
    pub fn new(now: Instant) -> Self {
        MessageBudget {
            kinds: Kind::ALL.map(|k| TokenBucket::full(k.rate(), now)),
            data_bytes: TokenBucket::full(DATA_BYTES, now),
        }
    }

    /// Whether `m` (of `len` bytes on the wire) is within budget; `Err(kind)` if not.
    pub fn allow(&mut self, m: &ClientMessage, len: usize, now: Instant) -> Result<(), Kind> {
        let kind = Kind::of(m);
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(5);
        if !self.kinds[i].take(1.0, kind.rate(), now) {
            return Err(kind);
        }
        if kind == Kind::Data && !self.data_bytes.take(len as f64, DATA_BYTES, now) {
            return Err(kind);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn data() -> ClientMessage {
        serde_json::from_str(r#"{"type":"data","payload":"x"}"#).unwrap()
    }

    fn mute() -> ClientMessage {
        serde_json::from_str(r#"{"type":"mute","kind":"audio","muted":true}"#).unwrap()
    }

    #[test]
    fn a_burst_then_the_rate_per_kind_each_on_its_own() {
        let t0 = Instant::now();
        let mut b = MessageBudget::new(t0);
        let passed = (0..100)
            .filter(|_| b.allow(&data(), 10, t0).is_ok())
            .count();
        assert_eq!(passed, 60, "the data burst");
        assert_eq!(b.allow(&data(), 10, t0), Err(Kind::Data));
        // Mutes have their own budget.
        assert!(b.allow(&mute(), 10, t0).is_ok());
        // A second later: 30 more data messages.
        let t1 = t0 + Duration::from_secs(1);
        let later = (0..100)
            .filter(|_| b.allow(&data(), 10, t1).is_ok())
            .count();
        assert_eq!(later, 30);
    }

    #[test]
    fn large_data_messages_spend_the_byte_budget() {
        let t0 = Instant::now();
        let mut b = MessageBudget::new(t0);
        let passed = (0..60)
            .filter(|_| b.allow(&data(), 15 * 1024, t0).is_ok())
            .count();
        assert_eq!(passed, 17, "256 KiB of 15 KiB messages");
    }
}

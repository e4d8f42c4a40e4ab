//! A session's outbound queue: what the hub has to tell one client, waiting for its socket
//! (or its SIP call, or its WHIP/WHEP task) to take it.
//!
//! Bounded in bytes and in messages, so a client that stops reading costs at most
//! [`MAX_BYTES`] however much the room says. Three rules keep a slow reader in the room
//! while it is merely slow:
//!
//! - **State is superseded.** A message that only states the latest value of something (the
//!   active speaker, a participant's info, a track's mute or layer, the stats) replaces the
//!   queued one about the same thing: the old one is removed, the new one goes to the end,
//!   so the client sees the latest value in its true order and never a stale one after it.
//! - **Data is lossy.** A data message is queued only while less than [`DATA_BYTES`] is
//!   waiting; past that it is dropped and counted, like a lossy data channel's packet.
//! - **Everything else overflows.** A message the client must have (a track published, an
//!   offer, someone left) that does not fit ends the session: the queue is emptied and
//!   holds a single `Close` (4004, "signaling queue overflow"), which its reader acts on
//!   as on any removal. One path, and nothing half-applied.
//!
//! `close` (the hub removing the session) always fits.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::hub::Outbound;
use crate::protocol::{close_code, ServerMessage};
use sfu_core::{ParticipantId, TrackId, TrackKind};

/// Bytes (as JSON) that may wait for one client.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Messages that may wait for one client.
pub const MAX_MESSAGES: usize = 1024;
/// Bytes waiting above which data messages are dropped rather than queued.
pub const DATA_BYTES: usize = 256 * 1024;

/// The thing a state message states; a newer message about the same thing supersedes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    ActiveSpeaker,
    Stats,
    RoomMetadata,
    Participant(ParticipantId),
    Mute(ParticipantId, TrackKind),
    Subscription(TrackId),
    PublisherLayers(TrackId, String),
}

fn subject(m: &ServerMessage) -> Option<Subject> {
    Some(match m {
        ServerMessage::ActiveSpeaker { .. } => Subject::ActiveSpeaker,
        ServerMessage::SubscriptionStats { .. } => Subject::Stats,
        ServerMessage::RoomUpdated { .. } => Subject::RoomMetadata,
        ServerMessage::ParticipantUpdated { participant } => Subject::Participant(participant.id),
        ServerMessage::MuteChanged {
            participant, kind, ..
        } => Subject::Mute(*participant, *kind),
        ServerMessage::SubscriptionChanged { track, .. } => Subject::Subscription(*track),
        ServerMessage::PublisherLayers { track, mid, .. } => {
            Subject::PublisherLayers(*track, mid.clone())
        }
        _ => return None,
    })
}

/// The size of `m` as the JSON its client receives.
pub fn weigh(m: &ServerMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, m);
    c.0
}

/// What became of a message handed to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// Queued, and an older message about the same thing removed.
    Superseded,
    /// A data message dropped: the client is that far behind.
    Dropped,
    /// It did not fit: the session ends (or had already ended).
    Overflowed,
}

struct Item {
    out: Outbound,
    bytes: usize,
    subject: Option<Subject>,
}

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    bytes: usize,
    senders: usize,
    /// Overflowed or closed: nothing more is queued.
    ended: bool,
}

struct Shared {
    state: Mutex<State>,
    /// One permit, for the one receiver.
    ready: Notify,
}

/// The hub's end. Clones share the queue; the receiver sees the end when the last goes.
pub struct OutboundTx {
    shared: Arc<Shared>,
}

/// The session's end.
pub struct OutboundRx {
    shared: Arc<Shared>,
}

/// A new, empty queue.
pub fn queue() -> (OutboundTx, OutboundRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            senders: 1,
            ..State::default()
        }),
        ready: Notify::new(),
    });
    (
        OutboundTx {
            shared: shared.clone(),
        },
        OutboundRx { shared },
    )
}

impl OutboundTx {
    /// Queue `m` under the rules above.
    pub fn send(&self, m: ServerMessage) -> Sent {
        let bytes = weigh(&m);
        self.send_weighed(m, bytes)
    }

    /// [`send`](Self::send) with the size already known (a broadcast weighs once).
    pub fn send_weighed(&self, m: ServerMessage, bytes: usize) -> Sent {
        let sent = self.shared.state.lock().push(m, bytes);
        match sent {
            Sent::Dropped => {
                metrics::counter!("switchboard_signaling_dropped_total", "reason" => "slow_reader")
                    .increment(1);
                return sent;
            }
            Sent::Superseded => {
                metrics::counter!("switchboard_signaling_superseded_total").increment(1)
            }
            // Queued, or the closing message an overflow leaves: either is news.
            Sent::Queued | Sent::Overflowed => {}
        }
        self.shared.ready.notify_one();
        sent
    }

    /// End the session with a close frame, after what is queued.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let mut st = self.shared.state.lock();
        if st.ended {
            return;
        }
        st.ended = true;
        st.items.push_back(Item {
            out: Outbound::Close {
                code,
                reason: reason.into(),
            },
            bytes: 0,
            subject: None,
        });
        drop(st);
        self.shared.ready.notify_one();
    }
}

impl State {
    fn push(&mut self, m: ServerMessage, bytes: usize) -> Sent {
        if self.ended {
            return Sent::Overflowed;
        }
        if matches!(m, ServerMessage::Data { .. }) && self.bytes + bytes > DATA_BYTES {
            return Sent::Dropped;
        }
        let subject = subject(&m);
        let mut superseded = false;
        if let Some(s) = &subject {
            if let Some(i) = self
                .items
                .iter()
                .position(|it| it.subject.as_ref() == Some(s))
            {
                let old = self.items.remove(i).expect("position is in range");
                self.bytes -= old.bytes;
                superseded = true;
            }
        }
        if self.bytes + bytes > MAX_BYTES || self.items.len() >= MAX_MESSAGES {
            self.overflow();
            return Sent::Overflowed;
        }
        self.bytes += bytes;
        self.items.push_back(Item {
            out: Outbound::Message(m),
            bytes,
            subject,
        });
        if superseded {
            Sent::Superseded
        } else {
            Sent::Queued
        }
    }

    fn overflow(&mut self) {
        metrics::counter!("switchboard_signaling_overflows_total").increment(1);
        tracing::warn!(
            queued = self.items.len(),
            bytes = self.bytes,
            "signaling queue overflow: the client is not reading; ending its session"
        );
        self.items.clear();
        self.bytes = 0;
        self.ended = true;
        self.items.push_back(Item {
            out: Outbound::Close {
                code: close_code::REMOVED,
                reason: "signaling queue overflow".into(),
            },
            bytes: 0,
            subject: None,
        });
    }

    fn pop(&mut self) -> Option<Outbound> {
        let it = self.items.pop_front()?;
        self.bytes -= it.bytes;
        Some(it.out)
    }
}

impl Clone for OutboundTx {
    fn clone(&self) -> Self {
        self.shared.state.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for OutboundTx {
    fn drop(&mut self) {
        let last = {
            let mut st = self.shared.state.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.shared.ready.notify_one();
        }
    }
}

impl OutboundRx {
    /// The next message; `None` once every sender is gone (or after the closing message)
    /// and the queue is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            {
                let mut st = self.shared.state.lock();
                if let Some(o) = st.pop() {
                    return Some(o);
                }
                if st.senders == 0 || st.ended {
                    return None;
                }
            }
            self.shared.ready.notified().await;
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.shared.state.lock().pop()
    }

    /// Bytes waiting (for tests and statistics).
    pub fn queued_bytes(&self) -> usize {
        self.shared.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu_core::TrackKind;

    fn data(n: usize) -> ServerMessage {
        ServerMessage::Data {
            from: None,
            payload: "x".repeat(n),
            topic: None,
        }
    }

    fn all(rx: &mut OutboundRx) -> Vec<Outbound> {
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    #[test]
    fn a_newer_state_replaces_the_queued_one_and_goes_last() {
        let (tx, mut rx) = queue();
        let speaker = |p| ServerMessage::ActiveSpeaker {
            participant: ParticipantId(p),
        };
        let mute = |p, muted| ServerMessage::MuteChanged {
            participant: ParticipantId(p),
            kind: TrackKind::Audio,
            muted,
            by_admin: false,
        };
        assert_eq!(tx.send(speaker(1)), Sent::Queued);
        assert_eq!(tx.send(mute(1, true)), Sent::Queued);
        assert_eq!(tx.send(mute(2, true)), Sent::Queued);
        assert_eq!(tx.send(speaker(2)), Sent::Superseded);
        assert_eq!(tx.send(mute(1, false)), Sent::Superseded);
        let got: Vec<_> = all(&mut rx)
            .into_iter()
            .map(|o| match o {
                Outbound::Message(m) => m,
                c => panic!("{c:?}"),
            })
            .collect();
        assert_eq!(got, vec![mute(2, true), speaker(2), mute(1, false)]);
        assert_eq!(rx.queued_bytes(), 0);
    }

    #[test]
    fn data_past_its_share_is_dropped_and_the_session_stays() {
        let (tx, mut rx) = queue();
        let mut dropped = 0;
        for _ in 0..100 {
            if tx.send(data(10_000)) == Sent::Dropped {
                dropped += 1;
            }
        }
        assert!(dropped > 70, "{dropped}");
        assert!(rx.queued_bytes() <= DATA_BYTES);
        // A message the client must have still fits.
        assert_eq!(tx.send(ServerMessage::Pong), Sent::Queued);
        let got = all(&mut rx);
        assert!(got.iter().all(|o| matches!(o, Outbound::Message(_))));
        assert_eq!(got.len(), 100 - dropped + 1);
    }

    #[test]
    fn a_message_that_does_not_fit_ends_the_session_with_one_close() {
        let (tx, mut rx) = queue();
        let offer = |n: usize| ServerMessage::SubscribeOffer {
            sdp: "v".repeat(n),
            tracks: vec![],
        };
        let mut n = 0;
        while tx.send(offer(50_000)) == Sent::Queued {
            n += 1;
        }
        assert_eq!(n, MAX_BYTES / 50_020); // each is 50,000 bytes and a little JSON
        assert_eq!(tx.send(ServerMessage::Pong), Sent::Overflowed);
        let got = all(&mut rx);
        assert_eq!(
            got,
            vec![Outbound::Close {
                code: close_code::REMOVED,
                reason: "signaling queue overflow".into()
            }]
        );
        // Memory went back with it.
        assert_eq!(rx.queued_bytes(), 0);
    }

    #[test]
    fn the_count_is_bounded_too() {
        let (tx, _rx) = queue();
        let sent: Vec<Sent> = (0..MAX_MESSAGES + 1)
            .map(|_| tx.send(ServerMessage::Pong))
            .collect();
        assert!(sent[..MAX_MESSAGES].iter().all(|s| *s == Sent::Queued));
        assert_eq!(sent[MAX_MESSAGES], Sent::Overflowed);
    }

    #[tokio::test]
    async fn the_receiver_wakes_for_a_message_and_ends_with_the_last_sender() {
        let (tx, mut rx) = queue();
        let tx2 = tx.clone();
        let h = tokio::spawn(async move {
            let mut got = vec![];
            while let Some(o) = rx.recv().await {
                got.push(o);
            }
            got
        });
        tokio::task::yield_now().await;
        tx.send(ServerMessage::Pong);
        drop(tx);
        tokio::task::yield_now().await;
        tx2.send(ServerMessage::Pong);
        drop(tx2);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), h)
            .await
            .expect("the receiver ended")
            .unwrap();
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    async fn a_close_is_delivered_after_what_was_queued_and_then_the_end() {
        let (tx, mut rx) = queue();
        tx.send(ServerMessage::Pong);
        tx.close(4004, "removed");
        assert_eq!(tx.send(ServerMessage::Pong), Sent::Overflowed);
        assert_eq!(
            rx.recv().await,
            Some(Outbound::Message(ServerMessage::Pong))
        );
        assert!(matches!(
            rx.recv().await,
            Some(Outbound::Close { code: 4004, .. })
        ));
        assert_eq!(rx.recv().await, None);
    }
}

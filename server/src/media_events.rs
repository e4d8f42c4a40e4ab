//! The path of media-plane events from the workers to the control plane.
//!
//! Every event but one changes what some client sees (an answer, an offer, a track, a
//! speaker, a lost participant) and is always delivered: those are caused by clients'
//! own actions, which their message budgets already bound. The exception is the
//! periodic subscription report (`SubscriptionStats`, every 2 s per subscriber): when
//! the control plane falls behind, reports would pile up without bound, and each is
//! superseded by the next. So at most [`REPORTS_WAITING`] reports wait; more are dropped
//! and counted (`switchboard_media_reports_dropped_total`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sfu_core::Event;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Subscription reports that may wait for the control plane at once (all workers).
pub const REPORTS_WAITING: usize = 4096;

/// The workers' end (one clone per worker).
#[derive(Clone)]
pub struct EventTx {
    tx: UnboundedSender<Event>,
    reports: Arc<AtomicUsize>,
}

/// The control plane's end.
pub struct EventRx {
    rx: UnboundedReceiver<Event>,
    reports: Arc<AtomicUsize>,
}

pub fn channel() -> (EventTx, EventRx) {
    let (tx, rx) = unbounded_channel();
    let reports = Arc::new(AtomicUsize::new(0));
    (
        EventTx {
            tx,
            reports: reports.clone(),
        },
        EventRx { rx, reports },
    )
}

fn is_report(e: &Event) -> bool {
    matches!(e, Event::SubscriptionStats { .. })
}

impl EventTx {
    /// Pass an event on; a report is dropped (counted) while [`REPORTS_WAITING`] wait.
    /// Nothing happens once the control plane is gone (the server is stopping).
    pub fn send(&self, e: Event) {
        if is_report(&e) && self.reports.fetch_add(1, Ordering::Relaxed) >= REPORTS_WAITING {
            self.reports.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("switchboard_media_reports_dropped_total").increment(1);
            return;
        }
        let _ = self.tx.send(e);
    }
}

impl EventRx {
    /// The next event, None when every worker is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        let e = self.rx.recv().await?;
        if is_report(&e) {
            self.reports.fetch_sub(1, Ordering::Relaxed);
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu_core::ParticipantId;

    fn report() -> Event {
        Event::SubscriptionStats {
            participant: ParticipantId(1),
            estimate_bps: None,
            subscriptions: vec![],
        }
    }

    fn offer(n: u64) -> Event {
        Event::SubscribeOffer {
            participant: ParticipantId(n),
            sdp: String::new(),
            tracks: vec![],
        }
    }

    #[tokio::test]
    async fn a_stalled_control_plane_holds_a_bounded_number_of_reports_and_every_other_event() {
        let (tx, mut rx) = channel();
        for i in 0..10_000 {
            tx.send(report());
            if i % 1000 == 0 {
                tx.send(offer(i));
            }
        }
        drop(tx);
        let (mut reports, mut offers) = (0, 0);
        while let Some(e) = rx.recv().await {
            match e {
                Event::SubscriptionStats { .. } => reports += 1,
                Event::SubscribeOffer { .. } => offers += 1,
                _ => {}
            }
        }
        assert_eq!((reports, offers), (REPORTS_WAITING, 10));
        // Once read, reports flow again.
        let (tx, mut rx) = channel();
        for _ in 0..REPORTS_WAITING {
            tx.send(report());
        }
        rx.recv().await.unwrap();
        tx.send(report());
        drop(tx);
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, REPORTS_WAITING);
    }
}

//! Every call the gateway has, inbound and outbound, as the REST API and the webhooks
//! see it: its public record (`SipCallInfo`) and the channel that steers its task (hang
//! up, type digits). Ended calls stay listed for a minute, so that a `GET` right after
//! the end reads the cause.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use signaling::hub::Hub;
use signaling::sip_calls::{CallDirection, CallState, SipCallInfo};
use tokio::sync::mpsc;

/// How long an ended call stays listed.
const KEEP_ENDED: Duration = Duration::from_secs(60);

/// What the API asks of a running call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    HangUp,
    Dtmf(String),
}

struct Entry {
    info: SipCallInfo,
    control: mpsc::UnboundedSender<Command>,
    ended: Option<Instant>,
}

pub struct CallBook {
    hub: Arc<Hub>,
    calls: Mutex<HashMap<String, Entry>>,
}

/// A call's own handle on its record; the call ends (if nothing else ended it) when the
/// handle is dropped.
pub struct CallHandle {
    book: Arc<CallBook>,
    pub id: String,
}

impl CallBook {
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(CallBook {
            hub,
            calls: Mutex::new(HashMap::new()),
        })
    }

    /// Record a new call (`sip_call_started`): its handle and the commands for it.
    pub fn open(
        self: &Arc<Self>,
        id: String,
        room: &str,
        direction: CallDirection,
        from: &str,
        to: &str,
    ) -> (CallHandle, mpsc::UnboundedReceiver<Command>) {
        let info = SipCallInfo {
            id: id.clone(),
            room: room.to_string(),
            direction,
            state: CallState::Ringing,
            from: from.to_string(),
            to: to.to_string(),
            participant_id: None,
            identity: None,
            codec: None,
            started_at: signaling::auth::unix_now(),
            answered_at: None,
            ended_at: None,
            quality: None,
            end_cause: None,
        };
        let (control, commands) = mpsc::unbounded_channel();
        let mut calls = self.calls.lock();
        let now = Instant::now();
        calls.retain(|_, e| e.ended.is_none_or(|t| now.duration_since(t) < KEEP_ENDED));
        self.hub.sip_hook("sip_call_started", &info, None);
        calls.insert(
            id.clone(),
            Entry {
                info,
                control,
                ended: None,
            },
        );
        (
            CallHandle {
                book: self.clone(),
                id,
            },
            commands,
        )
    }

    pub fn get(&self, id: &str) -> Option<SipCallInfo> {
        self.calls.lock().get(id).map(|e| e.info.clone())
    }

    pub fn list(&self, room: Option<&str>) -> Vec<SipCallInfo> {
        let mut v: Vec<SipCallInfo> = self
            .calls
            .lock()
            .values()
            .filter(|e| room.is_none_or(|r| e.info.room == r))
            .map(|e| e.info.clone())
            .collect();
        v.sort_by_key(|c| c.started_at);
        v
    }

    /// Steer a call that has not ended. False: no such call, or it has ended.
    pub fn command(&self, id: &str, c: Command) -> bool {
        self.calls
            .lock()
            .get(id)
            .filter(|e| e.ended.is_none())
            .is_some_and(|e| e.control.send(c).is_ok())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut SipCallInfo)) -> Option<SipCallInfo> {
        let mut calls = self.calls.lock();
        let e = calls.get_mut(id).filter(|e| e.ended.is_none())?;
        f(&mut e.info);
        Some(e.info.clone())
    }
}

impl CallHandle {
    /// The call's record as it stands.
    pub fn info(&self) -> Option<SipCallInfo> {
        self.book.get(&self.id)
    }

    /// The room is known (after a PIN).
    pub fn set_room(&self, room: &str) {
        self.book.update(&self.id, |i| i.room = room.to_string());
    }

    /// In the room, talking (`sip_call_answered`).
    pub fn answered(&self, participant: u64, identity: &str, codec: &str) {
        if let Some(info) = self.book.update(&self.id, |i| {
            i.state = CallState::Answered;
            i.participant_id = Some(participant);
            i.identity = Some(identity.to_string());
            i.codec = Some(codec.to_string());
            i.answered_at = Some(signaling::auth::unix_now());
        }) {
            self.book.hub.sip_hook("sip_call_answered", &info, None);
        }
    }

    /// The phone's audio quality so far.
    pub fn quality(&self, r: crate::quality::Report) {
        self.book.update(&self.id, |i| {
            i.quality = Some(signaling::sip_calls::CallQuality {
                loss: r.loss,
                jitter_ms: r.jitter_ms,
                mos: r.mos,
            })
        });
    }

    /// A digit the phone typed (`sip_dtmf`).
    pub fn digit(&self, d: char) {
        if let Some(info) = self.book.get(&self.id) {
            self.book.hub.sip_hook("sip_dtmf", &info, Some(d));
        }
    }

    /// The call is over (`sip_call_ended`); later calls of this are no-ops.
    pub fn ended(&self, cause: &str) {
        if let Some(info) = self.book.update(&self.id, |i| {
            i.state = CallState::Ended;
            i.ended_at = Some(signaling::auth::unix_now());
            i.end_cause = Some(cause.to_string());
        }) {
            if let Some(e) = self.book.calls.lock().get_mut(&self.id) {
                e.ended = Some(Instant::now());
            }
            self.book.hub.sip_hook("sip_call_ended", &info, None);
        }
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        self.ended("failed");
    }
}

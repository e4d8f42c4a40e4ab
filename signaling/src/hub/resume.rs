//! Resuming a session after its signaling socket dropped (a network blip, Wi-Fi to
//! cellular): a participant that joined with `resume: true` keeps its place for the grace
//! period when its socket ends without a `leave`. Others see it as reconnecting, not gone;
//! its media connections are untouched, and what the hub had to tell it meanwhile waits in
//! its queue. A new socket that sends `resume` with the session's token (issued at join,
//! single-use: each resume issues the next) takes the session back and gets the queued
//! messages in order; past the grace period the participant is removed as on a leave.

use super::*;

/// A session whose socket is gone, waiting to be resumed.
pub(super) struct Parked {
    pub since: Instant,
    pub rx: OutboundRx,
}

/// A fresh resume token: 128 random bits.
pub(super) fn new_token() -> String {
    format!("RT_{:032x}", rand::random::<u128>())
}

/// Why a resume was refused (the client then joins from scratch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// Also a resume token of another identity or room than the access token's.
    #[error(
        "unknown or used resume token for this identity and room, or the grace period is over"
    )]
    Unknown,
    #[error("the access token is not valid: {0}")]
    Access(String),
}

impl Hub {
    /// `id`'s media path broke or came back: while it is out, or its socket is parked,
    /// the others see it as reconnecting.
    pub(super) fn media_interrupted(&self, id: ParticipantId, out: bool) {
        let mut dir = self.dir.lock();
        let Some(room) = dir.room_of.get(&id).cloned() else {
            return;
        };
        let Some(r) = dir.rooms.get_mut(room.as_str()) else {
            return;
        };
        let Some(m) = r.members.get_mut(&id) else {
            return;
        };
        m.media_interrupted = out;
        let reconnecting = out || m.parked.is_some();
        if m.info.reconnecting != reconnecting {
            m.info.reconnecting = reconnecting;
            let (hidden, info) = (m.hidden, m.info.clone());
            announce_update(&r.members, id, hidden, info);
        }
    }

    /// The socket of `id`'s session `epoch` ended without a `leave`: keep the session for
    /// the grace period, `rx` (its queue) parked. False when the session is not resumable
    /// (the caller removes it) or was already resumed elsewhere (the caller does nothing).
    pub fn park(&self, id: ParticipantId, epoch: u64, rx: OutboundRx, now: Instant) -> Parking {
        let mut dir = self.dir.lock();
        let Some(room) = dir.room_of.get(&id).cloned() else {
            return Parking::Gone;
        };
        let Some(r) = dir.rooms.get_mut(room.as_str()) else {
            return Parking::Gone;
        };
        let Some(m) = r.members.get_mut(&id) else {
            return Parking::Gone;
        };
        if m.epoch != epoch {
            return Parking::Resumed;
        }
        if m.resume_token.is_none() || self.config.resume_grace == 0 {
            return Parking::NotResumable;
        }
        m.parked = Some(Parked { since: now, rx });
        m.info.reconnecting = true;
        let info = m.info.clone();
        let hidden = m.hidden;
        announce_update(&r.members, id, hidden, info);
        Parking::Parked
    }

    /// Take a parked (or still attached) session back with its resume token: the
    /// participant, its queue (with what was queued meanwhile), the session's new epoch
    /// and next token. The old socket, if still open, is closed.
    /// `access` is an access token for the session's identity and room (checked at
    /// `unix`, seconds): a resume token alone (a bearer secret that may leak with a log
    /// line) cannot take a session.
    pub fn resume(
        &self,
        token: &str,
        access: &str,
        unix: u64,
        now: Instant,
    ) -> Result<Resumed, ResumeError> {
        let claims = self
            .keys
            .verify(access, unix)
            .map_err(|e| ResumeError::Access(e.to_string()))?;
        let mut dir = self.dir.lock();
        let grace = Duration::from_secs(self.config.resume_grace);
        // The access token names the room and the identity: only that session's token is
        // compared (in constant time), nothing else is looked at under the lock.
        let r = dir
            .rooms
            .get_mut(claims.video.room.as_str())
            .ok_or(ResumeError::Unknown)?;
        let id = r
            .members
            .iter()
            .find(|(_, m)| m.info.identity == claims.sub)
            .map(|(id, _)| *id)
            .ok_or(ResumeError::Unknown)?;
        let m = r.members.get_mut(&id).ok_or(ResumeError::Unknown)?;
        let same = m.resume_token.as_deref().is_some_and(|mine| {
            aws_lc_rs::constant_time::verify_slices_are_equal(mine.as_bytes(), token.as_bytes())
                .is_ok()
        });
        if !same {
            return Err(ResumeError::Unknown);
        }
        if m.parked
            .as_ref()
            .is_some_and(|p| now.saturating_duration_since(p.since) > grace)
        {
            return Err(ResumeError::Unknown);
        }
        let next = new_token();
        m.resume_token = Some(next.clone());
        m.epoch += 1;
        let rx = match m.parked.take() {
            Some(p) => p.rx,
            None => {
                // The old socket has not noticed the drop yet: a new queue; the old
                // socket's writer ends when its sender goes.
                let (tx, rx) = outbound::queue();
                m.tx = tx;
                rx
            }
        };
        m.info.reconnecting = m.media_interrupted;
        let info = m.info.clone();
        let epoch = m.epoch;
        let hidden = m.hidden;
        let tx = m.tx.clone();
        let others: Vec<ParticipantInfo> = r
            .members
            .iter()
            .filter(|(o, m)| **o != id && !m.hidden)
            .map(|(_, m)| m.info.clone())
            .collect();
        announce_update(&r.members, id, hidden, info.clone());
        // First on the queue is what was queued while away; the resumed message goes
        // after it, so the client applies the gap's messages, then the current list.
        tx.send(ServerMessage::Resumed {
            participant: info,
            others,
            resume_token: next,
        });
        Ok(Resumed { id, rx, epoch })
    }

    /// Whether `id` is still a member of a room (parked or not).
    pub fn is_present(&self, id: ParticipantId) -> bool {
        self.with_member(id, |_| ()).is_some()
    }

    /// Leave, unless a newer socket has resumed the session (its epoch is no longer
    /// `epoch`).
    pub fn leave_session(&self, id: ParticipantId, epoch: u64) {
        if self.with_member(id, |m| m.epoch).is_none_or(|e| e == epoch) {
            self.leave(id);
        }
    }

    /// Remove the sessions parked for longer than the grace period (from `reap`).
    pub(super) fn expire_parked(&self, now: Instant) {
        let grace = Duration::from_secs(self.config.resume_grace);
        let expired: Vec<ParticipantId> = {
            let dir = self.dir.lock();
            dir.rooms
                .values()
                .flat_map(|r| r.members.iter())
                .filter(|(_, m)| {
                    m.parked
                        .as_ref()
                        .is_some_and(|p| now.saturating_duration_since(p.since) > grace)
                })
                .map(|(id, _)| *id)
                .collect()
        };
        for id in expired {
            self.remove(id, "timeout", None);
        }
    }
}

/// What became of a session whose socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parking {
    Parked,
    NotResumable,
    /// A newer socket already resumed it.
    Resumed,
    /// Not in the directory (removed meanwhile).
    Gone,
}

/// A resumed session.
pub struct Resumed {
    pub id: ParticipantId,
    pub rx: OutboundRx,
    pub epoch: u64,
}

//! WHEP viewers in the shard: client-offered receive-only m-lines bound to one
//! participant's tracks, or following the room's active speaker. What to bind and what
//! to move is decided here from the viewer, its room and the tracks; the shard carries it
//! out (control.rs).

use std::collections::BTreeMap;

use str0m::media::Mid;

use crate::forward::{Subscription, Track};
use crate::ids::{ParticipantId, TrackId, TrackKind, TrackSource};
use crate::shard::Room;

/// What a WHEP viewer's m-lines carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhepTarget {
    Participant(ParticipantId),
    /// Whoever is the room's active speaker, but never `except` (a SIP video endpoint's
    /// own participant); with `content`, a screen share in the room takes the video m-line
    /// while it is on (a video endpoint without a content channel).
    Speaker {
        except: Option<ParticipantId>,
        content: bool,
    },
}

impl WhepTarget {
    /// Whether a speaker change to `speaker` moves this viewer's m-lines.
    pub(crate) fn follows(self, speaker: ParticipantId) -> bool {
        matches!(self, WhepTarget::Speaker { except, .. } if except != Some(speaker))
    }
}

/// A WHEP viewer: what it follows, its client-offered m-lines, whom it shows now, and the
/// outgoing streams of m-lines whose track went away (kept, so that the next track on
/// the m-line continues their numbering).
pub(crate) struct WhepView {
    pub target: WhepTarget,
    pub slots: Vec<(Mid, TrackKind)>,
    /// The speaker a speaker view last moved to ([`WhepView::follow`]).
    showing: Option<ParticipantId>,
    pub parked: Vec<Subscription>,
}

impl WhepView {
    pub(crate) fn new(target: WhepTarget) -> Self {
        WhepView {
            target,
            slots: Vec::new(),
            showing: None,
            parked: Vec::new(),
        }
    }

    /// The room's speaker changed to `speaker`: whether the view now shows it.
    pub(crate) fn follow(&mut self, speaker: ParticipantId) -> bool {
        let follows = self.target.follows(speaker);
        if follows {
            self.showing = Some(speaker);
        }
        follows
    }

    /// Whose tracks the view shows: its participant; for a speaker view the speaker it
    /// last followed while that one publishes, else the room's speaker (not `except`),
    /// else the first other participant who publishes.
    pub(crate) fn source(
        &self,
        room: &Room,
        tracks: &BTreeMap<TrackId, Track>,
    ) -> Option<ParticipantId> {
        let except = match self.target {
            WhepTarget::Participant(t) => return Some(t),
            WhepTarget::Speaker { except, .. } => except,
        };
        let publishers = || {
            room.tracks
                .iter()
                .filter_map(|t| tracks.get(t))
                .map(|t| t.publisher)
        };
        let publishes = |p: ParticipantId| publishers().any(|q| q == p);
        self.showing
            .filter(|p| publishes(*p))
            .or_else(|| {
                room.speaker
                    .current()
                    .filter(|s| Some(*s) != except && publishes(*s))
            })
            .or_else(|| publishers().find(|p| Some(*p) != except))
    }

    /// The screen share a content view shows in place of the speaker: the room's newest,
    /// not the excepted participant's own.
    fn content(&self, room: &Room, tracks: &BTreeMap<TrackId, Track>) -> Option<TrackId> {
        let WhepTarget::Speaker {
            except,
            content: true,
        } = self.target
        else {
            return None;
        };
        room.tracks.iter().rev().copied().find(|t| {
            tracks.get(t).is_some_and(|tr| {
                tr.source == TrackSource::ScreenShare && Some(tr.publisher) != except
            })
        })
    }

    /// The track each m-line should carry now (None: nothing to show on it; whatever it
    /// carries stays): the content share on a content view's video m-line, else the
    /// source's track of the m-line's kind — its camera before its screen share — each
    /// track on one m-line at most.
    pub(crate) fn wanted(
        &self,
        room: &Room,
        tracks: &BTreeMap<TrackId, Track>,
    ) -> Vec<(Mid, Option<TrackId>)> {
        let source = self.source(room, tracks);
        let content = self.content(room, tracks);
        let mut taken: Vec<TrackId> = Vec::new();
        let mut out = Vec::with_capacity(self.slots.len());
        for (mid, kind) in &self.slots {
            let of_source = |screen: bool| {
                room.tracks.iter().copied().find(|t| {
                    tracks.get(t).is_some_and(|tr| {
                        Some(tr.publisher) == source
                            && tr.kind == *kind
                            && (tr.source == TrackSource::ScreenShare) == screen
                    }) && !taken.contains(t)
                })
            };
            let pick = content
                .filter(|c| *kind == TrackKind::Video && !taken.contains(c))
                .or_else(|| of_source(false))
                .or_else(|| of_source(true));
            taken.extend(pick);
            out.push((*mid, pick));
        }
        out
    }

    /// The parked stream of m-line `mid`, if its track went away.
    pub(crate) fn unpark(&mut self, mid: Mid) -> Option<Subscription> {
        let i = self.parked.iter().position(|s| s.mid == mid)?;
        Some(self.parked.swap_remove(i))
    }
}

/// What an answer to a WHEP offer does with its audio and video m-lines.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answered {
    /// At least one is accepted and sends.
    Sends,
    /// All were rejected (port 0): no codec in common.
    NoCodec,
    /// Accepted, but none sends (the viewer offered them inactive or send-only).
    Inactive,
}

pub(crate) fn answered_media(answer: &str) -> Answered {
    let (mut accepted, mut sends) = (false, false);
    let mut section: Option<bool> = None; // in an accepted audio/video m-line
    for l in answer.lines().map(str::trim) {
        if let Some(m) = l.strip_prefix("m=") {
            let av = m.starts_with("audio ") || m.starts_with("video ");
            section = (av && m.split(' ').nth(1) != Some("0")).then_some(true);
            accepted |= section.is_some();
        } else if section.is_some() && (l == "a=sendonly" || l == "a=sendrecv") {
            sends = true;
        }
    }
    match (accepted, sends) {
        (_, true) => Answered::Sends,
        (false, false) => Answered::NoCodec,
        (true, false) => Answered::Inactive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RoomId;

    #[test]
    fn what_a_whep_answer_sends() {
        let m = |lines: &str| format!("v=0\r\ns=-\r\n{lines}");
        for (sdp, want) in [
            (m("m=video 9 X 96\r\na=sendonly\r\n"), Answered::Sends),
            (
                m("m=audio 0 X 0\r\nm=video 9 X 96\r\na=sendrecv\r\n"),
                Answered::Sends,
            ),
            (m("m=audio 0 X 0\r\nm=video 0 X 0\r\n"), Answered::NoCodec),
            (
                m("m=application 9 X webrtc-datachannel\r\n"),
                Answered::NoCodec,
            ),
            (
                m("m=audio 9 X 111\r\na=inactive\r\nm=video 9 X 96\r\na=recvonly\r\n"),
                Answered::Inactive,
            ),
            // a=sendonly on a rejected m-line counts for nothing
            (
                m("m=video 0 X 96\r\na=sendonly\r\nm=audio 9 X 111\r\na=inactive\r\n"),
                Answered::Inactive,
            ),
        ] {
            assert_eq!(answered_media(&sdp), want, "{sdp}");
        }
    }

    /// Two publishers (1: audio 1 + video 2; 2: audio 3 + video 4) in one room.
    fn room_of_two() -> (Room, BTreeMap<TrackId, Track>) {
        let mut tracks = BTreeMap::new();
        for (id, publisher, kind) in [
            (1, 1, TrackKind::Audio),
            (2, 1, TrackKind::Video),
            (3, 2, TrackKind::Audio),
            (4, 2, TrackKind::Video),
        ] {
            let t = Track::new(
                TrackId(id),
                RoomId::from("r"),
                ParticipantId(publisher),
                Mid::from(id.to_string().as_str()),
                kind,
                &[],
            );
            tracks.insert(TrackId(id), t);
        }
        let room = Room {
            participants: vec![ParticipantId(1), ParticipantId(2)],
            tracks: (1..=4).map(TrackId).collect(),
            speaker: Default::default(),
        };
        (room, tracks)
    }

    #[test]
    fn a_viewer_shows_its_source_follows_the_speaker_and_leaves_out_its_own() {
        let (mut room, mut tracks) = room_of_two();
        let slot = |mid: &str, kind| (Mid::from(mid), kind);
        let mut view = WhepView::new(WhepTarget::Speaker {
            except: None,
            content: false,
        });
        view.slots = vec![slot("a", TrackKind::Audio), slot("v", TrackKind::Video)];
        let want = |view: &WhepView, room: &Room, tracks: &BTreeMap<TrackId, Track>| {
            view.wanted(room, tracks)
                .into_iter()
                .map(|(_, t)| t.map(|t| t.0))
                .collect::<Vec<_>>()
        };
        // Before anyone spoke, the speaker view shows the first publisher.
        assert_eq!(want(&view, &room, &tracks), [Some(1), Some(2)]);
        assert!(view.follow(ParticipantId(2)));
        assert_eq!(want(&view, &room, &tracks), [Some(3), Some(4)]);
        // A fixed view shows its participant whoever speaks.
        let mut fixed = WhepView::new(WhepTarget::Participant(ParticipantId(1)));
        fixed.slots = view.slots.clone();
        assert!(!fixed.follow(ParticipantId(2)));
        assert_eq!(want(&fixed, &room, &tracks), [Some(1), Some(2)]);
        // A SIP video endpoint's view (one video m-line) leaves its own participant out:
        // it speaks, and the view stays on the last other speaker.
        let mut own = WhepView::new(WhepTarget::Speaker {
            except: Some(ParticipantId(1)),
            content: true,
        });
        own.slots = vec![slot("v", TrackKind::Video)];
        assert_eq!(want(&own, &room, &tracks), [Some(4)]);
        assert!(
            !own.follow(ParticipantId(1)),
            "its own speech moves nothing"
        );
        assert_eq!(want(&own, &room, &tracks), [Some(4)]);
        // 1 shares its screen: not shown to its own endpoint. 2 shares: shown in place
        // of the speaker while it is on, and the camera comes back after.
        let share = |id, publisher| {
            let mut t = Track::new(
                TrackId(id),
                RoomId::from("r"),
                ParticipantId(publisher),
                Mid::from(id.to_string().as_str()),
                TrackKind::Video,
                &[],
            );
            t.source = TrackSource::ScreenShare;
            t
        };
        tracks.insert(TrackId(5), share(5, 1));
        room.tracks.push(TrackId(5));
        assert_eq!(want(&own, &room, &tracks), [Some(4)]);
        tracks.insert(TrackId(6), share(6, 2));
        room.tracks.push(TrackId(6));
        assert_eq!(want(&own, &room, &tracks), [Some(6)]);
        // A plain speaker view shows the speaker's camera, not its share.
        assert_eq!(want(&view, &room, &tracks), [Some(3), Some(4)]);
        tracks.remove(&TrackId(6));
        room.tracks.retain(|t| *t != TrackId(6));
        assert_eq!(want(&own, &room, &tracks), [Some(4)]);
    }
}

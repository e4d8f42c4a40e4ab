//! WHEP viewers in the shard: client-offered receive-only m-lines bound to one
//! participant's tracks, or following the room's active speaker. What to bind and what
//! to move is decided here from the viewer, its room and the tracks; the shard carries it
//! out (control.rs).

use std::collections::BTreeMap;

use str0m::media::Mid;

use crate::forward::{Subscription, Track};
use crate::ids::{ParticipantId, TrackId, TrackKind};
use crate::shard::{Participant, Room};

/// What a WHEP viewer's m-lines carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhepTarget {
    Participant(ParticipantId),
    /// Whoever is the room's active speaker, but never `except` (a SIP video endpoint's
    /// own participant).
    Speaker {
        except: Option<ParticipantId>,
    },
}

impl WhepTarget {
    /// Whether a speaker change to `speaker` moves this viewer's m-lines.
    pub(crate) fn follows(self, speaker: ParticipantId) -> bool {
        matches!(self, WhepTarget::Speaker { except } if except != Some(speaker))
    }
}

/// Whose tracks a viewer's m-lines carry now: its participant, or the room's speaker
/// (before anyone spoke, or while the excepted participant speaks: the first other
/// participant who publishes).
pub(crate) fn source(
    target: WhepTarget,
    room: &Room,
    tracks: &BTreeMap<TrackId, Track>,
) -> Option<ParticipantId> {
    match target {
        WhepTarget::Participant(t) => Some(t),
        WhepTarget::Speaker { except } => room
            .speaker
            .current()
            .filter(|s| Some(*s) != except)
            .or_else(|| {
                room.tracks
                    .iter()
                    .filter_map(|t| tracks.get(t))
                    .map(|t| t.publisher)
                    .find(|p| Some(*p) != except)
            }),
    }
}

/// The viewer's free m-lines (`slots`, none of `subs` on them), each with a track of
/// `source` of its kind that the viewer does not receive yet: (track, m-line).
pub(crate) fn binds(
    slots: &[(Mid, TrackKind)],
    subs: &BTreeMap<TrackId, Subscription>,
    room: &Room,
    tracks: &BTreeMap<TrackId, Track>,
    source: ParticipantId,
) -> Vec<(TrackId, Mid)> {
    let mut binds: Vec<(TrackId, Mid)> = Vec::new();
    for (mid, kind) in slots {
        if subs.values().any(|s| s.mid == *mid) || binds.iter().any(|(_, m)| m == mid) {
            continue;
        }
        let t = room.tracks.iter().copied().find(|t| {
            tracks
                .get(t)
                .is_some_and(|tr| tr.publisher == source && tr.kind == *kind)
                && !subs.contains_key(t)
                && !binds.iter().any(|(b, _)| b == t)
        });
        if let Some(t) = t {
            binds.push((t, *mid));
        }
    }
    binds
}

/// A speaker-following viewer's subscriptions to move to `speaker`'s track of the same
/// kind: (from, to). Those already on the speaker stay.
pub(crate) fn moves(
    subs: &BTreeMap<TrackId, Subscription>,
    room: &Room,
    tracks: &BTreeMap<TrackId, Track>,
    speaker: ParticipantId,
) -> Vec<(TrackId, TrackId)> {
    subs.keys()
        .filter_map(|old| {
            let from = tracks.get(old)?;
            if from.publisher == speaker {
                return None;
            }
            let new = room.tracks.iter().copied().find(|t| {
                tracks
                    .get(t)
                    .is_some_and(|tr| tr.publisher == speaker && tr.kind == from.kind)
            })?;
            Some((*old, new))
        })
        .collect()
}

/// The room's viewers whose m-lines move to `speaker` now that it speaks.
pub(crate) fn speaker_viewers(
    room: &Room,
    participants: &BTreeMap<ParticipantId, Participant>,
    speaker: ParticipantId,
) -> Vec<ParticipantId> {
    room.participants
        .iter()
        .copied()
        .filter(|v| {
            participants
                .get(v)
                .and_then(|p| p.whep_target)
                .is_some_and(|t| t.follows(speaker))
        })
        .collect()
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
    fn a_viewer_binds_its_source_tracks_to_free_slots_and_follows_the_speaker() {
        let (room, tracks) = room_of_two();
        let slots = [
            (Mid::from("a"), TrackKind::Audio),
            (Mid::from("v"), TrackKind::Video),
        ];
        let mut subs = BTreeMap::new();
        // Before anyone spoke, the speaker view shows the first publisher.
        let speaker = WhepTarget::Speaker { except: None };
        let first = source(speaker, &room, &tracks);
        assert_eq!(first, Some(ParticipantId(1)));
        // A SIP video endpoint's view leaves its own participant out.
        let not_1 = WhepTarget::Speaker {
            except: Some(ParticipantId(1)),
        };
        assert_eq!(source(not_1, &room, &tracks), Some(ParticipantId(2)));
        assert!(speaker.follows(ParticipantId(1)) && not_1.follows(ParticipantId(2)));
        assert!(
            !not_1.follows(ParticipantId(1)),
            "its own speech moves nothing"
        );
        assert!(!WhepTarget::Participant(ParticipantId(2)).follows(ParticipantId(2)));
        assert_eq!(
            source(WhepTarget::Participant(ParticipantId(2)), &room, &tracks),
            Some(ParticipantId(2))
        );
        let b = binds(&slots, &subs, &room, &tracks, ParticipantId(1));
        assert_eq!(
            b,
            vec![(TrackId(1), Mid::from("a")), (TrackId(2), Mid::from("v"))]
        );
        for (t, mid) in &b {
            let kind = tracks[t].kind;
            subs.insert(*t, Subscription::new(*t, *mid, kind, 0, 0));
        }
        assert_eq!(
            binds(&slots, &subs, &room, &tracks, ParticipantId(1)),
            vec![],
            "every slot is taken"
        );
        // The speaker changes to 2: each m-line moves to 2's track of its kind.
        assert_eq!(
            moves(&subs, &room, &tracks, ParticipantId(2)),
            vec![(TrackId(1), TrackId(3)), (TrackId(2), TrackId(4))]
        );
        assert_eq!(
            moves(&subs, &room, &tracks, ParticipantId(1)),
            vec![],
            "already on the speaker"
        );
    }
}

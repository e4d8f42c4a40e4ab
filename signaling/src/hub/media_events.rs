//! Events from the media plane, as the control plane takes them: most are a message for
//! one participant ([`effect_of`] maps them, alone and tested); the rest change the
//! directory (a track published or gone, the active speaker, a connection interrupted, a
//! participant lost), which the hub applies.

use std::time::Instant;

use sfu_core::{Event, GoneReason, ParticipantId, RoomId, TrackId, TrackKind};

use super::{broadcast, Hub};
use crate::protocol::{close_code, ErrorCode, ServerMessage, TrackInfo};
use crate::webhook::WebhookEvent;

/// What one media-plane event means for the control plane.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Effect {
    /// A message for one participant's session.
    Tell(ParticipantId, ServerMessage),
    /// A connection of the participant lost its path (true) or has it back (false).
    Interrupted(ParticipantId, bool),
    /// The participant's first connection is up (its join latency ends).
    Connected(ParticipantId),
    /// A track to add to the participant's record and announce.
    Published(Published),
    /// A track to take off the participant's record and announce.
    Unpublished {
        room: RoomId,
        participant: ParticipantId,
        track: TrackId,
    },
    /// The room's active speaker, to announce (unless hidden).
    Speaker {
        room: RoomId,
        participant: ParticipantId,
    },
    /// The media plane lost the participant (not its own doing): it is removed and may
    /// join again.
    Lost(ParticipantId, &'static str),
    /// A message from a participant's data channel, to pass on.
    Data {
        participant: ParticipantId,
        channel: String,
        data: Vec<u8>,
    },
    /// A speaker view switched to the new speaker this long after the change (measured).
    SpeakerViewSwitched(std::time::Duration),
    /// Nothing for the control plane.
    Nothing,
}

/// A track the media plane published (with the m-line whose declared source and sid it
/// takes).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Published {
    room: RoomId,
    participant: ParticipantId,
    track: TrackId,
    kind: TrackKind,
    rids: Vec<String>,
    mid: String,
    mime: Option<String>,
}

/// The control plane's reading of a media-plane event.
pub(super) fn effect_of(ev: Event) -> Effect {
    use Effect::Tell;
    match ev {
        Event::PublishAnswer { participant, sdp } => {
            Tell(participant, ServerMessage::PublishAnswer { sdp })
        }
        Event::SubscribeOffer {
            participant,
            sdp,
            tracks,
        } => Tell(participant, ServerMessage::SubscribeOffer { sdp, tracks }),
        Event::SubscriptionChanged {
            participant,
            track,
            layer,
            paused,
        } => Tell(
            participant,
            ServerMessage::SubscriptionChanged {
                track,
                layer,
                paused,
            },
        ),
        Event::PublisherLayers {
            participant,
            track,
            mid,
            layers,
        } => Tell(
            participant,
            ServerMessage::PublisherLayers { track, mid, layers },
        ),
        Event::SubscriptionStats {
            participant,
            estimate_bps,
            subscriptions,
        } => Tell(
            participant,
            ServerMessage::SubscriptionStats {
                estimate_bps,
                subscriptions,
            },
        ),
        Event::SpeakerViewSwitched { after, .. } => Effect::SpeakerViewSwitched(after),
        Event::IceRestarted {
            participant,
            pc,
            ufrag,
            pwd,
            candidates,
        } => Tell(
            participant,
            ServerMessage::IceRestarted {
                pc,
                ufrag,
                pwd,
                candidates,
            },
        ),
        Event::CommandFailed { participant, error } => Tell(
            participant,
            ServerMessage::Error {
                code: ErrorCode::Media,
                message: error.to_string(),
            },
        ),
        Event::MediaInterrupted { participant } => Effect::Interrupted(participant, true),
        Event::MediaRestored { participant } => Effect::Interrupted(participant, false),
        Event::Connected { participant, .. } => Effect::Connected(participant),
        Event::TrackPublished {
            room,
            participant,
            track,
            kind,
            rids,
            mid,
            mime,
        } => Effect::Published(Published {
            room,
            participant,
            track,
            kind,
            rids,
            mid,
            mime,
        }),
        Event::TrackUnpublished {
            room,
            participant,
            track,
        } => Effect::Unpublished {
            room,
            participant,
            track,
        },
        Event::ActiveSpeaker { room, participant } => Effect::Speaker { room, participant },
        Event::Data {
            participant,
            channel,
            data,
            ..
        } => Effect::Data {
            participant,
            channel,
            data,
        },
        // The relay between nodes is not wired to the control plane yet (issue 34): no
        // relayed track exists whose origin it could ask.
        Event::RelayKeyframe { .. } => Effect::Nothing,
        Event::ParticipantGone {
            participant,
            reason,
            ..
        } => match reason {
            GoneReason::Left => Effect::Nothing,
            GoneReason::IceTimeout => Effect::Lost(participant, "connection lost (ICE timeout)"),
            GoneReason::Failed => Effect::Lost(participant, "connection failed"),
        },
    }
}

impl Hub {
    /// An event from the media plane.
    pub fn on_media_event(&self, ev: Event, now: Instant) {
        match effect_of(ev) {
            Effect::Tell(id, msg) => self.send_to(id, msg),
            Effect::Interrupted(id, out) => self.media_interrupted(id, out),
            Effect::Connected(id) => {
                // Join latency: from the join to its first connection up.
                if let Some(t) = self.with_member(id, |m| m.joined_at.take()).flatten() {
                    metrics::histogram!("switchboard_join_latency_seconds")
                        .record(now.saturating_duration_since(t).as_secs_f64());
                }
            }
            Effect::Published(p) => self.track_published(p),
            Effect::Unpublished {
                room,
                participant,
                track,
            } => self.track_unpublished(&room, participant, track),
            Effect::Speaker { room, participant } => {
                let mut dir = self.dir.lock();
                if let Some(r) = dir.rooms.get_mut(room.0.as_str()) {
                    if r.members.get(&participant).is_some_and(|m| !m.hidden) {
                        r.speaker = Some(participant);
                        broadcast(
                            &r.members,
                            None,
                            ServerMessage::ActiveSpeaker { participant },
                        );
                    }
                }
            }
            // Not the client's doing: it may join again (and the web client does).
            Effect::Lost(id, why) => self.remove(id, why, Some(close_code::CONNECTION_LOST)),
            Effect::Data {
                participant,
                channel,
                data,
            } => self.channel_data(participant, &channel, &data),
            Effect::SpeakerViewSwitched(after) => {
                metrics::histogram!("switchboard_speaker_view_switch_seconds")
                    .record(after.as_secs_f64())
            }
            Effect::Nothing => {}
        }
    }

    fn track_published(&self, p: Published) {
        let Published {
            room,
            participant,
            track,
            kind,
            rids,
            mid,
            mime,
        } = p;
        let mut dir = self.dir.lock();
        let Some(r) = dir.rooms.get_mut(room.0.as_str()) else {
            return;
        };
        let Some(m) = r.members.get_mut(&participant) else {
            return;
        };
        let source = m.sources.get(&mid).copied().unwrap_or_default();
        let named = m.sids.get(&mid);
        let info = TrackInfo {
            id: track,
            kind,
            simulcast: rids,
            source,
            sid: named.map(|n| n.sid.clone()),
            mime,
            encrypted: named.is_some_and(|n| n.encrypted),
        };
        m.info.tracks.push(info.clone());
        let hidden = m.hidden;
        let hook = WebhookEvent::track("track_published", &r.info, &m.info, &info);
        if !hidden {
            broadcast(
                &r.members,
                Some(participant),
                ServerMessage::TrackPublished {
                    participant,
                    track: info,
                },
            );
        }
        drop(dir);
        self.hook(hook);
    }

    fn track_unpublished(&self, room: &RoomId, participant: ParticipantId, track: TrackId) {
        let mut dir = self.dir.lock();
        let Some(r) = dir.rooms.get_mut(room.0.as_str()) else {
            return;
        };
        let Some(m) = r.members.get_mut(&participant) else {
            return;
        };
        let Some(pos) = m.info.tracks.iter().position(|t| t.id == track) else {
            return;
        };
        let info = m.info.tracks.remove(pos);
        let hidden = m.hidden;
        let hook = WebhookEvent::track("track_unpublished", &r.info, &m.info, &info);
        if !hidden {
            broadcast(
                &r.members,
                Some(participant),
                ServerMessage::TrackUnpublished { participant, track },
            );
        }
        drop(dir);
        self.hook(hook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_for_one_session_become_its_messages_and_the_rest_touch_the_directory() {
        let p = ParticipantId(7);
        assert_eq!(
            effect_of(Event::PublishAnswer {
                participant: p,
                sdp: "v=0".into()
            }),
            Effect::Tell(p, ServerMessage::PublishAnswer { sdp: "v=0".into() })
        );
        assert_eq!(
            effect_of(Event::MediaInterrupted { participant: p }),
            Effect::Interrupted(p, true)
        );
        assert_eq!(
            effect_of(Event::MediaRestored { participant: p }),
            Effect::Interrupted(p, false)
        );
        let gone = |reason| Event::ParticipantGone {
            participant: p,
            room: RoomId::from("r"),
            reason,
        };
        assert_eq!(
            effect_of(gone(GoneReason::Left)),
            Effect::Nothing,
            "a leave is the client's own"
        );
        assert_eq!(
            effect_of(gone(GoneReason::IceTimeout)),
            Effect::Lost(p, "connection lost (ICE timeout)")
        );
        assert_eq!(
            effect_of(gone(GoneReason::Failed)),
            Effect::Lost(p, "connection failed")
        );
    }
}

//! Our directory's types as LiveKit's (`livekit-protocol`): rooms, participants, tracks,
//! sources and their sids. One mapping, for the signal protocol (`/rtc`) and RoomService.
//!
//! Sids: a participant's is `PA_<id>` (also the stream id of its tracks on every
//! subscriber connection, see `sfu_core`'s `msid`), a track's the one a LiveKit client gave
//! it (`TR_<participant>_<n>`) or else `TR_<id>`, a room's its `sid` (`RM_<n>`).

use livekit_protocol as lk;
use sfu_core::{ParticipantId, TrackKind, TrackSource};

use crate::hub::RoomInfo;
use crate::protocol::{ParticipantInfo, ParticipantKind, TrackInfo};

/// The version this server reports in `ServerInfo` (livekit-client refuses an empty one,
/// and enables features by it: 1.8 has RPC, and SVC simulcast comes after it).
pub const SERVER_VERSION: &str = "1.8.4";
/// The signal protocol version this adapter speaks (livekit-client 2.x sends 16 or 17).
pub const PROTOCOL: i32 = 16;

pub fn participant_sid(id: ParticipantId) -> String {
    format!("PA_{}", id.0)
}

/// `PA_<id>` back to the id.
pub fn participant_id(sid: &str) -> Option<ParticipantId> {
    sid.strip_prefix("PA_")?.parse().ok().map(ParticipantId)
}

pub fn track_sid(t: &TrackInfo) -> String {
    t.sid.clone().unwrap_or_else(|| format!("TR_{}", t.id.0))
}

pub fn room(r: &RoomInfo) -> lk::Room {
    lk::Room {
        sid: r.sid.clone(),
        name: r.name.clone(),
        empty_timeout: u32::try_from(r.empty_timeout).unwrap_or(u32::MAX),
        max_participants: r.max_participants,
        creation_time: i64::try_from(r.created_at).unwrap_or(0),
        creation_time_ms: i64::try_from(r.created_at.saturating_mul(1000)).unwrap_or(0),
        metadata: r.metadata.clone(),
        num_participants: u32::try_from(r.num_participants).unwrap_or(u32::MAX),
        ..Default::default()
    }
}

pub fn track(t: &TrackInfo, muted: bool) -> lk::TrackInfo {
    let ty = match t.kind {
        TrackKind::Audio => lk::TrackType::Audio,
        TrackKind::Video => lk::TrackType::Video,
    };
    // `simulcast` is deprecated in favour of `layers`, which the SDKs read alongside.
    #[allow(deprecated)]
    lk::TrackInfo {
        sid: track_sid(t),
        r#type: ty as i32,
        name: source_name(t.source).to_string(),
        muted,
        simulcast: t.simulcast.len() > 1,
        source: source(t.source) as i32,
        mime_type: t.mime.clone().unwrap_or_default(),
        encryption: if t.encrypted {
            lk::encryption::Type::Gcm
        } else {
            lk::encryption::Type::None
        } as i32,
        ..Default::default()
    }
}

pub fn participant(p: &ParticipantInfo) -> lk::ParticipantInfo {
    use lk::participant_info::{Kind, State};
    let kind = match p.kind {
        ParticipantKind::Standard => Kind::Standard,
        ParticipantKind::Ingress => Kind::Ingress,
        ParticipantKind::Egress => Kind::Egress,
        ParticipantKind::Sip => Kind::Sip,
        ParticipantKind::Agent => Kind::Agent,
    };
    let tracks: Vec<lk::TrackInfo> = p
        .tracks
        .iter()
        .map(|t| {
            let muted = match t.kind {
                TrackKind::Audio => p.audio_muted,
                TrackKind::Video => p.video_muted,
            };
            track(t, muted)
        })
        .collect();
    lk::ParticipantInfo {
        sid: participant_sid(p.id),
        identity: p.identity.clone(),
        // LiveKit has no "reconnecting" state: a participant whose connection dropped is
        // still there (DISCONNECTED would make the SDKs drop it and its tracks).
        state: State::Active as i32,
        is_publisher: !tracks.is_empty(),
        tracks,
        metadata: p.metadata.clone(),
        joined_at: i64::try_from(p.joined_at).unwrap_or(0),
        joined_at_ms: i64::try_from(p.joined_at.saturating_mul(1000)).unwrap_or(0),
        name: p.name.clone(),
        permission: Some(lk::ParticipantPermission {
            can_publish: p.permissions.can_publish,
            can_subscribe: p.permissions.can_subscribe,
            can_publish_data: p.permissions.can_publish_data,
            ..Default::default()
        }),
        kind: kind as i32,
        attributes: p
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

pub fn source(s: TrackSource) -> lk::TrackSource {
    match s {
        TrackSource::Camera => lk::TrackSource::Camera,
        TrackSource::Microphone => lk::TrackSource::Microphone,
        TrackSource::ScreenShare => lk::TrackSource::ScreenShare,
        TrackSource::ScreenShareAudio => lk::TrackSource::ScreenShareAudio,
        TrackSource::Unknown => lk::TrackSource::Unknown,
    }
}

/// A LiveKit source (as an `AddTrackRequest` carries it) as ours.
pub fn our_source(s: i32) -> TrackSource {
    match lk::TrackSource::try_from(s) {
        Ok(lk::TrackSource::Camera) => TrackSource::Camera,
        Ok(lk::TrackSource::Microphone) => TrackSource::Microphone,
        Ok(lk::TrackSource::ScreenShare) => TrackSource::ScreenShare,
        Ok(lk::TrackSource::ScreenShareAudio) => TrackSource::ScreenShareAudio,
        _ => TrackSource::Unknown,
    }
}

fn source_name(s: TrackSource) -> &'static str {
    match s {
        TrackSource::Camera => "camera",
        TrackSource::Microphone => "microphone",
        TrackSource::ScreenShare => "screen_share",
        TrackSource::ScreenShareAudio => "screen_share_audio",
        TrackSource::Unknown => "",
    }
}

/// LiveKit's simulcast quality of one of our layer rids (`q`/`h`/`f`, `l`/`m`/`h`, …).
pub fn quality_of_rid(rid: &str) -> lk::VideoQuality {
    match rid {
        "q" | "l" | "low" | "0" => lk::VideoQuality::Low,
        "h" | "m" | "mid" | "medium" | "1" => lk::VideoQuality::Medium,
        _ => lk::VideoQuality::High,
    }
}

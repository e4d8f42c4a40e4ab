//! Typed identifiers shared by the media core and the control plane.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A room, named by the application (validated by the control plane).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub String);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RoomId {
    fn from(s: &str) -> Self {
        RoomId(s.to_string())
    }
}

/// One participant (one signaling session) in one room. Assigned by the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One published track (one m-line of a publisher). Assigned by the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackId(pub u64);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which of a participant's two peer connections (see ADR 0001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcKind {
    /// The client offers, the server answers; carries the client's media in.
    Publisher,
    /// The server offers, the client answers; carries other participants' media out.
    Subscriber,
}

/// Kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

impl From<str0m::media::MediaKind> for TrackKind {
    fn from(k: str0m::media::MediaKind) -> Self {
        match k {
            str0m::media::MediaKind::Audio => TrackKind::Audio,
            str0m::media::MediaKind::Video => TrackKind::Video,
        }
    }
}

impl From<TrackKind> for str0m::media::MediaKind {
    fn from(k: TrackKind) -> Self {
        match k {
            TrackKind::Audio => str0m::media::MediaKind::Audio,
            TrackKind::Video => str0m::media::MediaKind::Video,
        }
    }
}

/// What a published track carries, as its publisher declared it: it sets the track's
/// priority in every subscriber's bandwidth allocation (screen share first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Camera,
    Microphone,
    ScreenShare,
    ScreenShareAudio,
    /// Not declared, or a name this version does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

impl TrackSource {
    /// The name of the signaling protocol and of access-token grants.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Camera => "camera",
            Self::Microphone => "microphone",
            Self::ScreenShare => "screen_share",
            Self::ScreenShareAudio => "screen_share_audio",
            Self::Unknown => "unknown",
        }
    }
}

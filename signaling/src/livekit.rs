//! LiveKit's APIs, as an adapter at the edge: LiveKit's SDKs and apps use this server
//! unchanged. `model` maps our directory's types onto LiveKit's (`livekit-protocol`),
//! `rtc` + `signal` are the client signal protocol (`/rtc`), `twirp` is RoomService.
//! See `docs/livekit.md`.

pub mod data;
pub mod model;
pub mod rtc;
pub mod signal;
pub(crate) mod twirp;

//! # signaling — Switchboard's control plane
//!
//! axum routes and the WebSocket signaling protocol ([`protocol`], documented in
//! `docs/protocol.md`), access tokens ([`auth`]), and the room directory ([`Hub`]). It
//! drives the media plane only through the [`MediaPlane`] trait, so it is tested with an
//! in-memory fake and run with the server's worker threads.
//!
//! Flow: a client opens `/ws` and sends `join` with a JWT. The hub verifies it, registers
//! the participant and sends `Command::Join` to the media plane; after that client
//! messages become commands (`publish_offer`, `subscribe_answer`, `candidate`) and
//! media-plane events become server messages (`publish_answer`, `subscribe_offer`,
//! `track_published`, …), routed by participant.

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cluster_http;
pub mod error;
pub mod forwarding_mark;
pub mod http;
pub mod hub;
pub mod livekit;
pub mod message_budget;
pub mod outbound;
pub mod participant_names;
pub mod placement;
pub mod plane;
pub mod protocol;
pub mod room_name;
pub mod sdp_limits;
pub mod sip_calls;
pub mod token_bucket;
pub mod turn;
pub mod webhook;
pub mod whip;
pub mod ws;
pub mod ws_relay;

pub use auth::{Claims, KeyStore, VideoGrant};
pub use error::Error;
pub use http::{router, AppState};
pub use hub::{Hub, HubConfig};
pub use plane::{MediaPlane, PlaneError};
pub use room_name::RoomName;

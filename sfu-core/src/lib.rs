//! # sfu-core — Switchboard's sans-IO media core
//!
//! A [`Shard`] holds the peer connections (one str0m `Rtc` each, RTP mode, ICE-lite,
//! DTLS-SRTP), rooms and forwarding graph of one worker thread. It is driven like str0m
//! itself: feed [`Input`]s with [`Shard::handle_input`] (a datagram, a control-plane
//! [`Command`], or a timeout), then drain [`Shard::poll_output`] until it returns
//! [`Output::Timeout`]. See [`shard`] for the loop.
//!
//! Modules: [`rewrite`] (sequence number / timestamp / VP8 picture-id continuity),
//! [`keyframe`] (detection and request throttling), [`demux`] (which peer a datagram is
//! for), `track` (published tracks and their layers), `forward` (per-subscriber layer choice
//! and forwarding), and with the `testkit` feature a
//! simulated network and simulated str0m clients on a virtual clock.

#![forbid(unsafe_code)]

pub mod allocator;
pub mod api;
mod control;
pub mod data;
pub mod demux;
mod dynacast;
mod forward;
pub mod ids;
mod interruption;
pub mod keyframe;
mod msid;
mod negotiation;
mod packet;
mod participant;
mod pc;
mod peers;
mod periodic;
pub mod relay;
pub mod rewrite;
mod router;
mod routes;
mod rtx;
mod selection;
mod seq_ring;
pub mod shard;
mod shard_config;
pub mod speaker;
#[cfg(test)]
mod test_clock;
mod timers;
mod track;
pub mod vp8;
mod whep;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use api::{
    Command, CommandError, Event, GoneReason, Input, LayerState, OfferedTrack, Output,
    RelayTransmit, RelayedTrack, ShardStats, SubscriptionStat, Transmit, Transport, ViewerOptions,
};
pub use ids::{ParticipantId, PcKind, RoomId, TrackId, TrackKind, TrackSource};
pub use shard::{Shard, ShardConfig};
pub use str0m;

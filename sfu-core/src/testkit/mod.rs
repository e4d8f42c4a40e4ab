//! Deterministic simulation of calls: one [`Shard`](crate::Shard), simulated str0m
//! clients, and a simulated network (delay, random loss, bandwidth cap) on a virtual clock.
//!
//! A minute of a three-person call runs in well under a second of CPU: nothing sleeps,
//! time jumps from one due event to the next. Loss and addresses come from a seeded
//! generator; str0m draws its own SSRCs and DTLS keys, so runs are equivalent, not
//! byte-identical.
//!
//! ```ignore
//! let mut sim = Sim::new(start, 7); // `start`: any Instant, the virtual clock's origin
//! let a = sim.join("room", ClientSpec::av());
//! let b = sim.join("room", ClientSpec::av());
//! sim.run_for(Duration::from_secs(5));
//! assert!(sim.client(b).video_from(sim.client(a).id).packets > 100);
//! ```

mod client;
pub mod media;
mod net;
mod sim;

pub use client::{ClientSpec, RecvStream, SimClient};
pub use media::{stun_binding_request, LayerSpec, Stamp};
pub use net::{LinkConfig, SimNet};
pub use sim::{ClientIdx, Sim};

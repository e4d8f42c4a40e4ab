//! Media worker threads: each pinned to a core, owning one UDP socket and one shard.
//!
//! The worker is the only place that reads the clock or touches the socket; the shard is
//! sans-IO. Commands from the control plane arrive on a bounded channel (a full channel is
//! answered with "busy", never by blocking); events go back on an unbounded channel that
//! only carries signaling-rate traffic.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sfu_core::{Command, Event, Input, Output, Shard, ShardConfig, ShardStats};
use tokio::sync::mpsc::UnboundedSender;

/// Commands a worker may have queued before the control plane gets "busy".
pub const COMMAND_QUEUE: usize = 1024;
/// Longest a worker sleeps on its socket before looking at its command queue.
const MAX_IDLE: Duration = Duration::from_millis(5);

/// The control plane's handle on one worker.
pub struct WorkerHandle {
    pub index: usize,
    pub addr: SocketAddr,
    pub commands: SyncSender<Command>,
    /// Participants on this worker (written by the worker).
    pub load: Arc<AtomicUsize>,
    pub stats: Arc<parking_lot::Mutex<ShardStats>>,
    pub thread: Option<JoinHandle<()>>,
}

pub struct WorkerSpec {
    pub index: usize,
    pub socket: UdpSocket,
    pub public_addr: SocketAddr,
    pub core: Option<core_affinity::CoreId>,
    pub seed: u64,
}

pub fn spawn(spec: WorkerSpec, events: UnboundedSender<Event>, stop: Arc<AtomicBool>) -> std::io::Result<WorkerHandle> {
    let (tx, rx) = sync_channel(COMMAND_QUEUE);
    let load = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(parking_lot::Mutex::new(ShardStats::default()));
    let addr = spec.public_addr;
    let index = spec.index;
    let (l, s) = (load.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name(format!("sb-worker-{index}"))
        .spawn(move || run(spec, rx, events, l, s, stop))?;
    Ok(WorkerHandle { index, addr, commands: tx, load, stats, thread: Some(thread) })
}

fn run(
    spec: WorkerSpec,
    commands: Receiver<Command>,
    events: UnboundedSender<Event>,
    load: Arc<AtomicUsize>,
    stats: Arc<parking_lot::Mutex<ShardStats>>,
    stop: Arc<AtomicBool>,
) {
    if let Some(core) = spec.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(worker = spec.index, "could not pin to core {}", core.id);
        }
    }
    let _span = tracing::info_span!("worker", index = spec.index).entered();
    let mut cfg = ShardConfig::new(spec.public_addr);
    cfg.seed = spec.seed.wrapping_add(spec.index as u64);
    let mut shard = Shard::new(cfg, Instant::now());
    let socket = spec.socket;
    let mut buf = vec![0u8; 2048];
    let mut last_timeout = Duration::ZERO;
    let mut stats_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let deadline = loop {
            match shard.poll_output() {
                Output::Transmit(t) => {
                    if let Err(e) = socket.send_to(&t.contents, t.destination) {
                        tracing::trace!(error = %e, "send failed");
                    }
                }
                Output::Event(e) => {
                    let _ = events.send(e);
                }
                Output::Timeout(t) => break t,
            }
        };
        match commands.try_recv() {
            Ok(c) => {
                shard.handle_input(Instant::now(), Input::Command(c));
                load.store(shard.participant_count(), Ordering::Relaxed);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        let now = Instant::now();
        if deadline <= now {
            shard.handle_input(now, Input::Timeout);
            load.store(shard.participant_count(), Ordering::Relaxed);
            continue;
        }
        // Changing the socket timeout is a syscall: only do it when the wait moves to
        // another bucket (1 ms or MAX_IDLE), never per packet.
        let wait = if deadline - now <= Duration::from_millis(1) { Duration::from_millis(1) } else { MAX_IDLE };
        if wait != last_timeout {
            let _ = socket.set_read_timeout(Some(wait));
            last_timeout = wait;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                shard.handle_input(Instant::now(), Input::Datagram { source, contents: &buf[..n] });
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                shard.handle_input(Instant::now(), Input::Timeout);
            }
            Err(e) => tracing::debug!(error = %e, "recv failed"),
        }
        if stats_at.elapsed() >= Duration::from_millis(100) {
            stats_at = Instant::now();
            *stats.lock() = shard.stats();
            load.store(shard.participant_count(), Ordering::Relaxed);
        }
    }
}

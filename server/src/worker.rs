//! Media worker threads: each pinned to a core, owning one UDP socket and one shard.
//!
//! The worker is the only place that reads the clock or touches the socket; the shard is
//! sans-IO. Loop: wait (epoll via mio) for the socket, a command wake-up or the shard's
//! deadline; take queued commands; read every queued datagram in recvmmsg batches into
//! the shard; fire due timers; then send everything the shard produced in one batch
//! (packets to one destination go out together with GSO). Commands come on a bounded
//! channel plus a waker (a full channel is answered "busy", never by blocking); events go
//! back on an unbounded channel that only carries signaling-rate traffic.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use sfu_core::{Command, Event, Input, Output, Shard, ShardConfig, ShardStats};
use tokio::sync::mpsc::UnboundedSender;

use crate::udp::{BatchSocket, Pending};

/// Commands a worker may have queued before the control plane gets "busy".
pub const COMMAND_QUEUE: usize = 1024;
/// Longest a worker sleeps with nothing to do (it also wakes for commands and packets).
const MAX_IDLE: Duration = Duration::from_millis(100);
/// Receive batches handled before the outputs are flushed, so that a flood cannot starve
/// the send side or timers.
const MAX_RECV_ROUNDS: usize = 8;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

/// The control plane's handle on one worker.
pub struct WorkerHandle {
    pub index: usize,
    pub addr: SocketAddr,
    commands: SyncSender<Command>,
    waker: Arc<Waker>,
    /// Participants on this worker (written by the worker).
    pub load: Arc<AtomicUsize>,
    pub stats: Arc<parking_lot::Mutex<ShardStats>>,
    pub thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Queue a command without blocking; wake the worker.
    pub fn try_send(&self, c: Command) -> Result<(), std::sync::mpsc::TrySendError<Command>> {
        self.commands.try_send(c)?;
        let _ = self.waker.wake();
        Ok(())
    }

    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

pub struct WorkerSpec {
    pub index: usize,
    pub socket: UdpSocket,
    pub public_addr: SocketAddr,
    pub core: Option<core_affinity::CoreId>,
    pub seed: u64,
}

pub fn spawn(
    spec: WorkerSpec,
    events: UnboundedSender<Event>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<WorkerHandle> {
    let (tx, rx) = sync_channel(COMMAND_QUEUE);
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let load = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(parking_lot::Mutex::new(ShardStats::default()));
    let addr = spec.public_addr;
    let index = spec.index;
    let (l, s) = (load.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name(format!("sb-worker-{index}"))
        .spawn(move || {
            if let Err(e) = run(spec, poll, rx, events, l, s, stop) {
                tracing::error!(worker = index, error = %e, "worker stopped");
            }
        })?;
    Ok(WorkerHandle {
        index,
        addr,
        commands: tx,
        waker,
        load,
        stats,
        thread: Some(thread),
    })
}

fn run(
    spec: WorkerSpec,
    mut poll: Poll,
    commands: Receiver<Command>,
    events: UnboundedSender<Event>,
    load: Arc<AtomicUsize>,
    stats: Arc<parking_lot::Mutex<ShardStats>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    if let Some(core) = spec.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(worker = spec.index, "could not pin to core {}", core.id);
        }
    }
    let _span = tracing::info_span!("worker", index = spec.index).entered();
    let mut cfg = ShardConfig::new(spec.public_addr);
    cfg.seed = spec.seed.wrapping_add(spec.index as u64);
    let mut shard = Shard::new(cfg, Instant::now());
    let mut sock = BatchSocket::new(spec.socket)?;
    let mut registered = mio::net::UdpSocket::from_std(sock.socket.try_clone()?);
    poll.registry()
        .register(&mut registered, SOCKET, Interest::READABLE)?;
    let mut mio_events = Events::with_capacity(16);
    let mut out: Vec<Pending> = Vec::with_capacity(1024);
    let mut stats_at = Instant::now();
    let mut deadline = Instant::now();
    // Readiness is edge-triggered: when a flood outlasts MAX_RECV_ROUNDS, data is still
    // queued and no new edge will come, so the next wait must not block.
    let mut more = false;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = if more {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(now).min(MAX_IDLE)
        };
        if let Err(e) = poll.poll(&mut mio_events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        // Commands first: they are rare and a join should not wait behind media.
        loop {
            match commands.try_recv() {
                Ok(c) => shard.handle_input(Instant::now(), Input::Command(c)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        // Every queued datagram (edge-triggered readiness: read until empty).
        more = true;
        for _ in 0..MAX_RECV_ROUNDS {
            let now = Instant::now();
            match sock.recv_batch(|source, contents| {
                shard.handle_input(now, Input::Datagram { source, contents })
            }) {
                Ok(0) => {
                    more = false;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "recv failed");
                    more = false;
                    break;
                }
            }
        }
        let now = Instant::now();
        if deadline <= now {
            shard.handle_input(now, Input::Timeout);
        }
        deadline = loop {
            match shard.poll_output() {
                Output::Transmit(t) => out.push(Pending {
                    destination: t.destination,
                    contents: t.contents,
                }),
                Output::Event(e) => {
                    let _ = events.send(e);
                }
                Output::Timeout(t) => break t,
            }
        };
        if !out.is_empty() {
            sock.send_batch(&mut out);
        }
        load.store(shard.participant_count(), Ordering::Relaxed);
        if now.saturating_duration_since(stats_at) >= Duration::from_millis(100) {
            stats_at = now;
            *stats.lock() = shard.stats();
        }
    }
    Ok(())
}

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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// Figures a worker keeps for metrics and admission, besides its shard's counters.
#[derive(Debug, Default)]
pub struct WorkerTelemetry {
    /// Nanoseconds spent handling input and output (not waiting).
    pub busy_ns: AtomicU64,
    /// Commands sent and not yet taken by the worker.
    pub queued: AtomicUsize,
    pub datagrams_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Datagrams received per second over the last second (set by the telemetry task).
    pub packet_rate: AtomicU64,
    /// Datagrams lost to failed sends (EMSGSIZE, ENOBUFS...).
    pub send_errors: AtomicU64,
    /// Receives that filled a whole buffer (possibly truncated).
    pub recv_truncated: AtomicU64,
}

/// The control plane's handle on one worker.
pub struct WorkerHandle {
    pub index: usize,
    pub addr: SocketAddr,
    commands: SyncSender<Command>,
    waker: Arc<Waker>,
    /// Participants on this worker (written by the worker).
    pub load: Arc<AtomicUsize>,
    pub stats: Arc<parking_lot::Mutex<ShardStats>>,
    pub tel: Arc<WorkerTelemetry>,
    pub thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Queue a command without blocking; wake the worker.
    pub fn try_send(&self, c: Command) -> Result<(), std::sync::mpsc::TrySendError<Command>> {
        self.tel.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.commands.try_send(c) {
            self.tel.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
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
    let tel = Arc::new(WorkerTelemetry::default());
    let (l, s, t) = (load.clone(), stats.clone(), tel.clone());
    let thread = std::thread::Builder::new()
        .name(format!("sb-worker-{index}"))
        .spawn(move || {
            if let Err(e) = run(spec, poll, rx, events, l, s, t, stop) {
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
        tel,
        thread: Some(thread),
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    spec: WorkerSpec,
    mut poll: Poll,
    commands: Receiver<Command>,
    events: UnboundedSender<Event>,
    load: Arc<AtomicUsize>,
    stats: Arc<parking_lot::Mutex<ShardStats>>,
    tel: Arc<WorkerTelemetry>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    // Registered once: recording is then an atomic update, once per loop turn.
    let forwarding = metrics::histogram!("switchboard_forwarding_latency_seconds", "worker" => spec.index.to_string());
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
        let woke = Instant::now();
        let mut first_datagram: Option<Instant> = None;
        let mut bytes_in = 0u64;
        // Commands first: they are rare and a join should not wait behind media.
        loop {
            match commands.try_recv() {
                Ok(c) => {
                    tel.queued.fetch_sub(1, Ordering::Relaxed);
                    shard.handle_input(Instant::now(), Input::Command(c))
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        // Every queued datagram (edge-triggered readiness: read until empty).
        more = true;
        for _ in 0..MAX_RECV_ROUNDS {
            let now = Instant::now();
            match sock.recv_batch(|source, contents| {
                bytes_in += contents.len() as u64;
                shard.handle_input(now, Input::Datagram { source, contents })
            }) {
                Ok(0) => {
                    more = false;
                    break;
                }
                Ok(_) => {
                    first_datagram.get_or_insert(now);
                }
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
            tel.datagrams_out
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            let bytes: usize = out.iter().map(|p| p.contents.len()).sum();
            tel.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
            sock.send_batch(&mut out);
        }
        let done = Instant::now();
        if let Some(t) = first_datagram {
            // Receipt to send: the oldest datagram of this turn waited this long.
            forwarding.record(done.saturating_duration_since(t).as_secs_f64());
        }
        tel.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        tel.busy_ns.fetch_add(
            done.saturating_duration_since(woke).as_nanos() as u64,
            Ordering::Relaxed,
        );
        load.store(shard.participant_count(), Ordering::Relaxed);
        if now.saturating_duration_since(stats_at) >= Duration::from_millis(100) {
            stats_at = now;
            *stats.lock() = shard.stats();
            tel.send_errors.store(sock.send_errors, Ordering::Relaxed);
            tel.recv_truncated
                .store(sock.recv_truncated, Ordering::Relaxed);
        }
    }
    Ok(())
}

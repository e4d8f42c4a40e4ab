//! Media worker threads: each pinned to a core, owning one UDP socket, the ICE-TCP
//! connections handed to it ([`crate::tcp_links`]) and one shard.
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
use sfu_core::{Command, Input, Output, Shard, ShardConfig, ShardStats, Transport};

use crate::tcp_links::{Handoff, TcpLinks};
use crate::udp::{BatchSocket, Pending};
use crate::ufrags::{UfragDirectory, UfragRecorder};

/// Commands a worker may have queued before the control plane gets "busy".
pub const COMMAND_QUEUE: usize = 1024;
/// Longest a worker sleeps with nothing to do (it also wakes for commands and packets).
const MAX_IDLE: Duration = Duration::from_millis(100);
/// Receive batches handled before the outputs are flushed, so that a flood cannot starve
/// the send side or timers.
const MAX_RECV_ROUNDS: usize = 8;

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);
/// Tokens from here up are ICE-TCP connections.
const FIRST_TCP: usize = 2;
/// ICE-TCP connections the acceptor may have queued for one worker.
const HANDOFF_QUEUE: usize = 256;

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
    /// Send syscalls (`sendmmsg` and GSO sends): datagrams sent per syscall is
    /// `datagrams_out / send_calls`.
    pub send_calls: AtomicU64,
    /// Receives that filled a whole buffer (possibly truncated).
    pub recv_truncated: AtomicU64,
    /// ICE-TCP: connections open, closed for bad framing, frames dropped to a full
    /// backlog, frames received and sent.
    pub tcp_links: AtomicUsize,
    pub tcp_bad_frames: AtomicU64,
    pub tcp_backlog_drops: AtomicU64,
    pub tcp_frames_in: AtomicU64,
    pub tcp_frames_out: AtomicU64,
}

/// Where the ICE-TCP acceptor hands a worker its connections.
#[derive(Clone)]
pub struct HandoffSender {
    tx: SyncSender<Handoff>,
    waker: Arc<Waker>,
}

impl HandoffSender {
    /// Queue a connection without blocking; wake the worker. Err: the queue is full or
    /// the worker stopped (the connection is dropped, so closed).
    pub fn hand_over(&self, h: Handoff) -> Result<(), ()> {
        self.tx.try_send(h).map_err(|_| ())?;
        let _ = self.waker.wake();
        Ok(())
    }
}

/// The control plane's handle on one worker.
pub struct WorkerHandle {
    pub index: usize,
    pub addr: SocketAddr,
    commands: SyncSender<Command>,
    /// Leaves: never refused or dropped (a dropped one would leave a ghost peer), and
    /// bounded by the participants there are (each leaves once).
    leaves: std::sync::mpsc::Sender<Command>,
    waker: Arc<Waker>,
    /// Participants on this worker (written by the worker).
    pub load: Arc<AtomicUsize>,
    pub stats: Arc<parking_lot::Mutex<ShardStats>>,
    pub tel: Arc<WorkerTelemetry>,
    pub handoffs: HandoffSender,
    pub thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Queue a command without blocking; wake the worker. A full queue refuses anything
    /// but a `Leave`, which always goes through.
    pub fn try_send(&self, c: Command) -> Result<(), std::sync::mpsc::TrySendError<Command>> {
        if matches!(c, Command::Leave { .. }) {
            self.leaves
                .send(c)
                .map_err(|e| std::sync::mpsc::TrySendError::Disconnected(e.0))?;
            let _ = self.waker.wake();
            return Ok(());
        }
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
    /// The node's ICE-TCP candidate address (None: UDP only).
    pub tcp_addr: Option<SocketAddr>,
    pub directory: Arc<UfragDirectory>,
    /// How long a participant whose ICE went quiet keeps its place.
    pub media_grace: Duration,
    pub core: Option<core_affinity::CoreId>,
    pub seed: u64,
}

/// What a worker reads besides its UDP socket.
struct Inbox {
    commands: Receiver<Command>,
    leaves: Receiver<Command>,
    handoffs: Receiver<Handoff>,
}

pub fn spawn(
    spec: WorkerSpec,
    events: crate::media_events::EventTx,
    stop: Arc<AtomicBool>,
) -> std::io::Result<WorkerHandle> {
    let (tx, rx) = sync_channel(COMMAND_QUEUE);
    let (leaves_tx, leaves_rx) = std::sync::mpsc::channel();
    let (handoff_tx, handoff_rx) = sync_channel(HANDOFF_QUEUE);
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let handoffs = HandoffSender {
        tx: handoff_tx,
        waker: waker.clone(),
    };
    let inbox = Inbox {
        commands: rx,
        leaves: leaves_rx,
        handoffs: handoff_rx,
    };
    let load = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(parking_lot::Mutex::new(ShardStats::default()));
    let addr = spec.public_addr;
    let index = spec.index;
    let tel = Arc::new(WorkerTelemetry::default());
    let (l, s, t) = (load.clone(), stats.clone(), tel.clone());
    let thread = std::thread::Builder::new()
        .name(format!("sb-worker-{index}"))
        .spawn(move || {
            if let Err(e) = run(spec, poll, inbox, events, l, s, t, stop) {
                tracing::error!(worker = index, error = %e, "worker stopped");
            }
        })?;
    Ok(WorkerHandle {
        index,
        addr,
        commands: tx,
        leaves: leaves_tx,
        waker,
        load,
        stats,
        tel,
        handoffs,
        thread: Some(thread),
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    spec: WorkerSpec,
    mut poll: Poll,
    inbox: Inbox,
    events: crate::media_events::EventTx,
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
    cfg.tcp_addr = spec.tcp_addr;
    cfg.media_grace = spec.media_grace;
    cfg.seed = spec.seed.wrapping_add(spec.index as u64);
    let mut ufrags = UfragRecorder::new(spec.index, spec.directory.clone());
    let mut tcp = TcpLinks::new(FIRST_TCP);
    let mut tcp_ready: Vec<Token> = Vec::with_capacity(16);
    // Connections whose read budget ran out last round: read again before waiting.
    let mut tcp_again: Vec<Token> = Vec::new();
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
        let wait = if more || !tcp_again.is_empty() {
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
        tcp_ready.clear();
        tcp_ready.append(&mut tcp_again);
        for e in mio_events.iter() {
            if tcp.owns(e.token()) {
                if e.is_writable() {
                    tcp.writable(e.token());
                }
                let ready = e.is_readable() || e.is_read_closed() || e.is_error();
                // Once a round: a link read again from last round may also have an event.
                if ready && !tcp_ready.contains(&e.token()) {
                    tcp_ready.push(e.token());
                }
            }
        }
        // Commands first: they are rare and a join should not wait behind media. Leaves
        // before anything else.
        while let Ok(c) = inbox.leaves.try_recv() {
            shard.handle_input(Instant::now(), Input::Command(c));
        }
        loop {
            match inbox.commands.try_recv() {
                Ok(c) => {
                    tel.queued.fetch_sub(1, Ordering::Relaxed);
                    shard.handle_input(Instant::now(), Input::Command(c))
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Ok(()),
            }
        }
        let mut tcp_in = 0u64;
        let mut on_frame = |shard: &mut Shard, now: Instant, source: SocketAddr, f: &[u8]| {
            tcp_in += 1;
            shard.handle_input(
                now,
                Input::TcpFrame {
                    source,
                    contents: f,
                },
            );
        };
        while let Ok(h) = inbox.handoffs.try_recv() {
            let now = Instant::now();
            tcp.adopt(poll.registry(), h, now, &mut |src, f| {
                on_frame(&mut shard, now, src, f)
            });
        }
        for &t in &tcp_ready {
            let now = Instant::now();
            if tcp.read(poll.registry(), t, now, &mut |src, f| {
                on_frame(&mut shard, now, src, f)
            }) {
                tcp_again.push(t);
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
        let mut tcp_out = 0u64;
        deadline = loop {
            match shard.poll_output() {
                Output::Transmit(t) if t.transport == Transport::Udp => out.push(Pending {
                    destination: t.destination,
                    contents: t.contents,
                }),
                Output::Transmit(t) => {
                    tcp_out += 1;
                    tcp.queue(t.destination, &t.contents);
                }
                Output::Event(e) => {
                    ufrags.observe(&e);
                    events.send(e);
                }
                // Relay taps exist only once the control plane sends `RelayTap`, which it
                // does not yet (issue 34: the relay crate is not wired to the workers).
                Output::Relay(_) => {}
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
        tcp.flush(poll.registry());
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
        if tcp_in | tcp_out != 0 {
            tel.tcp_frames_in.fetch_add(tcp_in, Ordering::Relaxed);
            tel.tcp_frames_out.fetch_add(tcp_out, Ordering::Relaxed);
        }
        if now.saturating_duration_since(stats_at) >= Duration::from_millis(100) {
            stats_at = now;
            tcp.expire(poll.registry(), now);
            tel.tcp_links.store(tcp.len(), Ordering::Relaxed);
            tel.tcp_bad_frames
                .store(tcp.stats.bad_frames, Ordering::Relaxed);
            tel.tcp_backlog_drops
                .store(tcp.stats.backlog_drops, Ordering::Relaxed);
            *stats.lock() = shard.stats();
            tel.send_errors.store(sock.send_errors, Ordering::Relaxed);
            tel.send_calls.store(sock.send_calls, Ordering::Relaxed);
            tel.recv_truncated
                .store(sock.recv_truncated, Ordering::Relaxed);
        }
    }
    Ok(())
}

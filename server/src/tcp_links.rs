//! A worker's ICE-TCP connections (RFC 6544, passive side): the sockets the acceptor
//! handed over, each with its RFC 4571 reader and bounded writer. The worker feeds their
//! frames to the shard as [`sfu_core::Input::TcpFrame`] and queues the shard's TCP
//! transmits here, by the peer's address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::framing::{FrameReader, FrameWriter, ReadOutcome};

/// A connection that brought no frame for this long is closed (ICE consent checks come
/// every few seconds on a used path).
pub const IDLE: Duration = Duration::from_secs(30);
/// Connections one worker holds at most; more are refused at the hand-over.
pub const MAX_LINKS: usize = 4096;
/// Connections from one IP address one worker holds at most (a client needs one or two).
pub const MAX_LINKS_PER_IP: usize = 16;
/// Bytes read from one connection in one round of the worker's loop; the rest waits for
/// the next round, after UDP and the other connections.
pub const READ_BUDGET: usize = 64 * 1024;

/// A connection the acceptor read the first frame from, for a worker to adopt.
pub struct Handoff {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    /// What was read so far (the first frame, maybe more).
    pub read: Vec<u8>,
}

struct Link {
    stream: TcpStream,
    peer: SocketAddr,
    reader: FrameReader,
    writer: FrameWriter,
    last_frame: Instant,
}

/// Counters for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpStats {
    pub adopted: u64,
    pub closed: u64,
    /// Connections closed for a length prefix over the frame limit.
    pub bad_frames: u64,
    /// Frames dropped because the peer's backlog was full.
    pub backlog_drops: u64,
    /// Transmits to a peer with no connection (it closed).
    pub no_link: u64,
    /// Hand-overs refused: over the worker's or one address's connection limit.
    pub refused: u64,
}

pub struct TcpLinks {
    first_token: usize,
    links: HashMap<Token, Link>,
    by_peer: HashMap<SocketAddr, Token>,
    /// Connections with bytes waiting to be written.
    dirty: Vec<Token>,
    next: usize,
    pub stats: TcpStats,
}

impl TcpLinks {
    /// Tokens from `first_token` up are this set's.
    pub fn new(first_token: usize) -> Self {
        Self {
            first_token,
            links: HashMap::new(),
            by_peer: HashMap::new(),
            dirty: Vec::new(),
            next: first_token,
            stats: TcpStats::default(),
        }
    }

    pub fn owns(&self, t: Token) -> bool {
        t.0 >= self.first_token
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Take over a handed-over connection and deliver the frames it already brought.
    pub fn adopt(
        &mut self,
        registry: &Registry,
        h: Handoff,
        now: Instant,
        frame: &mut impl FnMut(SocketAddr, &[u8]),
    ) {
        let from_ip = self
            .by_peer
            .keys()
            .filter(|p| p.ip() == h.peer.ip())
            .count();
        if self.links.len() >= MAX_LINKS
            || from_ip >= MAX_LINKS_PER_IP
            || self.by_peer.contains_key(&h.peer)
        {
            self.stats.refused += 1;
            return; // dropped: the stream closes
        }
        let token = Token(self.next);
        self.next = self.next.wrapping_add(1).max(self.first_token);
        let mut stream = TcpStream::from_std(h.stream);
        if registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return;
        }
        let peer = h.peer;
        let mut link = Link {
            stream,
            peer,
            reader: FrameReader::default(),
            writer: FrameWriter::default(),
            last_frame: now,
        };
        let pushed = link.reader.push(&h.read, &mut |f| frame(peer, f));
        self.stats.adopted += 1;
        self.links.insert(token, link);
        self.by_peer.insert(peer, token);
        if pushed.is_err() {
            self.stats.bad_frames += 1;
            self.close(registry, token);
        } else {
            // Data may have arrived between the acceptor's read and the registration (a
            // spent budget here is read again at the socket's next event).
            let _ = self.read(registry, token, now, frame);
        }
    }

    /// Read what `token`'s socket has, up to [`READ_BUDGET`]; close it on EOF, error or
    /// bad framing. True when the budget ran out first: read it again next round.
    pub fn read(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        frame: &mut impl FnMut(SocketAddr, &[u8]),
    ) -> bool {
        let Some(link) = self.links.get_mut(&token) else {
            return false;
        };
        let peer = link.peer;
        let mut got = false;
        let outcome = link
            .reader
            .read_at_most(&mut link.stream, READ_BUDGET, &mut |f| {
                got = true;
                frame(peer, f)
            });
        if got {
            link.last_frame = now;
        }
        match outcome {
            ReadOutcome::Drained => false,
            ReadOutcome::More => true,
            ReadOutcome::Closed => {
                self.close(registry, token);
                false
            }
            ReadOutcome::Bad(_) => {
                self.stats.bad_frames += 1;
                self.close(registry, token);
                false
            }
        }
    }

    /// Queue a packet for the connection from `peer`.
    pub fn queue(&mut self, peer: SocketAddr, packet: &[u8]) {
        let Some(&token) = self.by_peer.get(&peer) else {
            self.stats.no_link += 1;
            return;
        };
        let Some(link) = self.links.get_mut(&token) else {
            return;
        };
        let was_empty = link.writer.is_empty();
        if !link.writer.queue(packet) {
            self.stats.backlog_drops += 1;
        } else if was_empty {
            self.dirty.push(token);
        }
    }

    /// The socket of `token` can take more: write its backlog.
    pub fn writable(&mut self, token: Token) {
        if self.links.get(&token).is_some_and(|l| !l.writer.is_empty()) {
            self.dirty.push(token);
        }
    }

    /// Write every backlog the sockets take now; close connections that broke.
    pub fn flush(&mut self, registry: &Registry) {
        let mut i = 0;
        while i < self.dirty.len() {
            let token = self.dirty[i];
            i += 1;
            let Some(link) = self.links.get_mut(&token) else {
                continue;
            };
            if link.writer.flush(&mut link.stream).is_err() {
                self.close(registry, token);
            }
        }
        // What is still waiting is written on the next writable event.
        self.dirty.clear();
    }

    /// Close connections idle for [`IDLE`].
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let idle: Vec<Token> = self
            .links
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_frame) >= IDLE)
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            self.close(registry, t);
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut link) = self.links.remove(&token) {
            let _ = registry.deregister(&mut link.stream);
            self.by_peer.remove(&link.peer);
            self.stats.closed += 1;
        }
    }
}

//! The simulation driver: steps the shard, the clients and the network on a virtual clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::client::{ClientSpec, SimClient};
use super::net::{LinkConfig, Packet, SimNet};
use crate::api::{Command, Event, Input, Output};
use crate::ids::{ParticipantId, RoomId};
use crate::shard::{Shard, ShardConfig};

/// Index of a client in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdx(pub usize);

pub struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub shard: Shard,
    pub net: SimNet,
    server: SocketAddr,
    shard_timeout: Instant,
    clients: Vec<Option<SimClient>>,
    /// Every event the shard emitted, with its time.
    pub events: Vec<(Instant, Event)>,
    rng: ChaCha8Rng,
    next_id: u64,
    /// Publishers follow [`Event::PublisherLayers`] (on by default, as browsers do).
    pub dynacast: bool,
    /// Transmits over ICE-TCP (to nobody: the simulated network is UDP).
    pub tcp_transmits: u64,
    /// Called with true before and false after every call into the shard (a benchmark
    /// counts the allocations in between, the clients' own left out).
    pub shard_hook: Option<fn(bool)>,
    /// Packets the shard sent other nodes (relay taps), not yet taken by the test.
    pub relayed: Vec<crate::api::RelayTransmit>,
}

impl Sim {
    /// `start` is the virtual clock's origin (tests pass the wall clock's current instant).
    pub fn new(start: Instant, seed: u64) -> Self {
        let server: SocketAddr = (Ipv4Addr::new(127, 0, 0, 1), 5000).into();
        let mut cfg = ShardConfig::new(server);
        cfg.seed = seed;
        // Offered as in production; the simulated network carries UDP only, so the
        // clients never pair with it (fuzzing feeds TCP frames directly).
        cfg.tcp_addr = Some(server);
        Self {
            now: start,
            start,
            shard: Shard::new(cfg, start),
            net: SimNet::new(seed ^ 0x5eed, server.ip()),
            server,
            shard_timeout: start,
            clients: Vec::new(),
            events: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xc11e),
            next_id: 1,
            dynacast: true,
            tcp_transmits: 0,
            shard_hook: None,
            relayed: Vec::new(),
        }
    }

    /// Participant ids of this simulation's clients start at `first` (two simulated nodes
    /// of one cluster never reuse an id, as the cluster's own ids do not).
    pub fn ids_from(&mut self, first: u64) {
        self.next_id = first;
    }

    fn host_of(i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1 + (i / 250) as u8,
            1 + (i % 250) as u8,
        ))
    }

    pub fn set_link(&mut self, c: ClientIdx, up: LinkConfig, down: LinkConfig) {
        self.net.set_link(Self::host_of(c.0), up, down);
    }

    /// Bytes the server has sent to a client so far.
    pub fn downlink_bytes(&self, c: ClientIdx) -> u64 {
        self.net
            .down_bytes
            .get(&Self::host_of(c.0))
            .copied()
            .unwrap_or(0)
    }

    /// Cap a client's downlink like `tbf`: `kbps`, with a 200 ms queue; uplink open.
    pub fn cap_downlink(&mut self, c: ClientIdx, kbps: u64) {
        let down = LinkConfig {
            rate_bps: Some(kbps * 1000),
            max_queue: Duration::from_millis(200),
            ..Default::default()
        };
        self.set_link(c, LinkConfig::default(), down);
    }

    /// The simulcast layer `viewer` receives of `publisher`'s video right now.
    pub fn video_layer(&self, viewer: ClientIdx, publisher: ClientIdx) -> Option<u8> {
        self.client(viewer)
            .stream_from(self.client(publisher).id, crate::TrackKind::Video)
            .and_then(|s| s.layer_at(self.now))
    }

    /// A new simulated client on its own host address (not yet joined).
    fn new_client(&mut self, spec: ClientSpec) -> (usize, ParticipantId, SimClient) {
        let idx = self.clients.len();
        let ip = Self::host_of(idx);
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let c = SimClient::new(
            self.now,
            self.start,
            id,
            spec,
            (ip, 40_000).into(),
            (ip, 40_001).into(),
            &mut self.rng,
        );
        (idx, id, c)
    }

    /// A new participant joins `room` and (as its spec says) publishes and subscribes.
    pub fn join(&mut self, room: &str, spec: ClientSpec) -> ClientIdx {
        let can_publish = spec.publishes();
        let can_subscribe = spec.subscribe;
        let track_streams = spec.track_streams;
        let auto_subscribe = spec.auto_subscribe;
        let (idx, id, mut c) = self.new_client(spec);
        let offer = c.make_offer();
        self.clients.push(Some(c));
        self.command(Command::Join {
            room: RoomId::from(room),
            participant: id,
            can_publish,
            can_subscribe,
            track_streams,
            auto_subscribe,
        });
        if let Some(sdp) = offer {
            self.command(Command::PublishOffer {
                participant: id,
                sdp,
            });
        }
        ClientIdx(idx)
    }

    /// A WHEP viewer: joins without a subscriber offer from the server and offers its own
    /// receive-only m-lines, for `target` (None: the active speaker).
    pub fn join_whep(&mut self, room: &str, target: Option<ParticipantId>) -> ClientIdx {
        self.join_viewer(room, target, Default::default())
    }

    /// A SIP video endpoint's speaker view: never showing `options.except`, receiving at
    /// most `options.max_bitrate`.
    pub fn join_speaker_view(&mut self, room: &str, options: crate::ViewerOptions) -> ClientIdx {
        self.join_viewer(room, None, options)
    }

    fn join_viewer(
        &mut self,
        room: &str,
        target: Option<ParticipantId>,
        options: crate::ViewerOptions,
    ) -> ClientIdx {
        let (idx, id, mut c) = self.new_client(ClientSpec::viewer());
        let offer = c.make_recv_offer(target.unwrap_or(ParticipantId(0)));
        c.connected = true; // nothing to publish; lets the client's timers run
        self.clients.push(Some(c));
        self.command(Command::Join {
            room: RoomId::from(room),
            participant: id,
            can_publish: false,
            can_subscribe: false,
            track_streams: false,
            auto_subscribe: true,
        });
        if let Some(sdp) = offer {
            self.command(Command::WhepOffer {
                participant: id,
                target,
                options,
                sdp,
            });
        }
        ClientIdx(idx)
    }

    /// The client declares its (published) video m-line a screen share, as a client's
    /// `SetSources` does.
    pub fn declare_screen_share(&mut self, c: ClientIdx) {
        let id = self.client(c).id;
        let mid = self.events.iter().find_map(|(_, e)| match e {
            Event::TrackPublished {
                participant,
                kind: crate::TrackKind::Video,
                mid,
                ..
            } if *participant == id => Some(mid.clone()),
            _ => None,
        });
        if let Some(mid) = mid {
            self.command(Command::SetSources {
                participant: id,
                sources: vec![(mid, crate::TrackSource::ScreenShare)],
            });
        }
    }

    /// The participant leaves cleanly (the control plane sends Leave).
    pub fn leave(&mut self, c: ClientIdx) {
        if let Some(client) = self.clients[c.0].take() {
            self.command(Command::Leave {
                participant: client.id,
            });
        }
    }

    /// The participant's machine vanishes: no Leave, no more packets.
    pub fn vanish(&mut self, c: ClientIdx) {
        self.clients[c.0] = None;
    }

    pub fn client(&self, c: ClientIdx) -> &SimClient {
        self.clients[c.0].as_ref().expect("client is gone")
    }

    pub fn client_mut(&mut self, c: ClientIdx) -> &mut SimClient {
        self.clients[c.0].as_mut().expect("client is gone")
    }

    pub fn command(&mut self, c: Command) {
        self.shard_input(self.now, Input::Command(c));
        self.drain_shard();
    }

    /// A packet of a relayed flow arrives from another node (the test carries it).
    pub fn relay_in(&mut self, link: u32, flow: u32, contents: &[u8]) {
        self.shard_input(
            self.now,
            Input::Relay {
                link,
                flow,
                contents,
            },
        );
        self.drain_shard();
    }

    /// A client subscribes to (`on`) or unsubscribes from a track.
    pub fn subscribe(&mut self, c: ClientIdx, track: crate::TrackId, on: bool) {
        let participant = self.client(c).id;
        self.command(Command::Subscribe {
            participant,
            tracks: vec![track],
            subscribe: on,
        });
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    pub fn run_until(&mut self, end: Instant) {
        while self.now < end {
            // Deliver everything due now.
            while let Some((at, p)) = self.net.pop_due(self.now) {
                self.deliver(at, p);
            }
            if self.shard_timeout <= self.now {
                self.shard_input(self.now, Input::Timeout);
                self.drain_shard();
            }
            let now = self.now;
            for i in 0..self.clients.len() {
                let Some(c) = self.clients[i].as_mut() else {
                    continue;
                };
                if c.next_wake().is_some_and(|t| t <= now) {
                    c.timeout(now);
                    c.produce(now);
                    self.drain_client(i);
                }
            }
            // Jump to the next thing that is due.
            let mut next = end.min(self.shard_timeout);
            if let Some(t) = self.net.next_arrival() {
                next = next.min(t);
            }
            for c in self.clients.iter().flatten() {
                if let Some(t) = c.next_wake() {
                    next = next.min(t);
                }
            }
            // Never stand still: the smallest step is 100 µs.
            self.now = next
                .max(self.now + Duration::from_micros(100))
                .min(end.max(self.now));
            if self.now == end {
                break;
            }
        }
        // Every simulation checks the shard's structure as it goes.
        if let Err(e) = self.shard.check_invariants() {
            panic!("shard invariant broken at {:?}: {e}", self.elapsed());
        }
    }

    fn deliver(&mut self, at: Instant, p: Packet) {
        if p.destination == self.server {
            self.shard_input(
                at,
                Input::Datagram {
                    source: p.source,
                    contents: &p.contents,
                },
            );
            self.drain_shard();
        } else if let Some(i) = self
            .clients
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.owns(p.destination)))
        {
            if let Some(c) = self.clients[i].as_mut() {
                c.receive(at, p.source, p.destination, &p.contents);
            }
            self.drain_client(i);
        }
    }

    fn drain_client(&mut self, i: usize) {
        let now = self.now;
        let Some(c) = self.clients[i].as_mut() else {
            return;
        };
        let net = &mut self.net;
        c.drain(now, |source, destination, contents| {
            net.send(
                now,
                Packet {
                    source,
                    destination,
                    contents,
                },
            )
        });
    }

    /// One input to the shard, inside [`Sim::shard_hook`].
    fn shard_input(&mut self, at: Instant, input: Input<'_>) {
        if let Some(h) = self.shard_hook {
            h(true);
        }
        self.shard.handle_input(at, input);
        if let Some(h) = self.shard_hook {
            h(false);
        }
    }

    fn drain_shard(&mut self) {
        loop {
            if let Some(h) = self.shard_hook {
                h(true);
            }
            let out = self.shard.poll_output();
            if let Some(h) = self.shard_hook {
                h(false);
            }
            match out {
                Output::Timeout(t) => {
                    self.shard_timeout = t;
                    break;
                }
                Output::Transmit(t) if t.transport == crate::Transport::Tcp => {
                    self.tcp_transmits += 1
                }
                Output::Transmit(t) => self.net.send(
                    self.now,
                    Packet {
                        source: self.server,
                        destination: t.destination,
                        contents: t.contents,
                    },
                ),
                Output::Event(e) => {
                    self.events.push((self.now, e.clone()));
                    self.route(e);
                }
                Output::Relay(r) => self.relayed.push(r),
            }
        }
    }

    /// Play the control plane: hand SDP to the client it is for.
    fn route(&mut self, e: Event) {
        let find = |clients: &mut Vec<Option<SimClient>>, id: ParticipantId| {
            clients
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.id == id))
        };
        match e {
            Event::PublishAnswer { participant, sdp } => {
                if let Some(i) = find(&mut self.clients, participant) {
                    if let Some(c) = self.clients[i].as_mut() {
                        // A WHEP viewer's answer is for its subscriber connection.
                        if !c.accept_recv_answer(&sdp) {
                            c.accept_publish_answer(&sdp);
                        }
                    }
                    self.drain_client(i);
                }
            }
            Event::SubscribeOffer {
                participant,
                sdp,
                tracks,
            } => {
                if let Some(i) = find(&mut self.clients, participant) {
                    let answer = self.clients[i]
                        .as_mut()
                        .and_then(|c| c.accept_subscribe_offer(&sdp, tracks));
                    self.drain_client(i);
                    if let Some(sdp) = answer {
                        self.shard_input(
                            self.now,
                            Input::Command(Command::SubscribeAnswer { participant, sdp }),
                        );
                        // drained by the caller's loop
                    }
                }
            }
            // Dynacast: the publisher applies it, as the web client does.
            Event::PublisherLayers {
                participant,
                mid,
                layers,
                ..
            } if self.dynacast => {
                if let Some(i) = find(&mut self.clients, participant) {
                    let layers: Vec<(String, bool)> =
                        layers.into_iter().map(|l| (l.rid, l.active)).collect();
                    if let Some(c) = self.clients[i].as_mut() {
                        c.set_layers_active(&mid, &layers);
                    }
                }
            }
            _ => {}
        }
    }

    /// Events of one kind, for assertions.
    pub fn events_matching(&self, f: impl Fn(&Event) -> bool) -> Vec<&Event> {
        self.events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| f(e))
            .collect()
    }
}

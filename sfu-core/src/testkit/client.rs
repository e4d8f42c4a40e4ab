//! A simulated participant: two str0m peer connections (publisher and subscriber, as the
//! browser client does, see ADR 0001) in RTP mode, sending synthetic Opus-sized audio and
//! VP8 video with valid payload descriptors, and recording what it receives.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::distributions::Alphanumeric;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceCreds, Rtc, RtcConfig};

use super::media::{
    audio_payload, l1t3, packetize, read_stamp, video_payload, LayerSpec, Stamp, KEYFRAME_FACTOR,
};
use crate::api::OfferedTrack;
use crate::ids::{ParticipantId, TrackId, TrackKind};
use crate::keyframe::starts_keyframe;

/// What a simulated client publishes and receives.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub audio: bool,
    /// Video encodings, lowest first; empty for no video; several = simulcast (with rids).
    pub video: Vec<LayerSpec>,
    pub subscribe: bool,
    /// A periodic keyframe besides those asked for by PLI/FIR.
    pub keyframe_every: Duration,
    /// Video codec: VP8, H.264 or VP9 (payloads with valid descriptors / NAL headers).
    pub codec: Codec,
    /// RFC 6464 level of the synthetic audio, dBov (0 loudest, −127 silent).
    pub audio_level: i8,
    /// VP8 temporal layers per encoding: 1 (none) or 3 (L1T3, as browsers send).
    pub temporal_layers: u8,
    /// It takes a stream per track, as LiveKit's SDKs do ([`crate::Command::Join`]).
    pub track_streams: bool,
    /// It receives every track unless it turns one down (false: only those it asks for).
    pub auto_subscribe: bool,
}

impl ClientSpec {
    /// Audio and one VP8 stream of 500 kbps at 30 fps, subscribing to everyone.
    pub fn av() -> Self {
        Self {
            audio: true,
            video: vec![LayerSpec {
                rid: None,
                kbps: 500,
                fps: 30.0,
            }],
            subscribe: true,
            keyframe_every: Duration::from_secs(10),
            codec: Codec::Vp8,
            audio_level: -30,
            temporal_layers: 1,
            track_streams: false,
            auto_subscribe: true,
        }
    }

    /// Audio and three simulcast layers q/h/f at 150/500/1,700 kbps and 7.5/15/30 fps.
    pub fn simulcast() -> Self {
        Self::simulcast_with([150, 500, 1_700], [7.5, 15.0, 30.0])
    }

    pub fn simulcast_with(kbps: [u32; 3], fps: [f32; 3]) -> Self {
        let video = ["q", "h", "f"]
            .iter()
            .zip(kbps.iter().zip(fps.iter()))
            .map(|(r, (k, f))| LayerSpec {
                rid: Some(r.to_string()),
                kbps: *k,
                fps: *f,
            })
            .collect();
        Self {
            video,
            ..Self::av()
        }
    }

    pub fn audio_only() -> Self {
        Self {
            video: vec![],
            ..Self::av()
        }
    }

    /// Subscribes only.
    pub fn viewer() -> Self {
        Self {
            audio: false,
            video: vec![],
            ..Self::av()
        }
    }

    /// The same, with its audio at `dbov` (who speaks: −20 loud, −90 quiet).
    pub fn speaking(self, dbov: i8) -> Self {
        Self {
            audio_level: dbov,
            ..self
        }
    }

    pub fn publishes(&self) -> bool {
        self.audio || !self.video.is_empty()
    }
}

/// What arrived on one subscriber m-line.
#[derive(Debug, Default, Clone)]
pub struct RecvStream {
    pub kind: Option<TrackKind>,
    pub publisher: Option<ParticipantId>,
    pub track: Option<TrackId>,
    pub packets: u64,
    pub bytes: u64,
    pub keyframes: u64,
    pub seqs: BTreeSet<u64>,
    pub ssrcs: BTreeSet<u32>,
    pub first_at: Option<Instant>,
    pub last_at: Option<Instant>,
    pub picture_ids: Vec<u16>,
    pub codec: Option<Codec>,
    /// One-way latencies (µs) of stamped packets not yet taken by the reader.
    pub latencies_us: Vec<u64>,
    /// Packets per publisher layer index (255 = audio).
    pub layers: BTreeMap<u8, u64>,
    /// Layers in the order they were received, each run once: `[1, 2]` = h, then f.
    pub layer_runs: Vec<(u8, Instant)>,
    /// Arrival time of each video packet (for frame-gap checks).
    pub video_arrivals: Vec<Instant>,
    /// Sequence number of each video packet, in arrival order (parallel to the above).
    pub video_seqs: Vec<u64>,
    /// VP8 frames received (first packets): arrival time and temporal layer, if marked.
    pub frames: Vec<(Instant, Option<u8>)>,
}

impl RecvStream {
    /// The longest time between two video packets arriving within [from, to].
    pub fn max_video_gap(&self, from: Instant, to: Instant) -> Duration {
        self.video_arrivals
            .iter()
            .filter(|t| **t >= from && **t <= to)
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| w[1].saturating_duration_since(*w[0]))
            .max()
            .unwrap_or(Duration::MAX)
    }

    /// Sequence numbers missing among the video packets sent after `t`: from the first
    /// that arrived after `t` to the last received.
    pub fn video_gaps_after(&self, t: Instant) -> u64 {
        let Some(i) = self.video_arrivals.iter().position(|a| *a >= t) else {
            return 0;
        };
        let first = self.video_seqs[i..].iter().min().copied().unwrap_or(0);
        let seen: std::collections::BTreeSet<u64> = self
            .video_seqs
            .iter()
            .copied()
            .filter(|s| *s >= first)
            .collect();
        match (seen.first(), seen.last()) {
            (Some(a), Some(b)) => (b - a + 1) - seen.len() as u64,
            _ => 0,
        }
    }

    /// VP8 frames per second received within [from, to].
    pub fn fps(&self, from: Instant, to: Instant) -> f64 {
        let n = self
            .frames
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .count();
        n as f64 / to.saturating_duration_since(from).as_secs_f64().max(1e-3)
    }

    /// The layer received at `t` (the last run started at or before `t`).
    pub fn layer_at(&self, t: Instant) -> Option<u8> {
        self.layer_runs
            .iter()
            .take_while(|(_, at)| *at <= t)
            .last()
            .map(|(l, _)| *l)
    }

    /// Sequence numbers missing between the first and the last received.
    pub fn gaps(&self) -> u64 {
        match (self.seqs.first(), self.seqs.last()) {
            (Some(a), Some(b)) => (b - a + 1) - self.seqs.len() as u64,
            _ => 0,
        }
    }
}

pub(crate) struct ClientPc {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub timeout: Instant,
    pub pending: Option<SdpPendingOffer>,
}

impl ClientPc {
    /// `video`: the one video codec to offer, or None to accept all we know.
    fn new(now: Instant, addr: SocketAddr, rng: &mut ChaCha8Rng, video: Option<Codec>) -> Self {
        let ufrag: String = (0..8).map(|_| rng.sample(Alphanumeric) as char).collect();
        let pass: String = (0..24).map(|_| rng.sample(Alphanumeric) as char).collect();
        let all = video.is_none();
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .set_local_ice_credentials(IceCreds { ufrag, pass })
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(all || video == Some(Codec::Vp8))
            .enable_h264(all || video == Some(Codec::H264))
            .enable_vp9(all || video == Some(Codec::Vp9))
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(now);
        if let Ok(c) = Candidate::host(addr, "udp") {
            rtc.add_local_candidate(c);
        }
        Self {
            rtc,
            addr,
            timeout: now,
            pending: None,
        }
    }
}

struct VideoOut {
    mid: Mid,
    rid: Option<Rid>,
    layer: u8,
    spec: LayerSpec,
    next_frame: Instant,
    seq: u64,
    ts: u32,
    pic: u16,
    keyframe_due: bool,
    /// Encoding on (dynacast may switch it off, as `setParameters` does in browsers).
    active: bool,
    /// Temporal layers: the frame count at the last keyframe (cycles restart there), and
    /// the TL0PICIDX of the last T0 frame.
    cycle_start: u64,
    tl0: u8,
    bytes_sent: u64,
    frames_sent: u64,
}

/// One simulated participant. Its fields are what tests read.
pub struct SimClient {
    pub id: ParticipantId,
    pub spec: ClientSpec,
    pub(crate) publisher: Option<ClientPc>,
    pub(crate) subscriber: Option<ClientPc>,
    audio: Option<(Mid, u64, u32)>,
    video: Vec<VideoOut>,
    next_audio: Instant,
    last_keyframe: Instant,
    /// Origin of the shared clock that stamps and latencies are measured on.
    origin: Instant,
    /// m-line → stream received on it.
    pub received: BTreeMap<String, RecvStream>,
    /// The latest track map from the server's offers.
    pub offered: Vec<OfferedTrack>,
    pub offers_received: u32,
    /// The SDP the server sent this client, in order (subscribe offers, WHEP answers).
    pub sdps_received: Vec<String>,
    pub keyframe_requests_received: u32,
    pub connected: bool,
    /// NACKs this client's subscriber connection sent, per (mid, rid) (cumulative).
    nacks_sent: BTreeMap<(String, Option<String>), u64>,
    /// NACKs its publisher connection received from the server, per (mid, rid).
    nacks_received: BTreeMap<(String, Option<String>), u64>,
    /// Datagrams produced and not yet handed to the network: (source, destination, bytes).
    outbox: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl SimClient {
    /// `origin` is the clock origin shared by every client whose latencies are compared.
    pub fn new(
        now: Instant,
        origin: Instant,
        id: ParticipantId,
        spec: ClientSpec,
        pub_addr: SocketAddr,
        sub_addr: SocketAddr,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let publishes = spec.publishes();
        Self {
            id,
            publisher: publishes.then(|| ClientPc::new(now, pub_addr, rng, Some(spec.codec))),
            subscriber: spec
                .subscribe
                .then(|| ClientPc::new(now, sub_addr, rng, None)),
            spec,
            audio: None,
            video: Vec::new(),
            next_audio: now,
            last_keyframe: now,
            origin,
            received: BTreeMap::new(),
            offered: Vec::new(),
            offers_received: 0,
            sdps_received: Vec::new(),
            keyframe_requests_received: 0,
            connected: false,
            outbox: Vec::new(),
            nacks_sent: BTreeMap::new(),
            nacks_received: BTreeMap::new(),
        }
    }

    /// The publisher offer (audio and video m-lines as the spec says).
    pub fn make_offer(&mut self) -> Option<String> {
        let pc = self.publisher.as_mut()?;
        let mut api = pc.rtc.sdp_api();
        if self.spec.audio {
            let mid = api.add_media(
                MediaKind::Audio,
                Direction::SendOnly,
                Some("s".into()),
                Some("a".into()),
                None,
            );
            self.audio = Some((mid, 1, 0));
        }
        let layers = self.spec.video.clone();
        if !layers.is_empty() {
            let simulcast = (layers.len() > 1).then(|| {
                let mut sc = Simulcast::new();
                for l in &layers {
                    sc.add_send_layer(SimulcastLayer::new(l.rid.as_deref().unwrap_or("")));
                }
                sc
            });
            let mid = api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some("s".into()),
                Some("v".into()),
                simulcast,
            );
            for (i, l) in layers.into_iter().enumerate() {
                let rid = if self.spec.video.len() > 1 {
                    l.rid.as_deref().map(Rid::from)
                } else {
                    None
                };
                self.video.push(VideoOut {
                    mid,
                    rid,
                    layer: i as u8,
                    spec: l,
                    next_frame: self.next_audio,
                    seq: 1,
                    ts: 0,
                    pic: 100 * i as u16,
                    keyframe_due: true,
                    active: true,
                    cycle_start: 0,
                    tl0: 0,
                    bytes_sent: 0,
                    frames_sent: 0,
                });
            }
        }
        let (offer, pending) = api.apply()?;
        pc.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    pub fn accept_publish_answer(&mut self, sdp: &str) {
        let (Some(pc), Ok(answer)) = (self.publisher.as_mut(), SdpAnswer::from_sdp_string(sdp))
        else {
            return;
        };
        if let Some(pending) = pc.pending.take() {
            pc.rtc
                .sdp_api()
                .accept_answer(pending, answer)
                .expect("publish answer accepted");
        }
    }

    /// WHEP: a receive-only offer (one audio, one video m-line) on the subscriber
    /// connection; received media is attributed to `publisher` in `received`.
    pub fn make_recv_offer(&mut self, publisher: ParticipantId) -> Option<String> {
        let pc = self.subscriber.as_mut()?;
        let mut api = pc.rtc.sdp_api();
        // Video first, as browsers' WHEP players offer it.
        let v = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let a = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply()?;
        pc.pending = Some(pending);
        self.offered = vec![
            OfferedTrack {
                mid: a.to_string(),
                track: TrackId(0),
                publisher,
                kind: TrackKind::Audio,
            },
            OfferedTrack {
                mid: v.to_string(),
                track: TrackId(0),
                publisher,
                kind: TrackKind::Video,
            },
        ];
        Some(offer.to_sdp_string())
    }

    pub fn accept_recv_answer(&mut self, sdp: &str) -> bool {
        let (Some(pc), Ok(answer)) = (self.subscriber.as_mut(), SdpAnswer::from_sdp_string(sdp))
        else {
            return false;
        };
        let Some(pending) = pc.pending.take() else {
            return false;
        };
        self.sdps_received.push(sdp.to_string());
        pc.rtc.sdp_api().accept_answer(pending, answer).is_ok()
    }

    pub fn accept_subscribe_offer(
        &mut self,
        sdp: &str,
        tracks: Vec<OfferedTrack>,
    ) -> Option<String> {
        self.offers_received += 1;
        self.sdps_received.push(sdp.to_string());
        self.offered = tracks;
        let pc = self.subscriber.as_mut()?;
        let offer = SdpOffer::from_sdp_string(sdp).ok()?;
        let answer = pc.rtc.sdp_api().accept_offer(offer).ok()?;
        Some(answer.to_sdp_string())
    }

    pub(crate) fn pcs_mut(&mut self) -> impl Iterator<Item = &mut ClientPc> {
        self.publisher.iter_mut().chain(self.subscriber.iter_mut())
    }

    pub fn owns(&self, addr: SocketAddr) -> bool {
        self.publisher.as_ref().is_some_and(|p| p.addr == addr)
            || self.subscriber.as_ref().is_some_and(|p| p.addr == addr)
    }

    /// When this client next wants to act.
    pub fn next_wake(&self) -> Option<Instant> {
        let media = if self.connected {
            let audio = self.audio.as_ref().map(|_| self.next_audio);
            self.video.iter().map(|v| v.next_frame).chain(audio).min()
        } else {
            None
        };
        self.publisher
            .iter()
            .chain(self.subscriber.iter())
            .map(|p| p.timeout)
            .chain(media)
            .min()
    }

    /// Deliver one datagram to the connection owning `dest`.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, dest: SocketAddr, data: &[u8]) {
        for pc in self.pcs_mut() {
            if pc.addr == dest {
                if let Ok(r) = Receive::new(Protocol::Udp, source, dest, data) {
                    let _ = pc.rtc.handle_input(str0m::Input::Receive(now, r));
                }
            }
        }
        self.pump(now);
    }

    pub fn timeout(&mut self, now: Instant) {
        for pc in self.pcs_mut() {
            if pc.timeout <= now {
                let _ = pc.rtc.handle_input(str0m::Input::Timeout(now));
            }
        }
        self.pump(now);
    }

    fn stamp(&self, now: Instant, layer: u8) -> Stamp {
        Stamp {
            sent_us: now.saturating_duration_since(self.origin).as_micros() as u64,
            layer,
        }
    }

    /// Write the audio packets and video frames due at `now`.
    pub fn produce(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        if self.audio.is_some() && now >= self.next_audio {
            let stamp = self.stamp(now, 255);
            let level = self.spec.audio_level;
            let (Some(pc), Some((mid, seq, ts))) = (self.publisher.as_mut(), self.audio.as_mut())
            else {
                return;
            };
            let pt = pc
                .rtc
                .codec_config()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt());
            if let (Some(pt), Some(tx)) = (pt, pc.rtc.direct_api().stream_tx_by_mid(*mid, None)) {
                let ext = ExtensionValues {
                    audio_level: Some(level),
                    voice_activity: Some(level > -50),
                    ..Default::default()
                };
                tx.write_rtp(
                    RtpWrite::new(pt, SeqNo::from(*seq), *ts, now, audio_payload(stamp))
                        .ext_vals(ext),
                );
                *seq += 1;
                *ts = ts.wrapping_add(960);
            }
            self.next_audio += Duration::from_millis(20);
            self.pump(now);
        }
        let periodic =
            now.saturating_duration_since(self.last_keyframe) >= self.spec.keyframe_every;
        if periodic {
            self.last_keyframe = now;
        }
        let codec = self.spec.codec;
        let temporal_layers = self.spec.temporal_layers;
        for i in 0..self.video.len() {
            if now < self.video[i].next_frame {
                continue;
            }
            let stamp = self.stamp(now, self.video[i].layer);
            let Some(pc) = self.publisher.as_mut() else {
                return;
            };
            let v = &mut self.video[i];
            if !v.active {
                v.next_frame += Duration::from_secs_f64(1.0 / v.spec.fps.max(0.1) as f64);
                continue;
            }
            if periodic {
                v.keyframe_due = true;
            }
            let pt = pc
                .rtc
                .codec_config()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt());
            let mut api = pc.rtc.direct_api();
            if let (Some(pt), Some(tx)) = (pt, api.stream_tx_by_mid(v.mid, v.rid)) {
                let key = std::mem::take(&mut v.keyframe_due);
                let temporal = (codec == Codec::Vp8 && temporal_layers == 3).then(|| {
                    // A keyframe starts a new cycle (it is a T0 frame).
                    if key {
                        v.cycle_start = v.frames_sent;
                    }
                    let mut t = l1t3(v.frames_sent - v.cycle_start);
                    if t.tid == 0 {
                        v.tl0 = v.tl0.wrapping_add(1);
                    }
                    t.tl0 = v.tl0;
                    t
                });
                let bytes = v.spec.frame_bytes() * if key { KEYFRAME_FACTOR } else { 1 };
                let (count, size) = packetize(bytes);
                // An H.264 keyframe opens with an extra STAP-A (SPS, PPS).
                let count = if key && codec == Codec::H264 {
                    count + 1
                } else {
                    count
                };
                for k in 0..count {
                    let p = video_payload(codec, key, k, count, v.pic, size, stamp, temporal);
                    v.bytes_sent += p.len() as u64;
                    let last = k + 1 == count;
                    tx.write_rtp(
                        RtpWrite::new(pt, SeqNo::from(v.seq), v.ts, now, p)
                            .marker(last)
                            .nackable(true),
                    );
                    v.seq += 1;
                }
            }
            let step = Duration::from_secs_f64(1.0 / v.spec.fps.max(0.1) as f64);
            v.ts = v.ts.wrapping_add((90_000.0 * step.as_secs_f64()) as u32);
            v.pic = (v.pic + 1) & 0x7fff;
            v.frames_sent += 1;
            v.next_frame += step;
            self.pump(now);
        }
    }

    /// ICE restart of the publisher connection onto a new local address (the network
    /// changed): new local credentials, the old host candidate withdrawn, one for
    /// `new_addr` added. Returns the new (ufrag, password) to signal; apply the server's
    /// with [`SimClient::set_publisher_remote_ice`].
    pub fn restart_publisher_ice(&mut self, new_addr: SocketAddr) -> Option<(String, String)> {
        let pc = self.publisher.as_mut()?;
        let creds = IceCreds::new();
        let old = Candidate::host(pc.addr, "udp").ok()?;
        let mut api = pc.rtc.direct_api();
        api.invalidate_candidate(&old);
        api.set_local_ice_credentials(creds.clone());
        pc.rtc
            .add_local_candidate(Candidate::host(new_addr, "udp").ok()?);
        pc.addr = new_addr;
        Some((creds.ufrag, creds.pass))
    }

    /// The server's credentials after an ICE restart of the publisher connection.
    pub fn set_publisher_remote_ice(&mut self, ufrag: &str, pwd: &str) {
        if let Some(pc) = self.publisher.as_mut() {
            pc.rtc.direct_api().set_remote_ice_credentials(IceCreds {
                ufrag: ufrag.into(),
                pass: pwd.into(),
            });
        }
    }

    /// The client's (publisher, subscriber) connection addresses.
    pub fn addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (
            self.publisher.as_ref().map(|p| p.addr),
            self.subscriber.as_ref().map(|p| p.addr),
        )
    }

    /// Switch simulcast encodings (by rid) of the video m-line `mid` off or on, as a
    /// browser's `setParameters` does: an encoding switched on starts with a keyframe.
    pub fn set_layers_active(&mut self, mid: &str, layers: &[(String, bool)]) {
        for v in self.video.iter_mut().filter(|v| v.mid.to_string() == mid) {
            let Some(rid) = v.rid else { continue };
            if let Some((_, on)) = layers.iter().find(|(r, _)| r.as_str() == &*rid) {
                if *on && !v.active {
                    v.keyframe_due = true;
                }
                v.active = *on;
            }
        }
    }

    /// Hand every datagram produced so far to `send` as (source, destination, bytes).
    pub fn drain(&mut self, now: Instant, mut send: impl FnMut(SocketAddr, SocketAddr, Vec<u8>)) {
        self.pump(now);
        for (s, d, b) in self.outbox.drain(..) {
            send(s, d, b);
        }
    }

    /// Poll both connections until they want a timeout (str0m's rule: after every change);
    /// datagrams go to the outbox, events are handled.
    fn pump(&mut self, now: Instant) {
        let mut events = Vec::new();
        let outbox = &mut self.outbox;
        for (is_pub, pc) in [
            (true, self.publisher.as_mut()),
            (false, self.subscriber.as_mut()),
        ] {
            let Some(pc) = pc else { continue };
            loop {
                match pc.rtc.poll_output() {
                    Ok(str0m::Output::Timeout(t)) => {
                        pc.timeout = t;
                        break;
                    }
                    Ok(str0m::Output::Transmit(t)) => {
                        outbox.push((t.source, t.destination, t.contents.into()))
                    }
                    Ok(str0m::Output::Event(e)) => events.push((is_pub, e)),
                    Err(_) => {
                        pc.timeout = now + Duration::from_secs(3600);
                        break;
                    }
                }
            }
        }
        for (is_pub, e) in events {
            self.on_event(now, is_pub, e);
        }
    }

    fn on_event(&mut self, now: Instant, is_pub: bool, e: Event) {
        match e {
            Event::Connected if is_pub => {
                self.connected = true;
                self.next_audio = now;
                for v in &mut self.video {
                    v.next_frame = now;
                }
            }
            Event::KeyframeRequest(req) if is_pub => {
                self.keyframe_requests_received += 1;
                for v in &mut self.video {
                    if v.mid == req.mid && (req.rid.is_none() || v.rid == req.rid) {
                        v.keyframe_due = true;
                    }
                }
            }
            Event::MediaIngressStats(st) if !is_pub => {
                self.nacks_sent.insert(
                    (st.mid.to_string(), st.rid.map(|r| r.to_string())),
                    st.nacks,
                );
            }
            Event::MediaEgressStats(st) if is_pub => {
                self.nacks_received.insert(
                    (st.mid.to_string(), st.rid.map(|r| r.to_string())),
                    st.nacks,
                );
            }
            Event::RtpPacket(p) if !is_pub => {
                let mid = self.subscriber.as_mut().and_then(|pc| {
                    pc.rtc
                        .direct_api()
                        .stream_rx(&p.header.ssrc)
                        .map(|s| s.mid())
                });
                let Some(mid) = mid else { return };
                let key = mid.to_string();
                let offered = self.offered.iter().find(|t| t.mid == key).cloned();
                let codec = self.subscriber.as_ref().and_then(|pc| {
                    pc.rtc
                        .codec_config()
                        .find(|c| c.pt() == p.header.payload_type)
                        .map(|c| c.spec().codec)
                });
                let now_us = now.saturating_duration_since(self.origin).as_micros() as u64;
                let r = self.received.entry(key).or_default();
                r.codec = codec;
                if let Some(o) = offered {
                    r.kind = Some(o.kind);
                    r.publisher = Some(o.publisher);
                    r.track = Some(o.track);
                }
                r.packets += 1;
                r.bytes += p.payload.len() as u64;
                r.seqs.insert(*p.seq_no);
                r.ssrcs.insert(*p.header.ssrc);
                r.first_at.get_or_insert(now);
                r.last_at = Some(now);
                if let Some(st) = codec.and_then(|c| read_stamp(c, &p.payload)) {
                    r.latencies_us.push(now_us.saturating_sub(st.sent_us));
                    *r.layers.entry(st.layer).or_default() += 1;
                    // Only new packets (retransmissions of older ones come late) mark a run.
                    let newest = r.seqs.last().is_none_or(|m| *p.seq_no >= *m);
                    if newest && r.layer_runs.last().is_none_or(|(l, _)| *l != st.layer) {
                        r.layer_runs.push((st.layer, now));
                    }
                }
                if r.kind == Some(TrackKind::Video) {
                    r.video_arrivals.push(now);
                    r.video_seqs.push(*p.seq_no);
                    if codec.is_some_and(|c| starts_keyframe(c, &p.payload)) {
                        r.keyframes += 1;
                    }
                    let vp8 = codec == Some(Codec::Vp8);
                    if let Some(pic) = str0m::rtp::Vp8Descriptor::parse(&p.payload)
                        .ok()
                        .and_then(|d| d.picture_id())
                        .filter(|_| vp8)
                    {
                        if p.payload[0] & 0x10 != 0 {
                            r.picture_ids.push(pic);
                            r.frames
                                .push((now, crate::vp8::vp8_temporal(&p.payload).map(|t| t.0)));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// NACKs sent by the subscriber connection and received by the publisher connection
    /// (from str0m's 1-second stats, so up to a second behind).
    pub fn nacks(&self) -> (u64, u64) {
        (
            self.nacks_sent.values().sum(),
            self.nacks_received.values().sum(),
        )
    }

    /// Per video layer (lowest first): payload bytes and frames written so far.
    pub fn video_sent(&self) -> Vec<(u64, u64)> {
        self.video
            .iter()
            .map(|v| (v.bytes_sent, v.frames_sent))
            .collect()
    }

    /// The first track of `kind` offered to this subscriber (panics when there is none).
    pub fn offered_track(&self, kind: TrackKind) -> TrackId {
        self.offered
            .iter()
            .find(|t| t.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} track offered: {:?}", self.offered))
            .track
    }

    /// The stream received from `publisher` of `kind`, if any.
    pub fn stream_from(&self, publisher: ParticipantId, kind: TrackKind) -> Option<&RecvStream> {
        self.received
            .values()
            .find(|r| r.publisher == Some(publisher) && r.kind == Some(kind))
    }

    /// Restart the video encoder with fresh SSRCs (as a browser does on a new track):
    /// the sequence numbers of the new streams start anywhere.
    pub fn restart_video(&mut self, new_seq_base: u64) {
        let Some(pc) = self.publisher.as_mut() else {
            return;
        };
        for v in &mut self.video {
            let mut api = pc.rtc.direct_api();
            let old = api
                .stream_tx_by_mid(v.mid, v.rid)
                .map(|s| (s.ssrc(), s.rtx()));
            if let Some((ssrc, rtx)) = old {
                let new_ssrc = (*ssrc).wrapping_add(7_777).into();
                let new_rtx = rtx.map(|r| (*r).wrapping_add(7_777).into());
                api.reset_stream_tx(v.mid, v.rid, new_ssrc, new_rtx);
            }
            v.seq = new_seq_base;
            v.ts = v.ts.wrapping_add(1_234_567);
            v.keyframe_due = true;
        }
    }
}

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

use crate::api::OfferedTrack;
use crate::ids::{ParticipantId, TrackId, TrackKind};
use crate::keyframe::starts_keyframe;

/// What a simulated client publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSpec {
    None,
    /// One VP8 stream.
    Single,
    /// VP8 simulcast with these rids, lowest first (sizes scale 1, 2, 4…).
    Simulcast(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub audio: bool,
    pub video: VideoSpec,
    pub subscribe: bool,
    /// Video frames per second and packets per delta frame (keyframes are 4× bigger).
    pub fps: u32,
    pub packets_per_frame: u32,
    /// A periodic keyframe besides those asked for by PLI/FIR.
    pub keyframe_every: Duration,
    /// Video codec: VP8, H.264 or VP9 (payloads with valid descriptors / NAL headers).
    pub codec: Codec,
}

impl ClientSpec {
    /// Audio and single-stream VP8 video, subscribing to everyone.
    pub fn av() -> Self {
        Self {
            audio: true,
            video: VideoSpec::Single,
            subscribe: true,
            fps: 30,
            packets_per_frame: 2,
            keyframe_every: Duration::from_secs(10),
            codec: Codec::Vp8,
        }
    }

    pub fn simulcast() -> Self {
        Self { video: VideoSpec::Simulcast(vec!["q".into(), "h".into(), "f".into()]), ..Self::av() }
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
}

impl RecvStream {
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
            .build(now);
        if let Ok(c) = Candidate::host(addr, "udp") {
            rtc.add_local_candidate(c);
        }
        Self { rtc, addr, timeout: now, pending: None }
    }
}

struct VideoOut {
    mid: Mid,
    rid: Option<Rid>,
    scale: u32,
    seq: u64,
    ts: u32,
    pic: u16,
    keyframe_due: bool,
}

/// A synthetic but well-formed video payload: VP8 (RFC 7741 descriptor + header byte),
/// H.264 (RFC 6184: STAP-A with SPS/PPS then FU-A IDR on keyframes, FU-A slices
/// otherwise) or VP9 (RFC 9628 descriptor with picture id).
fn video_payload(codec: Codec, key: bool, index: u32, last: bool, pic: u16, size: usize) -> Vec<u8> {
    let first = index == 0;
    let mut p = Vec::with_capacity(size);
    match codec {
        Codec::H264 if key && first => {
            p.extend_from_slice(&[0x78, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 0, 3, 0x68, 0xce, 0x3c]);
            return p;
        }
        Codec::H264 => {
            // On keyframes packet 0 is the STAP-A and the IDR's FU-A starts at packet 1.
            let (nal, start) = if key { (5, index == 1) } else { (1, first) };
            p.push(0x60 | 28); // FU-A indicator, NRI=3
            p.push(nal | if start { 0x80 } else { 0 } | if last { 0x40 } else { 0 });
        }
        Codec::Vp9 => {
            let b0 = 0x80 | if key { 0 } else { 0x40 } | if first { 0x08 } else { 0 } | if last { 0x04 } else { 0 };
            p.extend_from_slice(&[b0, 0x80 | (pic >> 8) as u8, pic as u8]);
        }
        _ => {
            p.push(if first { 0x90 } else { 0x80 }); // X=1, S=1 on a frame's first packet
            p.push(0x80); // I: picture id present
            p.push(0x80 | (pic >> 8) as u8); // 15-bit picture id
            p.push(pic as u8);
            p.push(if key { 0x10 } else { 0x11 }); // VP8 header: P=0 keyframe
        }
    }
    p.resize(size, 0xAB);
    p
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
    next_video: Instant,
    last_keyframe: Instant,
    /// m-line → stream received on it.
    pub received: BTreeMap<String, RecvStream>,
    /// The latest track map from the server's offers.
    pub offered: Vec<OfferedTrack>,
    pub offers_received: u32,
    pub keyframe_requests_received: u32,
    pub connected: bool,
    /// Datagrams produced and not yet handed to the network: (source, destination, bytes).
    outbox: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl SimClient {
    pub fn new(now: Instant, id: ParticipantId, spec: ClientSpec, pub_addr: SocketAddr, sub_addr: SocketAddr, rng: &mut ChaCha8Rng) -> Self {
        let publishes = spec.audio || spec.video != VideoSpec::None;
        Self {
            id,
            publisher: publishes.then(|| ClientPc::new(now, pub_addr, rng, Some(spec.codec))),
            subscriber: spec.subscribe.then(|| ClientPc::new(now, sub_addr, rng, None)),
            spec,
            audio: None,
            video: Vec::new(),
            next_audio: now,
            next_video: now,
            last_keyframe: now,
            received: BTreeMap::new(),
            offered: Vec::new(),
            offers_received: 0,
            keyframe_requests_received: 0,
            connected: false,
            outbox: Vec::new(),
        }
    }

    /// The publisher offer (audio and video m-lines as the spec says).
    pub fn make_offer(&mut self) -> Option<String> {
        let pc = self.publisher.as_mut()?;
        let mut api = pc.rtc.sdp_api();
        if self.spec.audio {
            let mid = api.add_media(MediaKind::Audio, Direction::SendOnly, Some("s".into()), Some("a".into()), None);
            self.audio = Some((mid, 1, 0));
        }
        match &self.spec.video {
            VideoSpec::None => {}
            VideoSpec::Single => {
                let mid = api.add_media(MediaKind::Video, Direction::SendOnly, Some("s".into()), Some("v".into()), None);
                self.video.push(VideoOut { mid, rid: None, scale: 1, seq: 1, ts: 0, pic: 0, keyframe_due: true });
            }
            VideoSpec::Simulcast(rids) => {
                let mut sc = Simulcast::new();
                for r in rids {
                    sc.add_send_layer(SimulcastLayer::new(r));
                }
                let mid = api.add_media(MediaKind::Video, Direction::SendOnly, Some("s".into()), Some("v".into()), Some(sc));
                let n = rids.len() as u32;
                for (i, r) in rids.iter().enumerate() {
                    let scale = 1 << (n - 1 - i as u32);
                    self.video.push(VideoOut { mid, rid: Some(Rid::from(r.as_str())), scale, seq: 1, ts: 0, pic: 100 * i as u16, keyframe_due: true });
                }
            }
        }
        let (offer, pending) = api.apply()?;
        pc.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    pub fn accept_publish_answer(&mut self, sdp: &str) {
        let (Some(pc), Ok(answer)) = (self.publisher.as_mut(), SdpAnswer::from_sdp_string(sdp)) else { return };
        if let Some(pending) = pc.pending.take() {
            pc.rtc.sdp_api().accept_answer(pending, answer).expect("publish answer accepted");
        }
    }

    pub fn accept_subscribe_offer(&mut self, sdp: &str, tracks: Vec<OfferedTrack>) -> Option<String> {
        self.offers_received += 1;
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
        self.publisher.as_ref().is_some_and(|p| p.addr == addr) || self.subscriber.as_ref().is_some_and(|p| p.addr == addr)
    }

    /// When this client next wants to act.
    pub fn next_wake(&self) -> Option<Instant> {
        let media = self.connected.then(|| {
            let mut t = self.next_video.max(self.next_audio);
            if self.audio.is_some() {
                t = t.min(self.next_audio);
            }
            if !self.video.is_empty() {
                t = t.min(self.next_video);
            }
            t
        });
        self.publisher
            .iter()
            .chain(self.subscriber.iter())
            .map(|p| p.timeout)
            .chain(media.filter(|_| self.audio.is_some() || !self.video.is_empty()))
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

    /// Write audio/video due at `now`.
    pub fn produce(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let Some(pc) = self.publisher.as_mut() else { return };
        if let Some((mid, seq, ts)) = self.audio.as_mut() {
            if now >= self.next_audio {
                let pt = pc.rtc.codec_config().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt());
                if let (Some(pt), Some(tx)) = (pt, pc.rtc.direct_api().stream_tx_by_mid(*mid, None)) {
                    let ext = ExtensionValues { audio_level: Some(-30), voice_activity: Some(true), ..Default::default() };
                    tx.write_rtp(RtpWrite::new(pt, SeqNo::from(*seq), *ts, now, vec![0xF8; 80]).ext_vals(ext));
                    *seq += 1;
                    *ts = ts.wrapping_add(960);
                }
                self.next_audio += Duration::from_millis(20);
            }
        }
        self.pump(now);
        let Some(pc) = self.publisher.as_mut() else { return };
        if !self.video.is_empty() && now >= self.next_video {
            let periodic = now.saturating_duration_since(self.last_keyframe) >= self.spec.keyframe_every;
            if periodic {
                self.last_keyframe = now;
            }
            let codec = self.spec.codec;
            let pt = pc.rtc.codec_config().find(|p| p.spec().codec == codec).map(|p| p.pt());
            for v in &mut self.video {
                let Some(pt) = pt else { break };
                let mut api = pc.rtc.direct_api();
                let Some(tx) = api.stream_tx_by_mid(v.mid, v.rid) else { continue };
                let key = v.keyframe_due || periodic;
                v.keyframe_due = false;
                let per_frame = (self.spec.packets_per_frame * if key { 4 } else { 1 }).max(1);
                let size = (1_000 / v.scale as usize).max(120);
                for i in 0..per_frame {
                    let last = i + 1 == per_frame;
                    let p = video_payload(codec, key, i, last, v.pic, size);
                    tx.write_rtp(RtpWrite::new(pt, SeqNo::from(v.seq), v.ts, now, p).marker(last).nackable(true));
                    v.seq += 1;
                }
                v.ts = v.ts.wrapping_add(90_000 / self.spec.fps.max(1));
                v.pic = (v.pic + 1) & 0x7fff;
            }
            self.next_video += Duration::from_micros(1_000_000 / self.spec.fps.max(1) as u64);
        }
        self.pump(now);
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
        for (is_pub, pc) in [(true, self.publisher.as_mut()), (false, self.subscriber.as_mut())] {
            let Some(pc) = pc else { continue };
            loop {
                match pc.rtc.poll_output() {
                    Ok(str0m::Output::Timeout(t)) => {
                        pc.timeout = t;
                        break;
                    }
                    Ok(str0m::Output::Transmit(t)) => outbox.push((t.source, t.destination, t.contents.into())),
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
                self.next_video = now;
            }
            Event::KeyframeRequest(req) if is_pub => {
                self.keyframe_requests_received += 1;
                for v in &mut self.video {
                    if v.mid == req.mid && (req.rid.is_none() || v.rid == req.rid) {
                        v.keyframe_due = true;
                    }
                }
            }
            Event::RtpPacket(p) if !is_pub => {
                let mid = self
                    .subscriber
                    .as_mut()
                    .and_then(|pc| pc.rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid()));
                let Some(mid) = mid else { return };
                let key = mid.to_string();
                let offered = self.offered.iter().find(|t| t.mid == key).cloned();
                let codec = self
                    .subscriber
                    .as_ref()
                    .and_then(|pc| pc.rtc.codec_config().find(|c| c.pt() == p.header.payload_type).map(|c| c.spec().codec));
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
                if r.kind == Some(TrackKind::Video) {
                    if codec.is_some_and(|c| starts_keyframe(c, &p.payload)) {
                        r.keyframes += 1;
                    }
                    let vp8 = codec == Some(Codec::Vp8);
                    if let Some(pic) = str0m::rtp::Vp8Descriptor::parse(&p.payload).ok().and_then(|d| d.picture_id()).filter(|_| vp8) {
                        if p.payload[0] & 0x10 != 0 {
                            r.picture_ids.push(pic);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The stream received from `publisher` of `kind`, if any.
    pub fn stream_from(&self, publisher: ParticipantId, kind: TrackKind) -> Option<&RecvStream> {
        self.received.values().find(|r| r.publisher == Some(publisher) && r.kind == Some(kind))
    }

    /// Write an in-band marker: the next frame of every video layer is a keyframe.
    pub fn force_keyframe(&mut self) {
        for v in &mut self.video {
            v.keyframe_due = true;
        }
    }

    /// Restart the video encoder with fresh SSRCs (as a browser does on a new track):
    /// the sequence numbers of the new streams start anywhere.
    pub fn restart_video(&mut self, new_seq_base: u64) {
        let Some(pc) = self.publisher.as_mut() else { return };
        for v in &mut self.video {
            let mut api = pc.rtc.direct_api();
            let old = api.stream_tx_by_mid(v.mid, v.rid).map(|s| (s.ssrc(), s.rtx()));
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

//! A phone's way into its room: two str0m connections to the room's media worker, as a
//! browser has (ADR 0001) — a publisher sending the phone's voice as Opus with RFC 6464
//! levels (and a video endpoint's video, as it sent it), and a subscriber receiving the
//! room's audio; for a video endpoint a third, the speaker view: a WHEP-style connection
//! whose one video m-line follows the room's active speaker. Sans-IO like str0m: datagrams
//! and time in, datagrams and received audio and video out. Signalling (offers and
//! answers) goes through the hub, by the caller.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use thiserror::Error;

use crate::video::VideoPacket;
use crate::video_sdp::VideoCodec;

/// One Opus packet received from the room: whose stream, its order and level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAudio {
    pub ssrc: u32,
    pub seq: u16,
    /// RFC 6464 level (0 loudest … 127 silence), when the packet carries one.
    pub level: Option<u8>,
    pub payload: Vec<u8>,
}

/// A datagram to send from one of the leg's sockets (`from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Debug, Error)]
pub enum LegError {
    #[error("bad SDP from the media plane: {0}")]
    Sdp(String),
    #[error("no offer is pending")]
    NoPendingOffer,
}

/// Samples per 20 ms at Opus's RTP clock (48 kHz).
const OPUS_FRAME_TICKS: u32 = 960;

pub struct RoomLeg {
    /// The sockets of the connections: one each, as a browser has, since the media
    /// plane tells connections apart by their remote address.
    pub_local: SocketAddr,
    sub_local: SocketAddr,
    view_local: Option<SocketAddr>,
    publisher: Rtc,
    subscriber: Rtc,
    /// The speaker view (video endpoints only).
    viewer: Option<Rtc>,
    pending: Option<SdpPendingOffer>,
    view_pending: Option<SdpPendingOffer>,
    mic: Option<Mid>,
    camera: Option<Mid>,
    view_mid: Option<Mid>,
    /// The video endpoint's codec: what it publishes and what its speaker view receives.
    video_codec: Option<VideoCodec>,
    /// Its payload type toward the media plane, once the publisher offer is answered.
    camera_pt: Option<Pt>,
    seq: u64,
    ts: u32,
    /// The last extended sequence number of the endpoint's video written.
    video_seq: Option<u64>,
    published: bool,
    /// The media plane asked for a keyframe of the endpoint's video.
    keyframe_wanted: bool,
    /// When the connections next want their clocks advanced (set by every drain).
    next: Instant,
    out: Vec<Datagram>,
    audio: Vec<RoomAudio>,
    video: Vec<VideoPacket>,
}

/// A connection of the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Publisher,
    Subscriber,
    Viewer,
}

fn rtc(now: Instant, local: SocketAddr, video: Option<VideoCodec>) -> Rtc {
    let mut cfg = RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false);
    match video {
        Some(VideoCodec::Vp8) => cfg = cfg.enable_vp8(true),
        Some(VideoCodec::H264 {
            mode,
            profile_level_id,
        }) => cfg
            .codec_config()
            .add_h264(Pt::from(102), None, mode == 1, profile_level_id),
        None => {}
    }
    let mut rtc = cfg.build(now);
    if let Ok(c) = Candidate::host(local, "udp") {
        rtc.add_local_candidate(c);
    }
    rtc
}

/// The payload type a connection negotiated for `codec`.
fn video_pt(rtc: &Rtc, codec: VideoCodec) -> Option<Pt> {
    rtc.codec_config()
        .find(|p| match codec {
            VideoCodec::Vp8 => p.spec().codec == Codec::Vp8,
            VideoCodec::H264 { mode, .. } => {
                p.spec().codec == Codec::H264
                    && p.spec().format.packetization_mode.unwrap_or(0) == mode
            }
        })
        .map(|p| p.pt())
}

impl RoomLeg {
    /// `pub_local`, `sub_local`: the addresses of the leg's two UDP sockets (their host
    /// candidates), for the publisher and the subscriber connection; `video`: a video
    /// endpoint's codec and the address of the speaker view's socket.
    pub fn new(
        now: Instant,
        pub_local: SocketAddr,
        sub_local: SocketAddr,
        video: Option<(VideoCodec, SocketAddr)>,
    ) -> Self {
        let codec = video.map(|(c, _)| c);
        RoomLeg {
            pub_local,
            sub_local,
            view_local: video.map(|(_, a)| a),
            publisher: rtc(now, pub_local, codec),
            subscriber: rtc(now, sub_local, None),
            viewer: video.map(|(c, a)| rtc(now, a, Some(c))),
            pending: None,
            view_pending: None,
            mic: None,
            camera: None,
            view_mid: None,
            video_codec: codec,
            camera_pt: None,
            seq: 1,
            ts: 0,
            video_seq: None,
            published: false,
            keyframe_wanted: false,
            next: now,
            out: Vec::new(),
            audio: Vec::new(),
            video: Vec::new(),
        }
    }

    /// The publisher offer: one send-only Opus m-line, and a video endpoint's video.
    pub fn publish_offer(&mut self) -> Option<String> {
        let mut api = self.publisher.sdp_api();
        let mid = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("phone".into()),
            Some("voice".into()),
            None,
        );
        self.mic = Some(mid);
        if self.video_codec.is_some() {
            self.camera = Some(api.add_media(
                MediaKind::Video,
                Direction::SendOnly,
                Some("phone".into()),
                Some("camera".into()),
                None,
            ));
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    /// The mids of the published m-lines, for the hub's `sources` declaration.
    pub fn mic_mid(&self) -> Option<String> {
        self.mic.map(|m| m.to_string())
    }

    pub fn camera_mid(&self) -> Option<String> {
        self.camera.map(|m| m.to_string())
    }

    /// The speaker view's offer (WHEP-style: one receive-only video m-line in the
    /// endpoint's codec), for [`signaling::hub::Hub::whep_offer`].
    pub fn view_offer(&mut self) -> Option<String> {
        let viewer = self.viewer.as_mut()?;
        let mut api = viewer.sdp_api();
        self.view_mid =
            Some(api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None));
        let (offer, pending) = api.apply()?;
        self.view_pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    pub fn view_answer(&mut self, now: Instant, sdp: &str) -> Result<(), LegError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| LegError::Sdp(e.to_string()))?;
        let pending = self.view_pending.take().ok_or(LegError::NoPendingOffer)?;
        let viewer = self.viewer.as_mut().ok_or(LegError::NoPendingOffer)?;
        viewer
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| LegError::Sdp(e.to_string()))?;
        self.drain(now);
        Ok(())
    }

    pub fn publish_answer(&mut self, now: Instant, sdp: &str) -> Result<(), LegError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| LegError::Sdp(e.to_string()))?;
        let pending = self.pending.take().ok_or(LegError::NoPendingOffer)?;
        self.publisher
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| LegError::Sdp(e.to_string()))?;
        self.camera_pt = self.video_codec.and_then(|c| video_pt(&self.publisher, c));
        self.drain(now);
        Ok(())
    }

    /// The media plane's offer for the subscriber connection: our answer.
    pub fn subscribe_offer(&mut self, now: Instant, sdp: &str) -> Result<String, LegError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| LegError::Sdp(e.to_string()))?;
        let answer = self
            .subscriber
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| LegError::Sdp(e.to_string()))?;
        self.drain(now);
        Ok(answer.to_sdp_string())
    }

    /// Whether the publisher connection is up (DTLS done): audio can flow.
    pub fn publishing(&self) -> bool {
        self.published
    }

    /// Send one 20 ms Opus frame of the phone's voice with its RFC 6464 level.
    pub fn write_audio(&mut self, now: Instant, opus: &[u8], level: u8) {
        let Some(mid) = self.mic else { return };
        let pt = self
            .publisher
            .codec_config()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt());
        if let (Some(pt), Some(tx)) = (pt, self.publisher.direct_api().stream_tx_by_mid(mid, None))
        {
            let ext = ExtensionValues {
                audio_level: Some(-(level.min(127) as i8)),
                voice_activity: Some(level < 50),
                ..Default::default()
            };
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(self.seq), self.ts, now, opus.to_vec()).ext_vals(ext),
            );
            self.seq += 1;
            self.ts = self.ts.wrapping_add(OPUS_FRAME_TICKS);
        }
        self.drain(now);
    }

    /// One packet of the endpoint's video, as it sent it (its sequence numbers extended,
    /// kept for the media plane's NACKs).
    pub fn write_video(&mut self, now: Instant, p: &VideoPacket) {
        let (Some(mid), Some(pt)) = (self.camera, self.camera_pt) else {
            return;
        };
        let seq = sfu_core::rewrite::extend_seq(self.video_seq, p.seq);
        if let Some(tx) = self.publisher.direct_api().stream_tx_by_mid(mid, None) {
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), p.timestamp, now, p.payload.clone())
                    .marker(p.marker)
                    .nackable(true),
            );
            self.video_seq = Some(seq);
        }
        self.drain(now);
    }

    /// Ask the speaker view's sender (the media plane) for a keyframe: the endpoint
    /// asked for one.
    pub fn request_view_keyframe(&mut self, now: Instant) {
        let (Some(viewer), Some(mid)) = (self.viewer.as_mut(), self.view_mid) else {
            return;
        };
        if let Some(rx) = viewer.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.drain(now);
    }

    /// Whether the media plane asked for a keyframe of the endpoint's video since the
    /// last call.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// A datagram arrived on the leg's socket `local`.
    pub fn receive(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        let Ok(r) = Receive::new(Protocol::Udp, from, local, data) else {
            return;
        };
        let input = Input::Receive(now, r);
        let conn = if local == self.pub_local {
            Conn::Publisher
        } else if local == self.sub_local {
            Conn::Subscriber
        } else if Some(local) == self.view_local {
            Conn::Viewer
        } else {
            return;
        };
        let Some(rtc) = self.rtc(conn) else { return };
        if rtc.accepts(&input) {
            let _ = rtc.handle_input(input);
        }
        self.drain(now);
    }

    /// When to call [`RoomLeg::timeout`] next: every change (input, write, SDP) drains the
    /// connections and updates it, so the clocks are advanced only when a timer is due.
    pub fn next_wake(&self) -> Instant {
        self.next
    }

    /// Advance the connections' clocks; the earliest time they want to be woken.
    pub fn timeout(&mut self, now: Instant) -> Instant {
        for conn in [Conn::Publisher, Conn::Subscriber, Conn::Viewer] {
            if let Some(rtc) = self.rtc(conn) {
                let _ = rtc.handle_input(Input::Timeout(now));
            }
        }
        self.drain(now)
    }

    /// Whether any connection gave up (ICE or DTLS failure, or closed).
    pub fn alive(&self) -> bool {
        self.publisher.is_alive()
            && self.subscriber.is_alive()
            && self.viewer.as_ref().is_none_or(|v| v.is_alive())
    }

    fn rtc(&mut self, conn: Conn) -> Option<&mut Rtc> {
        match conn {
            Conn::Publisher => Some(&mut self.publisher),
            Conn::Subscriber => Some(&mut self.subscriber),
            Conn::Viewer => self.viewer.as_mut(),
        }
    }

    pub fn take_datagrams(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.out)
    }

    pub fn take_audio(&mut self) -> Vec<RoomAudio> {
        std::mem::take(&mut self.audio)
    }

    /// The speaker view's packets received since the last call.
    pub fn take_video(&mut self) -> Vec<VideoPacket> {
        std::mem::take(&mut self.video)
    }

    /// Drain the connections until they ask for a timeout; returns the earliest.
    fn drain(&mut self, now: Instant) -> Instant {
        let mut next = now + std::time::Duration::from_secs(1);
        for conn in [Conn::Publisher, Conn::Subscriber, Conn::Viewer] {
            while let Some(out) = self.rtc(conn).map(|rtc| rtc.poll_output()) {
                match out {
                    Ok(Output::Timeout(t)) => {
                        next = next.min(t);
                        break;
                    }
                    Ok(Output::Transmit(t)) => self.out.push(Datagram {
                        from: t.source,
                        to: t.destination,
                        data: t.contents.to_vec(),
                    }),
                    Ok(Output::Event(e)) => self.on_event(conn, e),
                    Err(_) => break,
                }
            }
        }
        self.next = next;
        next
    }

    fn on_event(&mut self, conn: Conn, e: Event) {
        match (conn, e) {
            (Conn::Publisher, Event::Connected) => self.published = true,
            (Conn::Publisher, Event::KeyframeRequest(r)) if Some(r.mid) == self.camera => {
                self.keyframe_wanted = true
            }
            (Conn::Subscriber, Event::RtpPacket(p)) => self.audio.push(RoomAudio {
                ssrc: *p.header.ssrc,
                seq: p.header.sequence_number,
                level: p
                    .header
                    .ext_vals
                    .audio_level
                    .map(|l| l.unsigned_abs().min(127)),
                payload: p.payload.to_vec(),
            }),
            // Padding (the media plane's probes) carries no payload: not the phone's.
            (Conn::Viewer, Event::RtpPacket(p)) if !p.payload.is_empty() => {
                self.video.push(VideoPacket {
                    seq: p.header.sequence_number,
                    timestamp: p.header.timestamp,
                    marker: p.header.marker,
                    payload: p.payload.to_vec(),
                })
            }
            _ => {}
        }
    }
}

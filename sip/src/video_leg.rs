//! A video endpoint's video on the phone side of a call: its sockets, where its packets
//! may come from (the same latching as the audio's, [`crate::rtp_source`]), and the
//! [`crate::video`] relay between them and the room leg.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::resend_store::{ResendStore, MAX_PER_NACK};
use crate::room_leg::RoomLeg;
use crate::rtp_source::RtpSource;
use crate::sdes::SdesAnswer;
use crate::sdp::Direction;
use crate::srtp::Protection;
use crate::video::{FromPhone, VideoDrop, VideoRelay};
use crate::video_sdp::{Chosen, PhoneVideo, VideoLine};

/// A video endpoint's video on the phone side: its sockets (RTCP on the RTP socket with
/// rtcp-mux), where its packets may come from, and the relay.
pub(crate) struct VideoLeg {
    pub rtp: UdpSocket,
    pub rtcp: Option<UdpSocket>,
    pub remote: PhoneVideo,
    pub chosen: Chosen,
    pub relay: VideoRelay,
    pub source: RtpSource,
    pub rtcp_source: RtpSource,
    /// Whether the endpoint's video has arrived yet.
    pub sending: bool,
    /// The cap on its speaker view last given to the media plane (bits per second).
    pub view_cap: Option<u64>,
    /// SRTP when the m-line is SDES-keyed.
    pub protection: Protection,
    /// What it was sent lately, and the sequence numbers its NACKs asked for since.
    store: ResendStore,
    resends: Vec<u16>,
}

/// A video endpoint's sockets and the addresses we announce for them.
pub(crate) struct VideoSockets {
    pub rtp: UdpSocket,
    pub rtcp: Option<UdpSocket>,
    pub rtp_addr: SocketAddr,
    /// The RTP address with rtcp-mux.
    pub rtcp_addr: SocketAddr,
}

impl VideoSockets {
    /// Our offer's video m-line on these sockets.
    pub fn offer(&self) -> VideoLine {
        VideoLine::Offer {
            rtp: self.rtp_addr,
            rtcp: self.rtcp_addr,
        }
    }

    /// The other side's `answer` (SDP) to our offer of video on these sockets: video when
    /// it accepted it, plain, with one of our codecs — our m-line's state and the leg —
    /// else none (its video m-line missing, at port 0, keyed or in another codec).
    pub fn answered(self, answer: &str) -> Option<(VideoLine, Box<VideoLeg>)> {
        let v = PhoneVideo::parse(answer).filter(|v| !v.keying.is_keyed())?;
        let chosen = v.choose()?;
        Some(VideoLeg::accept(self, v, chosen, Direction::SendRecv, None))
    }
}

impl VideoLeg {
    /// Video with `remote` in `chosen` on `sockets`, keyed by `sdes` or plain: our m-line
    /// (in an answer, or the state of our offer once answered) and the leg.
    pub fn accept(
        sockets: VideoSockets,
        remote: PhoneVideo,
        chosen: Chosen,
        direction: Direction,
        sdes: Option<SdesAnswer>,
    ) -> (VideoLine, Box<VideoLeg>) {
        let rtcp_mux = sockets.rtcp.is_none();
        let mut leg = VideoLeg::new(sockets.rtp, sockets.rtcp, remote, chosen);
        if let Some(a) = &sdes {
            leg.protection = Protection::keyed(a.srtp());
        }
        let line = VideoLine::Accepted {
            rtp: sockets.rtp_addr,
            rtcp: sockets.rtcp_addr,
            rtcp_mux,
            chosen,
            direction,
            sdes,
        };
        (line, Box::new(leg))
    }

    pub fn new(
        rtp: UdpSocket,
        rtcp: Option<UdpSocket>,
        remote: PhoneVideo,
        chosen: Chosen,
    ) -> Self {
        let view_cap = remote.max_kbps.map(|k| u64::from(k) * 1_000);
        VideoLeg {
            rtp,
            rtcp,
            source: RtpSource::new(remote.rtp, None),
            rtcp_source: RtpSource::new(remote.rtcp, None),
            relay: VideoRelay::new(chosen, rand::random()),
            remote,
            chosen,
            sending: false,
            view_cap,
            protection: Protection::default(),
            store: ResendStore::default(),
            resends: Vec::new(),
        }
    }

    /// The endpoint limits what it receives to `bps` (TMMBR/REMB): the new cap of its
    /// speaker view — never above its SDP bandwidth — when it moved by a tenth or more.
    fn limit(&mut self, bps: u64) -> Option<u64> {
        let sdp = self.remote.max_kbps.map(|k| u64::from(k) * 1_000);
        let cap = crate::video::next_view_cap(sdp, self.view_cap, bps)?;
        self.view_cap = Some(cap);
        Some(cap)
    }

    /// A datagram on the endpoint's video RTP socket (or its RTCP socket, `rtcp`): media
    /// to the room leg, keyframe requests to the speaker view; a new cap for the view
    /// when the endpoint limited its bandwidth; why it was dropped (a metric's reason).
    pub fn on_datagram(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        rtcp: bool,
        leg: &mut RoomLeg,
        now: Instant,
    ) -> Result<Option<u64>, &'static str> {
        // Nothing of a keyed m-line's packets is used (not even to latch) unless it
        // authenticates.
        let data = self.protection.open(data).map_err(|_| "srtp")?;
        let ours = if rtcp {
            self.rtcp_source.accept(from, None)
        } else {
            self.source.accept(from, crate::rtp_source::rtp_seq(data))
        };
        if !ours {
            return Err("source");
        }
        match self.relay.from_phone(data) {
            Ok(FromPhone::Media(p)) => {
                // The endpoint's video runs: its decoder is ready for a fresh keyframe of
                // the speaker view (what was sent before may have found it not yet).
                if !std::mem::replace(&mut self.sending, true) {
                    leg.request_view_keyframe(now);
                }
                if leg.publishing() {
                    leg.write_video(now, &p);
                }
                Ok(None)
            }
            Ok(FromPhone::KeyframeRequest) => {
                leg.request_view_keyframe(now);
                Ok(None)
            }
            Ok(FromPhone::MaxBitrate(bps)) => Ok(self.limit(bps)),
            Ok(FromPhone::Nack(seqs)) => {
                // Answered at the next pump; a flood beyond two NACKs' worth waits for it.
                let room = (2 * MAX_PER_NACK).saturating_sub(self.resends.len());
                self.resends.extend(seqs.into_iter().take(room));
                Ok(None)
            }
            Ok(FromPhone::Report) => Ok(None),
            Err(VideoDrop::Malformed(_) | VideoDrop::BadRtcp) => Err("malformed"),
            Err(VideoDrop::PayloadType(_)) => Err("payload_type"),
            Err(VideoDrop::TooLarge(_)) => Err("too_large"),
        }
    }

    /// The speaker view's packets to the endpoint (unless it is on hold or only sends),
    /// and the media plane's keyframe request for its picture as RTCP; true when that
    /// request should go as SIP INFO instead (the caller's dialog).
    pub async fn pump(&mut self, leg: &mut RoomLeg, on_hold: bool, now: Instant) -> bool {
        let packets = leg.take_video();
        let to = self.source.latched().or(self.remote.rtp);
        let receives = !matches!(
            self.remote.direction,
            Direction::SendOnly | Direction::Inactive
        );
        if let (Some(to), true, false) = (to, receives, on_hold) {
            let mut out = Vec::with_capacity(1_500);
            for p in &packets {
                self.relay.to_phone(p, &mut out);
                self.store.remember(p.seq, &out);
                if let Ok(wire) = self.protection.seal(&out) {
                    let _ = self.rtp.send_to(wire, to).await;
                }
            }
            self.resend(to).await;
        }
        self.resends.clear();
        if let Some(tmmbn) = self.relay.take_tmmbn() {
            self.send_rtcp(&tmmbn).await;
        }
        if !leg.take_keyframe_request() {
            return false;
        }
        match self.relay.keyframe_request(now) {
            Some(rtcp) => {
                self.send_rtcp(&rtcp).await;
                false
            }
            None => self.relay.wants_info(now),
        }
    }

    /// The packets its NACKs asked for, again, while still kept (RFC 4585: the same
    /// packet, sequence number and all; no RTX stream is negotiated with endpoints).
    async fn resend(&mut self, to: SocketAddr) {
        for seq in std::mem::take(&mut self.resends) {
            let Some(p) = self.store.get(seq) else {
                metrics::counter!("switchboard_sip_video_nacked_total", "result" => "gone")
                    .increment(1);
                continue;
            };
            if let Ok(wire) = self.protection.seal(p) {
                let _ = self.rtp.send_to(wire, to).await;
                metrics::counter!("switchboard_sip_video_nacked_total", "result" => "resent")
                    .increment(1);
            }
        }
    }

    /// Send RTCP to the phone: on the RTP socket with rtcp-mux, else from ours.
    async fn send_rtcp(&mut self, packet: &[u8]) {
        let Some(to) = self.remote.rtcp else { return };
        let socket = self.rtcp.as_ref().unwrap_or(&self.rtp);
        if let Ok(wire) = self.protection.seal(packet) {
            let _ = socket.send_to(wire, to).await;
        }
    }
}

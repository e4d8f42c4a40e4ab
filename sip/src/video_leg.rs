//! A video endpoint's video on the phone side of a call: its sockets, where its packets
//! may come from (the same latching as the audio's, [`crate::rtp_source`]), and the
//! [`crate::video`] relay between them and the room leg.

use tokio::net::UdpSocket;

use crate::rtp_source::RtpSource;
use crate::video::VideoRelay;
use crate::video_sdp::{Chosen, PhoneVideo};

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
}

impl VideoLeg {
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
        }
    }

    /// The endpoint limits what it receives to `bps` (TMMBR/REMB): the new cap of its
    /// speaker view — never above its SDP bandwidth — when it moved by a tenth or more.
    pub fn limit(&mut self, bps: u64) -> Option<u64> {
        let sdp = self.remote.max_kbps.map(|k| u64::from(k) * 1_000);
        let cap = crate::video::next_view_cap(sdp, self.view_cap, bps)?;
        self.view_cap = Some(cap);
        Some(cap)
    }

    /// Send RTCP to the phone: on the RTP socket with rtcp-mux, else from ours.
    pub async fn send_rtcp(&self, packet: &[u8]) {
        let Some(to) = self.remote.rtcp else { return };
        let socket = self.rtcp.as_ref().unwrap_or(&self.rtp);
        let _ = socket.send_to(packet, to).await;
    }
}

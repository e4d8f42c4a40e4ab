//! A media packet as the forwarding path takes it: from a publisher's connection (str0m's
//! `RtpPacket`, converted without copying the payload) or from a relay link (a publisher
//! on another node, [`crate::relay`]). Only what forwarding reads.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::RtpPacket;

#[derive(Debug, Clone)]
pub(crate) struct InPacket {
    pub ssrc: u32,
    /// The sequence number, extended past its 16-bit wrap.
    pub seq: u64,
    pub pt: Pt,
    pub ts: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    /// RFC 6464: the level (-dBov) and the voice-activity flag, when the packet has them.
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    /// When it arrived (the wallclock a subscriber's stream is given with it).
    pub arrival: Instant,
}

impl From<RtpPacket> for InPacket {
    fn from(p: RtpPacket) -> Self {
        InPacket {
            ssrc: *p.header.ssrc,
            seq: *p.seq_no,
            pt: p.header.payload_type,
            ts: p.header.timestamp,
            marker: p.header.marker,
            audio_level: p.header.ext_vals.audio_level,
            voice_activity: p.header.ext_vals.voice_activity,
            payload: p.payload,
            arrival: p.timestamp,
        }
    }
}

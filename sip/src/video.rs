//! A SIP video endpoint's video on the phone leg, both ways, never decoded (sans-IO, the
//! caller's clock):
//!
//! - phone → room: its RTP checked (version, payload type, size) and handed on as
//!   [`VideoPacket`]s with sequence numbers that stay continuous when the phone changes
//!   its SSRC; its RTCP read for keyframe requests (PLI, FIR) and bandwidth limits
//!   (TMMBR, REMB);
//! - room → phone: the speaker view's packets rewritten to the negotiated payload type and
//!   one SSRC of ours;
//! - keyframe requests to the phone as RTCP PLI or FIR (RFC 4585, RFC 5104), whichever it
//!   offered, throttled; a phone that offered neither is asked by SIP INFO (RFC 5168,
//!   the caller's part).

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::rtp::{self, RtpError, RtpHeader};
use crate::video_sdp::{Chosen, Feedback};

/// One video packet between the phone and the room: its place in the stream and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoPacket {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// What a datagram on the phone's video socket was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromPhone {
    Media(VideoPacket),
    /// RTCP asking for a keyframe of what the phone receives (PLI or FIR).
    KeyframeRequest,
    /// RTCP limiting what the phone receives (TMMBR, RFC 5104; or REMB): bits per second.
    MaxBitrate(u64),
    /// Generic NACKs (RFC 4585) for what we sent it: the sequence numbers to send again.
    Nack(Vec<u16>),
    /// Other RTCP (reports, NACKs for another stream): read, nothing to do.
    Report,
}

/// Why a packet from the phone was dropped (counted by the caller).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VideoDrop {
    #[error("not RTP: {0}")]
    Malformed(#[from] RtpError),
    #[error("malformed RTCP")]
    BadRtcp,
    #[error("unexpected payload type {0}")]
    PayloadType(u8),
    #[error("RTP packet of {0} bytes")]
    TooLarge(usize),
}

/// The largest RTP packet taken from a phone: an Ethernet MTU's worth; larger ones are
/// not what a video endpoint sends and would not fit the room leg's SRTP either.
pub const MAX_PACKET: usize = 1_500;
/// At most one keyframe request to the phone in this time.
const REQUEST_EVERY: Duration = Duration::from_millis(500);

pub struct VideoRelay {
    pt: u8,
    feedback: Feedback,
    /// The phone's SSRC (the media SSRC of our requests) and the offset that keeps the
    /// room's sequence numbers continuous across its changes.
    phone_ssrc: Option<u32>,
    seq_offset: u16,
    last_seq: Option<u16>,
    out_ssrc: u32,
    fir_seq: u8,
    last_request: Option<Instant>,
    /// The last TMMBR's sender and bound, owed a TMMBN (RFC 5104 §4.2.2).
    tmmbn_owed: Option<(u32, u32)>,
}

impl VideoRelay {
    /// `out_ssrc`: our SSRC toward the phone (random, from the caller).
    pub fn new(chosen: Chosen, out_ssrc: u32) -> Self {
        VideoRelay {
            pt: chosen.pt,
            feedback: chosen.feedback,
            phone_ssrc: None,
            seq_offset: 0,
            last_seq: None,
            out_ssrc,
            fir_seq: 0,
            last_request: None,
            tmmbn_owed: None,
        }
    }

    /// A datagram from the phone's video RTP (or RTCP) socket.
    pub fn from_phone(&mut self, data: &[u8]) -> Result<FromPhone, VideoDrop> {
        if rtp::is_rtcp(data) {
            let feedback = read_feedback(data, self.out_ssrc)?;
            if feedback.tmmbr.is_some() {
                self.tmmbn_owed = feedback.tmmbr;
            }
            return Ok(match feedback {
                RtcpAsks { keyframe: true, .. } => FromPhone::KeyframeRequest,
                RtcpAsks {
                    max_bitrate: Some(bps),
                    ..
                } => FromPhone::MaxBitrate(bps),
                RtcpAsks { nacked, .. } if !nacked.is_empty() => FromPhone::Nack(nacked),
                _ => FromPhone::Report,
            });
        }
        if data.len() > MAX_PACKET {
            return Err(VideoDrop::TooLarge(data.len()));
        }
        let (h, payload) = rtp::parse(data)?;
        if h.payload_type != self.pt {
            return Err(VideoDrop::PayloadType(h.payload_type));
        }
        if self.phone_ssrc != Some(h.ssrc) {
            // A new SSRC (a restarted encoder): continue after the last number sent.
            self.seq_offset = self
                .last_seq
                .map_or(0, |l| l.wrapping_add(1).wrapping_sub(h.seq));
            self.phone_ssrc = Some(h.ssrc);
        }
        let seq = h.seq.wrapping_add(self.seq_offset);
        self.last_seq = Some(seq);
        Ok(FromPhone::Media(VideoPacket {
            seq,
            timestamp: h.timestamp,
            marker: h.marker,
            payload: payload.to_vec(),
        }))
    }

    /// A packet of the speaker view, as RTP for the phone (into `out`, cleared first).
    pub fn to_phone(&self, p: &VideoPacket, out: &mut Vec<u8>) {
        out.clear();
        let h = RtpHeader {
            marker: p.marker,
            payload_type: self.pt,
            seq: p.seq,
            timestamp: p.timestamp,
            ssrc: self.out_ssrc,
        };
        rtp::write(&h, &p.payload, out);
    }

    /// RTCP asking the phone for a keyframe: PLI if it offered `nack pli`, else FIR if it
    /// offered `ccm fir`. None while throttled, before the phone sent video (no SSRC to
    /// name) or when it offered neither — [`VideoRelay::wants_info`] then.
    pub fn keyframe_request(&mut self, now: Instant) -> Option<Vec<u8>> {
        let media = self.phone_ssrc?;
        if !(self.feedback.pli || self.feedback.fir) || self.throttled(now) {
            return None;
        }
        self.last_request = Some(now);
        // A compound packet starts with a report (RFC 3550 §6.1): an empty receiver report.
        let mut p = vec![0x80, 201, 0, 1];
        p.extend_from_slice(&self.out_ssrc.to_be_bytes());
        if self.feedback.pli {
            p.extend_from_slice(&[0x81, 206, 0, 2]);
            p.extend_from_slice(&self.out_ssrc.to_be_bytes());
            p.extend_from_slice(&media.to_be_bytes());
        } else {
            // FIR: the media SSRC field is 0, the FCI names the stream (RFC 5104 §4.3.1).
            self.fir_seq = self.fir_seq.wrapping_add(1);
            p.extend_from_slice(&[0x84, 206, 0, 4]);
            p.extend_from_slice(&self.out_ssrc.to_be_bytes());
            p.extend_from_slice(&[0; 4]);
            p.extend_from_slice(&media.to_be_bytes());
            p.extend_from_slice(&[self.fir_seq, 0, 0, 0]);
        }
        Some(p)
    }

    /// The TMMBN owed to the phone's last TMMBR, once (RFC 5104 §4.2.2.2: the bounding
    /// set, here its one tuple — the phone's SSRC and the bound it asked for), after an
    /// empty receiver report as a compound packet starts.
    pub fn take_tmmbn(&mut self) -> Option<Vec<u8>> {
        let (owner, bound) = self.tmmbn_owed.take()?;
        let mut p = vec![0x80, 201, 0, 1];
        p.extend_from_slice(&self.out_ssrc.to_be_bytes());
        p.extend_from_slice(&[0x84, 205, 0, 4]);
        p.extend_from_slice(&self.out_ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&owner.to_be_bytes());
        p.extend_from_slice(&bound.to_be_bytes());
        Some(p)
    }

    /// Whether a keyframe request to a phone without RTCP feedback should go as SIP INFO
    /// `picture_fast_update` now (throttled like the RTCP ones).
    pub fn wants_info(&mut self, now: Instant) -> bool {
        if self.feedback.pli || self.feedback.fir || self.throttled(now) {
            return false;
        }
        self.last_request = Some(now);
        true
    }

    fn throttled(&self, now: Instant) -> bool {
        self.last_request
            .is_some_and(|t| now.saturating_duration_since(t) < REQUEST_EVERY)
    }
}

/// What a compound RTCP packet from the phone asks of its video.
#[derive(Debug, Default, PartialEq, Eq)]
struct RtcpAsks {
    /// A PLI or FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1).
    keyframe: bool,
    /// The lowest TMMBR (RFC 5104 §4.2.1) or REMB bitrate in it.
    max_bitrate: Option<u64>,
    /// Sequence numbers of ours its generic NACKs name.
    nacked: Vec<u16>,
    /// Its last TMMBR: sender SSRC and the bound as written (exponent, mantissa, overhead).
    tmmbr: Option<(u32, u32)>,
}

/// `ours`: our SSRC toward the phone (NACKs for another stream are not ours to answer).
fn read_feedback(data: &[u8], ours: u32) -> Result<RtcpAsks, VideoDrop> {
    let mut rest = data;
    let mut f = RtcpAsks::default();
    while !rest.is_empty() {
        if rest.len() < 4 || rest[0] >> 6 != 2 {
            return Err(VideoDrop::BadRtcp);
        }
        let size = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
        if size > rest.len() {
            return Err(VideoDrop::BadRtcp);
        }
        let (fmt, packet) = (rest[0] & 0x1f, &rest[..size]);
        let rate = match (packet[1], fmt) {
            (206, 1 | 4) => {
                f.keyframe = true;
                None
            }
            (205, 1) if size >= 12 && packet[8..12] == ours.to_be_bytes() => {
                if f.nacked.len() < crate::resend_store::MAX_PER_NACK {
                    f.nacked.extend(crate::resend_store::nacked(&packet[12..]));
                }
                None
            }
            // TMMBR: FCI of SSRC, then exponent (6 bits) and mantissa (17 bits).
            (205, 3) if size >= 20 => {
                let v = u32::from_be_bytes([packet[16], packet[17], packet[18], packet[19]]);
                let sender = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
                f.tmmbr = Some((sender, v));
                Some(u64::from((v >> 9) & 0x1_ffff) << (v >> 26))
            }
            // REMB: "REMB", the number of SSRCs, exponent (6 bits) and mantissa (18 bits).
            (206, 15) if size >= 20 && &packet[12..16] == b"REMB" => {
                let v = u32::from_be_bytes([packet[16], packet[17], packet[18], packet[19]]);
                Some(u64::from(v & 0x3_ffff) << ((v >> 18) & 0x3f))
            }
            _ => None,
        };
        if let Some(r) = rate {
            f.max_bitrate = Some(f.max_bitrate.map_or(r, |m| m.min(r)));
        }
        rest = &rest[size..];
    }
    Ok(f)
}

/// The lowest cap put on a speaker view: a limit below it would starve the picture.
const MIN_VIEW_BPS: u64 = 64_000;

/// A speaker view's new cap after the endpoint limited what it receives to `limit` (TMMBR
/// or REMB), bits per second: never above its SDP bandwidth `sdp` nor below
/// [`MIN_VIEW_BPS`]; None while it stays within a tenth of the `current` one (no churn).
pub fn next_view_cap(sdp: Option<u64>, current: Option<u64>, limit: u64) -> Option<u64> {
    let cap = sdp.map_or(limit, |s| s.min(limit)).max(MIN_VIEW_BPS);
    current
        .is_none_or(|c| cap.abs_diff(c) * 10 >= c)
        .then_some(cap)
}

/// The SIP INFO body that asks for a keyframe (RFC 5168), and whether a body is one.
pub const PICTURE_FAST_UPDATE: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n\
<media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>\r\n";

pub fn is_picture_fast_update(body: &str) -> bool {
    body.contains("picture_fast_update")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video_sdp::VideoCodec;

    fn relay(pli: bool, fir: bool) -> VideoRelay {
        let chosen = Chosen {
            codec: VideoCodec::Vp8,
            pt: 100,
            feedback: Feedback {
                nack: false,
                pli,
                fir,
                tmmbr: true,
            },
        };
        VideoRelay::new(chosen, 0x5b)
    }

    fn packet(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
        let h = RtpHeader {
            marker: seq.is_multiple_of(2),
            payload_type: pt,
            seq,
            timestamp: 3_000 * u32::from(seq),
            ssrc,
        };
        let mut p = Vec::new();
        rtp::write(&h, &[0x90, 0xe0, 1, 2], &mut p);
        p
    }

    #[test]
    fn the_phones_video_passes_with_continuous_numbers() {
        let mut r = relay(true, true);
        let FromPhone::Media(p) = r.from_phone(&packet(100, 65_535, 7)).unwrap() else {
            panic!("media")
        };
        assert_eq!(
            (p.seq, p.timestamp, p.marker),
            (65_535, 3_000 * 65_535, false)
        );
        assert_eq!(p.payload, [0x90, 0xe0, 1, 2]);
        // The phone restarts with another SSRC and sequence number: the room's numbers
        // go on from the last one.
        let FromPhone::Media(p) = r.from_phone(&packet(100, 900, 8)).unwrap() else {
            panic!("media")
        };
        assert_eq!(p.seq, 0);
        let FromPhone::Media(p) = r.from_phone(&packet(100, 901, 8)).unwrap() else {
            panic!("media")
        };
        assert_eq!(p.seq, 1);
        // Rewritten for the phone: our SSRC and its payload type.
        let mut out = Vec::new();
        r.to_phone(&p, &mut out);
        let (h, payload) = rtp::parse(&out).unwrap();
        assert_eq!((h.ssrc, h.payload_type, h.seq), (0x5b, 100, 1));
        assert_eq!(payload, [0x90, 0xe0, 1, 2]);
    }

    #[test]
    fn bad_packets_are_dropped_with_a_reason() {
        let mut r = relay(true, false);
        assert_eq!(
            r.from_phone(&packet(96, 1, 7)),
            Err(VideoDrop::PayloadType(96))
        );
        assert_eq!(
            r.from_phone(&[0x80, 100, 0]),
            Err(VideoDrop::Malformed(RtpError::Short))
        );
        let mut huge = packet(100, 1, 7);
        huge.resize(MAX_PACKET + 1, 0);
        assert_eq!(
            r.from_phone(&huge),
            Err(VideoDrop::TooLarge(MAX_PACKET + 1))
        );
        // RTCP whose length runs past the datagram, or of a wrong version.
        assert_eq!(
            r.from_phone(&[0x81, 206, 0, 9, 0, 0, 0, 1]),
            Err(VideoDrop::BadRtcp)
        );
        assert_eq!(r.from_phone(&[0x41, 206, 0, 0]), Err(VideoDrop::BadRtcp));
    }

    #[test]
    fn keyframe_requests_from_the_phone() {
        let mut r = relay(true, true);
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        assert_eq!(r.from_phone(&rr), Ok(FromPhone::Report));
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0x5b];
        assert_eq!(
            r.from_phone(&[&rr[..], &pli].concat()),
            Ok(FromPhone::KeyframeRequest)
        );
        let fir = [
            0x84, 206, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0x5b, 1, 0, 0, 0,
        ];
        assert_eq!(r.from_phone(&fir), Ok(FromPhone::KeyframeRequest));
        // A NACK (transport feedback) is not a keyframe request: the packets to resend,
        // when it names our stream (0x5b), nothing otherwise.
        let nack = [0x81, 205, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0x5b, 0, 1, 0, 2];
        assert_eq!(
            r.from_phone(&[&rr[..], &nack].concat()),
            Ok(FromPhone::Nack(vec![1, 3]))
        );
        let other = [0x81, 205, 0, 3, 0, 0, 0, 9, 0, 0, 0, 0x5c, 0, 1, 0, 2];
        assert_eq!(r.from_phone(&other), Ok(FromPhone::Report));
        let short = [0x81, 205, 0, 1, 0, 0, 0, 9];
        assert_eq!(r.from_phone(&short), Ok(FromPhone::Report));
    }

    #[test]
    fn the_view_cap_follows_the_limits_within_the_sdp() {
        let k = |n: u64| n * 1_000;
        // No SDP bandwidth: the limit itself, not below the floor.
        assert_eq!(next_view_cap(None, None, k(500)), Some(k(500)));
        assert_eq!(next_view_cap(None, None, k(10)), Some(MIN_VIEW_BPS));
        // Never above b=AS; a change under a tenth is no change.
        assert_eq!(next_view_cap(Some(k(800)), Some(k(800)), k(2_000)), None);
        assert_eq!(next_view_cap(Some(k(800)), Some(k(800)), k(750)), None);
        assert_eq!(
            next_view_cap(Some(k(800)), Some(k(800)), k(400)),
            Some(k(400))
        );
        assert_eq!(
            next_view_cap(Some(k(800)), Some(k(400)), k(5_000)),
            Some(k(800))
        );
    }

    #[test]
    fn bandwidth_limits_from_the_phone() {
        let mut r = relay(true, true);
        // TMMBR: 1,000,000 bps as mantissa 15625 × 2^6, overhead 40.
        let v: u32 = (6 << 26) | (15_625 << 9) | 40;
        let mut tmmbr = vec![0x83, 205, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0x5b];
        tmmbr.extend_from_slice(&v.to_be_bytes());
        assert_eq!(r.take_tmmbn(), None, "nothing owed before a TMMBR");
        assert_eq!(r.from_phone(&tmmbr), Ok(FromPhone::MaxBitrate(1_000_000)));
        // Its TMMBN: after an empty RR, from our SSRC (0x5b), the phone's tuple (SSRC 9,
        // the same bound), once.
        let n = r.take_tmmbn().unwrap();
        assert_eq!(n[..8], [0x80, 201, 0, 1, 0, 0, 0, 0x5b]);
        assert_eq!(n[8..20], [0x84, 205, 0, 4, 0, 0, 0, 0x5b, 0, 0, 0, 0]);
        assert_eq!(n[20..24], [0, 0, 0, 9]);
        assert_eq!(n[24..28], v.to_be_bytes());
        assert_eq!(r.take_tmmbn(), None);
        // REMB: 512,000 bps as mantissa 128000 × 2^2, one SSRC.
        let v: u32 = (1 << 24) | (2 << 18) | 128_000;
        let mut remb = vec![0x8f, 206, 0, 5, 0, 0, 0, 9, 0, 0, 0, 0];
        remb.extend_from_slice(b"REMB");
        remb.extend_from_slice(&v.to_be_bytes());
        remb.extend_from_slice(&[0, 0, 0, 0x5b]);
        assert_eq!(r.from_phone(&remb), Ok(FromPhone::MaxBitrate(512_000)));
        // Both in one compound packet: the lower one.
        assert_eq!(
            r.from_phone(&[&tmmbr[..], &remb].concat()),
            Ok(FromPhone::MaxBitrate(512_000))
        );
        // A REMB without its identifier is not one.
        let mut fake = remb.clone();
        fake[12] = b'X';
        assert_eq!(r.from_phone(&fake), Ok(FromPhone::Report));
    }

    #[test]
    fn keyframe_requests_to_the_phone_are_throttled_and_fit_what_it_offered() {
        let t0 = Instant::now();
        let mut r = relay(true, true);
        assert_eq!(r.keyframe_request(t0), None, "no SSRC to name yet");
        r.from_phone(&packet(100, 1, 0x77)).unwrap();
        let pli = r.keyframe_request(t0).unwrap();
        assert_eq!(pli.len(), 8 + 12);
        assert_eq!(&pli[8..10], &[0x81, 206]);
        assert_eq!(&pli[16..20], &0x77u32.to_be_bytes());
        assert!(read_feedback(&pli, 0x5b).unwrap().keyframe);
        assert_eq!(r.keyframe_request(t0 + Duration::from_millis(100)), None);
        assert!(r.keyframe_request(t0 + REQUEST_EVERY).is_some());
        // FIR only: the FCI names the phone's SSRC, its sequence number grows.
        let mut r = relay(false, true);
        r.from_phone(&packet(100, 1, 0x77)).unwrap();
        let a = r.keyframe_request(t0).unwrap();
        let b = r.keyframe_request(t0 + REQUEST_EVERY).unwrap();
        assert_eq!(&a[8..10], &[0x84, 206]);
        assert_eq!(&a[20..24], &0x77u32.to_be_bytes());
        assert_eq!((a[24], b[24]), (1, 2));
        // Neither offered: SIP INFO, throttled the same way.
        let mut r = relay(false, false);
        r.from_phone(&packet(100, 1, 0x77)).unwrap();
        assert_eq!(r.keyframe_request(t0), None);
        assert!(r.wants_info(t0));
        assert!(!r.wants_info(t0 + Duration::from_millis(10)));
        assert!(is_picture_fast_update(PICTURE_FAST_UPDATE));
    }
}

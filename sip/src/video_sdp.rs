//! The phone side's video m-line (a SIP video system or desk video phone): what its offer
//! says (codecs with their payload types and H.264 parameters, RTCP feedback, where its
//! RTP and RTCP go, direction, bandwidth, keys) and the gateway's answer — one codec,
//! plain RTP/AVP or SDES-keyed RTP/SAVP, or the m-line rejected (port 0) so that audio
//! goes on alone.

use std::net::{IpAddr, SocketAddr};

use crate::sdes::{Keying, SdesAnswer};
use crate::sdp::{connection_addr, Direction};

/// The video codecs the gateway forwards, in its order of preference: VP8 is what
/// browsers publish by default, so a VP8 endpoint is forwarded both ways untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    /// H.264 with its packetization mode (RFC 6184: 0 single NAL unit, 1 non-interleaved)
    /// and profile-level-id.
    H264 {
        mode: u8,
        profile_level_id: u32,
    },
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 { .. } => "H264",
        }
    }

    fn fmtp(self) -> Option<String> {
        match self {
            VideoCodec::Vp8 => None,
            VideoCodec::H264 {
                mode,
                profile_level_id,
            } => Some(format!(
                "profile-level-id={profile_level_id:06x};packetization-mode={mode}"
            )),
        }
    }

    /// Ours by preference: VP8, then H.264 mode 1, then mode 0 (a lower number first).
    fn rank(self) -> u8 {
        match self {
            VideoCodec::Vp8 => 0,
            VideoCodec::H264 { mode: 1, .. } => 1,
            VideoCodec::H264 { .. } => 2,
        }
    }
}

/// The RTCP feedback (RFC 4585, RFC 5104) the phone offered for a payload type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feedback {
    pub nack: bool,
    pub pli: bool,
    pub fir: bool,
    /// `ccm tmmbr` (RFC 5104 §7.1): it limits what it receives with TMMBR (and we
    /// answer with TMMBN).
    pub tmmbr: bool,
}

/// What the phone's SDP says about its video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneVideo {
    /// Where the phone wants video RTP (None: port 0 or a 0.0.0.0 address).
    pub rtp: Option<SocketAddr>,
    /// Where its RTCP goes: the RTP address with rtcp-mux, `a=rtcp` (RFC 3605), or the
    /// RTP port + 1.
    pub rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    /// Its profile and keys: plain `RTP/AVP(F)`, or `RTP/SAVP(F)` keyed by SDES.
    pub keying: Keying,
    /// Codecs we can forward, with their payload types and feedback, in the phone's order.
    pub codecs: Vec<(VideoCodec, u8, Feedback)>,
    /// The first payload type of the m-line (for a rejection that keeps the line valid).
    pub first_pt: u8,
    pub direction: Direction,
    /// `b=TIAS` (bps) or `b=AS` (kbps), in kbps: what the phone can receive.
    pub max_kbps: Option<u32>,
}

/// The accepted video of a call: what both sides use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    pub codec: VideoCodec,
    /// The phone's payload type for it (ours too: an answer uses the offer's).
    pub pt: u8,
    pub feedback: Feedback,
}

impl PhoneVideo {
    /// The first video m-line of `sdp` (None without one). The SDP is the one
    /// [`crate::sdp::PhoneMedia::parse`] accepted, so its size is bounded already.
    pub fn parse(sdp: &str) -> Option<PhoneVideo> {
        let mut session_addr: Option<IpAddr> = None;
        let mut session_dir = Direction::SendRecv;
        let mut lines = sdp.lines().map(str::trim);
        for l in lines.by_ref() {
            if l.starts_with("m=video ") {
                return Self::section(l, &mut lines, session_addr, session_dir);
            }
            if l.starts_with("m=") {
                // Another m-line: its lines are not the session's.
                continue;
            }
            if let Some(c) = l.strip_prefix("c=") {
                session_addr = session_addr.or_else(|| connection_addr(c));
            } else if let Some(d) = Direction::of_attribute(l) {
                session_dir = d;
            }
        }
        None
    }

    fn section<'a>(
        mline: &str,
        lines: &mut impl Iterator<Item = &'a str>,
        session_addr: Option<IpAddr>,
        session_dir: Direction,
    ) -> Option<PhoneVideo> {
        let f: Vec<&str> = mline["m=".len()..].split_whitespace().collect();
        let port: u16 = f.get(1)?.parse().ok()?;
        let mut keying = Keying::with_profile(f.get(2)?);
        let pts: Vec<u8> = f.iter().skip(3).filter_map(|p| p.parse().ok()).collect();
        let (mut addr, mut dir, mut mux, mut rtcp_port, mut max_kbps) =
            (None, None, false, None, None);
        let mut rtpmaps: Vec<(u8, String)> = Vec::new();
        let mut fmtps: Vec<(u8, String)> = Vec::new();
        let mut fbs: Vec<(Option<u8>, String)> = Vec::new();
        for l in lines.take_while(|l| !l.starts_with("m=")) {
            if let Some(c) = l.strip_prefix("c=") {
                addr = connection_addr(c);
            } else if let Some(d) = Direction::of_attribute(l) {
                dir = Some(d);
            } else if l == "a=rtcp-mux" {
                mux = true;
            } else if let Some(r) = l.strip_prefix("a=rtcp:") {
                rtcp_port = r.split_whitespace().next().and_then(|p| p.parse().ok());
            } else if let Some(b) = l.strip_prefix("b=TIAS:") {
                max_kbps = b.trim().parse::<u32>().ok().map(|bps| bps / 1_000);
            } else if let Some(b) = l.strip_prefix("b=AS:") {
                max_kbps = max_kbps.or(b.trim().parse().ok());
            } else if let Some((pt, rest)) = pt_attr(l, "a=rtpmap:") {
                rtpmaps.push((pt, rest.to_string()));
            } else if let Some((pt, rest)) = pt_attr(l, "a=fmtp:") {
                fmtps.push((pt, rest.to_string()));
            } else if let Some(r) = l.strip_prefix("a=rtcp-fb:") {
                let (pt, kind) = r.split_once(' ').unwrap_or((r, ""));
                fbs.push((pt.parse().ok(), kind.trim().to_ascii_lowercase()));
            } else {
                keying.read(l);
            }
        }
        let codecs = pts
            .iter()
            .filter_map(|&pt| {
                let (_, map) = rtpmaps.iter().find(|(p, _)| *p == pt)?;
                let fmtp = fmtps
                    .iter()
                    .find(|(p, _)| *p == pt)
                    .map(|(_, f)| f.as_str());
                let codec = codec_of(map, fmtp.unwrap_or(""))?;
                let mut feedback = Feedback::default();
                for (_, kind) in fbs.iter().filter(|(p, _)| p.is_none_or(|p| p == pt)) {
                    match kind.as_str() {
                        "nack" => feedback.nack = true,
                        "nack pli" => feedback.pli = true,
                        "ccm fir" => feedback.fir = true,
                        "ccm tmmbr" => feedback.tmmbr = true,
                        _ => {}
                    }
                }
                Some((codec, pt, feedback))
            })
            .collect();
        let ip = addr.or(session_addr).filter(|a| !a.is_unspecified());
        let rtp = ip.filter(|_| port != 0).map(|ip| SocketAddr::new(ip, port));
        let rtcp = rtp.map(|r| match (mux, rtcp_port) {
            (true, _) => r,
            (false, Some(p)) => SocketAddr::new(r.ip(), p),
            (false, None) => SocketAddr::new(r.ip(), r.port().wrapping_add(1)),
        });
        Some(PhoneVideo {
            rtp,
            rtcp,
            rtcp_mux: mux,
            keying,
            codecs,
            first_pt: pts.first().copied().unwrap_or(96),
            direction: dir.unwrap_or(session_dir),
            max_kbps,
        })
    }

    /// The codec to use, by our preference; None when the m-line cannot be answered with
    /// video (port 0, a profile or keys we cannot answer, no codec we forward).
    pub fn choose(&self) -> Option<Chosen> {
        if self.rtp.is_none() || self.keying.acceptable().is_err() {
            return None;
        }
        self.codecs
            .iter()
            .min_by_key(|(c, _, _)| c.rank())
            .map(|&(codec, pt, feedback)| Chosen {
                codec,
                pt,
                feedback,
            })
    }
}

fn pt_attr<'a>(l: &'a str, prefix: &str) -> Option<(u8, &'a str)> {
    let (pt, rest) = l.strip_prefix(prefix)?.split_once(' ')?;
    Some((pt.parse().ok()?, rest.trim()))
}

/// VP8, or H.264 in a packetization mode we forward (0 or 1; mode 2 is interleaved).
fn codec_of(rtpmap: &str, fmtp: &str) -> Option<VideoCodec> {
    let mut enc = rtpmap.split('/');
    let (name, rate) = (enc.next()?, enc.next()?);
    if rate != "90000" {
        return None;
    }
    if name.eq_ignore_ascii_case("VP8") {
        return Some(VideoCodec::Vp8);
    }
    if !name.eq_ignore_ascii_case("H264") {
        return None;
    }
    let param = |key: &str| {
        fmtp.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    };
    let mode = match param("packetization-mode") {
        None => 0,
        Some(m) => m.parse().ok().filter(|m| *m <= 1)?,
    };
    // Without one, RFC 6184 §8.1 means Constrained Baseline level 1.0 (0x42000a).
    let profile_level_id = match param("profile-level-id") {
        None => 0x42000a,
        Some(p) => u32::from_str_radix(p, 16)
            .ok()
            .filter(|p| *p <= 0xff_ffff)?,
    };
    Some(VideoCodec::H264 {
        mode,
        profile_level_id,
    })
}

/// What our offers carry: payload type and codec (H.264 Constrained Baseline 3.1).
const OFFERED: [(u8, VideoCodec); 3] = [
    (96, VideoCodec::Vp8),
    (
        97,
        VideoCodec::H264 {
            mode: 1,
            profile_level_id: 0x42e01f,
        },
    ),
    (
        98,
        VideoCodec::H264 {
            mode: 0,
            profile_level_id: 0x42e01f,
        },
    ),
];

/// The gateway's video m-line: in an offer (every codec we forward), or in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoLine {
    /// Our offer (outbound calls): VP8, H.264 modes 1 and 0, keyframe feedback, sendrecv.
    Offer { rtp: SocketAddr, rtcp: SocketAddr },
    /// Port 0: no video on this call (the offer's first payload type keeps it valid).
    Rejected { pt: u8 },
    Accepted {
        /// Our video RTP socket's address; RTCP on the same with rtcp-mux, else `rtcp`.
        rtp: SocketAddr,
        rtcp: SocketAddr,
        rtcp_mux: bool,
        chosen: Chosen,
        direction: Direction,
        /// Our key when the m-line is SDES-keyed.
        sdes: Option<SdesAnswer>,
    },
}

impl VideoLine {
    /// The m-line and its attributes (after the audio's, in the offer's order).
    pub fn to_sdp(&self) -> String {
        match self {
            VideoLine::Offer { rtp, rtcp } => {
                let mut s = format!("m=video {} RTP/AVP 96 97 98\r\n", rtp.port());
                for (pt, codec) in OFFERED {
                    s.push_str(&format!("a=rtpmap:{pt} {}/90000\r\n", codec.name()));
                    if let Some(f) = codec.fmtp() {
                        s.push_str(&format!("a=fmtp:{pt} {f}\r\n"));
                    }
                }
                s.push_str("a=rtcp-fb:* nack\r\na=rtcp-fb:* nack pli\r\na=rtcp-fb:* ccm fir\r\n");
                s.push_str("a=rtcp-fb:* ccm tmmbr\r\n");
                s.push_str(&format!("a=rtcp:{}\r\na=sendrecv\r\n", rtcp.port()));
                s
            }
            VideoLine::Rejected { pt } => format!("m=video 0 RTP/AVP {pt}\r\n"),
            VideoLine::Accepted {
                rtp,
                rtcp,
                rtcp_mux,
                chosen,
                direction,
                sdes,
            } => {
                let pt = chosen.pt;
                let mut s = format!(
                    "m=video {} {} {pt}\r\na=rtpmap:{pt} {}/90000\r\n",
                    rtp.port(),
                    sdes.as_ref().map_or("RTP/AVP", |a| a.profile.name()),
                    chosen.codec.name()
                );
                if let Some(f) = chosen.codec.fmtp() {
                    s.push_str(&format!("a=fmtp:{pt} {f}\r\n"));
                }
                // What we act on: its NACKs (answered from what we sent it lately) and
                // keyframe requests both ways.
                let fb = chosen.feedback;
                if fb.nack {
                    s.push_str(&format!("a=rtcp-fb:{pt} nack\r\n"));
                }
                if fb.pli {
                    s.push_str(&format!("a=rtcp-fb:{pt} nack pli\r\n"));
                }
                if fb.fir {
                    s.push_str(&format!("a=rtcp-fb:{pt} ccm fir\r\n"));
                }
                if fb.tmmbr {
                    s.push_str(&format!("a=rtcp-fb:{pt} ccm tmmbr\r\n"));
                }
                if *rtcp_mux {
                    s.push_str("a=rtcp-mux\r\n");
                } else {
                    s.push_str(&format!("a=rtcp:{}\r\n", rtcp.port()));
                }
                s.push_str(&format!("a={}\r\n", direction.attr()));
                if let Some(a) = sdes {
                    s.push_str(&a.attribute());
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What baresip 1.0 offers with `video_codecs=VP8,H264` (trimmed).
    const VIDEO_PHONE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n\
        m=video 10004 RTP/AVP 100 101 102\r\nb=AS:2000\r\n\
        a=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=0;profile-level-id=42e01f\r\n\
        a=rtpmap:101 H264/90000\r\na=fmtp:101 packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:102 VP8/90000\r\n\
        a=rtcp-fb:* nack pli\r\na=rtcp-fb:* ccm fir\r\na=rtcp-fb:101 nack\r\na=sendrecv\r\n";

    #[test]
    fn a_video_phone_offer() {
        let v = PhoneVideo::parse(VIDEO_PHONE).unwrap();
        assert_eq!(v.rtp, Some("127.0.0.1:10004".parse().unwrap()));
        assert_eq!(v.rtcp, Some("127.0.0.1:10005".parse().unwrap()));
        assert!(!v.rtcp_mux);
        assert_eq!(v.max_kbps, Some(2_000));
        let h264 = |mode| VideoCodec::H264 {
            mode,
            profile_level_id: 0x42e01f,
        };
        let all = Feedback {
            nack: false,
            pli: true,
            fir: true,
            tmmbr: false,
        };
        assert_eq!(
            v.codecs,
            [
                (h264(0), 100, all),
                (h264(1), 101, Feedback { nack: true, ..all }),
                (VideoCodec::Vp8, 102, all)
            ]
        );
        let chosen = v.choose().unwrap();
        assert_eq!((chosen.codec, chosen.pt), (VideoCodec::Vp8, 102));
    }

    #[test]
    fn what_is_not_answered_with_video() {
        let sdp = |m: &str| format!("v=0\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n{m}");
        // No video m-line at all.
        assert_eq!(PhoneVideo::parse(&sdp("m=audio 4 RTP/AVP 0\r\n")), None);
        for (video, why) in [
            ("m=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n", "port 0"),
            (
                "m=video 5 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\n",
                "RTP/SAVP without a crypto line",
            ),
            (
                "m=video 5 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
                "DTLS-SRTP",
            ),
            (
                "m=video 5 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\n\
                 a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=\r\n",
                "a malformed SDES key",
            ),
            ("m=video 5 RTP/AVP 31\r\n", "H.261 (static, no rtpmap)"),
            (
                "m=video 5 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\n",
                "interleaved H.264",
            ),
            (
                "m=video 5 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=zz\r\n",
                "a malformed profile-level-id",
            ),
            ("m=video 5 RTP/AVP 96\r\na=rtpmap:96 VP8/48000\r\n", "a wrong clock"),
        ] {
            let v = PhoneVideo::parse(&sdp(&format!("m=audio 4 RTP/AVP 0\r\n{video}"))).unwrap();
            assert_eq!(v.choose(), None, "{why}");
        }
        // H.264 without fmtp: mode 0, Constrained Baseline 1.0.
        let v = PhoneVideo::parse(&sdp("m=video 5 RTP/AVP 96\r\na=rtpmap:96 h264/90000\r\n"));
        assert_eq!(
            v.unwrap().choose().map(|c| c.codec),
            Some(VideoCodec::H264 {
                mode: 0,
                profile_level_id: 0x42000a
            })
        );
    }

    #[test]
    fn rtcp_mux_rtcp_attribute_and_tias() {
        let v = PhoneVideo::parse(
            "v=0\r\nm=audio 4 RTP/AVP 0\r\nc=IN IP4 9.9.9.9\r\n\
             m=video 6000 RTP/AVPF 96\r\nc=IN IP4 1.2.3.4\r\nb=TIAS:1500000\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtcp:6100\r\na=recvonly\r\n",
        )
        .unwrap();
        assert_eq!(v.rtp, Some("1.2.3.4:6000".parse().unwrap()));
        assert_eq!(v.rtcp, Some("1.2.3.4:6100".parse().unwrap()));
        assert_eq!(
            (v.max_kbps, v.direction),
            (Some(1_500), Direction::RecvOnly)
        );
        let mux = PhoneVideo::parse(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 6000 RTP/AVP 96\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtcp-mux\r\n",
        )
        .unwrap();
        assert_eq!((mux.rtcp, mux.rtcp_mux), (mux.rtp, true));
    }

    #[test]
    fn answers() {
        let chosen = Chosen {
            codec: VideoCodec::H264 {
                mode: 1,
                profile_level_id: 0x42e01f,
            },
            pt: 101,
            feedback: Feedback {
                nack: true,
                pli: true,
                fir: false,
                tmmbr: true,
            },
        };
        let a = VideoLine::Accepted {
            rtp: "10.0.0.1:30002".parse().unwrap(),
            rtcp: "10.0.0.1:30003".parse().unwrap(),
            rtcp_mux: false,
            chosen,
            direction: Direction::SendRecv,
            sdes: None,
        }
        .to_sdp();
        assert_eq!(
            a,
            "m=video 30002 RTP/AVP 101\r\na=rtpmap:101 H264/90000\r\n\
             a=fmtp:101 profile-level-id=42e01f;packetization-mode=1\r\n\
             a=rtcp-fb:101 nack\r\na=rtcp-fb:101 nack pli\r\na=rtcp-fb:101 ccm tmmbr\r\n\
             a=rtcp:30003\r\na=sendrecv\r\n"
        );
        // It reads back as the same choice.
        let back = PhoneVideo::parse(&format!("v=0\r\nc=IN IP4 10.0.0.1\r\n{a}")).unwrap();
        assert_eq!(
            back.choose().map(|c| (c.codec, c.pt)),
            Some((chosen.codec, 101))
        );
        assert_eq!(
            VideoLine::Rejected { pt: 34 }.to_sdp(),
            "m=video 0 RTP/AVP 34\r\n"
        );
    }

    #[test]
    fn a_keyed_video_offer_is_chosen_and_answered_keyed() {
        let offer = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4 RTP/SAVP 0\r\n\
            m=video 5 RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        let v = PhoneVideo::parse(offer).unwrap();
        let chosen = v.choose().unwrap();
        let sdes = v.keying.answer(crate::srtp::KeySalt([6; 30])).unwrap();
        assert!(sdes.is_some());
        let a = VideoLine::Accepted {
            rtp: "10.0.0.1:30002".parse().unwrap(),
            rtcp: "10.0.0.1:30002".parse().unwrap(),
            rtcp_mux: true,
            chosen,
            direction: Direction::SendRecv,
            sdes,
        }
        .to_sdp();
        assert!(a.starts_with("m=video 30002 RTP/SAVPF 96\r\n"), "{a}");
        assert!(
            a.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"),
            "{a}"
        );
    }

    #[test]
    fn our_offer_reads_back_with_every_codec() {
        let offer = VideoLine::Offer {
            rtp: "10.0.0.1:30004".parse().unwrap(),
            rtcp: "10.0.0.1:30005".parse().unwrap(),
        }
        .to_sdp();
        let v = PhoneVideo::parse(&format!("v=0\r\nc=IN IP4 10.0.0.1\r\n{offer}")).unwrap();
        assert_eq!(v.rtcp, Some("10.0.0.1:30005".parse().unwrap()));
        let codecs: Vec<_> = v.codecs.iter().map(|(c, pt, _)| (*pt, *c)).collect();
        assert_eq!(codecs, OFFERED);
        assert!(v.codecs.iter().all(|(_, _, f)| f.pli && f.fir));
        assert_eq!(v.choose().map(|c| c.pt), Some(96));
    }
}

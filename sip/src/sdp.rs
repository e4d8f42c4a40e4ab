//! The phone side's SDP (RFC 4566, offer/answer per RFC 3264): one audio m-line, plain
//! RTP/AVP or SDES-keyed RTP/SAVP ([`crate::sdes`]). Reads what a phone offers (address,
//! port, codecs, telephone-event, ptime, direction, keys) and writes the gateway's answer
//! or offer; a video m-line is [`crate::video_sdp`]'s. The WebRTC side is str0m's.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use crate::sdes::{Keying, SdesAnswer};

/// The audio codecs a call can use, in the gateway's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Opus,
    G722,
    Pcmu,
    Pcma,
}

impl Codec {
    /// Its SDP encoding name (`PCMU`, …).
    pub fn name(self) -> &'static str {
        self.rtpmap().0
    }

    /// The rtpmap encoding name and clock rate as written in SDP. (G.722's RTP clock
    /// rate is 8,000 although it samples at 16 kHz: RFC 3551 §4.5.2.)
    fn rtpmap(self) -> (&'static str, u32, Option<u8>) {
        match self {
            Codec::Opus => ("opus", 48_000, Some(2)),
            Codec::G722 => ("G722", 8_000, None),
            Codec::Pcmu => ("PCMU", 8_000, None),
            Codec::Pcma => ("PCMA", 8_000, None),
        }
    }

    fn from_name(name: &str, rate: u32) -> Option<Codec> {
        [Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|c| {
                let (n, r, _) = c.rtpmap();
                n.eq_ignore_ascii_case(name) && r == rate
            })
    }

    /// Static payload types (RFC 3551) when the offer has no rtpmap for them.
    fn from_static(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            _ => None,
        }
    }
}

/// Media direction as the SDP's author sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an attribute line (`a=sendonly`, …) states, if it is one.
    pub(crate) fn of_attribute(line: &str) -> Option<Direction> {
        match line {
            "a=sendrecv" => Some(Direction::SendRecv),
            "a=sendonly" => Some(Direction::SendOnly),
            "a=recvonly" => Some(Direction::RecvOnly),
            "a=inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// What the other side answers to this direction.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// On hold (RFC 3264 §8.4: the holder sends sendonly or inactive, or a 0.0.0.0
    /// connection address in older phones).
    pub fn is_hold(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::Inactive)
    }
}

/// The address of a `c=` line's value (`IN IP4 192.0.2.1`, a multicast `/ttl` dropped).
pub(crate) fn connection_addr(c: &str) -> Option<IpAddr> {
    c.split_whitespace()
        .nth(2)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}

/// What the phone's SDP says about its audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneMedia {
    /// Where the phone wants RTP (None: the connection address is 0.0.0.0, a hold).
    pub rtp: Option<SocketAddr>,
    /// Codecs offered, with their payload types, in the phone's order.
    pub codecs: Vec<(Codec, u8)>,
    /// The telephone-event payload type at the chosen clock rate, if offered.
    pub telephone_event: Option<(u8, u32)>,
    pub ptime_ms: u32,
    pub direction: Direction,
    /// Its profile and keys (RFC 4568).
    pub keying: Keying,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("no audio m-line")]
    NoAudio,
    #[error("no connection address for the audio")]
    NoAddress,
    #[error("bad {0} line")]
    Bad(&'static str),
    #[error("SDP over {0} bytes")]
    TooLarge(usize),
}

/// Largest SDP read.
pub const MAX_SDP: usize = 16 * 1024;

impl PhoneMedia {
    /// Read the first audio m-line of `sdp` (other m-lines, e.g. video, are left for the
    /// answer to reject).
    pub fn parse(sdp: &str) -> Result<PhoneMedia, SdpError> {
        if sdp.len() > MAX_SDP {
            return Err(SdpError::TooLarge(MAX_SDP));
        }
        let mut session_addr: Option<IpAddr> = None;
        let mut session_dir = Direction::SendRecv;
        let mut audio: Option<(u16, Vec<u8>)> = None;
        let mut media_addr: Option<IpAddr> = None;
        let mut dir: Option<Direction> = None;
        let mut rtpmaps: Vec<(u8, String, u32)> = Vec::new();
        let mut ptime = 20;
        let mut keying = Keying::default();
        let mut section = 0; // 0: session, 1: the audio m-line, 2: another m-line after it
        for line in sdp.lines().map(str::trim) {
            if let Some(m) = line.strip_prefix("m=") {
                if section == 1 || audio.is_some() {
                    section = 2;
                    continue;
                }
                let f: Vec<&str> = m.split_whitespace().collect();
                if f.first() == Some(&"audio") {
                    let port = f
                        .get(1)
                        .and_then(|p| p.parse().ok())
                        .ok_or(SdpError::Bad("m="))?;
                    let pts = f.iter().skip(3).filter_map(|p| p.parse().ok()).collect();
                    audio = Some((port, pts));
                    keying = Keying::with_profile(f.get(2).copied().unwrap_or_default());
                    section = 1;
                } else {
                    section = 2;
                }
                continue;
            }
            if section == 2 {
                continue;
            }
            let attr_dir = Direction::of_attribute(line);
            if let Some(c) = line.strip_prefix("c=") {
                let addr = connection_addr(c).ok_or(SdpError::Bad("c="))?;
                if section == 0 {
                    session_addr = Some(addr);
                } else {
                    media_addr = Some(addr);
                }
            } else if let Some(d) = attr_dir {
                if section == 0 {
                    session_dir = d;
                } else {
                    dir = Some(d);
                }
            } else if let Some(r) = line.strip_prefix("a=rtpmap:") {
                let mut it = r.splitn(2, ' ');
                let pt = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or(SdpError::Bad("a=rtpmap"))?;
                let mut enc = it.next().unwrap_or_default().split('/');
                let name = enc.next().unwrap_or_default().to_string();
                let rate = enc
                    .next()
                    .and_then(|r| r.parse().ok())
                    .ok_or(SdpError::Bad("a=rtpmap"))?;
                rtpmaps.push((pt, name, rate));
            } else if let Some(p) = line.strip_prefix("a=ptime:") {
                ptime = p.trim().parse().map_err(|_| SdpError::Bad("a=ptime"))?;
            } else if section == 1 {
                keying.read(line);
            }
        }
        let (port, pts) = audio.ok_or(SdpError::NoAudio)?;
        let addr = media_addr.or(session_addr).ok_or(SdpError::NoAddress)?;
        let mut codecs = Vec::new();
        let mut telephone_event = None;
        for pt in pts {
            let map = rtpmaps.iter().find(|(p, _, _)| *p == pt);
            match map {
                Some((_, name, rate)) if name.eq_ignore_ascii_case("telephone-event") => {
                    if telephone_event.is_none() || *rate == 8_000 {
                        telephone_event = Some((pt, *rate));
                    }
                }
                Some((_, name, rate)) => {
                    if let Some(c) = Codec::from_name(name, *rate) {
                        codecs.push((c, pt));
                    }
                }
                None => {
                    if let Some(c) = Codec::from_static(pt) {
                        codecs.push((c, pt));
                    }
                }
            }
        }
        let rtp = (!addr.is_unspecified() && port != 0).then(|| SocketAddr::new(addr, port));
        Ok(PhoneMedia {
            rtp,
            codecs,
            telephone_event,
            ptime_ms: ptime.clamp(10, 60),
            direction: dir.unwrap_or(session_dir),
            keying,
        })
    }

    /// The codec to use: the first of `ours` (in our preference) that the phone offered.
    pub fn choose(&self, ours: &[Codec]) -> Option<(Codec, u8)> {
        ours.iter()
            .find_map(|want| self.codecs.iter().find(|(c, _)| c == want).copied())
    }
}

/// What the gateway puts in its SDP for a call: its RTP address, the codec and payload
/// type, telephone-event, ptime, direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub rtp: SocketAddr,
    /// (codec, payload type), first preferred; an answer has exactly one.
    pub codecs: Vec<(Codec, u8)>,
    pub telephone_event: Option<(u8, u32)>,
    pub ptime_ms: u32,
    pub direction: Direction,
    /// The video m-line of an answer to a phone that offered video (accepted or
    /// rejected); None when the phone offered none.
    pub video: Option<crate::video_sdp::VideoLine>,
    /// Our key for an SDES-keyed audio m-line (RTP/SAVP); None: plain RTP/AVP.
    pub sdes: Option<SdesAnswer>,
}

impl LocalMedia {
    /// The SDP text (`session_id` and `version` for the o= line: the version must grow
    /// with each new offer or answer of the session).
    pub fn to_sdp(&self, session_id: u64, version: u64) -> String {
        let ip = self.rtp.ip();
        let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut pts: Vec<String> = self.codecs.iter().map(|(_, pt)| pt.to_string()).collect();
        if let Some((pt, _)) = self.telephone_event {
            pts.push(pt.to_string());
        }
        let mut s = format!(
            "v=0\r\no=switchboard {session_id} {version} IN {fam} {ip}\r\ns=switchboard\r\n\
             c=IN {fam} {ip}\r\nt=0 0\r\nm=audio {} {} {}\r\n",
            self.rtp.port(),
            self.sdes.as_ref().map_or("RTP/AVP", |a| a.profile.name()),
            pts.join(" ")
        );
        for (c, pt) in &self.codecs {
            let (name, rate, ch) = c.rtpmap();
            match ch {
                Some(n) => s.push_str(&format!("a=rtpmap:{pt} {name}/{rate}/{n}\r\n")),
                None => s.push_str(&format!("a=rtpmap:{pt} {name}/{rate}\r\n")),
            }
        }
        if let Some((pt, rate)) = self.telephone_event {
            s.push_str(&format!(
                "a=rtpmap:{pt} telephone-event/{rate}\r\na=fmtp:{pt} 0-15\r\n"
            ));
        }
        s.push_str(&format!(
            "a=ptime:{}\r\na={}\r\n",
            self.ptime_ms,
            self.direction.attr()
        ));
        if let Some(a) = &self.sdes {
            s.push_str(&a.attribute());
        }
        if let Some(v) = &self.video {
            s.push_str(&v.to_sdp());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What baresip 1.0 offers with PCMU, PCMA, G.722 and opus enabled (trimmed).
    const BARESIP: &str = "v=0\r\no=- 1234 5678 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10002 RTP/AVP 96 9 0 8 101\r\nb=AS:512\r\n\
        a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n\
        a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n\
        m=video 10004 RTP/AVP 100\r\na=rtpmap:100 H264/90000\r\na=sendrecv\r\n";

    #[test]
    fn a_softphone_offer() {
        let m = PhoneMedia::parse(BARESIP).unwrap();
        assert_eq!(m.rtp, Some("127.0.0.1:10002".parse().unwrap()));
        assert_eq!(
            m.codecs,
            [
                (Codec::Opus, 96),
                (Codec::G722, 9),
                (Codec::Pcmu, 0),
                (Codec::Pcma, 8)
            ]
        );
        assert_eq!(m.telephone_event, Some((101, 8_000)));
        assert_eq!((m.ptime_ms, m.direction), (20, Direction::SendRecv));
        assert_eq!(
            m.choose(&[Codec::Pcma, Codec::Pcmu]),
            Some((Codec::Pcma, 8))
        );
        assert_eq!(m.choose(&[Codec::Opus]), Some((Codec::Opus, 96)));
    }

    #[test]
    fn static_payload_types_hold_and_media_level_lines() {
        // No rtpmap lines (static PTs), a media-level c= of 0.0.0.0 and sendonly: a hold.
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0\r\n\
                   c=IN IP4 0.0.0.0\r\na=ptime:30\r\na=sendonly\r\n";
        let m = PhoneMedia::parse(sdp).unwrap();
        assert_eq!(m.rtp, None);
        assert_eq!(m.codecs, [(Codec::Pcma, 8), (Codec::Pcmu, 0)]);
        assert_eq!(m.ptime_ms, 30);
        assert!(m.direction.is_hold());
        assert_eq!(m.direction.reversed(), Direction::RecvOnly);
    }

    #[test]
    fn bad_offers_are_errors() {
        assert_eq!(
            PhoneMedia::parse("v=0\r\nm=video 1 RTP/AVP 96\r\n"),
            Err(SdpError::NoAudio)
        );
        assert_eq!(
            PhoneMedia::parse("v=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(SdpError::NoAddress)
        );
        assert_eq!(
            PhoneMedia::parse("v=0\r\nc=IN IP4 nonsense\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(SdpError::Bad("c="))
        );
        assert_eq!(
            PhoneMedia::parse("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::Bad("m="))
        );
        assert_eq!(
            PhoneMedia::parse(&"a".repeat(MAX_SDP + 1)),
            Err(SdpError::TooLarge(MAX_SDP))
        );
        // An unknown codec only: parsed, nothing to choose (488 for the caller).
        let m = PhoneMedia::parse(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(m.choose(&[Codec::Pcmu, Codec::Pcma]), None);
    }

    #[test]
    fn the_answer_reads_back() {
        let local = LocalMedia {
            rtp: "127.0.0.1:30000".parse().unwrap(),
            codecs: vec![(Codec::Pcmu, 0)],
            telephone_event: Some((101, 8_000)),
            ptime_ms: 20,
            direction: Direction::SendRecv,
            video: None,
            sdes: None,
        };
        let sdp = local.to_sdp(7, 1);
        assert!(sdp.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{sdp}");
        let back = PhoneMedia::parse(&sdp).unwrap();
        assert_eq!(back.rtp, Some(local.rtp));
        assert_eq!(back.codecs, local.codecs);
        assert_eq!(back.telephone_event, local.telephone_event);
        let opus = LocalMedia {
            codecs: vec![(Codec::Opus, 111)],
            ..local
        };
        assert!(opus.to_sdp(7, 2).contains("a=rtpmap:111 opus/48000/2\r\n"));
    }

    /// baresip with `mediaenc=srtp-mand`: RTP/SAVP, its suites in order of preference.
    #[test]
    fn a_keyed_offer_is_answered_in_its_profile_with_our_key() {
        let offer = "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10002 RTP/SAVP 0 101\r\n\
            a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
            a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:aGVsbG8=\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
            a=sendrecv\r\n";
        let m = PhoneMedia::parse(offer).unwrap();
        assert_eq!(m.keying.profile, Some(crate::sdes::Profile::Savp));
        assert_eq!(m.keying.crypto.len(), 1);
        let sdes = m.keying.answer(crate::srtp::KeySalt([4; 30])).unwrap();
        let local = LocalMedia {
            rtp: "127.0.0.1:30000".parse().unwrap(),
            codecs: vec![(Codec::Pcmu, 0)],
            telephone_event: None,
            ptime_ms: 20,
            direction: Direction::SendRecv,
            video: None,
            sdes,
        };
        let sdp = local.to_sdp(7, 1);
        assert!(sdp.contains("m=audio 30000 RTP/SAVP 0\r\n"), "{sdp}");
        assert!(
            sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{sdp}"
        );
        let back = PhoneMedia::parse(&sdp).unwrap();
        assert_eq!(back.keying.crypto[0].key.0, [4; 30]);
        // The same offer in plain RTP/AVP is answered plain, its crypto lines ignored.
        let plain = PhoneMedia::parse(&offer.replace("RTP/SAVP", "RTP/AVP")).unwrap();
        assert_eq!(plain.keying.answer(crate::sdes::fresh_key()), Ok(None));
    }
}

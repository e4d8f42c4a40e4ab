//! What a phone (or anyone on the network) sends the SIP gateway: a SIP request parsed and
//! judged by the access rules (trunks, users, digest answers in its Authorization
//! headers); the SDP of an INVITE (parsed, a codec chosen, an answer written and read
//! back); RTP datagrams into a call's media pump (jitter buffer, G.711, RFC 4733, digits
//! typed to the phone), with frames ticked in between; a video endpoint's video m-line
//! (parsed, a codec chosen, our answer read back) and datagrams on its video socket (RTP,
//! RTCP keyframe requests, rewritten for the room and back), SDES-keyed or not (with the
//! mode's top bit: every datagram is also sealed and opened again, and opened as it came).
//! Nothing may panic; an answer we write must parse, keys included; what we seal opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::g711::Law;
use sip::media::CallMedia;
use sip::sdp::{Codec, LocalMedia, PhoneMedia};
use sip::srtp::{KeySalt, Protection, Srtp, SrtpError, Suite};
use sip::video::{FromPhone, VideoRelay};
use sip::video_sdp::{Chosen, Feedback, PhoneVideo, VideoLine, VideoCodec};

/// Datagrams on a video endpoint's socket (chunks prefixed by a one-byte length; a zero
/// length asks the phone for a keyframe): what passes is rewritten back for the phone.
fn video_datagrams(data: &[u8], keyed: bool) {
    let suite = if data.first().is_some_and(|b| b & 1 == 1) { Suite::AesCm128HmacSha1_32 } else { Suite::AesCm128HmacSha1_80 };
    let (a, b) = (KeySalt([1; 30]), KeySalt([2; 30]));
    let (mut us, mut them) = (Protection::keyed(Srtp::new(suite, &a, &b)), Protection::keyed(Srtp::new(suite, &b, &a)));
    let chosen = Chosen { codec: VideoCodec::Vp8, pt: 100, feedback: Feedback { nack: true, pli: true, fir: true, tmmbr: true } };
    let mut relay = VideoRelay::new(chosen, 9);
    let t0 = std::time::Instant::now();
    let (mut i, mut out) = (0, Vec::new());
    while i < data.len() {
        let n = usize::from(data[i]);
        i += 1;
        if n == 0 {
            if let Some(rtcp) = relay.keyframe_request(t0 + std::time::Duration::from_secs(i as u64)) {
                assert!(rtcp.len() >= 20 && rtcp[1] == 201);
            }
            continue;
        }
        let end = (i + n).min(data.len());
        if keyed {
            let _ = them.open(&data[i..end]);
            if let Ok(wire) = us.seal(&data[i..end]).map(<[u8]>::to_vec) {
                match them.open(&wire) {
                    Ok(plain) => assert_eq!(plain, &data[i..end], "what we seal opens as it was"),
                    Err(e) => assert_eq!(e, SrtpError::Replay),
                }
            }
        }
        if let Ok(FromPhone::Media(p)) = relay.from_phone(&data[i..end]) {
            relay.to_phone(&p, &mut out);
            assert_eq!(sip::rtp::parse(&out).map(|(_, payload)| payload.len()), Ok(p.payload.len()));
        }
        i = end;
    }
}

/// A SIP request through the parser, the transport-source stamp (whatever its headers
/// claim, the source is the transport's) and the access rules.
fn request(bytes: &[u8]) {
    use rsipstack::sip::{HeadersExt, SipMessage};
    use rsipstack::transaction::endpoint::MessageInspector;
    use sip::access::{Access, Credentials, Request, Trunk};
    let Ok(req) = rsipstack::sip::Request::try_from(bytes) else { return };
    let from: std::net::SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let stamped = sip::transport_source::SourceStamp
        .after_received(SipMessage::Request(req), Some(&rsipstack::transport::SipAddr::from(from)));
    let SipMessage::Request(req) = stamped else { return };
    assert_eq!(sip::transport_source::source(&req), Some(from), "the source is the transport's");
    let access = Access::new(
        vec![Trunk {
            name: "t".into(),
            networks: vec!["127.0.0.0/8".parse().unwrap()],
            numbers: vec!["100".into()],
            auth: Some(Credentials { username: "u".into(), password: "p".into() }),
            outbound: None,
        }],
        vec![Credentials { username: "alice".into(), password: "secret".into() }],
        b"fuzz",
    );
    let (a, p) = sip::access::authorization_headers(&req);
    let caller = req
        .from_header()
        .ok()
        .and_then(|f| f.uri().ok())
        .and_then(|u| u.user().map(str::to_string))
        .unwrap_or_default();
    let called = req.uri.user().unwrap_or_default().to_string();
    for source in ["127.0.0.1".parse().unwrap(), from.ip()] {
        let r = Request {
            method: &req.method,
            uri: &req.uri,
            source,
            called: &called,
            caller: &caller,
            authorization: a.as_deref(),
            proxy_authorization: p.as_deref(),
        };
        let _ = access.admit(&r, 1_000);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 4 == 2 {
        return request(rest);
    }
    if mode % 4 == 3 {
        return video_datagrams(rest, mode & 0x80 != 0);
    }
    if mode % 4 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(m) = PhoneMedia::parse(&text) {
            let sdes = m.keying.answer(KeySalt([3; 30]));
            if let (Some(codec), Ok(sdes)) = (m.choose(&[Codec::Pcmu, Codec::Pcma]), sdes) {
                let video = PhoneVideo::parse(&text).map(|v| match (v.choose(), v.keying.answer(KeySalt([4; 30]))) {
                    (Some(chosen), Ok(sdes)) => VideoLine::Accepted {
                        rtp: "127.0.0.1:30002".parse().unwrap(),
                        rtcp: "127.0.0.1:30003".parse().unwrap(),
                        rtcp_mux: v.rtcp_mux,
                        chosen,
                        direction: v.direction.reversed(),
                        sdes,
                    },
                    _ => VideoLine::Rejected { pt: v.first_pt },
                });
                let local = LocalMedia {
                    rtp: "127.0.0.1:30000".parse().unwrap(),
                    codecs: vec![codec],
                    telephone_event: m.telephone_event,
                    ptime_ms: m.ptime_ms,
                    direction: m.direction.reversed(),
                    video: video.clone(),
                    sdes: sdes.clone(),
                };
                let answer = local.to_sdp(1, 1);
                let back = PhoneMedia::parse(&answer).expect("our answer parses");
                assert_eq!(back.codecs, vec![codec]);
                let ours = back.keying.crypto.first().map(|c| (c.tag, c.suite, c.key.clone()));
                assert_eq!(ours, sdes.map(|a| (a.tag, a.suite, a.ours)), "our key reads back");
                if let Some(VideoLine::Accepted { chosen, sdes, .. }) = video {
                    let v = PhoneVideo::parse(&answer).expect("our video m-line parses");
                    assert_eq!(v.choose().map(|c| (c.codec, c.pt)), Some((chosen.codec, chosen.pt)));
                    assert_eq!(v.keying.crypto.first().map(|c| c.key.clone()), sdes.map(|a| a.ours));
                }
            }
        }
        return;
    }
    // Datagrams: chunks prefixed by a one-byte length; a zero length ticks a frame.
    let law = if mode & 2 == 0 { Law::Ulaw } else { Law::Alaw };
    let Ok(mut media) = CallMedia::new(law, law.payload_type(), Some(101), 1, 2) else { return };
    media.send_digits("1w#");
    let mut i = 0;
    while i < rest.len() {
        let n = usize::from(rest[i]);
        i += 1;
        if n == 0 {
            let t = media.tick().expect("a tick");
            assert!(!t.to_phone.is_empty() && t.to_phone.iter().all(|p| p.len() >= 12));
            let q = media.quality();
            assert!((0.0..=1.0).contains(&q.loss) && (1.0..=4.5).contains(&q.mos));
            continue;
        }
        let end = (i + n).min(rest.len());
        let _ = media.phone_packet(&rest[i..end], i as u64);
        i = end;
    }
});

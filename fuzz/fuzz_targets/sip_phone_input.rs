//! What a phone (or anyone on the network) sends the SIP gateway, past the SIP stack: the
//! SDP of an INVITE (parsed, a codec chosen, an answer written and read back) and RTP
//! datagrams into a call's media pump (jitter buffer, G.711, RFC 4733), with frames ticked
//! in between. Nothing may panic; an answer we write must parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::g711::Law;
use sip::media::CallMedia;
use sip::sdp::{Codec, LocalMedia, PhoneMedia};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(m) = PhoneMedia::parse(&text) {
            if let Some(codec) = m.choose(&[Codec::Pcmu, Codec::Pcma]) {
                let local = LocalMedia {
                    rtp: "127.0.0.1:30000".parse().unwrap(),
                    codecs: vec![codec],
                    telephone_event: m.telephone_event,
                    ptime_ms: m.ptime_ms,
                    direction: m.direction.reversed(),
                };
                let back = PhoneMedia::parse(&local.to_sdp(1, 1)).expect("our answer parses");
                assert_eq!(back.codecs, vec![codec]);
            }
        }
        return;
    }
    // Datagrams: chunks prefixed by a one-byte length; a zero length ticks a frame.
    let law = if mode & 2 == 0 { Law::Ulaw } else { Law::Alaw };
    let Ok(mut media) = CallMedia::new(law, law.payload_type(), Some(101), 1, 2) else { return };
    let mut i = 0;
    while i < rest.len() {
        let n = usize::from(rest[i]);
        i += 1;
        if n == 0 {
            let t = media.tick().expect("a tick");
            assert!(t.to_phone.len() >= 12);
            continue;
        }
        let end = (i + n).min(rest.len());
        let _ = media.phone_packet(&rest[i..end]);
        i = end;
    }
});

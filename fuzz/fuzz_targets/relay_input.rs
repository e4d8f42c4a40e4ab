//! What another node — or anyone who reaches the relay port and completes a handshake —
//! sends a relay link: datagrams (the flow header and an RTP packet) and the bytes of the
//! control stream, in chunks of any size. Nothing may panic; what reads must write back
//! to the same bytes (datagrams) or the same message (control).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay::control::ControlReader;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        if let Ok((flow, rtp)) = relay::flow::decode(rest) {
            let mut out = Vec::new();
            relay::flow::encode(flow, rtp, &mut out);
            assert_eq!(out, rest, "a datagram reads back");
        }
        return;
    }
    let mut reader = ControlReader::default();
    for chunk in rest.chunks(usize::from(mode >> 1).max(1)) {
        reader.push(chunk);
        loop {
            match reader.next_message() {
                Ok(Some(m)) => {
                    let mut again = ControlReader::default();
                    again.push(&m.encode());
                    assert_eq!(again.next_message(), Ok(Some(m)), "a message reads back");
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

//! The signaling protocol's parser alone: any bytes as a WebSocket text frame. A frame
//! that parses must serialize back to an equivalent message (the protocol is
//! round-trippable), and server messages built from it never fail to serialize.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::protocol::ClientMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = serde_json::from_str::<ClientMessage>(text) {
        let again = serde_json::to_string(&m).expect("a parsed message serializes");
        let back: ClientMessage = serde_json::from_str(&again).expect("and parses again");
        assert_eq!(back, m);
    }
});

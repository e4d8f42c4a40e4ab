//! A signaling session: JSON text frames (one per line of the input) parsed as client
//! messages and handled by a hub with two joined participants, as the WebSocket session
//! does. Nothing may panic; every refusal is an error message to that client.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use signaling::protocol::ClientMessage;
use signaling::{Claims, Hub, KeyStore, VideoGrant};

#[path = "common.rs"]
mod common;
use common::Plane;

struct Fixture {
    keys: KeyStore,
    token: String,
    other: String,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let keys = KeyStore::new([("k".to_string(), "fuzzing-secret-0123456789".to_string())]);
        let now = signaling::auth::unix_now();
        let claims = Claims { iss: "k".into(), sub: "fuzzer".into(), exp: now + 86_400, nbf: None, kind: Default::default(), attributes: Default::default(), sip: Default::default(), metadata: None, name: None, video: VideoGrant::join("room") };
        let token = keys.mint("k", &claims).unwrap();
        let other = keys.mint("k", &Claims { sub: "other".into(), ..claims }).unwrap();
        Fixture { keys, token, other }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (keys, token) = (&f.keys, &f.token);
    let hub = Hub::new(keys.clone(), Arc::new(Plane));
    let now = signaling::hub::Now::read();
    let Ok((id, mut rx)) = hub.join(token, Some(1), now) else { return };
    let _peer = hub.join(&f.other, None, now);
    for frame in data.split(|b| *b == b'\n') {
        let Ok(text) = std::str::from_utf8(frame) else { continue };
        // A join frame parses too; the hub refuses a second one.
        if let Ok(m) = serde_json::from_str::<ClientMessage>(text) {
            hub.handle(id, m);
        }
        while rx.try_recv().is_some() {}
    }
    // The tokens themselves: arbitrary text never verifies (and never panics).
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(keys.verify(text, now.unix).is_err() || text == token.as_str() || text == f.other.as_str());
    }
});

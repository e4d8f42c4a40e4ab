//! LiveKit's signal path: frames (each a 2-byte big-endian length, then that many bytes)
//! decoded as `SignalRequest` protobufs and mapped by `Signal`, as the `/rtc` session does,
//! against a hub with two joined participants; what the hub answers is mapped back. Each
//! frame is also read as a data-channel `DataPacket`. Nothing may panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use livekit_protocol as lk;
use prost::Message;
use signaling::hub::Outbound;
use signaling::livekit::signal::{Signal, Step};
use signaling::protocol::ServerMessage;
use signaling::{Claims, Hub, KeyStore, VideoGrant};

#[path = "common.rs"]
mod common;
use common::Plane;

fn tokens() -> &'static (KeyStore, String, String) {
    static F: std::sync::OnceLock<(KeyStore, String, String)> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let keys = KeyStore::new([("k".to_string(), "fuzzing-secret-0123456789".to_string())]);
        let now = signaling::auth::unix_now();
        let claims = Claims { iss: "k".into(), sub: "fuzzer".into(), exp: now + 86_400, nbf: None, kind: Default::default(), attributes: Default::default(), sip: Default::default(), metadata: None, name: None, video: VideoGrant::join("room") };
        let a = keys.mint("k", &claims).unwrap();
        let b = keys.mint("k", &Claims { sub: "other".into(), ..claims }).unwrap();
        (keys, a, b)
    })
}

fuzz_target!(|data: &[u8]| {
    let (keys, a, b) = tokens();
    let hub = Hub::new(keys.clone(), Arc::new(Plane));
    let now = signaling::hub::Now::read();
    let Ok((id, mut rx)) = hub.join(a, None, now) else { return };
    let _other = hub.join(b, None, now);
    let Some(Outbound::Message(ServerMessage::Joined { participant, others, ice_servers, resume_token, .. })) = rx.try_recv() else { return };
    let (mut signal, _join) = Signal::joined(lk::Room::default(), participant, others, ice_servers, resume_token);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let frame = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let _ = signaling::livekit::data::inbound(id, "fuzzer", frame);
        let Ok(lk::SignalRequest { message: Some(req) }) = lk::SignalRequest::decode(frame) else { continue };
        for step in signal.on_request(req, 0) {
            match step {
                Step::Hub(m) => hub.handle(id, m),
                Step::Publish { sids, offer } => {
                    if hub.name_tracks(id, sids).is_ok() {
                        hub.handle(id, offer);
                    }
                }
                Step::Reply(r) => {
                    let _ = lk::SignalResponse { message: Some(r) }.encode_to_vec();
                }
                Step::UpdateSelf { update, .. } => {
                    let _ = hub.update_own(id, update);
                }
                Step::Leave | Step::Dropped(_) => {}
            }
        }
        while let Some(out) = rx.try_recv() {
            if let Outbound::Message(m) = out {
                for r in signal.on_server(m) {
                    let _ = lk::SignalResponse { message: Some(r) }.encode_to_vec();
                }
            }
        }
    }
});

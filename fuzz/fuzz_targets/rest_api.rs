//! The REST API (and LiveKit's RoomService over Twirp, protobuf and JSON) through its real
//! router: arbitrary methods, paths, content types and bodies with an admin token. Bad input must get a 4xx JSON error, never a 500 or a
//! panic. A forwarding mark a client sends never verifies.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use signaling::{AppState, Claims, Hub, KeyStore, VideoGrant};
use tower::ServiceExt;

#[path = "common.rs"]
mod common;
use common::Plane;

#[derive(Arbitrary, Debug)]
struct Call {
    method: u8,
    path: u8,
    room: String,
    identity: String,
    ctype: u8,
    auth: u8,
    body: Vec<u8>,
    /// A cluster forwarding mark a client might send (never one that verifies).
    mark: Option<String>,
}

/// The forwarding-mark key of a cluster with the fuzzing key.
fn hub_mark() -> &'static signaling::forwarding_mark::MarkKey {
    static K: OnceLock<signaling::forwarding_mark::MarkKey> = OnceLock::new();
    K.get_or_init(|| signaling::forwarding_mark::MarkKey::from_api_secret("fuzzing-secret-0123456789"))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap())
}

fuzz_target!(|calls: Vec<Call>| {
    let keys = KeyStore::new([("k".to_string(), "fuzzing-secret-0123456789".to_string())]);
    let hub = Arc::new(Hub::new(keys.clone(), Arc::new(Plane)));
    let now = signaling::hub::Now::read();
    let admin = Claims {
        iss: "k".into(),
        sub: "admin".into(),
        exp: now.unix + 60,
        nbf: None,
        kind: Default::default(),
        metadata: None,
        name: None,
        attributes: Default::default(),
        sip: Default::default(),
        video: VideoGrant { room_admin: true, room_create: true, room_list: true, room_join: false, ..VideoGrant::default() },
    };
    let admin = keys.mint("k", &admin).unwrap();
    let joiner = Claims { iss: "k".into(), sub: "alice".into(), exp: now.unix + 60, nbf: None, kind: Default::default(), attributes: Default::default(), sip: Default::default(), metadata: None, name: None, video: VideoGrant::join("r") };
    let _alice = hub.join(&keys.mint("k", &joiner).unwrap(), None, now);
    let app = signaling::router(AppState { hub, dev_key: None, rate: (1e9, 1e9), sip: None });
    for c in calls.into_iter().take(16) {
        let method = ["GET", "POST", "PATCH", "DELETE", "PUT"][c.method as usize % 5];
        let room: String = c.room.chars().filter(|ch| ch.is_ascii_graphic() && *ch != '/' && *ch != '?' && *ch != '#' && *ch != '%').take(40).collect();
        let who: String = c.identity.chars().filter(|ch| ch.is_ascii_alphanumeric()).take(20).collect();
        let room = if room.is_empty() { "r".to_string() } else { room };
        const TWIRP: [&str; 12] = ["CreateRoom", "ListRooms", "DeleteRoom", "ListParticipants", "GetParticipant", "RemoveParticipant",
            "MutePublishedTrack", "UpdateParticipant", "UpdateSubscriptions", "SendData", "UpdateRoomMetadata", "Nope"];
        let path = match c.path % 10 {
            8 | 9 => format!("/twirp/livekit.RoomService/{}", TWIRP[c.method as usize % TWIRP.len()]),
            0 => "/api/v1/rooms".to_string(),
            1 => format!("/api/v1/rooms/{room}"),
            2 => format!("/api/v1/rooms/{room}/participants"),
            3 => format!("/api/v1/rooms/{room}/participants/{who}"),
            4 => format!("/api/v1/rooms/{room}/participants/{who}/mute"),
            5 => format!("/api/v1/rooms/{room}/data"),
            6 => format!("/whip/{room}"),
            _ => format!("/whep/{room}/{who}"),
        };
        if let Some(m) = &c.mark {
            let key = hub_mark();
            assert!(key.verify(m, now.unix, method, &path).is_err(), "a forged mark verified: {m:?}");
        }
        let ctype = ["application/json", "application/sdp", "text/plain", "application/trickle-ice-sdpfrag", "application/protobuf"][c.ctype as usize % 5];
        let mut req = Request::builder().method(method).uri(&path).header("content-type", ctype);
        req = match c.auth % 3 {
            0 => req.header("authorization", format!("Bearer {admin}")),
            1 => req.header("authorization", "Bearer x.y.z"),
            _ => req,
        };
        let Ok(req) = req.body(Body::from(c.body)) else { continue };
        // WHIP/WHEP would wait for a media plane answer; only the API's own refusals run.
        if path.starts_with("/whip") || path.starts_with("/whep") {
            if c.auth % 3 == 0 && method == "POST" && ctype == "application/sdp" {
                continue;
            }
        }
        let resp = runtime().block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), app.clone().oneshot(req)).await
        });
        let Ok(Ok(resp)) = resp else { panic!("no response in 5 s for {method} {path}") };
        assert!(resp.status() != StatusCode::INTERNAL_SERVER_ERROR, "{method} {path} → 500");
    }
});

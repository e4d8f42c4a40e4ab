//! WHIP (RFC 9725): standard WebRTC ingest. `POST /whip/{room}` with an SDP offer and a
//! bearer access token creates a publishing participant (identity from the token) and
//! answers `201 Created` with the SDP answer, a `Location` for the session and an `ETag`.
//! `PATCH` on the session trickles ICE candidates (`application/trickle-ice-sdpfrag`),
//! `DELETE` ends it, `OPTIONS` answers CORS preflight.
//!
//! WHEP (draft-ietf-wish-whep): `POST /whep/{room}/{participant}` with the viewer's
//! receive-only offer plays that participant's audio and video; same session resource,
//! trickle and CORS. See `docs/whip-whep.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use dashmap::DashMap;
use sfu_core::{ParticipantId, PcKind, TrackSource};

use crate::auth::unix_now;
use crate::error::Error;
use crate::hub::{Hub, Now, Outbound};
use crate::protocol::{ClientMessage, ServerMessage};

/// How long a WHIP client waits for the media plane's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest SDP accepted.
const MAX_SDP: usize = 64 * 1024;

struct Session {
    participant: ParticipantId,
    room: String,
    etag: String,
    /// The connection the client's offer set up: the publisher one for WHIP, the
    /// subscriber one for WHEP.
    pc: PcKind,
    /// The client's current ICE ufrag: a PATCH with another one is an ICE restart.
    remote_ufrag: String,
    /// Answers to ICE restarts, from the session's message queue; and errors.
    restarts: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<RestartAnswer>>>,
}

/// The server's (ufrag, password, candidates) after an ICE restart, or why it failed.
type RestartAnswer = Result<(String, String, Vec<String>), String>;

/// The value of the first `a=NAME:` line of an SDP or SDP fragment.
fn sdp_attr<'a>(sdp: &'a str, name: &str) -> Option<&'a str> {
    sdp.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("a=")?.strip_prefix(name)?.strip_prefix(':'))
}

#[derive(Clone)]
pub struct WhipState {
    pub hub: Arc<Hub>,
    sessions: Arc<DashMap<String, Session>>,
}

impl WhipState {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self {
            hub,
            sessions: Arc::new(DashMap::new()),
        }
    }
}

fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("authorization, content-type, if-match"),
    );
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("location, etag, link"),
    );
    r
}

/// An error response, with the CORS headers every WHIP/WHEP response carries.
fn err(e: Error) -> Response {
    cors(e.into_response())
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(want))
        })
}

/// The caller's access token: the `Authorization: Bearer` header or, for players that
/// cannot set headers (Eyevinn's webrtc-player before 0.12, `<video>`-style URLs), the
/// `access_token` query parameter of RFC 6750 §2.3. The header wins when both are given.
fn bearer(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(t) = header {
        return Some(t.trim().to_string());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v)
}

/// The source each m-line carries, inferred from its kind (a WHIP client cannot declare
/// it): audio is the microphone, video the camera.
fn inferred_sources(sdp: &str) -> BTreeMap<String, TrackSource> {
    let mut out = BTreeMap::new();
    let mut kind = None;
    for l in sdp.lines().map(str::trim) {
        if let Some(m) = l.strip_prefix("m=") {
            kind = m.split(' ').next().map(str::to_string);
        } else if let Some(mid) = l.strip_prefix("a=mid:") {
            let src = match kind.as_deref() {
                Some("audio") => TrackSource::Microphone,
                _ => TrackSource::Camera,
            };
            out.insert(mid.to_string(), src);
        }
    }
    out
}

async fn options() -> Response {
    cors(StatusCode::NO_CONTENT.into_response())
}

/// What a WHIP or WHEP POST needs: the SDP offer, and a token for `room` with the grant.
enum Grant {
    Publish,
    Subscribe,
}

/// Check content type, token, room, grant and body; the token and the offer, or the
/// error response.
#[allow(clippy::result_large_err)] // the error is the HTTP response itself, built once
fn check_offer(
    s: &WhipState,
    room: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
    grant: Grant,
) -> Result<(String, String), Response> {
    if !content_type_is(headers, "application/sdp") {
        return Err(err(Error::UnsupportedMediaType(
            "the offer must be application/sdp".into(),
        )));
    }
    let token = bearer(headers, query).ok_or_else(|| err(Error::MissingToken))?;
    let claims = s
        .hub
        .keys()
        .verify(&token, unix_now())
        .map_err(|e| err(Error::from(e)))?;
    if claims.video.room != room {
        return Err(err(Error::Forbidden(
            "the token is for another room".into(),
        )));
    }
    let (granted, what) = match grant {
        Grant::Publish => (claims.video.can_publish, "publishing"),
        Grant::Subscribe => (claims.video.can_subscribe, "subscribing"),
    };
    if !granted {
        return Err(err(Error::Forbidden(format!(
            "the token does not grant {what}"
        ))));
    }
    if body.len() > MAX_SDP {
        return Err(err(Error::TooLarge("SDP over 64 KiB".into())));
    }
    let sdp = String::from_utf8(body.to_vec())
        .map_err(|_| err(Error::BadSdp("the offer is not UTF-8".into())))?;
    if !sdp.starts_with("v=0") || !sdp.contains("m=") {
        return Err(err(Error::BadSdp("the body is not an SDP offer".into())));
    }
    crate::sdp_limits::check_media_sections(&sdp).map_err(|e| err(Error::BadSdp(e)))?;
    Ok((token, sdp))
}

async fn create(
    State(s): State<WhipState>,
    Path(room): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, sdp) =
        match check_offer(&s, &room, &headers, query.as_deref(), &body, Grant::Publish) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let (id, rx) = match s.hub.join(&token, None, Now::read()) {
        Ok(ok) => ok,
        Err(e) => return err(e),
    };
    let sources = inferred_sources(&sdp);
    let ufrag = sdp_attr(&sdp, "ice-ufrag").unwrap_or_default().to_string();
    s.hub
        .handle(id, ClientMessage::PublishOffer { sdp, sources });
    finish(
        s,
        "whip",
        &room.clone(),
        room,
        id,
        rx,
        PcKind::Publisher,
        ufrag,
    )
    .await
}

/// WHEP: `POST /whep/{room}` plays the room's active speaker.
async fn whep_speaker(
    state: State<WhipState>,
    Path(room): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    whep(state, room, None, query, headers, body).await
}

/// WHEP: `POST /whep/{room}/{participant}` plays that participant (by identity).
async fn whep_create(
    state: State<WhipState>,
    Path((room, target)): Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    whep(state, room, Some(target), query, headers, body).await
}

async fn whep(
    State(s): State<WhipState>,
    room: String,
    target: Option<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (token, sdp) = match check_offer(
        &s,
        &room,
        &headers,
        query.as_deref(),
        &body,
        Grant::Subscribe,
    ) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Some(t) = &target {
        if s.hub.room_members(&room).iter().all(|p| &p.identity != t) {
            return err(Error::NotFound("no such participant in the room".into()));
        }
    }
    let (id, rx) = match s.hub.join_viewer(&token, Now::read()) {
        Ok(ok) => ok,
        Err(e) => return err(e),
    };
    let ufrag = sdp_attr(&sdp, "ice-ufrag").unwrap_or_default().to_string();
    if let Err(e) = s
        .hub
        .whep_offer(id, target.as_deref(), Default::default(), sdp)
    {
        s.hub.leave(id);
        return err(e);
    }
    let path = match &target {
        Some(t) => format!("{room}/{t}"),
        None => format!("{room}/-"),
    };
    finish(s, "whep", &path, room, id, rx, PcKind::Subscriber, ufrag).await
}

/// Wait for the media plane's answer on the participant's queue and answer the HTTP
/// request: 201 with the SDP, `Location` and `ETag`; or an error, leaving nothing behind.
#[allow(clippy::too_many_arguments)]
async fn finish(
    s: WhipState,
    kind: &str,
    path: &str,
    room: String,
    id: ParticipantId,
    mut rx: crate::outbound::OutboundRx,
    pc: PcKind,
    remote_ufrag: String,
) -> Response {
    let outcome = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(o) = rx.recv().await {
            match o {
                Outbound::Message(ServerMessage::PublishAnswer { sdp }) => return Ok(sdp),
                Outbound::Message(ServerMessage::Error { message, .. }) => return Err(message),
                Outbound::Close { reason, .. } => return Err(reason),
                _ => {}
            }
        }
        Err("the session ended".to_string())
    })
    .await;
    let answer = match outcome {
        Ok(Ok(a)) => a,
        Ok(Err(why)) => {
            s.hub.leave(id);
            return err(if why.contains("no codec in common") {
                Error::NoCommonCodec(why)
            } else if why.contains("not grant") {
                Error::Forbidden(why)
            } else {
                Error::BadSdp(why)
            });
        }
        Err(_) => {
            s.hub.leave(id);
            return err(Error::Timeout);
        }
    };
    // Keep the participant's queue drained while the session lives (room events are of no
    // use to a WHIP/WHEP client, answers to ICE restarts are); a removal by the API ends
    // the session.
    let session = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let etag = format!("\"{:08x}\"", rand::random::<u32>());
    let (restart_tx, restart_rx) = tokio::sync::mpsc::channel(4);
    s.sessions.insert(
        session.clone(),
        Session {
            participant: id,
            room,
            etag: etag.clone(),
            pc,
            remote_ufrag,
            restarts: Arc::new(tokio::sync::Mutex::new(restart_rx)),
        },
    );
    let sessions = s.sessions.clone();
    let sid = session.clone();
    tokio::spawn(async move {
        while let Some(o) = rx.recv().await {
            match o {
                Outbound::Close { .. } => break,
                Outbound::Message(ServerMessage::IceRestarted {
                    ufrag,
                    pwd,
                    candidates,
                    ..
                }) => {
                    let _ = restart_tx.try_send(Ok((ufrag, pwd, candidates)));
                }
                Outbound::Message(ServerMessage::Error { message, .. }) => {
                    let _ = restart_tx.try_send(Err(message));
                }
                _ => {}
            }
        }
        sessions.remove(&sid);
    });
    let mut r = (StatusCode::CREATED, answer).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("/{kind}/{path}/{session}")) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // TURN servers for the client (RFC 9725 §4.4), with short-lived credentials.
    for server in s.hub.ice_servers(&id.to_string(), crate::auth::unix_now()) {
        for link in crate::turn::link_headers(&server) {
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.append(header::LINK, v);
            }
        }
    }
    cors(r)
}

async fn patch(
    State(s): State<WhipState>,
    Path(parts): Path<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (room, session) = room_and_session(&parts);
    let Some((participant, etag, pc, remote_ufrag, restarts)) = s
        .sessions
        .get(&session)
        .filter(|e| e.room == room)
        .map(|e| {
            (
                e.participant,
                e.etag.clone(),
                e.pc,
                e.remote_ufrag.clone(),
                e.restarts.clone(),
            )
        })
    else {
        return err(Error::NotFound("no such session".into()));
    };
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return err(Error::UnsupportedMediaType(
            "use application/trickle-ice-sdpfrag".into(),
        ));
    }
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if m != "*" && m != etag {
            return err(Error::PreconditionFailed("ETag mismatch".into()));
        }
    }
    if body.len() > MAX_SDP {
        return err(Error::TooLarge("fragment over 64 KiB".into()));
    }
    let frag = String::from_utf8_lossy(&body);
    // New credentials: an ICE restart (RFC 9725 §4.3.2), answered with the server's.
    let restart = match (sdp_attr(&frag, "ice-ufrag"), sdp_attr(&frag, "ice-pwd")) {
        (Some(u), Some(p)) if u != remote_ufrag => Some((u.to_string(), p.to_string())),
        _ => None,
    };
    let mut answer = None;
    if let Some((ufrag, pwd)) = restart {
        let mut rx = restarts.lock().await;
        while rx.try_recv().is_ok() {} // nothing stale answers this one
        s.hub.handle(
            participant,
            ClientMessage::IceRestart {
                pc,
                ufrag: Some(ufrag.clone()),
                pwd: Some(pwd),
            },
        );
        match tokio::time::timeout(ANSWER_TIMEOUT, rx.recv()).await {
            Ok(Some(Ok(creds))) => answer = Some(creds),
            Ok(Some(Err(why))) => return err(Error::BadSdp(why)),
            _ => return err(Error::Timeout),
        }
        if let Some(mut e) = s.sessions.get_mut(&session) {
            e.remote_ufrag = ufrag;
        }
    }
    for line in frag.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                s.hub.handle(
                    participant,
                    ClientMessage::Candidate {
                        pc,
                        candidate: c.to_string(),
                    },
                );
            }
        }
    }
    let Some((ufrag, pwd, candidates)) = answer else {
        return cors(StatusCode::NO_CONTENT.into_response());
    };
    let etag = format!("\"{:08x}\"", rand::random::<u32>());
    if let Some(mut e) = s.sessions.get_mut(&session) {
        e.etag = etag.clone();
    }
    let mid = sdp_attr(&frag, "mid").unwrap_or("0");
    let candidates: String = candidates.iter().map(|c| format!("a={c}\r\n")).collect();
    let body = format!(
        "a=ice-lite\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}\r\n{candidates}a=end-of-candidates\r\n"
    );
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    cors(r)
}

fn room_and_session(parts: &[(String, String)]) -> (String, String) {
    let get = |k: &str| {
        parts
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    (get("room"), get("session"))
}

async fn remove(State(s): State<WhipState>, Path(parts): Path<Vec<(String, String)>>) -> Response {
    let (room, session) = room_and_session(&parts);
    match s.sessions.remove(&session) {
        Some((_, sess)) if sess.room == room => {
            s.hub.leave(sess.participant);
            cors(StatusCode::OK.into_response())
        }
        Some((k, sess)) => {
            s.sessions.insert(k, sess);
            err(Error::NotFound("no such session".into()))
        }
        None => err(Error::NotFound("no such session (already ended?)".into())),
    }
}

pub fn router(state: WhipState) -> Router {
    Router::new()
        .route("/whip/{room}", post(create).options(options))
        .route(
            "/whip/{room}/{session}",
            delete(remove).patch(patch).options(options),
        )
        .route("/whep/{room}", post(whep_speaker).options(options))
        .route(
            "/whep/{room}/{participant}",
            post(whep_create).options(options),
        )
        .route(
            "/whep/{room}/{participant}/{session}",
            delete(remove).patch(patch).options(options),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_follow_kinds() {
        let s =
            inferred_sources("v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=mid:1\r\n");
        assert_eq!(s.get("0"), Some(&TrackSource::Microphone));
        assert_eq!(s.get("1"), Some(&TrackSource::Camera));
    }
}

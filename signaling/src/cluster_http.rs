//! REST and WHIP/WHEP in a cluster (ADR 0007): a request about a room homed on another
//! node is forwarded there and its answer relayed (a redirect would lose the caller's
//! `Authorization`: clients drop it on a redirect to another origin), a new room (REST
//! create, WHIP/WHEP offer) is placed first, and `GET /api/v1/rooms` lists the rooms of
//! every node. A forwarded request is marked ([`FORWARDED`], an HMAC a client cannot
//! make: `forwarding_mark.rs`) and always answered where it arrives, so nothing is
//! forwarded twice; a request with a mark that does not verify is refused (403). The home
//! checks the caller's token as for any request: forwarding grants nothing. A token may
//! come as `Authorization: Bearer` or `?access_token=` (WHIP/WHEP players): either is
//! placed. LiveKit's RoomService (Twirp) names its room in the body: it is read (64 KiB at
//! most) to route the call the same way. Without a placement (one node) requests pass
//! through untouched.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::Error;
use crate::hub::Hub;
use crate::livekit::twirp;
use crate::placement::{Placed, Placement};

/// The largest body read here: the API's and WHIP's own limit (an SDP offer).
const MAX_BODY: usize = 64 * 1024;
use crate::forwarding_mark::MarkKey;
pub use crate::forwarding_mark::FORWARDED;

static PEERS: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
});

/// A request's body read whole (at most [`MAX_BODY`]), or the refusal in the caller's
/// protocol's error format.
async fn buffered(
    req: Request,
    refuse: fn(Error) -> Response,
) -> Result<(Parts, axum::body::Bytes), Response> {
    let (parts, body) = req.into_parts();
    match to_bytes(body, MAX_BODY).await {
        Ok(bytes) => Ok((parts, bytes)),
        Err(_) => Err(refuse(Error::TooLarge("body over 64 KiB".into()))),
    }
}

/// Send `req` to the node at `base`, marked, and relay its answer.
async fn forward(mark: &MarkKey, base: &str, req: Request) -> Response {
    let (parts, bytes) = match buffered(req, IntoResponse::into_response).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = PEERS.request(parts.method.clone(), format!("{base}{target}"));
    for (k, v) in &parts.headers {
        if k != header::HOST && k != header::CONTENT_LENGTH && k != FORWARDED {
            out = out.header(k, v);
        }
    }
    let signed = mark.sign(crate::auth::unix_now(), parts.method.as_str(), target);
    let resp = match out.header(FORWARDED, signed).body(bytes).send().await {
        Ok(r) => r,
        Err(e) => return Error::Upstream(e.to_string()).into_response(),
    };
    metrics::counter!("switchboard_cluster_forwarded_requests_total").increment(1);
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    let mut r = (status, body).into_response();
    for (k, v) in &headers {
        if k != header::TRANSFER_ENCODING && k != header::CONTENT_LENGTH && k != header::CONNECTION
        {
            r.headers_mut().append(k, v.clone());
        }
    }
    r
}

/// The room a request is about, and whether answering it may create the room.
fn room_of(method: &Method, path: &str) -> Option<(String, bool)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "rooms", room, ..] => Some((room.to_string(), false)),
        ["whip", room] | ["whep", room] | ["whep", room, _] if method == Method::POST => {
            Some((room.to_string(), true))
        }
        // A WHIP/WHEP session (PATCH, DELETE) lives at its room's home.
        ["whip", room, ..] | ["whep", room, ..] => Some((room.to_string(), false)),
        _ => None,
    }
}

/// The request's token: `Authorization: Bearer`, else `?access_token=`.
fn token(req: &Request) -> Option<String> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(t) = header {
        return Some(t.to_string());
    }
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query()?)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "access_token").then_some(v))
}

pub async fn route_to_home(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let Some(placement) = hub.placement() else {
        return next.run(req).await;
    };
    let Some(mark) = hub.forwarding_mark() else {
        return Error::Internal("a cluster node needs API keys".into()).into_response();
    };
    if let Some(m) = req.headers().get(FORWARDED) {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let good = m.to_str().ok().is_some_and(|m| {
            mark.verify(m, crate::auth::unix_now(), req.method().as_str(), target)
                .is_ok()
        });
        if !good {
            metrics::counter!("switchboard_cluster_forged_marks_total").increment(1);
            return Error::Forbidden(crate::forwarding_mark::BadMark.to_string()).into_response();
        }
        return adopt_then_run(&*placement, req, next).await;
    }
    let path = req.uri().path().to_string();
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let method = req.method().clone();
    if path == "/api/v1/rooms" {
        if method == Method::GET && !query.contains("scope=local") {
            let auth = req.headers().get(header::AUTHORIZATION).cloned();
            return list_everywhere(&*placement, auth).await;
        }
        if method == Method::POST {
            return create_at_home(&*placement, mark, req, next).await;
        }
    }
    if let Some(m) = path.strip_prefix(twirp::ROOM_SERVICE) {
        let m = m.to_string();
        return twirp_to_home(&hub, &*placement, mark, &m, req, next).await;
    }
    let Some((room, creates)) = room_of(&method, &path) else {
        return next.run(req).await;
    };
    // A new room is placed only for a token that may join it: anyone else gets this
    // node's answer (401, 403) and claims nothing.
    if creates
        && token(&req)
            .and_then(|t| hub.token_room(&t, crate::auth::unix_now()))
            .is_none_or(|r| r != room)
    {
        return next.run(req).await;
    }
    to_home(
        &*placement,
        mark,
        &room,
        creates,
        req,
        next,
        IntoResponse::into_response,
    )
    .await
}

/// Run `req` at `room`'s home: here, or forwarded there. A new room (`creates`) is placed
/// first, and a failure to place it is answered by `refuse` (in the caller's protocol's
/// error format); a room the directory does not know is answered here (404 for a room
/// this node lacks).
async fn to_home(
    placement: &dyn Placement,
    mark: &MarkKey,
    room: &str,
    creates: bool,
    req: Request,
    next: Next,
    refuse: fn(Error) -> Response,
) -> Response {
    let placed = if creates {
        placement.place(room).await
    } else {
        placement.locate(room).await
    };
    match placed {
        Ok(Placed::Here) => next.run(req).await,
        Ok(Placed::Elsewhere { url, .. }) => forward(mark, &url, req).await,
        Err(e) if creates => refuse(Error::from(e)),
        Err(_) => next.run(req).await,
    }
}

/// LiveKit's RoomService (Twirp), whose room is named in the body: `ListRooms` is every
/// node's; `CreateRoom` is placed first, for a token that may create rooms (anyone else
/// gets this node's answer and claims nothing); every other call goes to its room's home.
async fn twirp_to_home(
    hub: &Hub,
    placement: &dyn Placement,
    mark: &MarkKey,
    method: &str,
    req: Request,
    next: Next,
) -> Response {
    let (parts, bytes) = match buffered(req, twirp::error).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if method == "ListRooms" {
        return twirp_list_everywhere(placement, mark, &parts, bytes).await;
    }
    let about = twirp::room_of(method, &parts.headers, &bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    let Some((room, creates)) = about else {
        return next.run(req).await; // the handler says what is wrong
    };
    if creates && !may_create_rooms(hub, &req) {
        return next.run(req).await;
    }
    to_home(placement, mark, &room, creates, req, next, twirp::error).await
}

/// Whether the request's token is valid and grants `roomCreate`.
fn may_create_rooms(hub: &Hub, req: &Request) -> bool {
    token(req)
        .and_then(|t| {
            hub.keys()
                .verify_any(t.trim(), crate::auth::unix_now())
                .ok()
        })
        .is_some_and(|claims| claims.video.room_create)
}

/// `ListRooms`: asked of every node (marked, so each answers with its own rooms) and
/// merged. A node that does not answer is left out (and logged); a refusal (401, 403,
/// 429) is the caller's, relayed as it came.
async fn twirp_list_everywhere(
    placement: &dyn Placement,
    mark: &MarkKey,
    parts: &Parts,
    body: axum::body::Bytes,
) -> Response {
    let peers = match placement.peers().await {
        Ok(p) => p,
        Err(e) => return twirp::error(Error::from(e)),
    };
    let mut answers = Vec::new();
    for peer in peers {
        let mut ask = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (k, v) in &parts.headers {
            ask = ask.header(k, v);
        }
        let Ok(ask) = ask.body(Body::from(body.clone())) else {
            continue;
        };
        let answer = forward(mark, &peer, ask).await;
        let status = answer.status();
        let Ok(bytes) = to_bytes(answer.into_body(), usize::MAX).await else {
            continue;
        };
        if status.is_success() {
            answers.push(bytes);
        } else if status.is_client_error() {
            return (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
        } else {
            tracing::warn!(peer, %status, "a node did not answer ListRooms");
        }
    }
    twirp::merge_room_lists(&parts.headers, &answers)
}

/// A request another node forwarded here because the directory names this node the
/// room's home. When it may create the room (WHIP/WHEP `POST`), the node that forwarded
/// it made the claim, so this node takes it up first (placing a room claimed for this
/// node records it here); otherwise the room would be refused as not homed here.
async fn adopt_then_run(placement: &dyn Placement, req: Request, next: Next) -> Response {
    // RoomService's CreateRoom names its room in the body.
    let (req, created) = match req.uri().path().strip_prefix(twirp::ROOM_SERVICE) {
        Some("CreateRoom") => {
            let (parts, bytes) = match buffered(req, twirp::error).await {
                Ok(b) => b,
                Err(refused) => return refused,
            };
            let about = twirp::room_of("CreateRoom", &parts.headers, &bytes);
            (Request::from_parts(parts, Body::from(bytes)), about)
        }
        _ => {
            let about = room_of(req.method(), req.uri().path());
            (req, about)
        }
    };
    if let Some((room, true)) = created {
        match placement.place(&room).await {
            Ok(Placed::Here) => {}
            Ok(Placed::Elsewhere { .. }) => {
                return Error::Unavailable(format!("room {room} moved to another node"))
                    .into_response()
            }
            Err(e) => return Error::from(e).into_response(),
        }
    }
    next.run(req).await
}

/// `POST /api/v1/rooms`: the room is placed (claimed) first; the home creates it.
async fn create_at_home(
    placement: &dyn Placement,
    mark: &MarkKey,
    req: Request,
    next: Next,
) -> Response {
    let (parts, bytes) = match buffered(req, IntoResponse::into_response).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let name = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string));
    let req = Request::from_parts(parts, Body::from(bytes));
    let Some(name) = name else {
        return next.run(req).await; // the API says what is wrong
    };
    match placement.place(&name).await {
        Ok(Placed::Here) => next.run(req).await,
        Ok(Placed::Elsewhere { url, .. }) => forward(mark, &url, req).await,
        Err(e) => Error::from(e).into_response(),
    }
}

/// `GET /api/v1/rooms`: every node's own list (`?scope=local`), merged. A node that does
/// not answer in time is left out (and logged), rather than failing the whole list.
async fn list_everywhere(placement: &dyn Placement, auth: Option<HeaderValue>) -> Response {
    let peers = match placement.peers().await {
        Ok(p) => p,
        Err(e) => return Error::from(e).into_response(),
    };
    let mut rooms: Vec<Value> = Vec::new();
    for peer in peers {
        let mut r = PEERS.get(format!("{peer}/api/v1/rooms?scope=local"));
        if let Some(a) = &auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(peer, error = %e, "a node did not answer the room list");
                continue;
            }
        };
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // The caller's own problem (401, 403, 429): the same answer as a node gives.
            return (status, axum::Json(body)).into_response();
        }
        rooms.extend(body["rooms"].as_array().cloned().unwrap_or_default());
    }
    rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    rooms.dedup_by(|a, b| a["name"] == b["name"]);
    axum::Json(json!({ "rooms": rooms })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_room() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            room_of(&get, "/api/v1/rooms/r1"),
            Some(("r1".into(), false))
        );
        assert_eq!(
            room_of(&post, "/api/v1/rooms/r1/participants/x/mute"),
            Some(("r1".into(), false))
        );
        assert_eq!(room_of(&post, "/whip/cam"), Some(("cam".into(), true)));
        assert_eq!(
            room_of(&post, "/whep/cam/alice"),
            Some(("cam".into(), true))
        );
        assert_eq!(
            room_of(&Method::PATCH, "/whip/cam/abc"),
            Some(("cam".into(), false)),
            "a session: at its home"
        );
        assert_eq!(room_of(&get, "/api/v1/sip/calls"), None);
        assert_eq!(room_of(&get, "/ws"), None);
    }
}

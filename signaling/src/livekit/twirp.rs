//! LiveKit's RoomService over Twirp (`POST /twirp/livekit.RoomService/<Method>`), so that
//! LiveKit's server SDKs (`livekit-server-sdk`, `livekit-api`, …) manage this server's
//! rooms unchanged. Bodies are protobuf (`application/protobuf`) or protobuf's JSON
//! mapping (`application/json`), answered in the same encoding; the message types are
//! the `livekit-protocol` crate's. Each method is the REST API's operation on the hub,
//! behind the same grants; errors are Twirp's (`{"code", "msg"}` with the matching HTTP
//! status).
//!
//! Identifiers are `model`'s. `MutePublishedTrack` mutes every track
//! of that track's kind (the hub's admin mute is per kind).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use livekit_protocol as lk;
use prost::Message;
use serde::{de::DeserializeOwned, Serialize};

use super::model::{participant, participant_sid, room, track_sid};
use crate::api::{room_name, ApiState, Caller};
use crate::error::Error;
use crate::hub::{Now, ParticipantUpdate};
use crate::protocol::Permissions;

/// How a request came, and so how its answer goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A Twirp error: its code and message, with the HTTP status Twirp gives that code.
struct TwirpError {
    status: StatusCode,
    code: &'static str,
    msg: String,
}

impl From<Error> for TwirpError {
    fn from(e: Error) -> Self {
        let (status, _) = e.http();
        let code = match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "invalid_argument",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            StatusCode::FORBIDDEN => "permission_denied",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "already_exists",
            StatusCode::PRECONDITION_FAILED => "failed_precondition",
            StatusCode::TOO_MANY_REQUESTS => "resource_exhausted",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY => "unavailable",
            _ => "internal",
        };
        Self {
            status,
            code,
            msg: e.to_string(),
        }
    }
}

impl TwirpError {
    fn new(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
        }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "msg": self.msg });
        (self.status, axum::Json(body)).into_response()
    }
}

type R = Result<Response, TwirpError>;

fn encoding(headers: &HeaderMap) -> Result<Encoding, TwirpError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim();
    match ct {
        "application/protobuf" | "application/x-protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(TwirpError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "Content-Type: application/json or application/protobuf",
        )),
    }
}

fn decode<T: Message + Default + DeserializeOwned>(
    enc: Encoding,
    body: &[u8],
) -> Result<T, TwirpError> {
    let bad = |e: String| TwirpError::new(StatusCode::BAD_REQUEST, "malformed", e);
    match enc {
        Encoding::Protobuf => T::decode(body).map_err(|e| bad(e.to_string())),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| bad(e.to_string())),
    }
}

fn encode<T: Message + Serialize>(enc: Encoding, msg: &T) -> Response {
    match enc {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/protobuf")],
            msg.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => axum::Json(msg).into_response(),
    }
}

/// The path prefix of RoomService's methods.
pub(crate) const ROOM_SERVICE: &str = "/twirp/livekit.RoomService/";

/// The room a RoomService call is about, for the cluster's routing (`cluster_http`):
/// `(room, creates)`. None for `ListRooms` (every node's), an unknown method, or a body
/// that does not decode (the handler answers those).
pub(crate) fn room_of(method: &str, headers: &HeaderMap, body: &[u8]) -> Option<(String, bool)> {
    fn field<T: Message + Default + DeserializeOwned>(
        enc: Encoding,
        body: &[u8],
        room: impl Fn(T) -> String,
    ) -> Option<String> {
        decode::<T>(enc, body).ok().map(room)
    }
    let enc = encoding(headers).ok()?;
    let room = match method {
        "CreateRoom" => {
            return field(enc, body, |r: lk::CreateRoomRequest| r.name).map(|n| (n, true))
        }
        "DeleteRoom" => field(enc, body, |r: lk::DeleteRoomRequest| r.room),
        "ListParticipants" => field(enc, body, |r: lk::ListParticipantsRequest| r.room),
        "GetParticipant" | "RemoveParticipant" => {
            field(enc, body, |r: lk::RoomParticipantIdentity| r.room)
        }
        "MutePublishedTrack" => field(enc, body, |r: lk::MuteRoomTrackRequest| r.room),
        "UpdateParticipant" => field(enc, body, |r: lk::UpdateParticipantRequest| r.room),
        "SendData" => field(enc, body, |r: lk::SendDataRequest| r.room),
        "UpdateRoomMetadata" => field(enc, body, |r: lk::UpdateRoomMetadataRequest| r.room),
        "UpdateSubscriptions" => field(enc, body, |r: lk::UpdateSubscriptionsRequest| r.room),
        _ => None,
    }?;
    Some((room, false))
}

/// `ListRooms` across a cluster: every node's answer (in the request's encoding) merged,
/// each room once.
pub(crate) fn merge_room_lists(headers: &HeaderMap, answers: &[Bytes]) -> Response {
    let merged = encoding(headers).and_then(|enc| {
        let mut rooms = Vec::new();
        for a in answers {
            let answer = decode::<lk::ListRoomsResponse>(enc, a).map_err(|e| {
                TwirpError::from(Error::Upstream(format!("a node's room list: {}", e.msg)))
            })?;
            rooms.extend(answer.rooms);
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms.dedup_by(|a, b| a.name == b.name);
        Ok(encode(enc, &lk::ListRoomsResponse { rooms }))
    });
    merged.unwrap_or_else(IntoResponse::into_response)
}

/// An error of the cluster's routing, as Twirp answers it.
pub(crate) fn error(e: Error) -> Response {
    TwirpError::from(e).into_response()
}

/// `POST /twirp/livekit.RoomService/{method}`.
pub(crate) async fn room_service(
    State(s): State<ApiState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match call(&s, &method, &headers, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn call(s: &ApiState, method: &str, headers: &HeaderMap, body: &[u8]) -> R {
    let enc = encoding(headers)?;
    let c = Caller::from(s, headers)?;
    let hub = &s.hub;
    let v = &c.0.video;
    match method {
        "CreateRoom" => {
            let req: lk::CreateRoomRequest = decode(enc, body)?;
            c.need(v.room_create, "roomCreate")?;
            let name = crate::RoomName::parse(&req.name).map_err(Error::from)?;
            let created = hub.create_room(
                name,
                (req.empty_timeout > 0).then_some(u64::from(req.empty_timeout)),
                (req.max_participants > 0).then_some(req.max_participants),
                req.metadata,
                Now::read(),
            );
            // LiveKit's CreateRoom returns a room that already exists.
            let info = match created {
                Err(Error::Conflict(_)) => hub.get_room(&req.name)?,
                other => other?,
            };
            Ok(encode(enc, &room(&info)))
        }
        "ListRooms" => {
            let req: lk::ListRoomsRequest = decode(enc, body)?;
            c.need(v.room_list, "roomList")?;
            let rooms = hub
                .list_rooms()
                .iter()
                .filter(|r| req.names.is_empty() || req.names.contains(&r.name))
                .map(room)
                .collect();
            Ok(encode(enc, &lk::ListRoomsResponse { rooms }))
        }
        "DeleteRoom" => {
            let req: lk::DeleteRoomRequest = decode(enc, body)?;
            room_name(&req.room)?;
            c.need(
                v.room_create || v.admin_of(&req.room),
                "roomCreate or roomAdmin",
            )?;
            hub.delete_room(&req.room, "the room was closed")?;
            Ok(encode(enc, &lk::DeleteRoomResponse {}))
        }
        "ListParticipants" => {
            let req: lk::ListParticipantsRequest = decode(enc, body)?;
            admin(&c, &req.room)?;
            let participants = hub
                .list_participants(&req.room)?
                .iter()
                .map(participant)
                .collect();
            Ok(encode(enc, &lk::ListParticipantsResponse { participants }))
        }
        "GetParticipant" => {
            let req: lk::RoomParticipantIdentity = decode(enc, body)?;
            admin(&c, &req.room)?;
            Ok(encode(
                enc,
                &participant(&hub.get_participant(&req.room, &req.identity)?),
            ))
        }
        "RemoveParticipant" => {
            let req: lk::RoomParticipantIdentity = decode(enc, body)?;
            admin(&c, &req.room)?;
            hub.remove_participant(
                &req.room,
                &req.identity,
                "removed by the room's administrator",
            )?;
            Ok(encode(enc, &lk::RemoveParticipantResponse {}))
        }
        "MutePublishedTrack" => {
            let req: lk::MuteRoomTrackRequest = decode(enc, body)?;
            admin(&c, &req.room)?;
            let p = hub.get_participant(&req.room, &req.identity)?;
            let kind = p
                .tracks
                .iter()
                .find(|t| track_sid(t) == req.track_sid)
                .map(|t| t.kind)
                .ok_or_else(|| Error::not_found("track"))?;
            let p = hub.admin_mute(&req.room, &req.identity, kind, req.muted)?;
            let track = participant(&p)
                .tracks
                .into_iter()
                .find(|t| t.sid == req.track_sid);
            Ok(encode(enc, &lk::MuteRoomTrackResponse { track }))
        }
        "UpdateParticipant" => {
            let req: lk::UpdateParticipantRequest = decode(enc, body)?;
            admin(&c, &req.room)?;
            let permissions = req.permission.map(|p| Permissions {
                can_publish: p.can_publish,
                can_subscribe: p.can_subscribe,
                can_publish_data: p.can_publish_data,
            });
            // LiveKit leaves the metadata as it is when the request's is empty.
            let metadata = Some(req.metadata).filter(|m| !m.is_empty());
            let name = Some(req.name).filter(|n| !n.is_empty());
            let update = ParticipantUpdate {
                metadata,
                permissions,
                name,
                attributes: req.attributes.into_iter().collect(),
            };
            let p = hub.update_participant(&req.room, &req.identity, update)?;
            Ok(encode(enc, &participant(&p)))
        }
        // `destination_sids` is deprecated in favour of identities, and still sent by
        // older SDKs: both are honoured.
        #[allow(deprecated)]
        "SendData" => {
            let req: lk::SendDataRequest = decode(enc, body)?;
            admin(&c, &req.room)?;
            let mut to = req.destination_identities;
            if !req.destination_sids.is_empty() {
                let members = hub.list_participants(&req.room)?;
                to.extend(
                    members
                        .iter()
                        .filter(|m| req.destination_sids.contains(&participant_sid(m.id)))
                        .map(|m| m.identity.clone()),
                );
                if to.is_empty() {
                    // Only unknown sids: nobody is to get it (not everybody).
                    return Ok(encode(enc, &lk::SendDataResponse {}));
                }
            }
            // Binary payloads reach LiveKit clients; our protocol's clients get UTF-8 text.
            hub.send_data(&req.room, req.data, req.topic, &to)?;
            Ok(encode(enc, &lk::SendDataResponse {}))
        }
        "UpdateRoomMetadata" => {
            let req: lk::UpdateRoomMetadataRequest = decode(enc, body)?;
            admin(&c, &req.room)?;
            Ok(encode(
                enc,
                &room(&hub.update_room(&req.room, req.metadata)?),
            ))
        }
        "UpdateSubscriptions" => {
            let req: lk::UpdateSubscriptionsRequest = decode(enc, body)?;
            admin(&c, &req.room)?;
            let sids: Vec<&String> = req
                .track_sids
                .iter()
                .chain(
                    req.participant_tracks
                        .iter()
                        .flat_map(|p| p.track_sids.iter()),
                )
                .collect();
            let tracks = hub
                .list_participants(&req.room)?
                .iter()
                .flat_map(|p| p.tracks.iter())
                .filter(|t| sids.contains(&&track_sid(t)))
                .map(|t| t.id)
                .collect();
            hub.subscribe(&req.room, &req.identity, tracks, req.subscribe)?;
            Ok(encode(enc, &lk::UpdateSubscriptionsResponse {}))
        }
        _ => Err(TwirpError::new(
            StatusCode::NOT_FOUND,
            "bad_route",
            format!("no method {method} in livekit.RoomService"),
        )),
    }
}

/// The REST API's check for a room's administrator, on a room name from a body.
fn admin(c: &Caller, room: &str) -> Result<(), Error> {
    room_name(room)?;
    c.admin(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn a_call_names_its_room_in_either_encoding() {
        let pb = headers("application/protobuf");
        let body = lk::ListParticipantsRequest { room: "r1".into() }.encode_to_vec();
        assert_eq!(
            room_of("ListParticipants", &pb, &body),
            Some(("r1".into(), false))
        );
        let body = lk::RoomParticipantIdentity {
            room: "r2".into(),
            identity: "x".into(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            room_of("RemoveParticipant", &pb, &body),
            Some(("r2".into(), false))
        );
        let json = headers("application/json");
        assert_eq!(
            room_of("CreateRoom", &json, br#"{"name":"new"}"#),
            Some(("new".into(), true))
        );
        assert_eq!(
            room_of("SendData", &json, br#"{"room":"r3"}"#),
            Some(("r3".into(), false))
        );
        // Every node's, unknown, or not decodable: the handler answers.
        assert_eq!(room_of("ListRooms", &json, b"{}"), None);
        assert_eq!(room_of("Nope", &json, br#"{"room":"r"}"#), None);
        assert_eq!(room_of("DeleteRoom", &json, b"{not json"), None);
        assert_eq!(room_of("DeleteRoom", &headers("text/plain"), b"{}"), None);
    }

    #[test]
    fn room_lists_merge_once_each_in_the_callers_encoding() {
        let r = |n: &str| lk::Room {
            name: n.into(),
            ..Default::default()
        };
        let a = lk::ListRoomsResponse {
            rooms: vec![r("b"), r("a")],
        }
        .encode_to_vec();
        let b = lk::ListRoomsResponse {
            rooms: vec![r("a"), r("c")],
        }
        .encode_to_vec();
        let resp = merge_room_lists(&headers("application/protobuf"), &[a.into(), b.into()]);
        assert_eq!(resp.status(), StatusCode::OK);
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            resp.into_body(),
            usize::MAX,
        ))
        .unwrap()
        .unwrap();
        let names: Vec<String> = lk::ListRoomsResponse::decode(body)
            .unwrap()
            .rooms
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        // A node's answer that does not decode is an error, not a shorter list.
        let resp = merge_room_lists(
            &headers("application/protobuf"),
            &[Bytes::from_static(b"\xff")],
        );
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    }
}

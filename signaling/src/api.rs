//! The REST API under `/api/v1`: room and participant management for application
//! servers, authorized by bearer JWTs with admin grants (see `docs/api.md`; the OpenAPI 3
//! document is generated from this file and served at `/api/v1/openapi.json`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sfu_core::TrackKind;
use utoipa::OpenApi;

use crate::auth::{unix_now, Claims};
use crate::hub::{Hub, RoomInfo};
use crate::protocol::{ParticipantInfo, Permissions};
use crate::token_bucket::{KeyedBuckets, Rate};

/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;

pub use crate::error::ApiErrorBody;
use crate::error::Error;

/// `Json<T>` whose rejections are our JSON errors (400, 413, 415).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(match &r {
                JsonRejection::MissingJsonContentType(_) => {
                    Error::UnsupportedMediaType(r.body_text())
                }
                _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge(r.body_text()),
                // Syntax and data errors alike (axum says 422 for the latter) are 400.
                _ => Error::BadBody(r.body_text()),
            }),
        }
    }
}

/// Per-API-key token bucket.
pub struct RateLimiter {
    buckets: Mutex<KeyedBuckets<String>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            buckets: Mutex::new(KeyedBuckets::new(Rate::new(per_second, burst), MAX_BUCKETS)),
        }
    }

    pub fn allow(&self, key: &str, now: Instant) -> bool {
        self.buckets.lock().take(key.to_string(), now)
    }
}

/// Buckets kept before full ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

#[derive(Clone)]
pub struct ApiState {
    pub hub: Arc<Hub>,
    pub limiter: Arc<RateLimiter>,
    /// The SIP gateway, when it runs (`/api/v1/sip/calls`).
    pub sip: Option<Arc<dyn crate::sip_calls::SipCalls>>,
}

/// The caller, authenticated. Its request is charged to the rate limit (per API key and
/// subject: one participant's flood never spends another's or the backend's budget) when
/// a grant check first passes; a request refused for its grants costs nothing.
pub(crate) struct Caller(pub(crate) Claims, Charge);

/// The rate limit a caller is charged to, once.
pub(crate) struct Charge {
    limiter: Arc<RateLimiter>,
    charged: std::sync::atomic::AtomicBool,
}

impl Caller {
    pub(crate) fn from(s: &ApiState, headers: &HeaderMap) -> Result<Self, Error> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or(Error::MissingToken)?;
        let claims = s.hub.keys().verify_any(token.trim(), unix_now())?;
        Ok(Caller(
            claims,
            Charge {
                limiter: s.limiter.clone(),
                charged: false.into(),
            },
        ))
    }

    /// A grant check: 403 without charging when it fails; when it passes, the request is
    /// charged (the first time) to the bucket of the token's issuer and subject.
    pub(crate) fn need(&self, ok: bool, what: &str) -> Result<(), Error> {
        if !ok {
            return Err(Error::Forbidden(format!(
                "the token lacks the grant: {what}"
            )));
        }
        if self
            .1
            .charged
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let bucket = format!("{}\u{0}{}", self.0.iss, self.0.sub);
        if self.1.limiter.allow(&bucket, Instant::now()) {
            Ok(())
        } else {
            Err(Error::RateLimited)
        }
    }

    pub(crate) fn admin(&self, room: &str) -> Result<(), Error> {
        self.need(self.0.video.admin_of(room), "roomAdmin for this room")
    }
}

pub(crate) fn room_name(name: &str) -> Result<(), Error> {
    if crate::RoomName::is_valid(name) {
        Ok(())
    } else {
        Err(crate::room_name::BadRoomName.into())
    }
}

fn identity(id: &str) -> Result<(), Error> {
    crate::participant_names::check_identity(id)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    #[schema(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$")]
    pub name: String,
    /// Seconds an empty room lives (default 300).
    #[schema(maximum = 604800)]
    pub empty_timeout: Option<u64>,
    /// 0: unlimited.
    pub max_participants: Option<u32>,
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub metadata: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    #[schema(max_length = 16384)]
    pub metadata: String,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRoom {
    /// Shown to the disconnected participants.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateParticipant {
    #[schema(max_length = 16384)]
    pub metadata: Option<String>,
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteTrack {
    /// `audio` or `video`.
    #[schema(value_type = String, example = "audio")]
    pub kind: TrackKind,
    pub muted: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendData {
    #[schema(max_length = 15360)]
    pub payload: String,
    pub topic: Option<String>,
    /// Identities to deliver to; empty or absent: everyone in the room.
    #[serde(default)]
    pub identities: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoomList {
    pub rooms: Vec<RoomInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParticipantList {
    pub participants: Vec<ParticipantInfo>,
}

type R<T> = Result<T, Error>;

#[utoipa::path(post, path = "/api/v1/rooms", request_body = CreateRoom, security(("bearer" = [])),
    responses((status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody), (status = 201, body = RoomInfo), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody),
        (status = 403, body = ApiErrorBody), (status = 409, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn create_room(
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<CreateRoom>,
) -> R<(StatusCode, Json<RoomInfo>)> {
    let c = Caller::from(&s, &headers)?;
    c.need(c.0.video.room_create, "roomCreate")?;
    Ok((
        StatusCode::CREATED,
        Json(s.hub.create_room(
            crate::RoomName::parse(&b.name)?,
            b.empty_timeout,
            b.max_participants,
            b.metadata,
            crate::hub::Now::read(),
        )?),
    ))
}

#[utoipa::path(get, path = "/api/v1/rooms", security(("bearer" = [])),
    responses((status = 200, body = RoomList), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn list_rooms(State(s): State<ApiState>, headers: HeaderMap) -> R<Json<RoomList>> {
    let c = Caller::from(&s, &headers)?;
    c.need(c.0.video.room_list, "roomList")?;
    Ok(Json(RoomList {
        rooms: s.hub.list_rooms(),
    }))
}

#[utoipa::path(get, path = "/api/v1/rooms/{room}", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$")), security(("bearer" = [])),
    responses((status = 200, body = RoomInfo), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn get_room(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> R<Json<RoomInfo>> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    c.need(
        c.0.video.room_list || c.0.video.admin_of(&room),
        "roomList or roomAdmin",
    )?;
    Ok(Json(s.hub.get_room(&room)?))
}

#[utoipa::path(patch, path = "/api/v1/rooms/{room}", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$")), request_body = UpdateRoom, security(("bearer" = [])),
    responses((status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody), (status = 200, body = RoomInfo), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn update_room(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    ApiJson(b): ApiJson<UpdateRoom>,
) -> R<Json<RoomInfo>> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    c.admin(&room)?;
    Ok(Json(s.hub.update_room(&room, b.metadata)?))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room}", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$")), request_body(content = Option<DeleteRoom>), security(("bearer" = [])),
    responses((status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody), (status = 204), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn delete_room(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: axum::body::Bytes,
) -> R<StatusCode> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    c.need(
        c.0.video.room_create || c.0.video.admin_of(&room),
        "roomCreate or roomAdmin",
    )?;
    let b: DeleteRoom = if body.is_empty() || body.as_ref() == b"null" {
        DeleteRoom::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::BadBody(e.to_string()))?
    };
    s.hub
        .delete_room(&room, b.reason.as_deref().unwrap_or("the room was closed"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/rooms/{room}/participants", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$")), security(("bearer" = [])),
    responses((status = 200, body = ParticipantList), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn list_participants(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> R<Json<ParticipantList>> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    c.admin(&room)?;
    Ok(Json(ParticipantList {
        participants: s.hub.list_participants(&room)?,
    }))
}

#[utoipa::path(get, path = "/api/v1/rooms/{room}/participants/{identity}", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$"), ("identity" = String, Path, min_length = 1, max_length = 256, pattern = r"^[^\x00-\x1f\x7f]{1,256}$")), security(("bearer" = [])),
    responses((status = 200, body = ParticipantInfo), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn get_participant(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
) -> R<Json<ParticipantInfo>> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    identity(&id)?;
    c.admin(&room)?;
    Ok(Json(s.hub.get_participant(&room, &id)?))
}

#[utoipa::path(patch, path = "/api/v1/rooms/{room}/participants/{identity}", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$"), ("identity" = String, Path, min_length = 1, max_length = 256, pattern = r"^[^\x00-\x1f\x7f]{1,256}$")), request_body = UpdateParticipant, security(("bearer" = [])),
    responses((status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody), (status = 200, body = ParticipantInfo), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn update_participant(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<UpdateParticipant>,
) -> R<Json<ParticipantInfo>> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    identity(&id)?;
    c.admin(&room)?;
    let update = crate::hub::ParticipantUpdate {
        metadata: b.metadata,
        permissions: b.permissions,
        ..Default::default()
    };
    Ok(Json(s.hub.update_participant(&room, &id, update)?))
}

#[utoipa::path(delete, path = "/api/v1/rooms/{room}/participants/{identity}", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$"), ("identity" = String, Path, min_length = 1, max_length = 256, pattern = r"^[^\x00-\x1f\x7f]{1,256}$")), security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn remove_participant(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
) -> R<StatusCode> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    identity(&id)?;
    c.admin(&room)?;
    s.hub
        .remove_participant(&room, &id, "removed by the room's administrator")?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/rooms/{room}/participants/{identity}/mute", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$"), ("identity" = String, Path, min_length = 1, max_length = 256, pattern = r"^[^\x00-\x1f\x7f]{1,256}$")), request_body = MuteTrack, security(("bearer" = [])),
    responses((status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody), (status = 200, body = ParticipantInfo), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn mute(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path((room, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<MuteTrack>,
) -> R<Json<ParticipantInfo>> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    identity(&id)?;
    c.admin(&room)?;
    Ok(Json(s.hub.admin_mute(&room, &id, b.kind, b.muted)?))
}

#[utoipa::path(post, path = "/api/v1/rooms/{room}/data", params(("room" = String, Path, min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9_.-]{1,128}$")), request_body = SendData, security(("bearer" = [])),
    responses((status = 413, body = ApiErrorBody), (status = 415, body = ApiErrorBody), (status = 202), (status = 400, body = ApiErrorBody), (status = 401, body = ApiErrorBody), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 429, body = ApiErrorBody), (status = 503, body = ApiErrorBody)))]
async fn send_data(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(room): Path<String>,
    ApiJson(b): ApiJson<SendData>,
) -> R<StatusCode> {
    let c = Caller::from(&s, &headers)?;
    room_name(&room)?;
    c.admin(&room)?;
    s.hub
        .send_data(&room, b.payload.into_bytes(), b.topic, &b.identities)?;
    Ok(StatusCode::ACCEPTED)
}

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard REST API", version = "1", description = "Room and participant management. See docs/api.md."),
    paths(create_room, list_rooms, get_room, update_room, delete_room, list_participants, get_participant, update_participant, remove_participant, mute, send_data,
        crate::sip_calls::dial, crate::sip_calls::list, crate::sip_calls::get_call, crate::sip_calls::hang_up, crate::sip_calls::dtmf),
    components(schemas(ApiErrorBody, CreateRoom, UpdateRoom, DeleteRoom, UpdateParticipant, MuteTrack, SendData, RoomList, ParticipantList, RoomInfo, ParticipantInfo, Permissions, crate::protocol::TrackInfo, crate::webhook::WebhookEvent,
        crate::sip_calls::DialRequest, crate::sip_calls::SipCallInfo, crate::sip_calls::SipCallList, crate::sip_calls::SendDtmf, crate::sip_calls::CallDirection, crate::sip_calls::CallState, crate::sip_calls::CallQuality)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> Error {
    Error::NotFound("no such API route".into())
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/rooms", post(create_room).get(list_rooms))
        .route(
            "/api/v1/rooms/{room}",
            get(get_room).patch(update_room).delete(delete_room),
        )
        .route("/api/v1/rooms/{room}/participants", get(list_participants))
        .route(
            "/api/v1/rooms/{room}/participants/{identity}",
            get(get_participant)
                .patch(update_participant)
                .delete(remove_participant),
        )
        .route(
            "/api/v1/rooms/{room}/participants/{identity}/mute",
            post(mute),
        )
        .route("/api/v1/rooms/{room}/data", post(send_data))
        .route(
            "/api/v1/sip/calls",
            post(crate::sip_calls::dial).get(crate::sip_calls::list),
        )
        .route(
            "/api/v1/sip/calls/{id}",
            get(crate::sip_calls::get_call).delete(crate::sip_calls::hang_up),
        )
        .route("/api/v1/sip/calls/{id}/dtmf", post(crate::sip_calls::dtmf))
        .route(
            "/twirp/livekit.RoomService/{method}",
            post(crate::livekit::twirp::room_service),
        )
        .route("/api/v1/{*rest}", axum::routing::any(not_found))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limiter_refills() {
        let l = RateLimiter::new(10.0, 2.0);
        let t = Instant::now();
        assert!(l.allow("k", t));
        assert!(l.allow("k", t));
        assert!(!l.allow("k", t));
        assert!(l.allow("other", t), "buckets are per key");
        assert!(l.allow("k", t + Duration::from_millis(100)));
    }
}

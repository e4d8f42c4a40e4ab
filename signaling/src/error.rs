//! The control plane's one error vocabulary. Every refusal — of a join over the WebSocket,
//! a REST call, a WHIP/WHEP request, a SIP call request — is an [`Error`]; what it means
//! on the wire is decided here and nowhere else: [`Error::http`] (status and JSON `code`,
//! the body is `{code, message}`) and [`Error::ws`] (the protocol's error code and the
//! close code).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::AuthError;
use crate::plane::PlaneError;
use crate::protocol::{close_code, ErrorCode, PROTOCOL_VERSION};
use crate::room_name::BadRoomName;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field out of its rule (the message says which).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    BadRoomName(#[from] BadRoomName),
    /// A JSON body that does not parse or does not fit the schema.
    #[error("{0}")]
    BadBody(String),
    /// An SDP offer or fragment that is not one, or that the media plane refused.
    #[error("{0}")]
    BadSdp(String),
    /// An offer with no codec this server forwards.
    #[error("{0}")]
    NoCommonCodec(String),
    #[error("unsupported protocol version {0}; this server speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion(u32),
    #[error("missing bearer token")]
    MissingToken,
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The token does not grant this (the message says what).
    #[error("{0}")]
    Forbidden(String),
    /// The message names what (`room not found`, `no such session`).
    #[error("{0}")]
    NotFound(String),
    #[error("no such room, and rooms are not created on join")]
    NoSuchRoom,
    #[error("the SIP gateway is not enabled (sip_listen)")]
    SipDisabled,
    #[error("{0}")]
    Conflict(String),
    /// Dialled and not answered (`wait_until_answered`): the call's end cause.
    #[error("the call was not answered: {0}")]
    NotAnswered(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests for this API key")]
    RateLimited,
    /// An API key's SIP call limit (`sip_key_max_calls`, `sip_key_calls_per_minute`).
    #[error("too many SIP calls for this API key: {0}")]
    TooManyCalls(String),
    #[error("the room is full ({0} participants)")]
    RoomFull(u32),
    #[error("server draining: it takes no new participants; join another node")]
    Draining,
    #[error("server full: {0}")]
    ServerFull(String),
    #[error(transparent)]
    Plane(#[from] PlaneError),
    #[error("no answer from the media plane")]
    Timeout,
    /// Cannot be done now (the cluster directory is unreachable, a gateway has no room
    /// for another call): try again later or elsewhere.
    #[error("{0}")]
    Unavailable(String),
    /// Another node (the room's home) did not answer a forwarded request.
    #[error("the room's node did not answer: {0}")]
    Upstream(String),
    #[error("{0}")]
    Internal(String),
}

impl From<crate::placement::PlacementError> for Error {
    fn from(e: crate::placement::PlacementError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl Error {
    /// `what not found`.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// The HTTP status and the JSON `code`.
    pub fn http(&self) -> (StatusCode, &'static str) {
        use Error::*;
        match self {
            Invalid(_) | BadRoomName(_) => (StatusCode::BAD_REQUEST, "invalid"),
            BadBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            BadSdp(_) => (StatusCode::BAD_REQUEST, "bad_sdp"),
            UnsupportedVersion(_) => (StatusCode::BAD_REQUEST, "unsupported_version"),
            NoCommonCodec(_) => (StatusCode::UNPROCESSABLE_ENTITY, "no_common_codec"),
            MissingToken | Auth(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            NoSuchRoom => (StatusCode::NOT_FOUND, "no_such_room"),
            SipDisabled => (StatusCode::NOT_FOUND, "sip_disabled"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            NotAnswered(_) => (StatusCode::CONFLICT, "not_answered"),
            PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
            TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            TooManyCalls(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_calls"),
            RoomFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "room_full"),
            Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            ServerFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "server_full"),
            Plane(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Upstream(_) => (StatusCode::BAD_GATEWAY, "unavailable"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The protocol's error code and the WebSocket close code, for a refusal that ends
    /// the socket (a join). A bad room name comes from the token, so it is unauthorized.
    pub fn ws(&self) -> (ErrorCode, u16) {
        use Error::*;
        match self {
            MissingToken | Auth(_) | BadRoomName(_) | Forbidden(_) => {
                (ErrorCode::Unauthorized, close_code::UNAUTHORIZED)
            }
            UnsupportedVersion(_) => (
                ErrorCode::UnsupportedVersion,
                close_code::UNSUPPORTED_VERSION,
            ),
            RoomFull(_) => (ErrorCode::RoomFull, close_code::ROOM_FULL),
            NoSuchRoom | NotFound(_) => (ErrorCode::NoSuchRoom, close_code::NO_SUCH_ROOM),
            Draining => (ErrorCode::Draining, close_code::DRAINING),
            ServerFull(_) => (ErrorCode::ServerFull, close_code::SERVER_FULL),
            Unavailable(_) | Upstream(_) | SipDisabled => {
                (ErrorCode::Unavailable, close_code::UNAVAILABLE)
            }
            Invalid(_)
            | BadBody(_)
            | BadSdp(_)
            | NoCommonCodec(_)
            | TooLarge(_)
            | UnsupportedMediaType(_)
            | PreconditionFailed(_)
            | Conflict(_)
            | NotAnswered(_) => (ErrorCode::BadMessage, close_code::BAD_STATE),
            Plane(_) | Timeout | RateLimited | TooManyCalls(_) | Internal(_) => {
                (ErrorCode::Busy, close_code::BUSY)
            }
        }
    }
}

/// The body of every HTTP error: `{code, message}`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.http();
        let body = ApiErrorBody {
            code: code.to_string(),
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes clients and the OpenAPI document rely on.
    #[test]
    fn statuses_and_codes() {
        let cases = [
            (Error::BadRoomName(BadRoomName), 400, "invalid"),
            (Error::MissingToken, 401, "unauthorized"),
            (Error::Auth(AuthError::Expired), 401, "unauthorized"),
            (Error::NoSuchRoom, 404, "no_such_room"),
            (Error::NoCommonCodec("x".into()), 422, "no_common_codec"),
            (Error::RoomFull(2), 503, "room_full"),
            (Error::Plane(PlaneError::Busy), 503, "busy"),
            (Error::Unavailable("redis".into()), 503, "unavailable"),
            (Error::RateLimited, 429, "rate_limited"),
        ];
        for (e, status, code) in cases {
            assert_eq!(
                e.http(),
                (StatusCode::from_u16(status).unwrap(), code),
                "{e:?}"
            );
        }
        assert_eq!(Error::not_found("room").to_string(), "room not found");
    }

    #[test]
    fn refused_joins_close_the_socket_with_their_code() {
        assert_eq!(
            Error::RoomFull(2).ws(),
            (ErrorCode::RoomFull, close_code::ROOM_FULL)
        );
        assert_eq!(
            Error::BadRoomName(BadRoomName).ws(),
            (ErrorCode::Unauthorized, close_code::UNAUTHORIZED)
        );
        assert_eq!(
            Error::Draining.ws(),
            (ErrorCode::Draining, close_code::DRAINING)
        );
        assert_eq!(
            Error::Plane(PlaneError::Busy).ws(),
            (ErrorCode::Busy, close_code::BUSY)
        );
    }
}

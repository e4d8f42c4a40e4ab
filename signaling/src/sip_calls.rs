//! SIP calls through the REST API: `POST /api/v1/sip/calls` dials a phone into a room,
//! `GET` lists and reads calls (inbound ones too), `DELETE` hangs up, `POST …/dtmf` types
//! digits to the phone. The gateway lives in the `sip` crate, which depends on this one,
//! so the API reaches it through the [`SipCalls`] trait; without a gateway these routes
//! answer 404 `sip_disabled` (there is nothing to find).
//!
//! Authorization: a token with the `sipCall` grant, for its `room` (or any room when the
//! token names none).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::api::{ApiJson, ApiState, Caller};
use crate::error::Error;
use crate::participant_names::{check_identity, check_name};

/// Longest DTMF string accepted in one request.
pub const MAX_DTMF: usize = 64;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialRequest {
    /// The room the phone joins once it answers.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,128}$")]
    pub room: String,
    /// Whom to call: a number (with `trunk`), a registered SIP user's name, or a SIP URI
    /// (`sip:user@host:port`).
    pub to: String,
    /// The trunk (by name) to call a number through.
    pub trunk: Option<String>,
    /// The participant's identity in the room (default `sip-<call id>`).
    pub identity: Option<String>,
    /// Its display name (default: the number, masked).
    pub name: Option<String>,
    /// Digits (`0-9 * # A-D`, `w` for a half-second pause) typed to the phone after it
    /// answers.
    pub dtmf: Option<String>,
    /// Seconds to ring before giving up (default 30, at most 120).
    pub ring_timeout: Option<u64>,
    /// Answer the request only once the phone has answered (or not).
    #[serde(default)]
    pub wait_until_answered: bool,
    /// The API key (token issuer) that places the call: its calls are limited.
    #[serde(skip)]
    #[schema(ignore)]
    pub api_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Outbound, not answered yet; inbound, PIN entry.
    Ringing,
    Answered,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SipCallInfo {
    pub id: String,
    pub room: String,
    pub direction: CallDirection,
    pub state: CallState,
    /// The caller's user part (masked for inbound calls unless configured otherwise).
    pub from: String,
    pub to: String,
    /// The room participant, once answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub participant_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `PCMU` or `PCMA`, once answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Unix seconds.
    pub started_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// The phone's incoming audio so far (updated every 5 s while answered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<CallQuality>,
    /// Why it ended: `hangup` (the phone), `api` (DELETE), `removed` (from the room),
    /// `no_answer`, `busy`, `rejected <status>`, `failed: …`, `media_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_cause: Option<String>,
}

/// How good a phone's audio is, as the gateway receives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallQuality {
    /// Lost packets over expected ones, 0 to 1.
    pub loss: f64,
    /// RFC 3550 interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// A MOS-like score (ITU-T G.107 E-model, simplified), 1 to about 4.4.
    pub mos: f64,
}

pub type SipFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the REST API needs of the SIP gateway.
pub trait SipCalls: Send + Sync {
    /// Dial; resolves when the call is placed (or, with `wait_until_answered`, answered).
    fn dial(&self, req: DialRequest) -> SipFuture<'_, Result<SipCallInfo, Error>>;
    fn get(&self, id: &str) -> Option<SipCallInfo>;
    /// Calls in progress (and recently ended), optionally of one room.
    fn list(&self, room: Option<&str>) -> Vec<SipCallInfo>;
    fn hang_up(&self, id: &str) -> Result<(), Error>;
    fn send_dtmf(&self, id: &str, digits: &str) -> Result<(), Error>;
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendDtmf {
    /// `0-9 * # A-D`, `w` for a half-second pause.
    #[schema(max_length = 64)]
    pub digits: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SipCallList {
    pub calls: Vec<SipCallInfo>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub room: Option<String>,
}

/// Whether `digits` is a DTMF string we can send.
pub fn valid_dtmf(digits: &str) -> bool {
    !digits.is_empty()
        && digits.len() <= MAX_DTMF
        && digits
            .chars()
            .all(|c| matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'w'))
}

fn gateway(s: &ApiState) -> Result<&Arc<dyn SipCalls>, Error> {
    s.sip.as_ref().ok_or(Error::SipDisabled)
}

impl Caller {
    fn sip(&self, room: &str) -> Result<(), Error> {
        self.need(self.0.may_call(room), "sipCall (or sip.call) for this room")
    }
}

/// A call the caller may see or control.
fn call_of(s: &ApiState, c: &Caller, id: &str) -> Result<SipCallInfo, Error> {
    let info = gateway(s)?
        .get(id)
        .ok_or_else(|| Error::NotFound(format!("call {id}")))?;
    c.sip(&info.room)?;
    Ok(info)
}

type R<T> = Result<T, Error>;

#[utoipa::path(post, path = "/api/v1/sip/calls", request_body = DialRequest, security(("bearer" = [])),
    responses((status = 201, body = SipCallInfo), (status = 413, body = crate::api::ApiErrorBody), (status = 415, body = crate::api::ApiErrorBody), (status = 400, body = crate::api::ApiErrorBody), (status = 401, body = crate::api::ApiErrorBody),
        (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody), (status = 409, body = crate::api::ApiErrorBody, description = "not answered (wait_until_answered)"),
        (status = 429, body = crate::api::ApiErrorBody), (status = 503, body = crate::api::ApiErrorBody)))]
pub(crate) async fn dial(
    State(s): State<ApiState>,
    headers: HeaderMap,
    ApiJson(mut b): ApiJson<DialRequest>,
) -> R<(StatusCode, Json<SipCallInfo>)> {
    let c = Caller::from(&s, &headers)?;
    crate::api::room_name(&b.room)?;
    c.sip(&b.room)?;
    if let Some(d) = &b.dtmf {
        if !valid_dtmf(d) {
            return Err(Error::Invalid("dtmf: 1-64 of 0-9 * # A-D w".into()));
        }
    }
    if let Some(name) = &b.name {
        check_name(name)?;
    }
    if let Some(identity) = &b.identity {
        check_identity(identity)?;
        // The phone joins as a new participant; it never takes over someone's session.
        if s.hub.has_identity(&b.room, identity) {
            return Err(Error::Conflict(format!(
                "identity {identity} is already in room {}",
                b.room
            )));
        }
    }
    b.api_key = c.0.iss.clone();
    let info = gateway(&s)?.dial(b).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

#[utoipa::path(get, path = "/api/v1/sip/calls", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = SipCallList), (status = 401, body = crate::api::ApiErrorBody), (status = 403, body = crate::api::ApiErrorBody), (status = 429, body = crate::api::ApiErrorBody), (status = 503, body = crate::api::ApiErrorBody)))]
pub(crate) async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> R<Json<SipCallList>> {
    let c = Caller::from(&s, &headers)?;
    let room = q
        .room
        .or_else(|| Some(c.0.video.room.clone()).filter(|r| !r.is_empty()));
    c.sip(room.as_deref().unwrap_or(""))?;
    Ok(Json(SipCallList {
        calls: gateway(&s)?.list(room.as_deref()),
    }))
}

#[utoipa::path(get, path = "/api/v1/sip/calls/{id}", security(("bearer" = [])),
    responses((status = 200, body = SipCallInfo), (status = 401, body = crate::api::ApiErrorBody), (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody), (status = 429, body = crate::api::ApiErrorBody), (status = 503, body = crate::api::ApiErrorBody)))]
pub(crate) async fn get_call(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> R<Json<SipCallInfo>> {
    let c = Caller::from(&s, &headers)?;
    Ok(Json(call_of(&s, &c, &id)?))
}

#[utoipa::path(delete, path = "/api/v1/sip/calls/{id}", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::api::ApiErrorBody), (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody), (status = 429, body = crate::api::ApiErrorBody), (status = 503, body = crate::api::ApiErrorBody)))]
pub(crate) async fn hang_up(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> R<StatusCode> {
    let c = Caller::from(&s, &headers)?;
    call_of(&s, &c, &id)?;
    gateway(&s)?.hang_up(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/sip/calls/{id}/dtmf", request_body = SendDtmf, security(("bearer" = [])),
    responses((status = 202), (status = 413, body = crate::api::ApiErrorBody), (status = 415, body = crate::api::ApiErrorBody), (status = 400, body = crate::api::ApiErrorBody), (status = 401, body = crate::api::ApiErrorBody), (status = 403, body = crate::api::ApiErrorBody), (status = 404, body = crate::api::ApiErrorBody), (status = 429, body = crate::api::ApiErrorBody), (status = 503, body = crate::api::ApiErrorBody)))]
pub(crate) async fn dtmf(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<SendDtmf>,
) -> R<StatusCode> {
    let c = Caller::from(&s, &headers)?;
    call_of(&s, &c, &id)?;
    if !valid_dtmf(&b.digits) {
        return Err(Error::Invalid("digits: 1-64 of 0-9 * # A-D w".into()));
    }
    gateway(&s)?.send_dtmf(&id, &b.digits)?;
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dtmf_strings() {
        assert!(super::valid_dtmf("123#"));
        assert!(super::valid_dtmf("w1w*D"));
        assert!(!super::valid_dtmf(""));
        assert!(!super::valid_dtmf("12x"));
        assert!(!super::valid_dtmf(&"1".repeat(65)));
    }
}

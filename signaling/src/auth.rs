//! Access tokens: JWT (RFC 7519) signed with HS256 by one of the configured API key /
//! secret pairs. The key is named by the `iss` claim; the grants follow LiveKit's shape
//! so that tools written for it map over easily.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::ParticipantKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows. Participant grants (`roomJoin` and what follows) apply to `room`;
/// admin grants apply to `room` or, when it is empty, to every room (`roomCreate`,
/// `roomList`) — LiveKit's grant names, so existing tooling maps over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    #[serde(default)]
    pub room: String,
    #[serde(default)]
    pub room_join: bool,
    #[serde(default = "yes")]
    pub can_publish: bool,
    #[serde(default = "yes")]
    pub can_subscribe: bool,
    #[serde(default = "yes")]
    pub can_publish_data: bool,
    /// Limit publishing to these sources (`camera`, `microphone`, `screen_share`); empty:
    /// any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<sfu_core::TrackSource>,
    /// Invisible to other participants (recorders, bots).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// REST: create rooms (any name).
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_create: bool,
    /// REST: list all rooms.
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_list: bool,
    /// REST: administer `room` (participants, mutes, metadata, data, deletion); with an
    /// empty `room`, every room.
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_admin: bool,
    /// REST: place, list and hang up SIP calls (`/api/v1/sip/calls`) for `room`; with an
    /// empty `room`, every room.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sip_call: bool,
    /// Its own client may change its metadata, name and attributes (LiveKit's
    /// `canUpdateOwnMetadata`; LiveKit's client protocol carries such updates).
    #[serde(default, skip_serializing_if = "is_false")]
    pub can_update_own_metadata: bool,
}

impl Default for VideoGrant {
    fn default() -> Self {
        Self {
            room: String::new(),
            room_join: false,
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            can_publish_sources: vec![],
            hidden: false,
            room_create: false,
            room_list: false,
            room_admin: false,
            sip_call: false,
            can_update_own_metadata: false,
        }
    }
}

impl VideoGrant {
    /// A participant grant for `room`.
    pub fn join(room: &str) -> Self {
        Self {
            room: room.to_string(),
            room_join: true,
            ..Self::default()
        }
    }

    /// May administer `room` (a room-scoped or global admin grant).
    pub fn admin_of(&self, room: &str) -> bool {
        self.room_admin && (self.room.is_empty() || self.room == room)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed the token.
    pub iss: String,
    /// The participant identity. Server-side tokens (LiveKit's SDKs mint them for API
    /// calls) may leave it out; joining needs one.
    #[serde(default)]
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The participant's kind (`sip` for the SIP gateway's phones); tokens for people
    /// leave it out.
    #[serde(default, skip_serializing_if = "ParticipantKind::is_standard")]
    pub kind: ParticipantKind,
    /// The participant's initial metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    /// The participant's initial attributes (LiveKit's `attributes`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub video: VideoGrant,
    /// LiveKit's SIP grants (`sip`), beside the video grant's `sipCall`.
    #[serde(default, skip_serializing_if = "SipGrant::is_empty")]
    pub sip: SipGrant,
}

/// LiveKit's `sip` claim: `call` places and controls SIP calls (as the video grant's
/// `sipCall`, for the token's room or every room); `admin` manages trunks and dispatch
/// rules, which this server configures from its file, so it grants nothing here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipGrant {
    #[serde(default, skip_serializing_if = "is_false")]
    pub admin: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub call: bool,
}

impl SipGrant {
    fn is_empty(&self) -> bool {
        !self.admin && !self.call
    }
}

impl Claims {
    /// May place and control SIP calls for `room` (`sipCall` in the video grant, or
    /// `sip.call`), the token's room or, without one, any.
    pub fn may_call(&self, room: &str) -> bool {
        let v = &self.video;
        (v.sip_call || self.sip.call) && (v.room.is_empty() || v.room == room)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing access token")]
    Missing,
    #[error("the access token is malformed")]
    Malformed,
    /// An unknown API key or a wrong signature: one answer for both, so that a caller
    /// cannot learn which key names exist.
    #[error("the access token's signature does not match a key of this server")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token does not grant joining a room")]
    NoJoinGrant,
    #[error("the access token names no identity (`sub`)")]
    NoIdentity,
}

/// Seconds of clock difference allowed between the server that minted a token and this
/// one, on `exp` and `nbf` (a token minted on a host whose clock is a few seconds ahead
/// must not be refused as not yet valid).
pub const CLOCK_LEEWAY: u64 = 10;

/// What a token naming an unknown key is checked against (it never verifies: a real
/// secret is 16+ characters, and this one is never configured).
const UNKNOWN_KEY_SECRET: &str = "\u{0}unknown key";

/// The configured API key pairs.
#[derive(Clone, Default)]
pub struct KeyStore {
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

pub fn unix_now() -> u64 {
    since_epoch().as_secs()
}

/// Unix time in milliseconds (LiveKit's pongs carry it).
pub fn unix_now_ms() -> i64 {
    i64::try_from(since_epoch().as_millis()).unwrap_or(0)
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl KeyStore {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            secrets: pairs.into_iter().collect(),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.secrets.contains_key(key)
    }

    /// Sign arbitrary JSON claims (tests, tools).
    pub fn mint_json(&self, key: &str, claims: &serde_json::Value) -> Option<String> {
        self.sign(key, claims)
    }

    fn sign(&self, key: &str, claims: &impl serde::Serialize) -> Option<String> {
        let secret = self.secrets.get(key)?;
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .ok()
    }

    /// The secret of a key (webhook signing).
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    /// The first configured key (webhooks are signed with it).
    pub fn first_key(&self) -> Option<&str> {
        let mut keys: Vec<&String> = self.secrets.keys().collect();
        keys.sort();
        keys.first().map(|s| s.as_str())
    }

    /// Sign claims with the named key.
    pub fn mint(&self, key: &str, claims: &Claims) -> Option<String> {
        self.sign(key, claims)
    }

    /// Verify a participant token (one with `roomJoin` for a room) at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let c = self.verify_any(token, now)?;
        if !c.video.room_join || c.video.room.is_empty() {
            return Err(AuthError::NoJoinGrant);
        }
        if c.sub.is_empty() {
            return Err(AuthError::NoIdentity);
        }
        Ok(c)
    }

    /// Verify signature and validity times only (REST callers check their grants).
    pub fn verify_any(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Malformed)?;
        // An unknown key is checked against a secret nobody has, so that it costs the same
        // and ends the same as a wrong signature.
        let known = self.secrets.get(&unverified.iss);
        let secret = known.map_or(UNKNOWN_KEY_SECRET, String::as_str);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false; // checked below against the caller's clock
        v.validate_nbf = false;
        v.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                    _ => AuthError::Malformed,
                })?;
        if known.is_none() {
            return Err(AuthError::BadSignature);
        }
        let c = data.claims;
        if c.exp.saturating_add(CLOCK_LEEWAY) <= now {
            return Err(AuthError::Expired);
        }
        if c.nbf
            .is_some_and(|nbf| nbf > now.saturating_add(CLOCK_LEEWAY))
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "k1".into(),
            sub: "alice".into(),
            exp,
            nbf: None,
            kind: Default::default(),
            metadata: None,
            name: Some("Alice".into()),
            attributes: Default::default(),
            sip: Default::default(),
            video: VideoGrant::join("r"),
        }
    }

    #[test]
    fn verify_table() {
        let ks = KeyStore::new([
            ("k1".into(), "secret-one".into()),
            ("k2".into(), "secret-two".into()),
        ]);
        let other = KeyStore::new([("k1".into(), "forged".into())]);
        let now = 1_000_000;
        let good = ks.mint("k1", &claims(now + 60)).unwrap();
        assert_eq!(ks.verify(&good, now).unwrap().sub, "alice");
        let cases: Vec<(String, AuthError)> = vec![
            (String::new(), AuthError::Missing),
            ("garbage".into(), AuthError::Malformed),
            (
                ks.mint("k1", &claims(now - CLOCK_LEEWAY)).unwrap(),
                AuthError::Expired,
            ),
            (
                other.mint("k1", &claims(now + 60)).unwrap(),
                AuthError::BadSignature,
            ),
            (
                ks.mint(
                    "k1",
                    &Claims {
                        iss: "k9".into(),
                        ..claims(now + 60)
                    },
                )
                .unwrap(),
                AuthError::BadSignature,
            ),
            (
                ks.mint(
                    "k1",
                    &Claims {
                        nbf: Some(now + 30),
                        kind: Default::default(),
                        metadata: None,
                        ..claims(now + 60)
                    },
                )
                .unwrap(),
                AuthError::NotYetValid,
            ),
            (
                ks.mint(
                    "k1",
                    &Claims {
                        attributes: Default::default(),
                        sip: Default::default(),
                        video: VideoGrant {
                            room_join: false,
                            ..claims(0).video
                        },
                        ..claims(now + 60)
                    },
                )
                .unwrap(),
                AuthError::NoJoinGrant,
            ),
        ];
        for (tok, want) in cases {
            assert_eq!(ks.verify(&tok, now), Err(want.clone()), "{want:?}");
        }
        // Old tokens without the newer grant fields still parse, with their defaults.
        let old = ks.mint_json("k1", &serde_json::json!({"iss": "k1", "sub": "x", "exp": now + 60, "video": {"room": "r", "roomJoin": true}})).unwrap();
        let c = ks.verify(&old, now).unwrap();
        assert!(
            c.video.can_publish
                && c.video.can_subscribe
                && c.video.can_publish_data
                && !c.video.room_admin
        );
        // Admin scope
        assert!(VideoGrant {
            room_admin: true,
            ..VideoGrant::join("")
        }
        .admin_of("any"));
        assert!(VideoGrant {
            room_admin: true,
            ..VideoGrant::join("a")
        }
        .admin_of("a"));
        assert!(!VideoGrant {
            room_admin: true,
            ..VideoGrant::join("a")
        }
        .admin_of("b"));
        assert!(!VideoGrant::join("a").admin_of("a"));
        // Within the clock leeway: a token that expired a few seconds ago on a clock
        // behind ours, or becomes valid a few seconds ahead, passes.
        let skewed = ks
            .mint(
                "k1",
                &Claims {
                    nbf: Some(now + CLOCK_LEEWAY),
                    ..claims(now - CLOCK_LEEWAY + 1)
                },
            )
            .unwrap();
        assert!(ks.verify(&skewed, now).is_ok());
        // An unknown key and a wrong signature read the same.
        assert_eq!(
            AuthError::BadSignature.to_string(),
            "the access token's signature does not match a key of this server"
        );
        // A token signed by k2's secret but claiming k1 is forged.
        let forged = KeyStore::new([("k1".into(), "secret-two".into())])
            .mint("k1", &claims(now + 60))
            .unwrap();
        assert_eq!(ks.verify(&forged, now), Err(AuthError::BadSignature));
    }

    /// The claims livekit-server-sdk 2.19's `AccessToken` writes (identity, name,
    /// metadata, attributes, a video grant with sources, a SIP grant, kind `agent`): a
    /// token minted by LiveKit's tooling with one of our key pairs is ours.
    #[test]
    fn a_livekit_access_token_maps_onto_our_grants() {
        let ks = KeyStore::new([("devkey".to_string(), "s".repeat(32))]);
        let now = 1_796_601_770;
        let payload = serde_json::json!({
            "metadata": "m", "attributes": {"a": "b"}, "name": "Alice",
            "video": {"roomJoin": true, "room": "r1", "canPublish": false,
                      "canPublishSources": ["camera", "microphone"], "canUpdateOwnMetadata": true},
            "sip": {"call": true}, "kind": "agent",
            "iss": "devkey", "exp": now + 600, "nbf": now, "sub": "alice"
        });
        let token = ks.mint_json("devkey", &payload).unwrap();
        let c = ks.verify(&token, now).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.name.as_deref()),
            ("alice", Some("Alice"))
        );
        assert_eq!(c.kind, ParticipantKind::Agent);
        assert_eq!(c.attributes.get("a").map(String::as_str), Some("b"));
        assert!(!c.video.can_publish && c.video.can_subscribe);
        assert_eq!(
            c.video.can_publish_sources,
            [
                sfu_core::TrackSource::Camera,
                sfu_core::TrackSource::Microphone
            ]
        );
        assert!(c.may_call("r1") && !c.may_call("other"));
        // Without the SIP grant, no calls; `sip.admin` alone grants none here.
        let mut p = payload.clone();
        p["sip"] = serde_json::json!({"admin": true});
        let c = ks
            .verify(&ks.mint_json("devkey", &p).unwrap(), now)
            .unwrap();
        assert!(!c.may_call("r1"));
        // A kind nobody defined is a malformed token, not a standard participant.
        p["kind"] = serde_json::json!("robot");
        assert_eq!(
            ks.verify(&ks.mint_json("devkey", &p).unwrap(), now),
            Err(AuthError::Malformed)
        );
    }
}

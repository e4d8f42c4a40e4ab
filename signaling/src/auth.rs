//! Access tokens: JWT (RFC 7519) signed with HS256 by one of the configured API key /
//! secret pairs. The key is named by the `iss` claim; the grants follow LiveKit's shape
//! so that tools written for it map over easily.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows in one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
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
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed the token.
    pub iss: String,
    /// The participant identity.
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub video: VideoGrant,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing access token")]
    Missing,
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token names an unknown API key")]
    UnknownKey,
    #[error("the access token's signature is invalid")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token does not grant joining a room")]
    NoJoinGrant,
}

/// The configured API key pairs.
#[derive(Clone, Default)]
pub struct KeyStore {
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").field("keys", &self.secrets.keys().collect::<Vec<_>>()).finish()
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl KeyStore {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self { secrets: pairs.into_iter().collect() }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.secrets.contains_key(key)
    }

    /// Sign claims with the named key.
    pub fn mint(&self, key: &str, claims: &Claims) -> Option<String> {
        let secret = self.secrets.get(key)?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).ok()
    }

    /// Verify a token at `now` (seconds since the epoch) and return its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let unverified: Claims =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| AuthError::Malformed)?;
        let secret = self.secrets.get(&unverified.iss).ok_or(AuthError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false; // checked below against the caller's clock
        v.validate_nbf = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                _ => AuthError::Malformed,
            })?;
        let c = data.claims;
        if c.exp <= now {
            return Err(AuthError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now) {
            return Err(AuthError::NotYetValid);
        }
        if !c.video.room_join || c.video.room.is_empty() {
            return Err(AuthError::NoJoinGrant);
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
            name: Some("Alice".into()),
            video: VideoGrant { room: "r".into(), room_join: true, can_publish: true, can_subscribe: true },
        }
    }

    #[test]
    fn verify_table() {
        let ks = KeyStore::new([("k1".into(), "secret-one".into()), ("k2".into(), "secret-two".into())]);
        let other = KeyStore::new([("k1".into(), "forged".into())]);
        let now = 1_000_000;
        let good = ks.mint("k1", &claims(now + 60)).unwrap();
        assert_eq!(ks.verify(&good, now).unwrap().sub, "alice");
        let cases: Vec<(String, AuthError)> = vec![
            (String::new(), AuthError::Missing),
            ("garbage".into(), AuthError::Malformed),
            (ks.mint("k1", &claims(now - 1)).unwrap(), AuthError::Expired),
            (other.mint("k1", &claims(now + 60)).unwrap(), AuthError::BadSignature),
            (ks.mint("k1", &Claims { iss: "k9".into(), ..claims(now + 60) }).unwrap(), AuthError::UnknownKey),
            (ks.mint("k1", &Claims { nbf: Some(now + 30), ..claims(now + 60) }).unwrap(), AuthError::NotYetValid),
            (
                ks.mint("k1", &Claims { video: VideoGrant { room_join: false, ..claims(0).video }, ..claims(now + 60) }).unwrap(),
                AuthError::NoJoinGrant,
            ),
        ];
        for (tok, want) in cases {
            assert_eq!(ks.verify(&tok, now), Err(want.clone()), "{want:?}");
        }
        // A token signed by k2's secret but claiming k1 is forged.
        let forged = KeyStore::new([("k1".into(), "secret-two".into())]).mint("k1", &claims(now + 60)).unwrap();
        assert_eq!(ks.verify(&forged, now), Err(AuthError::BadSignature));
    }
}

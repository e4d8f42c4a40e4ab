//! SIP digest authentication on the server side (RFC 3261 §22, RFC 2617 `qop=auth`):
//! challenges with nonces that need no state (a timestamp and its HMAC under a key the
//! caller chooses), and the check of an `Authorization` or `Proxy-Authorization` answer.
//! The digest arithmetic itself is rsipstack's (`verify_digest`).
//!
//! Sans-IO: the key and the clock (Unix seconds) come from the caller.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use rsipstack::dialog::authenticate::verify_digest;
use rsipstack::sip::typed::Authorization;
use rsipstack::sip::Method;

/// The realm in every challenge.
pub const REALM: &str = "switchboard";
/// How long a nonce is accepted (seconds).
pub const NONCE_LIFETIME: u64 = 300;

/// Why an answer to a challenge was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("no credentials")]
    Missing,
    #[error("malformed credentials")]
    Malformed,
    /// A nonce we issued, too old: challenge again with `stale=true`.
    #[error("stale nonce")]
    Stale,
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong credentials")]
    Wrong,
}

pub struct Digest {
    key: hmac::Key,
}

impl Digest {
    /// `secret`: random bytes, the same for the life of the process (nonces issued under
    /// another key are refused).
    pub fn new(secret: &[u8]) -> Self {
        Digest {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, ts: u64) -> String {
        let tag = hmac::sign(&self.key, &ts.to_be_bytes());
        hex::encode(&tag.as_ref()[..12])
    }

    /// A fresh nonce: `<unix seconds in hex>.<mac>`.
    pub fn nonce(&self, now: u64) -> String {
        format!("{now:x}.{}", self.mac(now))
    }

    /// The value of a `WWW-Authenticate` or `Proxy-Authenticate` header.
    pub fn challenge(&self, now: u64, stale: bool) -> String {
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{}",
            self.nonce(now),
            if stale { ", stale=true" } else { "" }
        )
    }

    fn nonce_ok(&self, nonce: &str, now: u64) -> Result<(), DigestError> {
        let (ts, mac) = nonce.split_once('.').ok_or(DigestError::Wrong)?;
        let ts = u64::from_str_radix(ts, 16).map_err(|_| DigestError::Wrong)?;
        if verify_slices_are_equal(self.mac(ts).as_bytes(), mac.as_bytes()).is_err() {
            return Err(DigestError::Wrong);
        }
        if ts > now || now - ts > NONCE_LIFETIME {
            return Err(DigestError::Stale);
        }
        Ok(())
    }

    /// Check the raw value of an `Authorization`/`Proxy-Authorization` header for
    /// `method`, with `password_of` the password of a user (None: no such user). The
    /// authenticated user name on success.
    pub fn verify(
        &self,
        raw: Option<&str>,
        method: &Method,
        now: u64,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<String, DigestError> {
        let raw = raw.ok_or(DigestError::Missing)?;
        let auth = Authorization::parse(raw).map_err(|_| DigestError::Malformed)?;
        if auth.realm != REALM {
            return Err(DigestError::Wrong);
        }
        self.nonce_ok(&auth.nonce, now)?;
        let password = password_of(&auth.username).ok_or(DigestError::UnknownUser)?;
        if verify_digest(&auth, &password, method, raw) {
            Ok(auth.username)
        } else {
            Err(DigestError::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::dialog::authenticate::compute_digest;
    use rsipstack::sip::headers::auth::{Algorithm, AuthQop};

    fn answer(user: &str, password: &str, nonce: &str, method: &Method) -> String {
        let uri = "sip:lobby@127.0.0.1:5060";
        let qop = AuthQop::Auth {
            cnonce: "0a4f113b".into(),
            nc: 1,
        };
        let response = compute_digest(
            user,
            password,
            REALM,
            nonce,
            method,
            uri,
            Algorithm::Md5,
            Some(&qop),
        );
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\""
        )
    }

    fn users(u: &str) -> Option<String> {
        (u == "alice").then(|| "secret".to_string())
    }

    #[test]
    fn a_right_answer_to_our_challenge_passes() {
        let d = Digest::new(b"k");
        let nonce = d.nonce(1_000);
        let raw = answer("alice", "secret", &nonce, &Method::Invite);
        assert_eq!(
            d.verify(Some(&raw), &Method::Invite, 1_010, users),
            Ok("alice".into())
        );
    }

    #[test]
    fn wrong_answers_are_refused_each_for_its_reason() {
        let d = Digest::new(b"k");
        let nonce = d.nonce(1_000);
        let check = |raw: &str, now| d.verify(Some(raw), &Method::Invite, now, users);
        assert_eq!(
            d.verify(None, &Method::Invite, 1_000, users),
            Err(DigestError::Missing)
        );
        assert_eq!(check("Basic abc", 1_000), Err(DigestError::Malformed));
        assert_eq!(
            check(&answer("alice", "guess", &nonce, &Method::Invite), 1_000),
            Err(DigestError::Wrong)
        );
        // An answer for another method does not pass for this one.
        assert_eq!(
            check(&answer("alice", "secret", &nonce, &Method::Register), 1_000),
            Err(DigestError::Wrong)
        );
        assert_eq!(
            check(&answer("mallory", "secret", &nonce, &Method::Invite), 1_000),
            Err(DigestError::UnknownUser)
        );
        // A nonce we never issued (another key, or made up).
        let foreign = Digest::new(b"other").nonce(1_000);
        assert_eq!(
            check(&answer("alice", "secret", &foreign, &Method::Invite), 1_000),
            Err(DigestError::Wrong)
        );
        assert_eq!(
            check(&answer("alice", "secret", "3e8.00", &Method::Invite), 1_000),
            Err(DigestError::Wrong)
        );
        // Ours, but too old: stale, so the phone retries without asking its user.
        assert_eq!(
            check(
                &answer("alice", "secret", &nonce, &Method::Invite),
                1_000 + NONCE_LIFETIME + 1
            ),
            Err(DigestError::Stale)
        );
    }

    #[test]
    fn the_challenge_names_realm_nonce_and_qop() {
        let d = Digest::new(b"k");
        let c = d.challenge(1_000, true);
        assert!(
            c.starts_with("Digest realm=\"switchboard\", nonce=\"3e8."),
            "{c}"
        );
        assert!(
            c.contains("qop=\"auth\"") && c.ends_with("stale=true"),
            "{c}"
        );
    }
}

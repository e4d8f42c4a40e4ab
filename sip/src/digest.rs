//! SIP digest authentication on the server side (RFC 3261 §22, RFC 2617 `qop=auth`):
//! challenges with nonces that need no state to issue (a timestamp and its HMAC under a
//! key the caller chooses), and the check of an `Authorization` or `Proxy-Authorization`
//! answer: the digest `uri` must be the request's own Request-URI, the response is
//! compared in constant time, and a nonce is used again only with a higher nonce count
//! (`nc`): an answer captured on the wire and sent again (a replayed REGISTER with
//! another Contact, say) is refused. The digest arithmetic is rsipstack's
//! (`compute_digest`); the nonce counts of accepted answers are kept for a nonce's
//! lifetime.
//!
//! Sans-IO: the key and the clock (Unix seconds) come from the caller.

use std::collections::HashMap;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use parking_lot::Mutex;
use rsipstack::dialog::authenticate::{compute_digest, extract_digest_uri_raw};
use rsipstack::sip::headers::auth::{Algorithm, AuthQop};
use rsipstack::sip::typed::Authorization;
use rsipstack::sip::{Method, Uri};

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
    /// The digest names another URI than the request's.
    #[error("the digest uri is not the Request-URI")]
    WrongUri,
    /// A nonce count not above the last one accepted for this nonce: a replay.
    #[error("a replayed answer")]
    Replayed,
}

pub struct Digest {
    key: hmac::Key,
    /// Nonce → (its time, the highest `nc` accepted with it).
    counts: Mutex<HashMap<String, (u64, u8)>>,
    /// The next nonce's serial number.
    serial: std::sync::atomic::AtomicU64,
}

impl Digest {
    /// `secret`: random bytes, the same for the life of the process (nonces issued under
    /// another key are refused).
    pub fn new(secret: &[u8]) -> Self {
        Digest {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            counts: Mutex::new(HashMap::new()),
            serial: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn mac(&self, ts: u64, serial: u64) -> String {
        let mut msg = [0u8; 16];
        msg[..8].copy_from_slice(&ts.to_be_bytes());
        msg[8..].copy_from_slice(&serial.to_be_bytes());
        let tag = hmac::sign(&self.key, &msg);
        hex::encode(&tag.as_ref()[..12])
    }

    /// A fresh nonce, never issued before by this process: `<unix seconds in hex>.<serial
    /// in hex>.<mac>` (two challenges in one second get two nonces, each with its own
    /// count).
    pub fn nonce(&self, now: u64) -> String {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{now:x}.{serial:x}.{}", self.mac(now, serial))
    }

    /// The value of a `WWW-Authenticate` or `Proxy-Authenticate` header.
    pub fn challenge(&self, now: u64, stale: bool) -> String {
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"{}",
            self.nonce(now),
            if stale { ", stale=true" } else { "" }
        )
    }

    /// The nonce's time, if it is ours and fresh.
    fn nonce_ok(&self, nonce: &str, now: u64) -> Result<u64, DigestError> {
        let mut parts = nonce.splitn(3, '.');
        let (Some(ts), Some(serial), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(DigestError::Wrong);
        };
        let ts = u64::from_str_radix(ts, 16).map_err(|_| DigestError::Wrong)?;
        let serial = u64::from_str_radix(serial, 16).map_err(|_| DigestError::Wrong)?;
        if verify_slices_are_equal(self.mac(ts, serial).as_bytes(), mac.as_bytes()).is_err() {
            return Err(DigestError::Wrong);
        }
        if ts > now || now - ts > NONCE_LIFETIME {
            return Err(DigestError::Stale);
        }
        Ok(ts)
    }

    /// Accept `nc` for `nonce` (issued at `ts`) only above the last one accepted.
    fn count(&self, nonce: &str, ts: u64, nc: u8, now: u64) -> Result<(), DigestError> {
        let mut counts = self.counts.lock();
        counts.retain(|_, (t, _)| now.saturating_sub(*t) <= NONCE_LIFETIME);
        let last = counts.entry(nonce.to_string()).or_insert((ts, 0));
        if nc <= last.1 {
            return Err(DigestError::Replayed);
        }
        last.1 = nc;
        Ok(())
    }

    /// Check the raw value of an `Authorization`/`Proxy-Authorization` header of a
    /// request with this `method` and Request-URI `uri`, with `password_of` the password
    /// of a user (None: no such user). The authenticated user name on success.
    pub fn verify(
        &self,
        raw: Option<&str>,
        method: &Method,
        uri: &Uri,
        now: u64,
        password_of: impl Fn(&str) -> Option<String>,
    ) -> Result<String, DigestError> {
        let raw = raw.ok_or(DigestError::Missing)?;
        let auth = Authorization::parse(raw).map_err(|_| DigestError::Malformed)?;
        if auth.realm != REALM {
            return Err(DigestError::Wrong);
        }
        let ts = self.nonce_ok(&auth.nonce, now)?;
        // Our challenges ask for qop=auth: its nonce count is what stops replays.
        let Some(AuthQop::Auth { nc, .. }) = &auth.qop else {
            return Err(DigestError::Malformed);
        };
        // The URI the response was computed over, as the phone wrote it.
        let digest_uri = extract_digest_uri_raw(raw).unwrap_or_else(|| auth.uri.to_string());
        if Uri::try_from(digest_uri.as_str()).ok().as_ref() != Some(uri) {
            return Err(DigestError::WrongUri);
        }
        let password = password_of(&auth.username).ok_or(DigestError::UnknownUser)?;
        let expected = compute_digest(
            &auth.username,
            &password,
            &auth.realm,
            &auth.nonce,
            method,
            &digest_uri,
            auth.algorithm.unwrap_or(Algorithm::Md5),
            auth.qop.as_ref(),
        );
        verify_slices_are_equal(expected.as_bytes(), auth.response.as_bytes())
            .map_err(|_| DigestError::Wrong)?;
        self.count(&auth.nonce, ts, *nc, now)?;
        Ok(auth.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "sip:lobby@127.0.0.1:5060";

    fn lobby() -> Uri {
        Uri::try_from(URI).unwrap()
    }

    fn answer_nc(
        user: &str,
        password: &str,
        nonce: &str,
        method: &Method,
        uri: &str,
        nc: u8,
    ) -> String {
        let qop = AuthQop::Auth {
            cnonce: "0a4f113b".into(),
            nc,
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
             response=\"{response}\", algorithm=MD5, qop=auth, nc={nc:08x}, cnonce=\"0a4f113b\""
        )
    }

    fn answer(user: &str, password: &str, nonce: &str, method: &Method) -> String {
        answer_nc(user, password, nonce, method, URI, 1)
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
            d.verify(Some(&raw), &Method::Invite, &lobby(), 1_010, users),
            Ok("alice".into())
        );
    }

    #[test]
    fn two_challenges_in_one_second_have_two_nonces_each_with_its_own_count() {
        let d = Digest::new(b"k");
        let (n1, n2) = (d.nonce(1_000), d.nonce(1_000));
        assert_ne!(n1, n2);
        for n in [&n1, &n2] {
            let raw = answer("alice", "secret", n, &Method::Invite);
            assert_eq!(
                d.verify(Some(&raw), &Method::Invite, &lobby(), 1_000, users),
                Ok("alice".into())
            );
        }
    }

    #[test]
    fn a_nonce_is_used_again_only_with_a_higher_count() {
        let d = Digest::new(b"k");
        let nonce = d.nonce(1_000);
        let with = |nc| answer_nc("alice", "secret", &nonce, &Method::Register, URI, nc);
        let check = |raw: &str, now| d.verify(Some(raw), &Method::Register, &lobby(), now, users);
        assert_eq!(check(&with(1), 1_000), Ok("alice".into()));
        // The same answer again (captured on the wire): refused.
        assert_eq!(check(&with(1), 1_001), Err(DigestError::Replayed));
        assert_eq!(check(&with(2), 1_002), Ok("alice".into()));
        assert_eq!(check(&with(2), 1_003), Err(DigestError::Replayed));
        assert_eq!(check(&with(1), 1_003), Err(DigestError::Replayed));
        // A wrong answer does not spend a count.
        let wrong = answer_nc("alice", "guess", &nonce, &Method::Register, URI, 3);
        assert_eq!(check(&wrong, 1_004), Err(DigestError::Wrong));
        assert_eq!(check(&with(3), 1_004), Ok("alice".into()));
        // Another nonce has its own count.
        let other = d.nonce(1_005);
        let raw = answer_nc("alice", "secret", &other, &Method::Register, URI, 1);
        assert_eq!(check(&raw, 1_005), Ok("alice".into()));
    }

    #[test]
    fn the_digest_uri_must_be_the_request_uri() {
        let d = Digest::new(b"k");
        let nonce = d.nonce(1_000);
        let elsewhere = answer_nc(
            "alice",
            "secret",
            &nonce,
            &Method::Invite,
            "sip:other@127.0.0.1:5060",
            1,
        );
        assert_eq!(
            d.verify(Some(&elsewhere), &Method::Invite, &lobby(), 1_000, users),
            Err(DigestError::WrongUri)
        );
        // The same URI written with its parts in another case still names it.
        let same = answer_nc(
            "alice",
            "secret",
            &nonce,
            &Method::Invite,
            "sip:lobby@127.0.0.1:5060",
            1,
        );
        assert_eq!(
            d.verify(Some(&same), &Method::Invite, &lobby(), 1_000, users),
            Ok("alice".into())
        );
    }

    #[test]
    fn wrong_answers_are_refused_each_for_its_reason() {
        let d = Digest::new(b"k");
        let nonce = d.nonce(1_000);
        let check = |raw: &str, now| d.verify(Some(raw), &Method::Invite, &lobby(), now, users);
        assert_eq!(
            d.verify(None, &Method::Invite, &lobby(), 1_000, users),
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
        // Without qop (no nonce count, so no replay protection): refused.
        let no_qop = answer("alice", "secret", &nonce, &Method::Invite)
            .replace(", qop=auth, nc=00000001, cnonce=\"0a4f113b\"", "");
        assert_eq!(check(&no_qop, 1_000), Err(DigestError::Malformed));
        // A nonce we never issued (another key, or made up).
        let foreign = Digest::new(b"other").nonce(1_000);
        assert_eq!(
            check(&answer("alice", "secret", &foreign, &Method::Invite), 1_000),
            Err(DigestError::Wrong)
        );
        assert_eq!(
            check(
                &answer("alice", "secret", "3e8.0.00", &Method::Invite),
                1_000
            ),
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
            c.starts_with("Digest realm=\"switchboard\", nonce=\"3e8.0."),
            "{c}"
        );
        assert!(
            c.contains("qop=\"auth\"") && c.ends_with("stale=true"),
            "{c}"
        );
    }
}

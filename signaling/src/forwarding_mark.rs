//! The mark on a request one cluster node forwards to another (`x-switchboard-forwarded`):
//! `<unix seconds>.<hex HMAC-SHA256(key, "<seconds>\n<METHOD>\n<path?query>")>`. A node
//! answers a marked request itself, without placing or forwarding it again, so the mark
//! must be unforgeable: a client that could set it would make any node serve (and create)
//! a room homed elsewhere — a split room with duplicate webhooks. The key is derived from
//! the first API key's secret, which every node of a cluster shares; a mark is good for
//! [`MAX_SKEW`] seconds either way. Sans-IO: the caller gives the clock.

use aws_lc_rs::hmac;

/// The header.
pub const FORWARDED: &str = "x-switchboard-forwarded";

/// How far a mark's time may be from the receiver's clock, in seconds.
pub const MAX_SKEW: u64 = 30;

/// The key marks are signed and checked with.
pub struct MarkKey(hmac::Key);

/// A mark that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a forged or stale cluster forwarding mark")]
pub struct BadMark;

impl MarkKey {
    /// The key of a cluster whose first API key has `secret`.
    pub fn from_api_secret(secret: &str) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let key = hmac::sign(&derive, b"switchboard cluster forwarding mark v1");
        MarkKey(hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()))
    }

    fn tag(&self, at: u64, method: &str, target: &str) -> hmac::Tag {
        hmac::sign(&self.0, format!("{at}\n{method}\n{target}").as_bytes())
    }

    /// The mark for a request (`target`: its path and query) sent at `now`.
    pub fn sign(&self, now: u64, method: &str, target: &str) -> String {
        format!("{now}.{}", hex::encode(self.tag(now, method, target)))
    }

    /// Whether `mark` was made with this key for this request, within [`MAX_SKEW`] of
    /// `now` (constant-time comparison).
    pub fn verify(&self, mark: &str, now: u64, method: &str, target: &str) -> Result<(), BadMark> {
        let (at, sig) = mark.split_once('.').ok_or(BadMark)?;
        let at: u64 = at.parse().map_err(|_| BadMark)?;
        if at.abs_diff(now) > MAX_SKEW {
            return Err(BadMark);
        }
        let sig = hex::decode(sig).map_err(|_| BadMark)?;
        let msg = format!("{at}\n{method}\n{target}");
        hmac::verify(&self.0, msg.as_bytes(), &sig).map_err(|_| BadMark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_verifies_only_for_its_request_key_and_time() {
        let k = MarkKey::from_api_secret("cluster-secret-0123456789");
        let m = k.sign(1_000, "POST", "/whip/r1");
        assert_eq!(k.verify(&m, 1_000, "POST", "/whip/r1"), Ok(()));
        assert_eq!(k.verify(&m, 1_000 + MAX_SKEW, "POST", "/whip/r1"), Ok(()));
        assert_eq!(
            k.verify(&m, 1_001 + MAX_SKEW, "POST", "/whip/r1"),
            Err(BadMark)
        );
        assert_eq!(k.verify(&m, 1_000, "POST", "/whip/r2"), Err(BadMark));
        assert_eq!(k.verify(&m, 1_000, "DELETE", "/whip/r1"), Err(BadMark));
        let other = MarkKey::from_api_secret("another-secret-0123456789");
        assert_eq!(other.verify(&m, 1_000, "POST", "/whip/r1"), Err(BadMark));
        for forged in ["1", "", "1000.", "1000.zz", "x.00", "1000.00"] {
            assert_eq!(
                k.verify(forged, 1_000, "POST", "/whip/r1"),
                Err(BadMark),
                "{forged}"
            );
        }
    }
}

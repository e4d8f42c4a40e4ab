//! A node's relay identity: a self-signed certificate made at start (nothing to
//! provision) and its SHA-256 fingerprint, which the node publishes in the registry so
//! that other nodes accept exactly it.

use std::fmt;

use aws_lc_rs::digest::{digest, SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// SHA-256 of a certificate (DER).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        let mut f = [0u8; 32];
        f.copy_from_slice(digest(&SHA256, cert_der).as_ref());
        Fingerprint(f)
    }

    /// From its hex form (as the registry holds it).
    pub fn parse(hex_text: &str) -> Option<Fingerprint> {
        let bytes = hex::decode(hex_text.trim()).ok()?;
        Some(Fingerprint(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A certificate and its key (the key never printed).
pub struct Identity {
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pub fingerprint: Fingerprint,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256) for node `node`.
    pub fn generate(node: &str) -> Result<Identity, rcgen::Error> {
        let name = format!("{node}.relay.switchboard");
        let ck = rcgen::generate_simple_self_signed(vec![name])?;
        let cert = ck.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        Ok(Identity {
            fingerprint: Fingerprint::of(&cert),
            cert,
            key,
        })
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_per_certificate_and_read_back_from_hex() {
        let (a, b) = (
            Identity::generate("a").unwrap(),
            Identity::generate("b").unwrap(),
        );
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(Fingerprint::of(&a.cert), a.fingerprint);
        assert_eq!(
            Fingerprint::parse(&a.fingerprint.to_string()),
            Some(a.fingerprint)
        );
        assert_eq!(Fingerprint::parse("abcd"), None);
        assert!(!format!("{a:?}").contains("key"), "the key is not printed");
    }
}

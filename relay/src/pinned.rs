//! TLS verifiers for the relay: a node accepts a peer's certificate only if its
//! fingerprint is one the node registry names ([`Peers`], kept current by the caller),
//! and a connecting node accepts only the fingerprint it expects of the node it dials.
//! No certificate authority is involved; the signatures of the handshake are still
//! checked against the certificate's key (rustls's, on aws-lc).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::identity::Fingerprint;

/// The nodes that may connect: fingerprint → node id (from the registry).
#[derive(Debug, Clone, Default)]
pub struct Peers(Arc<RwLock<HashMap<Fingerprint, String>>>);

impl Peers {
    /// Replace the set (the registry's live nodes).
    pub fn set(&self, peers: impl IntoIterator<Item = (Fingerprint, String)>) {
        *self.0.write().expect("peers lock") = peers.into_iter().collect();
    }

    pub fn insert(&self, f: Fingerprint, node: String) {
        self.0.write().expect("peers lock").insert(f, node);
    }

    /// The node a fingerprint belongs to.
    pub fn node(&self, f: &Fingerprint) -> Option<String> {
        self.0.read().expect("peers lock").get(f).cloned()
    }
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// The handshake's signatures, checked against the certificate's key the same way on
/// both sides (only which certificate is accepted differs).
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

fn unknown() -> Error {
    Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
}

/// The server side: a client certificate must be a known node's.
#[derive(Debug)]
pub(crate) struct KnownClients {
    pub peers: Peers,
}

impl ClientCertVerifier for KnownClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match self.peers.node(&Fingerprint::of(end_entity)) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(unknown()),
        }
    }

    handshake_signatures!();
}

/// The client side: the server's certificate must be the one expected of the node dialed.
#[derive(Debug)]
pub(crate) struct ExpectedServer {
    pub fingerprint: Fingerprint,
}

impl ServerCertVerifier for ExpectedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match Fingerprint::of(end_entity) == self.fingerprint {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(unknown()),
        }
    }

    handshake_signatures!();
}

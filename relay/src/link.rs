//! The relay endpoint of a node (one UDP socket: it listens and dials) and a [`Link`] to
//! another node: a QUIC connection whose TLS 1.3 handshake pinned both certificates (see
//! [`crate::pinned`]), then a hello each way on the control stream proving the cluster
//! secret, bound to this connection by a TLS exporter (a hello recorded from another
//! connection proves nothing here, and the roles are in the proof, so neither side's
//! hello can be reflected back as the other's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::CertificateDer;
use thiserror::Error;

use crate::control::{Control, ControlError, ControlReader};
use crate::flow::{self, FlowError};
use crate::identity::{Fingerprint, Identity};
use crate::pinned::{ExpectedServer, KnownClients, Peers};

/// The relay's ALPN protocol id.
pub const ALPN: &[u8] = b"switchboard-relay/1";
const EXPORTER_LABEL: &[u8] = b"EXPORTER-switchboard-relay-hello";
/// A link with nothing on it for this long is closed by QUIC (keep-alives keep a live one).
const IDLE: Duration = Duration::from_secs(30);
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The peer's hello must arrive within this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Datagrams a link queues on receipt before QUIC drops the excess (a flood's bound).
const DATAGRAM_BUFFER: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum RelayError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("endpoint: {0}")]
    Endpoint(String),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("the peer is no node of the registry")]
    UnknownPeer,
    #[error("the peer's hello: {0}")]
    Hello(&'static str),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("control stream: {0}")]
    Stream(String),
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error("datagram of {0} bytes over the path's {1}")]
    TooLarge(usize, usize),
    #[error("datagrams: {0}")]
    Datagram(String),
    #[error("timed out")]
    Timeout,
}

fn tls(e: impl std::fmt::Display) -> RelayError {
    RelayError::Tls(e.to_string())
}

fn stream(e: impl std::fmt::Display) -> RelayError {
    RelayError::Stream(e.to_string())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(IDLE.try_into().expect("a valid idle timeout")))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER));
    Arc::new(t)
}

/// A node's relay endpoint.
pub struct RelayEndpoint {
    endpoint: quinn::Endpoint,
    node: String,
    identity: Identity,
    peers: Peers,
    secret: hmac::Key,
}

impl RelayEndpoint {
    /// Listen on `addr` as node `node`; `peers` are the nodes that may connect (kept
    /// current by the caller), `secret` the cluster's.
    pub fn bind(
        addr: SocketAddr,
        node: &str,
        identity: Identity,
        peers: Peers,
        secret: &[u8],
    ) -> Result<RelayEndpoint, RelayError> {
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_client_cert_verifier(Arc::new(KnownClients {
                peers: peers.clone(),
            }))
            .with_single_cert(vec![identity.cert.clone()], identity.key())
            .map_err(tls)?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = QuicServerConfig::try_from(server).map_err(tls)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport());
        let endpoint = quinn::Endpoint::server(config, addr)
            .map_err(|e| RelayError::Endpoint(e.to_string()))?;
        Ok(RelayEndpoint {
            endpoint,
            node: node.to_string(),
            identity,
            peers,
            secret: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, RelayError> {
        self.endpoint
            .local_addr()
            .map_err(|e| RelayError::Endpoint(e.to_string()))
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint
    }

    /// A link to the node at `addr` whose certificate is `expect` (from the registry).
    pub async fn connect(&self, addr: SocketAddr, expect: Fingerprint) -> Result<Link, RelayError> {
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ExpectedServer {
                fingerprint: expect,
            }))
            .with_client_auth_cert(vec![self.identity.cert.clone()], self.identity.key())
            .map_err(tls)?;
        client.alpn_protocols = vec![ALPN.to_vec()];
        let mut config =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client).map_err(tls)?));
        config.transport_config(transport());
        let conn = self
            .endpoint
            .connect_with(config, addr, "relay.switchboard")
            .map_err(|e| RelayError::Endpoint(e.to_string()))?
            .await?;
        let (send, recv) = conn.open_bi().await?;
        self.greet(conn, send, recv, Role::Dialer).await
    }

    /// The next node that connected (None once the endpoint is closed); an error is one
    /// connection that failed (counted by the caller), not the endpoint's end.
    pub async fn accept(&self) -> Option<Result<Link, RelayError>> {
        let incoming = self.endpoint.accept().await?;
        Some(
            async {
                let conn = incoming.await?;
                let (send, recv) = tokio::time::timeout(HELLO_TIMEOUT, conn.accept_bi())
                    .await
                    .map_err(|_| RelayError::Timeout)??;
                self.greet(conn, send, recv, Role::Listener).await
            }
            .await,
        )
    }

    /// Hellos both ways; the link, or the connection closed with the reason.
    async fn greet(
        &self,
        conn: quinn::Connection,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        role: Role,
    ) -> Result<Link, RelayError> {
        let result = async {
            let (peer, fingerprint) = peer_node(&conn, &self.peers)?;
            let mut exported = [0u8; 32];
            conn.export_keying_material(&mut exported, EXPORTER_LABEL, b"")
                .map_err(|_| tls("no keying material to export"))?;
            let hello = Control::Hello {
                node: self.node.clone(),
                proof: hex::encode(self.proof(&exported, role)),
            };
            send.write_all(&hello.encode()).await.map_err(stream)?;
            let mut reader = ControlReader::default();
            let answer = tokio::time::timeout(HELLO_TIMEOUT, read_control(&mut recv, &mut reader))
                .await
                .map_err(|_| RelayError::Timeout)??;
            let Some(Control::Hello { node, proof }) = answer else {
                return Err(RelayError::Hello("not a hello"));
            };
            if node != peer {
                return Err(RelayError::Hello("names another node than its certificate"));
            }
            let proof = hex::decode(proof).map_err(|_| RelayError::Hello("bad proof"))?;
            verify_slices_are_equal(&self.proof(&exported, role.other()), &proof)
                .map_err(|_| RelayError::Hello("wrong proof of the cluster secret"))?;
            Ok((peer, fingerprint, reader))
        }
        .await;
        match result {
            Ok((peer, fingerprint, reader)) => Ok(Link {
                conn,
                send,
                recv,
                reader,
                peer,
                fingerprint,
            }),
            Err(e) => {
                conn.close(1u32.into(), b"relay hello refused");
                Err(e)
            }
        }
    }

    fn proof(&self, exported: &[u8; 32], role: Role) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.secret);
        ctx.update(exported);
        ctx.update(&[role as u8]);
        ctx.sign().as_ref().to_vec()
    }

    /// Close every link and stop listening.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"node stopping");
    }
}

/// Which side of the connection a hello comes from.
#[derive(Debug, Clone, Copy)]
enum Role {
    Dialer = 1,
    Listener = 2,
}

impl Role {
    fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Listener,
            Role::Listener => Role::Dialer,
        }
    }
}

/// The registry's name for the certificate the peer showed.
/// The node at the other end and its certificate's fingerprint.
fn peer_node(conn: &quinn::Connection, peers: &Peers) -> Result<(String, Fingerprint), RelayError> {
    let certs = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(RelayError::UnknownPeer)?;
    let cert = certs.first().ok_or(RelayError::UnknownPeer)?;
    let fingerprint = Fingerprint::of(cert);
    let node = peers.node(&fingerprint).ok_or(RelayError::UnknownPeer)?;
    Ok((node, fingerprint))
}

/// The next control message of a stream (None: the peer finished it).
async fn read_control(
    recv: &mut quinn::RecvStream,
    reader: &mut ControlReader,
) -> Result<Option<Control>, RelayError> {
    let mut buf = [0u8; 4_096];
    loop {
        if let Some(m) = reader.next_message()? {
            return Ok(Some(m));
        }
        match recv.read(&mut buf).await.map_err(stream)? {
            Some(n) => reader.push(&buf[..n]),
            None => return Ok(None),
        }
    }
}

/// An authenticated link to another node.
pub struct Link {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    reader: ControlReader,
    peer: String,
    fingerprint: Fingerprint,
}

impl Link {
    /// The node at the other end.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Its certificate's fingerprint (a node restarted under the same id has a new one).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The link's media side, for a task of its own.
    pub fn media(&self) -> Media {
        Media {
            conn: self.conn.clone(),
        }
    }

    pub async fn send_control(&mut self, m: &Control) -> Result<(), RelayError> {
        self.send.write_all(&m.encode()).await.map_err(stream)
    }

    /// The next control message; None when the peer closed the stream. An error leaves
    /// the stream's framing lost: the caller closes the link.
    pub async fn recv_control(&mut self) -> Result<Option<Control>, RelayError> {
        read_control(&mut self.recv, &mut self.reader).await
    }

    pub fn close(&self, reason: &str) {
        self.conn.close(0u32.into(), reason.as_bytes());
    }

    /// Why the connection ended, once it has.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.conn.closed().await
    }
}

/// A link's datagrams: one RTP packet of one flow each.
#[derive(Clone)]
pub struct Media {
    conn: quinn::Connection,
}

impl Media {
    /// Send `rtp` of `flow`; a packet too large for the path is not sent (an error the
    /// caller counts).
    pub fn send(&self, flow: u32, rtp: &[u8]) -> Result<(), RelayError> {
        let max = self
            .conn
            .max_datagram_size()
            .ok_or_else(|| RelayError::Datagram("the peer takes no datagrams".into()))?;
        let mut d = Vec::with_capacity(flow::HEADER + rtp.len());
        flow::encode(flow, rtp, &mut d);
        if d.len() > max {
            dropped("too_large");
            return Err(RelayError::TooLarge(d.len(), max));
        }
        self.conn
            .send_datagram(Bytes::from(d))
            .map_err(|e| RelayError::Datagram(e.to_string()))
    }

    /// The next readable datagram: its flow and RTP packet. What cannot be read is
    /// dropped and counted; the error is the connection's end.
    pub async fn recv(&self) -> Result<(u32, Bytes), RelayError> {
        loop {
            let d = self.conn.read_datagram().await?;
            match flow::decode(&d) {
                Ok((flow, _)) => return Ok((flow, d.slice(flow::HEADER..))),
                Err(FlowError::TooShort(_)) => dropped("short"),
                Err(FlowError::Version(_)) => dropped("version"),
                Err(FlowError::NotRtp) => dropped("not_rtp"),
            }
        }
    }

    /// A raw datagram, as a misbehaving peer could send it (tests, fuzzing by hand).
    pub fn send_raw(&self, datagram: &[u8]) -> Result<(), RelayError> {
        self.conn
            .send_datagram(Bytes::copy_from_slice(datagram))
            .map_err(|e| RelayError::Datagram(e.to_string()))
    }
}

fn dropped(reason: &'static str) {
    metrics::counter!("switchboard_relay_datagrams_dropped_total", "reason" => reason).increment(1);
}

//! The node's ICE-TCP port (RFC 6544 passive candidates): one listener for every worker,
//! so that a single port (443 behind a port map) serves the whole node.
//!
//! A new connection must bring, within [`FIRST_FRAME`], an RFC 4571 frame holding a STUN
//! binding request whose USERNAME starts with one of our ufrags; the
//! [`UfragDirectory`] names the worker that owns it, and the socket is handed to that
//! worker with the bytes read so far. Anything else is closed and counted: a stalled or
//! silent connection, a length over the frame limit, a first frame that is not STUN, a
//! ufrag nobody owns. Connections waiting for their first frame are bounded in all and
//! per source IP, so thousands of idle connections cost a bounded amount.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sfu_core::demux::{classify, stun_local_ufrag, DatagramKind};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::conn_slots::ConnSlots;
use crate::framing::MAX_FRAME;
use crate::tcp_links::Handoff;
use crate::ufrags::UfragDirectory;
use crate::worker::HandoffSender;

/// How long a new connection may take to send its first frame.
pub const FIRST_FRAME: Duration = Duration::from_secs(5);
/// Connections waiting for their first frame, in all and from one IP.
pub const MAX_PENDING: usize = 1024;
pub const MAX_PENDING_PER_IP: usize = 32;

/// Why a connection was closed before any worker saw it (the metric's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over [`MAX_PENDING`] or [`MAX_PENDING_PER_IP`].
    Limit,
    /// No complete first frame within [`FIRST_FRAME`], or closed before it.
    Timeout,
    TooLong,
    NotStun,
    UnknownUfrag,
    /// The worker's hand-over queue was full, or it stopped.
    Busy,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::Timeout => "timeout",
            Refusal::TooLong => "too_long",
            Refusal::NotStun => "not_stun",
            Refusal::UnknownUfrag => "unknown_ufrag",
            Refusal::Busy => "busy",
        }
    }
}

/// Accept connections until the listener fails.
pub async fn run(
    listener: TcpListener,
    directory: Arc<UfragDirectory>,
    workers: Vec<HandoffSender>,
) {
    let pending = ConnSlots::new(MAX_PENDING, MAX_PENDING_PER_IP);
    let workers = Arc::new(workers);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait instead of spinning.
                tracing::warn!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = pending.take(peer.ip()) else {
            refused(Refusal::Limit);
            continue;
        };
        let (directory, workers) = (directory.clone(), workers.clone());
        tokio::spawn(async move {
            let outcome = route(stream, peer, &directory, &workers).await;
            drop(slot);
            match outcome {
                Ok(()) => metrics::counter!("switchboard_ice_tcp_accepted_total").increment(1),
                Err(r) => refused(r),
            }
        });
    }
}

fn refused(r: Refusal) {
    metrics::counter!("switchboard_ice_tcp_refused_total", "reason" => r.label()).increment(1);
}

async fn route(
    mut stream: TcpStream,
    peer: SocketAddr,
    directory: &UfragDirectory,
    workers: &[HandoffSender],
) -> Result<(), Refusal> {
    let read = tokio::time::timeout(FIRST_FRAME, first_frame(&mut stream))
        .await
        .map_err(|_| Refusal::Timeout)??;
    let worker = owner(&read, directory)?;
    let stream = stream.into_std().map_err(|_| Refusal::Timeout)?;
    let _ = stream.set_nodelay(true);
    let sender = workers.get(worker).ok_or(Refusal::UnknownUfrag)?;
    sender
        .hand_over(Handoff { stream, peer, read })
        .map_err(|_| Refusal::Busy)
}

/// The worker owning the ufrag that the first frame in `read` names.
pub fn owner(read: &[u8], directory: &UfragDirectory) -> Result<usize, Refusal> {
    let len = u16::from_be_bytes([read[0], read[1]]) as usize;
    let frame = &read[2..2 + len];
    if classify(frame) != DatagramKind::Stun {
        return Err(Refusal::NotStun);
    }
    let ufrag = stun_local_ufrag(frame).ok_or(Refusal::NotStun)?;
    directory.owner(ufrag).ok_or(Refusal::UnknownUfrag)
}

/// Read until the first frame is complete; everything read is returned (the first
/// frame, maybe the start of the next).
async fn first_frame(stream: &mut TcpStream) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    loop {
        if buf.len() >= 2 {
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if len > MAX_FRAME || len == 0 {
                return Err(Refusal::TooLong);
            }
            if buf.len() >= 2 + len {
                return Ok(buf);
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Refusal::Timeout),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_routes_by_our_ufrag() {
        let dir = Arc::new(UfragDirectory::default());
        let mut rec = crate::ufrags::UfragRecorder::new(3, dir.clone());
        let stun = sfu_core::testkit::stun_binding_request("abcd:peer", 1);
        let mut framed = (stun.len() as u16).to_be_bytes().to_vec();
        framed.extend(&stun);
        assert_eq!(owner(&framed, &dir), Err(Refusal::UnknownUfrag));
        rec.observe(&sfu_core::Event::PublishAnswer {
            participant: sfu_core::ParticipantId(1),
            sdp: "a=ice-ufrag:abcd\r\n".into(),
        });
        assert_eq!(owner(&framed, &dir), Ok(3));
        let mut rtp = vec![0, 12, 0x80];
        rtp.extend([0u8; 11]);
        assert_eq!(owner(&rtp, &dir), Err(Refusal::NotStun));
    }
}

//! SIP over TCP, accepted here rather than by rsipstack, so that connections are bounded:
//! at most [`MAX_CONNECTIONS`] at once and [`MAX_PER_IP`] from one address (more are
//! closed as they come, counted), and a connection on which no request has been admitted
//! (a trunk's, an authenticated user's) is closed after [`UNVOUCHED_IDLE`]. Without this an
//! unauthenticated peer could hold a socket and a read buffer for rsipstack's five-minute
//! idle limit, as many times as it likes.
//!
//! A connection is handed to rsipstack's transport layer as rsipstack's own listener would
//! (`TcpConnection::from_stream`); a duplicate of its socket is kept to shut it down
//! (rsipstack cannot be told to drop a connection whose peer stays silent).

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rsipstack::transaction::endpoint::{EndpointInnerRef, TransportEventInspector};
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// SIP TCP connections at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// SIP TCP connections from one address at once.
pub const MAX_PER_IP: usize = 32;
/// How long a connection may go without an admitted request.
pub const UNVOUCHED_IDLE: Duration = Duration::from_secs(10);

struct Open {
    vouched: bool,
    /// The same socket, to shut it down.
    handle: std::net::TcpStream,
}

#[derive(Default)]
struct State {
    per_ip: HashMap<IpAddr, usize>,
    open: HashMap<SocketAddr, Open>,
}

/// The SIP TCP connections and their limits.
#[derive(Default)]
pub struct TcpGuard {
    state: Mutex<State>,
}

fn refused(reason: &'static str) {
    metrics::counter!("switchboard_sip_tcp_refused_total", "reason" => reason).increment(1);
}

impl TcpGuard {
    /// Count a new connection from `remote`, or say which limit it is over.
    fn admit(&self, remote: SocketAddr, handle: std::net::TcpStream) -> Result<(), &'static str> {
        let mut s = self.state.lock();
        if s.open.len() >= MAX_CONNECTIONS {
            return Err("total");
        }
        let n = s.per_ip.entry(remote.ip()).or_default();
        if *n >= MAX_PER_IP {
            return Err("per_ip");
        }
        *n += 1;
        s.open.insert(
            remote,
            Open {
                vouched: false,
                handle,
            },
        );
        metrics::gauge!("switchboard_sip_tcp_connections").set(s.open.len() as f64);
        Ok(())
    }

    /// A request from `remote` was admitted: its connection (if it is one) stays.
    pub fn vouch(&self, remote: SocketAddr) {
        if let Some(o) = self.state.lock().open.get_mut(&remote) {
            o.vouched = true;
        }
    }

    /// Close `remote`'s connection unless a request on it has been admitted.
    fn expire(&self, remote: SocketAddr) {
        let s = self.state.lock();
        if let Some(o) = s.open.get(&remote).filter(|o| !o.vouched) {
            refused("idle");
            let _ = o.handle.shutdown(Shutdown::Both);
        }
    }

    /// The connection from `remote` is gone.
    fn closed(&self, remote: SocketAddr) {
        let mut s = self.state.lock();
        if s.open.remove(&remote).is_some() {
            if let Some(n) = s.per_ip.get_mut(&remote.ip()) {
                *n -= 1;
                if *n == 0 {
                    s.per_ip.remove(&remote.ip());
                }
            }
        }
        metrics::gauge!("switchboard_sip_tcp_connections").set(s.open.len() as f64);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().open.len()
    }

    /// Accept SIP TCP connections on `listener` until `cancel`, within the limits.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        endpoint: EndpointInnerRef,
        cancel: CancellationToken,
    ) {
        let Ok(local) = listener.local_addr() else {
            return;
        };
        let local = SipAddr {
            r#type: Some(rsipstack::sip::transport::Transport::Tcp),
            addr: local.into(),
        };
        loop {
            let (stream, remote) = tokio::select! {
                () = cancel.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of descriptors, say: wait rather than spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Some(handle) = stream
                .into_std()
                .and_then(|s| s.try_clone().map(|dup| (s, dup)))
                .ok()
                .and_then(|(s, dup)| tokio::net::TcpStream::from_std(s).ok().map(|s| (s, dup)))
            else {
                continue;
            };
            let (stream, dup) = handle;
            if let Err(reason) = self.admit(remote, dup) {
                refused(reason);
                continue; // dropped: closed
            }
            match TcpConnection::from_stream(stream, local.clone(), Some(cancel.child_token())) {
                Ok(c) => endpoint
                    .transport_layer
                    .add_connection(SipConnection::Tcp(c)),
                Err(_) => {
                    self.closed(remote);
                    continue;
                }
            }
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(UNVOUCHED_IDLE).await;
                me.expire(remote);
            });
        }
    }
}

/// rsipstack's transport events, watched for closed connections.
pub struct ClosedConnections(pub Arc<TcpGuard>);

#[async_trait::async_trait]
impl TransportEventInspector for ClosedConnections {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Closed(c) = &event {
            if let Some(remote) = c
                .get_remote_addr()
                .and_then(|a| SocketAddr::try_from(a.addr.clone()).ok())
            {
                self.0.closed(remote);
            }
        }
        Some(event)
    }
}

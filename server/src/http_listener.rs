//! The HTTP port's listener, bounded: at most `http_max_per_ip` connections from one
//! address (configurable: behind a reverse proxy every client has the proxy's address)
//! and [`MAX_TOTAL`] in all (more are closed as they come, counted), and a connection must
//! have sent its first request head (through the blank line) within [`HEAD_DEADLINE`] or
//! it is closed. axum serves through hyper without a header timeout, so without this a
//! client that sends its headers a byte at a time (slowloris) holds a connection — and a
//! descriptor — for as long as it likes, as many times as it likes. A WebSocket is free
//! once its upgrade request is in; a proxy in front (nginx) bounds the rest.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

use crate::conn_slots::{ConnSlots, Exempt, Slot};

/// Connections at once.
pub const MAX_TOTAL: usize = 8_192;
/// Time from accept to the end of the first request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// The listener axum serves from.
pub struct BoundedListener {
    inner: TcpListener,
    slots: ConnSlots,
}

impl BoundedListener {
    /// `max_per_ip`: connections from one address at once (0: no limit), except from the
    /// `exempt` addresses (a cluster's nodes, whose relays carry many clients).
    pub fn new(inner: TcpListener, max_per_ip: usize, exempt: Exempt) -> Self {
        BoundedListener {
            inner,
            slots: ConnSlots::new(MAX_TOTAL, max_per_ip).with_exempt(exempt),
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(a) => a,
                Err(_) => {
                    // Out of descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match self.slots.take(addr.ip()) {
                Ok(slot) => return (BoundedIo::new(stream, slot), addr),
                Err(over) => {
                    metrics::counter!("switchboard_http_refused_total", "reason" => over.label())
                        .increment(1);
                    // Dropped: closed.
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that must bring its first request head in time.
pub struct BoundedIo {
    io: TcpStream,
    _slot: Slot,
    /// Until the first head is in: its deadline, and the last bytes read (to find the
    /// blank line across reads).
    head: Option<(Pin<Box<Sleep>>, [u8; 3])>,
}

impl BoundedIo {
    fn new(io: TcpStream, slot: Slot) -> Self {
        BoundedIo {
            io,
            _slot: slot,
            head: Some((Box::pin(tokio::time::sleep(HEAD_DEADLINE)), [0; 3])),
        }
    }
}

/// Whether `tail` (the last three bytes before) followed by `new` contains `\r\n\r\n`;
/// updates `tail`.
fn ends_head(tail: &mut [u8; 3], new: &[u8]) -> bool {
    let mut window: Vec<u8> = tail.to_vec();
    window.extend_from_slice(new);
    let found = window.windows(4).any(|w| w == b"\r\n\r\n");
    let n = window.len();
    tail.copy_from_slice(&window[n - 3..]);
    found
}

impl AsyncRead for BoundedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some((deadline, _)) = this.head.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                metrics::counter!("switchboard_http_refused_total", "reason" => "slow_head")
                    .increment(1);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request head in time",
                )));
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some((_, tail))) = (&r, this.head.as_mut()) {
            if ends_head(tail, &buf.filled()[before..]) {
                this.head = None;
            }
        }
        r
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blank_line_is_found_across_reads() {
        let mut tail = [0; 3];
        assert!(!ends_head(&mut tail, b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(ends_head(&mut tail, b"\n\r\n"));
        let mut tail = [0; 3];
        for b in b"GET / HTTP/1.1\r\n\r" {
            assert!(!ends_head(&mut tail, &[*b]));
        }
        assert!(ends_head(&mut tail, b"\n"));
    }
}

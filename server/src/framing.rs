//! RFC 4571 framing for ICE-TCP: each STUN, DTLS or RTP packet travels on the TCP
//! stream behind a 2-byte big-endian length. A reader that never holds more than one
//! maximal frame, and a writer whose backlog is bounded (a peer that stops reading loses
//! packets, as a full UDP socket would, instead of growing the server's memory).

use std::io::{self, Read, Write};

/// Largest frame taken from a peer: more than any packet a WebRTC stack sends over TCP
/// (they keep to their UDP MTU, about 1,200 bytes). A longer length prefix is abuse and
/// ends the connection.
pub const MAX_FRAME: usize = 4096;
/// Bytes a connection may have waiting to be written before new frames are dropped.
pub const MAX_BACKLOG: usize = 1 << 20;

/// Why a connection's input cannot be framed: it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A length prefix over [`MAX_FRAME`].
    TooLong(usize),
}

/// Reassembles frames from what the socket returns, in whatever pieces it comes.
pub struct FrameReader {
    buf: Box<[u8]>,
    /// Bytes in `buf[start..end]` not yet framed.
    start: usize,
    end: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self {
            buf: vec![0u8; 2 * (MAX_FRAME + 2)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

/// What one [`FrameReader::read_at_most`] call saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Nothing more to read now (the socket would block).
    Drained,
    /// The read budget is spent and the socket may hold more: read it again on the
    /// next round (edge-triggered readiness brings no new event for what is queued).
    More,
    /// The peer closed its side, or the socket failed.
    Closed,
    /// The stream broke the framing.
    Bad(FrameError),
}

impl FrameReader {
    /// Append bytes received elsewhere (the acceptor's first read), handing every
    /// complete frame to `f`.
    pub fn push(&mut self, mut data: &[u8], f: &mut impl FnMut(&[u8])) -> Result<(), FrameError> {
        while !data.is_empty() {
            let room = self.make_room();
            let n = room.min(data.len());
            self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
            self.end += n;
            data = &data[n..];
            self.frames(f)?;
        }
        Ok(())
    }

    /// Read until the socket would block, handing every complete frame to `f`; stop after
    /// about `budget` bytes ([`ReadOutcome::More`]): one fast connection cannot
    /// hold its worker's loop while UDP and the other connections wait.
    pub fn read_at_most(
        &mut self,
        src: &mut impl Read,
        budget: usize,
        f: &mut impl FnMut(&[u8]),
    ) -> ReadOutcome {
        let mut read = 0usize;
        loop {
            if read >= budget {
                return ReadOutcome::More;
            }
            self.make_room();
            match src.read(&mut self.buf[self.end..]) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    read += n;
                    self.end += n;
                    if let Err(e) = self.frames(f) {
                        return ReadOutcome::Bad(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Move the unframed tail to the front when that makes room; the free space after.
    fn make_room(&mut self) -> usize {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.len() - self.end
    }

    fn frames(&mut self, f: &mut impl FnMut(&[u8])) -> Result<(), FrameError> {
        loop {
            let pending = &self.buf[self.start..self.end];
            let Some(len) = pending
                .get(..2)
                .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
            else {
                return Ok(());
            };
            if len > MAX_FRAME {
                return Err(FrameError::TooLong(len));
            }
            let Some(frame) = pending.get(2..2 + len) else {
                return Ok(());
            };
            // An empty frame carries nothing; it is skipped.
            if len > 0 {
                f(frame);
            }
            self.start += 2 + len;
        }
    }
}

/// Frames waiting for the socket to take them.
#[derive(Default)]
pub struct FrameWriter {
    backlog: Vec<u8>,
    /// Frames refused because the backlog was full.
    pub dropped: u64,
}

impl FrameWriter {
    /// Queue one packet; false (and counted) when it was dropped.
    pub fn queue(&mut self, packet: &[u8]) -> bool {
        if packet.len() > u16::MAX as usize || self.backlog.len() + 2 + packet.len() > MAX_BACKLOG {
            self.dropped += 1;
            return false;
        }
        self.backlog
            .extend_from_slice(&(packet.len() as u16).to_be_bytes());
        self.backlog.extend_from_slice(packet);
        true
    }

    pub fn is_empty(&self) -> bool {
        self.backlog.is_empty()
    }

    /// Write what the socket takes. Err: the connection is broken.
    pub fn flush(&mut self, dst: &mut impl Write) -> io::Result<()> {
        let mut written = 0;
        let result = loop {
            if written == self.backlog.len() {
                break Ok(());
            }
            match dst.write(&self.backlog[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.backlog.drain(..written);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize, byte: u8) -> Vec<u8> {
        let mut v = (n as u16).to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(byte, n));
        v
    }

    fn collect(r: &mut FrameReader, data: &[u8]) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
        let mut got = Vec::new();
        let res = r.push(data, &mut |f: &[u8]| got.push(f.to_vec()));
        (got, res)
    }

    #[test]
    fn frames_come_out_whatever_the_pieces() {
        let mut stream = Vec::new();
        for (i, n) in [100usize, 1, 1200, 0, MAX_FRAME, 7].iter().enumerate() {
            stream.extend(frame(*n, i as u8));
        }
        for piece in [1usize, 2, 3, 7, 1000, stream.len()] {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                let (g, res) = collect(&mut r, chunk);
                assert_eq!(res, Ok(()));
                got.extend(g);
            }
            let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
            assert_eq!(lens, vec![100, 1, 1200, MAX_FRAME, 7], "pieces of {piece}");
            assert!(got[2].iter().all(|&b| b == 2));
        }
    }

    #[test]
    fn an_oversized_length_is_refused() {
        let mut r = FrameReader::default();
        let (got, res) = collect(&mut r, &[0xff, 0xff, 1, 2, 3]);
        assert!(got.is_empty());
        assert_eq!(res, Err(FrameError::TooLong(65_535)));
        // Frames before the bad one were delivered.
        let mut r = FrameReader::default();
        let mut data = frame(10, 1);
        data.extend((MAX_FRAME as u16 + 1).to_be_bytes());
        let (got, res) = collect(&mut r, &data);
        assert_eq!(got.len(), 1);
        assert_eq!(res, Err(FrameError::TooLong(MAX_FRAME + 1)));
    }

    #[test]
    fn reads_until_the_socket_would_block_or_closes() {
        struct Src(Vec<io::Result<Vec<u8>>>);
        impl Read for Src {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.pop() {
                    None => Err(io::ErrorKind::WouldBlock.into()),
                    Some(Ok(d)) => {
                        buf[..d.len()].copy_from_slice(&d);
                        Ok(d.len())
                    }
                    Some(Err(e)) => Err(e),
                }
            }
        }
        let mut r = FrameReader::default();
        let mut n = 0;
        let f = frame(50, 9);
        let mut src = Src(vec![Ok(f[10..].to_vec()), Ok(f[..10].to_vec())]);
        assert_eq!(
            r.read_at_most(&mut src, usize::MAX, &mut |_| n += 1),
            ReadOutcome::Drained
        );
        assert_eq!(n, 1);
        let mut src = Src(vec![Ok(Vec::new())]);
        assert_eq!(
            r.read_at_most(&mut src, usize::MAX, &mut |_| n += 1),
            ReadOutcome::Closed
        );
        let mut src = Src(vec![Ok(vec![0x20, 0])]);
        assert_eq!(
            r.read_at_most(&mut src, usize::MAX, &mut |_| n += 1),
            ReadOutcome::Bad(FrameError::TooLong(0x2000))
        );
    }

    #[test]
    fn a_read_budget_stops_a_fast_stream_and_the_next_round_goes_on() {
        // 100 frames of 1,000 bytes waiting, read 4 KiB at a time by the socket.
        let all: Vec<u8> = (0..100).flat_map(|i| frame(1_000, i as u8)).collect();
        let mut src = io::Cursor::new(all);
        struct Chunks<'a>(&'a mut io::Cursor<Vec<u8>>);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(4_096);
                match self.0.read(&mut buf[..n])? {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    n => Ok(n),
                }
            }
        }
        let mut r = FrameReader::default();
        let mut n = 0;
        let mut rounds = 0;
        loop {
            rounds += 1;
            match r.read_at_most(&mut Chunks(&mut src), 16 * 1024, &mut |_| n += 1) {
                ReadOutcome::More => continue,
                ReadOutcome::Drained => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(n, 100, "every frame in the end");
        assert!(rounds >= 6, "100 KB in rounds of 16 KiB: {rounds}");
    }

    #[test]
    fn the_backlog_is_bounded_and_flushes_in_pieces() {
        struct Slow(Vec<u8>, usize);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.1 == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                self.1 -= 1;
                let n = b.len().min(1000);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = FrameWriter::default();
        let packet = vec![5u8; 1200];
        let fits = MAX_BACKLOG / 1202;
        for _ in 0..fits + 10 {
            w.queue(&packet);
        }
        assert_eq!(w.dropped, 10, "a full backlog drops, it does not grow");
        let mut dst = Slow(Vec::new(), 3);
        w.flush(&mut dst).unwrap();
        assert_eq!(dst.0.len(), 3000);
        assert!(!w.is_empty());
        let mut dst2 = Slow(Vec::new(), usize::MAX);
        w.flush(&mut dst2).unwrap();
        assert!(w.is_empty());
        let mut all = dst.0;
        all.extend(dst2.0);
        let mut r = FrameReader::default();
        let (got, res) = collect(&mut r, &all);
        assert_eq!(res, Ok(()));
        assert_eq!(got.len(), fits);
        assert!(got.iter().all(|f| f == &packet));
    }
}

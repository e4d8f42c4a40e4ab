//! A relay datagram: one RTP packet of one flow (a layer of a track, numbered by the
//! origin when it announces the track), behind a five-byte header — a version byte and
//! the flow id. Nothing else travels as a datagram; what cannot be read is dropped and
//! counted by the caller.

use thiserror::Error;

/// The header's version byte.
pub const VERSION: u8 = 1;
pub const HEADER: usize = 5;
/// The smallest RTP packet (a fixed header).
const MIN_RTP: usize = 12;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("datagram of {0} bytes is too short")]
    TooShort(usize),
    #[error("unknown datagram version {0}")]
    Version(u8),
    #[error("not RTP")]
    NotRtp,
}

/// Write `rtp` of `flow` as a datagram into `out` (cleared first).
pub fn encode(flow: u32, rtp: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    out.extend_from_slice(&flow.to_be_bytes());
    out.extend_from_slice(rtp);
}

/// The flow and RTP packet of a datagram.
pub fn decode(datagram: &[u8]) -> Result<(u32, &[u8]), FlowError> {
    if datagram.len() < HEADER + MIN_RTP {
        return Err(FlowError::TooShort(datagram.len()));
    }
    if datagram[0] != VERSION {
        return Err(FlowError::Version(datagram[0]));
    }
    let flow = u32::from_be_bytes([datagram[1], datagram[2], datagram[3], datagram[4]]);
    let rtp = &datagram[HEADER..];
    if rtp[0] >> 6 != 2 {
        return Err(FlowError::NotRtp);
    }
    Ok((flow, rtp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reads_back_and_junk_is_an_error() {
        let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xaa];
        let mut d = Vec::new();
        encode(0x0102_0304, &rtp, &mut d);
        assert_eq!(d.len(), HEADER + rtp.len());
        assert_eq!(decode(&d), Ok((0x0102_0304, &rtp[..])));
        assert_eq!(decode(&d[..10]), Err(FlowError::TooShort(10)));
        let mut v = d.clone();
        v[0] = 9;
        assert_eq!(decode(&v), Err(FlowError::Version(9)));
        let mut r = d.clone();
        r[HEADER] = 0x40;
        assert_eq!(decode(&r), Err(FlowError::NotRtp));
    }
}

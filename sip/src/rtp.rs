//! Plain RTP (RFC 3550 §5.1) on the phone leg: parsing what a phone sends (header
//! extensions and padding skipped, CSRCs allowed) and writing the gateway's packets.
//! Anything that is not a well-formed RTP version 2 packet is an error, counted and
//! dropped by the caller.

use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("shorter than an RTP header")]
    Short,
    #[error("RTP version {0}, not 2")]
    Version(u8),
    #[error("RTCP, not RTP")]
    Rtcp,
    #[error("header, extension or padding longer than the packet")]
    Truncated,
}

/// RTCP rather than RTP on a shared port (RFC 5761 §4: RTCP's packet types 192–223 where
/// RTP has its marker and payload type).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 2 && (192..=223).contains(&packet[1])
}

/// The header and payload of one packet.
pub fn parse(packet: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
    if packet.len() < 12 {
        return Err(RtpError::Short);
    }
    let version = packet[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    // RTCP packet types 200–204 (SR, RR, SDES, BYE, APP) land at 72–76 in the PT field.
    if (72..=76).contains(&(packet[1] & 0x7f)) {
        return Err(RtpError::Rtcp);
    }
    let csrcs = usize::from(packet[0] & 0x0f);
    let mut start = 12 + 4 * csrcs;
    if packet[0] & 0x10 != 0 {
        let ext = packet
            .get(start + 2..start + 4)
            .ok_or(RtpError::Truncated)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        let pad = usize::from(packet[end - 1]);
        end = end.checked_sub(pad).ok_or(RtpError::Truncated)?;
    }
    if start > end {
        return Err(RtpError::Truncated);
    }
    let header = RtpHeader {
        marker: packet[1] & 0x80 != 0,
        payload_type: packet[1] & 0x7f,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    };
    Ok((header, &packet[start..end]))
}

/// Append one packet (no CSRC, extension or padding) to `out`.
pub fn write(h: &RtpHeader, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80);
    out.push(if h.marker { 0x80 } else { 0 } | (h.payload_type & 0x7f));
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&h.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_packets_parse_back() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            seq: 65_535,
            timestamp: 160,
            ssrc: 7,
        };
        let mut p = Vec::new();
        write(&h, &[1, 2, 3], &mut p);
        assert_eq!(p.len(), 15);
        assert_eq!(parse(&p), Ok((h, &[1u8, 2, 3][..])));
    }

    #[test]
    fn csrcs_extensions_and_padding_are_skipped() {
        let mut p = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]); // one-word extension
        p.extend_from_slice(&[0xaa, 0xbb]); // payload
        p.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let (h, payload) = parse(&p).unwrap();
        assert_eq!((h.seq, h.timestamp, h.ssrc), (1, 2, 3));
        assert_eq!(payload, [0xaa, 0xbb]);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::Short));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut rtcp = vec![0x80, 200, 0, 6];
        rtcp.extend_from_slice(&[0; 24]);
        assert_eq!(parse(&rtcp), Err(RtpError::Rtcp));
        // An extension claiming more words than the packet has.
        let mut p = vec![0x90, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 50];
        assert_eq!(parse(&p), Err(RtpError::Truncated));
        // Padding longer than the packet.
        p = vec![0xa0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 200];
        assert_eq!(parse(&p), Err(RtpError::Truncated));
    }
}

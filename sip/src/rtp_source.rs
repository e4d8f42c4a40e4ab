//! Which address a phone's RTP comes from, and so where the phone hears the room.
//!
//! Symmetric RTP with strict latching (the defence against RTP bleed and injection):
//! - the first packet from the exact address the phone's SDP names latches at once;
//! - a phone behind NAT sends from elsewhere (its SDP names a private address): a new
//!   source latches only after [`PROBATION`] packets from it with consecutive sequence
//!   numbers, none of them accepted before (an injector spraying a predictable port
//!   rarely gets there first, and never once the phone has been heard). Sources are on
//!   probation each on its own (up to [`CANDIDATES`]), so a sprayer's packets between
//!   the phone's do not hold the phone back;
//! - once latched, packets from any other address or port are not the phone's, even from
//!   the phone's own IP (a shared NAT): dropped and counted by the caller (but RTCP from
//!   the next port, RFC 3550's RTCP port without rtcp-mux);
//! - the latch moves only when the dialog's authenticated peer asks, with a new SDP
//!   (a re-INVITE): [`RtpSource::renew`] starts over.
//!
//! Sans-IO: the caller gives each packet's source and sequence number.

use std::net::{IpAddr, SocketAddr};

/// Consecutive packets a source not named in the SDP must send before it is the phone's.
pub const PROBATION: u8 = 4;
/// Sources on probation at once (the oldest is forgotten).
pub const CANDIDATES: usize = 4;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpSource {
    /// The address in the phone's SDP (None: none given, or a hold to 0.0.0.0).
    pub sdp: Option<SocketAddr>,
    /// The address its SIP comes from (inbound) or goes to (outbound), for logs.
    pub signaling: Option<IpAddr>,
    latched: Option<SocketAddr>,
    /// Sources on probation: address, last sequence number, consecutive packets so far.
    candidates: Vec<(SocketAddr, u16, u8)>,
}

impl RtpSource {
    pub fn new(sdp: Option<SocketAddr>, signaling: Option<IpAddr>) -> Self {
        RtpSource {
            sdp: sdp.filter(|a| !a.ip().is_unspecified()),
            signaling,
            latched: None,
            candidates: Vec::new(),
        }
    }

    /// Whether a packet from `from` (an RTP packet with sequence number `seq`, or RTCP
    /// with None) is the phone's, latching when the rules above say so.
    pub fn accept(&mut self, from: SocketAddr, seq: Option<u16>) -> bool {
        if let Some(l) = self.latched {
            // RTCP may come from the RTP port + 1 (RFC 3550 §11, without rtcp-mux).
            let rtcp_port =
                seq.is_none() && from.ip() == l.ip() && from.port() == l.port().wrapping_add(1);
            return l == from || rtcp_port;
        }
        if Some(from) == self.sdp {
            self.latch(from);
            return true;
        }
        let Some(seq) = seq else {
            return false;
        };
        let known = self.candidates.iter().position(|c| c.0 == from);
        let count = match known.map(|i| self.candidates[i]) {
            Some((_, last, n)) if seq == last.wrapping_add(1) => n + 1,
            _ => 1,
        };
        if count >= PROBATION {
            self.latch(from);
            return true;
        }
        match known {
            Some(i) => self.candidates[i] = (from, seq, count),
            None => {
                if self.candidates.len() == CANDIDATES {
                    self.candidates.remove(0);
                }
                self.candidates.push((from, seq, count));
            }
        }
        false
    }

    fn latch(&mut self, from: SocketAddr) {
        self.latched = Some(from);
        self.candidates.clear();
    }

    /// Where the phone's packets come from, once known.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// A new SDP from the phone (a re-INVITE in its authenticated dialog): its address is
    /// the phone's from now on, learned again. A hold (no address) keeps the latch.
    pub fn renew(&mut self, sdp: Option<SocketAddr>) {
        if let Some(a) = sdp.filter(|a| !a.ip().is_unspecified()) {
            self.sdp = Some(a);
            self.latched = None;
            self.candidates.clear();
        }
    }
}

/// The sequence number of an RTP packet (None for RTCP or anything too short).
pub fn rtp_seq(packet: &[u8]) -> Option<u16> {
    let is_rtp = packet.len() >= 12 && packet[0] >> 6 == 2 && !(200..=207).contains(&packet[1]);
    is_rtp.then(|| u16::from_be_bytes([packet[2], packet[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_sdp_address_latches_at_once_and_nothing_else_is_heard_after() {
        let mut s = RtpSource::new(
            Some(a("192.0.2.10:7078")),
            Some("192.0.2.10".parse().unwrap()),
        );
        assert!(s.accept(a("192.0.2.10:7078"), Some(1)));
        // Another port of the same IP (a shared NAT, an injector on the host): refused.
        for seq in 2..20 {
            assert!(!s.accept(a("192.0.2.10:7080"), Some(seq)));
        }
        assert!(!s.accept(a("198.51.100.66:4000"), Some(3)), "a stranger");
        assert!(s.accept(a("192.0.2.10:7078"), None), "its RTCP too");
        assert!(
            s.accept(a("192.0.2.10:7079"), None),
            "RTCP from the next port"
        );
        assert!(!s.accept(a("192.0.2.10:7079"), Some(9)), "but not RTP");
        assert_eq!(s.latched(), Some(a("192.0.2.10:7078")));
    }

    #[test]
    fn behind_nat_a_new_source_latches_after_its_probation() {
        // The SDP names a private address; packets come from the NAT's public one.
        let mut s = RtpSource::new(
            Some(a("10.0.0.5:7078")),
            Some("203.0.113.9".parse().unwrap()),
        );
        let nat = a("203.0.113.9:40000");
        for seq in 100..100 + u16::from(PROBATION) - 1 {
            assert!(!s.accept(nat, Some(seq)), "still on probation at {seq}");
        }
        assert!(s.accept(nat, Some(100 + u16::from(PROBATION) - 1)));
        assert!(!s.accept(a("203.0.113.9:40001"), Some(200)), "latched");
    }

    #[test]
    fn an_injector_must_keep_its_sequence_and_loses_to_the_phone() {
        let mut s = RtpSource::new(Some(a("10.0.0.5:7078")), None);
        let (injector, phone) = (a("192.0.2.66:5000"), a("203.0.113.9:40000"));
        // Sprayed packets without consecutive sequence numbers never latch.
        for seq in [1, 5, 9, 13, 17, 21, 25] {
            assert!(!s.accept(injector, Some(seq)));
        }
        // Interleaved with the phone's, the sprayer's packets do not break the phone's run.
        assert!(!s.accept(phone, Some(1)));
        assert!(!s.accept(injector, Some(40)));
        assert!(!s.accept(phone, Some(2)));
        assert!(!s.accept(injector, Some(44)));
        assert!(!s.accept(phone, Some(3)));
        assert!(s.accept(phone, Some(4)), "four consecutive packets");
        assert!(!s.accept(injector, Some(45)));
        assert!(!s.accept(injector, None), "RTCP from a stranger");
    }

    #[test]
    fn only_a_new_sdp_moves_the_latch_and_a_hold_keeps_it() {
        let mut s = RtpSource::new(Some(a("192.0.2.10:7078")), None);
        assert!(s.accept(a("192.0.2.10:7078"), Some(1)));
        s.renew(Some(a("0.0.0.0:7078")));
        assert!(
            s.accept(a("192.0.2.10:7078"), Some(2)),
            "a hold keeps the address"
        );
        s.renew(Some(a("192.0.2.11:7000")));
        assert!(
            !s.accept(a("192.0.2.10:7078"), Some(3)),
            "the old address is gone"
        );
        assert!(s.accept(a("192.0.2.11:7000"), Some(1)));
    }

    #[test]
    fn sequence_numbers_of_rtp_and_none_for_rtcp() {
        let rtp = [0x80, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(rtp_seq(&rtp), Some(0x1234));
        let rtcp = [0x80, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(rtp_seq(&rtcp), None);
        assert_eq!(rtp_seq(&[0x80, 0]), None);
    }
}

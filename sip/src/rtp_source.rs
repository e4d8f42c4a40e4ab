//! Which addresses a phone's RTP may come from. Symmetric RTP with latching, as SBCs do
//! it: packets from the address the phone's SDP names or the one its SIP comes from are
//! always the phone's; before any packet has been accepted, the first one from elsewhere
//! is latched on (a phone behind NAT names its private address in SDP; a host with
//! several addresses may send from another than it names). After that, packets from any
//! other address are not the phone's: dropped and counted by the caller. We always send
//! to where the accepted packets come from.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpSource {
    /// The address in the phone's SDP (None: none given, or a hold to 0.0.0.0).
    pub sdp: Option<IpAddr>,
    /// The address its SIP comes from (inbound) or goes to (outbound).
    pub signaling: Option<IpAddr>,
    latched: Option<SocketAddr>,
}

impl RtpSource {
    pub fn new(sdp: Option<IpAddr>, signaling: Option<IpAddr>) -> Self {
        RtpSource {
            sdp,
            signaling,
            latched: None,
        }
    }

    /// Whether a packet from `from` is the phone's (latching on it if it is the first).
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        let ip = Some(from.ip());
        let ok = ip == self.sdp || ip == self.signaling || self.latched.is_none_or(|l| l == from);
        if ok && self.latched.is_none() {
            self.latched = Some(from);
        }
        ok
    }

    /// A new SDP from the phone (re-INVITE): its address is the phone's from now on.
    pub fn renew(&mut self, sdp: Option<IpAddr>) {
        if sdp.is_some() {
            self.sdp = sdp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_packet_from_elsewhere_is_latched_and_strangers_after_it_are_not() {
        let mut s = RtpSource::new(
            Some("10.0.0.5".parse().unwrap()),
            Some("203.0.113.9".parse().unwrap()),
        );
        // Behind NAT: the SDP names 10.0.0.5, packets come from the NAT's other address.
        assert!(s.accept(a("198.51.100.1:4000")));
        assert!(s.accept(a("198.51.100.1:4000")));
        assert!(
            !s.accept(a("198.51.100.1:4001")),
            "another port after latching"
        );
        assert!(!s.accept(a("192.0.2.66:4000")), "a stranger after latching");
        // The SDP's and the signaling address stay the phone's (any port).
        assert!(s.accept(a("10.0.0.5:7078")));
        assert!(s.accept(a("203.0.113.9:30000")));
    }

    #[test]
    fn packets_from_the_named_addresses_latch_too_and_a_reinvite_moves_the_phone() {
        let mut s = RtpSource::new(Some("192.0.2.10".parse().unwrap()), None);
        assert!(s.accept(a("192.0.2.10:7078")));
        assert!(
            !s.accept(a("192.0.2.11:7078")),
            "latched on the first accepted packet"
        );
        s.renew(Some("192.0.2.11".parse().unwrap()));
        assert!(s.accept(a("192.0.2.11:7078")));
        s.renew(None);
        assert!(s.accept(a("192.0.2.11:7080")), "a hold keeps the address");
    }
}

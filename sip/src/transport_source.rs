//! Where a request really came from: the transport's remote address (the UDP datagram's
//! source, the TCP connection's peer), never what a header claims.
//!
//! A request's top Via may carry `received`/`rport` written by its sender, and rsipstack
//! hands the sender's Via back unchanged when its host:port equals the real source (UDP
//! without `rport`) or when only the port differs (TCP). Trusting Via would let a stranger
//! claim a trunk's address (`received=<trunk>`) and be admitted with no challenge. So the
//! endpoint stamps each received message with the address its transport saw, in a header
//! of ours that is first stripped from whatever arrived from the network, and the gateway
//! reads only that stamp.

use std::net::SocketAddr;

use rsipstack::sip::{Header, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// The header the stamp travels in, inside this process only.
const STAMP: &str = "X-Switchboard-Transport-Source";

fn is_stamp(h: &Header) -> bool {
    matches!(h, Header::Other(name, _) if name.eq_ignore_ascii_case(STAMP))
}

/// The endpoint's message inspector: stamps received requests, strips the stamp from
/// anything sent (it is never meant to leave the process).
pub struct SourceStamp;

impl MessageInspector for SourceStamp {
    fn before_send(&self, mut msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Request(req) = &mut msg {
            req.headers.retain(|h| !is_stamp(h));
        }
        msg
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        stamp(
            msg,
            from.and_then(|f| SocketAddr::try_from(f.addr.clone()).ok()),
        )
    }
}

/// `msg` with any stamp it arrived with removed, and `from` (when known) stamped instead.
fn stamp(mut msg: SipMessage, from: Option<SocketAddr>) -> SipMessage {
    if let SipMessage::Request(req) = &mut msg {
        req.headers.retain(|h| !is_stamp(h));
        if let Some(from) = from {
            req.headers
                .push(Header::Other(STAMP.to_string(), from.to_string()));
        }
    }
    msg
}

/// The transport's remote address of a request the endpoint received; `None` when it was
/// not stamped (which the gateway treats as a stranger).
pub fn source(req: &rsipstack::sip::Request) -> Option<SocketAddr> {
    req.headers.iter().find_map(|h| match h {
        Header::Other(name, value) if name.eq_ignore_ascii_case(STAMP) => value.parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> SipMessage {
        let text = format!(
            "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.5:5099;received=127.0.0.2;branch=z9hG4bK1\r\n\
             From: <sip:mallory@127.0.0.5>;tag=1\r\nTo: <sip:+15550100@127.0.0.1>\r\n\
             Call-ID: x@y\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        SipMessage::try_from(text.as_str()).expect("a valid INVITE")
    }

    fn req(m: SipMessage) -> rsipstack::sip::Request {
        match m {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("a request"),
        }
    }

    #[test]
    fn the_source_is_the_transports_not_the_vias_received() {
        let real: SocketAddr = "127.0.0.5:5099".parse().unwrap();
        let r = req(stamp(invite(""), Some(real)));
        assert_eq!(source(&r), Some(real));
    }

    #[test]
    fn a_stamp_sent_from_the_network_is_replaced_or_removed() {
        let forged = "X-Switchboard-Transport-Source: 127.0.0.2:5060\r\n\
                      x-switchboard-transport-source: 127.0.0.2:5061\r\n";
        let real: SocketAddr = "127.0.0.5:5099".parse().unwrap();
        let r = req(stamp(invite(forged), Some(real)));
        assert_eq!(source(&r), Some(real));
        assert_eq!(r.headers.iter().filter(|h| is_stamp(h)).count(), 1);
        let unknown = req(stamp(invite(forged), None));
        assert_eq!(
            source(&unknown),
            None,
            "no transport address: no source at all"
        );
    }

    #[test]
    fn the_stamp_never_leaves_the_process() {
        let real: SocketAddr = "127.0.0.5:5099".parse().unwrap();
        let sent = req(SourceStamp.before_send(stamp(invite(""), Some(real)), None));
        assert_eq!(source(&sent), None);
    }
}

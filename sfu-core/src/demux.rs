//! Demultiplexing datagrams on a shared UDP socket to peer connections.
//!
//! Known remote addresses map straight to a peer connection. The first packets of a new
//! peer are STUN binding requests (RFC 8445 §7.2.2, RFC 5389): their USERNAME attribute
//! is `<our ufrag>:<their ufrag>`, which names the peer connection we created.

/// What a datagram looks like by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramKind {
    Stun,
    Dtls,
    Rtp,
    Unknown,
}

pub fn classify(buf: &[u8]) -> DatagramKind {
    match buf.first() {
        Some(0..=3) => DatagramKind::Stun,
        Some(20..=63) => DatagramKind::Dtls,
        Some(128..=191) => DatagramKind::Rtp,
        _ => DatagramKind::Unknown,
    }
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The local ufrag (the part before ':') of a STUN message's USERNAME, if any.
///
/// Never panics: every length is checked against the buffer.
pub fn stun_local_ufrag(buf: &[u8]) -> Option<&str> {
    if buf.len() < 20 || buf[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let end = (20 + msg_len).min(buf.len());
    let mut at = 20;
    while at + 4 <= end {
        let typ = u16::from_be_bytes([buf[at], buf[at + 1]]);
        let len = u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize;
        let value = buf.get(at + 4..at + 4 + len)?;
        if typ == ATTR_USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            return s.split(':').next();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(user: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&0x0024u16.to_be_bytes()); // PRIORITY first
        attr.extend_from_slice(&4u16.to_be_bytes());
        attr.extend_from_slice(&[0, 0, 0, 1]);
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attr.extend_from_slice(user.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn finds_local_ufrag() {
        assert_eq!(
            stun_local_ufrag(&stun_with_username("abcd:wxyz")),
            Some("abcd")
        );
        assert_eq!(stun_local_ufrag(&stun_with_username("odd")), Some("odd"));
    }

    #[test]
    fn truncated_and_garbage_inputs_are_none() {
        let m = stun_with_username("abcd:wxyz");
        for cut in 0..m.len() - 1 {
            let _ = stun_local_ufrag(&m[..cut]); // must not panic
        }
        assert_eq!(stun_local_ufrag(&m[..28]), None);
        assert_eq!(stun_local_ufrag(&[0u8; 40]), None);
        let mut lying = m.clone();
        lying[2] = 0xff; // message length far beyond the buffer
        assert_eq!(stun_local_ufrag(&lying), Some("abcd"));
    }

    #[test]
    fn classify_table() {
        for (b, k) in [
            (0u8, DatagramKind::Stun),
            (1, DatagramKind::Stun),
            (22, DatagramKind::Dtls),
            (0x80, DatagramKind::Rtp),
            (0x90, DatagramKind::Rtp),
            (0xff, DatagramKind::Unknown),
            (64, DatagramKind::Unknown),
        ] {
            assert_eq!(classify(&[b, 0, 0]), k, "first byte {b}");
        }
        assert_eq!(classify(&[]), DatagramKind::Unknown);
    }
}

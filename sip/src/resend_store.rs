//! What a video endpoint was sent lately, to answer its NACKs (RFC 4585 generic NACK):
//! the last [`SLOTS`] packets of its speaker view as written for it (plain RTP, before
//! any SRTP), by sequence number. Buffers are reused: no allocation per packet once the
//! ring has filled.

/// Packets kept: about a second of a 2 Mbps view, a few of a smaller one.
pub const SLOTS: usize = 256;
/// Sequence numbers answered from one NACK packet at most (a compound packet claiming
/// more is answered in part).
pub const MAX_PER_NACK: usize = 64;

pub struct ResendStore {
    slots: Vec<Option<(u16, Vec<u8>)>>,
}

impl Default for ResendStore {
    fn default() -> Self {
        ResendStore {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl ResendStore {
    /// Keep `packet`, sent with sequence number `seq` (it replaces the one `SLOTS` before).
    pub fn remember(&mut self, seq: u16, packet: &[u8]) {
        let slot = &mut self.slots[usize::from(seq) % SLOTS];
        match slot {
            Some((s, buf)) => {
                *s = seq;
                buf.clear();
                buf.extend_from_slice(packet);
            }
            None => *slot = Some((seq, packet.to_vec())),
        }
    }

    /// The packet sent with `seq`, if it is still kept.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        match &self.slots[usize::from(seq) % SLOTS] {
            Some((s, buf)) if *s == seq => Some(buf),
            _ => None,
        }
    }
}

/// The sequence numbers a generic NACK's FCI entries name (RFC 4585 §6.2.1: a packet ID
/// and a bitmask of the 16 after it), at most [`MAX_PER_NACK`].
pub fn nacked(fci: &[u8]) -> Vec<u16> {
    let mut seqs = Vec::new();
    for e in fci.chunks_exact(4) {
        let pid = u16::from_be_bytes([e[0], e[1]]);
        let blp = u16::from_be_bytes([e[2], e[3]]);
        seqs.push(pid);
        seqs.extend(
            (0..16)
                .filter(|i| blp & (1 << i) != 0)
                .map(|i| pid.wrapping_add(i + 1)),
        );
        if seqs.len() >= MAX_PER_NACK {
            break;
        }
    }
    seqs.truncate(MAX_PER_NACK);
    seqs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_packets_are_found_by_number_until_replaced() {
        let mut s = ResendStore::default();
        for seq in 65_500u16..=65_535 {
            s.remember(seq, &seq.to_be_bytes());
        }
        s.remember(0, b"wrapped");
        assert_eq!(s.get(65_535), Some(&65_535u16.to_be_bytes()[..]));
        assert_eq!(s.get(0), Some(&b"wrapped"[..]));
        assert_eq!(s.get(1), None, "never sent");
        // SLOTS later the slot holds another packet.
        s.remember(65_500u16.wrapping_add(SLOTS as u16), b"newer");
        assert_eq!(s.get(65_500), None);
    }

    #[test]
    fn nack_entries_name_their_packet_and_bitmask() {
        // PID 100 with bits 0 and 15: 100, 101, 116; PID 65535 with bit 0: 65535, 0.
        let fci = [0, 100, 0x80, 0x01, 0xff, 0xff, 0, 1];
        assert_eq!(nacked(&fci), [100, 101, 116, 65_535, 0]);
        // A flood of entries is answered in part.
        let many: Vec<u8> = (0..40u16).flat_map(|i| [0, i as u8, 0xff, 0xff]).collect();
        assert_eq!(nacked(&many).len(), MAX_PER_NACK);
        assert!(
            nacked(&[1, 2, 3]).is_empty(),
            "a truncated entry names nothing"
        );
    }
}

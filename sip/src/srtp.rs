//! SRTP and SRTCP (RFC 3711) for calls keyed in their SDP (SDES, RFC 4568; the keys and
//! their lines are [`crate::sdes`]'s): the two suites every SDES endpoint has,
//! `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32` (SRTCP's tag is 80 bits in
//! both), key derivation rate 0, no MKI.
//!
//! One [`Srtp`] per m-line: the keys we send with and the keys the endpoint sends with.
//! What arrives is authenticated before anything of it is used and checked against a
//! replay window per SSRC; a packet that fails is an error for the caller to count and
//! drop. AES and HMAC-SHA1 are aws-lc's (the crate str0m already uses).

use std::collections::HashMap;

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use thiserror::Error;

/// The master key and salt of one direction (RFC 3711 §8.2: 128 + 112 bits).
pub const KEY_SALT_LEN: usize = 30;
const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;
/// SRTCP's authentication tag (80 bits in both suites) and its E flag and index.
const RTCP_TAG: usize = 10;
const RTCP_INDEX: usize = 4;
/// SSRCs whose receive state is kept (the endpoint's streams; one of theirs replaces the
/// oldest beyond this).
const MAX_SOURCES: usize = 8;
/// The replay window (RFC 3711 §3.3.2: at least 64).
const WINDOW: u64 = 64;

/// An SDES crypto suite we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32];

    /// Its name in an `a=crypto` line.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The SRTP (not SRTCP) authentication tag's length.
    fn rtp_tag(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// One direction's master key and salt. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySalt(pub [u8; KEY_SALT_LEN]);

impl std::fmt::Debug for KeySalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySalt(<redacted>)")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SrtpError {
    #[error("too short for SRTP")]
    TooShort,
    #[error("authentication failed")]
    Auth,
    #[error("replayed or too old")]
    Replay,
}

/// The session keys of one kind (RTP or RTCP) of one direction (RFC 3711 §4.3).
struct SessionKeys {
    cipher: EncryptingKey,
    auth: hmac::Key,
    salt: [u8; SALT_LEN],
}

/// RFC 3711 §4.3.1 with a key derivation rate of 0: `label`'s session key, auth key and
/// salt are `label`, `label + 1`, `label + 2`.
impl SessionKeys {
    fn derive(master: &KeySalt, label: u8) -> SessionKeys {
        let (key, salt) = master.0.split_at(KEY_LEN);
        let prf = ctr(key);
        let stream = |l: u8, out: &mut [u8]| {
            let mut iv = [0u8; 16];
            iv[..SALT_LEN].copy_from_slice(salt);
            iv[7] ^= l;
            out.fill(0);
            apply(&prf, iv, out);
        };
        let (mut k, mut a, mut s) = ([0u8; KEY_LEN], [0u8; 20], [0u8; SALT_LEN]);
        stream(label, &mut k);
        stream(label + 1, &mut a);
        stream(label + 2, &mut s);
        SessionKeys {
            cipher: ctr(&k),
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &a),
            salt: s,
        }
    }

    /// The AES-CM counter for `ssrc` and `index` (RFC 3711 §4.1.1).
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..SALT_LEN].copy_from_slice(&self.salt);
        for (b, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= x;
        }
        iv
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut ctx = hmac::Context::with_key(&self.auth);
        for p in parts {
            ctx.update(p);
        }
        let mut tag = [0u8; 20];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }
}

fn ctr(key: &[u8]) -> EncryptingKey {
    let key = UnboundCipherKey::new(&AES_128, key).expect("a 16-byte AES key");
    EncryptingKey::ctr(key).expect("AES-CTR")
}

/// XOR `data` with the AES-CM key stream from counter `iv`.
fn apply(key: &EncryptingKey, iv: [u8; 16], data: &mut [u8]) {
    key.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .expect("AES-CTR takes any length");
}

/// What is known of one SSRC the endpoint sends: the highest index authenticated and
/// which of the 64 before it have been seen.
#[derive(Debug, Clone, Copy)]
struct Received {
    highest: u64,
    seen: u64,
    /// Insertion order, for replacing the oldest source.
    order: u64,
}

impl Received {
    /// Whether `index` is new (RFC 3711 §3.3.2).
    fn fresh(&self, index: u64) -> bool {
        if index > self.highest {
            return true;
        }
        let back = self.highest - index;
        back < WINDOW && self.seen & (1 << back) == 0
    }

    fn mark(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

/// The 48-bit index of sequence number `seq` next to the highest index so far (RFC 3711
/// §3.3.1 and appendix A).
fn estimate(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = (highest & 0xffff) as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    (v << 16 | u64::from(seq)) & 0xffff_ffff_ffff
}

/// Receive state per SSRC, bounded.
#[derive(Default)]
struct Sources {
    by_ssrc: HashMap<u32, Received>,
    next_order: u64,
}

impl Sources {
    fn get(&self, ssrc: u32) -> Option<Received> {
        self.by_ssrc.get(&ssrc).copied()
    }

    /// Record `index` of `ssrc`, authenticated: an error when it was seen already or is
    /// older than the window.
    fn admit(&mut self, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        let known = self.get(ssrc);
        let mut state = known.unwrap_or(Received {
            highest: index,
            seen: 0,
            order: 0,
        });
        if known.is_some() && !state.fresh(index) {
            return Err(SrtpError::Replay);
        }
        state.mark(index);
        self.put(ssrc, state);
        Ok(())
    }

    fn put(&mut self, ssrc: u32, r: Received) {
        if !self.by_ssrc.contains_key(&ssrc) && self.by_ssrc.len() >= MAX_SOURCES {
            if let Some(oldest) = self
                .by_ssrc
                .iter()
                .min_by_key(|(_, r)| r.order)
                .map(|(s, _)| *s)
            {
                self.by_ssrc.remove(&oldest);
            }
        }
        self.next_order += 1;
        self.by_ssrc.insert(
            ssrc,
            Received {
                order: self.next_order,
                ..r
            },
        );
    }
}

/// One m-line's SRTP: both directions.
pub struct Srtp {
    suite: Suite,
    send_rtp: SessionKeys,
    send_rtcp: SessionKeys,
    recv_rtp: SessionKeys,
    recv_rtcp: SessionKeys,
    /// The highest index sent per SSRC of ours.
    sent: HashMap<u32, u64>,
    /// The SRTCP index of the next report we send (31 bits).
    rtcp_index: u32,
    received: Sources,
    received_rtcp: Sources,
}

impl std::fmt::Debug for Srtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srtp")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Srtp {
    /// `send`: our master key and salt; `recv`: the endpoint's.
    pub fn new(suite: Suite, send: &KeySalt, recv: &KeySalt) -> Srtp {
        Srtp {
            suite,
            send_rtp: SessionKeys::derive(send, 0),
            send_rtcp: SessionKeys::derive(send, 3),
            recv_rtp: SessionKeys::derive(recv, 0),
            recv_rtcp: SessionKeys::derive(recv, 3),
            sent: HashMap::new(),
            rtcp_index: 0,
            received: Sources::default(),
            received_rtcp: Sources::default(),
        }
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The endpoint changed its key (a re-offer): a new receive context, ours kept.
    pub fn rekey_receive(&mut self, recv: &KeySalt) {
        self.recv_rtp = SessionKeys::derive(recv, 0);
        self.recv_rtcp = SessionKeys::derive(recv, 3);
        self.received = Sources::default();
        self.received_rtcp = Sources::default();
    }

    /// Encrypt and authenticate RTP `packet` (a well-formed header, from our own code)
    /// into `out`.
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let header = rtp_header_len(packet).ok_or(SrtpError::TooShort)?;
        let (ssrc, seq) = ssrc_seq(packet);
        let index = match self.sent.get(&ssrc) {
            Some(&h) => estimate(h, seq),
            None => u64::from(seq),
        };
        let h = self.sent.entry(ssrc).or_insert(index);
        *h = (*h).max(index);
        out.clear();
        out.extend_from_slice(packet);
        let iv = self.send_rtp.iv(ssrc, index);
        apply(&self.send_rtp.cipher, iv, &mut out[header..]);
        let roc = ((index >> 16) as u32).to_be_bytes();
        let tag = self.send_rtp.tag(&[out, &roc]);
        out.extend_from_slice(&tag[..self.suite.rtp_tag()]);
        Ok(())
    }

    /// Authenticate, replay-check and decrypt SRTP `packet` into `out` (plain RTP).
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let tag_len = self.suite.rtp_tag();
        let header = rtp_header_len(packet).ok_or(SrtpError::TooShort)?;
        if packet.len() < header + tag_len {
            return Err(SrtpError::TooShort);
        }
        let (body, tag) = packet.split_at(packet.len() - tag_len);
        let (ssrc, seq) = ssrc_seq(packet);
        let index = match self.received.get(ssrc) {
            Some(r) => estimate(r.highest, seq),
            None => u64::from(seq),
        };
        let roc = ((index >> 16) as u32).to_be_bytes();
        let want = self.recv_rtp.tag(&[body, &roc]);
        verify_slices_are_equal(&want[..tag_len], tag).map_err(|_| SrtpError::Auth)?;
        self.received.admit(ssrc, index)?;
        out.clear();
        out.extend_from_slice(body);
        let iv = self.recv_rtp.iv(ssrc, index);
        apply(&self.recv_rtp.cipher, iv, &mut out[header..]);
        Ok(())
    }

    /// Encrypt and authenticate RTCP `packet` (a compound from our own code) into `out`.
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < 8 {
            return Err(SrtpError::TooShort);
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let index = self.rtcp_index;
        self.rtcp_index = (index + 1) & 0x7fff_ffff;
        out.clear();
        out.extend_from_slice(packet);
        let iv = self.send_rtcp.iv(ssrc, u64::from(index));
        apply(&self.send_rtcp.cipher, iv, &mut out[8..]);
        out.extend_from_slice(&(index | 0x8000_0000).to_be_bytes());
        let tag = self.send_rtcp.tag(&[out]);
        out.extend_from_slice(&tag[..RTCP_TAG]);
        Ok(())
    }

    /// Authenticate, replay-check and decrypt SRTCP `packet` into `out` (plain RTCP).
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        if packet.len() < 8 + RTCP_INDEX + RTCP_TAG {
            return Err(SrtpError::TooShort);
        }
        let (signed, tag) = packet.split_at(packet.len() - RTCP_TAG);
        let want = self.recv_rtcp.tag(&[signed]);
        verify_slices_are_equal(&want[..RTCP_TAG], tag).map_err(|_| SrtpError::Auth)?;
        let (body, e_index) = signed.split_at(signed.len() - RTCP_INDEX);
        let e_index = u32::from_be_bytes([e_index[0], e_index[1], e_index[2], e_index[3]]);
        let index = u64::from(e_index & 0x7fff_ffff);
        let ssrc = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        self.received_rtcp.admit(ssrc, index)?;
        out.clear();
        out.extend_from_slice(body);
        if e_index & 0x8000_0000 != 0 {
            let iv = self.recv_rtcp.iv(ssrc, index);
            apply(&self.recv_rtcp.cipher, iv, &mut out[8..]);
        }
        Ok(())
    }
}

/// An m-line's packets on the wire: through SRTP when the call keyed it, else as they
/// are. RTP and RTCP are told apart as RFC 5761 does (RTCP's packet types 192-223), so one
/// socket may carry both.
#[derive(Debug, Default)]
pub struct Protection {
    srtp: Option<Srtp>,
    buf: Vec<u8>,
}

impl Protection {
    pub fn keyed(srtp: Srtp) -> Protection {
        Protection {
            srtp: Some(srtp),
            buf: Vec::with_capacity(1_600),
        }
    }

    pub fn srtp_mut(&mut self) -> Option<&mut Srtp> {
        self.srtp.as_mut()
    }

    /// A packet of ours for the wire.
    pub fn seal<'a>(&'a mut self, p: &'a [u8]) -> Result<&'a [u8], SrtpError> {
        let Some(srtp) = self.srtp.as_mut() else {
            return Ok(p);
        };
        match crate::rtp::is_rtcp(p) {
            true => srtp.protect_rtcp(p, &mut self.buf)?,
            false => srtp.protect_rtp(p, &mut self.buf)?,
        }
        Ok(&self.buf)
    }

    /// A packet from the wire, authenticated and decrypted.
    pub fn open<'a>(&'a mut self, p: &'a [u8]) -> Result<&'a [u8], SrtpError> {
        let Some(srtp) = self.srtp.as_mut() else {
            return Ok(p);
        };
        match crate::rtp::is_rtcp(p) {
            true => srtp.unprotect_rtcp(p, &mut self.buf)?,
            false => srtp.unprotect_rtp(p, &mut self.buf)?,
        }
        Ok(&self.buf)
    }
}

/// The length of an RTP packet's header (fixed part, CSRCs, extension): what SRTP leaves
/// in the clear. None when the packet is shorter than its header says.
fn rtp_header_len(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= p.len()).then_some(len)
}

fn ssrc_seq(p: &[u8]) -> (u32, u16) {
    (
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        u16::from_be_bytes([p[2], p[3]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// RFC 3711 appendix B.3: the session keys of a master key and salt.
    #[test]
    fn key_derivation_matches_rfc_3711_b3() {
        let mut ks = [0u8; 30];
        ks[..16].copy_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139"));
        ks[16..].copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
        let (key, salt) = ks.split_at(16);
        let prf = ctr(key);
        let derive = |label: u8, n: usize| {
            let mut iv = [0u8; 16];
            iv[..14].copy_from_slice(salt);
            iv[7] ^= label;
            let mut out = vec![0u8; n];
            apply(&prf, iv, &mut out);
            out
        };
        assert_eq!(derive(0, 16), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(derive(2, 14), hex("30CBBC08863D8C85D49DB34A9AE1"));
        assert_eq!(
            derive(1, 20),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
        // The derived salt is what the session's counters start from.
        let keys = SessionKeys::derive(&KeySalt(ks), 0);
        assert_eq!(keys.salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    }

    /// RFC 3711 appendix B.2: the AES-CM key stream for a session key and counter.
    #[test]
    fn the_key_stream_matches_rfc_3711_b2() {
        let key = ctr(&hex("2B7E151628AED2A6ABF7158809CF4F3C"));
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
        let mut out = vec![0u8; 48];
        apply(&key, iv, &mut out);
        assert_eq!(
            out,
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
    }

    /// libSRTP's known answers (srtp_validate): master key and salt as RFC 3711 B.3,
    /// SSRC 0xcafebabe, sequence number 0x1234, SRTCP index 1.
    #[test]
    fn packets_match_libsrtps_known_answers() {
        let mut ks = [0u8; 30];
        ks[..16].copy_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139"));
        ks[16..].copy_from_slice(&hex("0EC675AD498AFEEBB6960B3AABE6"));
        let ks = KeySalt(ks);
        let rtp_plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
        let rtp_80 =
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
        let rtcp_plain = hex("81c8000bcafebabe abababababababababababababababab");
        let rtcp_wire =
            hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798");
        for (suite, tag) in [
            (Suite::AesCm128HmacSha1_80, 10),
            (Suite::AesCm128HmacSha1_32, 4),
        ] {
            let mut send = Srtp::new(suite, &ks, &ks);
            let mut out = Vec::new();
            send.protect_rtp(&rtp_plain, &mut out).unwrap();
            assert_eq!(out, rtp_80[..28 + tag], "{suite:?}");
            let mut recv = Srtp::new(suite, &ks, &ks);
            recv.unprotect_rtp(&rtp_80[..28 + tag], &mut out).unwrap();
            assert_eq!(out, rtp_plain);
            send.rtcp_index = 1;
            send.protect_rtcp(&rtcp_plain, &mut out).unwrap();
            assert_eq!(out, rtcp_wire);
            recv.unprotect_rtcp(&rtcp_wire, &mut out).unwrap();
            assert_eq!(out, rtcp_plain);
        }
    }

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn pair(suite: Suite) -> (Srtp, Srtp) {
        let (a, b) = (KeySalt([7u8; 30]), KeySalt([9u8; 30]));
        (Srtp::new(suite, &a, &b), Srtp::new(suite, &b, &a))
    }

    #[test]
    fn rtp_round_trips_and_hides_the_payload_for_both_suites() {
        for suite in Suite::ALL {
            let (mut us, mut them) = pair(suite);
            let (mut wire, mut back) = (Vec::new(), Vec::new());
            let plain = rtp(65_530, 42, b"hello, phone");
            us.protect_rtp(&plain, &mut wire).unwrap();
            assert_eq!(wire.len(), plain.len() + suite.rtp_tag());
            assert_eq!(wire[..12], plain[..12], "the header stays in the clear");
            assert!(!wire.windows(5).any(|w| w == b"hello"));
            them.unprotect_rtp(&wire, &mut back).unwrap();
            assert_eq!(back, plain);
            // Across the sequence number's wrap (the rollover counter moves on).
            for seq in [65_535u16, 0, 1, 2] {
                let plain = rtp(seq, 42, b"more");
                us.protect_rtp(&plain, &mut wire).unwrap();
                them.unprotect_rtp(&wire, &mut back).unwrap();
                assert_eq!(back, plain, "seq {seq}");
            }
        }
    }

    #[test]
    fn tampered_replayed_foreign_and_short_packets_are_refused() {
        let (mut us, mut them) = pair(Suite::AesCm128HmacSha1_80);
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        us.protect_rtp(&rtp(10, 42, b"voice"), &mut wire).unwrap();
        let mut bad = wire.clone();
        bad[13] ^= 1;
        assert_eq!(them.unprotect_rtp(&bad, &mut back), Err(SrtpError::Auth));
        them.unprotect_rtp(&wire, &mut back).unwrap();
        assert_eq!(them.unprotect_rtp(&wire, &mut back), Err(SrtpError::Replay));
        // Out of order within the window is fine; older than the window is not.
        let mut late = Vec::new();
        us.protect_rtp(&rtp(11, 42, b"late"), &mut late).unwrap();
        for seq in 12..100u16 {
            us.protect_rtp(&rtp(seq, 42, b"x"), &mut wire).unwrap();
            them.unprotect_rtp(&wire, &mut back).unwrap();
        }
        assert_eq!(them.unprotect_rtp(&late, &mut back), Err(SrtpError::Replay));
        // Keyed by someone else (an attacker who knows the header, not the key).
        let (mut stranger, _) = pair(Suite::AesCm128HmacSha1_80);
        stranger.send_rtp = SessionKeys::derive(&KeySalt([1u8; 30]), 0);
        stranger
            .protect_rtp(&rtp(200, 42, b"forged"), &mut wire)
            .unwrap();
        assert_eq!(them.unprotect_rtp(&wire, &mut back), Err(SrtpError::Auth));
        for short in [&[][..], &[0x80; 11][..], &wire[..14]] {
            assert!(them.unprotect_rtp(short, &mut back).is_err());
            assert!(them.unprotect_rtcp(short, &mut back).is_err());
        }
    }

    #[test]
    fn rtcp_round_trips_with_its_index_and_replays_are_refused() {
        let (mut us, mut them) = pair(Suite::AesCm128HmacSha1_32);
        // A PLI (RFC 4585): sender SSRC 5, media SSRC 6.
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 5, 0, 0, 0, 6];
        let (mut wire, mut back) = (Vec::new(), Vec::new());
        for i in 0..3u32 {
            us.protect_rtcp(&pli, &mut wire).unwrap();
            assert_eq!(
                wire.len(),
                pli.len() + 4 + 10,
                "80-bit tag for SRTCP in both suites"
            );
            assert_eq!(wire[12..16], (0x8000_0000 | i).to_be_bytes());
            assert_ne!(wire[8..12], pli[8..12]);
            them.unprotect_rtcp(&wire, &mut back).unwrap();
            assert_eq!(back, pli);
        }
        assert_eq!(
            them.unprotect_rtcp(&wire, &mut back),
            Err(SrtpError::Replay)
        );
        wire[9] ^= 0x40;
        assert_eq!(them.unprotect_rtcp(&wire, &mut back), Err(SrtpError::Auth));
    }

    #[test]
    fn protection_tells_rtp_from_rtcp_and_plain_passes_through() {
        let (us, them) = pair(Suite::AesCm128HmacSha1_80);
        let (mut us, mut them) = (Protection::keyed(us), Protection::keyed(them));
        let pli = [0x81, 206, 0, 2, 0, 0, 0, 5, 0, 0, 0, 6];
        let media = rtp(1, 9, b"frame");
        for p in [&pli[..], &media] {
            let wire = us.seal(p).unwrap().to_vec();
            assert_ne!(wire, p);
            assert_eq!(them.open(&wire).unwrap(), p);
        }
        let mut plain = Protection::default();
        assert_eq!(plain.seal(&media).unwrap(), &media[..]);
        assert_eq!(plain.open(&pli).unwrap(), &pli[..]);
    }

    #[test]
    fn index_estimation_follows_rfc_3711_appendix_a() {
        assert_eq!(estimate(0x1_fffe, 1), 0x2_0001);
        assert_eq!(estimate(0x2_0001, 0xfffe), 0x1_fffe);
        assert_eq!(estimate(0x2_0010, 0x0011), 0x2_0011);
        assert_eq!(
            estimate(0x0_0005, 0xfff0),
            0xfff0,
            "the rollover counter starts at 0"
        );
    }

    #[test]
    fn keys_are_never_printed() {
        let k = KeySalt([0xab; 30]);
        assert!(!format!("{k:?}").contains("ab"));
        let (s, _) = pair(Suite::AesCm128HmacSha1_80);
        assert_eq!(format!("{s:?}"), "Srtp { suite: AesCm128HmacSha1_80, .. }");
    }
}

//! The first look at every datagram: classification (STUN, DTLS, RTP/RTCP, unknown) and
//! the STUN USERNAME reader that routes checks from new addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu_core::demux::{classify, stun_local_ufrag, DatagramKind};

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    if let Some(u) = stun_local_ufrag(data) {
        assert!(data.len() >= 20);
        assert!(u.len() <= data.len());
    }
    if kind == DatagramKind::Stun {
        assert!(!data.is_empty());
    }
});

//! Payload parsers on the media path: keyframe detection for every codec, the VP8
//! descriptor (str0m's, with its patch builder), our VP8 picture-size and temporal-layer
//! readers, and RTP header parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu_core::keyframe::{starts_keyframe, vp8_keyframe_size, vp8_temporal};
use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;

fuzz_target!(|data: &[u8]| {
    for codec in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus] {
        let _ = starts_keyframe(codec, data);
    }
    if let Some((w, h)) = vp8_keyframe_size(data) {
        assert!(w < 1 << 14 && h < 1 << 14);
    }
    if let Some((tid, _)) = vp8_temporal(data) {
        assert!(tid < 4);
    }
    if let Ok(d) = Vp8Descriptor::parse(data) {
        let _ = d.starts_keyframe(data);
        let pic = d.picture_id().unwrap_or(0);
        let _ = d.patch().picture_id(pic.wrapping_add(1) & 0x7fff).tl0_pic_idx(d.tl0_pic_idx().unwrap_or(0).wrapping_add(1)).build();
    }
    let mut seq = 0u16;
    if data.len() >= 2 {
        let _ = str0m::rtp::RtpHeader::read_original_sequence_number(data, &mut seq);
    }
});

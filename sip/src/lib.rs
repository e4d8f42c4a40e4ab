//! # sip — Switchboard's SIP gateway
//!
//! A phone call becomes an ordinary room participant: the phone's audio is published into
//! the room as one Opus track with RFC 6464 levels, and the phone hears one mix of the
//! room's loudest speakers, without its own voice.
//!
//! [`gateway`] is the SIP endpoint (rsipstack); each routed call runs in [`call`]: it joins
//! the room through the hub, reaches the media workers through a [`room_leg`] (two str0m
//! connections, like a browser's) and pumps [`media`] every 20 ms. The rest is the
//! gateway's sans-IO media and call-routing core, each piece driven by its caller's frame
//! clock and table-tested (see `docs/adr/0005-sip-gateway.md` for how the pieces fit):
//! - [`g711`]: PCMU and PCMA;
//! - [`dtmf`]: RFC 4733 telephone events in and out;
//! - [`jitter`]: reordering, loss and pauses of one incoming stream;
//! - [`level`]: RFC 6464 audio levels of a frame;
//! - [`quality`]: loss, jitter and a MOS-like score of a phone's audio;
//! - [`mixer`]: choosing the loudest speakers and the mix-minus per listener;
//! - [`opus`]: the room side's codec (8 kHz mono, pure Rust);
//! - [`dispatch`]: dispatch rules and PIN entry, [`pin_lockout`]: wrong PINs per caller address;
//! - [`access`] and [`digest`]: trunks, SIP users and digest challenges;
//! - [`transport_source`]: where a request really came from (never what its Via claims);
//! - [`stranger_budget`]: what unknown addresses may send the SIP port, before parsing;
//! - [`tcp_guard`]: SIP over TCP within connection limits;
//! - [`registrar`]: where registered phones can be reached;
//! - [`call_limits`]: how many calls one API key may place;
//! - [`rtp`]: plain RTP on the phone leg, [`rtp_source`]: which addresses it may come from;
//! - [`sdp`]: the phone side's SDP offers and answers (one audio m-line);
//! - [`sdes`]: how an m-line is keyed (RFC 4568), [`srtp`]: SRTP/SRTCP for keyed m-lines;
//! - [`video_sdp`]: a video endpoint's video m-line, [`video`]: its video both ways,
//!   forwarded without decoding, and keyframe requests (RTCP PLI/FIR, SIP INFO);
//!   [`resend_store`]: what it was sent lately, for its NACKs.

#![forbid(unsafe_code)]

pub mod access;
pub mod call;
pub mod call_book;
pub mod call_limits;
pub mod digest;
pub mod dispatch;
pub mod dtmf;
pub mod g711;
pub mod gateway;
pub mod inbound;
pub mod jitter;
pub mod level;
pub mod media;
pub mod mixer;
pub mod opus;
pub mod outbound;
pub mod pin_lockout;
pub mod quality;
pub mod registrar;
pub mod resend_store;
pub mod room_leg;
pub mod rtp;
pub mod rtp_source;
pub mod sdes;
pub mod sdp;
pub mod srtp;
pub mod stranger_budget;
pub mod tcp_guard;
pub mod transport_source;
pub mod video;
pub mod video_leg;
pub mod video_sdp;

//! A phone's way into its room: two str0m connections to the room's media worker, as a
//! browser has (ADR 0001) — a publisher sending the phone's voice as Opus with RFC 6464
//! levels, and a subscriber receiving the room's audio. Sans-IO like str0m: datagrams and
//! time in, datagrams and received audio out. Signalling (offers and answers) goes through
//! the hub, by the caller.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use thiserror::Error;

/// One Opus packet received from the room: whose stream, its order and level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomAudio {
    pub ssrc: u32,
    pub seq: u16,
    /// RFC 6464 level (0 loudest … 127 silence), when the packet carries one.
    pub level: Option<u8>,
    pub payload: Vec<u8>,
}

/// A datagram to send from one of the leg's sockets (`from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Debug, Error)]
pub enum LegError {
    #[error("bad SDP from the media plane: {0}")]
    Sdp(String),
    #[error("no offer is pending")]
    NoPendingOffer,
}

/// Samples per 20 ms at Opus's RTP clock (48 kHz).
const OPUS_FRAME_TICKS: u32 = 960;

pub struct RoomLeg {
    /// The sockets of the two connections: one each, as a browser has, since the media
    /// plane tells connections apart by their remote address.
    pub_local: SocketAddr,
    sub_local: SocketAddr,
    publisher: Rtc,
    subscriber: Rtc,
    pending: Option<SdpPendingOffer>,
    mic: Option<Mid>,
    seq: u64,
    ts: u32,
    published: bool,
    /// When the connections next want their clocks advanced (set by every drain).
    next: Instant,
    out: Vec<Datagram>,
    audio: Vec<RoomAudio>,
}

fn rtc(now: Instant, local: SocketAddr) -> Rtc {
    let mut rtc = RtcConfig::new()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_opus(true, false)
        .build(now);
    if let Ok(c) = Candidate::host(local, "udp") {
        rtc.add_local_candidate(c);
    }
    rtc
}

impl RoomLeg {
    /// `pub_local`, `sub_local`: the addresses of the leg's two UDP sockets (their host
    /// candidates), for the publisher and the subscriber connection.
    pub fn new(now: Instant, pub_local: SocketAddr, sub_local: SocketAddr) -> Self {
        RoomLeg {
            pub_local,
            sub_local,
            publisher: rtc(now, pub_local),
            subscriber: rtc(now, sub_local),
            pending: None,
            mic: None,
            seq: 1,
            ts: 0,
            published: false,
            next: now,
            out: Vec::new(),
            audio: Vec::new(),
        }
    }

    /// The publisher offer: one send-only Opus m-line.
    pub fn publish_offer(&mut self) -> Option<String> {
        let mut api = self.publisher.sdp_api();
        let mid = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("phone".into()),
            Some("voice".into()),
            None,
        );
        self.mic = Some(mid);
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        Some(offer.to_sdp_string())
    }

    /// The mid of the published m-line, for the hub's `sources` declaration.
    pub fn mic_mid(&self) -> Option<String> {
        self.mic.map(|m| m.to_string())
    }

    pub fn publish_answer(&mut self, now: Instant, sdp: &str) -> Result<(), LegError> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| LegError::Sdp(e.to_string()))?;
        let pending = self.pending.take().ok_or(LegError::NoPendingOffer)?;
        self.publisher
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| LegError::Sdp(e.to_string()))?;
        self.drain(now);
        Ok(())
    }

    /// The media plane's offer for the subscriber connection: our answer.
    pub fn subscribe_offer(&mut self, now: Instant, sdp: &str) -> Result<String, LegError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| LegError::Sdp(e.to_string()))?;
        let answer = self
            .subscriber
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| LegError::Sdp(e.to_string()))?;
        self.drain(now);
        Ok(answer.to_sdp_string())
    }

    /// Whether the publisher connection is up (DTLS done): audio can flow.
    pub fn publishing(&self) -> bool {
        self.published
    }

    /// Send one 20 ms Opus frame of the phone's voice with its RFC 6464 level.
    pub fn write_audio(&mut self, now: Instant, opus: &[u8], level: u8) {
        let Some(mid) = self.mic else { return };
        let pt = self
            .publisher
            .codec_config()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt());
        if let (Some(pt), Some(tx)) = (pt, self.publisher.direct_api().stream_tx_by_mid(mid, None))
        {
            let ext = ExtensionValues {
                audio_level: Some(-(level.min(127) as i8)),
                voice_activity: Some(level < 50),
                ..Default::default()
            };
            tx.write_rtp(
                RtpWrite::new(pt, SeqNo::from(self.seq), self.ts, now, opus.to_vec()).ext_vals(ext),
            );
            self.seq += 1;
            self.ts = self.ts.wrapping_add(OPUS_FRAME_TICKS);
        }
        self.drain(now);
    }

    /// A datagram arrived on the leg's socket `local`.
    pub fn receive(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        let Ok(r) = Receive::new(Protocol::Udp, from, local, data) else {
            return;
        };
        let input = Input::Receive(now, r);
        let rtc = if local == self.pub_local {
            &mut self.publisher
        } else if local == self.sub_local {
            &mut self.subscriber
        } else {
            return;
        };
        if rtc.accepts(&input) {
            let _ = rtc.handle_input(input);
        }
        self.drain(now);
    }

    /// When to call [`RoomLeg::timeout`] next: every change (input, write, SDP) drains the
    /// connections and updates it, so the clocks are advanced only when a timer is due.
    pub fn next_wake(&self) -> Instant {
        self.next
    }

    /// Advance both connections' clocks; the earliest time they want to be woken.
    pub fn timeout(&mut self, now: Instant) -> Instant {
        let _ = self.publisher.handle_input(Input::Timeout(now));
        let _ = self.subscriber.handle_input(Input::Timeout(now));
        self.drain(now)
    }

    /// Whether either connection gave up (ICE or DTLS failure, or closed).
    pub fn alive(&self) -> bool {
        self.publisher.is_alive() && self.subscriber.is_alive()
    }

    pub fn take_datagrams(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.out)
    }

    pub fn take_audio(&mut self) -> Vec<RoomAudio> {
        std::mem::take(&mut self.audio)
    }

    /// Drain both connections until they ask for a timeout; returns the earlier one.
    fn drain(&mut self, now: Instant) -> Instant {
        let mut next = now + std::time::Duration::from_secs(1);
        for is_pub in [true, false] {
            loop {
                let rtc = if is_pub {
                    &mut self.publisher
                } else {
                    &mut self.subscriber
                };
                let out = match rtc.poll_output() {
                    Ok(o) => o,
                    Err(_) => break,
                };
                match out {
                    Output::Timeout(t) => {
                        next = next.min(t);
                        break;
                    }
                    Output::Transmit(t) => self.out.push(Datagram {
                        from: t.source,
                        to: t.destination,
                        data: t.contents.to_vec(),
                    }),
                    Output::Event(Event::Connected) if is_pub => self.published = true,
                    Output::Event(Event::RtpPacket(p)) if !is_pub => self.audio.push(RoomAudio {
                        ssrc: *p.header.ssrc,
                        seq: p.header.sequence_number,
                        level: p
                            .header
                            .ext_vals
                            .audio_level
                            .map(|l| l.unsigned_abs().min(127)),
                        payload: p.payload.to_vec(),
                    }),
                    Output::Event(_) => {}
                }
            }
        }
        self.next = next;
        next
    }
}

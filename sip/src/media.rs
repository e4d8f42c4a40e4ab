//! One call's media, both directions, one 20 ms frame at a time (the caller's clock):
//!
//! - phone → room: RTP from the phone through a jitter buffer, G.711 decoded (a lost
//!   frame concealed by repeating the last one, attenuated, once), its RFC 6464 level
//!   measured, encoded to Opus for the room leg;
//! - room → phone: each room source's Opus packets through a jitter buffer of their own;
//!   the loudest few (by the levels their packets carry) decoded — Opus concealment for a
//!   lost frame — and mixed, encoded to the call's G.711 law, one RTP packet every frame,
//!   silence included, so the phone's own jitter buffer never starves.
//!
//! The SFU never sends a participant its own tracks, so the mix a phone hears already
//! leaves its own voice out.

use std::collections::HashMap;

use crate::opus::{Decoder, Encoder};
use thiserror::Error;

use crate::dtmf::{Digit, DtmfFrame, DtmfReceiver, DtmfSender};
use crate::g711::Law;
use crate::jitter::{JitterBuffer, Pop};
use crate::level::audio_level;
use crate::mixer::{loudest, Mix};
use crate::quality::{Quality, Report};
use crate::room_leg::RoomAudio;
use crate::rtp::{self, RtpHeader};

/// Samples per 20 ms frame at 8 kHz, the rate of every G.711 leg.
pub const FRAME: usize = 160;
/// The most room sources mixed into what a phone hears.
pub const MAX_MIXED: usize = 3;
/// Levels at or above this (RFC 6464, -dBov) count as silence for choosing speakers.
const SILENT: u8 = 100;
/// Jitter buffers: frames held before playing, and at most.
const JITTER_TARGET: usize = 2;
const JITTER_MAX: usize = 15;
/// A room source not heard from for this many frames is forgotten (5 s).
const SOURCE_IDLE_FRAMES: u32 = 250;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error(transparent)]
    Opus(#[from] crate::opus::OpusError),
}

/// What a phone packet was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhonePacket {
    Audio,
    /// The first packet of a DTMF key press.
    Digit(Digit),
    /// A repeat or the end of a key press already reported.
    DigitRepeat,
    /// RTCP multiplexed on the RTP port (RFC 5761): reports, not media.
    Rtcp,
}

/// Why a phone packet was dropped (each is counted by the caller).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DropReason {
    #[error("not RTP: {0}")]
    Malformed(#[from] rtp::RtpError),
    #[error("unexpected payload type {0}")]
    PayloadType(u8),
    #[error("bad telephone event: {0}")]
    Dtmf(#[from] crate::dtmf::DtmfError),
}

/// One frame's output.
#[derive(Debug, Default)]
pub struct Tick {
    /// The phone's voice for the room: an Opus frame and its RFC 6464 level.
    pub to_room: Option<(Vec<u8>, u8)>,
    /// RTP packets for the phone: one frame of audio, or the telephone events of a digit
    /// being typed to it.
    pub to_phone: Vec<Vec<u8>>,
}

/// A room packet waiting to be played: its RFC 6464 level and Opus payload.
type Queued = (Option<u8>, Vec<u8>);

struct Source {
    jitter: JitterBuffer<Queued>,
    decoder: Decoder,
    idle: u32,
    /// The level of its last frame: a lost frame of a speaker is concealed, not dropped.
    last_level: u8,
}

pub struct CallMedia {
    law: Law,
    /// The phone's payload types: audio and telephone-event.
    audio_pt: u8,
    event_pt: Option<u8>,
    phone: JitterBuffer<Vec<u8>>,
    phone_ssrc: Option<u32>,
    dtmf: DtmfReceiver,
    dtmf_out: DtmfSender,
    quality: Quality,
    last_phone: Vec<i16>,
    concealed: bool,
    encoder: Encoder,
    sources: HashMap<u32, Source>,
    mix: Mix,
    out_ssrc: u32,
    out_seq: u16,
    out_ts: u32,
    /// Scratch buffers, reused every frame.
    pcm: Vec<i16>,
    codes: Vec<u8>,
    opus: Vec<u8>,
}

impl CallMedia {
    /// `ssrc`, `seq`: the start of the stream to the phone (random, from the caller).
    pub fn new(
        law: Law,
        audio_pt: u8,
        event_pt: Option<u8>,
        ssrc: u32,
        seq: u16,
    ) -> Result<Self, MediaError> {
        let encoder = Encoder::new()?;
        Ok(CallMedia {
            law,
            audio_pt,
            event_pt,
            phone: JitterBuffer::new(JITTER_TARGET, JITTER_MAX),
            phone_ssrc: None,
            dtmf: DtmfReceiver::default(),
            dtmf_out: DtmfSender::default(),
            quality: Quality::default(),
            last_phone: vec![0; FRAME],
            concealed: false,
            encoder,
            sources: HashMap::new(),
            mix: Mix::new(FRAME),
            out_ssrc: ssrc,
            out_seq: seq,
            out_ts: 0,
            pcm: Vec::with_capacity(FRAME),
            codes: Vec::with_capacity(FRAME),
            opus: vec![0; 1_500],
        })
    }

    /// A datagram from the phone's RTP address, arrived at `now_ms` (any monotonic
    /// millisecond clock: it measures jitter).
    pub fn phone_packet(&mut self, data: &[u8], now_ms: u64) -> Result<PhonePacket, DropReason> {
        let (h, payload) = match rtp::parse(data) {
            Err(rtp::RtpError::Rtcp) => return Ok(PhonePacket::Rtcp),
            r => r?,
        };
        if Some(h.payload_type) == self.event_pt {
            return Ok(match self.dtmf.on_packet(h.timestamp, payload)? {
                Some(d) => PhonePacket::Digit(d),
                None => PhonePacket::DigitRepeat,
            });
        }
        if h.payload_type != self.audio_pt {
            return Err(DropReason::PayloadType(h.payload_type));
        }
        if self.phone_ssrc != Some(h.ssrc) {
            // A new stream (the phone restarted it, e.g. after a re-INVITE).
            self.phone.reset();
            self.quality.restart();
            self.phone_ssrc = Some(h.ssrc);
        }
        self.quality.arrival(h.timestamp, now_ms);
        self.phone.push(h.seq, payload.to_vec());
        Ok(PhonePacket::Audio)
    }

    /// An Opus packet from the room.
    pub fn room_packet(&mut self, a: RoomAudio) -> Result<(), MediaError> {
        let source = match self.sources.entry(a.ssrc) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Source {
                jitter: JitterBuffer::new(JITTER_TARGET, JITTER_MAX),
                decoder: Decoder::new()?,
                idle: 0,
                last_level: 127,
            }),
        };
        source.idle = 0;
        source.jitter.push(a.seq, (a.level, a.payload));
        Ok(())
    }

    /// The phone's frame for this tick: decoded, concealed, or None when it sends nothing.
    fn phone_frame(&mut self) -> Option<()> {
        self.pcm.clear();
        match self.phone.pop() {
            Pop::Frame(codes) => {
                self.quality.frame(false);
                self.law.decode(&codes, &mut self.pcm);
                self.pcm.resize(FRAME, 0);
                self.last_phone.copy_from_slice(&self.pcm);
                self.concealed = false;
            }
            Pop::Lost if !self.concealed => {
                self.quality.frame(true);
                self.pcm.extend(self.last_phone.iter().map(|s| s / 2));
                self.concealed = true;
            }
            Pop::Lost => {
                self.quality.frame(true);
                self.pcm.resize(FRAME, 0);
            }
            Pop::Idle => return None,
        }
        Some(())
    }

    /// The room's mix for this tick, into `self.mix`.
    fn room_mix(&mut self) -> Result<(), MediaError> {
        self.mix.clear();
        let mut frames: Vec<(u32, Pop<Queued>)> = Vec::new();
        let mut levels: Vec<(u32, u8)> = Vec::new();
        for (ssrc, s) in self.sources.iter_mut() {
            s.idle += 1;
            let pop = s.jitter.pop();
            let level = match &pop {
                Pop::Frame((l, _)) => {
                    s.last_level = l.unwrap_or(SILENT - 1);
                    s.last_level
                }
                Pop::Lost => s.last_level,
                Pop::Idle => 127,
            };
            levels.push((*ssrc, level));
            frames.push((*ssrc, pop));
        }
        self.sources.retain(|_, s| s.idle < SOURCE_IDLE_FRAMES);
        let chosen = loudest(&levels, MAX_MIXED, SILENT);
        let mut pcm = [0i16; FRAME];
        for (ssrc, pop) in frames {
            let Some(source) = self.sources.get_mut(&ssrc) else {
                continue;
            };
            let packet = match &pop {
                Pop::Frame((_, p)) => Some(p.as_slice()),
                Pop::Lost => None,
                Pop::Idle => continue,
            };
            if !chosen.contains(&ssrc) {
                // Not mixed this frame: not decoded either (its decoder sees a gap, as
                // after a loss, when it is mixed again).
                continue;
            }
            if let Ok(n) = source.decoder.decode(packet, &mut pcm[..]) {
                self.mix.add(&pcm[..n.min(FRAME)]);
            }
        }
        Ok(())
    }

    /// Advance one frame: what goes to the room and to the phone.
    pub fn tick(&mut self) -> Result<Tick, MediaError> {
        let mut out = Tick::default();
        if self.phone_frame().is_some() {
            let level = audio_level(&self.pcm);
            let n = self.encoder.encode(&self.pcm, &mut self.opus)?;
            out.to_room = Some((self.opus[..n].to_vec(), level));
        }
        self.room_mix()?;
        let mut heard = [0i16; FRAME];
        self.mix.render(None, &mut heard);
        out.to_phone = self.frame_for_phone(&heard);
        Ok(out)
    }

    /// Type `digits` to the phone (RFC 4733) from the next frame on. False when the phone
    /// takes no telephone events or the queue is full.
    pub fn send_digits(&mut self, digits: &str) -> bool {
        self.event_pt.is_some() && self.dtmf_out.push(digits)
    }

    /// The packets of one frame for the phone: `pcm`, or a digit being typed.
    fn frame_for_phone(&mut self, pcm: &[i16]) -> Vec<Vec<u8>> {
        let (DtmfFrame::Event(events), Some(pt)) =
            (self.dtmf_out.frame(self.out_ts), self.event_pt)
        else {
            return vec![self.packet_for_phone(pcm)];
        };
        let packets = events
            .iter()
            .map(|e| {
                let mut out = Vec::with_capacity(16);
                let h = RtpHeader {
                    marker: e.marker,
                    payload_type: pt,
                    seq: self.out_seq,
                    timestamp: e.timestamp,
                    ssrc: self.out_ssrc,
                };
                rtp::write(&h, &e.payload, &mut out);
                self.out_seq = self.out_seq.wrapping_add(1);
                out
            })
            .collect();
        self.out_ts = self.out_ts.wrapping_add(FRAME as u32);
        packets
    }

    /// Outside a room (a PIN prompt): the phone's audio is dropped, `pcm` is sent to it.
    pub fn tick_prompt(&mut self, pcm: &[i16]) -> Vec<u8> {
        let _ = self.phone.pop();
        self.packet_for_phone(pcm)
    }

    /// One RTP packet of `pcm` for the phone, continuing its sequence and timestamps.
    fn packet_for_phone(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + FRAME);
        self.codes.clear();
        self.law.encode(pcm, &mut self.codes);
        let h = RtpHeader {
            marker: false,
            payload_type: self.audio_pt,
            seq: self.out_seq,
            timestamp: self.out_ts,
            ssrc: self.out_ssrc,
        };
        rtp::write(&h, &self.codes, &mut out);
        self.out_seq = self.out_seq.wrapping_add(1);
        self.out_ts = self.out_ts.wrapping_add(FRAME as u32);
        out
    }

    /// The quality of the phone's audio so far.
    pub fn quality(&self) -> Report {
        self.quality.report((JITTER_TARGET * 20) as f64)
    }

    /// How many room sources are being received.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

/// Frame `n` (20 ms) of a `hz` sine at about -12 dBov: prompt and error tones.
pub fn tone_frame(hz: f64, n: u64) -> [i16; FRAME] {
    let mut f = [0i16; FRAME];
    for (i, s) in f.iter_mut().enumerate() {
        let t = (n as f64 * FRAME as f64 + i as f64) / 8_000.0;
        *s = (8_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::Law;

    fn tone(hz: f64, start: usize, amplitude: f64) -> Vec<i16> {
        (0..FRAME)
            .map(|i| {
                (amplitude * ((start + i) as f64 * 2.0 * std::f64::consts::PI * hz / 8_000.0).sin())
                    as i16
            })
            .collect()
    }

    /// The share of a frame's energy at `hz` (Goertzel).
    fn share(pcm: &[i16], hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 8_000.0;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for x in pcm {
            let s = f64::from(*x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let energy: f64 = pcm.iter().map(|x| f64::from(*x).powi(2)).sum();
        if energy == 0.0 {
            0.0
        } else {
            2.0 * power / (energy * pcm.len() as f64)
        }
    }

    fn phone_rtp(seq: u16, pcm: &[i16]) -> Vec<u8> {
        let mut codes = Vec::new();
        Law::Ulaw.encode(pcm, &mut codes);
        let mut p = Vec::new();
        let h = RtpHeader {
            marker: false,
            payload_type: 0,
            seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 9,
        };
        rtp::write(&h, &codes, &mut p);
        p
    }

    #[test]
    fn a_phone_tone_reaches_the_room_as_opus_and_room_opus_reaches_the_phone() {
        let mut m = CallMedia::new(Law::Ulaw, 0, Some(101), 1, 100).unwrap();
        // A room participant: 440 Hz encoded with Opus at 8 kHz (as a browser's Opus
        // would be decoded), level 20.
        let mut enc = Encoder::new().unwrap();
        let mut room_dec = Decoder::new().unwrap();
        let mut heard = Vec::new();
        let mut to_room = Vec::new();
        for i in 0..50u16 {
            assert_eq!(
                m.phone_packet(
                    &phone_rtp(i, &tone(1_000.0, usize::from(i) * FRAME, 8_000.0)),
                    u64::from(i) * 20
                ),
                Ok(PhonePacket::Audio)
            );
            let mut buf = [0u8; 400];
            let n = enc
                .encode(&tone(440.0, usize::from(i) * FRAME, 8_000.0), &mut buf)
                .unwrap();
            m.room_packet(RoomAudio {
                ssrc: 77,
                seq: 500 + i,
                level: Some(20),
                payload: buf[..n].to_vec(),
            })
            .unwrap();
            let t = m.tick().unwrap();
            let (h, payload) = rtp::parse(&t.to_phone[0]).unwrap();
            assert_eq!((h.payload_type, h.seq, h.ssrc), (0, 100 + i, 1));
            let mut pcm = Vec::new();
            Law::Ulaw.decode(payload, &mut pcm);
            heard.push(pcm);
            if let Some((opus, level)) = t.to_room {
                assert!(level < 30, "a loud tone: level {level}");
                let mut pcm = [0i16; FRAME];
                let n = room_dec.decode(Some(&opus[..]), &mut pcm[..]).unwrap();
                to_room.push(pcm[..n].to_vec());
            }
        }
        // After the buffers and the codecs settle, the phone hears 440 Hz and the room
        // hears 1 kHz.
        let late = |v: &[Vec<i16>]| v[v.len() - 10..].concat();
        assert!(
            share(&late(&heard), 440.0) > 0.8,
            "phone hears 440 Hz: {}",
            share(&late(&heard), 440.0)
        );
        assert!(
            share(&late(&to_room), 1_000.0) > 0.8,
            "room hears 1 kHz: {}",
            share(&late(&to_room), 1_000.0)
        );
        assert_eq!(m.sources(), 1);
    }

    #[test]
    fn silence_is_sent_when_nobody_speaks_and_digits_are_read() {
        let mut m = CallMedia::new(Law::Alaw, 8, Some(101), 1, 0).unwrap();
        for i in 0..3 {
            let t = m.tick().unwrap();
            assert!(t.to_room.is_none(), "the phone sent nothing");
            let (h, payload) = rtp::parse(&t.to_phone[0]).unwrap();
            assert_eq!((h.seq, h.timestamp), (i, u32::from(i) * 160));
            assert!(payload.iter().all(|c| *c == 0xd5), "A-law silence");
        }
        let mut p = Vec::new();
        let h = RtpHeader {
            marker: false,
            payload_type: 101,
            seq: 1,
            timestamp: 4_000,
            ssrc: 9,
        };
        rtp::write(&h, &[5, 0x0a, 0, 160], &mut p);
        assert_eq!(
            m.phone_packet(&p, 0),
            Ok(PhonePacket::Digit(Digit::new('5').unwrap()))
        );
        assert_eq!(m.phone_packet(&p, 0), Ok(PhonePacket::DigitRepeat));
        let mut bad = p.clone();
        bad[1] = 18; // G.729: not negotiated
        assert_eq!(m.phone_packet(&bad, 0), Err(DropReason::PayloadType(18)));
        assert!(matches!(
            m.phone_packet(&[1, 2, 3], 0),
            Err(DropReason::Malformed(_))
        ));
    }

    #[test]
    fn digits_typed_to_the_phone_are_telephone_events_between_audio() {
        let mut m = CallMedia::new(Law::Ulaw, 0, Some(101), 7, 100).unwrap();
        assert!(m.send_digits("9#"));
        let mut rx = crate::dtmf::DtmfReceiver::default();
        let (mut digits, mut seqs, mut audio) = (String::new(), Vec::new(), 0);
        for _ in 0..20 {
            for p in m.tick().unwrap().to_phone {
                let (h, payload) = rtp::parse(&p).unwrap();
                seqs.push(h.seq);
                match h.payload_type {
                    101 => {
                        if let Some(d) = rx.on_packet(h.timestamp, payload).unwrap() {
                            digits.push(d.as_char());
                        }
                    }
                    0 => audio += 1,
                    pt => panic!("payload type {pt}"),
                }
            }
        }
        assert_eq!(digits, "9#");
        // One sequence, no gaps, across audio and events.
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "{seqs:?}"
        );
        // 20 frames: 2 presses of 5 frames and their 3-frame gaps leave 20 - 10 audio.
        assert_eq!(audio, 10);
        let mut plain = CallMedia::new(Law::Ulaw, 0, None, 7, 100).unwrap();
        assert!(!plain.send_digits("1"), "no telephone-event negotiated");
    }
}

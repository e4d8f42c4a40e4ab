//! DTMF as RTP telephone events (RFC 4733 §2.3): decoding what a phone sends, without
//! relying on the marker bit (many phones and trunks get it wrong; it is also lost with
//! the first packet), and the packets to send a digit.

use thiserror::Error;

/// A DTMF key (RFC 4733 §3.2 events 0–15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digit(char);

impl Digit {
    /// `0`–`9`, `*`, `#`, `A`–`D` (case-insensitive).
    pub fn new(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Digit(c))
    }

    pub fn from_event(event: u8) -> Option<Self> {
        let c = match event {
            0..=9 => char::from(b'0' + event),
            10 => '*',
            11 => '#',
            12..=15 => char::from(b'A' + event - 12),
            _ => return None,
        };
        Some(Digit(c))
    }

    pub fn event(self) -> u8 {
        match self.0 {
            '*' => 10,
            '#' => 11,
            c @ '0'..='9' => c as u8 - b'0',
            c => c as u8 - b'A' + 12,
        }
    }

    pub fn as_char(self) -> char {
        self.0
    }
}

/// One telephone-event payload (4 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level, 0 to -63 dBm0 (given as 0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DtmfError {
    #[error("telephone-event payload of {0} bytes (needs 4)")]
    Short(usize),
    #[error("telephone event {0} is not a DTMF key")]
    NotDtmf(u8),
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::Short(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        let flags = if self.end { 0x80 } else { 0 } | (self.volume & 0x3f);
        [self.event, flags, d[0], d[1]]
    }
}

/// How many recent events are remembered to drop retransmissions that arrive late.
const HISTORY: usize = 8;

/// Turns a stream of telephone-event packets into digits, each once: an event is
/// identified by its RTP timestamp (constant for all packets of one key press, the three
/// end packets included) and its code.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    seen: Vec<(u32, u8)>,
}

impl DtmfReceiver {
    /// A packet's payload and RTP timestamp: the digit if this is the first packet of a
    /// new key press.
    pub fn on_packet(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<Digit>, DtmfError> {
        let e = TelephoneEvent::parse(payload)?;
        let digit = Digit::from_event(e.event).ok_or(DtmfError::NotDtmf(e.event))?;
        let key = (timestamp, e.event);
        if self.seen.contains(&key) {
            return Ok(None);
        }
        if self.seen.len() == HISTORY {
            self.seen.remove(0);
        }
        self.seen.push(key);
        Ok(Some(digit))
    }
}

/// One RTP packet of an outgoing key press: marker bit, timestamp, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPacket {
    pub marker: bool,
    pub timestamp: u32,
    pub payload: [u8; 4],
}

/// The packets of one key press of `duration` timestamp units starting at `timestamp`,
/// one every `step` units (the packet interval), the last sent three times (RFC 4733
/// §2.5.1.4), all with the event's start timestamp. Volume -10 dBm0.
pub fn key_press(digit: Digit, timestamp: u32, duration: u16, step: u16) -> Vec<EventPacket> {
    let step = step.max(1);
    let mut out = Vec::new();
    let mut d = step.min(duration);
    loop {
        let end = d >= duration;
        let e = TelephoneEvent {
            event: digit.event(),
            end,
            volume: 10,
            duration: d,
        };
        let copies = if end { 3 } else { 1 };
        for _ in 0..copies {
            out.push(EventPacket {
                marker: out.is_empty(),
                timestamp,
                payload: e.to_bytes(),
            });
        }
        if end {
            return out;
        }
        d = d.saturating_add(step).min(duration);
    }
}

/// A key press sent to a phone: 100 ms of events (five 20 ms packets, the last three
/// times), then 60 ms of audio before the next key; `w` is a 500 ms pause.
const PRESS_FRAMES: usize = 5;
const GAP_FRAMES: u32 = 3;
const PAUSE_FRAMES: u32 = 25;
/// Timestamp units per 20 ms frame at 8 kHz.
const FRAME_UNITS: u16 = 160;
/// Digits waiting to be sent, at most.
pub const SEND_QUEUE: usize = 256;

/// What one frame of the stream to a phone carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtmfFrame {
    Audio,
    /// Telephone-event packets instead of audio.
    Event(Vec<EventPacket>),
}

/// Digits typed to a phone (RFC 4733), one frame at a time on the caller's clock.
#[derive(Debug, Default)]
pub struct DtmfSender {
    queue: std::collections::VecDeque<char>,
    /// The key press being sent and how many of its frames are out.
    playing: Option<(Vec<EventPacket>, usize)>,
    /// Frames of audio before the next key.
    hold: u32,
}

impl DtmfSender {
    /// Queue `digits` (`0-9 * # A-D`, `w` a pause; anything else is skipped). False when
    /// the queue is full (nothing queued).
    pub fn push(&mut self, digits: &str) -> bool {
        if self.queue.len() + digits.len() > SEND_QUEUE {
            return false;
        }
        self.queue.extend(
            digits
                .chars()
                .filter(|&c| c == 'w' || Digit::new(c).is_some()),
        );
        true
    }

    pub fn idle(&self) -> bool {
        self.queue.is_empty() && self.playing.is_none() && self.hold == 0
    }

    /// The frame starting at RTP `timestamp`.
    pub fn frame(&mut self, timestamp: u32) -> DtmfFrame {
        if self.hold > 0 {
            self.hold -= 1;
            return DtmfFrame::Audio;
        }
        if self.playing.is_none() {
            match self.queue.pop_front() {
                None => return DtmfFrame::Audio,
                Some('w') => {
                    self.hold = PAUSE_FRAMES - 1;
                    return DtmfFrame::Audio;
                }
                Some(c) => {
                    let d = Digit::new(c).expect("only digits are queued");
                    let duration = FRAME_UNITS * PRESS_FRAMES as u16;
                    self.playing = Some((key_press(d, timestamp, duration, FRAME_UNITS), 0));
                }
            }
        }
        let (packets, sent) = self.playing.as_mut().expect("set above");
        let now = if *sent + 1 < PRESS_FRAMES {
            vec![packets[*sent].clone()]
        } else {
            packets[*sent..].to_vec()
        };
        *sent += 1;
        if *sent == PRESS_FRAMES {
            self.playing = None;
            self.hold = GAP_FRAMES;
        }
        DtmfFrame::Event(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_events() {
        for (c, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            let d = Digit::new(c).unwrap();
            assert_eq!(d.event(), e);
            assert_eq!(Digit::from_event(e), Some(d));
        }
        assert_eq!(Digit::new('x'), None);
        assert_eq!(Digit::from_event(16), None); // flash hook and beyond: not DTMF
    }

    #[test]
    fn payloads_parse_and_bad_ones_are_errors() {
        let e = TelephoneEvent::parse(&[11, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(DtmfError::Short(2)));
        let mut r = DtmfReceiver::default();
        assert_eq!(
            r.on_packet(0, &[16, 0, 0, 160]),
            Err(DtmfError::NotDtmf(16))
        );
    }

    #[test]
    fn a_key_press_is_one_digit_whatever_the_marker_and_retransmissions() {
        let mut r = DtmfReceiver::default();
        let one = key_press(Digit::new('1').unwrap(), 1_000, 800, 160);
        // 4 packets of growing duration (160 to 640) then 3 end packets (800); the first
        // with the marker.
        assert_eq!(one.len(), 7);
        assert!(one[0].marker && one.iter().skip(1).all(|p| !p.marker));
        assert!(one.iter().all(|p| p.timestamp == 1_000));
        // The first packet (and with it the marker) lost: still one digit.
        let got: Vec<Option<Digit>> = one[1..]
            .iter()
            .map(|p| r.on_packet(p.timestamp, &p.payload).unwrap())
            .collect();
        assert_eq!(got.iter().flatten().count(), 1);
        assert_eq!(got[0], Digit::new('1'));
        // The same key pressed again has a new timestamp: a second digit.
        let again = key_press(Digit::new('1').unwrap(), 2_600, 800, 160);
        let n = again
            .iter()
            .filter_map(|p| r.on_packet(p.timestamp, &p.payload).unwrap())
            .count();
        assert_eq!(n, 1);
        // A late retransmission of the first press is not a third digit.
        assert_eq!(r.on_packet(1_000, &one[6].payload), Ok(None));
    }

    #[test]
    fn two_keys_sharing_a_timestamp_are_two_digits() {
        // Some gateways restart timestamps; the event code still tells them apart.
        let mut r = DtmfReceiver::default();
        assert_eq!(r.on_packet(5, &[1, 0, 0, 160]), Ok(Digit::new('1')));
        assert_eq!(r.on_packet(5, &[2, 0, 0, 160]), Ok(Digit::new('2')));
    }

    #[test]
    fn digits_sent_are_read_back_once_each_with_gaps_and_pauses() {
        let mut tx = DtmfSender::default();
        assert!(tx.push("1x#w2"));
        let mut rx = DtmfReceiver::default();
        let (mut heard, mut frames, mut audio) = (String::new(), 0u32, 0u32);
        while !tx.idle() {
            match tx.frame(frames * 160) {
                DtmfFrame::Audio => audio += 1,
                DtmfFrame::Event(ps) => {
                    for p in ps {
                        if let Some(d) = rx.on_packet(p.timestamp, &p.payload).unwrap() {
                            heard.push(d.as_char());
                        }
                    }
                }
            }
            frames += 1;
        }
        assert_eq!(heard, "1#2");
        // Three presses of 5 frames, a gap of 3 after each, the pause of 25.
        assert_eq!((frames, audio), (3 * 5 + 3 * 3 + 25, 3 * 3 + 25));
        assert!(!tx.push(&"1".repeat(SEND_QUEUE + 1)));
    }
}

//! The relay's control messages, on one QUIC stream per link: each a JSON object behind
//! its length (four bytes, big-endian), at most [`MAX_MESSAGE`] bytes. The first message
//! each way is [`Control::Hello`]; the rest say which tracks a node offers the other
//! (announce, withdraw), which layers it wants (demand), and carry what the media plane
//! exchanges about them (layer bitrates, keyframe requests, NACKs, speaker levels, data).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest control message read.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most sequence numbers one NACK names.
pub const MAX_NACK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Audio,
    Video,
}

/// One layer of an announced track and the flow its datagrams carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The simulcast rid (`q`, `h`, `f`), empty for a single-layer track.
    pub rid: String,
    pub flow: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Who sends it, and its proof of the cluster secret for this connection (hex).
    Hello {
        node: String,
        proof: String,
    },
    /// A track of a room the sender's node has, offered to the other.
    Announce {
        room: String,
        track: String,
        participant: String,
        kind: Kind,
        codec: String,
        layers: Vec<Layer>,
    },
    Withdraw {
        room: String,
        track: String,
    },
    /// The flows the sender wants now (any other of the track is let go).
    Demand {
        room: String,
        track: String,
        flows: Vec<u32>,
    },
    /// A layer's bitrate at its origin, bits per second.
    Bitrate {
        flow: u32,
        bps: u64,
    },
    Keyframe {
        flow: u32,
    },
    Nack {
        flow: u32,
        seqs: Vec<u16>,
    },
    /// Audio levels (RFC 6464, -dBov) of the sender's participants in a room.
    Speakers {
        room: String,
        levels: Vec<(String, u8)>,
    },
    /// A data message of a room (its payload as sent, base64).
    Data {
        room: String,
        from: String,
        topic: Option<String>,
        payload: String,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("control message of {0} bytes")]
    TooLarge(usize),
    #[error("bad control message: {0}")]
    Bad(String),
}

impl Control {
    /// The message with its length in front, for the stream.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a control message serializes");
        let mut out = Vec::with_capacity(4 + json.len());
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// What a message may not carry beyond its size: a NACK of more than [`MAX_NACK`].
    fn check(self) -> Result<Control, ControlError> {
        match &self {
            Control::Nack { seqs, .. } if seqs.len() > MAX_NACK => {
                Err(ControlError::Bad(format!("NACK of {} packets", seqs.len())))
            }
            _ => Ok(self),
        }
    }
}

/// Messages out of the bytes of a control stream, as they arrive.
#[derive(Debug, Default)]
pub struct ControlReader {
    buf: Vec<u8>,
}

impl ControlReader {
    /// Take bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if one has arrived; an error ends the stream (its framing
    /// is lost).
    pub fn next_message(&mut self) -> Result<Option<Control>, ControlError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_MESSAGE {
            return Err(ControlError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let parsed = serde_json::from_slice::<Control>(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        parsed
            .map_err(|e| ControlError::Bad(e.to_string()))?
            .check()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_split_anywhere_and_in_order() {
        let msgs = vec![
            Control::Hello {
                node: "a".into(),
                proof: "00".into(),
            },
            Control::Announce {
                room: "r".into(),
                track: "TR_1".into(),
                participant: "PA_1".into(),
                kind: Kind::Video,
                codec: "VP8".into(),
                layers: vec![
                    Layer {
                        rid: "q".into(),
                        flow: 1,
                    },
                    Layer {
                        rid: "f".into(),
                        flow: 3,
                    },
                ],
            },
            Control::Demand {
                room: "r".into(),
                track: "TR_1".into(),
                flows: vec![3],
            },
            Control::Nack {
                flow: 3,
                seqs: vec![1, 65_535],
            },
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(Control::encode).collect();
        for split in [1, 3, 7, bytes.len()] {
            let mut r = ControlReader::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(split) {
                r.push(chunk);
                while let Some(m) = r.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, msgs, "chunks of {split}");
        }
    }

    #[test]
    fn oversized_unknown_and_malformed_messages_are_errors() {
        let mut r = ControlReader::default();
        r.push(&(MAX_MESSAGE as u32 + 1).to_be_bytes());
        assert_eq!(
            r.next_message(),
            Err(ControlError::TooLarge(MAX_MESSAGE + 1))
        );
        for body in [
            &br#"{"type":"launch"}"#[..],
            b"{",
            br#"{"type":"keyframe"}"#,
        ] {
            let mut r = ControlReader::default();
            r.push(&(body.len() as u32).to_be_bytes());
            r.push(body);
            assert!(
                matches!(r.next_message(), Err(ControlError::Bad(_))),
                "{body:?}"
            );
        }
        let flood = Control::Nack {
            flow: 1,
            seqs: vec![0; MAX_NACK + 1],
        };
        let mut r = ControlReader::default();
        r.push(&flood.encode());
        assert!(matches!(r.next_message(), Err(ControlError::Bad(_))));
    }
}

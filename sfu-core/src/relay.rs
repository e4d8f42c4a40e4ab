//! Tracks across nodes (issue 34, ADR 0013), the shard's side. Sans-IO: the control plane
//! carries what this module emits over a relay link and feeds back what arrives.
//!
//! - **At a track's origin**, a relay tap ([`crate::Command::RelayTap`]) sends the layers
//!   another node demands, each its own flow ([`flow_of`]), as [`crate::Output::Relay`]:
//!   the publisher's RTP header fields and payload unchanged (the subscribers' rewriting
//!   happens at the far end, as for local ones), with the RFC 6464 level in a one-byte
//!   header extension of id [`LEVEL_EXT_ID`] — the relay's own convention, whatever the
//!   publisher negotiated. A tap counts in the origin's dynacast like a subscriber that
//!   takes exactly the tapped layers. A keyframe request from the far end
//!   ([`crate::Command::RelayKeyframe`]) goes to the publisher through the usual throttle.
//! - **At the far node**, the track belongs to a remote participant (no connection of its
//!   own, [`crate::Command::RelayPublish`]) and is fed by [`crate::Input::Relay`]: its
//!   subscribers — browsers, WHEP viewers, phones — get layer selection, rewriting,
//!   allocation, dynacast and speaker detection as for a local track. Its keyframe requests
//!   leave as [`crate::Event::RelayKeyframe`]; dynacast's [`crate::Event::PublisherLayers`]
//!   for it is the demand the control plane sends the origin.

use std::sync::Arc;
use std::time::Instant;

use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Frequency, Mid, Pt};

use crate::api::{Event, Output, RelayTransmit, RelayedTrack};
use crate::ids::TrackId;
use crate::packet::InPacket;
use crate::participant::Participant;
use crate::peers::Peers;
use crate::router::Router;
use crate::track::Track;

/// The header extension id that carries the audio level on a relay.
pub const LEVEL_EXT_ID: u8 = 1;
/// Layers a flow id can name per track.
const LAYER_BITS: u32 = 3;

/// The flow that carries layer `layer` of `track` from its origin.
pub fn flow_of(track: TrackId, layer: usize) -> u32 {
    ((track.0 as u32) << LAYER_BITS) | (layer as u32 & ((1 << LAYER_BITS) - 1))
}

/// The track and layer an origin's flow carries.
pub fn flow_track(flow: u32) -> (TrackId, usize) {
    (
        TrackId(u64::from(flow >> LAYER_BITS)),
        (flow & ((1 << LAYER_BITS) - 1)) as usize,
    )
}

/// A relayed track at the far node: the link it comes over and each layer's flow.
#[derive(Debug, Clone)]
pub(crate) struct RemoteTrack {
    pub link: u32,
    pub flows: Vec<u32>,
    /// Its codec as announced: the parameters of whatever payload type its packets carry.
    pub mime: String,
}

/// An origin's tap: the link and the layers it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tap {
    pub link: u32,
    pub layers: Vec<usize>,
}

/// A packet in the relay's RTP form (into `out`, cleared first).
pub(crate) fn encode(pkt: &InPacket, out: &mut Vec<u8>) {
    out.clear();
    let ext = pkt.audio_level.is_some();
    out.push(0x80 | if ext { 0x10 } else { 0 });
    out.push(*pkt.pt | if pkt.marker { 0x80 } else { 0 });
    out.extend_from_slice(&(pkt.seq as u16).to_be_bytes());
    out.extend_from_slice(&pkt.ts.to_be_bytes());
    out.extend_from_slice(&pkt.ssrc.to_be_bytes());
    if let Some(level) = pkt.audio_level {
        // RFC 8285 one-byte form: 0xBEDE, one word; id, length 0 (one byte), the level
        // (-dBov, 7 bits) with the voice-activity flag on top; padding.
        let v = u8::from(pkt.voice_activity.unwrap_or(false)) << 7;
        let level = (level.unsigned_abs()).min(127);
        out.extend_from_slice(&[0xbe, 0xde, 0, 1, LEVEL_EXT_ID << 4, v | level, 0, 0]);
    }
    out.extend_from_slice(&pkt.payload);
}

/// Origin: the taps of `track` (`tid`) that take layer `li` get `pkt` (nothing to do, and
/// nothing looked up, for a track without taps: the per-packet path calls this).
pub(crate) fn tap(peers: &mut Peers, track: &Track, tid: TrackId, li: usize, pkt: &InPacket) {
    for tap in track.taps.iter().filter(|t| t.layers.contains(&li)) {
        let mut contents = Vec::with_capacity(pkt.payload.len() + 20);
        encode(pkt, &mut contents);
        peers.stats.relay_packets_out += 1;
        peers.out.push_back(Output::Relay(RelayTransmit {
            link: tap.link,
            flow: flow_of(tid, li),
            contents,
        }));
    }
}

/// What a relayed packet carries (its sequence number not yet extended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relayed {
    pub ssrc: u32,
    pub seq: u16,
    pub pt: u8,
    pub ts: u32,
    pub marker: bool,
    pub level: Option<(i8, bool)>,
    pub payload: Arc<[u8]>,
}

/// Read a relayed packet; None when it is not one (counted by the caller).
pub(crate) fn decode(p: &[u8]) -> Option<Relayed> {
    if p.len() < 12 || p[0] >> 6 != 2 || p[0] & 0x20 != 0 {
        return None;
    }
    let mut at = 12 + 4 * usize::from(p[0] & 0x0f);
    let mut level = None;
    if p[0] & 0x10 != 0 {
        let head = p.get(at..at + 4)?;
        let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let body = p.get(at + 4..at + 4 + 4 * words)?;
        if head[..2] == [0xbe, 0xde] {
            let mut i = 0;
            while i < body.len() {
                let (id, len) = (body[i] >> 4, usize::from(body[i] & 0x0f) + 1);
                if id == 0 {
                    i += 1;
                    continue;
                }
                if id == LEVEL_EXT_ID && len == 1 {
                    let b = *body.get(i + 1)?;
                    level = Some((-((b & 0x7f) as i8), b & 0x80 != 0));
                }
                i += 1 + len;
            }
        }
        at += 4 + 4 * words;
    }
    let payload = p.get(at..)?;
    Some(Relayed {
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        seq: u16::from_be_bytes([p[2], p[3]]),
        pt: p[1] & 0x7f,
        ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        marker: p[1] & 0x80 != 0,
        level,
        payload: payload.into(),
    })
}

/// The payload parameters of a relayed track's codec (its MIME type as announced).
pub(crate) fn params_of(mime: &str, pt: u8) -> Option<PayloadParams> {
    let (codec, clock, channels, format) = match mime.to_ascii_lowercase().as_str() {
        "audio/opus" => (
            Codec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..Default::default()
            },
        ),
        "video/vp8" => (
            Codec::Vp8,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
        ),
        "video/vp9" => (
            Codec::Vp9,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
        ),
        "video/av1" => (
            Codec::Av1,
            Frequency::NINETY_KHZ,
            None,
            FormatParams::default(),
        ),
        "video/h264" => (
            Codec::H264,
            Frequency::NINETY_KHZ,
            None,
            FormatParams {
                packetization_mode: Some(1),
                level_asymmetry_allowed: Some(true),
                profile_level_id: Some(0x42e01f),
                ..Default::default()
            },
        ),
        _ => return None,
    };
    let spec = CodecSpec {
        codec,
        clock_rate: clock,
        channels,
        format,
    };
    Some(PayloadParams::new(Pt::from(pt), None, spec))
}

impl Router {
    /// Origin: the layers (`rids`; an empty rid for a track without simulcast) of `track`
    /// that `link` takes from now on; none removes the tap.
    pub(crate) fn relay_tap(&mut self, track: TrackId, link: u32, rids: &[String]) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        let mut layers: Vec<usize> = t
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                let rid = l.rid.map(|r| r.to_string()).unwrap_or_default();
                rids.contains(&rid)
            })
            .map(|(i, _)| i)
            .collect();
        // A track without simulcast has its one layer from its first packet on.
        if t.layers.is_empty() && rids.iter().any(String::is_empty) {
            layers.push(0);
        }
        t.taps.retain(|tap| tap.link != link);
        if !layers.is_empty() {
            t.taps.push(Tap { link, layers });
        }
    }

    /// Origin: another node asks for a keyframe of a flow it takes.
    pub(crate) fn relay_keyframe(&mut self, peers: &mut Peers, now: Instant, flow: u32) {
        let (tid, li) = flow_track(flow);
        if self.tracks.get(&tid).is_some_and(|t| !t.taps.is_empty()) {
            self.request_keyframe(peers, now, tid, li);
        }
    }

    /// Far node: a track of another node's participant, published here by a remote
    /// participant (made on its first track), fed by the link's flows.
    pub(crate) fn relay_publish(&mut self, peers: &mut Peers, now: Instant, r: RelayedTrack) {
        if params_of(&r.mime, 96).is_none() {
            return peers.fail(
                r.participant,
                crate::CommandError::BadSdp(format!("no relay for codec {}", r.mime)),
            );
        }
        if r.flows.len() != r.rids.len().max(1) || r.rids.len() > 1 << LAYER_BITS {
            return peers.fail(
                r.participant,
                crate::CommandError::Internal("a flow per layer".into()),
            );
        }
        let remote = self
            .participants
            .entry(r.participant)
            .or_insert_with(|| Participant::remote(r.room.clone()));
        if remote.room != r.room || remote.publisher.is_some() || remote.subscriber.is_some() {
            return peers.fail(r.participant, crate::CommandError::AlreadyJoined);
        }
        let mid = Mid::from(format!("r{}", remote.published.len()).as_str());
        remote.sources.insert(mid, r.source);
        let room = self.rooms.entry(r.room.clone()).or_default();
        if !room.participants.contains(&r.participant) {
            room.participants.push(r.participant);
        }
        let mime = r.mime.clone();
        self.publish_track(peers, now, r.participant, mid, r.kind, r.rids, Some(mime));
        let Some(tid) = self
            .participants
            .get(&r.participant)
            .and_then(|p| p.published.get(&mid).copied())
        else {
            return;
        };
        for (li, flow) in r.flows.iter().enumerate() {
            self.relay_flows.insert((r.link, *flow), (tid, li));
        }
        if let Some(t) = self.tracks.get_mut(&tid) {
            t.remote = Some(RemoteTrack {
                link: r.link,
                flows: r.flows,
                mime: r.mime,
            });
        }
    }

    /// Far node: a packet of a flow from `link`.
    pub(crate) fn on_relay(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        link: u32,
        flow: u32,
        contents: &[u8],
    ) {
        let (Some(&(tid, li)), Some(r)) = (self.relay_flows.get(&(link, flow)), decode(contents))
        else {
            peers.stats.relay_dropped += 1;
            return;
        };
        let Some(track) = self.tracks.get_mut(&tid).filter(|t| t.remote.is_some()) else {
            peers.stats.relay_dropped += 1;
            return;
        };
        // A layer's first packet, or a new SSRC on it (an encoder restart): its layer and
        // the publisher's SSRC cache learn it; its sequence space starts afresh.
        let mut li = li;
        if track.layers.get(li).and_then(|l| l.ssrc) != Some(r.ssrc) {
            let rid = track.layers.get(li).and_then(|l| l.rid);
            li = track.layer_index(rid, r.ssrc);
            if let Some(p) = self.participants.get_mut(&track.publisher) {
                p.ssrcs.insert(r.ssrc, (tid, li));
            }
        }
        // Extended next to the highest in-order number of the layer (ingest keeps it).
        let seq = crate::rewrite::extend_seq(track.layers[li].highest_seq, r.seq);
        let publisher = track.publisher;
        peers.stats.relay_packets_in += 1;
        let pkt = InPacket {
            ssrc: r.ssrc,
            seq,
            pt: Pt::from(r.pt),
            ts: r.ts,
            marker: r.marker,
            payload: r.payload,
            audio_level: r.level.map(|(l, _)| l),
            voice_activity: r.level.map(|(_, v)| v),
            arrival: now,
        };
        self.forward(peers, now, publisher, pkt);
    }

    /// Far node: a keyframe request for a relayed track goes to its origin.
    pub(crate) fn remote_keyframe(&self, peers: &mut Peers, tid: TrackId, li: usize) -> bool {
        let Some(remote) = self.tracks.get(&tid).and_then(|t| t.remote.as_ref()) else {
            return false;
        };
        if let Some(&flow) = remote.flows.get(li) {
            peers.stats.keyframe_requests += 1;
            peers.emit(Event::RelayKeyframe {
                link: remote.link,
                flow,
            });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(level: Option<i8>) -> InPacket {
        InPacket {
            ssrc: 0xdead_beef,
            seq: 0x1_fffe,
            pt: Pt::from(111),
            ts: 48_000,
            marker: true,
            payload: Arc::from(&b"opus frame"[..]),
            audio_level: level,
            voice_activity: level.map(|_| true),
            arrival: crate::test_clock::origin(),
        }
    }

    #[test]
    fn a_relayed_packet_reads_back_with_its_level() {
        for level in [None, Some(-30), Some(-127)] {
            let mut out = Vec::new();
            encode(&packet(level), &mut out);
            let r = decode(&out).unwrap();
            assert_eq!(
                (r.ssrc, r.seq, r.pt, r.ts, r.marker),
                (0xdead_beef, 0xfffe, 111, 48_000, true)
            );
            assert_eq!(&r.payload[..], b"opus frame");
            assert_eq!(r.level, level.map(|l| (l, true)));
        }
        assert_eq!(decode(&[0x80; 11]), None);
        assert_eq!(
            decode(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 9]),
            None
        );
    }

    #[test]
    fn flows_name_track_and_layer_and_sequence_numbers_extend() {
        let f = flow_of(TrackId(12), 2);
        assert_eq!(flow_track(f), (TrackId(12), 2));
        let extend = crate::rewrite::extend_seq;
        assert_eq!(extend(None, 7), 7);
        assert_eq!(extend(Some(0xfffe), 1), 0x1_0001);
        assert_eq!(extend(Some(0x1_0001), 0xfffe), 0xfffe);
        assert_eq!(extend(Some(0x5_0010), 0x0011), 0x5_0011);
    }

    #[test]
    fn codecs_of_announced_tracks() {
        for (mime, codec) in [
            ("audio/opus", Codec::Opus),
            ("video/VP8", Codec::Vp8),
            ("video/H264", Codec::H264),
        ] {
            assert_eq!(params_of(mime, 96).unwrap().spec().codec, codec);
        }
        assert!(params_of("video/theora", 96).is_none());
    }
}

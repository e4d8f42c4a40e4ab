//! A published track and its simulcast layers: what arrives (rates per layer and temporal
//! layer, picture sizes, activity), which layer a subscription should take
//! ([`Track::target_within`]), and what the allocator may choose from
//! ([`Track::demand`]).

use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt, Rid};

use crate::ids::{ParticipantId, RoomId, TrackId, TrackKind};

/// A layer counts as active while packets arrived within this window.
const LAYER_ACTIVE: Duration = Duration::from_millis(1_000);

/// Allocation ranks combine a spatial layer (simulcast rank) with the VP8 temporal layers
/// up to one: `spatial * 4 + tid`, where tid 3 means every frame (also a layer without
/// temporal layers). So frame rate is dropped before resolution, and `u8::MAX` allows
/// everything.
pub(crate) const ALL_FRAMES: u8 = 3;
pub(crate) fn compose(spatial: u8, tid: u8) -> u8 {
    spatial.min(62) * 4 + tid.min(ALL_FRAMES)
}
pub(crate) fn spatial_of(rank: u8) -> u8 {
    rank / 4
}
pub(crate) fn temporal_of(rank: u8) -> u8 {
    rank % 4
}

#[derive(Debug)]
pub(crate) struct Layer {
    pub rid: Option<Rid>,
    pub ssrc: Option<u32>,
    /// Quality order: higher is better.
    pub rank: u8,
    pub last_seen: Option<Instant>,
    pub highest_seq: Option<u64>,
    pub paused: bool,
    /// Measured bitrate (EWMA over 500 ms windows), bits per second.
    pub bps: u64,
    /// Picture size from the layer's last VP8 keyframe (RFC 6386 §9.1), if seen.
    pub size: Option<(u16, u16)>,
    /// Dynacast: the publisher was told to stop encoding this layer. It still counts for
    /// allocation (at its last measured rate), so that a subscriber can ask for it back.
    pub suspended: bool,
    /// Dynacast: since when no subscriber needs this layer.
    pub unneeded_since: Option<Instant>,
    /// VP8 temporal layers: the highest TID seen (None: no temporal layers), and the
    /// measured rate of each temporal layer alone.
    pub max_tid: Option<u8>,
    pub tid_bps: [u64; 3],
    /// Measured packet rate (EWMA like `bps`), packets per second.
    pub pps: u32,
    /// Recent packets (video), for answering subscribers' NACKs ([`crate::rtx`]).
    pub store: crate::rtx::LayerStore,
    tid_window: [u64; 3],
    window_bytes: u64,
    window_packets: u32,
    window_start: Option<Instant>,
}

impl Layer {
    fn new(rid: Option<Rid>, rank: u8) -> Self {
        Self {
            rid,
            ssrc: None,
            rank,
            last_seen: None,
            highest_seq: None,
            paused: false,
            bps: 0,
            size: None,
            suspended: false,
            unneeded_since: None,
            max_tid: None,
            tid_bps: [0; 3],
            pps: 0,
            store: crate::rtx::layer_store(),
            tid_window: [0; 3],
            window_bytes: 0,
            window_packets: 0,
            window_start: None,
        }
    }

    pub fn active(&self, now: Instant) -> bool {
        !self.paused
            && self
                .last_seen
                .is_some_and(|t| now.saturating_duration_since(t) < LAYER_ACTIVE)
    }

    /// Count `bytes` of payload of temporal layer `tid` (if marked) arriving at `now`
    /// into the bitrate measurement.
    pub(crate) fn measure(&mut self, now: Instant, bytes: usize, tid: Option<u8>) {
        if let Some(t) = tid.filter(|t| *t < 3) {
            self.max_tid = Some(self.max_tid.map_or(t, |m| m.max(t)));
            self.tid_window[t as usize] += bytes as u64;
        }
        // After a silence (the layer was paused) the measurement restarts rather than
        // averaging the silence in: the rate is the layer's rate while it flows.
        if self
            .window_start
            .is_some_and(|s| now.saturating_duration_since(s) > Duration::from_secs(2))
        {
            self.window_start = None;
            self.window_bytes = 0;
            self.window_packets = 0;
        }
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes as u64;
        self.window_packets += 1;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= Duration::from_millis(500) {
            let inst = self.window_bytes * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
            self.bps = if self.bps == 0 {
                inst
            } else {
                (self.bps * 3 + inst) / 4
            };
            for (bps, w) in self.tid_bps.iter_mut().zip(self.tid_window.iter_mut()) {
                let inst = *w * 8 * 1_000_000 / elapsed.as_micros().max(1) as u64;
                *bps = if *bps == 0 {
                    inst
                } else {
                    (*bps * 3 + inst) / 4
                };
                *w = 0;
            }
            let pps = (u64::from(self.window_packets) * 1_000_000
                / elapsed.as_micros().max(1) as u64) as u32;
            self.pps = if self.pps == 0 {
                pps
            } else {
                (self.pps * 3 + pps) / 4
            };
            self.window_bytes = 0;
            self.window_packets = 0;
            self.window_start = Some(now);
        }
    }
}

pub(crate) struct Track {
    pub room: RoomId,
    pub publisher: ParticipantId,
    pub mid: Mid,
    pub kind: TrackKind,
    /// What the publisher says it is (sets its allocation priority).
    pub source: crate::ids::TrackSource,
    /// The sid its publisher's client gave it (LiveKit's), if any.
    pub sid: Option<String>,
    pub layers: Vec<Layer>,
    /// The publisher's payload types seen so far, with their parameters.
    pub codecs: Vec<(Pt, PayloadParams)>,
    pub subscribers: Vec<ParticipantId>,
    /// Muted by an admin: nothing is forwarded.
    pub muted: bool,
    /// Bumped when forwarding resumes after a mute: subscriptions of an older epoch
    /// switch afresh (keyframe for video), so that the dropped stretch leaves no
    /// sequence-number gap.
    pub epoch: u32,
    /// Origin: the relay links that take layers of it ([`crate::relay`]).
    pub taps: Vec<crate::relay::Tap>,
    /// Far node: where a relayed track comes from.
    pub remote: Option<crate::relay::RemoteTrack>,
}

/// Width assumed for a layer whose size is unknown (no VP8 keyframe seen): browsers'
/// usual q/h/f of a 720p camera.
fn nominal_width(rank: u8) -> u32 {
    match rank {
        0 => 320,
        1 => 640,
        _ => 1280,
    }
}

/// Rank of a simulcast rid: the names browsers and our web client use, else list order.
fn rid_rank(rid: &str, index: usize) -> u8 {
    match rid {
        "q" | "l" | "low" | "0" => 0,
        "h" | "m" | "mid" | "1" => 1,
        "f" | "high" | "2" => 2,
        _ => index.min(62) as u8,
    }
}

impl Track {
    pub fn new(
        _id: TrackId,
        room: RoomId,
        publisher: ParticipantId,
        mid: Mid,
        kind: TrackKind,
        rids: &[String],
    ) -> Self {
        let layers = rids
            .iter()
            .enumerate()
            .map(|(i, r)| Layer::new(Some(Rid::from(r.as_str())), rid_rank(r, i)))
            .collect();
        Self {
            room,
            publisher,
            mid,
            kind,
            source: crate::ids::TrackSource::Unknown,
            sid: None,
            layers,
            codecs: Vec::new(),
            subscribers: Vec::new(),
            muted: false,
            epoch: 0,
            taps: Vec::new(),
            remote: None,
        }
    }

    /// The layer a packet of `ssrc` (with `rid`, from str0m) belongs to; created if new.
    pub fn layer_index(&mut self, rid: Option<Rid>, ssrc: u32) -> usize {
        let found = match rid {
            Some(r) => self.layers.iter().position(|l| l.rid == Some(r)),
            None => self.layers.iter().position(|l| l.rid.is_none()),
        };
        let i = found.unwrap_or_else(|| {
            let index = self.layers.len();
            let rank = rid.map_or(0, |r| rid_rank(&r, index));
            let mut layer = Layer::new(rid, rank);
            // As long as the track's other layers keep theirs (`keep_for`).
            if let Some(age) = self.layers.iter().map(|l| l.store.age()).max() {
                layer.store.set_age(age);
            }
            self.layers.push(layer);
            index
        });
        if self.layers[i].ssrc != Some(ssrc) {
            // A new SSRC on the layer (encoder restart): its sequence space starts afresh.
            self.layers[i].ssrc = Some(ssrc);
            self.layers[i].highest_seq = None;
            self.layers[i].store.clear();
        }
        i
    }

    /// Keep each layer's packets for at least `age` (a subscriber that far away).
    pub fn keep_for(&mut self, age: std::time::Duration) {
        for l in &mut self.layers {
            if l.store.age() < age {
                l.store.set_age(age);
            }
        }
    }

    pub fn layer_of_ssrc(&self, ssrc: u32) -> Option<usize> {
        self.layers.iter().position(|l| l.ssrc == Some(ssrc))
    }

    pub fn set_paused(&mut self, rid: Option<Rid>, paused: bool) {
        if let Some(l) = self.layers.iter_mut().find(|l| l.rid == rid) {
            l.paused = paused;
        }
    }

    /// The best layer currently flowing.
    pub fn target_layer(&self, now: Instant) -> Option<usize> {
        self.target_within(now, Some(u8::MAX))
    }

    /// The best layer flowing whose spatial rank is at most that of the allocation rank
    /// `max_rank` (None: paused).
    pub fn target_within(&self, now: Instant, max_rank: Option<u8>) -> Option<usize> {
        let max = spatial_of(max_rank?);
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.active(now) && l.rank <= max)
            .max_by_key(|(_, l)| l.rank)
            .map(|(i, _)| i)
    }

    /// The layer a subscriber allowed up to `max_rank` needs sent: the best one the
    /// publisher has declared or sent (flowing or not). Dynacast keeps it on.
    pub fn needed_within(&self, max_rank: Option<u8>) -> Option<usize> {
        let max = spatial_of(max_rank?);
        let lowest = self.layers.iter().map(|l| l.rank).min()?;
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.rank <= max.max(lowest))
            .max_by_key(|(_, l)| l.rank)
            .map(|(i, _)| i)
    }

    /// What the allocator needs: the layers with measured rates that flow (or that
    /// dynacast switched off and can switch back on), no higher than the subscriber's
    /// `preferred` cap, and up to the first one at least as wide as its tile (`viewport`;
    /// none when hidden).
    pub fn demand(
        &self,
        now: Instant,
        current: Option<u8>,
        viewport: Option<(u32, u32, bool)>,
        preferred: Option<u8>,
    ) -> crate::allocator::VideoDemand {
        // (allocation rank, rate, width): each spatial layer with temporal layers offers
        // its frame-rate steps first (T0, T0+T1), then all its frames.
        let mut layers: Vec<(u8, u64, u32)> = Vec::new();
        for l in self
            .layers
            .iter()
            .filter(|l| (l.active(now) || l.suspended) && l.bps > 0)
        {
            let width = l
                .size
                .map_or_else(|| nominal_width(l.rank), |s| u32::from(s.0));
            if let Some(m) = l.max_tid.filter(|m| *m > 0) {
                let mut sum = 0;
                for t in 0..m {
                    sum += l.tid_bps[t as usize];
                    if sum > 0 {
                        layers.push((compose(l.rank, t), sum, width));
                    }
                }
            }
            layers.push((compose(l.rank, ALL_FRAMES), l.bps, width));
        }
        layers.sort_unstable();
        if let Some(p) = preferred {
            // The cap keeps at least the lowest layer.
            let keep = layers
                .iter()
                .filter(|l| spatial_of(l.0) <= p)
                .count()
                .max(1);
            layers.truncate(keep);
        }
        if let Some((w, _, visible)) = viewport {
            if !visible {
                layers.clear();
            } else if let Some(i) = layers.iter().position(|l| l.2 * 10 >= w * 9) {
                // The smallest layer that covers the tile (10 % slack), all its frames.
                let s = spatial_of(layers[i].0);
                layers.retain(|l| spatial_of(l.0) <= s);
            }
        }
        crate::allocator::VideoDemand {
            layers: layers.into_iter().map(|l| (l.0, l.1)).collect(),
            current,
            priority: 0,
        }
    }
}

#[cfg(test)]
impl Track {
    /// A video track of publisher 1 in room "r" with these simulcast rids.
    pub(crate) fn test_video(rids: &[&str]) -> Self {
        let rids: Vec<String> = rids.iter().map(|r| r.to_string()).collect();
        Self::new(
            TrackId(1),
            RoomId::from("r"),
            ParticipantId(1),
            Mid::from("1"),
            TrackKind::Video,
            &rids,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_best_active_layer() {
        let t0 = crate::test_clock::origin();
        let mut t = Track::test_video(&["q", "h", "f"]);
        assert_eq!(t.target_layer(t0), None);
        let q = t.layer_index(Some(Rid::from("q")), 10);
        t.layers[q].last_seen = Some(t0);
        assert_eq!(t.target_layer(t0), Some(q));
        let f = t.layer_index(Some(Rid::from("f")), 30);
        t.layers[f].last_seen = Some(t0);
        assert_eq!(t.target_layer(t0), Some(f));
        t.set_paused(Some(Rid::from("f")), true);
        assert_eq!(t.target_layer(t0), Some(q));
        // q goes stale after a second without packets
        assert_eq!(t.target_layer(t0 + Duration::from_millis(1_500)), None);
        // unknown rid names rank by order
        assert_eq!(rid_rank("zz", 1), 1);
    }

    proptest::proptest! {
        /// The layer selector: the target is the best flowing layer allowed, and a layer is
        /// only ever chosen when it flows.
        #[test]
        fn the_target_is_the_best_flowing_layer_allowed(
            flowing in proptest::collection::vec(proptest::bool::ANY, 1..5),
            max in proptest::option::of(0u8..=255),
        ) {
            let t0 = crate::test_clock::origin();
            let rids: Vec<String> = (0..flowing.len()).map(|i| format!("r{i}")).collect();
            let names: Vec<&str> = rids.iter().map(String::as_str).collect();
            let mut t = Track::test_video(&names);
            for (i, on) in flowing.iter().enumerate() {
                if *on {
                    let li = t.layer_index(Some(Rid::from(rids[i].as_str())), 100 + i as u32);
                    t.layers[li].last_seen = Some(t0);
                }
            }
            let got = t.target_within(t0, max);
            let allowed = |l: &Layer| max.is_some_and(|m| l.rank <= spatial_of(m));
            let best = t.layers.iter().enumerate().filter(|(_, l)| l.active(t0) && allowed(l)).max_by_key(|(_, l)| l.rank).map(|(i, _)| i);
            proptest::prop_assert_eq!(got, best);
            if let Some(i) = got {
                proptest::prop_assert!(t.layers[i].active(t0));
            }
        }
    }
}

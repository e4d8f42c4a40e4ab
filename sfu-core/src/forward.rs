//! The forwarding graph: subscriptions that feed one outgoing stream each from a
//! published track ([`crate::track`]).
//!
//! Per packet: find its track and layer from the SSRC, decide per subscriber (forward,
//! drop, or switch to this layer on a keyframe), rewrite the header for continuity
//! ([`crate::rewrite`]) and write it into the subscriber's str0m send stream, noting
//! what it wrote in the subscription's log for NACK repair ([`crate::rtx`]). The payload
//! is shared (`Arc`), never copied per subscriber.

use std::time::Instant;

use str0m::format::{Codec, PayloadParams};
use str0m::media::{Mid, Pt};
use str0m::rtp::Vp8Descriptor;
use str0m::rtp::{ExtensionValues, RtpWrite};

use crate::ids::{ParticipantId, PcKind, TrackId, TrackKind};
use crate::keyframe::starts_keyframe;
use crate::packet::InPacket;
use crate::pc::{Pc, PcFailure};
use crate::peers::Peers;
use crate::rewrite::{InHeader, OutHeader, Rewriter};
use crate::router::Router;
use crate::rtx::{Sent, SentLog};
pub(crate) use crate::track::Track;
use crate::track::{compose, spatial_of, temporal_of, ALL_FRAMES};

/// One outgoing stream: a track as one subscriber receives it.
pub(crate) struct Subscription {
    pub track: TrackId,
    pub mid: Mid,
    /// Set once the subscriber answered the offer that added this m-line.
    pub ready: bool,
    rewriter: Rewriter,
    /// The track epoch this subscription's source belongs to.
    epoch: u32,
    /// The highest layer rank the allocator lets through; None = paused.
    pub max_rank: Option<u8>,
    /// When the allocator last lowered `max_rank` (upgrades wait
    /// [`crate::allocator::UPGRADE_HOLD`] after).
    pub lowered_at: Option<Instant>,
    /// The outgoing str0m stream is set up (at the first write).
    pub set_up: bool,
    /// What this (video) stream wrote, for answering NACKs.
    pub sent: SentLog,
    /// The subscriber's tile for this track: (width, height, visible).
    pub viewport: Option<(u32, u32, bool)>,
    /// Publisher payload type → subscriber payload type (None: subscriber lacks the codec).
    pt_map: Vec<(Pt, Option<Pt>)>,
    /// The subscriber's own cap on the spatial layer rank (None: no cap).
    pub preferred: Option<u8>,
    /// The highest VP8 temporal layer forwarded now ([`ALL_FRAMES`]: every frame). It
    /// moves toward the allocation's at frame starts: down at once, up on a layer-sync
    /// frame or a keyframe.
    pub tid_cap: u8,
    /// For stats: layer switches and pauses so far, the allocated rate, and payload
    /// bytes forwarded since the last stats period.
    pub switches: u32,
    pub pauses: u32,
    pub allocated_bps: u64,
    pub sent_bytes: u64,
    /// When a speaker view last moved this (video) stream to another track, until the
    /// new track's first packet goes out ([`crate::Event::SpeakerViewSwitched`]).
    pub retargeted_at: Option<Instant>,
}

impl Subscription {
    pub fn new(
        track: TrackId,
        mid: Mid,
        kind: TrackKind,
        initial_seq: u16,
        initial_ts: u32,
    ) -> Self {
        let clock = match kind {
            TrackKind::Audio => 48_000,
            TrackKind::Video => 90_000,
        };
        Self {
            track,
            mid,
            ready: false,
            rewriter: Rewriter::new(clock, initial_seq, initial_ts),
            epoch: 0,
            max_rank: Some(u8::MAX),
            lowered_at: None,
            set_up: false,
            sent: crate::rtx::sent_log(None),
            viewport: None,
            pt_map: Vec::new(),
            preferred: None,
            tid_cap: ALL_FRAMES,
            switches: 0,
            pauses: 0,
            allocated_bps: 0,
            sent_bytes: 0,
            retargeted_at: None,
        }
    }

    /// Feed this outgoing stream from another track (WHEP speaker following): the next
    /// packet it takes starts a new source (on a keyframe), continuing the numbering.
    /// `now` for a video stream: its switch is measured.
    pub fn retarget(&mut self, track: TrackId, track_epoch: u32, now: Option<Instant>) {
        self.retargeted_at = now;
        self.track = track;
        self.epoch = track_epoch.wrapping_sub(1);
        self.pt_map.clear();
    }

    /// The allocation rank of what this subscription receives now (its layer, and the
    /// temporal cap where the layer has temporal layers); None before its first layer.
    pub(crate) fn current_rank(&self, track: &Track) -> Option<u8> {
        let i = track.layer_of_ssrc(self.rewriter.source_ssrc()?)?;
        let l = &track.layers[i];
        Some(compose(
            l.rank,
            if l.max_tid.is_some() {
                self.tid_cap
            } else {
                ALL_FRAMES
            },
        ))
    }

    /// The SSRC currently feeding this subscription.
    pub fn source_layer(&self) -> Option<u32> {
        self.rewriter.source_ssrc()
    }

    /// The subscriber's payload type for the publisher's `pt` (None: the subscriber
    /// lacks the codec), looked up once per publisher payload type.
    fn out_pt(&mut self, pc: &Pc, pt: Pt, params: &PayloadParams) -> Option<Pt> {
        if let Some((_, o)) = self.pt_map.iter().find(|(p, _)| *p == pt) {
            return *o;
        }
        let o = pc.rtc.media(self.mid).and_then(|m| {
            m.remote_pts().iter().copied().find(|rp| {
                pc.rtc
                    .codec_config()
                    .find(|c| c.pt() == *rp)
                    .is_some_and(|c| same_codec(c, params))
            })
        });
        self.pt_map.push((pt, o));
        o
    }
}

/// What to do with one packet for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerDecision {
    Drop,
    Forward,
    SwitchTo,
}

/// The per-subscriber decision. `current` is the SSRC feeding the subscription; the packet
/// is of `ssrc`, on the target layer or not. Video switches only on an in-order keyframe
/// (so that no frame that depends on a missed one is ever sent); audio on any packet.
pub(crate) fn decide(
    kind: TrackKind,
    current: Option<u32>,
    ssrc: u32,
    is_target: bool,
    keyframe: bool,
    in_order: bool,
) -> LayerDecision {
    if current == Some(ssrc) {
        LayerDecision::Forward
    } else if is_target && (kind == TrackKind::Audio || (keyframe && in_order)) {
        LayerDecision::SwitchTo
    } else {
        LayerDecision::Drop
    }
}

fn same_codec(a: &PayloadParams, b: &PayloadParams) -> bool {
    let (sa, sb) = (a.spec(), b.spec());
    if sa.codec != sb.codec {
        return false;
    }
    if sa.codec == Codec::H264 {
        return sa.format.packetization_mode.unwrap_or(0)
            == sb.format.packetization_mode.unwrap_or(0);
    }
    true
}

/// What the per-subscription decision needs to know of one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    pub ssrc: u32,
    /// The layer's index in its track.
    pub li: usize,
    pub video: bool,
    pub in_order: bool,
    pub keyframe: bool,
    /// VP8: the packet starts a frame.
    pub frame_start: bool,
    /// VP8: the temporal layer and its layer-sync bit.
    pub temporal: Option<(u8, bool)>,
}

/// What ingest learned of one incoming packet: where it belongs and what it is.
pub(crate) struct Ingested {
    pub tid: TrackId,
    pub pt: Pt,
    pub params: PayloadParams,
    pub facts: Facts,
    pub inh: InHeader,
    pub vp8: Option<Vp8Descriptor>,
}

/// What one subscription does with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Not the layer this subscription takes now.
    DropLayer,
    /// A frame of a temporal layer above the subscription's cap: skipped without a hole.
    DropTemporal,
    Forward,
    /// Start taking this layer (a keyframe of it, or any audio packet).
    SwitchTo,
}

/// The decision for one subscription and one packet, and the subscription state that
/// follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub action: Action,
    pub epoch: u32,
    pub tid_cap: u8,
    /// The layer this subscription waits for a keyframe of (video).
    pub keyframe_of: Option<usize>,
}

/// What of a subscription the decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubView {
    pub max_rank: Option<u8>,
    pub epoch: u32,
    /// The SSRC feeding the subscription now.
    pub source: Option<u32>,
    pub tid_cap: u8,
}

impl Subscription {
    pub(crate) fn view(&self) -> SubView {
        SubView {
            max_rank: self.max_rank,
            epoch: self.epoch,
            source: self.rewriter.source_ssrc(),
            tid_cap: self.tid_cap,
        }
    }
}

/// The per-subscription decision: pure, from the track, the subscription and the packet.
/// `target` is the layer the subscription should take now (see [`Track::target_within`]).
pub(crate) fn route(track: &Track, sub: SubView, pkt: &Facts, target: Option<usize>) -> Route {
    let ssrc = pkt.ssrc;
    let mut epoch = sub.epoch;
    if pkt.video && target.is_none() && epoch == track.epoch && sub.source.is_some() {
        // Paused: what is dropped now would leave a sequence gap, so resuming starts
        // afresh (on a keyframe), as after a mute.
        epoch = track.epoch.wrapping_sub(1);
    }
    let current = if epoch == track.epoch {
        sub.source
    } else {
        None
    };
    let keyframe_of = target
        .filter(|_| pkt.video)
        .filter(|t| current != track.layers[*t].ssrc);
    let decision = decide(
        track.kind,
        current,
        ssrc,
        target == Some(pkt.li),
        pkt.keyframe,
        pkt.in_order,
    );
    let mut tid_cap = sub.tid_cap;
    let mut action = match decision {
        LayerDecision::Drop => Action::DropLayer,
        LayerDecision::Forward => Action::Forward,
        LayerDecision::SwitchTo => Action::SwitchTo,
    };
    if let (Some((tid, sync)), Some(t)) = (
        pkt.temporal,
        target.filter(|_| decision != LayerDecision::Drop),
    ) {
        // The temporal layers this subscriber's allocation allows of the layer it gets:
        // all frames of a layer below the allowed one.
        let max = sub.max_rank.unwrap_or(0);
        let want = if track.layers[t].rank < spatial_of(max) {
            ALL_FRAMES
        } else {
            temporal_of(max)
        };
        if decision == LayerDecision::SwitchTo && pkt.keyframe {
            tid_cap = want;
        } else if pkt.frame_start && pkt.in_order {
            if want < tid_cap {
                tid_cap = want;
            } else if want > tid_cap && tid == tid_cap + 1 && sync {
                // One layer up, on a frame that references only the base layer.
                tid_cap = if tid >= track.layers[t].max_tid.unwrap_or(0) {
                    want
                } else {
                    tid
                };
            }
        }
        if tid > tid_cap && decision == LayerDecision::Forward {
            action = Action::DropTemporal;
        }
    }
    if action == Action::SwitchTo {
        epoch = track.epoch;
    }
    Route {
        action,
        epoch,
        tid_cap,
        keyframe_of,
    }
}

/// What one subscription makes of one packet: its per-packet step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Not this subscription's layer now.
    OtherLayer,
    /// A frame of a temporal layer above the subscription's cap, skipped without a hole.
    AboveTemporalCap,
    /// Refused by the rewriter (a packet from before the current source's start, say).
    Refused,
    /// Send it with this header. `switched`: the subscription took this packet's layer
    /// now (video), and whether it had a layer before (a switch, not a start).
    Send {
        out: OutHeader,
        switched: Option<bool>,
    },
}

impl Subscription {
    /// The per-packet step: which layer to take (from the track and this subscription's
    /// allocation), temporal filtering, and the rewrite into this stream's numbering.
    /// Returns the step and, for video, the layer this subscription waits for a keyframe
    /// of (the caller asks the publisher, once per packet).
    pub(crate) fn on_packet(
        &mut self,
        track: &Track,
        facts: &Facts,
        inh: &InHeader,
        now: Instant,
    ) -> (Step, Option<usize>) {
        let target = if facts.video {
            track.target_within(now, self.max_rank)
        } else {
            track.target_layer(now)
        };
        self.step(track, facts, inh, target, now)
    }

    /// [`Subscription::on_packet`] with the layer to take already chosen: the forwarding
    /// loop chooses an audio track's once per packet, not once per subscriber.
    pub(crate) fn step(
        &mut self,
        track: &Track,
        facts: &Facts,
        inh: &InHeader,
        target: Option<usize>,
        now: Instant,
    ) -> (Step, Option<usize>) {
        let r = route(track, self.view(), facts, target);
        self.epoch = r.epoch;
        self.tid_cap = r.tid_cap;
        let step = match r.action {
            Action::DropLayer => Step::OtherLayer,
            Action::DropTemporal => {
                self.rewriter.skip(inh);
                Step::AboveTemporalCap
            }
            Action::Forward => match self.rewriter.rewrite(inh, now) {
                Ok(out) => Step::Send {
                    out,
                    switched: None,
                },
                Err(_) => Step::Refused,
            },
            Action::SwitchTo => {
                let switched = facts.video.then(|| self.rewriter.source_ssrc().is_some());
                if switched == Some(true) {
                    self.switches += 1;
                }
                Step::Send {
                    out: self.rewriter.switch_to(inh, now),
                    switched,
                }
            }
        };
        (step, r.keyframe_of)
    }
}

impl crate::api::ShardStats {
    /// A packet one subscription did not send, by why.
    pub(crate) fn count_not_forwarded(&mut self, step: &Step) {
        self.rtp_not_forwarded += 1;
        match step {
            Step::OtherLayer => self.dropped_layer += 1,
            Step::AboveTemporalCap => self.dropped_temporal += 1,
            Step::Refused | Step::Send { .. } => {}
        }
    }

    /// A packet written to one subscriber.
    pub(crate) fn count_forwarded(&mut self, video: bool, len: u64) {
        self.rtp_forwarded += 1;
        if video {
            self.video_packets_out += 1;
            self.video_bytes_out += len;
        } else {
            self.audio_packets_out += 1;
            self.audio_bytes_out += len;
        }
    }
}

/// The outgoing packet for one subscriber: the publisher's payload (shared, not copied)
/// under the subscription's header.
fn rtp_write(
    pt: Pt,
    out: &OutHeader,
    pkt: &InPacket,
    ext: &ExtensionValues,
    video: bool,
    vp8: Option<&Vp8Descriptor>,
) -> RtpWrite {
    let w = RtpWrite::new(pt, out.seq.into(), out.ts, pkt.arrival, pkt.payload.clone())
        .marker(pkt.marker)
        .nackable(video)
        .ext_vals(ext.clone());
    match vp8.and_then(|d| crate::vp8::continuity_patch(d, out.pic, out.tl0)) {
        Some(patch) => w.vp8_patch(patch),
        None => w,
    }
}

/// Write one packet into a subscriber's outgoing stream (setting the stream up at the
/// first write). The packet leaves when the shard advances the connection's clock at
/// the end of the turn.
fn write(pc: &mut Pc, sub: &mut Subscription, w: RtpWrite) -> Result<bool, PcFailure> {
    let mid = sub.mid;
    let set_up = !sub.set_up;
    let wrote = pc.guarded(|rtc| {
        rtc.direct_api()
            .stream_tx_by_mid(mid, None)
            .map(|tx| {
                if set_up {
                    // Forwarded media keeps the publisher's pacing; the allocator, not a
                    // queue, keeps it within the estimate.
                    tx.set_unpaced(true);
                    crate::rtx::set_up(tx);
                }
                tx.write_rtp(w)
            })
            .is_some()
    })?;
    sub.set_up |= wrote;
    Ok(wrote)
}

/// Answer a subscriber's NACKs on one stream (`mid`) from its log and the layers'
/// stores; returns how many packets were written again and how many were no longer
/// known.
fn resend(
    pc: &mut Pc,
    sub: &Subscription,
    track: &Track,
    seq_nos: &[str0m::rtp::SeqNo],
    now: Instant,
) -> Result<(u64, u64), PcFailure> {
    let mid = sub.mid;
    pc.guarded(|rtc| {
        let mut api = rtc.direct_api();
        let mut tx = api.stream_tx_by_mid(mid, None);
        let mut found = 0;
        for &seq in seq_nos {
            let known = sub.sent.get(*seq, now).and_then(|sent| {
                let li = track.layer_of_ssrc(sent.ssrc)?;
                Some((sent, track.layers[li].store.get(sent.src_seq, now)?))
            });
            if let (Some((sent, stored)), Some(tx)) = (known, tx.as_deref_mut()) {
                tx.write_resend(crate::rtx::resend_write(*seq, sent, stored, now));
                found += 1;
            }
        }
        (found, seq_nos.len() as u64 - found)
    })
}

impl Router {
    /// One packet from a publisher, to every subscriber of its track.
    pub(crate) fn forward(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        pid: ParticipantId,
        pkt: InPacket,
    ) {
        let Some(ing) = self.ingest(peers, now, pid, &pkt) else {
            return;
        };
        let Some(track) = self.tracks.get(&ing.tid) else {
            return;
        };
        let ext = ExtensionValues {
            audio_level: pkt.audio_level,
            voice_activity: pkt.voice_activity,
            ..Default::default()
        };
        let mut want_keyframe: Vec<usize> = Vec::new();
        // The longest a new stream's subscriber may ask for a packet back.
        let mut keep_for = None;
        // Audio has one target for every subscriber; video's depends on each allocation.
        let audio_target = if ing.facts.video {
            None
        } else {
            track.target_layer(now)
        };
        for &sid in &track.subscribers {
            let Some(sp) = self.participants.get_mut(&sid) else {
                continue;
            };
            let (Some(sub), Some(spc)) = (sp.subs.get_mut(&ing.tid), sp.subscriber.as_mut()) else {
                continue;
            };
            if !sub.ready || !spc.connected || spc.is_failed() {
                continue;
            }
            let (step, keyframe_of) = if ing.facts.video {
                sub.on_packet(track, &ing.facts, &ing.inh, now)
            } else {
                sub.step(track, &ing.facts, &ing.inh, audio_target, now)
            };
            if let Some(t) = keyframe_of.filter(|t| !want_keyframe.contains(t)) {
                want_keyframe.push(t);
            }
            let out = match step {
                Step::Send { out, switched } => {
                    if let Some(was_on_a_layer) = switched {
                        if let Some(at) = sub.retargeted_at.take() {
                            peers.emit(crate::api::Event::SpeakerViewSwitched {
                                participant: sid,
                                after: now.saturating_duration_since(at),
                            });
                        }
                        peers.stats.layer_switches += u64::from(was_on_a_layer);
                        peers.emit(crate::api::Event::SubscriptionChanged {
                            participant: sid,
                            track: ing.tid,
                            layer: Some(
                                track.layers[ing.facts.li]
                                    .rid
                                    .map(|r| r.to_string())
                                    .unwrap_or_default(),
                            ),
                            paused: false,
                        });
                    }
                    out
                }
                other => {
                    peers.stats.count_not_forwarded(&other);
                    continue;
                }
            };
            let Some(out_pt) = sub.out_pt(spc, ing.pt, &ing.params) else {
                peers.stats.rtp_not_forwarded += 1;
                continue;
            };
            let w = rtp_write(out_pt, &out, &pkt, &ext, ing.facts.video, ing.vp8.as_ref());
            if !sub.set_up && ing.facts.video {
                let age = crate::rtx::age_for(sp.rtt);
                sub.sent.set_age(age);
                keep_for = keep_for.max(Some(age));
            }
            match write(spc, sub, w) {
                Ok(true) => {
                    if ing.facts.video {
                        let sent = Sent {
                            ssrc: ing.facts.ssrc,
                            src_seq: pkt.seq,
                            pt: out_pt,
                            ts: out.ts,
                            pic: out.pic,
                            tl0: out.tl0,
                        };
                        sub.sent.push(out.seq, now, sent);
                    }
                    let len = pkt.payload.len() as u64;
                    sub.sent_bytes += len;
                    peers.stats.count_forwarded(ing.facts.video, len);
                    peers.written((sid, PcKind::Subscriber), spc);
                }
                Ok(false) => peers.stats.rtp_not_forwarded += 1,
                Err(f) => {
                    peers.stats.rtp_not_forwarded += 1;
                    peers.failures.report(sid, f);
                }
            }
        }
        crate::relay::tap(peers, track, ing.tid, ing.facts.li, &pkt);
        if let Some(age) = keep_for {
            if let Some(t) = self.tracks.get_mut(&ing.tid) {
                t.keep_for(age);
            }
        }
        for li in want_keyframe {
            self.request_keyframe(peers, now, ing.tid, li);
        }
    }

    /// Track ingest: find the packet's track and layer, measure it, and read what the
    /// per-subscription decisions need. None: the packet goes nowhere (counted).
    fn ingest(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        pid: ParticipantId,
        pkt: &InPacket,
    ) -> Option<Ingested> {
        let ssrc = pkt.ssrc;
        let publisher = self.participants.get_mut(&pid)?;
        let (tid, li) = match publisher.ssrcs.get(&ssrc) {
            Some(x) => *x,
            None => {
                let pc = publisher.publisher.as_mut()?;
                let Some((mid, rid)) = pc
                    .rtc
                    .direct_api()
                    .stream_rx(&ssrc.into())
                    .map(|s| (s.mid(), s.rid()))
                else {
                    peers.stats.rtp_not_forwarded += 1;
                    return None;
                };
                let Some(tid) = publisher.published.get(&mid).copied() else {
                    peers.stats.rtp_not_forwarded += 1;
                    return None;
                };
                let li = self.tracks.get_mut(&tid)?.layer_index(rid, ssrc);
                publisher.ssrcs.insert(ssrc, (tid, li));
                (tid, li)
            }
        };
        let track = self.tracks.get_mut(&tid)?;
        if track.muted {
            peers.stats.rtp_not_forwarded += 1;
            peers.stats.dropped_muted += 1;
            return None;
        }
        let pt = pkt.pt;
        let params = match track.codecs.iter().find(|(p, _)| *p == pt) {
            Some((_, params)) => *params,
            None => {
                // A relayed track's codec is the announced one, whatever its payload type.
                let found = match (&track.remote, publisher.publisher.as_ref()) {
                    (Some(r), _) => crate::relay::params_of(&r.mime, *pt),
                    (None, Some(pc)) => pc.rtc.codec_config().find(|p| p.pt() == pt).cloned(),
                    (None, None) => None,
                };
                let Some(params) = found else {
                    peers.stats.rtp_not_forwarded += 1;
                    return None;
                };
                track.codecs.push((pt, params));
                params
            }
        };
        let codec = params.spec().codec;
        if track.layers[li].ssrc != Some(ssrc) {
            track.layer_index(track.layers[li].rid, ssrc);
        }
        let seq = pkt.seq;
        let vp8 = codec == Codec::Vp8;
        let temporal = if vp8 {
            crate::vp8::vp8_temporal(&pkt.payload)
        } else {
            None
        };
        let video = track.kind == TrackKind::Video;
        let keyframe = video && starts_keyframe(codec, &pkt.payload);
        let layer = &mut track.layers[li];
        let in_order = layer.highest_seq.is_none_or(|h| seq > h);
        if in_order {
            layer.highest_seq = Some(seq);
        }
        layer.last_seen = Some(now);
        layer.paused = false;
        layer.measure(now, pkt.payload.len(), temporal.map(|t| t.0));
        if video {
            let stored = crate::rtx::Stored {
                payload: pkt.payload.clone(),
                marker: pkt.marker,
            };
            layer.store.push(seq, now, stored);
        }
        if keyframe && vp8 {
            if let Some(size) = crate::vp8::vp8_keyframe_size(&pkt.payload) {
                layer.size = Some(size);
            }
        }
        let len = pkt.payload.len() as u64;
        if video {
            peers.stats.video_packets_in += 1;
            peers.stats.video_bytes_in += len;
        } else {
            peers.stats.audio_packets_in += 1;
            peers.stats.audio_bytes_in += len;
        }
        if let (TrackKind::Audio, Some(level)) = (track.kind, pkt.audio_level) {
            if let Some(r) = self.rooms.get_mut(&track.room) {
                r.speaker.observe(tid, track.publisher, level, now);
            }
        }
        let desc = vp8
            .then(|| Vp8Descriptor::parse(&pkt.payload).ok())
            .flatten();
        Some(Ingested {
            tid,
            pt,
            params,
            facts: Facts {
                ssrc,
                li,
                video,
                in_order,
                keyframe,
                frame_start: vp8 && crate::vp8::vp8_frame_start(&pkt.payload),
                temporal,
            },
            inh: InHeader {
                ssrc,
                seq,
                ts: pkt.ts,
                pic: desc.and_then(|d| d.picture_id()),
                tl0: desc.and_then(|d| d.tl0_pic_idx()),
            },
            vp8: desc,
        })
    }

    /// A subscriber's RTT changed (receiver reports): its streams keep what they wrote
    /// for as long as it may still ask, and the layers they take keep their packets at
    /// least as long.
    pub(crate) fn follow_rtt(&mut self, sid: ParticipantId) {
        let Some(p) = self.participants.get_mut(&sid) else {
            return;
        };
        let age = crate::rtx::age_for(p.rtt);
        for sub in p.subs.values_mut() {
            sub.sent.set_age(age);
            if let Some(track) = self.tracks.get_mut(&sub.track) {
                track.keep_for(age);
            }
        }
    }

    /// A subscriber's NACKs on its stream `mid`.
    pub(crate) fn on_resend_request(
        &mut self,
        peers: &mut Peers,
        now: Instant,
        sid: ParticipantId,
        mid: Mid,
        seq_nos: &[str0m::rtp::SeqNo],
    ) {
        let Some(p) = self.participants.get_mut(&sid) else {
            return;
        };
        let (Some(sub), Some(pc)) = (
            p.subs.values().find(|s| s.mid == mid),
            p.subscriber.as_mut(),
        ) else {
            return;
        };
        let Some(track) = self.tracks.get(&sub.track) else {
            return;
        };
        match resend(pc, sub, track, seq_nos, now) {
            Ok((found, missed)) => {
                peers.stats.nack_resends += found;
                peers.stats.nack_unknown += missed;
                if found > 0 {
                    peers.written((sid, PcKind::Subscriber), pc);
                }
            }
            Err(f) => peers.failures.report(sid, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Rid;

    #[test]
    fn decide_table() {
        use LayerDecision::*;
        use TrackKind::*;
        // (kind, current, ssrc, is_target, keyframe, in_order, expected)
        let table = [
            (Video, None, 1, true, true, true, SwitchTo),
            (Video, None, 1, true, false, true, Drop), // wait for a keyframe
            (Video, None, 1, true, true, false, Drop), // late keyframe: later packets already dropped
            (Video, None, 1, false, true, true, Drop), // not the layer we want
            (Video, Some(1), 1, true, false, true, Forward),
            (Video, Some(1), 1, false, false, false, Forward), // keep the current layer until the switch
            (Video, Some(1), 2, true, false, true, Drop),
            (Video, Some(1), 2, true, true, true, SwitchTo),
            (Audio, None, 5, true, false, true, SwitchTo),
            (Audio, Some(5), 6, true, false, true, SwitchTo), // new SSRC: continue the stream
            (Audio, Some(5), 5, true, false, false, Forward),
        ];
        for (i, (k, cur, ssrc, tgt, kf, ord, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(k, cur, ssrc, tgt, kf, ord), want, "row {i}");
        }
    }

    #[test]
    fn route_table() {
        use Action::*;
        let mut t = Track::test_video(&["q", "h"]);
        let (q, h) = (
            t.layer_index(Some(Rid::from("q")), 10),
            t.layer_index(Some(Rid::from("h")), 20),
        );
        t.layers[h].max_tid = Some(2);
        let sub = |source, max_rank, tid_cap| SubView {
            max_rank,
            epoch: 0,
            source,
            tid_cap,
        };
        let pkt = |li: usize, keyframe, temporal| Facts {
            ssrc: if li == q { 10 } else { 20 },
            li,
            video: true,
            in_order: true,
            keyframe,
            frame_start: true,
            temporal,
        };
        let all = Some(u8::MAX);
        // (subscription, packet, target) -> (action, epoch, tid_cap, keyframe_of)
        let table = [
            // on h, an h packet: forward
            (
                sub(Some(20), all, ALL_FRAMES),
                pkt(h, false, None),
                Some(h),
                (Forward, 0, ALL_FRAMES, None),
            ),
            // target q while on h: keep h until q's keyframe, and ask for it
            (
                sub(Some(20), all, ALL_FRAMES),
                pkt(h, false, None),
                Some(q),
                (Forward, 0, ALL_FRAMES, Some(q)),
            ),
            (
                sub(Some(20), all, ALL_FRAMES),
                pkt(q, true, None),
                Some(q),
                (SwitchTo, 0, ALL_FRAMES, Some(q)),
            ),
            // paused (no target): the epoch moves back so that resuming starts afresh
            (
                sub(Some(20), None, ALL_FRAMES),
                pkt(h, false, None),
                None,
                (DropLayer, u32::MAX, ALL_FRAMES, None),
            ),
            // allowed h at T0+T1 (rank 1*4+1): a T2 frame is dropped, the cap goes down
            (
                sub(Some(20), Some(5), ALL_FRAMES),
                pkt(h, false, Some((2, false))),
                Some(h),
                (DropTemporal, 0, 1, None),
            ),
            // at cap 0, a T1 layer-sync frame raises the cap one step
            (
                sub(Some(20), Some(5), 0),
                pkt(h, false, Some((1, true))),
                Some(h),
                (Forward, 0, 1, None),
            ),
            // ... but not without the sync bit
            (
                sub(Some(20), Some(5), 0),
                pkt(h, false, Some((1, false))),
                Some(h),
                (DropTemporal, 0, 0, None),
            ),
            // a switch on a keyframe takes the allocation's cap at once
            (
                sub(None, Some(5), ALL_FRAMES),
                pkt(h, true, Some((0, true))),
                Some(h),
                (SwitchTo, 0, 1, Some(h)),
            ),
        ];
        for (i, (s, p, target, want)) in table.into_iter().enumerate() {
            let r = route(&t, s, &p, target);
            assert_eq!(
                (r.action, r.epoch, r.tid_cap, r.keyframe_of),
                want,
                "row {i}"
            );
        }
    }
    /// The subscription's per-packet step alone: it starts on a keyframe, follows its
    /// allocation to another layer only on that layer's keyframe (asking for it
    /// meanwhile), and its outgoing numbering has no hole across the switch or across a
    /// temporal frame it skips.
    #[test]
    fn a_subscription_switches_on_keyframes_and_numbers_without_holes() {
        let now = crate::test_clock::origin();
        let mut t = Track::test_video(&["q", "h"]);
        let (q, h) = (
            t.layer_index(Some(Rid::from("q")), 10),
            t.layer_index(Some(Rid::from("h")), 20),
        );
        for li in [q, h] {
            t.layers[li].last_seen = Some(now);
        }
        let mut sub = Subscription::new(TrackId(1), Mid::from("1"), TrackKind::Video, 1000, 0);
        let mut seqs = [0u64; 2];
        let mut pkt = |li: usize, keyframe: bool, temporal: Option<(u8, bool)>| {
            seqs[li] += 1;
            let ssrc = if li == q { 10 } else { 20 };
            (
                Facts {
                    ssrc,
                    li,
                    video: true,
                    in_order: true,
                    keyframe,
                    frame_start: true,
                    temporal,
                },
                InHeader {
                    ssrc,
                    seq: 500 * (li as u64 + 1) + seqs[li],
                    ts: 90 * seqs[li] as u32,
                    pic: None,
                    tl0: None,
                },
            )
        };
        let sent = |step: &Step| match step {
            Step::Send { out, .. } => Some(out.seq),
            _ => None,
        };
        // Allowed only q: h is another layer; q waits for its keyframe.
        sub.max_rank = Some(compose(0, ALL_FRAMES));
        let (f, i) = pkt(h, true, None);
        assert_eq!(sub.on_packet(&t, &f, &i, now).0, Step::OtherLayer);
        let (f, i) = pkt(q, false, None);
        assert_eq!(sub.on_packet(&t, &f, &i, now), (Step::OtherLayer, Some(q)));
        let (f, i) = pkt(q, true, None);
        let (step, _) = sub.on_packet(&t, &f, &i, now);
        assert!(
            matches!(
                step,
                Step::Send {
                    switched: Some(false),
                    ..
                }
            ),
            "{step:?}"
        );
        assert_eq!(
            sent(&step),
            Some(1000),
            "the stream starts at its initial number"
        );
        let (f, i) = pkt(q, false, None);
        assert_eq!(sent(&sub.on_packet(&t, &f, &i, now).0), Some(1001));
        // Allowed h: q goes on until h's keyframe, which is asked for.
        sub.max_rank = Some(u8::MAX);
        let (f, i) = pkt(q, false, None);
        let (step, ask) = sub.on_packet(&t, &f, &i, now);
        assert_eq!((sent(&step), ask), (Some(1002), Some(h)));
        let (f, i) = pkt(h, false, None);
        assert_eq!(
            sub.on_packet(&t, &f, &i, now).0,
            Step::OtherLayer,
            "not a keyframe"
        );
        let (f, i) = pkt(h, true, None);
        let (step, _) = sub.on_packet(&t, &f, &i, now);
        assert!(
            matches!(
                step,
                Step::Send {
                    switched: Some(true),
                    ..
                }
            ),
            "{step:?}"
        );
        assert_eq!(sent(&step), Some(1003), "continuous across the switch");
        assert_eq!(sub.switches, 1);
        // Allowed h at T0 only: a T1 frame is skipped, and the next T0 frame follows
        // the last one sent without a hole.
        sub.max_rank = Some(compose(1, 0));
        let (f, i) = pkt(h, false, Some((1, false)));
        assert_eq!(sub.on_packet(&t, &f, &i, now).0, Step::AboveTemporalCap);
        let (f, i) = pkt(h, false, Some((0, false)));
        assert_eq!(sent(&sub.on_packet(&t, &f, &i, now).0), Some(1004));
        // q's packets no longer go to it.
        let (f, i) = pkt(q, false, None);
        assert_eq!(sub.on_packet(&t, &f, &i, now).0, Step::OtherLayer);
    }
}

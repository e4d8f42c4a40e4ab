//! A participant of a shard (its two connections, what it publishes and receives, its
//! negotiation and estimate state) and a room (who is in it, its tracks, its speaker).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use str0m::media::Mid;

use crate::forward::Subscription;
use crate::ids::{ParticipantId, PcKind, RoomId, TrackId};
use crate::pc::Pc;
use crate::whep::WhepView;

#[derive(Default)]
pub(crate) struct Room {
    pub participants: Vec<ParticipantId>,
    pub tracks: Vec<TrackId>,
    pub speaker: crate::speaker::SpeakerDetector,
}

pub(crate) struct Participant {
    pub room: RoomId,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub publisher: Option<Pc>,
    pub subscriber: Option<Pc>,
    /// The publisher connection's data channels.
    pub channels: crate::data::Channels,
    /// It receives each track in a stream of its own ([`crate::Command::Join`]).
    pub track_streams: bool,
    /// Which of the room's tracks it receives.
    pub selection: crate::selection::Selection,
    /// Its client's sids of its publisher m-lines ([`crate::Command::NameTracks`]).
    pub sids: HashMap<Mid, String>,
    /// Publisher m-lines → tracks.
    pub published: BTreeMap<Mid, TrackId>,
    /// Publisher SSRCs → (track, layer index): a cache of str0m's stream lookup.
    pub ssrcs: HashMap<u32, (TrackId, usize)>,
    /// What this participant receives.
    pub subs: BTreeMap<TrackId, Subscription>,
    /// Subscriber-side negotiation: an offer out, changes waiting, m-lines to stop.
    pub pending_offer: Option<str0m::change::SdpPendingOffer>,
    pub renegotiate: bool,
    pub to_stop: Vec<Mid>,
    /// The subscriber connection's first m-line, which tags its BUNDLE group: never
    /// stopped, made inactive instead. Chromium closes the whole transport (DTLS
    /// close_notify) when an offer stops the BUNDLE-tag m-line — as when the first
    /// publisher a subscriber received leaves, and with it the last one of a room of two.
    pub bundle_tag: Option<Mid>,
    /// The next subscriber offer restarts ICE ([`Command::RestartSubscriberIce`]).
    pub restart_ice: bool,
    /// WHEP viewers: what their client-offered m-lines carry.
    pub whep: Option<WhepView>,
    /// The subscriber connection's latest bandwidth estimate (bits per second).
    pub estimate: Option<u64>,
    /// The most it can receive, whatever the estimate ([`crate::ViewerOptions`]).
    pub max_bitrate: Option<u64>,
    /// How many estimates in a row have fallen (a falling trend is met early).
    pub falling: u32,
    /// What the publisher's m-lines carry, as declared ([`Command::SetSources`]).
    pub sources: HashMap<Mid, crate::ids::TrackSource>,
    /// The subscriber connection's last cumulative (NACK, PLI, FIR) counts per stream.
    pub feedback: HashMap<Mid, [u64; 3]>,
    /// The subscriber connection's round-trip time, from its receiver reports.
    pub rtt: Option<Duration>,
}

impl Participant {
    /// A member of `room` with the grants it joined with and its subscriber connection
    /// (None: it does not subscribe).
    pub fn new(
        room: RoomId,
        can_publish: bool,
        can_subscribe: bool,
        subscriber: Option<Pc>,
        track_streams: bool,
        auto_subscribe: bool,
    ) -> Self {
        Participant {
            room,
            can_publish,
            can_subscribe,
            publisher: None,
            subscriber,
            channels: Default::default(),
            track_streams,
            selection: crate::selection::Selection::manual(!auto_subscribe),
            sids: HashMap::new(),
            published: BTreeMap::new(),
            ssrcs: HashMap::new(),
            subs: BTreeMap::new(),
            pending_offer: None,
            renegotiate: false,
            restart_ice: false,
            to_stop: Vec::new(),
            bundle_tag: None,
            whep: None,
            estimate: None,
            max_bitrate: None,
            falling: 0,
            sources: HashMap::new(),
            feedback: HashMap::new(),
            rtt: None,
        }
    }

    /// A participant of another node whose tracks are relayed here: it publishes, has no
    /// connection, receives nothing ([`crate::relay`]).
    pub fn remote(room: RoomId) -> Self {
        Self::new(room, true, false, None, false, false)
    }

    pub fn pc_mut(&mut self, kind: PcKind) -> Option<&mut Pc> {
        match kind {
            PcKind::Publisher => self.publisher.as_mut(),
            PcKind::Subscriber => self.subscriber.as_mut(),
        }
    }

    /// The subscriber connection's bandwidth estimation starts again from the initial
    /// estimate (as at join).
    pub fn restart_estimate(&mut self) {
        let Some(pc) = self.subscriber.as_mut() else {
            return;
        };
        let initial = crate::pc::INITIAL_ESTIMATE_KBPS;
        if pc
            .guarded(|rtc| rtc.bwe().reset(str0m::bwe::Bitrate::kbps(initial)))
            .is_ok()
        {
            self.estimate = Some(initial * 1_000);
            self.falling = 0;
        }
    }

    /// A bitrate as far as this participant can take it: under a viewer's cap
    /// ([`crate::ViewerOptions::max_bitrate`], a SIP endpoint's b=AS or TMMBR, which
    /// counts packet headers too) only nine tenths of the cap are media.
    pub fn within_cap(&self, bps: u64) -> u64 {
        self.max_bitrate.map_or(bps, |cap| bps.min(cap * 9 / 10))
    }
}

//! A phone call in its room, whichever way it was placed (`inbound.rs`, `outbound.rs`):
//! the phone joins the room through the hub as an ordinary participant, reaches the media
//! workers through its room leg, and media is pumped every 20 ms until either side hangs
//! up, the participant is removed, the API hangs up, or no media arrives from the phone
//! for the media timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TransactionHandle};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, StatusCode};
use sfu_core::ParticipantId;
use signaling::hub::Outbound;
use signaling::protocol::{ClientMessage, ServerMessage};
use signaling::Error;
use signaling::{Claims, VideoGrant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::call_book::{CallHandle, Command};
use crate::dtmf::Digit;
use crate::gateway::Gateway;
use crate::media::{CallMedia, PhonePacket};
use crate::room_leg::RoomLeg;
use crate::rtp_source::RtpSource;
use crate::sdp::{Codec, Direction, LocalMedia, PhoneMedia};
use crate::srtp::Protection;
use crate::video_leg::VideoLeg;
use crate::video_sdp::VideoCodec;

/// The call's quality figures are updated every this many frames (5 s).
const QUALITY_EVERY: u64 = 250;

/// How long the room leg may take to be answered by the media plane.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The caller's number as shown in the room: all but the last four digits masked.
pub fn masked(number: &str) -> String {
    let n = number.chars().count();
    number
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i + 4 < n && c.is_ascii_digit() {
                '•'
            } else {
                c
            }
        })
        .collect()
}

/// A refusal to put the call in its room: the SIP status for the phone and why.
pub(crate) type Refusal = (StatusCode, String);

/// The SIP answer to a refused join: a full room is busy (486), a room that does not exist
/// (with auto-create off) is not found (404), a node that takes no one is unavailable.
fn refusal(e: Error) -> Refusal {
    let status = match e {
        Error::RoomFull(_) => StatusCode::BusyHere,
        Error::NoSuchRoom | Error::BadRoomName(_) | Error::NotFound(_) => StatusCode::NotFound,
        Error::Draining
        | Error::ServerFull(_)
        | Error::Plane(_)
        | Error::Timeout
        | Error::Unavailable(_) => StatusCode::ServiceUnavailable,
        _ => StatusCode::ServerInternalError,
    };
    (status, e.to_string())
}

/// Who the phone is in the room.
pub(crate) struct Who {
    pub identity: String,
    pub name: String,
    /// The participant's metadata: `{"sip": {"call", "direction", "from", "to"}}`.
    pub metadata: String,
}

impl Who {
    pub fn new(identity: String, name: String, call: &CallHandle) -> Self {
        let info = call.info();
        let metadata = serde_json::json!({"sip": {
            "call": call.id,
            "direction": info.as_ref().map(|i| i.direction),
            "from": info.as_ref().map(|i| i.from.clone()),
            "to": info.as_ref().map(|i| i.to.clone()),
        }})
        .to_string();
        Who {
            identity,
            name,
            metadata,
        }
    }
}

/// The phone side of a call: its RTP socket, what its SDP said, what ours says.
pub(crate) struct PhoneLeg {
    pub rtp: UdpSocket,
    /// Where its RTP may come from.
    pub source: RtpSource,
    /// Arrival times of its packets are milliseconds since this.
    epoch: Instant,
    pub remote: PhoneMedia,
    pub codec: (Codec, u8),
    pub local: LocalMedia,
    /// Its video, when it offered video we forward.
    pub video: Option<Box<VideoLeg>>,
    /// SRTP when the audio m-line is SDES-keyed.
    pub protection: Protection,
}

impl PhoneLeg {
    /// Our offer and the phone's answer (`sdp`; its audio, `remote`): the phone's side of
    /// the call, with video when the answer accepted ours. Shared by offerless inbound calls
    /// (the answer in the ACK) and outbound calls (the answer in the 200).
    pub fn settle(
        rtp: UdpSocket,
        signaling: Option<std::net::IpAddr>,
        offer: LocalMedia,
        video: Option<crate::video_leg::VideoSockets>,
        remote: PhoneMedia,
        sdp: &str,
    ) -> Result<Self, String> {
        let ours: Vec<_> = offer.codecs.iter().map(|(c, _)| *c).collect();
        let codec = remote
            .choose(&ours)
            .ok_or("failed: no codec of our offer in the answer")?;
        // Our offer is plain RTP: an answer that keys its audio is no answer to it.
        if remote.keying.is_keyed() {
            return Err("failed: the answer asks for SRTP we did not offer".into());
        }
        let (video_line, video) = video.and_then(|s| s.answered(sdp)).unzip();
        let local = LocalMedia {
            codecs: vec![codec],
            telephone_event: remote.telephone_event.and(offer.telephone_event),
            video: video_line,
            ..offer
        };
        let mut leg = Self::new(rtp, signaling, remote, codec, local);
        leg.video = video;
        Ok(leg)
    }

    pub fn media(&self) -> Result<CallMedia, String> {
        let law = match self.codec.0 {
            Codec::Pcma => crate::g711::Law::Alaw,
            _ => crate::g711::Law::Ulaw,
        };
        CallMedia::new(
            law,
            self.codec.1,
            self.remote.telephone_event.map(|(pt, _)| pt),
            rand::random(),
            rand::random(),
        )
        .map_err(|e| e.to_string())
    }

    /// Milliseconds since the leg was set up: the arrival clock of the phone's packets.
    pub fn clock(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The phone side of a call, its SIP coming from (or going to) `signaling`.
    pub fn new(
        rtp: UdpSocket,
        signaling: Option<std::net::IpAddr>,
        remote: PhoneMedia,
        codec: (Codec, u8),
        local: LocalMedia,
    ) -> Self {
        let protection = match &local.sdes {
            Some(a) => Protection::keyed(a.srtp()),
            None => Protection::default(),
        };
        PhoneLeg {
            rtp,
            protection,
            epoch: Instant::now(),
            source: RtpSource::new(remote.rtp, signaling),
            remote,
            codec,
            local,
            video: None,
        }
    }
}

/// A phone in its room: the participant, its messages, and its room leg.
pub(crate) struct InRoom<'a> {
    gw: &'a Gateway,
    pub id: ParticipantId,
    rx: signaling::outbound::OutboundRx,
    leg: RoomLeg,
    pub_socket: UdpSocket,
    sub_socket: UdpSocket,
    pub_addr: SocketAddr,
    sub_addr: SocketAddr,
    /// A video endpoint's speaker view: a hidden viewer of its own, and its messages.
    view: Option<View>,
    view_rx: Option<signaling::outbound::OutboundRx>,
}

/// The speaker view's participant (hidden, publishes nothing) and socket.
struct View {
    id: ParticipantId,
    socket: UdpSocket,
    addr: SocketAddr,
}

impl Drop for InRoom<'_> {
    fn drop(&mut self) {
        self.gw.hub.leave(self.id);
        if let Some(v) = &self.view {
            self.gw.hub.leave(v.id);
        }
    }
}

/// A token for the phone in `room`, minted with the gateway's first key: the phone's
/// participant (publishing its microphone, and its camera when `video`), or its speaker
/// view (`viewer`: the hub makes it hidden and receive-only).
fn token(
    gw: &Gateway,
    room: &str,
    who: &Who,
    video: bool,
    viewer: bool,
) -> Result<String, Refusal> {
    let internal = |m: &str| (StatusCode::ServerInternalError, m.to_string());
    let keys = gw.hub.keys();
    let key = keys
        .first_key()
        .ok_or_else(|| internal("no API key to mint a token with"))?;
    let mut sources = vec![sfu_core::TrackSource::Microphone];
    if video {
        sources.push(sfu_core::TrackSource::Camera);
    }
    let claims = Claims {
        iss: key.to_string(),
        sub: if viewer {
            format!("{}.view", who.identity)
        } else {
            who.identity.clone()
        },
        exp: signaling::auth::unix_now() + 24 * 3_600,
        nbf: None,
        kind: signaling::protocol::ParticipantKind::Sip,
        metadata: Some(who.metadata.clone()),
        name: Some(who.name.clone()),
        attributes: Default::default(),
        sip: Default::default(),
        video: VideoGrant {
            can_publish_sources: sources,
            ..VideoGrant::join(room)
        },
    };
    keys.mint(key, &claims)
        .ok_or_else(|| internal("could not mint a token"))
}

/// Join the room and publish the phone's track: done when the media plane has answered
/// the room leg's publisher offer.
pub(crate) async fn enter_room<'a>(
    gw: &'a Gateway,
    room: &str,
    who: &Who,
    video: Option<(VideoCodec, Option<u32>)>,
) -> Result<InRoom<'a>, Refusal> {
    let unavailable = |e: String| (StatusCode::ServiceUnavailable, e);
    // In a cluster the room is placed first (claimed here when new); a room homed on
    // another node is not joined here (the hub would refuse it too).
    if let Some(placement) = gw.hub.placement() {
        match placement.place(room).await {
            Ok(signaling::placement::Placed::Here) => {}
            Ok(signaling::placement::Placed::Elsewhere { .. }) => {
                return Err(unavailable(format!("room {room} is homed on another node")))
            }
            Err(e) => return Err(unavailable(e.to_string())),
        }
    }
    let bind = || UdpSocket::bind(SocketAddr::new(gw.media_ip, 0));
    let pub_socket = bind().await.map_err(|e| unavailable(e.to_string()))?;
    let sub_socket = bind().await.map_err(|e| unavailable(e.to_string()))?;
    let pub_addr = pub_socket
        .local_addr()
        .map_err(|e| unavailable(e.to_string()))?;
    let sub_addr = sub_socket
        .local_addr()
        .map_err(|e| unavailable(e.to_string()))?;
    let view_socket = match video {
        Some(_) => Some(bind().await.map_err(|e| unavailable(e.to_string()))?),
        None => None,
    };
    let view_addr = match &view_socket {
        Some(s) => Some(s.local_addr().map_err(|e| unavailable(e.to_string()))?),
        None => None,
    };
    let now = signaling::hub::Now::read();
    let (id, rx) = gw
        .hub
        .join_new(&token(gw, room, who, video.is_some(), false)?, now)
        .map_err(refusal)?;
    let leg_video = video.map(|(codec, _)| codec).zip(view_addr);
    let mut r = InRoom {
        gw,
        id,
        rx,
        leg: RoomLeg::new(Instant::now(), pub_addr, sub_addr, leg_video),
        pub_socket,
        sub_socket,
        pub_addr,
        sub_addr,
        view: None,
        view_rx: None,
    };
    r.publish().await.map_err(unavailable)?;
    if let (Some(socket), Some(addr)) = (view_socket, view_addr) {
        let (vid, vrx) = gw
            .hub
            .join_viewer(&token(gw, room, who, false, true)?, now)
            .map_err(refusal)?;
        r.view = Some(View {
            id: vid,
            socket,
            addr,
        });
        r.view_rx = Some(vrx);
        let max_kbps = video.and_then(|(_, kbps)| kbps);
        r.watch_speaker(max_kbps).await.map_err(unavailable)?;
    }
    Ok(r)
}

impl InRoom<'_> {
    /// Wait for the media plane's answer to the room leg's publisher offer, answering its
    /// subscriber offers on the way.
    async fn publish(&mut self) -> Result<(), String> {
        let offer = self.leg.publish_offer().ok_or("no publisher offer")?;
        let mut sources = std::collections::BTreeMap::new();
        if let Some(mid) = self.leg.mic_mid() {
            sources.insert(mid, sfu_core::TrackSource::Microphone);
        }
        if let Some(mid) = self.leg.camera_mid() {
            sources.insert(mid, sfu_core::TrackSource::Camera);
        }
        self.gw.hub.handle(
            self.id,
            ClientMessage::PublishOffer {
                sdp: offer,
                sources,
            },
        );
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        loop {
            match setup_step(&mut self.rx, deadline).await? {
                Setup::Answer(sdp) => {
                    return self
                        .leg
                        .publish_answer(Instant::now(), &sdp)
                        .map_err(|e| e.to_string());
                }
                Setup::SubscribeOffer(sdp) => self.answer_subscribe(&sdp),
            }
        }
    }

    /// Offer the speaker view (one receive-only video m-line following the room's active
    /// speaker, never the phone itself, within the phone's bandwidth) and wait for the
    /// media plane's answer.
    async fn watch_speaker(&mut self, max_kbps: Option<u32>) -> Result<(), String> {
        let offer = self.leg.view_offer().ok_or("no speaker view offer")?;
        let view = self.view.as_ref().ok_or("no speaker view")?;
        let rx = self.view_rx.as_mut().ok_or("no speaker view")?;
        self.gw
            .hub
            .whep_offer(
                view.id,
                None,
                sfu_core::ViewerOptions {
                    except: Some(self.id),
                    max_bitrate: max_kbps.map(|k| u64::from(k) * 1_000),
                    // No content channel (BFCP) yet: a share takes the speaker's place.
                    content: true,
                },
                offer,
            )
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
        loop {
            // A viewer gets no subscriber offers: its m-lines are its own.
            if let Setup::Answer(sdp) = setup_step(rx, deadline).await? {
                return self
                    .leg
                    .view_answer(Instant::now(), &sdp)
                    .map_err(|e| e.to_string());
            }
        }
    }

    fn answer_subscribe(&mut self, sdp: &str) {
        match self.leg.subscribe_offer(Instant::now(), sdp) {
            Ok(answer) => self
                .gw
                .hub
                .handle(self.id, ClientMessage::SubscribeAnswer { sdp: answer }),
            Err(e) => warn!(participant = %self.id, "room leg: {e}"),
        }
    }

    /// A digit the phone typed, to the room: a data message on topic `sip.dtmf`.
    fn send_digit(&self, d: Digit) {
        self.gw.hub.handle(
            self.id,
            ClientMessage::Data {
                payload: serde_json::json!({"type": "dtmf", "digit": d.as_char().to_string()})
                    .to_string(),
                topic: Some("sip.dtmf".into()),
                destination: Vec::new(),
            },
        );
    }

    /// Send what the leg has to send.
    async fn flush(&mut self) {
        for d in self.leg.take_datagrams() {
            let socket = match &self.view {
                Some(v) if d.from == v.addr => &v.socket,
                _ if d.from == self.sub_addr => &self.sub_socket,
                _ => &self.pub_socket,
            };
            let _ = socket.send_to(&d.data, d.to).await;
        }
    }
}

/// Why a conversation ended (the `end_cause` of the call); whether we hang up with a BYE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The phone sent BYE (or its dialog ended).
    Hangup,
    /// `DELETE /api/v1/sip/calls/{id}`.
    Api,
    /// Removed from the room (REST, the room deleted or the node draining).
    Removed,
    MediaTimeout,
    RoomLegFailed,
}

impl End {
    pub fn cause(self) -> &'static str {
        match self {
            End::Hangup => "hangup",
            End::Api => "api",
            End::Removed => "removed",
            End::MediaTimeout => "media_timeout",
            End::RoomLegFailed => "room_leg_failed",
        }
    }
}

/// The talking phase of a call.
pub(crate) struct Conversation<'a, 'g> {
    pub gw: &'g Gateway,
    pub call: &'a CallHandle,
    pub dialog: &'a InviteDialog,
    pub phone: PhoneLeg,
    pub media: CallMedia,
    pub room: InRoom<'g>,
    /// The o= session id and version of our SDP.
    pub session: (u64, u64),
}

/// The conversation's changing state.
struct Talk {
    ticks: u64,
    phone_to: Option<SocketAddr>,
    on_hold: bool,
    last_phone_media: Instant,
}

impl Conversation<'_, '_> {
    /// Pump media until the call ends; hangs up with BYE unless the phone did.
    pub async fn run(
        mut self,
        states: &mut DialogStateReceiver,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> End {
        let mut talk = Talk {
            ticks: 0,
            phone_to: self.phone.remote.rtp,
            on_hold: self.phone.remote.direction.is_hold(),
            last_phone_media: Instant::now(),
        };
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut leg_wake = self.room.leg.timeout(Instant::now());
        let (mut pbuf, mut lbuf, mut sbuf) = (vec![0u8; 2_048], vec![0u8; 2_048], vec![0u8; 2_048]);
        let (mut vbuf, mut cbuf, mut wbuf) = (vec![0u8; 2_048], vec![0u8; 2_048], vec![0u8; 2_048]);
        let end = loop {
            let wake = tokio::time::Instant::from_std(leg_wake);
            let step = tokio::select! {
                _ = ticker.tick() => self.on_tick(&mut talk).await,
                r = self.phone.rtp.recv_from(&mut pbuf) => {
                    if let Ok((n, from)) = r {
                        self.on_phone_packet(&mut talk, &pbuf[..n], from);
                    }
                    None
                }
                r = self.room.pub_socket.recv_from(&mut lbuf) => {
                    if let Ok((n, from)) = r {
                        let local = self.room.pub_addr;
                        self.room.leg.receive(Instant::now(), local, from, &lbuf[..n]);
                    }
                    None
                }
                r = self.room.sub_socket.recv_from(&mut sbuf) => {
                    if let Ok((n, from)) = r {
                        let local = self.room.sub_addr;
                        self.room.leg.receive(Instant::now(), local, from, &sbuf[..n]);
                    }
                    None
                }
                r = recv_on(self.phone.video.as_ref().map(|v| &v.rtp), &mut vbuf) => {
                    if let Ok((n, from)) = r {
                        self.on_phone_video(&vbuf[..n], from, false);
                    }
                    None
                }
                r = recv_on(self.phone.video.as_ref().and_then(|v| v.rtcp.as_ref()), &mut cbuf) => {
                    if let Ok((n, from)) = r {
                        self.on_phone_video(&cbuf[..n], from, true);
                    }
                    None
                }
                r = recv_on(self.room.view.as_ref().map(|v| &v.socket), &mut wbuf) => {
                    if let (Ok((n, from)), Some(local)) = (r, self.room.view.as_ref().map(|v| v.addr)) {
                        self.room.leg.receive(Instant::now(), local, from, &wbuf[..n]);
                    }
                    None
                }
                _ = tokio::time::sleep_until(wake) => {
                    self.room.leg.timeout(Instant::now());
                    None
                }
                m = self.room.rx.recv() => self.on_room_message(m),
                m = view_message(self.room.view_rx.as_mut()) => {
                    // The speaker view's queue carries nothing to act on; its removal
                    // (the room deleted, the node draining) ends the call with the phone's.
                    if m.is_none() {
                        self.room.view_rx = None;
                    }
                    None
                }
                s = states.recv() => self.on_dialog(&mut talk, s).await,
                c = commands.recv() => match c {
                    Some(Command::HangUp) => Some(End::Api),
                    Some(Command::Dtmf(digits)) => {
                        if !self.media.send_digits(&digits) {
                            debug!(call = %self.call.id, "digits not sent: no telephone-event or queue full");
                        }
                        None
                    }
                    None => None,
                },
            };
            if let Some(end) = step {
                break end;
            }
            // Every input above drained the leg: advance its clocks only when a timer is due.
            self.pump_video(&talk).await;
            leg_wake = self.room.leg.next_wake();
            self.room.flush().await;
        };
        if end != End::Hangup {
            let _ = self.dialog.bye().await;
        }
        let q = self.media.quality();
        self.call.quality(q);
        metrics::histogram!("switchboard_sip_call_loss_ratio").record(q.loss);
        metrics::histogram!("switchboard_sip_call_jitter_seconds").record(q.jitter_ms / 1_000.0);
        metrics::histogram!("switchboard_sip_call_mos").record(q.mos);
        end
    }

    async fn on_tick(&mut self, talk: &mut Talk) -> Option<End> {
        let now = Instant::now();
        talk.ticks += 1;
        if talk.ticks.is_multiple_of(QUALITY_EVERY) {
            self.call.quality(self.media.quality());
        }
        for a in self.room.leg.take_audio() {
            let _ = self.media.room_packet(a);
        }
        let t = match self.media.tick() {
            Ok(t) => t,
            Err(e) => {
                warn!(call = %self.call.id, "media: {e}");
                return Some(End::RoomLegFailed);
            }
        };
        if let Some((opus, level)) = t.to_room {
            if self.room.leg.publishing() {
                self.room.leg.write_audio(now, &opus, level);
            }
        }
        if let (Some(to), false) = (talk.phone_to, talk.on_hold) {
            for p in &t.to_phone {
                if let Ok(wire) = self.phone.protection.seal(p) {
                    let _ = self.phone.rtp.send_to(wire, to).await;
                }
            }
        }
        if talk.on_hold {
            // A held phone sends nothing: that is no reason to hang up.
            talk.last_phone_media = now;
        }
        if now.duration_since(talk.last_phone_media) > self.gw.media_timeout {
            return Some(End::MediaTimeout);
        }
        (!self.room.leg.alive()).then_some(End::RoomLegFailed)
    }

    fn on_phone_packet(&mut self, talk: &mut Talk, data: &[u8], from: SocketAddr) {
        let clock = self.phone.clock();
        // A keyed call's packets are used (and latched to) only once authenticated.
        let data = match self.phone.protection.open(data) {
            Ok(d) => d,
            Err(e) => {
                debug!(call = %self.call.id, %from, "SRTP packet dropped: {e}");
                crate::gateway::rtp_dropped("srtp");
                return;
            }
        };
        if !self
            .phone
            .source
            .accept(from, crate::rtp_source::rtp_seq(data))
        {
            debug!(call = %self.call.id, %from, "RTP from an address that is not the phone's: dropped");
            crate::gateway::rtp_dropped("source");
            return;
        }
        match self.media.phone_packet(data, clock) {
            Ok(PhonePacket::Audio) => {
                // Symmetric RTP: answer where the phone's packets come from.
                talk.phone_to = Some(from);
                talk.last_phone_media = Instant::now();
            }
            Ok(PhonePacket::Digit(d)) => {
                talk.last_phone_media = Instant::now();
                self.digit(d);
            }
            Ok(PhonePacket::DigitRepeat) => talk.last_phone_media = Instant::now(),
            Ok(PhonePacket::Rtcp) => {}
            Err(e) => {
                debug!(call = %self.call.id, "phone packet dropped: {e}");
                crate::gateway::rtp_dropped(match e {
                    crate::media::DropReason::Malformed(_) => "malformed",
                    crate::media::DropReason::PayloadType(_) => "payload_type",
                    crate::media::DropReason::Dtmf(_) => "dtmf",
                });
            }
        }
    }

    /// A datagram on the phone's video RTP socket (or its RTCP socket, `rtcp`).
    fn on_phone_video(&mut self, data: &[u8], from: SocketAddr, rtcp: bool) {
        let Some(v) = self.phone.video.as_mut() else {
            return;
        };
        match v.on_datagram(data, from, rtcp, &mut self.room.leg, Instant::now()) {
            Ok(Some(cap)) => {
                if let Some(view) = self.room.view.as_ref() {
                    self.gw.hub.set_max_bitrate(view.id, Some(cap));
                }
            }
            Ok(None) => {}
            Err(reason) => {
                debug!(call = %self.call.id, "phone video dropped: {reason}");
                metrics::counter!("switchboard_sip_video_dropped_total", "reason" => reason)
                    .increment(1);
            }
        }
    }

    /// The speaker view's packets to the phone, and the media plane's keyframe requests
    /// for the phone's video: RTCP, or SIP INFO to a phone that offered no feedback.
    async fn pump_video(&mut self, talk: &Talk) {
        let Some(v) = self.phone.video.as_mut() else {
            return;
        };
        if v.pump(&mut self.room.leg, talk.on_hold, Instant::now())
            .await
        {
            let dialog = self.dialog.clone();
            tokio::spawn(async move {
                let body = crate::video::PICTURE_FAST_UPDATE.as_bytes().to_vec();
                let ct = Header::ContentType("application/media_control+xml".into());
                let _ = dialog.info(Some(vec![ct]), Some(body)).await;
            });
        }
    }

    fn digit(&self, d: Digit) {
        metrics::counter!("switchboard_sip_dtmf_digits_total").increment(1);
        self.room.send_digit(d);
        self.call.digit(d.as_char());
    }

    fn on_room_message(&mut self, m: Option<Outbound>) -> Option<End> {
        match m {
            Some(Outbound::Message(ServerMessage::SubscribeOffer { sdp, .. })) => {
                self.room.answer_subscribe(&sdp);
                None
            }
            Some(Outbound::Message(_)) => None,
            Some(Outbound::Close { .. }) | None => Some(End::Removed),
        }
    }

    async fn on_dialog(&mut self, talk: &mut Talk, s: Option<DialogState>) -> Option<End> {
        match s {
            Some(DialogState::Terminated(_, reason)) => {
                debug!(call = %self.call.id, ?reason, "dialog terminated");
                Some(End::Hangup)
            }
            Some(DialogState::Updated(_, req, handle))
                if matches!(req.method, Method::Invite | Method::Update) =>
            {
                self.on_offer(talk, &req.body, handle).await;
                None
            }
            Some(DialogState::Info(_, req, handle)) => {
                let body = String::from_utf8_lossy(&req.body).to_string();
                // A video endpoint asking for a keyframe (RFC 5168).
                if crate::video::is_picture_fast_update(&body) {
                    self.room.leg.request_view_keyframe(Instant::now());
                    let _ = handle.reply(StatusCode::OK).await;
                    return None;
                }
                // DTMF as SIP INFO (application/dtmf-relay: `Signal=5`).
                let digit = body
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Signal="))
                    .and_then(|d| d.trim().chars().next())
                    .and_then(Digit::new);
                let status = if digit.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::BadRequest
                };
                let _ = handle.reply(status).await;
                if let Some(d) = digit {
                    self.digit(d);
                }
                None
            }
            Some(DialogState::Options(_, _, handle)) => {
                let _ = handle.reply(StatusCode::OK).await;
                None
            }
            Some(_) => None,
            None => Some(End::Hangup),
        }
    }

    /// A re-INVITE or UPDATE: hold, resume, a new address, or a session-timer refresh
    /// (RFC 4028: answered like any other; the phone is the refresher). The codec stays.
    async fn on_offer(&mut self, talk: &mut Talk, body: &[u8], handle: TransactionHandle) {
        let sdp = String::from_utf8_lossy(body).to_string();
        let offer = if sdp.trim().is_empty() {
            Ok(None)
        } else {
            PhoneMedia::parse(&sdp).map(Some)
        };
        let offer = match offer {
            Ok(Some(m)) if m.choose(&[self.phone.codec.0]).is_none() => None,
            Ok(Some(m)) if self.rekey(&m).is_err() => None,
            Ok(o) => Some(o),
            Err(e) => {
                debug!(call = %self.call.id, "re-INVITE with bad SDP: {e}");
                None
            }
        };
        let Some(offer) = offer else {
            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
            return;
        };
        // Offerless: we offer what we have, sendrecv; the ACK answers.
        let direction = offer
            .as_ref()
            .map_or(Direction::SendRecv, |m| m.direction.reversed());
        if let Some(m) = &offer {
            talk.on_hold = m.direction.is_hold() || m.rtp.is_none();
            self.phone.source.renew(m.rtp);
            if m.rtp.is_some() {
                talk.phone_to = m.rtp;
            }
        }
        talk.last_phone_media = Instant::now();
        self.session.1 += 1;
        let answer = LocalMedia {
            direction,
            ..self.phone.local.clone()
        }
        .to_sdp(self.session.0, self.session.1);
        let _ = handle
            .respond(
                StatusCode::OK,
                Some(vec![Header::ContentType("application/sdp".into())]),
                Some(answer.into_bytes()),
            )
            .await;
        info!(call = %self.call.id, on_hold = talk.on_hold, "re-INVITE answered");
    }

    /// A re-offer's keys for the audio: a keyed call stays keyed in its suite (the
    /// endpoint's new key, if any, rekeys what we receive; ours stays), a plain one plain.
    fn rekey(&mut self, offer: &PhoneMedia) -> Result<(), &'static str> {
        let Some(current) = self.phone.local.sdes.as_mut() else {
            return match offer.keying.is_keyed() {
                true => Err("keyed re-offer of a plain call"),
                false => Ok(()),
            };
        };
        let line = offer.keying.reoffer(current)?;
        current.tag = line.tag;
        if line.key != current.theirs {
            current.theirs = line.key.clone();
            if let Some(srtp) = self.phone.protection.srtp_mut() {
                srtp.rekey_receive(&line.key);
            }
        }
        Ok(())
    }
}

/// What the media plane says while a connection of the room leg is set up.
enum Setup {
    /// Its answer to our offer.
    Answer(String),
    /// An offer for the subscriber connection, to answer on the way.
    SubscribeOffer(String),
}

/// The next setup message on a participant's queue (others skipped), or why setup failed:
/// the media plane's error, the session's end, or no answer by `deadline`.
async fn setup_step(
    rx: &mut signaling::outbound::OutboundRx,
    deadline: tokio::time::Instant,
) -> Result<Setup, String> {
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| "the media plane did not answer".to_string())?
            .ok_or("the session ended")?;
        match msg {
            Outbound::Message(ServerMessage::PublishAnswer { sdp }) => {
                return Ok(Setup::Answer(sdp))
            }
            Outbound::Message(ServerMessage::SubscribeOffer { sdp, .. }) => {
                return Ok(Setup::SubscribeOffer(sdp))
            }
            Outbound::Message(ServerMessage::Error { message, .. }) => return Err(message),
            Outbound::Close { reason, .. } => return Err(reason),
            Outbound::Message(_) => {}
        }
    }
}

/// A datagram on `socket`, or never when there is none (a call without video).
async fn recv_on(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The speaker view's next message, or never without one.
async fn view_message(rx: Option<&mut signaling::outbound::OutboundRx>) -> Option<Outbound> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_masked_but_the_last_four() {
        assert_eq!(super::masked("+15551234567"), "+•••••••4567");
        assert_eq!(super::masked("1234"), "1234");
        assert_eq!(super::masked("alice"), "alice");
    }
}

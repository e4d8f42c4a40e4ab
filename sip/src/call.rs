//! One phone call's life after its INVITE was routed to a room: join the room through the
//! hub (an ordinary participant of kind `sip`), set up the room leg, answer the phone,
//! then pump media every 20 ms until either side hangs up, the participant is removed, or
//! no media arrives from the phone for the media timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::StatusCode;
use sfu_core::ParticipantId;
use signaling::hub::{JoinError, Outbound};
use signaling::protocol::{ClientMessage, ServerMessage};
use signaling::{Claims, VideoGrant};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use crate::dispatch::{PinEntry, PinStep};
use crate::gateway::Gateway;
use crate::media::{tone_frame, CallMedia, PhonePacket, FRAME};
use crate::room_leg::RoomLeg;
use crate::sdp::{Codec, LocalMedia, PhoneMedia};

/// What the gateway decided for an incoming call.
/// Where an incoming call goes.
pub enum Route {
    Room(String),
    /// Answer, prompt, read a PIN, then the room it names.
    Pin(PinEntry),
}

pub struct Incoming {
    pub room: Route,
    pub caller: String,
    pub phone: PhoneMedia,
    pub codec: (Codec, u8),
    /// The phone's RTP goes to this socket (bound from the RTP port range).
    pub rtp: UdpSocket,
}

/// How long the room leg may take to be answered by the media plane.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller has to type a PIN.
const PIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The PIN prompt (a 480 Hz tone for 600 ms) and the "wrong PIN" tone (300 Hz, 400 ms).
const PROMPT: (f64, u64) = (480.0, 30);
const WRONG: (f64, u64) = (300.0, 20);

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
type Refusal = (StatusCode, String);

/// The SIP answer to a refused join: a full room is busy (486), a room that does not exist
/// (with auto-create off) is not found (404), a node that takes no one is unavailable.
fn refusal(e: JoinError) -> Refusal {
    let status = match e {
        JoinError::RoomFull(_) => StatusCode::BusyHere,
        JoinError::NoSuchRoom | JoinError::BadRoomName => StatusCode::NotFound,
        JoinError::Draining | JoinError::ServerFull(_) | JoinError::Plane(_) => {
            StatusCode::ServiceUnavailable
        }
        JoinError::Auth(_) | JoinError::UnsupportedVersion(_) => StatusCode::ServerInternalError,
    };
    (status, e.to_string())
}

/// Join `room` as a phone participant: its id and message queue.
fn join(
    gw: &Gateway,
    room: &str,
    caller: &str,
    call: u64,
) -> Result<(ParticipantId, tokio::sync::mpsc::Receiver<Outbound>), Refusal> {
    let internal = |m: &str| (StatusCode::ServerInternalError, m.to_string());
    let keys = gw.hub.keys();
    let key = keys
        .first_key()
        .ok_or_else(|| internal("no API key to mint a token with"))?;
    let claims = Claims {
        iss: key.to_string(),
        sub: format!("sip-{call}"),
        exp: signaling::auth::unix_now() + 24 * 3_600,
        nbf: None,
        name: Some(format!("☎ {}", masked(caller))),
        video: VideoGrant {
            can_publish_sources: vec!["microphone".into()],
            ..VideoGrant::join(room)
        },
    };
    let token = keys
        .mint(key, &claims)
        .ok_or_else(|| internal("could not mint a token"))?;
    gw.hub
        .join(&token, None, signaling::auth::unix_now())
        .map_err(refusal)
}

/// Wait for the media plane's answer to the room leg's publisher offer, answering its
/// subscriber offers on the way.
async fn publish(
    gw: &Gateway,
    id: ParticipantId,
    rx: &mut tokio::sync::mpsc::Receiver<Outbound>,
    leg: &mut RoomLeg,
) -> Result<(), String> {
    let offer = leg.publish_offer().ok_or("no publisher offer")?;
    let mut sources = std::collections::BTreeMap::new();
    if let Some(mid) = leg.mic_mid() {
        sources.insert(mid, "microphone".to_string());
    }
    gw.hub.handle(
        id,
        ClientMessage::PublishOffer {
            sdp: offer,
            sources,
        },
    );
    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| "the media plane did not answer".to_string())?
            .ok_or("the session ended")?;
        match msg {
            Outbound::Message(ServerMessage::PublishAnswer { sdp }) => {
                return leg
                    .publish_answer(Instant::now(), &sdp)
                    .map_err(|e| e.to_string());
            }
            Outbound::Message(ServerMessage::SubscribeOffer { sdp, .. }) => {
                answer_subscribe(gw, id, leg, &sdp)
            }
            Outbound::Message(ServerMessage::Error { message, .. }) => return Err(message),
            Outbound::Close { reason, .. } => return Err(reason),
            Outbound::Message(_) => {}
        }
    }
}

fn answer_subscribe(gw: &Gateway, id: ParticipantId, leg: &mut RoomLeg, sdp: &str) {
    match leg.subscribe_offer(Instant::now(), sdp) {
        Ok(answer) => gw
            .hub
            .handle(id, ClientMessage::SubscribeAnswer { sdp: answer }),
        Err(e) => warn!(participant = %id, "room leg: {e}"),
    }
}

/// Run the call to its end. The dialog has been created; the phone is waiting for the
/// final response.
pub async fn run(
    gw: Arc<Gateway>,
    call: u64,
    dialog: InviteDialog,
    mut states: DialogStateReceiver,
    inc: Incoming,
) {
    let result = run_inner(&gw, call, &dialog, &mut states, inc).await;
    if let Err(why) = &result {
        info!(call, "call ended: {why}");
    }
    gw.call_ended();
}

async fn run_inner(
    gw: &Gateway,
    call: u64,
    dialog: &InviteDialog,
    states: &mut DialogStateReceiver,
    inc: Incoming,
) -> Result<(), String> {
    let bind = || UdpSocket::bind(SocketAddr::new(gw.media_ip, 0));
    let pub_socket = bind().await.map_err(|e| e.to_string())?;
    let sub_socket = bind().await.map_err(|e| e.to_string())?;
    let pub_addr = pub_socket.local_addr().map_err(|e| e.to_string())?;
    let sub_addr = sub_socket.local_addr().map_err(|e| e.to_string())?;
    let mut leg = RoomLeg::new(Instant::now(), pub_addr, sub_addr);
    let law = match inc.codec.0 {
        Codec::Pcma => crate::g711::Law::Alaw,
        _ => crate::g711::Law::Ulaw,
    };
    let mut media = CallMedia::new(
        law,
        inc.codec.1,
        inc.phone.telephone_event.map(|(pt, _)| pt),
        rand::random(),
        rand::random(),
    )
    .map_err(|e| e.to_string())?;
    let rtp_addr = inc.rtp.local_addr().map_err(|e| e.to_string())?;
    let local = LocalMedia {
        rtp: SocketAddr::new(gw.advertised, rtp_addr.port()),
        codecs: vec![inc.codec],
        telephone_event: inc.phone.telephone_event,
        ptime_ms: 20,
        direction: inc.phone.direction.reversed(),
    };
    let accept = || {
        dialog
            .accept(
                Some(vec![rsipstack::sip::Header::ContentType(
                    "application/sdp".into(),
                )]),
                Some(local.to_sdp(call, 1).into_bytes()),
            )
            .map_err(|e| e.to_string())
    };
    // With a PIN: answer first, read the PIN, and a failure from here on is a BYE.
    let (room, answered) = match inc.room {
        Route::Room(r) => (r, false),
        Route::Pin(entry) => {
            accept()?;
            info!(call, "call answered for PIN entry");
            match read_pin(states, &inc.rtp, inc.phone.rtp, &mut media, entry).await {
                Ok(r) => (r, true),
                Err(e) => {
                    crate::gateway::call_result("pin_failed".into());
                    let _ = dialog.bye().await;
                    return Err(e);
                }
            }
        }
    };
    let fail = |(status, e): Refusal| async move {
        crate::gateway::call_result(status.code().to_string());
        if answered {
            let _ = dialog.bye().await;
        } else {
            let _ = dialog.reject(Some(status), Some(e.clone()));
        }
        Err::<(), String>(e)
    };
    let (id, mut rx) = match join(gw, &room, &inc.caller, call) {
        Ok(j) => j,
        Err(r) => return fail(r).await,
    };
    let guard = Leave { gw, id };
    if let Err(e) = publish(gw, id, &mut rx, &mut leg).await {
        return fail((StatusCode::ServiceUnavailable, e)).await;
    }
    if !answered {
        accept()?;
    }
    info!(call, room = %room, participant = %id, codec = ?inc.codec.0, "call answered");
    crate::gateway::call_result("answered".into());
    let mut phone_to = inc.phone.rtp;
    let mut on_hold = inc.phone.direction.is_hold();
    let mut version = 1u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut last_phone_media = Instant::now();
    let (mut ticks, mut room_in, mut to_room) = (0u64, 0u64, 0u64);
    let mut leg_wake = leg.timeout(Instant::now());
    let (mut pbuf, mut lbuf, mut sbuf) = (vec![0u8; 2_048], vec![0u8; 2_048], vec![0u8; 2_048]);
    let end = loop {
        let wake = tokio::time::Instant::from_std(leg_wake);
        tokio::select! {
            _ = ticker.tick() => {
                let now = Instant::now();
                ticks += 1;
                for a in leg.take_audio() {
                    room_in += 1;
                    let _ = media.room_packet(a);
                }
                if ticks % 250 == 0 {
                    debug!(call, ticks, room_in, to_room, publishing = leg.publishing(), sources = media.sources(), "media");
                }
                let t = media.tick().map_err(|e| e.to_string())?;
                if let Some((opus, level)) = t.to_room {
                    if leg.publishing() {
                        to_room += 1;
                        leg.write_audio(now, &opus, level);
                    }
                }
                if let (Some(to), false) = (phone_to, on_hold) {
                    let _ = inc.rtp.send_to(&t.to_phone, to).await;
                }
                if on_hold {
                    // A held phone sends nothing: that is no reason to hang up.
                    last_phone_media = now;
                }
                if now.duration_since(last_phone_media) > gw.media_timeout {
                    break "no media from the phone";
                }
                if !leg.alive() {
                    break "the room leg failed";
                }
            }
            r = inc.rtp.recv_from(&mut pbuf) => {
                let Ok((n, from)) = r else { continue };
                // Symmetric RTP: answer where the phone's packets come from, but only
                // from the address the phone's SDP named (any port: NAT), never others.
                if inc.phone.rtp.is_some_and(|a| a.ip() != from.ip()) {
                    crate::gateway::rtp_dropped("source");
                    continue;
                }
                match media.phone_packet(&pbuf[..n]) {
                    Ok(PhonePacket::Audio) => {
                        phone_to = Some(from);
                        last_phone_media = Instant::now();
                    }
                    Ok(PhonePacket::Digit(d)) => {
                        last_phone_media = Instant::now();
                        metrics::counter!("switchboard_sip_dtmf_digits_total").increment(1);
                        send_digit(gw, id, d);
                    }
                    Ok(PhonePacket::DigitRepeat) => last_phone_media = Instant::now(),
                    Ok(PhonePacket::Rtcp) => {}
                    Err(e) => {
                        debug!(call, "phone packet dropped: {e}");
                        crate::gateway::rtp_dropped(match e {
                            crate::media::DropReason::Malformed(_) => "malformed",
                            crate::media::DropReason::PayloadType(_) => "payload_type",
                            crate::media::DropReason::Dtmf(_) => "dtmf",
                        });
                    }
                }
            }
            r = pub_socket.recv_from(&mut lbuf) => {
                if let Ok((n, from)) = r {
                    leg.receive(Instant::now(), pub_addr, from, &lbuf[..n]);
                }
            }
            r = sub_socket.recv_from(&mut sbuf) => {
                if let Ok((n, from)) = r {
                    leg.receive(Instant::now(), sub_addr, from, &sbuf[..n]);
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                leg.timeout(Instant::now());
            }
            m = rx.recv() => match m {
                Some(Outbound::Message(ServerMessage::SubscribeOffer { sdp, .. })) => answer_subscribe(gw, id, &mut leg, &sdp),
                Some(Outbound::Close { reason, .. }) => {
                    let _ = dialog.bye().await;
                    break if reason.is_empty() { "removed from the room" } else { "removed" };
                }
                Some(Outbound::Message(_)) => {}
                None => {
                    let _ = dialog.bye().await;
                    break "the session ended";
                }
            },
            s = states.recv() => match s {
                Some(DialogState::Terminated(_, reason)) => {
                    debug!(call, ?reason, "dialog terminated");
                    break "hung up";
                }
                Some(DialogState::Updated(_, req, handle)) if req.method == rsipstack::sip::Method::Invite => {
                    // A re-INVITE: hold, resume, or a new address. The codec stays.
                    version += 1;
                    let sdp = String::from_utf8_lossy(&req.body).to_string();
                    let offer = if sdp.trim().is_empty() { Ok(None) } else { PhoneMedia::parse(&sdp).map(Some) };
                    match offer {
                        Ok(Some(m)) if m.choose(&[inc.codec.0]).is_none() => {
                            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                        }
                        Err(e) => {
                            debug!(call, "re-INVITE with bad SDP: {e}");
                            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                        }
                        Ok(m) => {
                            // Offerless: we offer what we have, sendrecv; the ACK answers.
                            let direction = m.as_ref().map_or(crate::sdp::Direction::SendRecv, |m| m.direction.reversed());
                            if let Some(m) = &m {
                                on_hold = m.direction.is_hold() || m.rtp.is_none();
                                if m.rtp.is_some() {
                                    phone_to = m.rtp;
                                }
                            }
                            last_phone_media = Instant::now();
                            let answer = LocalMedia { direction, ..local.clone() }.to_sdp(call, version);
                            let _ = handle.respond(
                                StatusCode::OK,
                                Some(vec![rsipstack::sip::Header::ContentType("application/sdp".into())]),
                                Some(answer.into_bytes()),
                            ).await;
                            info!(call, on_hold, "re-INVITE answered");
                        }
                    }
                }
                Some(DialogState::Info(_, req, handle)) => {
                    // DTMF as SIP INFO (application/dtmf-relay: `Signal=5`).
                    let body = String::from_utf8_lossy(&req.body).to_string();
                    let digit = body.lines().find_map(|l| l.trim().strip_prefix("Signal=")).and_then(|d| d.trim().chars().next()).and_then(crate::dtmf::Digit::new);
                    let _ = handle.reply(if digit.is_some() { StatusCode::OK } else { StatusCode::BadRequest }).await;
                    if let Some(d) = digit {
                        metrics::counter!("switchboard_sip_dtmf_digits_total").increment(1);
                        send_digit(gw, id, d);
                    }
                }
                Some(_) => {}
                None => break "the dialog went away",
            },
        }
        // Every input above drained the leg: advance its clocks only when a timer is due.
        leg_wake = leg.next_wake();
        for d in leg.take_datagrams() {
            let socket = if d.from == sub_addr {
                &sub_socket
            } else {
                &pub_socket
            };
            let _ = socket.send_to(&d.data, d.to).await;
        }
    };
    if end == "no media from the phone" || end == "the room leg failed" {
        let _ = dialog.bye().await;
    }
    drop(guard);
    Err(end.to_string())
}

/// The PIN phase of an answered call: prompt, digits until `#`, the room a right PIN
/// names; an error (hang up) after too many wrong ones, the timeout, or the caller's BYE.
async fn read_pin(
    states: &mut DialogStateReceiver,
    rtp: &UdpSocket,
    phone: Option<SocketAddr>,
    media: &mut CallMedia,
    mut entry: PinEntry,
) -> Result<String, String> {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + PIN_TIMEOUT;
    let mut to = phone;
    let mut tone = Some((PROMPT, 0u64));
    let mut buf = vec![0u8; 2_048];
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let pcm = match tone {
                    Some(((hz, frames), n)) if n < frames => {
                        tone = Some(((hz, frames), n + 1));
                        tone_frame(hz, n)
                    }
                    _ => [0i16; FRAME],
                };
                let packet = media.tick_prompt(&pcm);
                if let Some(to) = to {
                    let _ = rtp.send_to(&packet, to).await;
                }
            }
            r = rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                if phone.is_some_and(|a| a.ip() != from.ip()) {
                    crate::gateway::rtp_dropped("source");
                    continue;
                }
                to = Some(from);
                if let Ok(PhonePacket::Digit(d)) = media.phone_packet(&buf[..n]) {
                    metrics::counter!("switchboard_sip_dtmf_digits_total").increment(1);
                    match entry.digit(d) {
                        PinStep::More => {}
                        PinStep::Join(room) => return Ok(room),
                        PinStep::Wrong { .. } => tone = Some((WRONG, 0)),
                        PinStep::HangUp => return Err("wrong PIN too often".into()),
                    }
                }
            }
            s = states.recv() => match s {
                Some(DialogState::Terminated(..)) | None => return Err("hung up during PIN entry".into()),
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => return Err("no PIN typed".into()),
        }
    }
}

/// A digit the phone typed, to the room: a data message on topic `sip.dtmf`.
fn send_digit(gw: &Gateway, id: ParticipantId, d: crate::dtmf::Digit) {
    gw.hub.handle(
        id,
        ClientMessage::Data {
            payload: serde_json::json!({"type": "dtmf", "digit": d.as_char().to_string()})
                .to_string(),
            topic: Some("sip.dtmf".into()),
            destination: Vec::new(),
        },
    );
}

/// Leaves the room when the call task ends, however it ends.
struct Leave<'a> {
    gw: &'a Gateway,
    id: ParticipantId,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.gw.hub.leave(self.id);
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

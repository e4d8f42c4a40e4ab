//! An incoming call after its INVITE was admitted and routed: the PIN, if its rule asks
//! for one (answer, prompt, digits until `#`), the room, the answer, the conversation.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::Header;
use signaling::sip_calls::CallDirection;
use tracing::info;

use crate::call::{enter_room, masked, Conversation, PhoneLeg, Who};
use crate::dispatch::{PinEntry, PinStep};
use crate::gateway::{call_result, rtp_dropped, Gateway};
use crate::media::{tone_frame, CallMedia, PhonePacket, FRAME};
use crate::sdp::{LocalMedia, PhoneMedia};
use crate::video_leg::VideoSockets;

/// Where an incoming call goes.
pub enum Route {
    Room(String),
    /// Answer, prompt, read a PIN, then the room it names.
    Pin(PinEntry),
}

pub(crate) struct Incoming {
    pub route: Route,
    pub caller: String,
    pub called: String,
    pub phone: PhoneSide,
}

/// The phone's side of an incoming call, as its INVITE left it.
// One per call, moved once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PhoneSide {
    /// The INVITE carried an offer; our answer is ready.
    Answered(PhoneLeg),
    /// An offerless INVITE: `local` is our offer (in the 200), the phone answers in its
    /// ACK.
    Offer {
        rtp: tokio::net::UdpSocket,
        signaling: Option<std::net::IpAddr>,
        local: LocalMedia,
        /// The sockets of the video in our offer.
        video: Option<VideoSockets>,
    },
}

/// How long a caller has to type a PIN.
const PIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The PIN prompt (a 480 Hz tone for 600 ms) and the "wrong PIN" tone (300 Hz, 400 ms).
const PROMPT: (f64, u64) = (480.0, 30);
const WRONG: (f64, u64) = (300.0, 20);

/// Run the call to its end. The dialog has been created; the phone is waiting for the
/// final response.
pub(crate) async fn run(
    gw: Arc<Gateway>,
    dialogs: Arc<DialogLayer>,
    call: u64,
    dialog: InviteDialog,
    mut states: DialogStateReceiver,
    inc: Incoming,
) {
    let room = match &inc.route {
        Route::Room(r) => r.clone(),
        Route::Pin(_) => String::new(),
    };
    let (handle, mut commands) = gw.book.open(
        format!("SC_{call}"),
        &room,
        CallDirection::Inbound,
        &masked(&inc.caller),
        &inc.called,
    );
    let cause = talk(&gw, call, &dialog, &mut states, &mut commands, &handle, inc).await;
    info!(call, "call ended: {cause}");
    handle.ended(&cause);
    dialogs.remove_dialog(&dialog.id());
    gw.call_ended();
}

async fn talk(
    gw: &Gateway,
    call: u64,
    dialog: &InviteDialog,
    states: &mut DialogStateReceiver,
    commands: &mut tokio::sync::mpsc::UnboundedReceiver<crate::call_book::Command>,
    handle: &crate::call_book::CallHandle,
    inc: Incoming,
) -> String {
    let offerless = matches!(inc.phone, PhoneSide::Offer { .. });
    let mut side = Some(inc.phone);
    // With a PIN: answer first, read the PIN, and a failure from here on is a BYE.
    let (room, mut answered) = match inc.route {
        Route::Room(r) if !offerless => (r, None),
        // An offerless INVITE is answered first too: its answer (in the ACK) says whether
        // the endpoint sends video, which its participant declares as it enters. (Each
        // answer is boxed: a call's future holds its legs, too large for a task's stack
        // three times over.)
        Route::Room(r) => match Box::pin(answer(dialog, states, side.take(), call)).await {
            Ok(pm) => (r, Some(pm)),
            Err(e) => return e,
        },
        Route::Pin(entry) => {
            let (mut phone, mut media) =
                match Box::pin(answer(dialog, states, side.take(), call)).await {
                    Ok(pm) => pm,
                    Err(e) => return e,
                };
            info!(call, "call answered for PIN entry");
            match read_pin(gw, states, &mut phone, &mut media, entry).await {
                Ok(r) => {
                    handle.set_room(&r);
                    (r, Some((phone, media)))
                }
                Err(e) => {
                    call_result("pin_failed".into());
                    let _ = dialog.bye().await;
                    return format!("pin_failed: {e}");
                }
            }
        }
    };
    let who = Who::new(
        format!("sip-{call}"),
        format!("☎ {}", masked(&inc.caller)),
        handle,
    );
    // A video endpoint publishes its video and receives the speaker view.
    let video = match (&answered, &side) {
        (Some((p, _)), _) => p.video.as_ref(),
        (None, Some(PhoneSide::Answered(p))) => p.video.as_ref(),
        _ => None,
    }
    .map(|v| (v.chosen.codec, v.remote.max_kbps));
    // The phone may CANCEL (or hang up) while the room is being entered.
    let entered = tokio::select! {
        r = enter_room(gw, &room, &who, video) => r,
        () = ended(states) => return "cancelled".into(),
    };
    let in_room = match entered {
        Ok(r) => r,
        Err((status, e)) => {
            call_result(status.code().to_string());
            if answered.is_some() {
                let _ = dialog.bye().await;
            } else {
                let _ = dialog.reject(Some(status.clone()), Some(e.clone()));
            }
            return format!("rejected {}: {e}", status.code());
        }
    };
    let (phone, media) = match answered.take() {
        Some(pm) => pm,
        None => match Box::pin(answer(dialog, states, side.take(), call)).await {
            Ok(pm) => pm,
            Err(e) => return e,
        },
    };
    info!(call, room = %room, participant = %in_room.id, codec = ?phone.codec.0, "call answered");
    call_result("answered".into());
    handle.answered(in_room.id.0, &who.identity, phone.codec.0.name());
    let conversation = Conversation {
        gw,
        call: handle,
        dialog,
        phone,
        media,
        room: in_room,
        session: (call, 1),
    };
    conversation.run(states, commands).await.cause().into()
}

/// How long an offerless call's ACK (with the phone's answer) may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(32);

/// Answer the call (200 with our SDP) and, for an offerless INVITE, take the phone's
/// answer from its ACK: the phone's side and its media pump, or the end cause (after a
/// BYE where one is due).
async fn answer(
    dialog: &InviteDialog,
    states: &mut DialogStateReceiver,
    side: Option<PhoneSide>,
    call: u64,
) -> Result<(PhoneLeg, CallMedia), String> {
    let side = side.ok_or("failed: answered twice")?;
    let sdp = match &side {
        PhoneSide::Answered(p) => p.local.to_sdp(call, 1),
        PhoneSide::Offer { local, .. } => local.to_sdp(call, 1),
    };
    dialog
        .accept(
            Some(vec![Header::ContentType("application/sdp".into())]),
            Some(sdp.into_bytes()),
        )
        .map_err(|e| format!("failed: {e}"))?;
    let phone = match side {
        PhoneSide::Answered(p) => p,
        PhoneSide::Offer {
            rtp,
            signaling,
            local,
            video,
        } => {
            let settled = match tokio::time::timeout(ACK_TIMEOUT, ack_answer(states, dialog)).await
            {
                Ok(Ok((remote, sdp))) => {
                    PhoneLeg::settle(rtp, signaling, local, video, remote, &sdp)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err("failed: no ACK".into()),
            };
            match settled {
                Ok(p) => p,
                Err(e) => {
                    let _ = dialog.bye().await;
                    return Err(e);
                }
            }
        }
    };
    let media = phone.media().map_err(|e| format!("failed: {e}"))?;
    Ok((phone, media))
}

/// The phone's answer to our offer, from the ACK of our 200: its audio, and the SDP.
async fn ack_answer(
    states: &mut DialogStateReceiver,
    dialog: &InviteDialog,
) -> Result<(PhoneMedia, String), String> {
    loop {
        match states.recv().await {
            Some(DialogState::Confirmed(..)) => {
                let ack = dialog.last_remote_ack().ok_or("failed: no ACK")?;
                let sdp = String::from_utf8_lossy(&ack.body).to_string();
                let audio = PhoneMedia::parse(&sdp)
                    .map_err(|e| format!("failed: the answer in the ACK: {e}"))?;
                return Ok((audio, sdp));
            }
            Some(DialogState::Terminated(..)) | None => return Err("hangup".into()),
            Some(_) => {}
        }
    }
}

/// Resolves when the dialog ends (a CANCEL or BYE), never otherwise.
async fn ended(states: &mut DialogStateReceiver) {
    loop {
        match states.recv().await {
            Some(DialogState::Terminated(..)) | None => return,
            Some(_) => {}
        }
    }
}

/// The PIN phase of an answered call: prompt, digits until `#`, the room a right PIN
/// names; an error (hang up) after too many wrong ones, the timeout, or the caller's BYE.
async fn read_pin(
    gw: &Gateway,
    states: &mut DialogStateReceiver,
    phone: &mut PhoneLeg,
    media: &mut CallMedia,
    mut entry: PinEntry,
) -> Result<String, String> {
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + PIN_TIMEOUT;
    let mut to = phone.remote.rtp;
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
                if let (Some(to), Ok(wire)) = (to, phone.protection.seal(&packet)) {
                    let _ = phone.rtp.send_to(wire, to).await;
                }
            }
            r = phone.rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let clock = phone.clock();
                let Ok(data) = phone.protection.open(&buf[..n]) else {
                    rtp_dropped("srtp");
                    continue;
                };
                if !phone.source.accept(from, crate::rtp_source::rtp_seq(data)) {
                    rtp_dropped("source");
                    continue;
                }
                to = Some(from);
                if let Ok(PhonePacket::Digit(d)) = media.phone_packet(data, clock) {
                    metrics::counter!("switchboard_sip_dtmf_digits_total").increment(1);
                    let step = entry.digit(d);
                    // Every wrong PIN counts against the caller's address, across calls.
                    let locked = matches!(step, PinStep::Wrong { .. } | PinStep::HangUp)
                        && phone.source.signaling.is_some_and(|ip| {
                            gw.pins.lock().failed(ip, signaling::auth::unix_now())
                        });
                    match step {
                        _ if locked => return Err("too many wrong PINs from this address".into()),
                        PinStep::More => {}
                        PinStep::Join(room) => return Ok(room),
                        PinStep::Wrong { .. } => tone = Some((WRONG, 0)),
                        PinStep::HangUp => return Err("wrong PIN too often".into()),
                    }
                }
            }
            () = ended(states) => return Err("hung up during PIN entry".into()),
            _ = tokio::time::sleep_until(deadline) => return Err("no PIN typed".into()),
        }
    }
}

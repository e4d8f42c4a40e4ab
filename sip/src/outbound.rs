//! Calls the gateway places (`POST /api/v1/sip/calls`): to a number through a trunk, to a
//! registered SIP user, or to a SIP URI. We offer PCMU/PCMA and telephone-event, ring up
//! to the ring timeout (then CANCEL), and once the phone answers it joins its room like
//! any incoming call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::DialogStateReceiver;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{StatusCode, StatusCodeKind, Uri};
use rsipstack::transport::SipAddr;
use signaling::sip_calls::{CallDirection, DialRequest, SipCallInfo};
use signaling::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::call::{enter_room, masked, Conversation, PhoneLeg, Who};
use crate::call_book::{CallHandle, Command};
use crate::call_limits::{KeySlot, LimitHit};
use crate::gateway::{call_result, Gateway};
use crate::sdp::{LocalMedia, PhoneMedia};
use crate::video_leg::VideoSockets;

/// Ring timeouts: the default and the longest allowed (seconds).
const RING_DEFAULT: u64 = 30;
const RING_MAX: u64 = 120;

/// A display name as the inside of a SIP quoted-string (RFC 3261 §25.1): `"` and `\`
/// escaped. (Control characters never get here: the API refuses such names.)
fn quoted_string_body(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .fold(String::new(), |mut out, c| {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(c);
            out
        })
}

/// Where a call goes.
struct Target {
    /// The request URI.
    callee: String,
    /// Where the INVITE is sent (None: the request URI's host).
    destination: Option<SocketAddr>,
    /// Our user part in From.
    from: String,
    credential: Option<Credential>,
}

fn invalid(m: impl Into<String>) -> Error {
    Error::Invalid(m.into())
}

/// A user part safe to put in a URI: digits, letters and `+ - _ . *`.
fn user_part(s: &str) -> Result<&str, Error> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.' | '*'));
    ok.then_some(s)
        .ok_or_else(|| invalid("to: 1-64 of A-Z a-z 0-9 + - _ . *, or a sip: URI"))
}

async fn resolve(host_port: &str) -> Result<SocketAddr, Error> {
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_string()
    } else {
        format!("{host_port}:5060")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Unavailable(format!("cannot resolve {host_port}")))
}

fn target(gw: &Gateway, req: &DialRequest) -> Result<Target, Error> {
    if let Some(name) = &req.trunk {
        let trunk = gw
            .access
            .trunk(name)
            .ok_or_else(|| Error::not_found(&format!("trunk {name}")))?;
        let out = trunk
            .outbound
            .as_ref()
            .ok_or_else(|| invalid(format!("trunk {name} has no outbound address")))?;
        let number = user_part(&req.to)?;
        if !out.may_call(number) {
            return Err(Error::Forbidden(format!(
                "to: trunk {name} may not call {number} (its outbound_allow)"
            )));
        }
        return Ok(Target {
            callee: format!("sip:{number}@{}", out.address),
            destination: None,
            from: out.from.clone(),
            credential: out.auth.as_ref().map(|c| Credential {
                username: c.username.clone(),
                password: c.password.clone(),
                realm: None,
                auth_username: None,
            }),
        });
    }
    if let Some(uri) = req.to.strip_prefix("sip:") {
        Uri::try_from(req.to.as_str()).map_err(|_| invalid("to: not a SIP URI"))?;
        if uri.contains(['\r', '\n', ' ', '<', '>']) {
            return Err(invalid("to: not a SIP URI"));
        }
        let host = uri.split_once('@').map_or(uri, |(_, h)| h);
        let host = host.split([';', '?']).next().unwrap_or_default();
        if !gw.may_dial_host(host) {
            return Err(Error::Forbidden(format!(
                "to: {host} is not in sip_outbound_hosts"
            )));
        }
        return Ok(Target {
            callee: req.to.clone(),
            destination: None,
            from: "switchboard".into(),
            credential: None,
        });
    }
    let user = user_part(&req.to)?;
    let binding = gw
        .registered(user)
        .ok_or_else(|| Error::not_found(&format!("registered SIP user {user}")))?;
    Ok(Target {
        callee: binding.contact,
        destination: Some(binding.source),
        from: "switchboard".into(),
        credential: None,
    })
}

/// Place the call; with `wait_until_answered`, resolve once it is answered or over.
pub(crate) async fn dial(gw: Arc<Gateway>, req: DialRequest) -> Result<SipCallInfo, Error> {
    let t = target(&gw, &req)?;
    let slot =
        KeySlot::take(&gw.key_calls, &req.api_key, signaling::auth::unix_now()).map_err(|hit| {
            match hit {
                LimitHit::Concurrent => Error::TooManyCalls("calls in progress".into()),
                LimitHit::Rate => Error::TooManyCalls("calls a minute".into()),
            }
        })?;
    let ring = Duration::from_secs(req.ring_timeout.unwrap_or(RING_DEFAULT).clamp(1, RING_MAX));
    let destination = match t.destination {
        Some(d) => d,
        None => {
            let host = t.callee.split_once('@').map_or("", |(_, h)| h);
            let host = host.split(';').next().unwrap_or_default();
            resolve(host).await?
        }
    };
    let (call, rtp) = gw
        .admit_call()
        .await
        .ok_or_else(|| Error::Unavailable("no capacity for another call".into()))?;
    let port = rtp
        .local_addr()
        .map_err(|e| Error::Unavailable(e.to_string()))?
        .port();
    let mut local = gw.offer(SocketAddr::new(gw.advertised, port));
    // Video is offered too (a video system answers it; a phone rejects it with port 0).
    let video = gw.video_sockets(false).await;
    local.video = video.as_ref().map(VideoSockets::offer);
    let (handle, commands) = gw.book.open(
        format!("SC_{call}"),
        &req.room,
        CallDirection::Outbound,
        &t.from,
        &req.to,
    );
    let id = handle.id.clone();
    let (answered_tx, answered_rx) = oneshot::channel();
    let wait = req.wait_until_answered;
    let placing = Placing {
        call,
        target: t,
        destination,
        local,
        video,
        ring,
        req,
        handle,
        commands,
        answered: Some(answered_tx),
        _slot: slot,
    };
    tokio::spawn(placing.run(gw.clone(), rtp));
    if wait {
        let _ = answered_rx.await;
        let info = gw.book.get(&id).ok_or_else(|| Error::not_found(&id))?;
        if info.answered_at.is_none() {
            return Err(Error::NotAnswered(info.end_cause.unwrap_or_default()));
        }
        return Ok(info);
    }
    gw.book.get(&id).ok_or(Error::not_found(&id))
}

/// A call being placed, and then talked.
struct Placing {
    call: u64,
    target: Target,
    destination: SocketAddr,
    local: LocalMedia,
    /// The sockets of our video offer, until the answer says whether video is on.
    video: Option<VideoSockets>,
    ring: Duration,
    req: DialRequest,
    handle: CallHandle,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Told when the call is answered (or dropped when it never is).
    answered: Option<oneshot::Sender<()>>,
    /// The call as counted against its API key; given back when the call is over.
    _slot: KeySlot,
}

/// The end cause of a call the phone refused.
fn refused(status: &StatusCode) -> String {
    match status.code() {
        486 | 600 => "busy".into(),
        408 | 480 | 487 => "no_answer".into(),
        c => format!("rejected {c}"),
    }
}

impl Placing {
    async fn run(mut self, gw: Arc<Gateway>, rtp: UdpSocket) {
        let cause = self.place(&gw, rtp).await;
        info!(call = self.call, "outbound call ended: {cause}");
        self.handle.ended(&cause);
        gw.call_ended();
    }

    /// INVITE, ring, and talk once answered: the end cause.
    async fn place(&mut self, gw: &Gateway, rtp: UdpSocket) -> String {
        let Some(dialogs) = gw.dialogs() else {
            return "failed: the gateway is not running".into();
        };
        let ours = format!("sip:{}@{}", self.target.from, gw.sip_address());
        let (Ok(caller), Ok(callee), Ok(contact)) = (
            Uri::try_from(ours.as_str()),
            Uri::try_from(self.target.callee.as_str()),
            Uri::try_from(format!("sip:switchboard@{}", gw.sip_address()).as_str()),
        ) else {
            return "failed: bad URI".into();
        };
        let opt = InviteOption {
            caller_display_name: self.req.name.as_deref().map(quoted_string_body),
            caller,
            callee,
            destination: Some(SipAddr::from(self.destination)),
            content_type: Some("application/sdp".into()),
            offer: Some(self.local.to_sdp(self.call, 1).into_bytes()),
            contact,
            credential: self.target.credential.take(),
            ..Default::default()
        };
        let (state_tx, mut states) = dialogs.new_dialog_state_channel();
        let (dialog, invite) = match dialogs.do_invite_async(opt, state_tx) {
            Ok(d) => d,
            Err(e) => return format!("failed: {e}"),
        };
        let outcome = tokio::select! {
            r = invite => r.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())),
            _ = tokio::time::sleep(self.ring) => {
                let _ = dialog.cancel().await;
                return "no_answer".into();
            }
            Some(Command::HangUp) = self.commands.recv() => {
                let _ = dialog.cancel().await;
                return "api".into();
            }
        };
        let (dialog_id, response) = match outcome {
            Ok(r) => r,
            Err(e) => return format!("failed: {e}"),
        };
        let Some(response) = response else {
            return "failed: no response".into();
        };
        if response.status_code.kind() != StatusCodeKind::Successful {
            call_result(response.status_code.code().to_string());
            return refused(&response.status_code);
        }
        let cause = self
            .talk(gw, &dialog, &mut states, &response.body, rtp)
            .await;
        dialogs.remove_dialog(&dialog_id);
        cause
    }

    /// The phone answered with `answer`: into the room, and talk.
    async fn talk(
        &mut self,
        gw: &Gateway,
        dialog: &InviteDialog,
        states: &mut DialogStateReceiver,
        answer: &[u8],
        rtp: UdpSocket,
    ) -> String {
        let remote = match PhoneMedia::parse(&String::from_utf8_lossy(answer)) {
            Ok(m) => m,
            Err(e) => {
                let _ = dialog.bye().await;
                return format!("failed: bad SDP answer: {e}");
            }
        };
        // Video when the answer accepted it, plain, with one of our codecs.
        let settled = PhoneLeg::settle(
            rtp,
            Some(self.destination.ip()),
            self.local.clone(),
            self.video.take(),
            remote,
            &String::from_utf8_lossy(answer),
        );
        let phone = match settled {
            Ok(p) => p,
            Err(e) => {
                let _ = dialog.bye().await;
                return e;
            }
        };
        let codec = phone.codec;
        let room_video = phone
            .video
            .as_ref()
            .map(|v| (v.chosen.codec, v.remote.max_kbps));
        let mut media = match phone.media() {
            Ok(m) => m,
            Err(e) => {
                let _ = dialog.bye().await;
                return format!("failed: {e}");
            }
        };
        let req = &self.req;
        let who = Who::new(
            req.identity
                .clone()
                .unwrap_or_else(|| format!("sip-{}", self.call)),
            req.name
                .clone()
                .unwrap_or_else(|| format!("☎ {}", masked(&req.to))),
            &self.handle,
        );
        let in_room = match enter_room(gw, &req.room, &who, room_video).await {
            Ok(r) => r,
            Err((status, e)) => {
                let _ = dialog.bye().await;
                return format!("failed: room: {} {e}", status.code());
            }
        };
        call_result("answered".into());
        self.handle
            .answered(in_room.id.0, &who.identity, codec.0.name());
        if let Some(tx) = self.answered.take() {
            let _ = tx.send(());
        }
        if let Some(d) = &req.dtmf {
            media.send_digits(d);
        }
        info!(call = self.call, room = %req.room, participant = %in_room.id, "outbound call answered");
        let conversation = Conversation {
            gw,
            call: &self.handle,
            dialog,
            phone,
            media,
            room: in_room,
            session: (self.call, 1),
        };
        conversation
            .run(states, &mut self.commands)
            .await
            .cause()
            .into()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_display_name_stays_inside_its_quotes() {
        assert_eq!(super::quoted_string_body("Ann"), "Ann");
        assert_eq!(
            super::quoted_string_body("a\" <sip:x@y>;\\"),
            "a\\\" <sip:x@y>;\\\\"
        );
        assert_eq!(
            super::quoted_string_body("a\r\nP-Asserted-Identity: x"),
            "aP-Asserted-Identity: x"
        );
    }
}

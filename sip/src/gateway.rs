//! The SIP endpoint (rsipstack: transactions and dialogs over UDP) and what it does with
//! each request: OPTIONS answered; an INVITE routed by the dispatch rules, checked
//! (capacity, SDP, codecs) and handed to a call task (`call.rs`); requests inside a
//! dialog (ACK, BYE, re-INVITE, INFO) to their dialog.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{udp::UdpConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use signaling::hub::Hub;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::call::{self, Incoming, Route};
use crate::dispatch::{Decision, Dispatcher, Rule};
use crate::sdp::{Codec, PhoneMedia};

/// The gateway's settings (the server's `sip_*` configuration keys).
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Where SIP is received (UDP).
    pub listen: SocketAddr,
    /// The address written in Contact and SDP (default: the listen address).
    pub advertised: Option<IpAddr>,
    /// The RTP ports for phones, inclusive.
    pub rtp_ports: (u16, u16),
    /// Codecs in order of preference.
    pub codecs: Vec<Codec>,
    pub max_calls: usize,
    pub rules: Vec<Rule>,
    /// Development mode: `sip:<room>@host` joins `<room>` when no rule matches.
    pub dev_rooms: bool,
    /// Hang up after this long without media from the phone.
    pub media_timeout: Duration,
}

impl SipConfig {
    pub fn dev(listen: SocketAddr) -> Self {
        SipConfig {
            listen,
            advertised: None,
            rtp_ports: (31_000, 31_999),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            max_calls: 100,
            rules: Vec::new(),
            dev_rooms: true,
            media_timeout: Duration::from_secs(30),
        }
    }
}

/// The gateway's metrics (through the `metrics` facade; the server exports them):
/// `switchboard_sip_calls_total{result}` (`answered`, or the SIP status of a refusal),
/// `switchboard_sip_calls` (in progress), `switchboard_sip_rtp_dropped_total{reason}`,
/// `switchboard_sip_dtmf_digits_total`.
pub(crate) fn rtp_dropped(reason: &'static str) {
    metrics::counter!("switchboard_sip_rtp_dropped_total", "reason" => reason).increment(1);
}

pub(crate) fn call_result(result: String) {
    metrics::counter!("switchboard_sip_calls_total", "result" => result).increment(1);
}

pub struct Gateway {
    pub(crate) hub: Arc<Hub>,
    pub(crate) advertised: IpAddr,
    /// Where room legs bind (the media workers' side).
    pub(crate) media_ip: IpAddr,
    pub(crate) media_timeout: Duration,
    cfg: SipConfig,
    dispatcher: Dispatcher,
    calls: AtomicUsize,
    next_call: AtomicU64,
    next_port: AtomicUsize,
}

impl Gateway {
    /// `media_ip`: an address of this host from which the media workers are reachable.
    pub fn new(cfg: SipConfig, hub: Arc<Hub>, media_ip: IpAddr) -> Arc<Self> {
        let advertised = cfg
            .advertised
            .unwrap_or(if cfg.listen.ip().is_unspecified() {
                media_ip
            } else {
                cfg.listen.ip()
            });
        Arc::new(Gateway {
            hub,
            advertised,
            media_ip,
            media_timeout: cfg.media_timeout,
            dispatcher: Dispatcher::new(cfg.rules.clone(), cfg.dev_rooms),
            calls: AtomicUsize::new(0),
            next_call: AtomicU64::new(1),
            next_port: AtomicUsize::new(0),
            cfg,
        })
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn call_ended(&self) {
        let n = self.calls.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("switchboard_sip_calls").set(n as f64);
    }

    /// Bind a phone RTP socket from the configured range (next free port, round robin).
    async fn rtp_socket(&self) -> Option<UdpSocket> {
        let (lo, hi) = self.cfg.rtp_ports;
        let n = usize::from(hi.saturating_sub(lo)) + 1;
        for _ in 0..n {
            let i = self.next_port.fetch_add(1, Ordering::Relaxed) % n;
            let port = lo + i as u16;
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.cfg.listen.ip(), port)).await {
                return Some(s);
            }
        }
        None
    }

    /// Bind the SIP socket and serve until `cancel`, in a task of its own. Errors are the
    /// bind's: the server refuses to start rather than run without the gateway it was
    /// asked for.
    pub async fn start(
        self: Arc<Self>,
        cancel: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let transport = TransportLayer::new(cancel.clone());
        let udp =
            UdpConnection::create_connection(self.cfg.listen, None, Some(cancel.child_token()))
                .await
                .map_err(|e| format!("sip_listen: binding UDP {}: {e}", self.cfg.listen))?;
        transport.add_transport(udp.into());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_user_agent("switchboard")
            .build();
        let mut incoming = endpoint
            .incoming_transactions()
            .map_err(|e| e.to_string())?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        info!(listen = %self.cfg.listen, advertised = %self.advertised, "SIP gateway listening");
        Ok(tokio::spawn(async move {
            let serve = endpoint.serve();
            tokio::pin!(serve);
            loop {
                tokio::select! {
                    _ = &mut serve => return,
                    _ = cancel.cancelled() => return,
                    tx = incoming.recv() => {
                        let Some(tx) = tx else { return };
                        self.clone().on_request(&dialogs, tx).await;
                    }
                }
            }
        }))
    }

    async fn on_request(self: Arc<Self>, dialogs: &Arc<DialogLayer>, mut tx: Transaction) {
        if let Some(Dialog::Invite(mut d)) = dialogs.match_dialog(&tx) {
            tokio::spawn(async move {
                let _ = d.handle(&mut tx).await;
            });
            return;
        }
        match tx.original.method {
            Method::Invite => self.on_invite(dialogs, tx).await,
            Method::Options => {
                let _ = tx.reply(StatusCode::OK).await;
            }
            Method::Ack => {}
            Method::Bye | Method::Cancel | Method::Info => {
                let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
            }
            _ => {
                let _ = tx.reply(StatusCode::MethodNotAllowed).await;
            }
        }
    }

    async fn reject(&self, tx: &mut Transaction, status: StatusCode, headers: Option<Vec<Header>>) {
        call_result(status.code().to_string());
        let _ = tx
            .reply_with(status, headers.unwrap_or_default(), None)
            .await;
    }

    async fn on_invite(self: Arc<Self>, dialogs: &Arc<DialogLayer>, mut tx: Transaction) {
        let called = tx.original.uri.user().unwrap_or_default().to_string();
        let caller = tx
            .original
            .from_header()
            .ok()
            .and_then(|f| f.uri().ok())
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_default();
        if self.calls() >= self.cfg.max_calls {
            let retry = Header::Other("Retry-After".into(), "30".into());
            return self
                .reject(&mut tx, StatusCode::ServiceUnavailable, Some(vec![retry]))
                .await;
        }
        let room = match self.dispatcher.route(&called, &caller) {
            Decision::Join(room) if signaling::hub::valid_room_name(&room) => Route::Room(room),
            Decision::Join(_) | Decision::NoRoute => {
                return self.reject(&mut tx, StatusCode::NotFound, None).await
            }
            Decision::AskPin(entry) => Route::Pin(entry),
        };
        let sdp = String::from_utf8_lossy(&tx.original.body).to_string();
        if sdp.trim().is_empty() {
            // An offerless INVITE: we would offer in the 200 and take the answer in the ACK.
            return self
                .reject(&mut tx, StatusCode::NotAcceptableHere, None)
                .await;
        }
        let phone = match PhoneMedia::parse(&sdp) {
            Ok(p) => p,
            Err(e) => {
                warn!(%called, "INVITE with bad SDP: {e}");
                return self.reject(&mut tx, StatusCode::BadRequest, None).await;
            }
        };
        let Some(codec) = phone.choose(&self.cfg.codecs) else {
            return self
                .reject(&mut tx, StatusCode::NotAcceptableHere, None)
                .await;
        };
        let Some(rtp) = self.rtp_socket().await else {
            let retry = Header::Other("Retry-After".into(), "30".into());
            return self
                .reject(&mut tx, StatusCode::ServiceUnavailable, Some(vec![retry]))
                .await;
        };
        let contact = rsipstack::sip::Uri::try_from(
            format!(
                "sip:switchboard@{}",
                SocketAddr::new(self.advertised, self.cfg.listen.port())
            )
            .as_str(),
        )
        .ok();
        let (state_tx, states) = dialogs.new_dialog_state_channel();
        let dialog = match dialogs.get_or_create_server_invite(&tx, state_tx, None, contact) {
            Ok(d) => d,
            Err(e) => {
                warn!("INVITE: no dialog: {e}");
                return self
                    .reject(&mut tx, StatusCode::ServerInternalError, None)
                    .await;
            }
        };
        let mut handler = dialog.clone();
        tokio::spawn(async move {
            let _ = handler.handle(&mut tx).await;
        });
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("switchboard_sip_calls").set(n as f64);
        let inc = Incoming {
            room,
            caller,
            phone,
            codec,
            rtp,
        };
        tokio::spawn(call::run(self.clone(), call, dialog, states, inc));
    }
}

//! The SIP endpoint (rsipstack: transactions and dialogs over UDP and TCP) and what it does with
//! each request: OPTIONS answered; an INVITE routed by the dispatch rules, checked
//! (capacity, SDP, codecs) and handed to a call task (`call.rs`); requests inside a
//! dialog (ACK, BYE, re-INVITE, INFO) to their dialog.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::Dialog;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::{udp::UdpConnection, TransportLayer};
use rsipstack::EndpointBuilder;
use signaling::hub::Hub;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::access::{Access, Admission, Credentials, Request as AccessRequest, Trunk};
use crate::call::PhoneLeg;
use crate::call_book::{CallBook, Command};
use crate::call_limits::{CallLimits, KeyLimits};
use crate::dispatch::{Decision, Dispatcher, Rule};
use crate::inbound::{self, Incoming, PhoneSide, Route};
use crate::registrar::{Binding, Registrar};
use crate::sdp::{Codec, LocalMedia, PhoneMedia};
use crate::stranger_budget::StrangerBudget;
use crate::tcp_guard::{ClosedConnections, TcpGuard};
use crate::transport_source::{source, SourceStamp};
use crate::video_leg::{VideoLeg, VideoSockets};
use crate::video_sdp::{PhoneVideo, VideoLine};
use parking_lot::Mutex;
use signaling::auth::unix_now;
use signaling::sip_calls::{DialRequest, SipCallInfo, SipCalls, SipFuture};
use signaling::Error;
use std::sync::OnceLock;

/// The gateway's settings (the server's `sip_*` configuration keys).
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Where SIP is received (UDP and TCP).
    pub listen: SocketAddr,
    /// The address written in Contact and SDP (default: the listen address).
    pub advertised: Option<IpAddr>,
    /// The RTP ports for phones, inclusive.
    pub rtp_ports: (u16, u16),
    /// Codecs in order of preference.
    pub codecs: Vec<Codec>,
    pub max_calls: usize,
    pub rules: Vec<Rule>,
    /// SIP trunks: providers whose calls come in (and outbound calls go out through).
    pub trunks: Vec<Trunk>,
    /// SIP users: phones that authenticate (digest), call in from anywhere and REGISTER.
    pub users: Vec<Credentials>,
    /// Development mode: `sip:<room>@host` joins `<room>` when no rule matches.
    pub dev_rooms: bool,
    /// Hang up after this long without media from the phone.
    pub media_timeout: Duration,
    /// Hosts that calls placed through the API may dial as `sip:` URIs.
    pub outbound_hosts: Vec<String>,
    /// Calls one API key may place (at once, and a minute).
    pub key_limits: KeyLimits,
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
            trunks: Vec::new(),
            users: Vec::new(),
            dev_rooms: true,
            media_timeout: Duration::from_secs(30),
            outbound_hosts: Vec::new(),
            key_limits: KeyLimits::default(),
        }
    }
}

/// The gateway's metrics (through the `metrics` facade; the server exports them):
/// `switchboard_sip_calls_total{result}` (`answered`, or the SIP status of a refusal),
/// `switchboard_sip_calls` (in progress), `switchboard_sip_rtp_dropped_total{reason}`,
/// `switchboard_sip_dtmf_digits_total`, `switchboard_sip_requests_dropped_total{reason}`
/// (requests refused without an answer: `source`), `switchboard_sip_auth_failures_total`,
/// `switchboard_sip_registrations`.
pub(crate) fn rtp_dropped(reason: &'static str) {
    metrics::counter!("switchboard_sip_rtp_dropped_total", "reason" => reason).increment(1);
}

fn request_dropped(reason: &'static str) {
    metrics::counter!("switchboard_sip_requests_dropped_total", "reason" => reason).increment(1);
}

pub(crate) fn call_result(result: String) {
    metrics::counter!("switchboard_sip_calls_total", "result" => result).increment(1);
}

pub struct Gateway {
    pub(crate) hub: Arc<Hub>,
    pub(crate) access: Access,
    pub(crate) book: Arc<CallBook>,
    registrar: Mutex<Registrar>,
    dialogs: OnceLock<Arc<DialogLayer>>,
    pub(crate) advertised: IpAddr,
    /// Where room legs bind (the media workers' side).
    pub(crate) media_ip: IpAddr,
    pub(crate) media_timeout: Duration,
    cfg: SipConfig,
    dispatcher: Dispatcher,
    calls: AtomicUsize,
    next_call: AtomicU64,
    next_port: AtomicUsize,
    /// Calls placed through the API, per API key.
    pub(crate) key_calls: Arc<Mutex<CallLimits>>,
    /// Wrong PINs per caller address.
    pub(crate) pins: Mutex<crate::pin_lockout::PinLockout>,
    /// SIP over TCP: the connections and their limits.
    tcp: Arc<TcpGuard>,
    /// What unknown addresses may send the UDP port.
    strangers: StrangerBudget,
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
            access: Access::new(
                cfg.trunks.clone(),
                cfg.users.clone(),
                &rand::random::<[u8; 32]>(),
            ),
            book: CallBook::new(hub.clone()),
            registrar: Mutex::new(Registrar::default()),
            dialogs: OnceLock::new(),
            hub,
            advertised,
            media_ip,
            media_timeout: cfg.media_timeout,
            dispatcher: Dispatcher::new(cfg.rules.clone(), cfg.dev_rooms),
            calls: AtomicUsize::new(0),
            next_call: AtomicU64::new(1),
            next_port: AtomicUsize::new(0),
            key_calls: Arc::new(Mutex::new(CallLimits::new(cfg.key_limits))),
            pins: Mutex::new(Default::default()),
            tcp: Arc::default(),
            strangers: StrangerBudget::new(std::time::Instant::now()),
            cfg,
        })
    }

    /// Whether a call placed through the API may go to this `host[:port]` as a `sip:` URI.
    pub(crate) fn may_dial_host(&self, host_port: &str) -> bool {
        let host = host_port
            .rsplit_once(':')
            .filter(|(_, p)| p.parse::<u16>().is_ok())
            .map_or(host_port, |(h, _)| h);
        self.cfg.outbound_hosts.iter().any(|allowed| {
            allowed.eq_ignore_ascii_case(host_port) || allowed.eq_ignore_ascii_case(host)
        })
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// The REST API's way to this gateway's calls.
    pub fn api(self: &Arc<Self>) -> Arc<dyn SipCalls> {
        Arc::new(SipApi(self.clone()))
    }

    pub(crate) fn dialogs(&self) -> Option<&Arc<DialogLayer>> {
        self.dialogs.get()
    }

    /// Our SIP address as others should reach it (Contact, From).
    pub(crate) fn sip_address(&self) -> SocketAddr {
        SocketAddr::new(self.advertised, self.cfg.listen.port())
    }

    /// Our SDP offer (outbound calls, offerless INVITEs): the configured codecs and
    /// telephone-event, RTP at `rtp`.
    pub(crate) fn offer(&self, rtp: SocketAddr) -> LocalMedia {
        LocalMedia {
            rtp,
            codecs: self.offer_codecs(),
            telephone_event: Some((EVENT_PT, 8_000)),
            ptime_ms: 20,
            direction: crate::sdp::Direction::SendRecv,
            video: None,
            sdes: None,
        }
    }

    /// The codecs we offer, with their static payload types.
    fn offer_codecs(&self) -> Vec<(Codec, u8)> {
        self.cfg
            .codecs
            .iter()
            .filter_map(|c| match c {
                Codec::Pcmu => Some((Codec::Pcmu, 0)),
                Codec::Pcma => Some((Codec::Pcma, 8)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn registered(&self, user: &str) -> Option<Binding> {
        self.registrar.lock().lookup(user, unix_now()).cloned()
    }

    /// Room for one more call: its number and an RTP socket (counted as in progress
    /// from here; `call_ended` releases it). None when at `max_calls` or out of ports.
    pub(crate) async fn admit_call(&self) -> Option<(u64, UdpSocket)> {
        if self.calls() >= self.cfg.max_calls {
            return None;
        }
        let rtp = self.rtp_socket().await?;
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("switchboard_sip_calls").set(n as f64);
        Some((self.next_call.fetch_add(1, Ordering::Relaxed), rtp))
    }

    pub(crate) fn call_ended(&self) {
        let n = self.calls.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("switchboard_sip_calls").set(n as f64);
    }

    /// Bind a phone RTP socket from the configured range (next free port, round robin).
    /// RTP takes even ports and leaves the odd one above for RTCP (RFC 3550 §11): a
    /// phone's RTCP to its RTP port + 1 never lands on another stream's socket.
    async fn rtp_socket(&self) -> Option<UdpSocket> {
        let (lo, hi) = self.cfg.rtp_ports;
        let first = lo + lo % 2;
        let n = usize::from(hi.saturating_sub(first)) / 2 + 1;
        for _ in 0..n {
            let i = self.next_port.fetch_add(1, Ordering::Relaxed) % n;
            let port = first + 2 * i as u16;
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.cfg.listen.ip(), port)).await {
                return Some(s);
            }
        }
        None
    }

    /// The RTCP socket beside an RTP socket of [`Gateway::rtp_socket`]: its port + 1.
    async fn rtcp_socket(&self, rtp: &UdpSocket) -> Option<UdpSocket> {
        let port = rtp.local_addr().ok()?.port().checked_add(1)?;
        UdpSocket::bind(SocketAddr::new(self.cfg.listen.ip(), port))
            .await
            .ok()
    }

    /// Our answer to a phone's video m-line: accepted with sockets of our own when we
    /// forward one of its codecs and have the ports, else rejected (audio goes on).
    async fn answer_video(&self, v: PhoneVideo) -> (Option<VideoLine>, Option<Box<VideoLeg>>) {
        let rejected = (Some(VideoLine::Rejected { pt: v.first_pt }), None);
        let sdes = match v.keying.answer(crate::sdes::fresh_key()) {
            Ok(s) => s,
            Err(why) => {
                debug!("video m-line cannot be keyed: {why}");
                metrics::counter!("switchboard_sip_video_refused_total", "reason" => "keying")
                    .increment(1);
                return rejected;
            }
        };
        let Some(chosen) = v.choose() else {
            metrics::counter!("switchboard_sip_video_refused_total", "reason" => "codec")
                .increment(1);
            return rejected;
        };
        let Some(sockets) = self.video_sockets(v.rtcp_mux).await else {
            return rejected;
        };
        let direction = v.direction.reversed();
        let (line, leg) = VideoLeg::accept(sockets, v, chosen, direction, sdes);
        (Some(line), Some(leg))
    }

    /// A video endpoint's sockets: RTP on the next even port, RTCP on the one above it
    /// (none with rtcp-mux); None when the range has no free pair.
    pub(crate) async fn video_sockets(&self, rtcp_mux: bool) -> Option<VideoSockets> {
        let rtp = self.rtp_socket().await?;
        let rtcp = match rtcp_mux {
            true => None,
            false => Some(self.rtcp_socket(&rtp).await?),
        };
        let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or_default();
        let rtp_addr = SocketAddr::new(self.advertised, port(&rtp));
        let rtcp_addr = rtcp
            .as_ref()
            .map_or(rtp_addr, |s| SocketAddr::new(self.advertised, port(s)));
        Some(VideoSockets {
            rtp,
            rtcp,
            rtp_addr,
            rtcp_addr,
        })
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
        let me = self.clone();
        transport.set_whitelist(move |ip| {
            let admitted = me.admit_datagram(ip);
            async move { admitted }
        });
        let tcp = tokio::net::TcpListener::bind(self.cfg.listen)
            .await
            .map_err(|e| format!("sip_listen: binding TCP {}: {e}", self.cfg.listen))?;
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_user_agent("switchboard")
            .with_inspector(Box::new(SourceStamp))
            .with_transport_inspector(Box::new(ClosedConnections(self.tcp.clone())))
            .build();
        let mut incoming = endpoint
            .incoming_transactions()
            .map_err(|e| e.to_string())?;
        tokio::spawn(
            self.tcp
                .clone()
                .serve(tcp, endpoint.inner.clone(), cancel.child_token()),
        );
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let _ = self.dialogs.set(dialogs.clone());
        info!(listen = %self.cfg.listen, advertised = %self.advertised, "SIP gateway listening");
        Ok(tokio::spawn(async move {
            let serve = endpoint.serve();
            tokio::pin!(serve);
            let mut sweep = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = &mut serve => return,
                    _ = cancel.cancelled() => return,
                    _ = sweep.tick() => {
                        let n = self.registrar.lock().sweep(unix_now());
                        metrics::gauge!("switchboard_sip_registrations").set(n as f64);
                    }
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
            Method::Register => self.on_register(tx).await,
            Method::Ack => {}
            // Anything else outside a dialog is answered only to those we know: with
            // trunks or users configured, a stranger's OPTIONS, BYE or INFO gets nothing
            // (the gateway is no reflector, and no scanner learns it is here).
            _ if !self.knows(source(&tx.original)) => request_dropped("source"),
            Method::Options => {
                let _ = tx.reply(StatusCode::OK).await;
            }
            Method::Bye | Method::Cancel | Method::Info => {
                let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
            }
            _ => {
                let _ = tx.reply(StatusCode::MethodNotAllowed).await;
            }
        }
    }

    /// Whether requests from `source` are answered outside a dialog: always when the
    /// gateway is open (no trunks, no users), else from a trunk's networks or the address
    /// of a live registration.
    fn knows(&self, source: Option<SocketAddr>) -> bool {
        source.is_some_and(|s| self.knows_ip(s.ip()))
    }

    fn knows_ip(&self, ip: IpAddr) -> bool {
        self.access.is_open()
            || self.access.is_trunk_source(ip)
            || self.registrar.lock().has_source(ip, unix_now())
    }

    /// A UDP datagram from `ip`, before it is parsed: from an address we know, always;
    /// from a stranger, within [`StrangerBudget`].
    fn admit_datagram(&self, ip: IpAddr) -> bool {
        if self.knows_ip(ip) || self.strangers.allow(ip, std::time::Instant::now()) {
            return true;
        }
        request_dropped("flood");
        false
    }

    /// In a cluster, a call joins its room only on the room's home: a room homed here (or
    /// claimed now) goes on; one homed on another node is redirected there (302, Contact
    /// `sip:<called>@<its gateway>`), or refused (503) when that node has no gateway or the
    /// directory cannot be reached.
    async fn place(
        &self,
        room: &str,
        called: &str,
    ) -> Result<(), (StatusCode, Option<Vec<Header>>)> {
        let Some(placement) = self.hub.placement() else {
            return Ok(());
        };
        match placement.place(room).await {
            Ok(signaling::placement::Placed::Here) => Ok(()),
            Ok(signaling::placement::Placed::Elsewhere {
                sip: Some(home), ..
            }) => {
                metrics::counter!("switchboard_sip_redirects_total").increment(1);
                let user = if called.is_empty() { room } else { called };
                let contact = Header::Contact(format!("<sip:{user}@{home}>").into());
                Err((StatusCode::MovedTemporarily, Some(vec![contact])))
            }
            Ok(signaling::placement::Placed::Elsewhere { sip: None, .. }) | Err(_) => {
                Err((StatusCode::ServiceUnavailable, None))
            }
        }
    }

    /// 503 with `Retry-After`: over `max_calls`, or no RTP port free.
    async fn unavailable(&self, tx: &mut Transaction) {
        let retry = Header::Other("Retry-After".into(), "30".into());
        self.reject(tx, StatusCode::ServiceUnavailable, Some(vec![retry]))
            .await
    }

    async fn reject(&self, tx: &mut Transaction, status: StatusCode, headers: Option<Vec<Header>>) {
        call_result(status.code().to_string());
        let _ = tx
            .reply_with(status, headers.unwrap_or_default(), None)
            .await;
    }

    /// Whether a request may go on (trunks, users, digest). `Err(())`: it has been
    /// answered (challenged, refused) or dropped.
    async fn admit(
        &self,
        tx: &mut Transaction,
        called: &str,
        caller: &str,
    ) -> Result<Admission, ()> {
        let Some(source) = source(&tx.original) else {
            request_dropped("source");
            return Err(());
        };
        let (authorization, proxy_authorization) =
            crate::access::authorization_headers(&tx.original);
        let r = AccessRequest {
            method: &tx.original.method,
            uri: &tx.original.uri,
            source: source.ip(),
            called,
            caller,
            authorization: authorization.as_deref(),
            proxy_authorization: proxy_authorization.as_deref(),
        };
        let status = match self.access.admit(&r, unix_now()) {
            a @ (Admission::Trunk(_) | Admission::User(_) | Admission::Open) => {
                // Its TCP connection (if it came on one) has carried an admitted request.
                self.tcp.vouch(source);
                return Ok(a);
            }
            Admission::Drop => {
                debug!(%source, method = %tx.original.method, "request from no trunk or user: dropped");
                request_dropped("source");
                return Err(());
            }
            Admission::Challenge { proxy, header } => {
                let (status, h) = if proxy {
                    (
                        StatusCode::ProxyAuthenticationRequired,
                        Header::ProxyAuthenticate(header.into()),
                    )
                } else {
                    (
                        StatusCode::Unauthorized,
                        Header::WwwAuthenticate(header.into()),
                    )
                };
                let _ = tx.reply_with(status, vec![h], None).await;
                return Err(());
            }
            Admission::Forbidden => {
                metrics::counter!("switchboard_sip_auth_failures_total").increment(1);
                StatusCode::Forbidden
            }
            Admission::NotFound => StatusCode::NotFound,
        };
        self.reject(tx, status, None).await;
        Err(())
    }

    /// REGISTER (RFC 3261 §10.3) from a SIP user, digest-authenticated.
    async fn on_register(self: Arc<Self>, mut tx: Transaction) {
        let user = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.uri().ok())
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_default();
        if !self.access.is_user(&user) {
            request_dropped("source");
            return;
        }
        match self.admit(&mut tx, &user, &user).await {
            Ok(Admission::User(who)) if who == user => {}
            Ok(_) => {
                let _ = tx.reply(StatusCode::Forbidden).await;
                return;
            }
            Err(()) => return,
        }
        let Some(source) = source(&tx.original) else {
            return;
        };
        let expires_header = tx
            .original
            .expires_header()
            .and_then(|e| e.value().trim().parse::<u32>().ok());
        let contact = tx
            .original
            .contact_header()
            .ok()
            .and_then(|c| c.typed().ok());
        let granted = match contact {
            Some(c) if c.uri.to_string() != "*" => {
                let expires = c.expires().or(expires_header);
                self.registrar.lock().register(
                    &user,
                    c.uri.to_string(),
                    source,
                    expires,
                    unix_now(),
                )
            }
            // `Contact: *` with `Expires: 0`, or no Contact: remove, or just query.
            Some(_) if expires_header == Some(0) => {
                self.registrar
                    .lock()
                    .register(&user, String::new(), source, Some(0), unix_now())
            }
            _ => 0,
        };
        let mut headers = vec![Header::Expires(granted.to_string().into())];
        if let Some(b) = self.registered(&user) {
            headers.push(Header::Contact(
                format!("<{}>;expires={granted}", b.contact).into(),
            ));
        }
        info!(%user, %source, granted, "REGISTER");
        let n = self.registrar.lock().sweep(unix_now());
        metrics::gauge!("switchboard_sip_registrations").set(n as f64);
        let _ = tx.reply_with(StatusCode::OK, headers, None).await;
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
        if self.admit(&mut tx, &called, &caller).await.is_err() {
            return;
        }
        if self.calls() >= self.cfg.max_calls {
            return self.unavailable(&mut tx).await;
        }
        let route = match self.dispatcher.route(&called, &caller) {
            Decision::Join(room) if signaling::hub::valid_room_name(&room) => Route::Room(room),
            Decision::Join(_) | Decision::NoRoute => {
                return self.reject(&mut tx, StatusCode::NotFound, None).await
            }
            Decision::AskPin(entry) => Route::Pin(entry),
        };
        if let Route::Room(room) = &route {
            if let Err(refusal) = self.place(room, &called).await {
                return self.reject(&mut tx, refusal.0, refusal.1).await;
            }
        }
        let from = source(&tx.original).map(|s| s.ip());
        if matches!(route, Route::Pin(_))
            && from.is_some_and(|ip| self.pins.lock().is_locked(ip, unix_now()))
        {
            return self.reject(&mut tx, StatusCode::Forbidden, None).await;
        }
        if tx.original.body.len() > MAX_SDP {
            return self.reject(&mut tx, StatusCode::BadRequest, None).await;
        }
        let sdp = String::from_utf8_lossy(&tx.original.body).to_string();
        // An offerless INVITE: we offer in the 200 and take the answer from the ACK.
        let offer = if sdp.trim().is_empty() {
            None
        } else {
            let remote = match PhoneMedia::parse(&sdp) {
                Ok(p) => p,
                Err(e) => {
                    warn!(%called, "INVITE with bad SDP: {e}");
                    return self.reject(&mut tx, StatusCode::BadRequest, None).await;
                }
            };
            let Some(codec) = remote.choose(&self.cfg.codecs) else {
                return self
                    .reject(&mut tx, StatusCode::NotAcceptableHere, None)
                    .await;
            };
            let sdes = match remote.keying.answer(crate::sdes::fresh_key()) {
                Ok(s) => s,
                Err(why) => {
                    debug!(%called, "INVITE's audio cannot be keyed: {why}");
                    metrics::counter!("switchboard_sip_srtp_refused_total", "reason" => why)
                        .increment(1);
                    return self
                        .reject(&mut tx, StatusCode::NotAcceptableHere, None)
                        .await;
                }
            };
            Some((remote, codec, sdes, PhoneVideo::parse(&sdp)))
        };
        let Some((call, rtp)) = self.admit_call().await else {
            return self.unavailable(&mut tx).await;
        };
        let contact = rsipstack::sip::Uri::try_from(
            format!("sip:switchboard@{}", self.sip_address()).as_str(),
        )
        .ok();
        let (state_tx, states) = dialogs.new_dialog_state_channel();
        let dialog = match dialogs.get_or_create_server_invite(&tx, state_tx, None, contact) {
            Ok(d) => d,
            Err(e) => {
                warn!("INVITE: no dialog: {e}");
                self.call_ended();
                return self
                    .reject(&mut tx, StatusCode::ServerInternalError, None)
                    .await;
            }
        };
        let signaling = source(&tx.original).map(|s| s.ip());
        let mut handler = dialog.clone();
        tokio::spawn(async move {
            let _ = handler.handle(&mut tx).await;
        });
        let port = rtp.local_addr().map(|a| a.port()).unwrap_or_default();
        let ours = SocketAddr::new(self.advertised, port);
        let phone = match offer {
            Some((remote, codec, sdes, video)) => {
                let (answer, video) = match video {
                    Some(v) => self.answer_video(v).await,
                    None => (None, None),
                };
                let local = LocalMedia {
                    rtp: ours,
                    codecs: vec![codec],
                    telephone_event: remote.telephone_event,
                    ptime_ms: 20,
                    direction: remote.direction.reversed(),
                    video: answer,
                    sdes,
                };
                let mut leg = PhoneLeg::new(rtp, signaling, remote, codec, local);
                leg.video = video;
                PhoneSide::Answered(leg)
            }
            None => {
                // Video is offered too: a video system answers it (a delayed offer, as
                // Cisco and Poly endpoints and CUCM trunks send), a phone leaves it out or
                // at port 0.
                let video = self.video_sockets(false).await;
                let mut local = self.offer(ours);
                local.video = video.as_ref().map(VideoSockets::offer);
                PhoneSide::Offer {
                    rtp,
                    signaling,
                    local,
                    video,
                }
            }
        };
        let inc = Incoming {
            route,
            caller,
            called,
            phone,
        };
        tokio::spawn(inbound::run(
            self.clone(),
            dialogs.clone(),
            call,
            dialog,
            states,
            inc,
        ));
    }
}

/// The payload type of telephone-event in our offers.
const EVENT_PT: u8 = 101;

/// Largest SDP body accepted.
const MAX_SDP: usize = 8 * 1024;

/// The REST API's view of the gateway.
struct SipApi(Arc<Gateway>);

impl SipCalls for SipApi {
    fn dial(&self, req: DialRequest) -> SipFuture<'_, Result<SipCallInfo, Error>> {
        Box::pin(crate::outbound::dial(self.0.clone(), req))
    }

    fn get(&self, id: &str) -> Option<SipCallInfo> {
        self.0.book.get(id)
    }

    fn list(&self, room: Option<&str>) -> Vec<SipCallInfo> {
        self.0.book.list(room)
    }

    fn hang_up(&self, id: &str) -> Result<(), Error> {
        self.0
            .book
            .command(id, Command::HangUp)
            .then_some(())
            .ok_or_else(|| Error::not_found(&format!("call {id} in progress")))
    }

    fn send_dtmf(&self, id: &str, digits: &str) -> Result<(), Error> {
        self.0
            .book
            .command(id, Command::Dtmf(digits.to_string()))
            .then_some(())
            .ok_or_else(|| Error::not_found(&format!("call {id} in progress")))
    }
}

//! One Switchboard node: [`Node::build`] makes its parts from the configuration (keys,
//! telemetry, the media workers and their sockets, webhooks, the hub); [`Node::run`]
//! serves until a drain ends (the cluster, the SIP gateway, the HTTP side, the
//! background tasks), then stops the workers.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use signaling::sip_calls::SipCalls;
use signaling::webhook::{WebhookConfig, WebhookWorker, Webhooks};
use signaling::{AppState, Hub, HubConfig, KeyStore};

use crate::admission::{admission, readiness};
use crate::cluster_node::{self, ClusterNode};
use crate::config::{parse_keys, random_secret, Config, DEV_KEY};
use crate::plane::WorkerPool;
use crate::{
    drain, http_listener, media_events, operations, tcp_accept, telemetry, ufrags, web, worker,
};

pub struct Node {
    cfg: Config,
    /// The development key's name, when `/api/dev/token` is served (development mode).
    dev_key: Option<String>,
    hub: Arc<Hub>,
    pool: Arc<WorkerPool>,
    /// Tells the workers to stop, once the HTTP side is done.
    stop: Arc<AtomicBool>,
    events: media_events::EventRx,
    webhooks: Option<WebhookWorker>,
    prometheus: PrometheusHandle,
    /// The node's one ICE-TCP listener, and the ufrags its connections are handed by.
    ice_tcp: Option<std::net::TcpListener>,
    directory: Arc<ufrags::UfragDirectory>,
}

impl Node {
    /// Keys, telemetry, the media workers (sockets bound, threads running) and the hub.
    pub fn build(cfg: Config) -> anyhow::Result<Self> {
        let (keys, dev_key) = keys(&cfg)?;
        // Before the workers: they register their metric handles at start.
        let prometheus = telemetry::install()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ev_tx, events) = media_events::channel();
        // ICE-TCP: one port for the node, bound before the workers that advertise it.
        let ice_tcp = match cfg.tcp_port() {
            Some(port) => {
                let bind = SocketAddr::new(cfg.rtc_bind, port);
                let l = std::net::TcpListener::bind(bind)
                    .with_context(|| format!("rtc_tcp_port: binding TCP {bind}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let directory = Arc::new(ufrags::UfragDirectory::default());
        let workers = spawn_workers(&cfg, &directory, ev_tx, &stop)?;
        let pool = Arc::new(WorkerPool::new(workers));
        let (webhooks, webhook_worker) = webhooks(&cfg, &keys)?;
        let hub_cfg = HubConfig {
            auto_create: cfg.auto_create,
            empty_timeout: cfg.empty_timeout,
            max_participants: cfg.max_participants,
            turn: cfg.turn()?,
            resume_grace: cfg.resume_grace,
        };
        let hub = Arc::new(Hub::with_config(keys, pool.clone(), hub_cfg, webhooks));
        hub.set_admission(admission(
            pool.clone(),
            cfg.max_tracks,
            cfg.max_worker_packet_rate,
        ));
        Ok(Self {
            cfg,
            dev_key,
            hub,
            pool,
            stop,
            events,
            webhooks: webhook_worker,
            prometheus,
            ice_tcp,
            directory,
        })
    }

    /// Serve until a drain (SIGTERM/SIGINT) is over, then stop the workers.
    pub fn run(self) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (pool, stop) = (self.pool.clone(), self.stop.clone());
        rt.block_on(self.serve())?;
        rt.shutdown_timeout(Duration::from_secs(1));
        stop_workers(pool, &stop);
        tracing::info!("stopped");
        Ok(())
    }

    async fn serve(self) -> anyhow::Result<()> {
        let cfg = &self.cfg;
        // Bound first: a cluster node advertises the port it really got.
        let listener = tokio::net::TcpListener::bind(cfg.http)
            .await
            .with_context(|| format!("http: binding {}", cfg.http))?;
        let cluster = match &cfg.redis_url {
            Some(url) => Some(
                cluster_node::join(
                    cfg,
                    url,
                    listener.local_addr()?.port(),
                    &self.hub,
                    &self.pool,
                )
                .await?,
            ),
            None => None,
        };
        let app = self.routes(cluster.clone()).await?;
        if let Some(l) = self.ice_tcp {
            let l = tokio::net::TcpListener::from_std(l)?;
            tracing::info!(addr = %l.local_addr()?, "ICE-TCP listening");
            let handoffs = self
                .pool
                .workers
                .iter()
                .map(|w| w.handoffs.clone())
                .collect();
            tokio::spawn(tcp_accept::run(l, self.directory.clone(), handoffs));
        }
        spawn_background(
            &self.hub,
            &self.pool,
            self.events,
            self.webhooks,
            &self.prometheus,
        );
        // Listening before the start line: a signal sent on seeing it drains.
        let signals = drain::StopSignals::listen().context("cannot listen for SIGTERM/SIGINT")?;
        let local = listener.local_addr()?;
        // Written, not `println!`: a closed stdout (a supervisor that keeps no reader)
        // must not stop the server.
        let _ = writeln!(
            std::io::stdout(),
            "Switchboard is running: open http://{local}/"
        );
        tracing::info!(url = %format!("http://{local}/"), "Switchboard is running");
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(drain::drain_on_signals(
            signals,
            self.hub.clone(),
            self.pool.clone(),
            cluster.clone(),
            Duration::from_secs(cfg.drain_timeout),
            done_tx,
        ));
        let peers = cluster
            .as_ref()
            .map(|c| c.peer_ips.clone())
            .unwrap_or_default();
        let bounded = http_listener::BoundedListener::new(listener, cfg.http_max_per_ip, peers);
        let serve = axum::serve(bounded, app).with_graceful_shutdown(drained(done_rx.clone()));
        // Once the drain is over, upgraded connections (WebSockets) are closed by it;
        // this bounds the wait for the last of them. (A bound from start-up instead
        // stopped the server after drain_timeout + 10 s: found by the soak.)
        tokio::select! {
            r = serve => r?,
            _ = async {
                drained(done_rx).await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            } => {}
        }
        Ok(())
    }

    /// The HTTP side: the web app, `/readyz`, operations (here or on `metrics_http`),
    /// signaling, the REST API and WHIP/WHEP, and the SIP gateway's API when it runs.
    async fn routes(&self, cluster: Option<Arc<ClusterNode>>) -> anyhow::Result<axum::Router> {
        let cfg = &self.cfg;
        let ready = readiness(
            self.hub.clone(),
            self.pool.clone(),
            cfg.max_worker_packet_rate,
            cluster,
        );
        let mut app = web::router().route(
            "/readyz",
            axum::routing::get(move || std::future::ready(ready())),
        );
        let ops = operations::router(self.prometheus.clone(), self.pool.clone());
        if let Some(addr) = cfg.metrics_http {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics_http: binding {addr}"))?;
            tracing::info!(url = %format!("http://{}/metrics", listener.local_addr()?), "metrics listening");
            tokio::spawn(async move { axum::serve(listener, ops).await });
        } else {
            let access = operations::Access::for_http(
                cfg.metrics_token.as_ref(),
                cfg.http.ip().is_loopback(),
            );
            if matches!(access, operations::Access::Closed) {
                tracing::warn!("/metrics and /debug/stats are off: set metrics_http (their own address) or metrics_token");
            }
            app = app.merge(operations::guarded(ops, access));
        }
        let sip = self.start_sip().await?;
        Ok(app.merge(signaling::router(AppState {
            hub: self.hub.clone(),
            dev_key: self.dev_key.clone(),
            rate: (cfg.api_rate, cfg.api_burst),
            sip,
        })))
    }

    /// The SIP gateway, when `sip_listen` is set: its handle for the REST API.
    async fn start_sip(&self) -> anyhow::Result<Option<Arc<dyn SipCalls>>> {
        let cfg = &self.cfg;
        let Some(listen) = cfg.sip_listen else {
            return Ok(None);
        };
        let sip_cfg = sip::gateway::SipConfig {
            listen,
            advertised: cfg.sip_advertise,
            rtp_ports: cfg.sip_rtp_port_range()?,
            max_calls: cfg.sip_max_calls,
            rules: cfg
                .sip_rules
                .iter()
                .map(|r| r.to_rule())
                .collect::<anyhow::Result<_>>()?,
            trunks: cfg
                .sip_trunks
                .iter()
                .map(|t| t.to_trunk())
                .collect::<anyhow::Result<_>>()?,
            users: cfg.sip_users.iter().map(|u| u.to_credentials()).collect(),
            // Development mode: `sip:<room>@host` joins `<room>` when no rule takes it.
            dev_rooms: cfg.keys.is_none() || cfg.dev,
            media_timeout: Duration::from_secs(cfg.sip_media_timeout),
            outbound_hosts: cfg.sip_outbound_hosts.clone(),
            key_limits: sip::call_limits::KeyLimits {
                max_active: cfg.sip_key_max_calls,
                per_minute: cfg.sip_key_calls_per_minute,
            },
            ..sip::gateway::SipConfig::dev(listen)
        };
        // Room legs reach the media workers from the bind address (loopback when the
        // workers bind every interface).
        let media_ip = if cfg.rtc_bind.is_unspecified() {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            cfg.rtc_bind
        };
        let gw = sip::gateway::Gateway::new(sip_cfg, self.hub.clone(), media_ip);
        gw.clone()
            .start(tokio_util::sync::CancellationToken::new())
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Some(gw.api()))
    }
}

/// The API keys, and the development key's name when `/api/dev/token` is served: without
/// configured keys a development key with a random secret (printed), loopback only.
fn keys(cfg: &Config) -> anyhow::Result<(KeyStore, Option<String>)> {
    let (pairs, dev_mode) = match &cfg.keys {
        Some(k) => (parse_keys(k.expose())?, cfg.dev),
        None => (vec![(DEV_KEY.to_string(), random_secret())], true),
    };
    if cfg.keys.is_none() {
        tracing::warn!(
            "DEVELOPMENT MODE (loopback only): no API keys configured; this run's key is `{DEV_KEY}:{}` (random each start). Tokens are handed out at /api/dev/token. Set SWITCHBOARD_KEYS=key:secret for anything else.",
            pairs[0].1
        );
    } else if cfg.dev {
        tracing::warn!(http = %cfg.http, "dev = true: /api/dev/token hands a token signed with your first key to anyone who can reach this address");
    }
    let dev_key = dev_mode.then(|| pairs[0].0.clone());
    Ok((KeyStore::new(pairs), dev_key))
}

/// One media worker per configured core (or `workers`), worker i on UDP `rtc_port + i`,
/// pinned when `pin` is set.
fn spawn_workers(
    cfg: &Config,
    directory: &Arc<ufrags::UfragDirectory>,
    events: media_events::EventTx,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<worker::WorkerHandle>> {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let n = cfg.workers.unwrap_or_else(|| cores.len().max(1)).max(1);
    let seed = cfg.seed.unwrap_or_else(rand::random);
    let tcp_addr = cfg.tcp_candidate();
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let port = cfg
            .rtc_port
            .checked_add(i as u16)
            .context("rtc_port: the worker port range overflows")?;
        let bind = SocketAddr::new(cfg.rtc_bind, port);
        let socket = UdpSocket::bind(bind)
            .with_context(|| format!("rtc_bind/rtc_port: binding UDP {bind} for worker {i}"))?;
        let core = (cfg.pin && !cores.is_empty()).then(|| cores[i % cores.len()]);
        let w = worker::spawn(
            worker::WorkerSpec {
                index: i,
                socket,
                public_addr: SocketAddr::new(cfg.advertise_ip(), port),
                tcp_addr,
                directory: directory.clone(),
                media_grace: Duration::from_secs(cfg.resume_grace),
                core,
                seed,
            },
            events.clone(),
            stop.clone(),
        )?;
        tracing::info!(worker = i, addr = %w.addr, "media worker listening (UDP)");
        workers.push(w);
    }
    Ok(workers)
}

/// Webhooks signed with the first API key, when `webhook_urls` are set.
fn webhooks(
    cfg: &Config,
    keys: &KeyStore,
) -> anyhow::Result<(Option<Webhooks>, Option<WebhookWorker>)> {
    if cfg.webhook_urls.is_empty() {
        return Ok((None, None));
    }
    let key = keys
        .first_key()
        .context("webhooks need an API key")?
        .to_string();
    let secret = keys.secret(&key).context("webhook key secret")?.to_string();
    let (w, worker) = Webhooks::new(WebhookConfig {
        urls: cfg.webhook_urls.clone(),
        key,
        secret,
        attempts: 5,
        backoff: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
    });
    Ok((Some(w), Some(worker)))
}

/// The tasks that run beside the HTTP side: media events into the hub (and telemetry),
/// webhook delivery, the hub's reaper, and telemetry publishing.
fn spawn_background(
    hub: &Arc<Hub>,
    pool: &Arc<WorkerPool>,
    mut events: media_events::EventRx,
    webhooks: Option<WebhookWorker>,
    prometheus: &PrometheusHandle,
) {
    let h = hub.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            telemetry::observe(&e);
            h.on_media_event(e, std::time::Instant::now());
        }
    });
    if let Some(w) = webhooks {
        tokio::spawn(w.run());
    }
    let h = hub.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            h.reap(std::time::Instant::now());
        }
    });
    tokio::spawn(telemetry::publish(
        pool.clone(),
        hub.clone(),
        prometheus.clone(),
    ));
}

/// Resolves once the drain is over (never, should the drain task end without one).
async fn drained(mut rx: tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|done| *done).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Wake every worker to see `stop`, and wait for their threads.
fn stop_workers(pool: Arc<WorkerPool>, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    for w in &pool.workers {
        w.wake();
    }
    if let Ok(mut pool) = Arc::try_unwrap(pool) {
        for w in &mut pool.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

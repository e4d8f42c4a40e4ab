//! `switchboard`: the SFU server binary. See `docs/architecture.md`.

#![forbid(unsafe_code)]

mod cluster_node;
mod config;
mod conn_slots;
mod drain;
mod framing;
mod http_listener;
mod operations;
mod plane;
mod secret;
mod sip_config;
mod tcp_accept;
mod tcp_links;
mod telemetry;
mod udp;
mod ufrags;
mod web;
mod worker;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::FromArgMatches;
use signaling::webhook::{WebhookConfig, Webhooks};
use signaling::{AppState, Claims, Hub, HubConfig, KeyStore, VideoGrant};

use crate::config::{
    parse_keys, random_secret, Cli, Cmd, Config, ConfigCmd, KeysCmd, TokenArgs, TokenCmd, DEV_KEY,
};
use crate::plane::WorkerPool;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message and its causes on one line; no backtrace for a user's mistake.
            // Written before any logger exists (the configuration may be what failed), and
            // never a panic should stderr be closed.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::from_arg_matches(&config::command().get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Some(Cmd::Token(TokenCmd::Create(t))) => {
            init_logs("info", config::LogFormat::Text);
            token(t)
        }
        Some(Cmd::Config(ConfigCmd::Print)) => {
            print!("{}", Config::load(&cli.serve)?.print());
            Ok(())
        }
        Some(Cmd::Config(ConfigCmd::Docs)) => {
            print!("{}", config::docs_table());
            Ok(())
        }
        Some(Cmd::Keys(KeysCmd::Generate)) => {
            let name: [u8; 6] = rand::random();
            let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
            println!("key{name}:{}", random_secret());
            Ok(())
        }
        Some(Cmd::Serve) | None => {
            let cfg = Config::load(&cli.serve)?;
            init_logs(&cfg.log, cfg.log_format);
            serve(cfg)
        }
    }
}

fn init_logs(default: &str, format: config::LogFormat) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(quiet_sip_messages(&filter))
        // A log line that cannot be written (stderr closed by a supervisor) is lost, not
        // reported with `eprintln!`, which would panic on the same closed stderr.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => logs.init(),
        // One object a line; the event's fields (room, participant, call) flattened beside
        // the message, the span list left out (the fields say what a line is about).
        config::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// rsipstack logs every SIP message whole at INFO, digest answers (`Authorization`,
/// `Proxy-Authorization`) included. Its messages are logged only when the filter names it
/// (`rsipstack=info`), never by a plain level.
fn quiet_sip_messages(filter: &str) -> tracing_subscriber::EnvFilter {
    let filter = if filter.contains("rsipstack") {
        filter.to_string()
    } else {
        format!("{filter},rsipstack=warn")
    };
    tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info,rsipstack=warn".into())
}

fn token(t: TokenArgs) -> anyhow::Result<()> {
    let pairs = parse_keys(&t.keys)?;
    let (key, _) = pairs[0].clone();
    let keys = KeyStore::new(pairs);
    anyhow::ensure!(
        t.no_join || !t.room.is_empty(),
        "--room is needed for a join token (or pass --no-join)"
    );
    let claims = Claims {
        iss: key.clone(),
        sub: t.identity.clone(),
        exp: signaling::auth::unix_now() + t.ttl,
        nbf: None,
        kind: Default::default(),
        metadata: None,
        name: t.name.clone(),
        video: VideoGrant {
            room: t.room.clone(),
            room_join: !t.no_join,
            can_publish: t.can_publish,
            can_subscribe: t.can_subscribe,
            can_publish_data: t.can_publish_data,
            can_publish_sources: vec![],
            hidden: t.hidden,
            room_create: t.room_create,
            room_list: t.room_list,
            room_admin: t.admin,
            sip_call: t.sip_call,
        },
    };
    println!("{}", keys.mint(&key, &claims).context("signing failed")?);
    Ok(())
}

fn serve(args: Config) -> anyhow::Result<()> {
    let (pairs, dev_mode) = match &args.keys {
        Some(k) => (parse_keys(k.expose())?, args.dev),
        None => (vec![(DEV_KEY.to_string(), random_secret())], true),
    };
    let dev_key = dev_mode.then(|| pairs[0].0.clone());
    if args.keys.is_none() {
        tracing::warn!(
            "DEVELOPMENT MODE (loopback only): no API keys configured; this run's key is `{DEV_KEY}:{}` (random each start). Tokens are handed out at /api/dev/token. Set SWITCHBOARD_KEYS=key:secret for anything else.",
            pairs[0].1
        );
    } else if args.dev {
        tracing::warn!(http = %args.http, "dev = true: /api/dev/token hands a token signed with your first key to anyone who can reach this address");
    }
    let keys = KeyStore::new(pairs);
    // Before the workers: they register their metric handles at start.
    let prometheus = telemetry::install()?;

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let n = args.workers.unwrap_or_else(|| cores.len().max(1)).max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let seed = args.seed.unwrap_or_else(rand::random);
    // ICE-TCP: one port for the node, bound before the workers that advertise it.
    let tcp_listener = match args.tcp_port() {
        Some(port) => {
            let bind = SocketAddr::new(args.rtc_bind, port);
            let l = std::net::TcpListener::bind(bind)
                .with_context(|| format!("rtc_tcp_port: binding TCP {bind}"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    let tcp_addr = args.tcp_candidate();
    let directory = Arc::new(ufrags::UfragDirectory::default());
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let port = args
            .rtc_port
            .checked_add(i as u16)
            .context("rtc_port: the worker port range overflows")?;
        let bind = SocketAddr::new(args.rtc_bind, port);
        let socket = UdpSocket::bind(bind)
            .with_context(|| format!("rtc_bind/rtc_port: binding UDP {bind} for worker {i}"))?;
        let public_addr = SocketAddr::new(args.advertise_ip(), port);
        let core = if args.pin && !cores.is_empty() {
            Some(cores[i % cores.len()])
        } else {
            None
        };
        workers.push(worker::spawn(
            worker::WorkerSpec {
                index: i,
                socket,
                public_addr,
                tcp_addr,
                directory: directory.clone(),
                media_grace: std::time::Duration::from_secs(args.resume_grace),
                core,
                seed,
            },
            ev_tx.clone(),
            stop.clone(),
        )?);
    }
    drop(ev_tx);
    let pool = Arc::new(WorkerPool::new(workers));
    let (webhooks, webhook_worker) = if args.webhook_urls.is_empty() {
        (None, None)
    } else {
        let key = keys
            .first_key()
            .context("webhooks need an API key")?
            .to_string();
        let secret = keys.secret(&key).context("webhook key secret")?.to_string();
        let cfg = WebhookConfig {
            urls: args.webhook_urls.clone(),
            key,
            secret,
            attempts: 5,
            backoff: std::time::Duration::from_millis(500),
            timeout: std::time::Duration::from_secs(5),
        };
        let (w, worker) = Webhooks::new(cfg);
        (Some(w), Some(worker))
    };
    let hub_cfg = HubConfig {
        auto_create: args.auto_create,
        empty_timeout: args.empty_timeout,
        max_participants: args.max_participants,
        turn: args.turn()?,
        resume_grace: args.resume_grace,
    };
    let hub = Arc::new(Hub::with_config(keys, pool.clone(), hub_cfg, webhooks));
    hub.set_admission(admission(
        pool.clone(),
        args.max_tracks,
        args.max_worker_packet_rate,
    ));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Bound first: a cluster node advertises the port it really got.
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("http: binding {}", args.http))?;
        let cluster = match &args.redis_url {
            Some(url) => {
                Some(join_cluster(&args, url, listener.local_addr()?.port(), &hub, &pool).await?)
            }
            None => None,
        };
        let h = hub.clone();
        tokio::spawn(async move {
            while let Some(e) = ev_rx.recv().await {
                telemetry::observe(&e);
                h.on_media_event(e, std::time::Instant::now());
            }
        });
        if let Some(w) = webhook_worker {
            tokio::spawn(w.run());
        }
        let h = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
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
        let stats_pool = pool.clone();
        let ready = readiness(
            hub.clone(),
            pool.clone(),
            args.max_worker_packet_rate,
            cluster.clone(),
        );
        let mut app = web::router().route(
            "/readyz",
            axum::routing::get(move || std::future::ready(ready())),
        );
        let ops = operations::router(prometheus.clone(), stats_pool);
        if let Some(addr) = args.metrics_http {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics_http: binding {addr}"))?;
            tracing::info!(url = %format!("http://{}/metrics", listener.local_addr()?), "metrics listening");
            tokio::spawn(async move { axum::serve(listener, ops).await });
        } else {
            let access = operations::Access::for_http(
                args.metrics_token.as_ref(),
                args.http.ip().is_loopback(),
            );
            if matches!(access, operations::Access::Closed) {
                tracing::warn!("/metrics and /debug/stats are off: set metrics_http (their own address) or metrics_token");
            }
            app = app.merge(operations::guarded(ops, access));
        }
        let sip_api = if let Some(listen) = args.sip_listen {
            let cfg = sip::gateway::SipConfig {
                listen,
                advertised: args.sip_advertise,
                rtp_ports: args.sip_rtp_port_range()?,
                max_calls: args.sip_max_calls,
                rules: args
                    .sip_rules
                    .iter()
                    .map(|r| r.to_rule())
                    .collect::<anyhow::Result<_>>()?,
                trunks: args
                    .sip_trunks
                    .iter()
                    .map(|t| t.to_trunk())
                    .collect::<anyhow::Result<_>>()?,
                users: args.sip_users.iter().map(|u| u.to_credentials()).collect(),
                // Development mode: `sip:<room>@host` joins `<room>` when no rule takes it.
                dev_rooms: dev_mode,
                media_timeout: std::time::Duration::from_secs(args.sip_media_timeout),
                outbound_hosts: args.sip_outbound_hosts.clone(),
                key_limits: sip::call_limits::KeyLimits {
                    max_active: args.sip_key_max_calls,
                    per_minute: args.sip_key_calls_per_minute,
                },
                ..sip::gateway::SipConfig::dev(listen)
            };
            // Room legs reach the media workers from the bind address (loopback when
            // the workers bind every interface).
            let media_ip = if args.rtc_bind.is_unspecified() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                args.rtc_bind
            };
            let gw = sip::gateway::Gateway::new(cfg, hub.clone(), media_ip);
            gw.clone()
                .start(tokio_util::sync::CancellationToken::new())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(%listen, "SIP gateway listening (UDP and TCP)");
            Some(gw.api())
        } else {
            None
        };
        let app = app.merge(signaling::router(AppState {
            hub: hub.clone(),
            dev_key,
            rate: (args.api_rate, args.api_burst),
            sip: sip_api,
        }));
        let local = listener.local_addr()?;
        for w in &pool.workers {
            tracing::info!(worker = w.index, addr = %w.addr, "media worker listening (UDP)");
        }
        if let Some(l) = tcp_listener {
            let l = tokio::net::TcpListener::from_std(l)?;
            tracing::info!(addr = %l.local_addr()?, "ICE-TCP listening");
            let handoffs = pool.workers.iter().map(|w| w.handoffs.clone()).collect();
            tokio::spawn(tcp_accept::run(l, directory.clone(), handoffs));
        }
        // Listening before the start line: a signal sent on seeing it drains.
        let signals = drain::StopSignals::listen().context("cannot listen for SIGTERM/SIGINT")?;
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
            hub.clone(),
            pool.clone(),
            cluster.clone(),
            std::time::Duration::from_secs(args.drain_timeout),
            done_tx,
        ));
        // Resolves once the drain is over (never, should the drain task end without one).
        let drained = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            if rx.wait_for(|done| *done).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let peers = cluster.as_ref().map(|c| c.peer_ips.clone()).unwrap_or_default();
        let bounded = http_listener::BoundedListener::new(listener, args.http_max_per_ip, peers);
        let serve = axum::serve(bounded, app)
            .with_graceful_shutdown(drained(done_rx.clone()));
        // Once the drain is over, upgraded connections (WebSockets) are closed by it;
        // this bounds the wait for the last of them. (A bound from start-up instead
        // stopped the server after drain_timeout + 10 s: found by the soak.)
        tokio::select! {
            r = serve => r?,
            _ = async {
                drained(done_rx).await;
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            } => {}
        }
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
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
    tracing::info!("stopped");
    Ok(())
}

/// The node's admission limits: tracks per node, received packets per second per worker.
fn admission(pool: Arc<WorkerPool>, max_tracks: u32, max_rate: u64) -> signaling::hub::Admission {
    Arc::new(move |publishing| {
        if max_tracks > 0 && publishing {
            let tracks: u64 = pool.workers.iter().map(|w| w.stats.lock().tracks).sum();
            if tracks >= u64::from(max_tracks) {
                return Some(format!(
                    "the node carries {tracks} published tracks (max_tracks = {max_tracks})"
                ));
            }
        }
        overloaded(&pool, max_rate)
    })
}

/// A worker over the packet-rate limit, if any.
fn overloaded(pool: &WorkerPool, max_rate: u64) -> Option<String> {
    if max_rate == 0 {
        return None;
    }
    pool.workers.iter().find_map(|w| {
        let rate = w.tel.packet_rate.load(Ordering::Relaxed);
        (rate > max_rate).then(|| {
            format!(
                "worker {} receives {rate} packets/s (max_worker_packet_rate = {max_rate})",
                w.index
            )
        })
    })
}

/// `/readyz`: 200 while the node takes participants; 503 with the reason while draining
/// or over a load limit.
fn readiness(
    hub: Arc<Hub>,
    pool: Arc<WorkerPool>,
    max_rate: u64,
    cluster: Option<Arc<cluster_node::ClusterNode>>,
) -> impl Fn() -> axum::response::Response + Clone + Send + 'static {
    move || {
        use axum::response::IntoResponse;
        let reason = if hub.is_draining() {
            Some("draining".to_string())
        } else if cluster
            .as_ref()
            .is_some_and(|c| !c.healthy.load(Ordering::Relaxed))
        {
            Some("the cluster directory (Redis) is unreachable: no new rooms".to_string())
        } else {
            overloaded(&pool, max_rate)
        };
        match reason {
            None => axum::Json(serde_json::json!({ "ready": true })).into_response(),
            Some(r) => (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "ready": false, "reason": r })),
            )
                .into_response(),
        }
    }
}

/// Cluster mode: register this node, take its id slot, and place rooms through Redis.
async fn join_cluster(
    args: &Config,
    url: &secret::Secret<secret::UrlPassword>,
    http_port: u16,
    hub: &Arc<Hub>,
    pool: &Arc<WorkerPool>,
) -> anyhow::Result<Arc<cluster_node::ClusterNode>> {
    // `url` shows (in these errors) without its password; the client gets the whole.
    let redis = cluster::Redis::new(url.expose())
        .map_err(|e| anyhow::anyhow!("{}", secret::redact_in(&e.to_string(), url.expose())))
        .context("redis_url")?;
    let id = args
        .node_id
        .clone()
        .unwrap_or_else(|| format!("node-{:08x}", rand::random::<u32>()));
    let http = args
        .cluster_url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{http_port}", args.advertise_ip()));
    let media = pool
        .workers
        .iter()
        .map(|w| format!("udp {}", w.addr))
        .collect();
    // Where calls for rooms homed here are redirected by other nodes' gateways.
    let sip = args.sip_listen.map(|l| {
        let ip = args.sip_advertise.unwrap_or(if l.ip().is_unspecified() {
            args.advertise_ip()
        } else {
            l.ip()
        });
        SocketAddr::new(ip, l.port()).to_string()
    });
    let node = Arc::new(cluster_node::ClusterNode::new(
        redis,
        id.clone(),
        http.clone(),
        media,
        sip,
    ));
    let base = node
        .id_base()
        .await
        .with_context(|| format!("redis_url: cannot reach {url}"))?;
    node.publish(hub, pool)
        .await
        .with_context(|| format!("redis_url: cannot register at {url}"))?;
    hub.set_placement(node.clone(), base);
    tokio::spawn(node.clone().run(hub.clone(), pool.clone()));
    tracing::info!(node = %id, url = %http, id_base = base, "joined the cluster");
    Ok(node)
}

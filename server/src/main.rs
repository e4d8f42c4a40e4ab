//! `switchboard`: the SFU server binary. See `docs/architecture.md`.

#![forbid(unsafe_code)]

mod config;
mod plane;
mod telemetry;
mod udp;
mod web;
mod worker;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use signaling::webhook::{WebhookConfig, Webhooks};
use signaling::{AppState, Claims, Hub, HubConfig, KeyStore, VideoGrant};

use crate::config::{parse_keys, Cli, Cmd, ServeArgs, TokenArgs, TokenCmd, DEV_KEY, DEV_SECRET};
use crate::plane::WorkerPool;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Token(TokenCmd::Create(t))) => token(t),
        Some(Cmd::Serve) | None => serve(cli.serve),
    }
}

fn token(t: TokenArgs) -> anyhow::Result<()> {
    let pairs = match &t.keys {
        Some(k) => parse_keys(k)?,
        None => vec![(DEV_KEY.to_string(), DEV_SECRET.to_string())],
    };
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
        },
    };
    println!("{}", keys.mint(&key, &claims).context("signing failed")?);
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (pairs, dev_mode) = match &args.keys {
        Some(k) => (parse_keys(k)?, args.dev),
        None => (vec![(DEV_KEY.to_string(), DEV_SECRET.to_string())], true),
    };
    let dev_key = dev_mode.then(|| pairs[0].0.clone());
    if args.keys.is_none() {
        eprintln!("DEVELOPMENT MODE: no API keys configured; using key `{DEV_KEY}` with secret `{DEV_SECRET}`.");
        eprintln!("Tokens are handed out at /api/dev/token. Set SWITCHBOARD_KEYS=key:secret for production.");
    }
    let keys = KeyStore::new(pairs);

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let n = args.workers.unwrap_or_else(|| cores.len().max(1)).max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let port = args
            .rtc_port
            .checked_add(i as u16)
            .context("rtc port range overflows")?;
        let bind = SocketAddr::new(args.rtc_bind, port);
        let socket =
            UdpSocket::bind(bind).with_context(|| format!("binding UDP {bind} for worker {i}"))?;
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
                core,
                seed,
            },
            ev_tx.clone(),
            stop.clone(),
        )?);
    }
    drop(ev_tx);
    let pool = Arc::new(WorkerPool::new(workers));
    let (webhooks, webhook_worker) = if args.webhook_url.is_empty() {
        (None, None)
    } else {
        let key = keys
            .first_key()
            .context("webhooks need an API key")?
            .to_string();
        let secret = keys.secret(&key).context("webhook key secret")?.to_string();
        let cfg = WebhookConfig {
            urls: args.webhook_url.clone(),
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
        auto_create: !args.no_auto_create,
        empty_timeout: args.empty_timeout,
        max_participants: args.max_participants,
    };
    let hub = Arc::new(Hub::with_config(keys, pool.clone(), hub_cfg, webhooks));

    let prometheus = telemetry::install()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let h = hub.clone();
        tokio::spawn(async move {
            while let Some(e) = ev_rx.recv().await {
                h.on_media_event(e);
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
        tokio::spawn(telemetry::publish(pool.clone(), hub.clone()));
        let stats_pool = pool.clone();
        let app = web::router()
            .route(
                "/metrics",
                axum::routing::get(move || std::future::ready(prometheus.render())),
            )
            .route(
                "/debug/stats",
                axum::routing::get(move || {
                    let p = stats_pool.clone();
                    async move {
                        axum::Json(
                            p.workers
                                .iter()
                                .map(|w| *w.stats.lock())
                                .collect::<Vec<_>>(),
                        )
                    }
                }),
            )
            .merge(signaling::router(AppState {
                hub: hub.clone(),
                dev_key,
                rate: (args.api_rate, args.api_burst),
            }));
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("binding HTTP {}", args.http))?;
        let local = listener.local_addr()?;
        for w in &pool.workers {
            eprintln!("media worker {} on udp {}", w.index, w.addr);
        }
        println!("Switchboard is running: open http://{local}/");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })?;
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
    Ok(())
}

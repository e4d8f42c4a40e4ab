//! `switchboard`: the SFU server binary. See `docs/architecture.md`.

#![forbid(unsafe_code)]

mod admission;
mod cluster_node;
mod config;
mod conn_slots;
mod drain;
mod framing;
mod http_listener;
mod media_events;
mod node;
mod operations;
mod plane;
mod relay_links;
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

use anyhow::Context;
use clap::FromArgMatches;
use signaling::{Claims, KeyStore, VideoGrant};

use crate::config::{
    parse_keys, random_secret, Cli, Cmd, Config, ConfigCmd, KeysCmd, TokenArgs, TokenCmd,
};

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
            node::Node::build(cfg)?.run()
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
/// `Proxy-Authorization`) and SDES media keys (`a=crypto` lines) included. Its messages
/// are logged only when the filter names it (`rsipstack=info`), never by a plain level.
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
        attributes: Default::default(),
        sip: Default::default(),
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
            can_update_own_metadata: false,
        },
    };
    println!("{}", keys.mint(&key, &claims).context("signing failed")?);
    Ok(())
}

//! Command-line and environment configuration of the `switchboard` binary.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{Args, Parser, Subcommand};

/// The development API key pair used when no keys are configured. Printed at start.
pub const DEV_KEY: &str = "devkey";
pub const DEV_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: a WebRTC selective forwarding unit"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Print a signed access token for joining a room.
    Create(TokenArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP listen address (web app, WebSocket signaling, API).
    #[arg(long, env = "SWITCHBOARD_HTTP", default_value = "127.0.0.1:7880")]
    pub http: SocketAddr,
    /// IP the media UDP sockets bind to.
    #[arg(long, env = "SWITCHBOARD_RTC_BIND", default_value = "127.0.0.1")]
    pub rtc_bind: IpAddr,
    /// First UDP port; worker i uses base + i.
    #[arg(long, env = "SWITCHBOARD_RTC_PORT", default_value_t = 7882)]
    pub rtc_port: u16,
    /// IP advertised in ICE candidates (the address clients reach; set it behind NAT or in
    /// containers). Defaults to the bind address, or 127.0.0.1 if that is unspecified.
    #[arg(long, env = "SWITCHBOARD_RTC_ADVERTISE")]
    pub rtc_advertise: Option<IpAddr>,
    /// Media worker threads (default: one per core).
    #[arg(long, env = "SWITCHBOARD_WORKERS")]
    pub workers: Option<usize>,
    /// Pin worker threads to cores.
    #[arg(long, env = "SWITCHBOARD_PIN", default_value_t = true, action = clap::ArgAction::Set)]
    pub pin: bool,
    /// API key pairs, `key:secret` separated by commas. Without any, the server runs in
    /// development mode with a printed development key.
    #[arg(long, env = "SWITCHBOARD_KEYS")]
    pub keys: Option<String>,
    /// Serve `/api/dev/token` even with configured keys (signs with the first key).
    #[arg(long, env = "SWITCHBOARD_DEV")]
    pub dev: bool,
    /// Seed for the shards' generators (ICE credentials, initial sequence numbers).
    #[arg(long, env = "SWITCHBOARD_SEED")]
    pub seed: Option<u64>,
    /// Webhook receivers (comma separated). Events are signed with the first API key.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_URLS", value_delimiter = ',')]
    pub webhook_url: Vec<String>,
    /// Refuse joins to rooms that were not created through the API.
    #[arg(long, env = "SWITCHBOARD_NO_AUTO_CREATE")]
    pub no_auto_create: bool,
    /// Seconds an empty room lives before it is closed (default for new rooms).
    #[arg(long, env = "SWITCHBOARD_EMPTY_TIMEOUT", default_value_t = 300)]
    pub empty_timeout: u64,
    /// Participant limit for new rooms (0: none).
    #[arg(long, env = "SWITCHBOARD_MAX_PARTICIPANTS", default_value_t = 0)]
    pub max_participants: u32,
    /// REST requests per second per API key (sustained).
    #[arg(long, env = "SWITCHBOARD_API_RATE", default_value_t = 50.0)]
    pub api_rate: f64,
    /// REST request burst per API key.
    #[arg(long, env = "SWITCHBOARD_API_BURST", default_value_t = 100.0)]
    pub api_burst: f64,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The room to join (and, with --admin, to administer; without --room an admin token
    /// covers every room).
    #[arg(long, default_value = "")]
    pub room: String,
    #[arg(long)]
    pub identity: String,
    /// Only API grants, no room join.
    #[arg(long)]
    pub no_join: bool,
    /// roomAdmin: manage participants, mutes, metadata and data of --room (or all rooms).
    #[arg(long)]
    pub admin: bool,
    /// roomCreate: create and delete rooms.
    #[arg(long)]
    pub room_create: bool,
    /// roomList: list rooms.
    #[arg(long)]
    pub room_list: bool,
    /// Invisible to other participants.
    #[arg(long)]
    pub hidden: bool,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub can_publish_data: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    pub ttl: u64,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub can_publish: bool,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub can_subscribe: bool,
    /// `key:secret` to sign with (default: the development pair).
    #[arg(long, env = "SWITCHBOARD_KEYS")]
    pub keys: Option<String>,
}

/// Parse `key:secret,key2:secret2`.
pub fn parse_keys(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("keys: `{pair}` is not key:secret"))?;
        if k.is_empty() || v.len() < 16 {
            anyhow::bail!("keys: key `{k}` needs a name and a secret of at least 16 characters");
        }
        out.push((k.to_string(), v.to_string()));
    }
    if out.is_empty() {
        anyhow::bail!("keys: no key:secret pair given");
    }
    Ok(out)
}

impl ServeArgs {
    pub fn advertise_ip(&self) -> IpAddr {
        match self.rtc_advertise {
            Some(ip) => ip,
            None if self.rtc_bind.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => self.rtc_bind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse() {
        assert_eq!(
            parse_keys("a:0123456789abcdef").unwrap(),
            vec![("a".into(), "0123456789abcdef".into())]
        );
        assert_eq!(
            parse_keys("a:0123456789abcdef, b:0123456789abcdefX")
                .unwrap()
                .len(),
            2
        );
        for bad in ["", "a", "a:short", ":0123456789abcdef"] {
            assert!(parse_keys(bad).is_err(), "{bad}");
        }
    }
}

//! Command-line and environment configuration of the `switchboard` binary.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::secret::{KeyNames, Secret, UrlPassword};
use crate::sip_config::{SipRule, SipTrunk, SipUser};

/// The name of the development API key used when no keys are configured. Its secret is
/// random per start ([`dev_secret`]) and printed; development mode serves only on loopback.
pub const DEV_KEY: &str = "devkey";

/// A fresh secret (the development key's, `keys generate`'s): 32 random bytes, hex (never a constant that anyone who has
/// read the source could sign with).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The command line, each `serve` flag's help taken from its key's row in [`KEYS`]: one
/// text for the flag, `config docs` and `docs/configuration.md`.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_args(|a| {
        let id = a.get_id().as_str();
        match KEYS
            .iter()
            .find(|k| k.key == id || k.key.strip_suffix('s') == Some(id))
        {
            Some(k) => {
                let short = k
                    .doc
                    .split(". ")
                    .next()
                    .unwrap_or(k.doc)
                    .trim_end_matches('.');
                a.help(format!("{short} [key: {}; default: {}]", k.key, k.default))
                    .long_help(format!(
                        "{} [key: {}; env: SWITCHBOARD_{}; default: {}]",
                        k.doc,
                        k.key,
                        k.key.to_uppercase(),
                        k.default
                    ))
            }
            None => a,
        }
    })
}

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

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// API key pairs.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Print a new random key pair as `key:secret`, the form `keys` takes.
    Generate,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration (file, environment and flags applied) as TOML,
    /// secrets redacted.
    Print,
    /// Print the table of every key with its default (docs/configuration.md).
    Docs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Print a signed access token for joining a room.
    Create(TokenArgs),
}

/// Every configuration key, declared once: its type in [`Config`] and default, the flag of
/// [`ServeArgs`] (the environment variable `SWITCHBOARD_<KEY>` follows from the name), and
/// its row in [`KEYS`] (what the default shows as, and the text that is the flag's help,
/// `config docs` and `docs/configuration.md`).
macro_rules! config_keys {
    (
        flags { $(
            $(#[serde($($serde:tt)*)])?
            $key:ident: $ty:ty = $default:expr, shown $shown:literal,
                flag #[arg($($arg:tt)*)] $flag:ty,
                $doc:literal;
        )* }
        file_only { $(
            $fkey:ident: $fty:ty = $fdefault:expr, shown $fshown:literal,
                $fdoc:literal;
        )* }
    ) => {
        /// Command-line flags of `serve`. Every one is optional: what is not given comes
        /// from the environment (`SWITCHBOARD_<KEY>`), then the TOML files (`--config`),
        /// then the default. See [`KEYS`] and `docs/configuration.md`.
        #[derive(Debug, Clone, Default, Args, Serialize)]
        pub struct ServeArgs {
            /// TOML configuration files, merged in order (a later file's keys win): repeat
            /// the flag or separate them with commas (also `SWITCHBOARD_CONFIG`). A second
            /// file keeps secrets apart, e.g. SIP trunks from a Kubernetes Secret.
            #[arg(long, env = "SWITCHBOARD_CONFIG", value_delimiter = ',')]
            #[serde(skip)]
            pub config: Vec<std::path::PathBuf>,
            /// The same as `--auto-create false`.
            #[arg(long)]
            #[serde(skip)]
            pub no_auto_create: bool,
            $(
                #[arg($($arg)*)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $key: Option<$flag>,
            )*
        }

        /// The effective configuration of `serve`: defaults, then the TOML files, then the
        /// environment, then flags (later wins).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Config {
            $( $(#[serde($($serde)*)])? pub $key: $ty, )*
            $( pub $fkey: $fty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $( $key: $default, )*
                    $( $fkey: $fdefault, )*
                }
            }
        }

        pub const KEYS: &[KeyDoc] = &[
            $( KeyDoc { key: stringify!($key), default: $shown, doc: $doc, file_only: false }, )*
            $( KeyDoc { key: stringify!($fkey), default: $fshown, doc: $fdoc, file_only: true }, )*
        ];
    };
}

config_keys! {
    flags {
        http: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7880)), shown "127.0.0.1:7880",
            flag #[arg(long)] SocketAddr,
            "HTTP listen address: web app, WebSocket signaling, REST API, WHIP/WHEP and health. `/metrics` and `/debug/stats` are served here only on loopback or with `metrics_token`.";
        metrics_http: Option<SocketAddr> = None, shown "(none)",
            flag #[arg(long)] SocketAddr,
            "A separate listen address for `/metrics` and `/debug/stats`; when set, they are served only there (keep it off the public network).";
        http_max_per_ip: usize = 256, shown "256",
            flag #[arg(long)] usize,
            "HTTP connections (WebSockets included) one client address may hold at once; more are closed as they come (`switchboard_http_refused_total`). Behind a reverse proxy every client has the proxy's address: set it above the proxy's connections, or 0 (no limit) and let the proxy limit clients. Every connection must also send its first request head within 10 s (slow-header clients are closed).";
        metrics_token: Option<Secret> = None, shown "(none)",
            flag #[arg(long)] String,
            "A bearer token that `/metrics` and `/debug/stats` on the HTTP address require (`Authorization: Bearer <token>`; Prometheus: `authorization.credentials`). Without it and without `metrics_http`, they answer only on a loopback HTTP address. Secret: redacted by `config print`.";
        rtc_bind: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST), shown "127.0.0.1",
            flag #[arg(long)] IpAddr,
            "IP the media UDP sockets bind to (`0.0.0.0` for every interface).";
        rtc_port: u16 = 7882, shown "7882",
            flag #[arg(long)] u16,
            "First media UDP port; worker *i* uses `rtc_port + i`.";
        rtc_advertise: Option<IpAddr> = None, shown "(bind address)",
            flag #[arg(long)] IpAddr,
            "IP put in ICE candidates: the address clients reach (set it behind NAT, in containers and on Kubernetes). Defaults to `rtc_bind`, or 127.0.0.1 when that is unspecified.";
        rtc_tcp_port: Option<u16> = None, shown "(rtc_port)",
            flag #[arg(long)] u16,
            "The node's one ICE-TCP port (RFC 6544 passive candidates, offered next to UDP at a lower priority, for clients whose network blocks UDP); every worker's connections arrive there. 0: no ICE-TCP.";
        rtc_tcp_advertise_port: Option<u16> = None, shown "(rtc_tcp_port)",
            flag #[arg(long)] u16,
            "The TCP port put in ICE candidates, when clients reach `rtc_tcp_port` through a port map (443 on a load balancer or a Kubernetes Service).";
        workers: Option<usize> = None, shown "(one per core)",
            flag #[arg(long)] usize,
            "Media worker threads, each with its own UDP port.";
        redis_url: Option<Secret<UrlPassword>> = None, shown "(none: a single node)",
            flag #[arg(long)] String,
            "Cluster mode: the Redis that nodes share (`redis://10.0.0.5:6379`), or the Sentinels that watch it (`redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/primary-name`; a password as `redis+sentinel://:pw@…` is the primary's). Each node registers itself there and rooms get one home node each; a join that reaches another node is relayed to the home (signaling through the node reached, media to the home). Over TLS: `rediss://…` and `rediss+sentinel://…`, the certificate checked against the system's roots and `SSL_CERT_FILE` (a private CA). Without it nothing external is used (`docs/deployment.md`, \"Cluster\").";
        cluster_url: Option<String> = None, shown "(http://<rtc_advertise>:<http port>)",
            flag #[arg(long)] String,
            "Cluster mode: this node's base URL as the other nodes reach it: they relay signaling (WebSocket) and forward REST and WHIP/WHEP for rooms homed here to it, and a client that asks for `moved` is sent to it. `https://…` when a TLS front (a sidecar proxy) stands before the node: the others then connect with TLS, trusting the system's roots and `SSL_CERT_FILE`.";
        node_id: Option<String> = None, shown "(random at start)",
            flag #[arg(long)] String,
            "Cluster mode: this node's name in the registry.";
        relay_port: u16 = 0, shown "0",
            flag #[arg(long)] u16,
            "Cluster mode: the UDP port of this node's relay endpoint (QUIC; on `rtc_bind`; 0: a free one), where the other nodes keep their authenticated links to it. The address (`cluster_url`'s host when it is an IP, else `rtc_advertise`) and the certificate's fingerprint are published in the registry, so any port works; set one when a firewall stands between the nodes.";
        pin: bool = true, shown "true",
            flag #[arg(long)] bool,
            "Pin each worker thread to a core.";
        keys: Option<Secret<KeyNames>> = None, shown "(none: development mode)",
            flag #[arg(long)] String,
            "API key pairs `key:secret[,key2:secret2]` (secrets of 16+ characters) that sign and verify access tokens and webhooks. Secret: redacted by `config print`. Without keys the server runs in development mode: a development key with a random secret (printed at start), `/api/dev/token` for anyone, and HTTP and SIP on loopback only (a reachable address without keys is refused at start). `switchboard keys generate` prints a pair.";
        dev: bool = false, shown "false",
            flag #[arg(long, num_args = 0..=1, default_missing_value = "true")] bool,
            "Serve `/api/dev/token` even with configured keys (signs with the first key): anyone who reaches the HTTP address gets a token, so a warning is logged.";
        seed: Option<u64> = None, shown "(random)",
            flag #[arg(long)] u64,
            "Seed for ICE credentials and initial RTP sequence numbers (reproducible runs).";
        #[serde(deserialize_with = "list_or_commas")]
        webhook_urls: Vec<String> = Vec::new(), shown "[]",
            flag #[arg(long = "webhook-url", value_delimiter = ',')] Vec<String>,
            "Webhook receivers (a TOML list, or comma separated in the environment and flags), `http://` or `https://` (TLS with the system's CA store; add a private CA with `SSL_CERT_FILE`). Events are signed with the first API key.";
        auto_create: bool = true, shown "true",
            flag #[arg(long)] bool,
            "Create a room on its first join; `false` refuses joins to rooms not created through the API (`--no-auto-create`).";
        empty_timeout: u64 = 300, shown "300",
            flag #[arg(long)] u64,
            "Seconds an empty room lives before it is closed (default for new rooms).";
        max_participants: u32 = 0, shown "0",
            flag #[arg(long)] u32,
            "Participant limit per room for new rooms (0: none). Joins over it are refused (`room_full`).";
        max_tracks: u32 = 0, shown "0",
            flag #[arg(long)] u32,
            "Published tracks per node (0: none). Over it, joins that may publish are refused (`server_full`, HTTP 503).";
        max_worker_packet_rate: u64 = 0, shown "0",
            flag #[arg(long)] u64,
            "Received packets per second per worker above which the node stops taking new rooms and participants (`server_full`; `/readyz` turns false) (0: none).";
        api_rate: f64 = 50.0, shown "50",
            flag #[arg(long)] f64,
            "REST requests per second per API key (sustained).";
        api_burst: f64 = 100.0, shown "100",
            flag #[arg(long)] f64,
            "REST request burst per API key.";
        drain_timeout: u64 = 300, shown "300",
            flag #[arg(long)] u64,
            "Seconds a draining server (SIGTERM/SIGINT) waits for rooms to empty before it tells participants it is shutting down and closes. Match Kubernetes' `terminationGracePeriodSeconds` to it (plus a margin).";
        log: String = "info".into(), shown "info",
            flag #[arg(long)] String,
            "Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.";
        log_format: LogFormat = LogFormat::Text, shown "text",
            flag #[arg(long, value_enum)] LogFormat,
            "`text` for people, or `json` for log shippers: one JSON object a line, with the level, target, message and the event's fields (`room`, `participant`, `call`, …) as keys.";
        resume_grace: u64 = 20, shown "20",
            flag #[arg(long)] u64,
            "Seconds a participant keeps its place (others see it as reconnecting) when its signaling socket dropped, for the client to `resume` its session (clients opt in with `resume: true` in `join`), or when its media path broke (ICE went quiet), for the path to come back or the client to restart ICE; 0: it is removed at once.";
        #[serde(deserialize_with = "list_or_commas")]
        turn_urls: Vec<String> = Vec::new(), shown "[]",
            flag #[arg(long, value_delimiter = ',')] Vec<String>,
            "TURN servers handed to clients (`turn:host:3478?transport=udp`, `turn:host:3478?transport=tcp`, `turns:host:443`; a TOML list, or comma separated), in the join response and WHIP/WHEP `Link` headers, with short-lived credentials (`docs/deployment.md`).";
        turn_secret: Option<Secret> = None, shown "(none)",
            flag #[arg(long)] String,
            "The secret shared with the TURN server (coturn: `use-auth-secret`, `static-auth-secret`); credentials are `<expiry>:<identity>` and base64 HMAC-SHA1 of it.";
        turn_ttl: u64 = 86_400, shown "86400",
            flag #[arg(long)] u64,
            "Seconds a TURN credential is valid (coturn checks it on every allocation and refresh: a call over TURN lasts at most this long).";
        sip_listen: Option<SocketAddr> = None, shown "(none: SIP off)",
            flag #[arg(long)] SocketAddr,
            "UDP and TCP address of the SIP gateway (e.g. `127.0.0.1:5060`). When set, phones and SIP trunks can call rooms (`docs/sip.md`); in development mode a call to `sip:<room>@host` joins `<room>`.";
        sip_advertise: Option<IpAddr> = None, shown "(the listen address)",
            flag #[arg(long)] IpAddr,
            "IP written in SIP Contact headers and in the SDP given to phones (set it behind NAT).";
        sip_rtp_ports: String = "31000-31999".into(), shown "31000-31999",
            flag #[arg(long)] String,
            "UDP port range for phones' RTP, `first-last`; one port per call.";
        sip_max_calls: usize = 100, shown "100",
            flag #[arg(long)] usize,
            "Calls at once; more are refused with 503 and `Retry-After`.";
        sip_media_timeout: u64 = 30, shown "30",
            flag #[arg(long)] u64,
            "Seconds without RTP from a phone after which its call is hung up (BYE).";
        #[serde(deserialize_with = "list_or_commas")]
        sip_outbound_hosts: Vec<String> = Vec::new(), shown "[]",
            flag #[arg(long, value_delimiter = ',')] Vec<String>,
            "Hosts (`pbx.example.com`, `192.0.2.7`, or with `:port`) that calls placed through the API may dial as a `sip:` URI; a `sip:` URI to any other host is refused (403). Numbers go out through a trunk (its `outbound_allow`), SIP users by name.";
        sip_key_max_calls: usize = 10, shown "10",
            flag #[arg(long)] usize,
            "Calls placed through the API that one API key may have at once; more are refused (429) and counted in `switchboard_sip_outbound_refused_total{reason=\"concurrent\"}`.";
        sip_key_calls_per_minute: u32 = 30, shown "30",
            flag #[arg(long)] u32,
            "Calls one API key may place in any 60 seconds; more are refused (429) and counted in `switchboard_sip_outbound_refused_total{reason=\"rate\"}`.";
    }
    file_only {
        sip_rules: Vec<SipRule> = Vec::new(), shown "[]",
            "SIP dispatch rules, in the TOML file as `[[sip_rules]]` tables: `numbers` (called user parts; none: every number) and one of `room` (a fixed room), `room_prefix` (a room per caller) or `pins` (`{ \"1234\" = \"board\" }`: the call is answered with a prompt tone, the caller types the PIN and `#` as DTMF; `pin_tries` wrong ones, default 3, hang up). The first match wins; in development mode a call no rule takes joins the room its request URI names.";
        sip_trunks: Vec<SipTrunk> = Vec::new(), shown "[]",
            "SIP trunks, in the TOML file as `[[sip_trunks]]` tables: `name`, `networks` (source networks or addresses of its INVITEs), `numbers` (called numbers it may call; none: any), optional `username`/`password` (inbound INVITEs are challenged with 407), and for outbound calls `outbound_address` (`host:port`), `outbound_number` (caller id) and optional `outbound_username`/`outbound_password`. With trunks or users configured, requests from anyone else get no answer (`docs/sip.md`).";
        sip_users: Vec<SipUser> = Vec::new(), shown "[]",
            "SIP users, in the TOML file as `[[sip_users]]` tables: `username`, `password`. They call in from anywhere after a 401 digest challenge and may REGISTER, to be called through `POST /api/v1/sip/calls`.";
    }
}

/// A list in TOML, or a comma-separated string (environment variables).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        List(Vec<String>),
        One(String),
    }
    Ok(match L::deserialize(d)? {
        L::List(v) => v,
        L::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// One documented configuration key. `docs/configuration.md` is this table (a test
/// checks it).
pub struct KeyDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
    /// A list of tables (`[[sip_trunks]]`): set in a TOML file only, no flag or variable.
    pub file_only: bool,
}

impl Config {
    /// Layer defaults, the TOML file, the environment and the flags; then validate.
    pub fn load(flags: &ServeArgs) -> anyhow::Result<Self> {
        use figment::providers::{Env, Format, Serialized, Toml};
        let mut f = figment::Figment::from(Serialized::defaults(Config::default()));
        for path in &flags.config {
            anyhow::ensure!(
                path.is_file(),
                "config: the file {} does not exist",
                path.display()
            );
            f = f.merge(Toml::file_exact(path));
        }
        let keys: Vec<&str> = KEYS
            .iter()
            .filter(|k| !k.file_only)
            .map(|k| k.key)
            .collect();
        f = f.merge(Env::prefixed("SWITCHBOARD_").only(&keys));
        let mut flags = flags.clone();
        if flags.no_auto_create {
            flags.auto_create = Some(false);
        }
        f = f.merge(Serialized::defaults(&flags));
        let cfg: Config = f
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {}", describe(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that need more than a type: each error names its key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let workers = self.workers.unwrap_or(1);
        anyhow::ensure!(
            self.workers != Some(0),
            "workers: must be at least 1 (leave it unset for one per core)"
        );
        anyhow::ensure!(
            self.workers.is_none_or(|w| w <= 1024),
            "workers: at most 1024"
        );
        anyhow::ensure!(
            (self.rtc_port as usize) + workers <= 65_536 && self.rtc_port > 0,
            "rtc_port: {} + {workers} worker ports do not fit below 65536",
            self.rtc_port
        );
        if let Some(k) = &self.keys {
            parse_keys(k.expose())?;
        }
        self.development_only_on_loopback()?;
        anyhow::ensure!(
            self.api_rate > 0.0 && self.api_rate.is_finite(),
            "api_rate: must be a positive number, not {}",
            self.api_rate
        );
        anyhow::ensure!(
            self.api_burst >= 1.0 && self.api_burst.is_finite(),
            "api_burst: must be at least 1, not {}",
            self.api_burst
        );
        anyhow::ensure!(
            self.drain_timeout <= 86_400,
            "drain_timeout: at most 86400 seconds"
        );
        for u in &self.webhook_urls {
            anyhow::ensure!(
                u.starts_with("http://") || u.starts_with("https://"),
                "webhook_urls: `{u}` is not an http(s) URL"
            );
        }
        anyhow::ensure!(
            self.rtc_tcp_advertise_port != Some(0),
            "rtc_tcp_advertise_port: must be a port (turn ICE-TCP off with rtc_tcp_port = 0)"
        );
        if let Some(u) = &self.redis_url {
            let (shown, u) = (u.to_string(), u.expose());
            anyhow::ensure!(
                [
                    "redis://",
                    "rediss://",
                    "redis+sentinel://",
                    "rediss+sentinel://"
                ]
                .iter()
                .any(|s| u.starts_with(s)),
                "redis_url: `{shown}` is not a redis://, rediss://, redis+sentinel:// or \
                 rediss+sentinel:// URL (this build reaches Redis over TCP, with or without TLS)"
            );
        }
        if let Some(u) = &self.cluster_url {
            anyhow::ensure!(
                u.starts_with("http://") || u.starts_with("https://"),
                "cluster_url: `{u}` is not an http(s) URL"
            );
        }
        if let Some(ip) = self.rtc_advertise {
            anyhow::ensure!(
                !ip.is_unspecified(),
                "rtc_advertise: {ip} cannot be reached; give the address clients use"
            );
        }
        self.turn()?;
        anyhow::ensure!(self.resume_grace <= 600, "resume_grace: 0 to 600 seconds");
        self.sip_rtp_port_range()?;
        for r in &self.sip_rules {
            r.to_rule()?;
        }
        for t in &self.sip_trunks {
            t.to_trunk()?;
        }
        for u in &self.sip_users {
            u.check()?;
        }
        anyhow::ensure!(self.sip_max_calls > 0, "sip_max_calls: must be at least 1");
        anyhow::ensure!(
            self.sip_key_max_calls > 0,
            "sip_key_max_calls: must be at least 1"
        );
        anyhow::ensure!(
            self.sip_key_calls_per_minute > 0,
            "sip_key_calls_per_minute: must be at least 1"
        );
        for h in &self.sip_outbound_hosts {
            anyhow::ensure!(
                !h.is_empty() && !h.contains(['@', '/', ';', ' ', '<', '>']),
                "sip_outbound_hosts: `{h}` is not a host or host:port"
            );
        }
        anyhow::ensure!(
            (1..=3_600).contains(&self.sip_media_timeout),
            "sip_media_timeout: 1 to 3600 seconds"
        );
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| anyhow::anyhow!("log: {e}"))?;
        Ok(())
    }

    /// Without keys the server signs with a development key and hands out tokens to anyone
    /// who asks (`/api/dev/token`); that is only safe where nobody else can reach it. So a
    /// keyless server listens for HTTP and SIP on loopback only.
    fn development_only_on_loopback(&self) -> anyhow::Result<()> {
        if self.keys.is_some() {
            return Ok(());
        }
        let public = [("http", Some(self.http)), ("sip_listen", self.sip_listen)]
            .into_iter()
            .find_map(|(key, addr)| addr.filter(|a| !a.ip().is_loopback()).map(|a| (key, a)));
        if let Some((key, addr)) = public {
            anyhow::bail!(
                "keys: none are configured, and {key} = {addr} is not a loopback address. \
                 Without keys the server runs in development mode (anyone can get a token), \
                 which listens on loopback only. Set API keys for a reachable server: \
                 SWITCHBOARD_KEYS=key:secret (a secret of 16+ characters; \
                 `switchboard keys generate` prints a pair), or `keys` in the TOML file"
            );
        }
        Ok(())
    }

    /// The TURN settings, checked: none without `turn_urls`.
    pub fn turn(&self) -> anyhow::Result<Option<signaling::turn::TurnConfig>> {
        if self.turn_urls.is_empty() {
            anyhow::ensure!(
                self.turn_secret.is_none(),
                "turn_secret: set `turn_urls` too"
            );
            return Ok(None);
        }
        for u in &self.turn_urls {
            anyhow::ensure!(
                u.starts_with("turn:") || u.starts_with("turns:"),
                "turn_urls: `{u}` is not a turn: or turns: URL"
            );
        }
        let secret = self
            .turn_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("turn_secret: needed with turn_urls (coturn's static-auth-secret)")
            })?;
        anyhow::ensure!(
            (60..=7 * 86_400).contains(&self.turn_ttl),
            "turn_ttl: 60 to 604800 seconds"
        );
        Ok(Some(signaling::turn::TurnConfig {
            urls: self.turn_urls.clone(),
            secret: secret.expose().to_string(),
            ttl: self.turn_ttl,
        }))
    }

    /// `sip_rtp_ports` as (first, last).
    pub fn sip_rtp_port_range(&self) -> anyhow::Result<(u16, u16)> {
        let parsed = self.sip_rtp_ports.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        match parsed {
            Some((a, b)) if a > 0 && a <= b => Ok((a, b)),
            _ => anyhow::bail!(
                "sip_rtp_ports: `{}` is not a range `first-last` of UDP ports",
                self.sip_rtp_ports
            ),
        }
    }

    /// The ICE-TCP port to bind (None: ICE-TCP off).
    pub fn tcp_port(&self) -> Option<u16> {
        match self.rtc_tcp_port {
            Some(0) => None,
            Some(p) => Some(p),
            None => Some(self.rtc_port),
        }
    }

    /// The ICE-TCP candidate's address (None: ICE-TCP off).
    pub fn tcp_candidate(&self) -> Option<SocketAddr> {
        let port = self.tcp_port()?;
        Some(SocketAddr::new(
            self.advertise_ip(),
            self.rtc_tcp_advertise_port.unwrap_or(port),
        ))
    }

    pub fn advertise_ip(&self) -> IpAddr {
        match self.rtc_advertise {
            Some(ip) => ip,
            None if self.rtc_bind.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => self.rtc_bind,
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn print(&self) -> String {
        // Secrets serialize redacted (secret.rs).
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}"))
    }
}

/// A figment error as one line: the key, where the value came from, and what is wrong.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "(file)".to_string()
            } else {
                e.path.join(".")
            };
            let from = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            format!("{key}: {} ({from})", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The room to join (and, with --admin, to administer; without --room an admin token
    /// covers every room).
    #[arg(long, default_value = "")]
    pub room: String,
    /// The participant's identity (`sub`): unique in its room; a second join with it
    /// replaces the first.
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
    /// REST: place and manage SIP calls (`/api/v1/sip/calls`) for `--room` (or every room).
    #[arg(long)]
    pub sip_call: bool,
    /// Invisible to other participants.
    #[arg(long)]
    pub hidden: bool,
    /// canPublishData: send data messages to the room.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub can_publish_data: bool,
    /// The display name others see (default: the identity).
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    pub ttl: u64,
    /// canPublish: publish camera, microphone and screen.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub can_publish: bool,
    /// canSubscribe: receive the others' tracks.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub can_subscribe: bool,
    /// `key:secret` to sign with (the server's keys; a development server's random pair is
    /// printed when it starts).
    #[arg(long, env = "SWITCHBOARD_KEYS")]
    pub keys: String,
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

/// The key table of `docs/configuration.md` (`switchboard config docs` prints it; a test
/// checks the file).
pub fn docs_table() -> String {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut s =
        String::from("| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n");
    for k in KEYS {
        if k.file_only {
            s.push_str(&format!(
                "| `{}` | — | — | {} | {} |\n",
                k.key, k.default, k.doc
            ));
            continue;
        }
        let flag = cli
            .get_arguments()
            .find(|a| a.get_id() == k.key)
            .and_then(|a| a.get_long())
            .expect("every key but a file-only one has a flag");
        s.push_str(&format!(
            "| `{}` | `SWITCHBOARD_{}` | `--{flag}` | {} | {} |\n",
            k.key,
            k.key.to_uppercase(),
            k.default,
            k.doc
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_settings_are_checked() {
        let with = |urls: &[&str], secret: Option<&str>, ttl: u64| Config {
            turn_urls: urls.iter().map(|u| u.to_string()).collect(),
            turn_secret: secret.map(Secret::new),
            turn_ttl: ttl,
            ..Config::default()
        };
        assert_eq!(with(&[], None, 86_400).turn().unwrap(), None);
        let t = with(
            &["turn:t:3478?transport=udp", "turns:t:443"],
            Some("s"),
            600,
        )
        .turn()
        .unwrap()
        .unwrap();
        assert_eq!((t.urls.len(), t.ttl), (2, 600));
        for (cfg, why) in [
            (with(&["turn:t"], None, 600), "turn_secret: needed"),
            (with(&["turn:t"], Some(""), 600), "turn_secret: needed"),
            (with(&["stun:t"], Some("s"), 600), "not a turn:"),
            (with(&["turn:t"], Some("s"), 5), "turn_ttl"),
            (with(&[], Some("s"), 600), "set `turn_urls`"),
        ] {
            let e = cfg.turn().unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

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

//! `switchboard-loadtest`: simulated participants (str0m clients over real UDP) against a
//! running SFU, with a report of joins, throughput, one-way latency, loss, layers and the
//! server's CPU per forwarded packet. See `docs/benchmarks.md`.

#![forbid(unsafe_code)]

mod chart;
mod compare;
mod driver;
mod floor;
mod guard;
mod janus;
mod mediasoup;
mod metrics;
mod netns;
mod procstat;
mod scenario;
mod session;
mod target;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use signaling::KeyStore;

use crate::driver::{Ctx, TargetKind};
use crate::guard::Allowed;
use crate::metrics::{
    Agg, JoinReport, LossReport, Percentiles, ReceiveReport, Report, ServerReport,
};
use crate::scenario::ScenarioArgs;

#[derive(Parser)]
#[command(
    name = "switchboard-loadtest",
    version,
    about = "Load tests for Switchboard (and rival SFUs)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and report.
    Run(RunArgs),
    /// Raise the load step by step until loss > 1 % or p99 latency > 50 ms.
    Capacity(CapacityArgs),
    /// The floor: receive, encrypt per subscriber and send, and nothing else.
    Floor {
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        #[arg(long, default_value_t = 100_000)]
        packets: u64,
    },
    /// Run the same scenario against Switchboard and Janus (as root: it creates two
    /// network namespaces joined by a veth pair) and print the ratios.
    Compare(compare::CompareArgs),
    /// Write the Janus configuration the comparisons use (VideoRoom + HTTP on `ip`) into
    /// `dir`, for running Janus by hand (`loadtest/capacity.sh`).
    #[command(hide = true)]
    JanusConfig {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
    },
}

#[derive(Args, Clone)]
pub struct TargetArgs {
    /// A running server's base URL, `http://IP:port` (loopback, unless --target-is-mine).
    /// Without it the harness spawns one.
    #[arg(long)]
    url: Option<String>,
    /// The server at --url is yours (a staging server you run): allow its address, and
    /// only it, as a target, and a non-loopback --bind-ip. Never point a load test at a
    /// server you do not run.
    #[arg(long, requires = "url")]
    target_is_mine: bool,
    /// The kind of server at --url.
    #[arg(long, value_enum, default_value = "switchboard")]
    server: ServerKind,
    /// Local IP for the simulated clients' media sockets.
    #[arg(long, default_value = "127.0.0.1")]
    bind_ip: IpAddr,
    /// Internal (set by `compare`): an address in the namespace pair this harness created.
    #[arg(long, hide = true)]
    ns_addr: Option<IpAddr>,
    /// `key:secret` of the running server (with --url).
    #[arg(long, env = "SWITCHBOARD_KEYS")]
    keys: Option<String>,
    /// The running server's pid, for CPU and memory (with --url); several, comma
    /// separated, for a server of several processes (mediasoup: Node and its workers),
    /// counted together and reported each alone.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// The server binary to spawn (default: `switchboard` next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Worker threads of a spawned server.
    #[arg(long)]
    server_workers: Option<usize>,
    /// First UDP port of a spawned server.
    #[arg(long, default_value_t = 47_000)]
    rtc_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    Switchboard,
    Janus,
    Mediasoup,
}

#[derive(Args, Clone)]
pub struct OutputArgs {
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write an SVG chart of throughput and latency over time.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Harness threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Args)]
struct CapacityArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Rooms added per step (conference, webinar, audio-only alike).
    #[arg(long, default_value_t = 1)]
    step_rooms: usize,
    #[arg(long, default_value_t = 8)]
    max_steps: usize,
    /// Loss threshold (%).
    #[arg(long, default_value_t = 1.0)]
    max_loss: f64,
    /// p99 one-way latency threshold (ms).
    #[arg(long, default_value_t = 50.0)]
    max_p99: f64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Run(a) => {
            a.scenario.validate()?;
            let report = run_once(&a.scenario, &a.target, &a.out)?;
            println!("{}", report.table());
            write_outputs(&report, &a.out)?;
        }
        Cmd::Capacity(a) => capacity(a)?,
        Cmd::JanusConfig { dir, ip } => janus::write_config(&dir, &ip)?,
        Cmd::Compare(a) => compare::compare(a)?,
        Cmd::Floor {
            subscribers,
            packets,
        } => {
            let r = floor::measure(subscribers, packets)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
    }
    Ok(())
}

fn write_outputs(report: &Report, out: &OutputArgs) -> anyhow::Result<()> {
    if let Some(p) = &out.json {
        std::fs::write(p, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &out.svg {
        chart::write_svg(p, &report.target, &report.timeline)?;
    }
    Ok(())
}

/// A target ready to take participants.
struct Resolved {
    name: String,
    kind: TargetKind,
    pids: Vec<u32>,
    _spawned: Option<target::Spawned>,
}

fn resolve(t: &TargetArgs, allowed: &Allowed) -> anyhow::Result<Resolved> {
    match &t.url {
        Some(url) if t.server == ServerKind::Janus => {
            let addr = allowed.check_url(url)?;
            Ok(Resolved {
                name: format!("janus at {addr}"),
                kind: TargetKind::Janus {
                    base: format!("http://{addr}/janus"),
                },
                pids: t.server_pid.clone(),
                _spawned: None,
            })
        }
        Some(url) if t.server == ServerKind::Mediasoup => {
            let addr = allowed.check_url(url)?;
            Ok(Resolved {
                name: format!("mediasoup at {addr}"),
                kind: TargetKind::Mediasoup {
                    base: format!("http://{addr}"),
                },
                pids: t.server_pid.clone(),
                _spawned: None,
            })
        }
        Some(url) => {
            let addr = allowed.check_url(url)?;
            let pairs = signaling_keys(
                t.keys
                    .as_deref()
                    .context("--keys key:secret is needed with --url")?,
            )?;
            let key = pairs[0].0.clone();
            Ok(Resolved {
                name: format!("switchboard at {addr}"),
                kind: TargetKind::Switchboard {
                    ws_url: format!("ws://{addr}/ws"),
                    keys: KeyStore::new(pairs),
                    key,
                },
                pids: t.server_pid.clone(),
                _spawned: None,
            })
        }
        None => {
            let bin = t
                .server_bin
                .clone()
                .unwrap_or_else(target::default_server_bin);
            let ip: IpAddr = "127.0.0.1".parse()?;
            let s = target::spawn_switchboard(&bin, ip, 0, t.rtc_port, t.server_workers, None)?;
            let pid = s.child.id();
            Ok(Resolved {
                name: "switchboard (spawned)".into(),
                kind: TargetKind::Switchboard {
                    ws_url: format!("ws://{}/ws", s.http),
                    keys: KeyStore::new([(
                        target::SPAWN_KEY.to_string(),
                        target::SPAWN_SECRET.to_string(),
                    )]),
                    key: target::SPAWN_KEY.into(),
                },
                pids: vec![pid],
                _spawned: Some(s),
            })
        }
    }
}

fn signaling_keys(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = s
        .split(',')
        .filter_map(|p| {
            p.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    anyhow::ensure!(!pairs.is_empty(), "--keys must be key:secret");
    Ok(pairs)
}

pub fn run_once(s: &ScenarioArgs, t: &TargetArgs, out: &OutputArgs) -> anyhow::Result<Report> {
    let mut allowed = Allowed::default();
    if let Some(a) = t.ns_addr {
        anyhow::ensure!(
            netns::in_own_namespace(),
            "--ns-addr is only for runs inside the namespaces `compare` creates"
        );
        allowed.namespace_addrs.push(a);
    }
    if t.target_is_mine {
        let url = t.url.as_deref().unwrap_or_default();
        let ip = Allowed::url_addr(url)?.ip();
        eprintln!("--target-is-mine: {ip} is acknowledged as your server");
        allowed.acknowledged = Some(ip);
    }
    anyhow::ensure!(
        t.bind_ip.is_loopback() || netns::in_own_namespace() || t.target_is_mine,
        "--bind-ip must be a loopback address (or --target-is-mine)"
    );
    let target = resolve(t, &allowed)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(out.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(drive(s, &target, allowed, t.bind_ip, out.quiet))
}

async fn drive(
    s: &ScenarioArgs,
    target: &Resolved,
    allowed: Allowed,
    bind_ip: IpAddr,
    quiet: bool,
) -> anyhow::Result<Report> {
    let plans = s.plans();
    let last_join = plans.last().map(|p| p.join_at).unwrap_or_default();
    let origin = Instant::now();
    let start = origin + Duration::from_millis(300);
    let produce_until = start + last_join + Duration::from_secs_f64(s.duration);
    let leave_at = produce_until + Duration::from_secs(1);
    // Measure once everyone is in and media has settled.
    let warmup = Duration::from_secs_f64((s.duration / 3.0).min(2.0));
    let window_start = start + last_join + warmup;
    let ctx = Arc::new(Ctx {
        origin,
        agg: Mutex::new(Agg {
            streams_expected: s.subscribed_tracks() as u64,
            ..Agg::default()
        }),
        allowed,
        target: target.kind.clone(),
        produce_until,
        leave_at,
        bind_ip,
        seed: s.seed,
        publishers_per_room: s.publishers_per_room(),
    });
    // The harness's own CPU, over the same window as the server's.
    let (mut harness0, mut harness1) = (None, None);
    let sample_server = || procstat::sample_all(&target.pids);
    let baseline_rss = sample_server().map_or(0, |p| p.0.rss);
    let mut tasks = Vec::new();
    for plan in plans {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + plan.join_at).into()).await;
            driver::run(plan, ctx).await;
        }));
    }
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}")?);
    let mut timeline = Vec::new();
    let mut prev = sample_server().map(|s| s.0);
    let mut window: Option<(Instant, procstat::ProcSample, u64)> = None;
    let mut window_end: Option<(Instant, procstat::ProcSample, u64)> = None;
    // Each server process alone, at the window's start and end.
    let (mut each0, mut each1): (Vec<procstat::ProcSample>, Vec<procstat::ProcSample>) =
        (Vec::new(), Vec::new());
    let mut peak_rss = 0u64;
    let mut tick = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    while Instant::now() < leave_at {
        tick.tick().await;
        let now = Instant::now();
        let both = sample_server();
        let sample = both.as_ref().map(|s| s.0);
        let server = match (sample, prev) {
            (Some(a), Some(b)) => {
                Some(((a.cpu.as_secs_f64() - b.cpu.as_secs_f64()).max(0.0), a.rss))
            }
            _ => None,
        };
        prev = sample;
        if let Some(sm) = sample {
            peak_rss = peak_rss.max(sm.rss);
        }
        let (point, packets) = {
            let mut a = ctx.agg.lock();
            let p = a.tick(now - start, server);
            (p, a.packets)
        };
        if window.is_none() && now >= window_start {
            window = Some((now, sample.unwrap_or_default(), packets));
            each0 = both.as_ref().map(|s| s.1.clone()).unwrap_or_default();
            harness0 = procstat::own();
        }
        if window_end.is_none() && now >= produce_until {
            window_end = Some((now, sample.unwrap_or_default(), packets));
            each1 = both.as_ref().map(|s| s.1.clone()).unwrap_or_default();
            harness1 = procstat::own();
        }
        bar.set_message(format!(
            "joined {} | {:.2} Mbps | p50 {:.1} ms p99 {:.1} ms | server CPU {}",
            point.joined,
            point.mbps,
            point.p50_ms,
            point.p99_ms,
            point
                .server_cpu
                .map_or("-".into(), |c| format!("{:.0} %", c * 100.0))
        ));
        bar.tick();
        timeline.push(point);
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    bar.finish_and_clear();
    let harness1 = harness1.or_else(procstat::own).unwrap_or_default();
    let harness0 = harness0.unwrap_or_default();
    let a = ctx.agg.lock();
    let (w0, w1) = match (window, window_end) {
        (Some(w0), Some(w1)) => (w0, w1),
        (Some(w0), None) => (w0, (Instant::now(), prev.unwrap_or_default(), a.packets)),
        _ => (
            (start, Default::default(), 0),
            (Instant::now(), prev.unwrap_or_default(), a.packets),
        ),
    };
    let measured = (w1.0 - w0.0).as_secs_f64().max(0.001);
    let forwarded = w1.2.saturating_sub(w0.2);
    let server = target.pids.first().map(|&pid| {
        let cpu = (w1.1.cpu.as_secs_f64() - w0.1.cpu.as_secs_f64()).max(0.0);
        let by_process = target
            .pids
            .iter()
            .zip(each0.iter().zip(&each1))
            .map(|(p, (a, b))| (*p, (b.cpu.as_secs_f64() - a.cpu.as_secs_f64()).max(0.0)))
            .collect();
        ServerReport {
            pid,
            cpu_seconds: cpu,
            cpu_seconds_by_process: by_process,
            cpu_us_per_forwarded_packet: if forwarded > 0 {
                cpu * 1e6 / forwarded as f64
            } else {
                0.0
            },
            rss_mb: peak_rss as f64 / 1e6,
            baseline_rss_mb: baseline_rss as f64 / 1e6,
            rss_kb_per_subscribed_track: peak_rss.saturating_sub(baseline_rss) as f64
                / 1024.0
                / (s.subscribed_tracks().max(1) as f64),
        }
    });
    let layer_names = ["q", "h", "f"];
    Ok(Report {
        target: target.name.clone(),
        scenario: s.clone(),
        measured_seconds: measured,
        joins: JoinReport {
            attempted: a.joins_attempted,
            succeeded: a.joins_ok,
            failed: a.join_failures.clone(),
            time_ms: Percentiles::of(&a.join_ms),
        },
        received: ReceiveReport {
            packets: a.packets,
            bytes: a.bytes,
            audio_packets: a.audio_packets,
            video_packets: a.video_packets,
            mbps: a.bytes as f64 * 8.0 / 1e6 / (produce_until - start).as_secs_f64(),
            streams_expected: a.streams_expected,
            streams_with_media: a.streams_with_media,
        },
        latency_ms: Percentiles::of(&a.latency),
        loss: LossReport {
            missing_packets: a.missing,
            loss_pct: if a.packets + a.missing > 0 {
                a.missing as f64 * 100.0 / (a.packets + a.missing) as f64
            } else {
                0.0
            },
            nacks_sent_by_subscribers: a.nacks_sent,
            nacks_received_by_publishers: a.nacks_received,
        },
        layers: a
            .layers
            .iter()
            .map(|(l, n)| {
                (
                    layer_names
                        .get(*l as usize)
                        .map_or(l.to_string(), |s| s.to_string()),
                    *n,
                )
            })
            .collect(),
        server,
        harness_cpu_seconds: (harness1.cpu.as_secs_f64() - harness0.cpu.as_secs_f64()).max(0.0),
        timeline,
    })
}

fn capacity(a: CapacityArgs) -> anyhow::Result<()> {
    a.run.scenario.validate()?;
    let mut last_ok: Option<Report> = None;
    for step in 0..a.max_steps {
        let mut s = a.run.scenario.clone();
        s.rooms = a.run.scenario.rooms + step * a.step_rooms;
        s.seed = a.run.scenario.seed + step as u64;
        let r = run_once(&s, &a.run.target, &a.run.out)?;
        let held = r.loss.loss_pct <= a.max_loss
            && r.latency_ms.p99 <= a.max_p99
            && r.joins.succeeded == r.joins.attempted;
        // The harness's share of a core: near 100 % it, not the server, may be what limits.
        let harness = 100.0 * r.harness_cpu_seconds / r.measured_seconds.max(1e-9);
        let server_share = r.server.as_ref().map_or(f64::NAN, |x| {
            100.0 * x.cpu_seconds / r.measured_seconds.max(1e-9)
        });
        println!(
            "step {step}: {} rooms, {} participants: loss {:.3} %, p99 {:.2} ms, joins {}/{}, server {:.0} % of a core, harness {harness:.0} %, server {:.2} µs/packet -> {}",
            s.rooms,
            r.joins.attempted,
            r.loss.loss_pct,
            r.latency_ms.p99,
            r.joins.succeeded,
            r.joins.attempted,
            server_share,
            r.server.as_ref().map_or(0.0, |x| x.cpu_us_per_forwarded_packet),
            if held { "held" } else { "FAILED" }
        );
        if !held {
            break;
        }
        last_ok = Some(r);
    }
    match last_ok {
        Some(r) => {
            println!("capacity: the last step that held:\n{}", r.table());
            write_outputs(&r, &a.run.out)?;
        }
        None => println!("capacity: even the first step failed"),
    }
    Ok(())
}

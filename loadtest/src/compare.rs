//! `compare`: the same scenario against Switchboard and Janus VideoRoom, in one invocation,
//! on the same network path (two namespaces joined by a veth pair that this command
//! creates and removes), and the ratios.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use crate::netns::Pair;
use crate::scenario::ScenarioArgs;
use crate::target::{default_server_bin, SPAWN_KEY, SPAWN_SECRET};

#[derive(Args)]
pub struct CompareArgs {
    #[command(flatten)]
    scenario: ScenarioArgs,
    /// The switchboard binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Switchboard worker threads (default: one per core, like Janus's own defaults).
    #[arg(long)]
    server_workers: Option<usize>,
    /// Where reports, charts and the Janus configuration go.
    #[arg(long, default_value = "target/compare")]
    out_dir: PathBuf,
    /// Third octet of the 10.99.N.0/24 namespace network.
    #[arg(long, default_value_t = 77)]
    net: u8,
    /// Harness threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(r: &Value, path: &[&str]) -> f64 {
    let mut v = r;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

pub fn compare(a: CompareArgs) -> anyhow::Result<()> {
    a.scenario.validate()?;
    std::fs::create_dir_all(&a.out_dir)?;
    let out_dir = a.out_dir.canonicalize()?;
    let pair = Pair::create(a.net)?;
    let server_ip = pair.server_ip.to_string();
    let jdir = out_dir.join("janus-config");
    crate::janus::write_config(&jdir, &server_ip)?;
    let janus = Killed(crate::janus::spawn(&pair.servers_ns, &jdir)?);
    let bin = a.server_bin.clone().unwrap_or_else(default_server_bin);
    let sb = crate::target::spawn_switchboard(
        &bin,
        pair.server_ip,
        7880,
        47000,
        a.server_workers,
        Some(&pair.servers_ns),
    )?;
    let sb_url = format!("http://{}", sb.http);
    std::thread::sleep(Duration::from_millis(500));
    let me = std::env::current_exe()?;
    let targets = [
        ("switchboard", sb_url.clone(), sb.child.id(), "switchboard"),
        (
            "janus",
            format!("http://{server_ip}:8088"),
            janus.0.id(),
            "janus",
        ),
    ];
    let mut reports = Vec::new();
    for (name, url, pid, kind) in &targets {
        eprintln!("== running the scenario against {name} ({url})");
        let json = out_dir.join(format!("{name}.json"));
        let svg = out_dir.join(format!("{name}.svg"));
        let mut cmd = Pair::command_in(&pair.clients_ns, &me.to_string_lossy());
        cmd.arg("run")
            .args(a.scenario.to_args())
            .args([
                "--url",
                url,
                "--server",
                kind,
                "--server-pid",
                &pid.to_string(),
            ])
            .args([
                "--bind-ip",
                &pair.client_ip.to_string(),
                "--ns-addr",
                &server_ip,
                "--threads",
                &a.threads.to_string(),
                "--quiet",
            ])
            .arg("--json")
            .arg(&json)
            .arg("--svg")
            .arg(&svg)
            .env("SWITCHBOARD_KEYS", format!("{SPAWN_KEY}:{SPAWN_SECRET}"));
        let status = cmd
            .status()
            .context("running the harness in the client namespace")?;
        anyhow::ensure!(status.success(), "the run against {name} failed");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
        reports.push((name.to_string(), r));
    }
    let (s, j) = (&reports[0].1, &reports[1].1);
    let rows: [(&str, &[&str], bool); 9] = [
        (
            "server CPU µs / forwarded packet",
            &["server", "cpu_us_per_forwarded_packet"],
            true,
        ),
        ("server CPU seconds", &["server", "cpu_seconds"], true),
        ("received Mbps", &["received", "mbps"], false),
        ("latency p50 ms", &["latency_ms", "p50"], true),
        ("latency p99 ms", &["latency_ms", "p99"], true),
        ("loss %", &["loss", "loss_pct"], true),
        ("server RSS MB (peak)", &["server", "rss_mb"], true),
        (
            "server RSS KB / subscribed track",
            &["server", "rss_kb_per_subscribed_track"],
            true,
        ),
        ("join time p50 ms", &["joins", "time_ms", "p50"], true),
    ];
    let mut md = String::new();
    md.push_str(&format!("| metric ({:?}, {} rooms × {} participants, {} viewers, {} s) | switchboard | janus | switchboard / janus |\n|---|---:|---:|---:|\n",
        a.scenario.scenario, a.scenario.rooms, a.scenario.participants, a.scenario.viewers, a.scenario.duration));
    for (label, path, _lower_is_better) in rows {
        let (x, y) = (metric(s, path), metric(j, path));
        let ratio = if y.abs() > 1e-12 {
            format!("{:.2}", x / y)
        } else {
            "-".into()
        };
        md.push_str(&format!("| {label} | {x:.2} | {y:.2} | {ratio} |\n"));
    }
    md.push_str(&format!(
        "| joins ok / attempted | {} / {} | {} / {} | |\n| streams with media / expected | {} / {} | {} / {} | |\n",
        s["joins"]["succeeded"], s["joins"]["attempted"], j["joins"]["succeeded"], j["joins"]["attempted"],
        s["received"]["streams_with_media"], s["received"]["streams_expected"], j["received"]["streams_with_media"], j["received"]["streams_expected"],
    ));
    // The floor, measured in the same run with the scenario's fan-out.
    let fanout = match a.scenario.scenario {
        crate::scenario::Kind::Conference => a.scenario.participants.saturating_sub(1).max(1),
        crate::scenario::Kind::Webinar => a.scenario.viewers.max(1),
        crate::scenario::Kind::AudioOnly => (a.scenario.participants + a.scenario.viewers)
            .saturating_sub(1)
            .max(1),
    };
    let floor = crate::floor::measure(fanout, 100_000)?;
    let f = floor.cpu_us_per_forwarded_packet;
    md.push_str(&format!(
        "\nFloor (receive, AES-256-GCM per subscriber, GSO send; {fanout} subscribers, same run): {f:.2} µs per forwarded packet.\n\n\
         | | switchboard | janus |\n|---|---:|---:|\n| CPU per forwarded packet ÷ floor | {:.2} | {:.2} |\n",
        metric(s, &["server", "cpu_us_per_forwarded_packet"]) / f,
        metric(j, &["server", "cpu_us_per_forwarded_packet"]) / f,
    ));
    std::fs::write(
        out_dir.join("floor.json"),
        serde_json::to_string_pretty(&floor)?,
    )?;
    println!("{md}");
    std::fs::write(out_dir.join("compare.md"), &md)?;
    eprintln!(
        "reports, charts and the Janus configuration are in {}",
        out_dir.display()
    );
    drop(sb);
    drop(janus);
    drop(pair);
    Ok(())
}

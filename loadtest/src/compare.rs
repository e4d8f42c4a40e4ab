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
    /// Rounds: each runs the scenario against both servers (the order alternating from
    /// round to round); the table shows the median and the spread of every figure.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

/// The median and the range of some measurements.
fn spread(xs: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

fn cell(xs: &[f64]) -> String {
    let (m, lo, hi) = spread(xs);
    if xs.len() > 1 {
        format!("{m:.2} ({lo:.2}–{hi:.2})")
    } else {
        format!("{m:.2}")
    }
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
    // reports[round] = (switchboard, janus)
    let mut rounds: Vec<[Value; 2]> = Vec::new();
    for round in 0..a.repeat.max(1) {
        let mut pair_reports: [Value; 2] = [Value::Null, Value::Null];
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for ti in order {
            let (name, url, pid, kind) = &targets[ti];
            eprintln!(
                "== round {}: running the scenario against {name} ({url})",
                round + 1
            );
            let json = out_dir.join(format!("{name}-{}.json", round + 1));
            let svg = out_dir.join(format!("{name}-{}.svg", round + 1));
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
            pair_reports[ti] = r;
        }
        rounds.push(pair_reports);
    }
    let (s, j) = (&rounds[0][0], &rounds[0][1]);
    let all = |path: &[&str], i: usize| -> Vec<f64> {
        rounds.iter().map(|r| metric(&r[i], path)).collect()
    };
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
    md.push_str(&format!("| metric ({:?}, {} rooms × {} participants, {} viewers, {} s; {} round(s): median (min–max)) | switchboard | janus | switchboard / janus (same round) |\n|---|---:|---:|---:|\n",
        a.scenario.scenario, a.scenario.rooms, a.scenario.participants, a.scenario.viewers, a.scenario.duration, rounds.len()));
    for (label, path, _lower_is_better) in rows {
        let (x, y) = (all(path, 0), all(path, 1));
        let ratios: Vec<f64> = x
            .iter()
            .zip(&y)
            .filter(|(_, y)| y.abs() > 1e-12)
            .map(|(x, y)| x / y)
            .collect();
        let ratio = if ratios.is_empty() {
            "-".into()
        } else {
            cell(&ratios)
        };
        md.push_str(&format!(
            "| {label} | {} | {} | {ratio} |\n",
            cell(&x),
            cell(&y)
        ));
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
         | | switchboard | janus |\n|---|---:|---:|\n| CPU per forwarded packet ÷ floor (median) | {:.2} | {:.2} |\n",
        spread(&all(&["server", "cpu_us_per_forwarded_packet"], 0)).0 / f,
        spread(&all(&["server", "cpu_us_per_forwarded_packet"], 1)).0 / f,
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

//! `compare`: the same scenario against Switchboard, Janus VideoRoom and mediasoup (when its
//! worker is built), in one invocation,
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
    if !xs.iter().any(|x| x.is_finite()) {
        return "failed".into();
    }
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

/// One server under comparison.
struct Target {
    name: &'static str,
    url: String,
    /// The server's processes (mediasoup: Node, then its workers).
    pids: Vec<u32>,
    log: PathBuf,
}

/// Start the mediasoup bridge in the servers' namespace, or say why not.
fn start_mediasoup(
    pair: &Pair,
    out_dir: &std::path::Path,
    workers: usize,
) -> Result<(Killed, Target), String> {
    let dir = crate::mediasoup::bridge_dir();
    if crate::mediasoup::worker_bin(&dir).is_none() {
        return Err(format!(
            "the mediasoup worker is not built in {} (bash loadtest/mediasoup/build.sh)",
            dir.display()
        ));
    }
    let log = out_dir.join("mediasoup.log");
    let ip = pair.server_ip.to_string();
    let child = crate::mediasoup::spawn(&dir, &ip, 3000, workers, Some(&pair.servers_ns), &log)
        .map_err(|e| e.to_string())?;
    let child = Killed(child);
    let url = format!("http://{ip}:3000");
    // The bridge's own pid and its workers', counted together (and each alone).
    let all = crate::mediasoup::pids_from_log(&std::fs::read_to_string(&log).unwrap_or_default())
        .ok_or_else(|| format!("the bridge did not name its pids; see {}", log.display()))?;
    Ok((
        child,
        Target {
            name: "mediasoup",
            url,
            pids: all,
            log,
        },
    ))
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
    let workers = a
        .server_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut notes = Vec::new();
    let (_ms, ms_target) = match start_mediasoup(&pair, &out_dir, workers) {
        Ok((k, t)) => (Some(k), Some(t)),
        Err(why) => {
            eprintln!("== mediasoup left out: {why}");
            notes.push(format!("mediasoup left out: {why}"));
            (None, None)
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    let me = std::env::current_exe()?;
    let mut targets = vec![
        Target {
            name: "switchboard",
            url: format!("http://{}", sb.http),
            pids: vec![sb.child.id()],
            log: PathBuf::from("(not kept: the server runs with RUST_LOG=warn, stderr discarded)"),
        },
        Target {
            name: "janus",
            url: format!("http://{server_ip}:8088"),
            pids: vec![janus.0.id()],
            log: jdir.join("janus.log"),
        },
    ];
    targets.extend(ms_target);
    let n = targets.len();
    // rounds[round][target]: the report, or Null when that run failed
    let mut rounds: Vec<Vec<Value>> = Vec::new();
    for round in 0..a.repeat.max(1) {
        let mut reports = vec![Value::Null; n];
        // The order rotates from round to round, so that no server always runs first.
        for k in 0..n {
            let ti = (k + round) % n;
            let t = &targets[ti];
            eprintln!(
                "== round {}: running the scenario against {} ({})",
                round + 1,
                t.name,
                t.url
            );
            let json = out_dir.join(format!("{}-{}.json", t.name, round + 1));
            let svg = out_dir.join(format!("{}-{}.svg", t.name, round + 1));
            let pids: Vec<String> = t.pids.iter().map(|p| p.to_string()).collect();
            let mut cmd = Pair::command_in(&pair.clients_ns, &me.to_string_lossy());
            cmd.arg("run")
                .args(a.scenario.to_args())
                .args([
                    "--url",
                    &t.url,
                    "--server",
                    t.name,
                    "--server-pid",
                    &pids.join(","),
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
            let ok = cmd
                .status()
                .context("running the harness in the client namespace")?
                .success();
            let report = std::fs::read_to_string(&json)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok());
            match report {
                Some(r) if ok => {
                    let (with, expected) = (
                        r["received"]["streams_with_media"].as_u64().unwrap_or(0),
                        r["received"]["streams_expected"].as_u64().unwrap_or(0),
                    );
                    if with < expected {
                        let why = format!(
                            "{} delivered media on {with} of {expected} streams in round {} (log: {})",
                            t.name,
                            round + 1,
                            t.log.display()
                        );
                        eprintln!("== {why}");
                        notes.push(why);
                    }
                    reports[ti] = r;
                }
                _ => {
                    let why = format!(
                        "the run against {} failed in round {} (log: {})",
                        t.name,
                        round + 1,
                        t.log.display()
                    );
                    eprintln!("== {why}");
                    notes.push(why);
                }
            }
        }
        rounds.push(reports);
    }
    // A run that delivered no media has no figures (its zeros would read as a result).
    let delivered = |r: &Value| r["received"]["streams_with_media"].as_u64().unwrap_or(0) > 0;
    let all = |path: &[&str], i: usize| -> Vec<f64> {
        rounds
            .iter()
            .map(|r| {
                if delivered(&r[i]) {
                    metric(&r[i], path)
                } else {
                    f64::NAN
                }
            })
            .collect()
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
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    md.push_str(&format!(
        "| metric ({:?}, {} rooms × {} participants, {} viewers, {} s; {} round(s): median (min–max)) | {} |{}\n|---|{}{}\n",
        a.scenario.scenario,
        a.scenario.rooms,
        a.scenario.participants,
        a.scenario.viewers,
        a.scenario.duration,
        rounds.len(),
        names.join(" | "),
        names[1..]
            .iter()
            .map(|r| format!(" switchboard / {r} (same round) |"))
            .collect::<String>(),
        "---:|".repeat(n),
        "---:|".repeat(n - 1),
    ));
    for (label, path, _lower_is_better) in rows {
        let mut line = format!("| {label} |");
        for i in 0..n {
            line.push_str(&format!(" {} |", cell(&all(path, i))));
        }
        let ours = all(path, 0);
        for i in 1..n {
            let ratios: Vec<f64> = ours
                .iter()
                .zip(all(path, i))
                .filter(|(_, y)| y.abs() > 1e-12)
                .map(|(x, y)| x / y)
                .collect();
            let r = if ratios.iter().all(|r| !r.is_finite()) {
                "-".to_string()
            } else {
                cell(&ratios)
            };
            line.push_str(&format!(" {r} |"));
        }
        md.push_str(&line);
        md.push('\n');
    }
    // `ok` of `all` in section `at` of each server's first-round report.
    let counts = |key: &str, at: &str, ok: &str, all: &str| -> String {
        let mut line = format!("| {key} |");
        for r in &rounds[0] {
            line.push_str(&format!(" {} / {} |", r[at][ok], r[at][all]));
        }
        line.push_str(&" |".repeat(n - 1));
        line.push('\n');
        line
    };
    md.push_str(&counts(
        "joins ok / attempted (round 1)",
        "joins",
        "succeeded",
        "attempted",
    ));
    md.push_str(&counts(
        "streams with media / expected (round 1)",
        "received",
        "streams_with_media",
        "streams_expected",
    ));
    if let Some(i) = targets.iter().position(|t| t.name == "mediasoup") {
        // Node and the workers, each alone (the first round).
        let by: Vec<String> = rounds[0][i]["server"]["cpu_seconds_by_process"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(k, p)| {
                let who = if k == 0 {
                    "node".to_string()
                } else {
                    format!("worker {k}")
                };
                format!("{who} {:.2} s", p[1].as_f64().unwrap_or(f64::NAN))
            })
            .collect();
        md.push_str(&format!(
            "\nmediasoup's server CPU counts the Node process and its workers together; alone (round 1): {}.\n",
            by.join(", ")
        ));
    }
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
    let mut floor_row = String::from("| CPU per forwarded packet ÷ floor (median) |");
    for i in 0..n {
        let x = spread(&all(&["server", "cpu_us_per_forwarded_packet"], i)).0 / f;
        floor_row.push_str(&if x.is_finite() {
            format!(" {x:.2} |")
        } else {
            " failed |".to_string()
        });
    }
    md.push_str(&format!(
        "\nFloor (receive, AES-256-GCM per subscriber, GSO send; {fanout} subscribers, same run): {f:.2} µs per forwarded packet.\n\n| | {} |\n|---|{}\n{floor_row}\n",
        names.join(" | "),
        "---:|".repeat(n),
    ));
    for note in &notes {
        md.push_str(&format!("\nNote: {note}\n"));
    }
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
    drop(_ms);
    drop(pair);
    Ok(())
}

//! The server under test: spawned by the harness (loopback, known keys, known pid) or
//! given by URL.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

pub const SPAWN_KEY: &str = "loadtest";
pub const SPAWN_SECRET: &str = "switchboard-loadtest-secret-0123456789";

pub struct Spawned {
    pub child: Child,
    pub http: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `switchboard` binary next to this one, unless given.
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("switchboard")))
        .unwrap_or_else(|| PathBuf::from("switchboard"))
}

/// Start `switchboard` bound to `ip` (HTTP on `http_port`, 0 for any) with the load-test
/// key, inside network namespace `netns` if given; wait for its start line.
pub fn spawn_switchboard(
    bin: &Path,
    ip: IpAddr,
    http_port: u16,
    rtc_port: u16,
    workers: Option<usize>,
    netns: Option<&str>,
) -> anyhow::Result<Spawned> {
    let mut cmd = match netns {
        Some(ns) => crate::netns::Pair::command_in(ns, &bin.to_string_lossy()),
        None => Command::new(bin),
    };
    cmd.args([
        "--http",
        &format!("{ip}:{http_port}"),
        "--rtc-bind",
        &ip.to_string(),
        "--rtc-port",
        &rtc_port.to_string(),
    ])
    .env("SWITCHBOARD_KEYS", format!("{SPAWN_KEY}:{SPAWN_SECRET}"))
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped());
    // Its warnings go to a file, read back when it fails to start (a port taken, say).
    let log_path = std::env::temp_dir().join(format!(
        "switchboard-loadtest-server-{}-{rtc_port}.log",
        std::process::id()
    ));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    cmd.stderr(log);
    if let Some(w) = workers {
        cmd.args(["--workers", &w.to_string()]);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .context("the server did not start within 20 s")?;
    let http = line
        .split("open http://")
        .nth(1)
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .with_context(|| {
            let _ = child.kill();
            let _ = child.wait();
            let errors = std::fs::read_to_string(&log_path).unwrap_or_default();
            let from = (errors.len().saturating_sub(2_000)..errors.len())
                .find(|i| errors.is_char_boundary(*i))
                .unwrap_or(errors.len());
            let tail = &errors[from..];
            format!("unexpected start line: {line:?}; the server's log: {tail}")
        })?;
    let _ = std::fs::remove_file(&log_path);
    Ok(Spawned { child, http })
}

//! Two network namespaces joined by a veth pair, created (and removed) by the harness for
//! the `compare` command: servers live in one, the simulated clients in the other, so both
//! servers see the same non-loopback network path (Janus's ICE ignores loopback).

use std::net::IpAddr;
use std::process::Command;

use anyhow::Context;

/// Interface names start with this; the guard accepts namespace addresses only where such
/// an interface exists (a namespace this harness made).
pub const IFACE_PREFIX: &str = "sblt";

pub struct Pair {
    pub servers_ns: String,
    pub clients_ns: String,
    pub server_ip: IpAddr,
    pub client_ip: IpAddr,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Pair {
    /// Create `sbltA-<tag>` and `sbltB-<tag>` with 10.99.<n>.1 and 10.99.<n>.2.
    pub fn create(tag: u8) -> anyhow::Result<Self> {
        anyhow::ensure!(
            rustix_is_root(),
            "compare creates network namespaces: run it as root"
        );
        let a = format!("{IFACE_PREFIX}A{tag}");
        let b = format!("{IFACE_PREFIX}B{tag}");
        let (va, vb) = (
            format!("{IFACE_PREFIX}a{tag}"),
            format!("{IFACE_PREFIX}b{tag}"),
        );
        let (ipa, ipb) = (format!("10.99.{tag}.1"), format!("10.99.{tag}.2"));
        let _ = ip(&["netns", "del", &a]);
        let _ = ip(&["netns", "del", &b]);
        ip(&["netns", "add", &a])?;
        ip(&["netns", "add", &b])?;
        let pair = Pair {
            servers_ns: a.clone(),
            clients_ns: b.clone(),
            server_ip: ipa.parse()?,
            client_ip: ipb.parse()?,
        };
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &a])?;
        ip(&["link", "set", &vb, "netns", &b])?;
        ip(&["-n", &a, "addr", "add", &format!("{ipa}/24"), "dev", &va])?;
        ip(&["-n", &b, "addr", "add", &format!("{ipb}/24"), "dev", &vb])?;
        for (ns, dev) in [(&a, &va), (&b, &vb)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn command_in(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.servers_ns]);
        let _ = ip(&["netns", "del", &self.clients_ns]);
    }
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when this process runs in a network namespace other than init's and that
/// namespace has an interface this harness names (so it was made by `Pair::create`).
pub fn in_own_namespace() -> bool {
    let mine = std::fs::read_link("/proc/self/ns/net").ok();
    let init = std::fs::read_link("/proc/1/ns/net").ok();
    let separate = mine.is_some() && mine != init;
    let ours = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(IFACE_PREFIX))
        })
        .unwrap_or(false);
    separate && ours
}

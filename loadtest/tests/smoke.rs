//! A short run of the harness against the real server: media reaches every subscriber
//! and the JSON report is complete.

use std::net::{TcpListener, UdpSocket};
use std::process::Command;

/// A first RTC port whose UDP ports (one per worker: two cores here) and TCP port (ICE-TCP)
/// are free now: a fixed or pid-derived port can be some other process's ephemeral one.
fn free_rtc_port() -> u16 {
    for _ in 0..50 {
        let Ok(first) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(port) = first.local_addr().map(|a| a.port()) else {
            continue;
        };
        let rest = (1..4).all(|i| {
            port.checked_add(i)
                .is_some_and(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok())
        });
        if rest && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    40_000 + (std::process::id() % 5_000) as u16
}

#[test]
fn smoke_conference_against_the_real_server() {
    let exe = env!("CARGO_BIN_EXE_switchboard-loadtest");
    let server = std::path::Path::new(exe).with_file_name("switchboard");
    assert!(
        server.exists(),
        "build the workspace first (cargo build --workspace): {} is missing",
        server.display()
    );
    let dir = std::env::temp_dir().join(format!("sb-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let svg = dir.join("report.svg");
    let out = Command::new(exe)
        .args([
            "run",
            "--scenario",
            "conference",
            "--rooms",
            "2",
            "--participants",
            "3",
            "--duration",
            "4",
            "--quiet",
        ])
        .args(["--rtc-port", &free_rtc_port().to_string()])
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["joins"]["attempted"], 6);
    assert_eq!(r["joins"]["succeeded"], 6, "{}", r["joins"]);
    // Every subscriber got every track: 2 rooms × 3 × 2 others × (audio + video).
    assert_eq!(r["received"]["streams_expected"], 24);
    assert_eq!(r["received"]["streams_with_media"], 24);
    assert!(r["received"]["video_packets"].as_u64().unwrap() > 1_000);
    assert!(r["received"]["audio_packets"].as_u64().unwrap() > 500);
    for k in ["p50", "p95", "p99", "max"] {
        assert!(r["latency_ms"][k].as_f64().unwrap() > 0.0, "latency {k}");
    }
    assert!(r["latency_ms"]["p50"].as_f64().unwrap() < 50.0);
    assert!(r["loss"]["loss_pct"].as_f64().is_some());
    assert!(
        r["layers"]["f"].as_u64().unwrap() > 0,
        "the top layer is forwarded"
    );
    let server = &r["server"];
    assert!(server["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(server["cpu_us_per_forwarded_packet"].as_f64().unwrap() > 0.0);
    assert!(server["rss_mb"].as_f64().unwrap() > 1.0);
    assert!(r["timeline"].as_array().unwrap().len() >= 4);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_non_loopback_targets() {
    let exe = env!("CARGO_BIN_EXE_switchboard-loadtest");
    let out = Command::new(exe)
        .args([
            "run",
            "--url",
            "http://10.1.2.3:7880",
            "--keys",
            "k:0123456789abcdef",
            "--duration",
            "1",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to target 10.1.2.3"));
}

#[test]
fn an_unreachable_server_is_reported_not_hung() {
    let exe = env!("CARGO_BIN_EXE_switchboard-loadtest");
    let dir = std::env::temp_dir().join(format!("sb-unreach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    // Nothing listens on port 9 of loopback.
    let out = Command::new(exe)
        .args([
            "run",
            "--url",
            "http://127.0.0.1:9",
            "--keys",
            "k:0123456789abcdef",
            "--participants",
            "2",
            "--duration",
            "1",
            "--quiet",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["joins"]["succeeded"], 0);
    let failed = r["joins"]["failed"].as_object().unwrap();
    assert_eq!(
        failed.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        2,
        "{failed:?}"
    );
    assert!(
        failed.keys().any(|k| k.starts_with("signaling connect")),
        "{failed:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

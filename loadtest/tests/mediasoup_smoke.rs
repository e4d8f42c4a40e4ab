//! The mediasoup target: a short run of the harness through the bridge
//! (`loadtest/mediasoup/bridge.mjs`) on loopback, every subscriber receiving media. It
//! runs only where mediasoup's worker is built (`bash loadtest/mediasoup/build.sh`);
//! elsewhere it says so and passes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn every_subscriber_receives_media_through_mediasoup() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mediasoup");
    let worker = dir.join("node_modules/mediasoup/worker/out/Release/mediasoup-worker");
    if !worker.is_file() || Command::new("node").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: mediasoup's worker is not built at {} (bash loadtest/mediasoup/build.sh builds it)",
            worker.display()
        );
        return;
    }
    let port = 31_000 + (std::process::id() % 1_000) as u16;
    let log = std::env::temp_dir().join(format!("sb-ms-smoke-{}.log", std::process::id()));
    let mut bridge = Command::new("node")
        .current_dir(&dir)
        .args([
            "bridge.mjs",
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args([
            "--workers",
            "1",
            "--rtc-min-port",
            &(port + 1_000).to_string(),
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs the bridge");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pids = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("mediasoup bridge listening") {
            break text
                .lines()
                .find(|l| l.starts_with("pids node="))
                .map(|l| l.replace("pids node=", "").replace(" workers=", ","))
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the bridge did not start: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out_dir = std::env::temp_dir().join(format!("sb-ms-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let json = out_dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-loadtest"))
        .args([
            "run",
            "--scenario",
            "conference",
            "--participants",
            "3",
            "--duration",
            "4",
        ])
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--server",
            "mediasoup",
        ])
        .args(["--server-pid", &pids, "--quiet"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("the harness runs");
    let _ = bridge.kill();
    let _ = bridge.wait();
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["joins"]["succeeded"], 3, "{}", r["joins"]);
    // 3 participants × 2 others × (audio + video).
    assert_eq!(r["received"]["streams_expected"], 12);
    assert_eq!(r["received"]["streams_with_media"], 12, "{}", r["received"]);
    assert!(r["received"]["video_packets"].as_u64().unwrap() > 500);
    // Node and its one worker, counted together and each alone.
    assert_eq!(
        r["server"]["cpu_seconds_by_process"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

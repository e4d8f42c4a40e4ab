//! Operations against the real binary: readiness, graceful drain on SIGTERM, a second
//! signal, and admission limits.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sfu_core::TrackKind;

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{}{path}", server.http))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn signal(server: &Server, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &server.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

/// Wait for the process to exit; how long it took.
async fn exited_within(server: &mut Server, limit: Duration) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if server.child.try_wait().unwrap().is_some() {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not exit within {limit:?}");
}

fn video_packets(p: &Participant, from: &Participant) -> u64 {
    p.client
        .stream_from(from.id, TrackKind::Video)
        .map_or(0, |v| v.packets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_running_call_then_closes_it() {
    let mut server = start_server_with(&["--drain-timeout", "5"]);
    assert_eq!(get(&server, "/readyz").await, (200, json!({"ready": true})));
    let a = Participant::join(&server, "drain", "a").await;
    let b = Participant::join(&server, "drain", "b").await;
    let mut ps = [a, b];
    run_all(&mut ps, Duration::from_secs(2)).await;
    assert!(video_packets(&ps[0], &ps[1]) > 50);

    signal(&server, "TERM");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Not ready, still alive; new joins and rooms refused with a clear reason.
    assert_eq!(
        get(&server, "/readyz").await,
        (503, json!({"ready": false, "reason": "draining"}))
    );
    assert_eq!(get(&server, "/healthz").await.0, 200);
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("drain", "late", 600), "version": 1}),
    )
    .await;
    let e = recv(&mut w).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("draining")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("server draining"));
    assert_eq!(recv(&mut w).await["close"], 4008);
    // The running call goes on.
    let before = video_packets(&ps[0], &ps[1]);
    run_all(&mut ps, Duration::from_secs(2)).await;
    let during = video_packets(&ps[0], &ps[1]) - before;
    assert!(
        during > 50,
        "media keeps flowing while draining: {during} packets in 2 s"
    );
    // At the drain timeout the participants are told and the process exits.
    run_all(&mut ps, Duration::from_secs(3)).await;
    let took = exited_within(&mut server, Duration::from_secs(8)).await + t0.elapsed();
    eprintln!("exited {took:?} after SIGTERM (drain timeout 5 s); {during} video packets during the drain");
    for p in &ps {
        assert!(
            p.messages
                .iter()
                .any(|m| m["type"] == "error" && m["code"] == "shutting_down"),
            "told the server is shutting down: {:?}",
            p.messages
        );
    }
    assert!(took < Duration::from_secs(9), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stops_at_once_and_a_second_signal_skips_the_wait() {
    // Nobody connected: the drain is over immediately. The signal goes out the moment
    // the start line is read, so it also shows the server listens for it by then (CI
    // once saw SIGTERM's default action end a server here: killed, not a clean exit).
    for (i, sig) in ["TERM", "INT"].iter().cycle().take(8).enumerate() {
        let mut idle = start_server_with(&["--drain-timeout", "60"]);
        signal(&idle, sig);
        let took = exited_within(&mut idle, Duration::from_secs(5)).await;
        let status = idle.child.try_wait().unwrap().unwrap();
        assert!(
            status.success(),
            "run {i}: a clean exit on SIG{sig}, not {status}"
        );
        eprintln!("idle server exited {took:?} after SIG{sig}");
    }
    // A call in progress and a long drain: the second signal stops it now.
    let mut busy = start_server_with(&["--drain-timeout", "60"]);
    let mut ps = [
        Participant::join(&busy, "r", "a").await,
        Participant::join(&busy, "r", "b").await,
    ];
    run_all(&mut ps, Duration::from_secs(1)).await;
    signal(&busy, "TERM");
    run_all(&mut ps, Duration::from_secs(1)).await;
    assert!(busy.child.try_wait().unwrap().is_none(), "still draining");
    signal(&busy, "INT");
    let took = exited_within(&mut busy, Duration::from_secs(5)).await;
    eprintln!("draining server exited {took:?} after the second signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_limits_refuse_with_a_clear_error() {
    // Two published tracks per node: the first participant (audio + video) fills it.
    let server = start_server_with(&["--max-tracks", "2", "--max-participants", "5"]);
    let mut a = Participant::join(&server, "cap", "a").await;
    a.run(Duration::from_secs(2)).await;
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("cap", "b", 600), "version": 1}),
    )
    .await;
    let e = recv(&mut w).await;
    assert_eq!(e["code"], "server_full", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("max_tracks = 2"),
        "{e}"
    );
    assert_eq!(recv(&mut w).await["close"], 4009);
    // WHIP gets a 503 with the same reason.
    let r = reqwest::Client::new()
        .post(format!("http://{}/whip/cap", server.http))
        .header("content-type", "application/sdp")
        .bearer_auth(token("cap", "obs", 600))
        .body("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "server_full");
    // The metric counts the refusals; the participant already in is undisturbed.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let text = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("switchboard_joins_refused_total{reason=\"server_full\"} 2"),
        "{text}"
    );
    a.run(Duration::from_millis(500)).await;
    assert!(
        a.messages.iter().all(|m| m["type"] != "error"),
        "{:?}",
        a.messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_its_packet_rate_makes_the_node_unready_and_refuses_joins() {
    let server = start_server_with(&["--max-worker-packet-rate", "50"]);
    let mut ps = [
        Participant::join(&server, "hot", "a").await,
        Participant::join(&server, "hot", "b").await,
    ];
    run_all(&mut ps, Duration::from_secs(3)).await;
    let (status, body) = get(&server, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("max_worker_packet_rate = 50"),
        "{body}"
    );
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("hot", "c", 600), "version": 1}),
    )
    .await;
    assert_eq!(recv(&mut w).await["code"], "server_full");
    // The call stops: the rate falls and the node is ready again.
    drop(ps);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(get(&server, "/readyz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_running_past_its_drain_timeout_when_nobody_signals() {
    // Regression: the bound on the final wait once ran from start-up, stopping every
    // server drain_timeout + 10 s after it started (the soak found it at 310 s).
    let mut server = start_server_with(&["--drain-timeout", "1"]);
    let mut a = Participant::join(&server, "long", "a").await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(14) {
        a.run(Duration::from_millis(500)).await;
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server stopped by itself after {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(get(&server, "/readyz").await.0, 200);
    assert!(
        a.messages.iter().all(|m| m["type"] != "error"),
        "{:?}",
        a.messages
    );
}

/// The binary on a port chosen here (its start line is not read: `stdout` may be closed
/// or discarded), with test keys, one worker, `extra` flags, `RUST_LOG=log`; `more`
/// adjusts the command (stderr, say).
fn spawn_on_known_port(
    extra: &[&str],
    log: &str,
    stdout: std::process::Stdio,
    more: impl FnOnce(&mut std::process::Command) -> &mut std::process::Command,
) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rtc_port = free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--rtc-port", &rtc_port.to_string()])
        .args(["--workers", "1"])
        .args(extra)
        .env("SWITCHBOARD_KEYS", format!("{KEY}:{SECRET}"))
        .env("RUST_LOG", log)
        .stdout(stdout);
    let child = more(&mut cmd).spawn().unwrap();
    Server {
        child,
        http: format!("127.0.0.1:{port}"),
        rtc_port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_stop_the_server() {
    // A supervisor may close the pipe the start line goes to; writing it must not panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut server = spawn_on_known_port(&[], "warn", std::process::Stdio::from(writer), |c| c);
    let t0 = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the server exited ({status}) with its stdout closed");
        }
        if let Ok(r) = reqwest::get(format!("http://{}/readyz", server.http)).await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.child.try_wait().unwrap().is_none());
}

/// A supervisor that closes the pipe the logs go to: the server still serves, and still
/// drains and exits on SIGTERM (a log line written then once panicked the drain task, and
/// the server ignored SIGTERM until killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_neither_stops_the_server_nor_its_drain() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut server = spawn_on_known_port(&[], "info", std::process::Stdio::null(), |c| {
        c.stderr(std::process::Stdio::from(writer))
    });
    let t0 = Instant::now();
    while reqwest::get(format!("http://{}/readyz", server.http))
        .await
        .is_err()
    {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the server exited ({status}) with its stderr closed");
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("quiet", "ada", 60)}),
    )
    .await;
    assert_eq!(recv(&mut w).await["type"], "joined");
    drop(w);
    signal(&server, "TERM");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "SIGTERM did not stop a server whose stderr is closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
}

/// A server whose HTTP address is every interface (`0.0.0.0`), with keys and `extra`
/// flags; its port. Only loopback is ever sent to.
fn start_public(extra: &[&str]) -> (std::process::Child, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--http",
            "0.0.0.0:0",
            "--rtc-port",
            &free_port().to_string(),
            "--workers",
            "1",
        ])
        .args(extra)
        .env("SWITCHBOARD_KEYS", format!("{KEY}:{SECRET}"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("start line: {line}"));
    (child, port)
}

async fn status_of(port: u16, path: &str, token: Option<&str>) -> u16 {
    let mut r = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_stats_are_not_served_to_the_public_by_default() {
    // A reachable HTTP address without metrics_token: the operator's routes are off there.
    let (mut open, port) = start_public(&[]);
    for path in ["/metrics", "/debug/stats"] {
        assert_eq!(status_of(port, path, None).await, 401, "{path}");
    }
    assert_eq!(status_of(port, "/healthz", None).await, 200);
    open.kill().ok();
    open.wait().ok();
    // With a token: only with it.
    let (mut tokened, port) = start_public(&["--metrics-token", "scrape-me-0123456789"]);
    for path in ["/metrics", "/debug/stats"] {
        assert_eq!(status_of(port, path, None).await, 401, "{path}");
        assert_eq!(status_of(port, path, Some("wrong")).await, 401, "{path}");
        assert_eq!(
            status_of(port, path, Some("scrape-me-0123456789")).await,
            200,
            "{path}"
        );
    }
    tokened.kill().ok();
    tokened.wait().ok();
    // On loopback (development) they stay open, and with metrics_http they move there.
    let local = start_server();
    assert_eq!(
        reqwest::get(format!("http://{}/metrics", local.http))
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics_port = free_port();
    let moved = start_server_with(&["--metrics-http", &format!("127.0.0.1:{metrics_port}")]);
    let on_http = reqwest::get(format!("http://{}/metrics", moved.http))
        .await
        .unwrap()
        .status();
    assert_eq!(on_http, 404, "not on the HTTP address");
    assert_eq!(status_of(metrics_port, "/metrics", None).await, 200);
    assert_eq!(status_of(metrics_port, "/debug/stats", None).await, 200);
}

/// Whether the server has closed `s` (a read gives end of stream or an error now).
async fn closed_by_server(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_cannot_hold_the_http_port() {
    use tokio::io::AsyncWriteExt;
    let server = start_server_with(&["--http-max-per-ip", "64"]);
    let addr: std::net::SocketAddr = server.http.parse().unwrap();
    // 100 clients from one address (127.0.0.3) start a request and send a header line a
    // second, never finishing it.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.3:0".parse().unwrap()).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = 0;
    for s in slow.iter_mut() {
        refused += usize::from(closed_by_server(s).await);
    }
    // Someone else is served meanwhile.
    let t0 = Instant::now();
    let (status, _) = get(&server, "/healthz").await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2));
    // Trickle on for 12 s: the rest are closed at the head deadline.
    let mut open_after = slow.len();
    for _ in 0..12 {
        for s in slow.iter_mut() {
            let _ = s.write_all(b"X-Slow: 1\r\n").await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        open_after = 0;
        for s in slow.iter_mut() {
            open_after += usize::from(!closed_by_server(s).await);
        }
    }
    eprintln!("slow clients: {refused} of 100 refused at once, {open_after} still open after 12 s");
    assert!(refused >= 36, "over 64 from one address: {refused} refused");
    assert_eq!(open_after, 0, "slow heads closed after the deadline");
    let (status, _) = get(&server, "/healthz").await;
    assert_eq!(status, 200);
}

/// `log_format = "json"`: every log line of the logger is one JSON object a log shipper
/// parses, with the level, the message and the event's fields (the room, the participant)
/// as keys of their own.
#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_room_and_participant_as_fields() {
    use std::io::BufRead;
    let mut server = spawn_on_known_port(
        &["--log-format", "json"],
        "info",
        std::process::Stdio::null(),
        |c| c.stderr(std::process::Stdio::piped()),
    );
    let stderr = server.child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let t0 = Instant::now();
    while reqwest::get(format!("http://{}/readyz", server.http))
        .await
        .is_err()
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("jsonroom", "ada", 60)}),
    )
    .await;
    assert_eq!(recv(&mut w).await["type"], "joined");
    drop(w);
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&server, "KILL");
    let lines = lines.join().unwrap();
    // Every line, start-up and lifecycle messages included, is one JSON object.
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let worker = objects
        .iter()
        .find(|o| o["message"] == "media worker listening (UDP)")
        .unwrap_or_else(|| panic!("no start-up line in {lines:#?}"));
    assert_eq!(worker["worker"], 0);
    assert!(worker["addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(objects
        .iter()
        .any(|o| o["message"] == "Switchboard is running"
            && o["url"] == format!("http://{}/", server.http)));
    let joined = objects
        .iter()
        .find(|o| o["message"] == "joined")
        .unwrap_or_else(|| panic!("no joined line in {lines:#?}"));
    assert_eq!(joined["level"], "INFO");
    assert_eq!(joined["room"], "jsonroom");
    assert!(joined["participant"].is_string() || joined["participant"].is_number());
    assert!(joined["timestamp"].is_string());
}

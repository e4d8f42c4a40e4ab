//! The ICE-TCP port under abuse: garbage, RFC 4571 length abuse, a client that sends a
//! length and stalls, STUN naming nobody's ufrag, hundreds of idle connections. Each is
//! closed and counted by reason; none stops a call in progress.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use sfu_core::testkit::stun_binding_request as stun;
use sfu_core::TrackKind;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("the ICE-TCP port listens");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// How long until the server closes `s` (EOF or reset), reading and discarding.
fn closed_after(mut s: TcpStream) -> Duration {
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return t0.elapsed(),
            Ok(_) => {}
        }
    }
}

/// Video packets a has received from b.
fn video(ps: &[Participant; 2]) -> u64 {
    ps[0]
        .client
        .stream_from(ps[1].id, TrackKind::Video)
        .map_or(0, |v| v.packets)
}

/// Every kind of abuse in turn; (how long a stalled first frame was kept, how many of
/// 300 idle connections were closed at once).
fn abuse(port: u16) -> (Duration, usize) {
    // Garbage: an HTTP request reads as a 0x4745-byte frame, over the limit.
    let mut s = connect(port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_after(s) < Duration::from_secs(2), "closed at once");
    // A valid length, a frame that is not STUN.
    let mut s = connect(port);
    s.write_all(&[0, 4, 0x80, 0, 0, 0]).unwrap();
    assert!(closed_after(s) < Duration::from_secs(2));
    // STUN naming a ufrag nobody owns.
    let m = stun("nobody0000000000:peer", 1);
    let mut s = connect(port);
    s.write_all(&(m.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&m).unwrap();
    assert!(closed_after(s) < Duration::from_secs(2));
    // A length, then a stall: closed when the first frame's time is up.
    let mut s = connect(port);
    s.write_all(&[0, 200, 1, 2, 3]).unwrap();
    let stalled = closed_after(s);
    // Hundreds of silent connections from one address: beyond the per-IP share of
    // waiting connections they are closed at once; the rest when their time is up.
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(port)).collect();
    let t0 = Instant::now();
    let handles: Vec<_> = idle
        .into_iter()
        .map(|s| std::thread::spawn(move || closed_after(s)))
        .collect();
    let times: Vec<Duration> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "every idle connection closed"
    );
    let quick = times
        .iter()
        .filter(|t| **t < Duration::from_secs(2))
        .count();
    (stalled, quick)
}

async fn refused(server: &Server, reason: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = format!("switchboard_ice_tcp_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_of_the_tcp_port_is_closed_and_counted_without_disturbing_a_call() {
    let server = start_server();
    let mut ps = [
        Participant::join(&server, "t", "a").await,
        Participant::join(&server, "t", "b").await,
    ];
    run_all(&mut ps, Duration::from_secs(2)).await;

    // The abuse runs on its own thread while the call goes on (the test's clients must
    // keep answering ICE meanwhile).
    let port = server.rtc_port;
    let abuse = std::thread::spawn(move || abuse(port));
    let before = video(&ps);
    while !abuse.is_finished() {
        run_all(&mut ps, Duration::from_millis(200)).await;
    }
    let (stalled, quick) = abuse.join().unwrap();
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(8)).contains(&stalled),
        "a stalled first frame is closed after about 5 s, not {stalled:?}"
    );
    assert!(
        quick >= 300 - 32,
        "over the per-IP share closed at once: {quick}"
    );
    let during = video(&ps);
    run_all(&mut ps, Duration::from_secs(1)).await;
    assert!(
        during > before + 100 && video(&ps) > during + 20,
        "video flows throughout: {before} → {during} → {}",
        video(&ps)
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await; // metrics publish period
    assert!(refused(&server, "too_long").await >= 1);
    assert!(refused(&server, "not_stun").await >= 1);
    assert!(refused(&server, "unknown_ufrag").await >= 1);
    assert!(refused(&server, "timeout").await >= 1 + 32 - 1);
    assert!(refused(&server, "limit").await >= 300 - 32);
    // And the port still takes connections.
    let mut s = connect(server.rtc_port);
    s.write_all(&[0xff, 0xff]).unwrap();
    assert!(closed_after(s) < Duration::from_secs(2));
}

//! Integration over real UDP and WebSocket on loopback: the `switchboard` binary against
//! str0m clients (the sfu-core testkit's participants driven by real sockets).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use sfu_core::TrackKind;
use signaling::{Claims, KeyStore, VideoGrant};
use tokio_tungstenite::tungstenite::Message;

/// A tiny HTTP GET without another client dependency: (status line, body).
async fn get(server: &Server, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(&server.http).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", server.http).as_bytes())
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

async fn stats(server: &Server) -> Value {
    serde_json::from_str(&get(server, "/debug/stats").await.1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_configured_keys_the_dev_token_route_is_off() {
    let server = start_server();
    let (status, body) = get(&server, "/api/dev/token?room=r&name=x").await;
    assert!(status.contains("404"), "{status}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "not_found");
    let (status, _) = get(&server, "/").await;
    assert!(status.contains("200"), "the web app is served: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_media_over_udp_and_garbage_is_dropped() {
    let server = start_server();
    let a = Participant::join(&server, "itest", "a").await;
    let b = Participant::join(&server, "itest", "b").await;
    let mut ps = [a, b];
    run_all(&mut ps, Duration::from_secs(2)).await;
    // Garbage from an unknown address while the call runs.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = format!("127.0.0.1:{}", server.rtc_port).parse().unwrap();
    for i in 0..200u32 {
        let len = (i as usize * 37) % 1_400;
        let payload: Vec<u8> = (0..len)
            .map(|j| ((j as u32).wrapping_mul(2_654_435_761) ^ i) as u8)
            .collect();
        junk.send_to(&payload, target).unwrap();
    }
    run_all(&mut ps, Duration::from_secs(3)).await;
    let (ida, idb) = (ps[0].id, ps[1].id);
    eprintln!("server stats: {}", stats(&server).await);
    for (me, other) in [(0, idb), (1, ida)] {
        let c = &ps[me].client;
        eprintln!("client {me} datagrams {:?}", ps[me].datagrams);
        let audio = c
            .stream_from(other, TrackKind::Audio)
            .expect("audio arrives");
        let video = c
            .stream_from(other, TrackKind::Video)
            .expect("video arrives");
        eprintln!("client {me}: audio {} packets, video {} packets, {} keyframes, kf requests {} offered {:?} video {:?}", audio.packets, video.packets, video.keyframes, c.keyframe_requests_received, c.offered, (video.seqs.first(), video.seqs.last(), &video.ssrcs, video.picture_ids.len()));
        assert!(audio.packets > 100 && video.packets > 100);
        assert!(video.keyframes >= 1);
        assert_eq!(video.gaps(), 0);
        // Media kept flowing after the garbage.
        assert!(video.last_at.unwrap().elapsed() < Duration::from_millis(500));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = stats(&server).await;
    eprintln!("{s}");
    assert!(
        s[0]["dropped_unknown_source"].as_u64().unwrap() >= 200,
        "{s}"
    );
    assert!(s[0]["rtp_forwarded"].as_u64().unwrap() > 400);
    // The same figures for Prometheus.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, text) = get(&server, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    assert!(value("switchboard_rtp_forwarded_total{worker=\"0\"}") > 400.0);
    // A connection's clock is advanced at least once per turn it is written to.
    assert!(value("switchboard_peer_clock_advances_total{worker=\"0\"}") > 400.0);
    assert!(
        value("switchboard_datagrams_dropped_total{worker=\"0\",reason=\"unknown_source\"}")
            >= 200.0
    );
    assert_eq!(value("switchboard_participants"), 2.0);
    assert_eq!(value("switchboard_rooms"), 1.0);
    // Every family of docs/operations, and the ones a call moves.
    for family in [
        "switchboard_datagrams_received_total",
        "switchboard_datagrams_sent_total",
        "switchboard_udp_bytes_received_total",
        "switchboard_udp_bytes_sent_total",
        "switchboard_media_packets_in_total",
        "switchboard_media_bytes_in_total",
        "switchboard_media_packets_out_total",
        "switchboard_media_bytes_out_total",
        "switchboard_rtp_not_forwarded_total",
        "switchboard_nacks_received_total",
        "switchboard_keyframe_requests_received_total",
        "switchboard_keyframe_requests_sent_total",
        "switchboard_layer_switches_total",
        "switchboard_subscription_pauses_total",
        "switchboard_bandwidth_estimate_bps_bucket",
        "switchboard_forwarding_latency_seconds_bucket",
        "switchboard_join_latency_seconds_bucket",
        "switchboard_worker_busy_ratio",
        "switchboard_worker_command_queue",
        "switchboard_worker_packet_rate",
        "switchboard_published_tracks",
        "switchboard_subscriptions",
        "switchboard_draining",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} missing from /metrics:\n{text}"
        );
    }
    for kind in ["audio", "video"] {
        assert!(
            value(&format!(
                "switchboard_media_packets_in_total{{worker=\"0\",kind=\"{kind}\"}}"
            )) > 100.0
        );
        assert!(
            value(&format!(
                "switchboard_media_bytes_out_total{{worker=\"0\",kind=\"{kind}\"}}"
            )) > 10_000.0
        );
    }
    assert_eq!(value("switchboard_published_tracks"), 4.0);
    assert_eq!(value("switchboard_subscriptions"), 4.0);
    assert_eq!(
        value("switchboard_join_latency_seconds_count"),
        2.0,
        "both participants connected"
    );
    assert!(value("switchboard_forwarding_latency_seconds_count{worker=\"0\"}") > 100.0);
    assert!(
        value("switchboard_bandwidth_estimate_bps_count") >= 2.0,
        "estimates reported"
    );
    assert!(value("switchboard_worker_busy_ratio{worker=\"0\"}") > 0.0);
    assert!(value("switchboard_udp_bytes_sent_total{worker=\"0\"}") > 100_000.0);
    assert_eq!(value("switchboard_draining"), 0.0);
    // Every series the Grafana dashboard queries exists (those that only appear once
    // something happens aside).
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana-dashboard.json"
    ))
    .unwrap();
    let conditional = [
        "switchboard_joins_refused_total",
        "switchboard_webhooks_failed_total",
    ];
    for name in dash
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("switchboard_"))
    {
        assert!(
            conditional.contains(&name) || text.contains(name),
            "the dashboard queries {name}, which /metrics lacks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_an_error_and_close_code() {
    let server = start_server();
    let forged = KeyStore::new([(KEY.to_string(), "not-the-secret-0123456789".to_string())])
        .mint(
            KEY,
            &Claims {
                iss: KEY.into(),
                sub: "mallory".into(),
                exp: signaling::auth::unix_now() + 600,
                nbf: None,
                kind: Default::default(),
                metadata: None,
                name: None,
                attributes: Default::default(),
                sip: Default::default(),
                video: VideoGrant::join("r"),
            },
        )
        .unwrap();
    for (tok, why) in [
        (String::new(), "missing"),
        (token("r", "late", -60), "expired"),
        (forged, "signature"),
        ("x.y.z".into(), "malformed"),
    ] {
        let mut w = ws(&server).await;
        send(&mut w, json!({"type": "join", "token": tok})).await;
        let e = recv(&mut w).await;
        assert_eq!(e["type"], "error", "{why}: {e}");
        assert_eq!(e["code"], "unauthorized", "{why}: {e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{why}: {e}");
        assert_eq!(recv(&mut w).await["close"], 4001, "{why}");
    }
    // A bad room name in an otherwise valid token.
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("bad room!", "x", 60)}),
    )
    .await;
    assert_eq!(recv(&mut w).await["code"], "unauthorized");
    // Unsupported protocol version.
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("r", "v", 60), "version": 99}),
    )
    .await;
    assert_eq!(recv(&mut w).await["code"], "unsupported_version");
    assert_eq!(recv(&mut w).await["close"], 4003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_get_errors_and_the_session_stays_up() {
    let server = start_server();
    let mut w = ws(&server).await;
    // Before join: anything but join is refused, the socket stays open.
    send(&mut w, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut w).await["code"], "bad_state");
    send(
        &mut w,
        json!({"type": "join", "token": token("room", "m", 60)}),
    )
    .await;
    assert_eq!(recv(&mut w).await["type"], "joined");
    for bad in [
        "garbage",
        "{}",
        r#"{"type":"nope"}"#,
        r#"{"type":"publish_offer"}"#,
        r#"{"type":"candidate","pc":"publisher","candidate":"nonsense"}"#,
    ] {
        w.send(Message::Text(bad.into())).await.unwrap();
        let e = recv(&mut w).await;
        assert_eq!(e["type"], "error", "{bad}: {e}");
    }
    w.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(recv(&mut w).await["code"], "bad_message");
    // A subscribe answer with no offer out, an unparseable offer, a second join.
    send(&mut w, json!({"type": "subscribe_answer", "sdp": "v=0"})).await;
    assert_eq!(recv(&mut w).await["code"], "media");
    send(&mut w, json!({"type": "publish_offer", "sdp": "not sdp"})).await;
    assert_eq!(recv(&mut w).await["code"], "media");
    send(
        &mut w,
        json!({"type": "join", "token": token("room", "m", 60)}),
    )
    .await;
    assert_eq!(recv(&mut w).await["code"], "bad_state");
    // Still up.
    send(&mut w, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut w).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_no_codec_in_common_gets_an_error() {
    let server = start_server();
    let mut w = ws(&server).await;
    send(
        &mut w,
        json!({"type": "join", "token": token("room", "pcmu", 60)}),
    )
    .await;
    assert_eq!(recv(&mut w).await["type"], "joined");
    // An offer with only G.722 audio, which the server does not take.
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 \
        00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:9 G722/8000\r\n";
    send(&mut w, json!({"type": "publish_offer", "sdp": sdp})).await;
    let e = recv(&mut w).await;
    assert_eq!(e["code"], "media", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("no codec in common"),
        "{e}"
    );
    send(&mut w, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut w).await["type"], "pong");
}

//! WHIP (RFC 9725) against the real binary: a str0m publisher over the plain HTTP
//! exchange is seen by a signaling participant; every error case; no half-created
//! participants.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use rand::SeedableRng;
use reqwest::StatusCode;
use serde_json::Value;
use sfu_core::testkit::{ClientSpec, SimClient};
use sfu_core::{ParticipantId, TrackKind};
use signaling::{Claims, KeyStore, VideoGrant};
use str0m::media::{Direction, MediaKind};

fn tok(video: VideoGrant, secret: &str) -> String {
    KeyStore::new([(KEY.to_string(), secret.to_string())])
        .mint(
            KEY,
            &Claims {
                iss: KEY.into(),
                sub: "obs".into(),
                exp: signaling::auth::unix_now() + 600,
                nbf: None,
                kind: Default::default(),
                metadata: None,
                name: Some("OBS".into()),
                attributes: Default::default(),
                video,
                sip: Default::default(),
            },
        )
        .unwrap()
}

async fn post(
    base: &str,
    room: &str,
    token: Option<&str>,
    ctype: &str,
    body: String,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/whip/{room}"))
        .header("content-type", ctype)
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// A simulated WHIP publisher (audio and video, no subscribing) on a socket of its own.
fn whip_publisher(seed: u64) -> (SimClient, UdpSocket) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let spec = ClientSpec {
        subscribe: false,
        ..ClientSpec::av()
    };
    let client = SimClient::new(
        Instant::now(),
        Instant::now(),
        ParticipantId(0),
        spec,
        addr,
        addr,
        &mut rng,
    );
    (client, sock)
}

async fn members(server: &Server, room: &str) -> usize {
    let admin = tok(
        VideoGrant {
            room_admin: true,
            room_join: false,
            ..VideoGrant::default()
        },
        SECRET,
    );
    let r = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/rooms/{room}/participants",
            server.http
        ))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::NOT_FOUND {
        return 0;
    }
    r.json::<Value>().await.unwrap()["participants"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_is_seen_by_a_signaling_participant() {
    let server = start_server();
    let base = format!("http://{}", server.http);
    let (mut whip, sock) = whip_publisher(9);
    let offer = whip.make_offer().unwrap();
    let token = tok(VideoGrant::join("studio"), SECRET);
    let r = post(&base, "studio", Some(&token), "application/sdp", offer).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["content-type"], "application/sdp");
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/whip/studio/"), "{location}");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    whip.accept_publish_answer(&r.text().await.unwrap());

    let mut viewer = Participant::join(&server, "studio", "viewer").await;
    pump(
        &mut whip,
        std::slice::from_ref(&sock),
        0,
        &mut viewer,
        Duration::from_secs(4),
    )
    .await;
    let from = viewer
        .messages
        .iter()
        .find(|m| m["type"] == "participant_joined" || m["type"] == "track_published");
    assert!(from.is_some(), "{:?}", viewer.messages);
    let publisher = viewer
        .client
        .offered
        .first()
        .map(|t| t.publisher)
        .expect("tracks offered to the viewer");
    let video = viewer
        .client
        .stream_from(publisher, TrackKind::Video)
        .expect("WHIP video reaches the viewer");
    let audio = viewer
        .client
        .stream_from(publisher, TrackKind::Audio)
        .expect("WHIP audio reaches the viewer");
    assert!(
        video.packets > 100 && audio.packets > 50,
        "video {} audio {}",
        video.packets,
        audio.packets
    );
    assert_eq!(video.gaps(), 0);

    // Trickle (ETag checked), then DELETE twice.
    let client = reqwest::Client::new();
    let frag = "a=ice-ufrag:abcd\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
    let patch = |m: &str| {
        client
            .patch(format!("{base}{location}"))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", m.to_string())
            .body(frag)
            .send()
    };
    assert_eq!(patch(&etag).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        patch("\"nope\"").await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    let r = client
        .patch(format!("{base}{location}"))
        .header("content-type", "text/plain")
        .body(frag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(members(&server, "studio").await, 2);
    assert_eq!(
        client
            .delete(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .delete(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        members(&server, "studio").await,
        1,
        "the WHIP participant is gone"
    );
    let r = client
        .patch(format!("{base}{location}"))
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body(frag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_errors_leave_nothing_behind() {
    let server = start_server();
    let base = format!("http://{}", server.http);
    let good = tok(VideoGrant::join("r"), SECRET);
    let offer = {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a = "127.0.0.1:9".parse().unwrap();
        SimClient::new(
            Instant::now(),
            Instant::now(),
            ParticipantId(0),
            ClientSpec::av(),
            a,
            a,
            &mut rng,
        )
        .make_offer()
        .unwrap()
    };
    let g722 = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 \
        00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\n\
        a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:9 G722/8000\r\n";
    let no_publish = tok(
        VideoGrant {
            can_publish: false,
            ..VideoGrant::join("r")
        },
        SECRET,
    );
    let other_room = tok(VideoGrant::join("elsewhere"), SECRET);
    let forged = tok(VideoGrant::join("r"), "forged-secret-0123456789abc");
    let cases: Vec<(Option<&str>, &str, String, StatusCode)> = vec![
        (
            Some(&good),
            "text/plain",
            offer.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            None,
            "application/sdp",
            offer.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(&forged),
            "application/sdp",
            offer.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(&other_room),
            "application/sdp",
            offer.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&no_publish),
            "application/sdp",
            offer.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            Some(&good),
            "application/sdp",
            "hello".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(&good),
            "application/sdp",
            "v=0\r\nm=garbage\r\n".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(&good),
            "application/sdp",
            g722.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (token, ctype, body, want) in cases {
        let r = post(&base, "r", token, ctype, body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{v}");
        assert!(v["code"].is_string(), "JSON error body: {v}");
    }
    // A room name outside the rule is the request's fault (400 `invalid`), not the
    // token's (it was 401 while WHIP mapped join refusals on its own).
    let bad_name = tok(VideoGrant::join("bad name!"), SECRET);
    let r = post(
        &base,
        "bad%20name!",
        Some(&bad_name),
        "application/sdp",
        offer.clone(),
    )
    .await;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid")),
        "{v}"
    );
    assert_eq!(
        members(&server, "r").await,
        0,
        "no half-created participants"
    );
    // CORS preflight
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/whip/r"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_errors() {
    let server = start_server();
    let base = format!("http://{}", server.http);
    let mut someone = ws(&server).await;
    common::send(
        &mut someone,
        serde_json::json!({"type": "join", "token": token("w", "alice", 60)}),
    )
    .await;
    assert_eq!(recv(&mut someone).await["type"], "joined");
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n".to_string();
    let good = tok(VideoGrant::join("w"), SECRET);
    let no_sub = tok(
        VideoGrant {
            can_subscribe: false,
            ..VideoGrant::join("w")
        },
        SECRET,
    );
    let client = reqwest::Client::new();
    let send = |path: &str, token: Option<&str>, ctype: &str, body: String| {
        let mut r = client
            .post(format!("{base}{path}"))
            .header("content-type", ctype)
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t.to_string());
        }
        r.send()
    };
    for (path, token, ctype, body, want) in [
        (
            "/whep/w/alice",
            Some(good.as_str()),
            "text/plain",
            offer.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/whep/w/alice",
            None,
            "application/sdp",
            offer.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/whep/w/alice?access_token=forged.token.here",
            None,
            "application/sdp",
            offer.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/whep/w/alice",
            Some(no_sub.as_str()),
            "application/sdp",
            offer.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "/whep/w/nobody",
            Some(good.as_str()),
            "application/sdp",
            offer.clone(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/whep/w/alice",
            Some(good.as_str()),
            "application/sdp",
            "nonsense".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/whep/w/alice",
            Some(good.as_str()),
            "application/sdp",
            offer.clone(),
            StatusCode::BAD_REQUEST,
        ), // no ICE/DTLS attributes
    ] {
        let r = send(path, token, ctype, body).await.unwrap();
        assert_eq!(r.status(), want, "{path}");
    }
    assert_eq!(members(&server, "w").await, 1, "no half-created viewers");
}

/// A WHEP viewer's offer made by str0m (ICE and DTLS attributes, no candidates): these
/// m-lines, in order, and a data channel when `data`.
fn viewer_offer(lines: &[(MediaKind, Direction)], data: bool) -> String {
    let mut rtc = str0m::RtcConfig::new().build(Instant::now());
    let mut api = rtc.sdp_api();
    for (kind, dir) in lines {
        api.add_media(*kind, *dir, None, None, None);
    }
    if data {
        api.add_channel("chat".into());
    }
    api.apply().expect("an offer").0.to_sdp_string()
}

/// The answer's audio/video m-lines: (kind, port, direction attribute).
fn answered(sdp: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for l in sdp.lines() {
        if let Some(m) = l.strip_prefix("m=") {
            let f: Vec<&str> = m.split(' ').collect();
            out.push((f[0].into(), f[1].into(), String::new()));
        } else if let Some(last) = out.last_mut() {
            if ["a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive"].contains(&l.trim()) {
                last.2 = l.trim()[2..].to_string();
            }
        }
    }
    out.retain(|(k, _, _)| k == "audio" || k == "video");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_offers_with_unusual_m_lines_are_answered_or_refused_cleanly() {
    use str0m::media::{Direction::*, MediaKind::*};
    let server = start_server();
    let base = format!("http://{}", server.http);
    let mut alice = ws(&server).await;
    common::send(
        &mut alice,
        serde_json::json!({"type": "join", "token": token("u", "alice", 60)}),
    )
    .await;
    assert_eq!(recv(&mut alice).await["type"], "joined");
    let good = tok(VideoGrant::join("u"), SECRET);
    let client = reqwest::Client::new();
    // (what, m-lines offered, data channel, the kinds the answer must send; None: refused)
    type Case<'a> = (&'a str, Vec<(MediaKind, Direction)>, bool, Option<&'a str>);
    let cases: [Case; 5] = [
        ("video only", vec![(Video, RecvOnly)], false, Some("video")),
        ("audio only", vec![(Audio, RecvOnly)], false, Some("audio")),
        (
            "audio, video and a data channel",
            vec![(Audio, RecvOnly), (Video, RecvOnly)],
            true,
            Some("audio video"),
        ),
        (
            "one inactive m-line beside a receiving one",
            vec![(Audio, Inactive), (Video, RecvOnly)],
            false,
            Some("video"),
        ),
        (
            "every m-line inactive",
            vec![(Audio, Inactive), (Video, Inactive)],
            false,
            None,
        ),
    ];
    for (what, lines, data, sends) in cases {
        let offer = viewer_offer(&lines, data);
        let r = client
            .post(format!("{base}/whep/u/alice?access_token={good}"))
            .header("content-type", "application/sdp")
            .body(offer.clone())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let location = r.headers().get("location").cloned();
        let body = r.text().await.unwrap();
        match sends {
            Some(kinds) => {
                assert_eq!(status, StatusCode::CREATED, "{what}: {body}");
                let m = answered(&body);
                assert_eq!(
                    m.len(),
                    lines.len(),
                    "{what}: one answer m-line per offered one"
                );
                let sending: Vec<&str> = m
                    .iter()
                    .filter(|(_, port, dir)| port != "0" && dir == "sendonly")
                    .map(|(k, _, _)| k.as_str())
                    .collect();
                assert_eq!(sending.join(" "), kinds, "{what}: {body}");
            }
            None => {
                assert!(status.is_client_error(), "{what}: {status} {body}");
                let e: Value = serde_json::from_str(&body).expect("a JSON error");
                assert!(
                    e["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{body}"
                );
            }
        }
        assert_eq!(
            members(&server, "u").await,
            1 + usize::from(location.is_some()),
            "{what}: one viewer when answered, none when refused"
        );
        if let Some(l) = location {
            let l = l.to_str().unwrap();
            let r = client.delete(format!("{base}{l}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
}

/// Pump a WHIP client over the socket `active` of `socks`, for `d`, while a viewer runs.
/// Datagrams to or from the other sockets are lost: those interfaces are gone.
async fn pump(
    whip: &mut SimClient,
    socks: &[UdpSocket],
    active: usize,
    viewer: &mut Participant,
    d: Duration,
) {
    let end = Instant::now() + d;
    let mut buf = vec![0u8; 2048];
    let here = socks[active].local_addr().unwrap();
    while Instant::now() < end {
        let now = Instant::now();
        while let Ok((n, from)) = socks[active].recv_from(&mut buf) {
            whip.receive(now, from, here, &buf[..n]);
        }
        for (i, s) in socks.iter().enumerate() {
            if i != active {
                while s.recv_from(&mut buf).is_ok() {}
            }
        }
        whip.timeout(now);
        whip.produce(now);
        let mut out = Vec::new();
        whip.drain(now, |src, dst, d| out.push((src, dst, d)));
        for (src, dst, d) in out {
            if src == here {
                let _ = socks[active].send_to(&d, dst);
            }
        }
        viewer.run(Duration::from_millis(3)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_over_patch_moves_the_publisher_to_a_new_address() {
    let server = start_server();
    let base = format!("http://{}", server.http);
    let socks = [
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    ];
    for s in &socks {
        s.set_nonblocking(true).unwrap();
    }
    let first = socks[0].local_addr().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let spec = ClientSpec {
        subscribe: false,
        ..ClientSpec::av()
    };
    let mut whip = SimClient::new(
        Instant::now(),
        Instant::now(),
        ParticipantId(0),
        spec,
        first,
        first,
        &mut rng,
    );
    let offer = whip.make_offer().unwrap();
    let r = post(
        &base,
        "moving",
        Some(&tok(VideoGrant::join("moving"), SECRET)),
        "application/sdp",
        offer,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    whip.accept_publish_answer(&r.text().await.unwrap());
    let mut viewer = Participant::join(&server, "moving", "viewer").await;
    pump(&mut whip, &socks, 0, &mut viewer, Duration::from_secs(3)).await;
    let publisher = viewer
        .client
        .offered
        .first()
        .map(|t| t.publisher)
        .expect("tracks offered");
    let before = viewer
        .client
        .stream_from(publisher, TrackKind::Video)
        .map_or(0, |v| v.packets);
    assert!(before > 50, "video flows before the restart: {before}");

    // The network changes: new address, new credentials, signalled with PATCH.
    let second = socks[1].local_addr().unwrap();
    let (ufrag, pwd) = whip.restart_publisher_ice(second).unwrap();
    let frag = format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
        second.ip(),
        second.port()
    );
    let client = reqwest::Client::new();
    let patch = |etag: &str, frag: &str| {
        client
            .patch(format!("{base}{location}"))
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", etag.to_string())
            .body(frag.to_string())
            .send()
    };
    let r = patch(&etag, &frag).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "an ICE restart is answered with the server's credentials"
    );
    assert_eq!(
        r.headers()["content-type"],
        "application/trickle-ice-sdpfrag"
    );
    let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag, "a restart changes the ETag");
    let answer = r.text().await.unwrap();
    let attr = |name: &str| {
        answer
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("a={name}:"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no {name} in {answer}"))
    };
    assert!(
        answer.contains("a=candidate:") && answer.contains("a=ice-lite"),
        "{answer}"
    );
    whip.set_publisher_remote_ice(&attr("ice-ufrag"), &attr("ice-pwd"));
    // The old ETag no longer matches; a bad password is refused.
    assert_eq!(
        patch(&etag, "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
            .await
            .unwrap()
            .status(),
        StatusCode::PRECONDITION_FAILED
    );
    let bad = patch("*", "a=ice-ufrag:zzzz\r\na=ice-pwd:short\r\n")
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // From now on only the new address works: media flows again through it.
    pump(&mut whip, &socks, 1, &mut viewer, Duration::from_secs(4)).await;
    let mid = viewer
        .client
        .stream_from(publisher, TrackKind::Video)
        .map_or(0, |v| v.packets);
    pump(&mut whip, &socks, 1, &mut viewer, Duration::from_secs(2)).await;
    let after = viewer
        .client
        .stream_from(publisher, TrackKind::Video)
        .map_or(0, |v| v.packets);
    eprintln!("video packets: {before} before the restart, {mid} 4 s after it, {after} 2 s later");
    assert!(
        after - mid > 50,
        "video flows from the new address after the restart: {} packets in 2 s",
        after - mid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_turn_configured_the_whip_answer_links_the_turn_servers() {
    let urls = "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp";
    let server = start_server_with(&[
        "--turn-urls",
        urls,
        "--turn-secret",
        "shared",
        "--turn-ttl",
        "900",
    ]);
    let base = format!("http://{}", server.http);
    let (mut whip, _sock) = whip_publisher(3);
    let offer = whip.make_offer().unwrap();
    let token = tok(VideoGrant::join("turned"), SECRET);
    let r = post(&base, "turned", Some(&token), "application/sdp", offer).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let links: Vec<String> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(links.len(), 2, "{links:?}");
    let now = signaling::auth::unix_now();
    for (link, url) in links.iter().zip(urls.split(',')) {
        assert!(
            link.starts_with(&format!("<{url}>; rel=\"ice-server\"; username=\"")),
            "{link}"
        );
        // username="<expiry>:<id>"; credential = base64 HMAC-SHA1 of it under the secret.
        let user = link
            .split("username=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let cred = link
            .split("credential=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let expiry: u64 = user.split(':').next().unwrap().parse().unwrap();
        assert!((now + 890..=now + 910).contains(&expiry), "{user}");
        assert_eq!(cred, signaling::turn::password("shared", user));
        assert!(link.ends_with("credential-type=\"password\""), "{link}");
    }
    // Without TURN configured there is no Link header.
    let plain = start_server();
    let offer = whip.make_offer().unwrap();
    let token = tok(VideoGrant::join("plain"), SECRET);
    let r = post(
        &format!("http://{}", plain.http),
        "plain",
        Some(&token),
        "application/sdp",
        offer,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("link").is_none());
}

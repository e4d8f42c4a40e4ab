//! Three nodes on one real `redis-server` (loopback): rooms get exactly one home under
//! concurrent first joins through every node, new rooms spread by load, a dead home's
//! rooms are re-homed on the next join, and a Redis outage refuses only new rooms.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use common::*;
use serde_json::{json, Value};
use sfu_core::TrackKind;

fn nodes(redis: &RedisServer, extra: &[&str]) -> Vec<Server> {
    (1..=3)
        .map(|i| {
            let id = format!("n{i}");
            let mut args = vec!["--redis-url", redis.url.as_str(), "--node-id", id.as_str()];
            args.extend_from_slice(extra);
            start_server_with(&args)
        })
        .collect()
}

/// A webhook receiver: the (event, room, participant identity) of every delivery.
async fn hooks() -> (String, Arc<Mutex<Vec<(String, String, String)>>>) {
    let got: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let s = |x: &Value| x.as_str().unwrap_or("").to_string();
                g.lock().push((
                    s(&v["event"]),
                    s(&v["room"]["name"]),
                    s(&v["participant"]["identity"]),
                ));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

fn ws_url(s: &Server) -> String {
    format!("ws://{}/ws", s.http)
}

/// `GET http://{node}{path}` as an administrator, as JSON.
async fn admin_get(node: &Server, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", node.http))
        .bearer_auth(admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Rooms each node serves (its own list, through REST).
async fn rooms_of(s: &Server) -> Vec<String> {
    let v = admin_get(s, "/api/v1/rooms?scope=local").await;
    v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn join_msg(room: &str, name: &str) -> Value {
    json!({"type": "join", "token": token(room, name, 600), "version": 1})
}

/// Each participant received more than 50 video packets from each other one.
fn everyone_receives_everyones_video(ps: &[Participant]) {
    for (a, me) in ps.iter().enumerate() {
        for (b, other) in ps.iter().enumerate().filter(|(b, _)| *b != a) {
            let v = me
                .client
                .stream_from(other.id, TrackKind::Video)
                .map_or(0, |v| v.packets);
            assert!(v > 50, "{a} receives {b}'s video: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_home_per_room_across_three_nodes_and_rooms_spread_by_load() {
    let redis = RedisServer::start();
    let (hook_url, delivered) = hooks().await;
    let ns = nodes(&redis, &["--webhook-url", &hook_url]);
    // 100 concurrent first joins of one room, a third through each node.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = ws_url(&ns[i % 3]);
        tasks.push(tokio::spawn(async move {
            join_following(&url, &join_msg("big", &format!("p{i}"))).await
        }));
    }
    let mut sockets = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (ws, joined) = t.await.unwrap();
        assert_eq!(joined["type"], "joined", "{joined}");
        ids.insert(joined["participant"]["id"].as_u64().unwrap());
        sockets.push(ws);
    }
    eprintln!("100 concurrent joins through 3 nodes in {:?}", t0.elapsed());
    assert_eq!(ids.len(), 100, "unique participant ids");
    let mut homes = Vec::new();
    for n in &ns {
        homes.push(rooms_of(n).await.contains(&"big".to_string()));
    }
    assert_eq!(
        homes.iter().filter(|h| **h).count(),
        1,
        "one home: {homes:?}"
    );
    // Webhooks: sent once per event, by the home.
    let deadline = Instant::now() + Duration::from_secs(5);
    let count = |event: &str| {
        delivered
            .lock()
            .iter()
            .filter(|(e, r, _)| e == event && r == "big")
            .count()
    };
    while count("participant_joined") < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count("room_started"), 1, "one room_started");
    let joined: std::collections::HashSet<String> = delivered
        .lock()
        .iter()
        .filter(|(e, r, _)| e == "participant_joined" && r == "big")
        .map(|(_, _, p)| p.clone())
        .collect();
    assert_eq!(
        (count("participant_joined"), joined.len()),
        (100, 100),
        "no duplicate webhook"
    );
    // Media between participants who came in through different nodes.
    let mut ps = Vec::new();
    for (i, n) in ns.iter().enumerate() {
        ps.push(Participant::join_at(&ws_url(n), "call", &format!("m{i}"), false).await);
    }
    run_all(&mut ps, Duration::from_secs(4)).await;
    everyone_receives_everyones_video(&ps);
    // Join time through the home vs through another node (moved, then the home), and
    // the Redis commands a join to a new room costs (figures for docs/benchmarks.md).
    let home = homes.iter().position(|h| *h).unwrap();
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..10 {
        for (k, via) in [home, (home + 1) % 3].into_iter().enumerate() {
            let t = Instant::now();
            let (ws, joined) =
                join_following(&ws_url(&ns[via]), &join_msg("big", &format!("t{k}{i}"))).await;
            assert_eq!(joined["type"], "joined");
            times[k].push(t.elapsed());
            sockets.push(ws);
        }
    }
    for t in &mut times {
        t.sort();
    }
    let commands = || -> u64 {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "info", "stats"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let mut per_join = Vec::new();
    for i in 0..5 {
        let before = commands();
        let (ws, joined) =
            join_following(&ws_url(&ns[0]), &join_msg(&format!("cost{i}"), "c")).await;
        assert_eq!(joined["type"], "joined");
        per_join.push(commands() - before - 1); // the INFO itself counts once
        sockets.push(ws);
        // Leave it: the room closes when its timeout passes; it stays counted below.
    }
    per_join.sort();
    eprintln!(
        "join median: through the home {:?}, through another node {:?}; Redis commands per new-room join {per_join:?}",
        times[0][5], times[1][5]
    );
    // 24 more rooms created through node 1 spread over the three by load (rooms).
    for i in 0..24 {
        let (_ws, joined) = join_following(&ws_url(&ns[0]), &join_msg(&format!("s{i}"), "x")).await;
        assert_eq!(joined["type"], "joined");
        sockets.push(_ws);
    }
    let mut counts = Vec::new();
    for n in &ns {
        counts.push(rooms_of(n).await.len());
    }
    eprintln!("rooms per node: {counts:?}");
    // 31 rooms ("big", "call", 5 "cost", 24): 10 or 11 each.
    assert!(counts.iter().all(|c| (10..=11).contains(c)), "{counts:?}");
    // And again for 20 rooms at once: 15 concurrent first joins each, through all nodes.
    let mut tasks = Vec::new();
    for r in 0..20 {
        for i in 0..15 {
            let url = ws_url(&ns[(r + i) % 3]);
            tasks.push(tokio::spawn(async move {
                join_following(&url, &join_msg(&format!("many{r}"), &format!("p{i}"))).await
            }));
        }
    }
    for t in tasks {
        let (ws, joined) = t.await.unwrap();
        assert_eq!(joined["type"], "joined", "{joined}");
        sockets.push(ws);
    }
    let mut lists = Vec::new();
    for n in &ns {
        lists.push(rooms_of(n).await);
    }
    for r in 0..20 {
        let name = format!("many{r}");
        let homes = lists.iter().filter(|l| l.contains(&name)).count();
        assert_eq!(homes, 1, "{name} has {homes} homes");
    }
    // REST through any node: the list is the cluster's; a room's requests reach its home.
    let api = reqwest::Client::new();
    let all = admin_get(&ns[0], "/api/v1/rooms").await;
    let total: usize = lists.iter().map(|l| l.len()).sum();
    assert_eq!(
        all["rooms"].as_array().unwrap().len(),
        total,
        "every node's rooms, once"
    );
    let elsewhere = (home + 1) % 3;
    let people = admin_get(&ns[elsewhere], "/api/v1/rooms/big/participants").await;
    assert_eq!(
        people["participants"].as_array().map(Vec::len),
        Some(120),
        "100 + 20 timing joins: {people}"
    );
    let created = api
        .post(format!("http://{}/api/v1/rooms", ns[0].http))
        .bearer_auth(admin_token())
        .json(&json!({"name": "made"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    let mut made = 0;
    for n in &ns {
        made += usize::from(rooms_of(n).await.contains(&"made".to_string()));
    }
    assert_eq!(made, 1, "created on its home only");
    // LiveKit's RoomService (Twirp, its JSON mapping) through any node, as LiveKit's server
    // SDKs call it: the room named in the body is served by its home; ListRooms is the
    // cluster's; CreateRoom lands on one node.
    let twirp = |n: &Server, method: &str, body: Value| {
        api.post(format!(
            "http://{}/twirp/livekit.RoomService/{method}",
            n.http
        ))
        .bearer_auth(admin_token())
        .json(&body)
        .send()
    };
    let people = twirp(&ns[elsewhere], "ListParticipants", json!({"room": "big"}))
        .await
        .unwrap();
    assert!(people.status().is_success(), "{}", people.status());
    let people: Value = people.json().await.unwrap();
    assert_eq!(
        people["participants"].as_array().map(Vec::len),
        Some(120),
        "Twirp through another node: {people}"
    );
    let listed: Value = twirp(&ns[elsewhere], "ListRooms", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["rooms"].as_array().map(Vec::len),
        Some(total + 1),
        "every node's rooms and the one made above, once"
    );
    let made = twirp(&ns[0], "CreateRoom", json!({"name": "made-by-twirp"}))
        .await
        .unwrap();
    let (status, body) = (made.status(), made.text().await.unwrap());
    assert!(status.is_success(), "{status} {body}");
    let mut homes = 0;
    for n in &ns {
        homes += usize::from(rooms_of(n).await.contains(&"made-by-twirp".to_string()));
    }
    assert_eq!(homes, 1, "created on its home only");
    let gone = twirp(
        &ns[elsewhere],
        "GetParticipant",
        json!({"room": "big", "identity": "nobody"}),
    )
    .await
    .unwrap();
    assert_eq!(gone.status(), 404, "the home's answer, relayed");
    // WHIP to a node that is not the room's home: forwarded there, the home's answer
    // relayed (the same as asking the home).
    let whip = |n: &Server| {
        api.post(format!("http://{}/whip/big", n.http))
            .bearer_auth(token("big", "whip", 600))
            .header("content-type", "application/sdp")
            .body("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")
            .send()
    };
    let via_other = whip(&ns[elsewhere]).await.unwrap();
    let (s1, b1) = (via_other.status(), via_other.text().await.unwrap());
    let direct = whip(&ns[home]).await.unwrap();
    let (s2, b2) = (direct.status(), direct.text().await.unwrap());
    eprintln!("WHIP through another node: {s1} {b1}; at the home: {s2} {b2}");
    let code = |b: &str| serde_json::from_str::<Value>(b).unwrap()["code"].clone();
    assert_eq!((s1, code(&b1)), (s2, code(&b2)));
    // A forwarding mark a client makes up is refused (403), token or not: only a node can
    // make one (an HMAC, see a_forged_forwarding_mark_is_refused_…).
    for auth in [Some(admin_token()), None] {
        let mut r = api
            .get(format!(
                "http://{}/api/v1/rooms/big/participants",
                ns[elsewhere].http
            ))
            .header("x-switchboard-forwarded", "1");
        if let Some(t) = auth {
            r = r.bearer_auth(t);
        }
        assert_eq!(r.send().await.unwrap().status(), 403);
    }
    drop(sockets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_home_is_replaced_and_a_redis_outage_refuses_only_new_rooms() {
    let redis = RedisServer::start();
    let mut ns = nodes(&redis, &[]);
    // A room and its home.
    let (ws, joined) = join_following(&ws_url(&ns[0]), &join_msg("r", "a")).await;
    assert_eq!(joined["type"], "joined");
    drop(ws);
    let mut home = None;
    for (i, n) in ns.iter().enumerate() {
        if rooms_of(n).await.contains(&"r".to_string()) {
            home = Some(i);
        }
    }
    let home = home.expect("a home");
    let other = (home + 1) % 3;
    // kill -9 of the home: once its registry key expires (6 s), the next join re-homes.
    let killed = Instant::now();
    let _ = ns[home].child.kill();
    let _ = ns[home].child.wait();
    let rehomed = loop {
        let (_ws, m) = join_following(&ws_url(&ns[other]), &join_msg("r", "b")).await;
        if m["type"] == "joined" {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "not re-homed: {m}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("re-homed {rehomed:?} after kill -9");
    assert!(rehomed >= Duration::from_secs(3) && rehomed < Duration::from_secs(10));
    // A call on a live node; then Redis dies.
    let alive: Vec<usize> = (0..3).filter(|i| *i != home).collect();
    let mut ps = vec![
        Participant::join_at(&ws_url(&ns[alive[0]]), "live", "x", false).await,
        Participant::join_at(&ws_url(&ns[alive[1]]), "live", "y", false).await,
    ];
    run_all(&mut ps, Duration::from_secs(2)).await;
    let port = redis.port;
    drop(redis);
    let t0 = Instant::now();
    let (_ws, m) = join_following(&ws_url(&ns[alive[0]]), &join_msg("fresh", "z")).await;
    let refused_in = t0.elapsed();
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["code"], "unavailable", "{m}");
    assert!(
        refused_in < Duration::from_secs(1),
        "refused in {refused_in:?}"
    );
    // The running call goes on, packets keep flowing.
    let before = ps[0]
        .client
        .stream_from(ps[1].id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    run_all(&mut ps, Duration::from_secs(3)).await;
    let after = ps[0]
        .client
        .stream_from(ps[1].id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    assert!(after > before + 60, "{before} → {after}");
    // /readyz says why.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = reqwest::get(format!("http://{}/readyz", ns[alive[0]].http))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Redis"));
    // Redis comes back, empty: the nodes register again, claim back the rooms they
    // serve, and new rooms are placed again; the running call never noticed.
    let _redis = RedisServer::start_on(port);
    let back = Instant::now();
    loop {
        let (_ws, m) = join_following(&ws_url(&ns[alive[0]]), &join_msg("after", "w")).await;
        if m["type"] == "joined" {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "not back: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "new rooms placed again {:?} after Redis returned",
        back.elapsed()
    );
    run_all(&mut ps, Duration::from_secs(3)).await;
    let (_ws, m) = join_following(&ws_url(&ns[alive[1]]), &join_msg("live", "late")).await;
    assert_eq!(m["type"], "joined", "the running room kept its home: {m}");
    assert_eq!(
        ps[0]
            .messages
            .iter()
            .filter(|m| m["type"] == "participant_left")
            .count(),
        0,
        "nobody left the running call"
    );
    ns.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_no_new_room_keeps_its_calls_then_hands_them_on() {
    let redis = RedisServer::start();
    let ns: Vec<Server> = (1..=3)
        .map(|i| {
            start_server_with(&[
                "--redis-url",
                &redis.url,
                "--node-id",
                &format!("d{i}"),
                "--drain-timeout",
                "5",
            ])
        })
        .collect();
    // A call, and the node it lives on.
    let mut ps = vec![
        Participant::join_at(&ws_url(&ns[0]), "d", "a", false).await,
        Participant::join_at(&ws_url(&ns[1]), "d", "b", false).await,
    ];
    run_all(&mut ps, Duration::from_secs(2)).await;
    let mut home = 0;
    for (i, n) in ns.iter().enumerate() {
        if rooms_of(n).await.contains(&"d".to_string()) {
            home = i;
        }
    }
    let draining = &ns[home];
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &draining.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New rooms, through every node, go elsewhere.
    let mut sockets = Vec::new();
    for i in 0..9 {
        let (ws, m) = join_following(&ws_url(&ns[i % 3]), &join_msg(&format!("n{i}"), "x")).await;
        assert_eq!(m["type"], "joined", "{m}");
        sockets.push(ws);
    }
    assert_eq!(
        rooms_of(draining).await,
        vec!["d".to_string()],
        "no new room on the draining node"
    );
    // Its call goes on until the drain timeout.
    let before = ps[0]
        .client
        .stream_from(ps[1].id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    run_all(&mut ps, Duration::from_secs(2)).await;
    let after = ps[0]
        .client
        .stream_from(ps[1].id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    assert!(
        after > before + 40,
        "the call goes on while draining: {before} → {after}"
    );
    // Then it closes the sessions ("shutting down") and its clients join again: the
    // room is placed on a live node at once (the draining node gave it up).
    let t0 = Instant::now();
    loop {
        run_all(&mut ps, Duration::from_millis(200)).await;
        if ps[0].messages.iter().any(|m| m["code"] == "shutting_down") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the drain did not end"
        );
    }
    let live = (home + 1) % 3;
    let t1 = Instant::now();
    let mut again = vec![
        Participant::join_at(&ws_url(&ns[live]), "d", "a", false).await,
        Participant::join_at(&ws_url(&ns[live]), "d", "b", false).await,
    ];
    eprintln!(
        "rejoined elsewhere {:?} after the drain ended",
        t1.elapsed()
    );
    run_all(&mut again, Duration::from_secs(3)).await;
    let v = again[0]
        .client
        .stream_from(again[1].id, TrackKind::Video)
        .map_or(0, |v| v.packets);
    assert!(v > 50, "media on the new home: {v}");
    assert!(t1.elapsed() < Duration::from_secs(6));
    drop(sockets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_that_comes_back_with_a_stale_epoch_steps_down() {
    let redis = RedisServer::start();
    let ns = nodes(&redis, &["--resume-grace", "30"]);
    let mut first = Participant::join_at(&ws_url(&ns[0]), "stale", "a", false).await;
    first.run(Duration::from_secs(1)).await;
    let mut home = 0;
    for (i, n) in ns.iter().enumerate() {
        if rooms_of(n).await.contains(&"stale".to_string()) {
            home = i;
        }
    }
    // The home freezes (SIGSTOP) past its registry key's TTL; meanwhile the room is
    // re-homed by a join through another node.
    let pid = ns[home].child.id().to_string();
    let signal = |s: &str| {
        assert!(std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success())
    };
    signal("-STOP");
    let other = (home + 1) % 3;
    let t0 = Instant::now();
    let mut second = loop {
        let (ws, m) = join_following(&ws_url(&ns[other]), &join_msg("stale", "b")).await;
        if m["type"] == "joined" {
            drop(ws);
            break Participant::join_at(&ws_url(&ns[other]), "stale", "c", false).await;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "not re-homed: {m}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    signal("-CONT");
    // Back, it finds the claim is no longer its own and closes its copy of the room: its
    // participant is told, and only the new home serves the room.
    let t1 = Instant::now();
    loop {
        first.run(Duration::from_millis(200)).await;
        second.run(Duration::from_millis(10)).await;
        if first
            .messages
            .iter()
            .any(|m| m["type"] == "error" && m["code"] == "removed")
        {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(8),
            "the stale home did not step down: {:?}",
            first.messages
        );
    }
    eprintln!(
        "the stale home stepped down {:?} after it resumed",
        t1.elapsed()
    );
    let mut homes = 0;
    for n in &ns {
        homes += usize::from(rooms_of(n).await.contains(&"stale".to_string()));
    }
    assert_eq!(homes, 1, "one home");
}

/// One raw INVITE for `room` over UDP to a gateway at `sip_port`: its final answer (the
/// status line and headers), or "" when none came within 5 s.
fn invite(sip_port: u16, room: &str) -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let uri = format!("sip:{room}@127.0.0.1:{sip_port}");
    let msg = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{port}x;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=t{port}\r\nTo: <{uri}>\r\n\
         Call-ID: c{port}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.send_to(msg.as_bytes(), ("127.0.0.1", sip_port)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = s.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with("SIP/2.0") && !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_forwarding_mark_is_refused_and_every_join_path_lands_on_the_home() {
    let redis = RedisServer::start();
    let sip_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let ns: Vec<Server> = (0..3)
        .map(|i| {
            let id = format!("n{}", i + 1);
            let sip = format!("127.0.0.1:{}", sip_ports[i]);
            start_server_with(&[
                "--redis-url",
                redis.url.as_str(),
                "--node-id",
                id.as_str(),
                "--sip-listen",
                sip.as_str(),
                // Development routing: `sip:<room>@host` joins <room>.
                "--dev",
            ])
        })
        .collect();
    let http = reqwest::Client::new();
    let create = |node: &Server, mark: Option<&str>| {
        let mut r = http
            .post(format!("http://{}/api/v1/rooms", node.http))
            .bearer_auth(admin_token())
            .json(&json!({"name": "split"}));
        if let Some(m) = mark {
            r = r.header("x-switchboard-forwarded", m);
        }
        r.send()
    };
    assert_eq!(create(&ns[0], None).await.unwrap().status(), 201);
    let mut home = None;
    for (i, n) in ns.iter().enumerate() {
        if rooms_of(n).await.contains(&"split".to_string()) {
            home = Some(i);
        }
    }
    let home = home.expect("the room has a home");
    let other = (home + 1) % 3;
    // A client that sets the mark itself (as a node would have, before the mark was an
    // HMAC) is refused, and the other node makes no copy of the room.
    let now = signaling::auth::unix_now();
    for forged in ["1".to_string(), format!("{now}.{}", "ab".repeat(32))] {
        let r = create(&ns[other], Some(&forged)).await.unwrap();
        assert_eq!(r.status(), 403, "forged mark {forged}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "forbidden", "{body}");
    }
    assert!(
        !rooms_of(&ns[other]).await.contains(&"split".to_string()),
        "a second copy of the room"
    );
    // A WHEP viewer with its token in the query, reaching the other node, is served by
    // the home (forwarded), not by a copy of the room.
    let offer = {
        let mut rtc = str0m::RtcConfig::new().build(std::time::Instant::now());
        let mut api = rtc.sdp_api();
        api.add_media(
            str0m::media::MediaKind::Video,
            str0m::media::Direction::RecvOnly,
            None,
            None,
            None,
        );
        api.apply().expect("an offer").0.to_sdp_string()
    };
    let r = http
        .post(format!(
            "http://{}/whep/split?access_token={}",
            ns[other].http,
            token("split", "viewer", 600)
        ))
        .header("content-type", "application/sdp")
        .body(offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    assert!(!rooms_of(&ns[other]).await.contains(&"split".to_string()));
    let members = admin_get(&ns[home], "/api/v1/rooms/split/participants").await;
    assert_eq!(
        members["participants"].as_array().map(Vec::len),
        Some(1),
        "the viewer is at the home: {members}"
    );
    // A WHEP viewer (WHIP alike) that is the first into a new room, reaching a node the
    // directory does not choose: the node it reached claims the room for its home and
    // forwards; the home takes the claim up and serves it. Two new rooms through one node
    // (rooms go to the node with the fewest), so at least one is placed elsewhere.
    let mut elsewhere = 0;
    for room in ["fresh1", "fresh2"] {
        let r = http
            .post(format!(
                "http://{}/whep/{room}?access_token={}",
                ns[0].http,
                token(room, "viewer", 600)
            ))
            .header("content-type", "application/sdp")
            .body(offer.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{room}: {:?}", r.text().await);
        let mut homes = Vec::new();
        for (i, n) in ns.iter().enumerate() {
            if rooms_of(n).await.contains(&room.to_string()) {
                homes.push(i);
            }
        }
        assert_eq!(homes.len(), 1, "{room} on one node: {homes:?}");
        elsewhere += usize::from(homes[0] != 0);
    }
    assert!(elsewhere >= 1, "no new room was placed on another node");
    // A phone calling the room at the other node's gateway is redirected to the home's.
    let other_sip = sip_ports[other];
    let answer = tokio::task::spawn_blocking(move || invite(other_sip, "split"))
        .await
        .unwrap();
    assert!(
        answer.starts_with("SIP/2.0 302")
            && answer.contains(&format!("sip:split@127.0.0.1:{}", sip_ports[home])),
        "{answer}"
    );
    assert!(!rooms_of(&ns[other]).await.contains(&"split".to_string()));
}

/// One public name: a client whose socket reaches a node that is not its room's home is
/// served on that socket (the node relays its signaling to the home), never sent to a
/// node's own URL; a client that asks for `moved` still gets it. Media flows between
/// participants who came in through three different nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reaching_any_node_is_served_there_through_the_relay() {
    let redis = RedisServer::start();
    let ns = nodes(&redis, &[]);
    let mut ps = vec![Participant::join_at(&ws_url(&ns[0]), "relay", "r0", false).await];
    let mut home = None;
    for (i, n) in ns.iter().enumerate() {
        if rooms_of(n).await.contains(&"relay".to_string()) {
            home = Some(i);
        }
    }
    let home = home.expect("the room has a home");
    let others = [(home + 1) % 3, (home + 2) % 3];
    // A plain join through a node that is not the home: `joined` on that very socket.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&ns[others[0]]))
        .await
        .unwrap();
    send(&mut ws, join_msg("relay", "plain")).await;
    let first = recv(&mut ws).await;
    assert_eq!(first["type"], "joined", "served through the relay: {first}");
    assert_eq!(first["others"][0]["identity"], "r0");
    drop(ws);
    // Asked for: `moved`, to the home.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&ns[others[0]]))
        .await
        .unwrap();
    let mut asks = join_msg("relay", "mover");
    asks["moved"] = json!(true);
    send(&mut ws, asks).await;
    let m = recv(&mut ws).await;
    assert_eq!(m["type"], "moved", "{m}");
    assert_eq!(m["url"], ws_url(&ns[home]));
    // Media between participants on the home and relayed through both other nodes.
    for (k, via) in others.iter().enumerate() {
        ps.push(
            Participant::join_at(&ws_url(&ns[*via]), "relay", &format!("r{}", k + 1), false).await,
        );
    }
    run_all(&mut ps, Duration::from_secs(4)).await;
    everyone_receives_everyones_video(&ps);
    // One copy of the room, at its home.
    for (i, n) in ns.iter().enumerate() {
        assert_eq!(rooms_of(n).await.contains(&"relay".to_string()), i == home);
    }
}

/// A node's `switchboard_relay_links` gauge (links up to other nodes).
async fn relay_links(s: &Server) -> Option<u64> {
    let text = reqwest::get(format!("http://{}/metrics", s.http))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("switchboard_relay_links "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Waits until every node in `ns` (by index in `which`) reports `want` relay links.
async fn wait_links(ns: &[Server], which: &[usize], want: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut now = Vec::new();
        for &i in which {
            now.push(relay_links(&ns[i]).await);
        }
        if now.iter().all(|n| *n == Some(want)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "relay links {now:?}, wanted {want} on each of nodes {which:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_keep_authenticated_relay_links_to_each_other_and_re_establish_them() {
    let redis = RedisServer::start();
    let mut ns = nodes(&redis, &[]);
    // Each node pins the others' certificates from the registry and the lower id dials:
    // one link per pair, so two per node.
    let up = wait_links(&ns, &[0, 1, 2], 2, Duration::from_secs(15)).await;
    println!("three nodes: every pair linked {up:?} after start");
    // kill -9 of n2: the others' links to it end (QUIC's idle timeout or the registry
    // key's expiry, whichever first) and are not re-dialed while it is gone.
    let _ = ns[1].child.kill();
    let _ = ns[1].child.wait();
    let down = wait_links(&ns, &[0, 2], 1, Duration::from_secs(20)).await;
    println!("n2 killed: its links gone after {down:?}");
    // n2 back (a new process, a new certificate): the links come back.
    ns[1] = start_server_with(&["--redis-url", redis.url.as_str(), "--node-id", "n2"]);
    let again = wait_links(&ns, &[0, 1, 2], 2, Duration::from_secs(20)).await;
    println!("n2 restarted: linked again after {again:?}");
    // n3 killed and back at once, under the same id: the others' links to its earlier
    // process look alive (QUIC notices only after 30 s idle), but the registry names a new
    // certificate, so they are closed and the new process is dialed.
    let _ = ns[2].child.kill();
    let _ = ns[2].child.wait();
    ns[2] = start_server_with(&["--redis-url", redis.url.as_str(), "--node-id", "n3"]);
    let restarted = wait_links(&ns, &[0, 1, 2], 2, Duration::from_secs(12)).await;
    println!("n3 restarted at once: linked again after {restarted:?}");
}

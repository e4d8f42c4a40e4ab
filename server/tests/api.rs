//! The REST API against the real binary: every endpoint and the permission matrix, errors,
//! limits, webhooks to a real receiver (signatures, retries), and live effects on
//! connected clients.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sfu_core::TrackKind;
use signaling::{Claims, KeyStore, VideoGrant};

fn mint(video: VideoGrant, exp_in: i64, secret: &str) -> String {
    mint_as("app", video, exp_in, secret)
}

fn mint_as(sub: &str, video: VideoGrant, exp_in: i64, secret: &str) -> String {
    let ks = KeyStore::new([(KEY.to_string(), secret.to_string())]);
    let claims = Claims {
        iss: KEY.into(),
        sub: sub.into(),
        exp: (signaling::auth::unix_now() as i64 + exp_in) as u64,
        nbf: None,
        kind: Default::default(),
        metadata: None,
        name: None,
        attributes: Default::default(),
        video,
        sip: Default::default(),
    };
    ks.mint(KEY, &claims).unwrap()
}

fn grant(f: impl FnOnce(&mut VideoGrant)) -> String {
    let mut g = VideoGrant {
        room_join: false,
        ..VideoGrant::default()
    };
    f(&mut g);
    mint(g, 600, SECRET)
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(s: &Server) -> Self {
        Self {
            base: format!("http://{}", s.http),
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(m, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_matrix_and_errors() {
    let server = start_server();
    let api = Api::new(&server);
    let create = grant(|g| g.room_create = true);
    let list = grant(|g| g.room_list = true);
    let admin_r1 = grant(|g| {
        g.room_admin = true;
        g.room = "r1".into();
    });
    let admin_r2 = grant(|g| {
        g.room_admin = true;
        g.room = "r2".into();
    });
    let admin_all = grant(|g| g.room_admin = true);
    let join_only = mint(VideoGrant::join("r1"), 600, SECRET);
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/rooms",
            Some(&create),
            Some(json!({"name": "r1"}))
        )
        .await
        .0,
        StatusCode::CREATED
    );

    // (method, path, body, tokens that may call it)
    let endpoints: Vec<(&str, &str, Option<Value>, Vec<&str>)> = vec![
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "r9"})),
            vec!["create"],
        ),
        ("GET", "/api/v1/rooms", None, vec!["list"]),
        (
            "GET",
            "/api/v1/rooms/r1",
            None,
            vec!["list", "admin_r1", "admin_all"],
        ),
        (
            "PATCH",
            "/api/v1/rooms/r1",
            Some(json!({"metadata": "m"})),
            vec!["admin_r1", "admin_all"],
        ),
        (
            "GET",
            "/api/v1/rooms/r1/participants",
            None,
            vec!["admin_r1", "admin_all"],
        ),
        (
            "GET",
            "/api/v1/rooms/r1/participants/nobody",
            None,
            vec!["admin_r1", "admin_all"],
        ),
        (
            "PATCH",
            "/api/v1/rooms/r1/participants/nobody",
            Some(json!({"metadata": "x"})),
            vec!["admin_r1", "admin_all"],
        ),
        (
            "POST",
            "/api/v1/rooms/r1/participants/nobody/mute",
            Some(json!({"kind": "audio", "muted": true})),
            vec!["admin_r1", "admin_all"],
        ),
        (
            "DELETE",
            "/api/v1/rooms/r1/participants/nobody",
            None,
            vec!["admin_r1", "admin_all"],
        ),
        (
            "POST",
            "/api/v1/rooms/r1/data",
            Some(json!({"payload": "hi"})),
            vec!["admin_r1", "admin_all"],
        ),
        (
            "DELETE",
            "/api/v1/rooms/r1",
            None,
            vec!["create", "admin_r1", "admin_all"],
        ),
    ];
    let tokens = [
        ("create", &create),
        ("list", &list),
        ("admin_r1", &admin_r1),
        ("admin_r2", &admin_r2),
        ("admin_all", &admin_all),
        ("join_only", &join_only),
    ];
    for (method, path, body, allowed) in &endpoints {
        // No token, a forged one, an expired one: 401.
        let forged = mint(
            VideoGrant {
                room_admin: true,
                room_create: true,
                room_list: true,
                ..VideoGrant::default()
            },
            600,
            "not-the-secret-at-all-0123",
        );
        let expired = mint(
            VideoGrant {
                room_admin: true,
                room_create: true,
                room_list: true,
                ..VideoGrant::default()
            },
            -60,
            SECRET,
        );
        for bad in [None, Some(forged.as_str()), Some(expired.as_str())] {
            let (st, b) = api.call(method, path, bad, body.clone()).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {path}: {b}");
            assert_eq!(b["code"], "unauthorized");
        }
        for (name, tok) in tokens {
            // Deleting r1 must come last; recreate it after a permitted delete.
            let (st, b) = api.call(method, path, Some(tok), body.clone()).await;
            if allowed.contains(&name) {
                assert_ne!(st, StatusCode::FORBIDDEN, "{name} may {method} {path}: {b}");
                assert!(
                    st.is_success() || st == StatusCode::NOT_FOUND || st == StatusCode::CONFLICT,
                    "{name} {method} {path}: {st} {b}"
                );
                if *method == "DELETE" && *path == "/api/v1/rooms/r1" {
                    api.call(
                        "POST",
                        "/api/v1/rooms",
                        Some(&create),
                        Some(json!({"name": "r1"})),
                    )
                    .await;
                }
            } else {
                assert_eq!(
                    st,
                    StatusCode::FORBIDDEN,
                    "{name} may not {method} {path}: {b}"
                );
                assert_eq!(b["code"], "forbidden");
            }
        }
    }

    // Bad input: names, bodies, sizes, content types, unknown routes and resources.
    let cases: Vec<(&str, &str, Option<Value>, StatusCode)> = vec![
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "bad name!"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": ""})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "x".repeat(200)})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "ok", "bogus": 1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "r1"})),
            StatusCode::CONFLICT,
        ),
        (
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "big", "metadata": "x".repeat(70_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("GET", "/api/v1/rooms/nope", None, StatusCode::NOT_FOUND),
        (
            "GET",
            "/api/v1/rooms/bad%20name",
            None,
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/api/v1/nothing-here", None, StatusCode::NOT_FOUND),
        (
            "POST",
            "/api/v1/rooms/r1/participants/x/mute",
            Some(json!({"kind": "smell", "muted": true})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/v1/rooms/r1/data",
            Some(json!({"payload": "x".repeat(20_000)})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    let god = grant(|g| {
        g.room_admin = true;
        g.room_create = true;
        g.room_list = true;
    });
    for (method, path, body, want) in cases {
        let (st, b) = api.call(method, path, Some(&god), body).await;
        assert_eq!(st, want, "{method} {path}: {b}");
        assert!(
            b["code"].is_string() && b["message"].is_string(),
            "JSON error body for {method} {path}: {b}"
        );
    }
    // A body that is not JSON at all, and one without the JSON content type.
    let r = api
        .http
        .post(format!("{}/api/v1/rooms", api.base))
        .bearer_auth(&god)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = api
        .http
        .post(format!("{}/api/v1/rooms", api.base))
        .bearer_auth(&god)
        .body(r#"{"name":"t"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );

    // The OpenAPI document describes every route used above.
    let (st, doc) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    for p in [
        "/api/v1/rooms",
        "/api/v1/rooms/{room}",
        "/api/v1/rooms/{room}/participants/{identity}/mute",
        "/api/v1/rooms/{room}/data",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_rate_room_full_and_no_auto_create() {
    let server = start_server_with(&["--api-rate", "0.01", "--api-burst", "3", "--no-auto-create"]);
    let api = Api::new(&server);
    let god = grant(|g| {
        g.room_admin = true;
        g.room_create = true;
        g.room_list = true;
    });
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/rooms",
            Some(&god),
            Some(json!({"name": "small", "max_participants": 1}))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call("GET", "/api/v1/rooms", Some(&god), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.call("GET", "/api/v1/rooms", Some(&god), None).await.0,
        StatusCode::OK
    );
    let (st, b) = api.call("GET", "/api/v1/rooms", Some(&god), None).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(b["code"], "rate_limited");

    let mut a = ws(&server).await;
    send(
        &mut a,
        json!({"type": "join", "token": token("small", "a", 60)}),
    )
    .await;
    assert_eq!(recv(&mut a).await["type"], "joined");
    let mut b = ws(&server).await;
    send(
        &mut b,
        json!({"type": "join", "token": token("small", "b", 60)}),
    )
    .await;
    assert_eq!(recv(&mut b).await["code"], "room_full");
    assert_eq!(recv(&mut b).await["close"], 4006);
    let mut c = ws(&server).await;
    send(
        &mut c,
        json!({"type": "join", "token": token("never-created", "c", 60)}),
    )
    .await;
    assert_eq!(recv(&mut c).await["code"], "no_such_room");
    assert_eq!(recv(&mut c).await["close"], 4007);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callers_flood_never_spends_the_backends_budget() {
    let server = start_server_with(&["--api-rate", "0.01", "--api-burst", "3"]);
    let api = Api::new(&server);
    let backend = grant(|g| {
        g.room_admin = true;
        g.room_create = true;
        g.room_list = true;
    });
    // A participant's token (same API key, its own subject, no API grants): 30 refused
    // requests are 403, never 429, and cost the backend nothing.
    let participant = mint_as("p1", VideoGrant::join("r"), 600, SECRET);
    for i in 0..30 {
        let (st, b) = api
            .call("GET", "/api/v1/rooms", Some(&participant), None)
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "request {i}: {b}");
    }
    // A noisy subject with a grant spends its own burst only.
    let noisy = mint_as(
        "noisy",
        VideoGrant {
            room_join: false,
            room_list: true,
            ..VideoGrant::default()
        },
        600,
        SECRET,
    );
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api.call("GET", "/api/v1/rooms", Some(&noisy), None).await.0);
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    assert_eq!(
        &statuses[3..],
        &[StatusCode::TOO_MANY_REQUESTS; 3],
        "{statuses:?}"
    );
    // The backend still has its whole burst.
    for _ in 0..3 {
        let (st, b) = api.call("GET", "/api/v1/rooms", Some(&backend), None).await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
}

/// (API key header, signature header, body) of each delivered webhook.
type Deliveries = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A webhook receiver: records (headers, body); the first attempt of every event fails.
async fn receiver() -> (String, Deliveries, Arc<Mutex<u32>>) {
    use axum::http::HeaderMap;
    let got: Deliveries = Arc::default();
    let failures: Arc<Mutex<u32>> = Arc::default();
    let seen: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let (g, f, s) = (got.clone(), failures.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (g, f, s) = (g.clone(), f.clone(), s.clone());
            async move {
                let id = headers
                    .get("x-switchboard-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if s.lock().insert(id) {
                    *f.lock() += 1;
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let key = headers
                    .get("x-switchboard-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let sig = headers
                    .get("x-switchboard-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                g.lock().push((key, sig, body.to_vec()));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_lifecycle_with_signed_webhooks() {
    let (url, got, failures) = receiver().await;
    let server = start_server_with(&["--webhook-url", &url]);
    let api = Api::new(&server);
    let god = grant(|g| {
        g.room_admin = true;
        g.room_create = true;
        g.room_list = true;
    });
    let (st, room) = api
        .call(
            "POST",
            "/api/v1/rooms",
            Some(&god),
            Some(json!({"name": "life", "metadata": "m0", "empty_timeout": 60})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{room}");
    assert_eq!(room["metadata"], "m0");
    let mut alice = ws(&server).await;
    send(
        &mut alice,
        json!({"type": "join", "token": token("life", "alice", 60)}),
    )
    .await;
    assert_eq!(recv(&mut alice).await["type"], "joined");
    let mut bob = ws(&server).await;
    send(
        &mut bob,
        json!({"type": "join", "token": token("life", "bob", 60)}),
    )
    .await;
    assert_eq!(recv(&mut bob).await["type"], "joined");
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");

    let (_, ps) = api
        .call("GET", "/api/v1/rooms/life/participants", Some(&god), None)
        .await;
    assert_eq!(ps["participants"].as_array().unwrap().len(), 2);
    let (_, p) = api
        .call(
            "GET",
            "/api/v1/rooms/life/participants/bob",
            Some(&god),
            None,
        )
        .await;
    assert_eq!(p["identity"], "bob");
    let bob_id = p["id"].clone();

    // Mute bob's microphone: both see it, flagged as an admin mute.
    let (st, p) = api
        .call(
            "POST",
            "/api/v1/rooms/life/participants/bob/mute",
            Some(&god),
            Some(json!({"kind": "audio", "muted": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(p["audio_muted"], true);
    for w in [&mut alice, &mut bob] {
        let m = recv(w).await;
        assert_eq!(
            (
                m["type"].as_str(),
                m["by_admin"].as_bool(),
                &m["participant"]
            ),
            (Some("mute_changed"), Some(true), &bob_id)
        );
    }
    // Bob cannot lift an admin mute himself.
    send(
        &mut bob,
        json!({"type": "mute", "kind": "audio", "muted": false}),
    )
    .await;
    assert_eq!(recv(&mut bob).await["code"], "not_allowed");
    // Metadata and permissions.
    let (st, p) = api.call("PATCH", "/api/v1/rooms/life/participants/bob", Some(&god),
        Some(json!({"metadata": "hand raised", "permissions": {"can_publish": false, "can_subscribe": true, "can_publish_data": false}}))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(p["permissions"]["can_publish"], false);
    for w in [&mut alice, &mut bob] {
        let m = recv(w).await;
        assert_eq!(m["type"], "participant_updated");
        assert_eq!(m["participant"]["metadata"], "hand raised");
    }
    send(&mut bob, json!({"type": "data", "payload": "hello"})).await;
    assert_eq!(
        recv(&mut bob).await["code"],
        "not_allowed",
        "data is no longer granted"
    );
    let (st, r) = api
        .call(
            "PATCH",
            "/api/v1/rooms/life",
            Some(&god),
            Some(json!({"metadata": "m1"})),
        )
        .await;
    assert_eq!((st, r["metadata"].as_str()), (StatusCode::OK, Some("m1")));
    for w in [&mut alice, &mut bob] {
        assert_eq!(recv(w).await["type"], "room_updated");
    }
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/rooms/life/data",
            Some(&god),
            Some(json!({"payload": "to bob", "topic": "t", "identities": ["bob"]}))
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    let m = recv(&mut bob).await;
    assert_eq!(
        (
            m["type"].as_str(),
            m["payload"].as_str(),
            m["topic"].as_str()
        ),
        (Some("data"), Some("to bob"), Some("t"))
    );
    // Alice sends data to the room: bob gets it.
    send(&mut alice, json!({"type": "data", "payload": "from alice"})).await;
    let m = recv(&mut bob).await;
    assert_eq!(m["payload"], "from alice");

    // Remove bob, then delete the room (alice is disconnected).
    assert_eq!(
        api.call(
            "DELETE",
            "/api/v1/rooms/life/participants/bob",
            Some(&god),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(recv(&mut bob).await["code"], "removed");
    assert_eq!(recv(&mut bob).await["close"], 4004);
    assert_eq!(recv(&mut alice).await["type"], "participant_left");
    let r = api
        .http
        .delete(format!("{}/api/v1/rooms/life", api.base))
        .bearer_auth(&god)
        .json(&json!({"reason": "meeting over"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let m = recv(&mut alice).await;
    assert_eq!(
        (m["code"].as_str(), m["message"].as_str()),
        (Some("removed"), Some("meeting over"))
    );
    assert_eq!(recv(&mut alice).await["close"], 4004);
    assert_eq!(
        api.call("GET", "/api/v1/rooms/life", Some(&god), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Every webhook arrived (after one failed attempt each), signed with the API key.
    let want = [
        "room_started",
        "participant_joined",
        "participant_joined",
        "participant_left",
        "participant_left",
        "room_finished",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.lock().len() < want.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = got.lock().clone();
    let mut events: Vec<String> = Vec::new();
    for (key, sig, body) in &got {
        assert_eq!(key, KEY);
        assert!(
            signaling::webhook::verify(SECRET, sig, body, signaling::auth::unix_now(), 300),
            "bad signature {sig}"
        );
        assert!(!signaling::webhook::verify(
            "wrong-secret",
            sig,
            body,
            signaling::auth::unix_now(),
            300
        ));
        let v: Value = serde_json::from_slice(body).unwrap();
        assert!(v["id"].is_string() && v["created_at"].is_u64());
        assert_eq!(v["room"]["name"], "life");
        events.push(v["event"].as_str().unwrap().to_string());
    }
    let mut sorted = events.clone();
    sorted.sort();
    let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    w.sort();
    assert_eq!(sorted, w, "events: {events:?}");
    assert_eq!(events.first().map(String::as_str), Some("room_started"));
    assert_eq!(events.last().map(String::as_str), Some("room_finished"));
    assert!(
        *failures.lock() >= want.len() as u32,
        "each event was retried after a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_changes_and_mutes_apply_live_to_media_clients() {
    let server = start_server();
    let api = Api::new(&server);
    let admin = grant(|g| g.room_admin = true);
    let a = Participant::join(&server, "live", "a").await;
    let b = Participant::join(&server, "live", "b").await;
    let mut ps = [a, b];
    run_all(&mut ps, Duration::from_secs(2)).await;
    let (ida, idb) = (ps[0].id, ps[1].id);
    let count = |ps: &[Participant], me: usize, from, kind| {
        ps[me]
            .client
            .stream_from(from, kind)
            .map_or(0, |s| s.packets)
    };
    assert!(count(&ps, 1, ida, TrackKind::Video) > 50);

    // Mute b's audio: a stops hearing b.
    assert_eq!(
        api.call(
            "POST",
            "/api/v1/rooms/live/participants/b/mute",
            Some(&admin),
            Some(json!({"kind": "audio", "muted": true}))
        )
        .await
        .0,
        StatusCode::OK
    );
    run_all(&mut ps, Duration::from_millis(300)).await;
    let heard = count(&ps, 0, idb, TrackKind::Audio);
    run_all(&mut ps, Duration::from_secs(1)).await;
    assert_eq!(
        count(&ps, 0, idb, TrackKind::Audio),
        heard,
        "muted audio still arrives"
    );

    // Revoke a's publishing: b stops receiving a and is told the tracks are gone.
    assert_eq!(
        api.call("PATCH", "/api/v1/rooms/live/participants/a", Some(&admin), Some(json!({"permissions": {"can_publish": false, "can_subscribe": true, "can_publish_data": true}}))).await.0,
        StatusCode::OK
    );
    run_all(&mut ps, Duration::from_millis(500)).await;
    let seen = count(&ps, 1, ida, TrackKind::Video);
    run_all(&mut ps, Duration::from_secs(1)).await;
    assert_eq!(
        count(&ps, 1, ida, TrackKind::Video),
        seen,
        "b still receives a's video"
    );
    assert_eq!(
        ps[1]
            .messages
            .iter()
            .filter(|m| m["type"] == "track_unpublished")
            .count(),
        2,
        "{:?}",
        ps[1].messages
    );
    // b's video still reaches a.
    let v = count(&ps, 0, idb, TrackKind::Video);
    run_all(&mut ps, Duration::from_secs(1)).await;
    assert!(count(&ps, 0, idb, TrackKind::Video) > v + 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_api_md_covers_every_openapi_route() {
    let server = start_server();
    let api = Api::new(&server);
    let (_, doc) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    let md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let line = format!("`{} {}`", method.to_uppercase(), path);
            assert!(md.contains(&line), "docs/api.md does not document {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_calls_need_the_gateway_the_grant_and_good_requests() {
    // Without `sip_listen` the routes answer 404 sip_disabled (after authentication).
    let plain = start_server();
    let api = Api::new(&plain);
    let any = grant(|g| g.sip_call = true);
    let (st, body) = api.call("GET", "/api/v1/sip/calls", Some(&any), None).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("sip_disabled"))
    );
    drop(plain);

    // SIP on (no trunks, no users: nothing is dialled by this test).
    let server = start_server_with(&[
        "--sip-listen",
        "127.0.0.1:0",
        "--sip-rtp-ports",
        "26000-26009",
    ]);
    let api = Api::new(&server);
    let dial = |to: &str| json!({"room": "r1", "to": to});
    let (st, _) = api
        .call("POST", "/api/v1/sip/calls", None, Some(dial("alice")))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let admin = grant(|g| g.room_admin = true);
    let (st, body) = api
        .call(
            "POST",
            "/api/v1/sip/calls",
            Some(&admin),
            Some(dial("alice")),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "roomAdmin is not sipCall"
    );
    let other_room = grant(|g| {
        g.sip_call = true;
        g.room = "r2".into();
    });
    let (st, _) = api
        .call(
            "POST",
            "/api/v1/sip/calls",
            Some(&other_room),
            Some(dial("alice")),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a sipCall grant is for its room");
    let (st, body) = api
        .call("POST", "/api/v1/sip/calls", Some(&any), Some(dial("alice")))
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("registered SIP user alice"));
    let (st, _) = api
        .call(
            "POST",
            "/api/v1/sip/calls",
            Some(&any),
            Some(json!({"room": "r1", "to": "+1555", "trunk": "none"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "unknown trunk");
    for bad in [
        json!({"room": "bad room", "to": "alice"}),
        json!({"room": "r1", "to": "al ice"}),
        json!({"room": "r1", "to": "alice", "dtmf": "12x"}),
        json!({"room": "r1", "to": "sip:a@b\r\nVia: x"}),
        json!({"room": "r1", "to": "alice", "extra": 1}),
    ] {
        let (st, body) = api
            .call("POST", "/api/v1/sip/calls", Some(&any), Some(bad.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (st, body) = api.call("GET", "/api/v1/sip/calls", Some(&any), None).await;
    assert_eq!(
        (st, body["calls"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    for (method, path) in [
        ("GET", "/api/v1/sip/calls/SC_1"),
        ("DELETE", "/api/v1/sip/calls/SC_1"),
    ] {
        let (st, _) = api.call(method, path, Some(&any), None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (st, _) = api
        .call(
            "POST",
            "/api/v1/sip/calls/SC_1/dtmf",
            Some(&any),
            Some(json!({"digits": "1"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// LiveKit's RoomService over Twirp with protobuf bodies (LiveKit's Python and Go SDKs
/// speak protobuf; livekit-server-sdk's JSON is tested in the browser suite), and the
/// Twirp errors for what is wrong with a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twirp_room_service_over_protobuf() {
    use livekit_protocol as lk;
    use prost::Message;
    let server = start_server();
    let http = reqwest::Client::new();
    let url = |m: &str| format!("http://{}/twirp/livekit.RoomService/{m}", server.http);
    let create = grant(|g| g.room_create = true);
    let list = grant(|g| g.room_list = true);
    let call = |m: &str, token: &str, ct: &str, body: Vec<u8>| {
        http.post(url(m))
            .bearer_auth(token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let pb = "application/protobuf";
    let req = lk::CreateRoomRequest {
        name: "twirp-pb".into(),
        max_participants: 7,
        metadata: "m".into(),
        ..Default::default()
    };
    let r = call("CreateRoom", &create, pb, req.encode_to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], pb);
    let room = lk::Room::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (
            room.name.as_str(),
            room.max_participants,
            room.metadata.as_str()
        ),
        ("twirp-pb", 7, "m")
    );
    let r = call(
        "ListRooms",
        &list,
        pb,
        lk::ListRoomsRequest::default().encode_to_vec(),
    )
    .await
    .unwrap();
    let rooms = lk::ListRoomsResponse::decode(r.bytes().await.unwrap())
        .unwrap()
        .rooms;
    assert!(rooms.iter().any(|r| r.sid == room.sid));
    // What is wrong with a call, as Twirp says it.
    let twirp = |r: reqwest::Response| async move {
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        (status, v["code"].as_str().unwrap_or("").to_string())
    };
    // (method, token, content type, body, status, Twirp code)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "ListRooms",
            &create,
            pb,
            vec![],
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "ListRooms",
            "not-a-token",
            pb,
            vec![],
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "CreateRoom",
            &create,
            pb,
            vec![0xff, 0xff, 0xff],
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "CreateRoom",
            &create,
            "text/plain",
            vec![],
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "CreateRoom",
            &create,
            "application/json",
            b"{\"name\": \"bad name!\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
        (
            "Frobnicate",
            &create,
            pb,
            vec![],
            StatusCode::NOT_FOUND,
            "bad_route",
        ),
        (
            // No room named: refused as any other method is.
            "UpdateSubscriptions",
            &create,
            pb,
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        ),
    ];
    for (m, token, ct, body, status, code) in cases {
        let got = twirp(call(m, token, ct, body).await.unwrap()).await;
        assert_eq!(got, (status, code.to_string()), "{m} with {ct}");
    }
}

//! Shared helpers for the server's integration tests: start the `switchboard` binary,
//! mint tokens, speak the WebSocket protocol, and run testkit str0m clients on real UDP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::SeedableRng;
use serde_json::{json, Value};
use sfu_core::testkit::{ClientSpec, SimClient};
use sfu_core::{OfferedTrack, ParticipantId, TrackKind};
use signaling::{Claims, KeyStore, VideoGrant};
use tokio_tungstenite::tungstenite::Message;

#[path = "../../../tests/support/free_port.rs"]
mod free_port;
#[path = "../../../tests/support/redis_server.rs"]
mod redis_server;
#[allow(unused_imports)]
pub use free_port::free_port;
#[allow(unused_imports)]
pub use redis_server::RedisServer;

pub const KEY: &str = "itest";
pub const SECRET: &str = "integration-test-secret-0123456789";

pub struct Server {
    pub child: Child,
    pub http: String,
    pub rtc_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server() -> Server {
    start_server_with(&[])
}

pub fn start_server_with(extra: &[&str]) -> Server {
    let rtc_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--rtc-port",
            &rtc_port.to_string(),
            "--workers",
            "1",
        ])
        .args(extra)
        .env("SWITCHBOARD_KEYS", format!("{KEY}:{SECRET}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("switchboard starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split("open http://")
        .nth(1)
        .expect("start line")
        .trim()
        .trim_end_matches('/')
        .to_string();
    Server {
        child,
        http,
        rtc_port,
    }
}

pub fn token(room: &str, identity: &str, exp_in: i64) -> String {
    let ks = KeyStore::new([(KEY.to_string(), SECRET.to_string())]);
    let claims = Claims {
        iss: KEY.into(),
        sub: identity.into(),
        exp: (signaling::auth::unix_now() as i64 + exp_in) as u64,
        nbf: None,
        kind: Default::default(),
        metadata: None,
        name: Some(identity.into()),
        attributes: Default::default(),
        sip: Default::default(),
        video: VideoGrant::join(room),
    };
    ks.mint(KEY, &claims).unwrap()
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Send `first` on a socket to `url`; a `moved` answer is followed to the node it names.
/// The socket and the first message that is not `moved`.
/// A node that cannot be reached gives no socket and `{"type": "unreachable"}`.
pub async fn join_following(url: &str, first: &Value) -> (Option<Ws>, Value) {
    let mut url = url.to_string();
    for _ in 0..3 {
        // A node that accepts but does not answer (stopped) counts as unreachable.
        let attempt = tokio::time::timeout(Duration::from_secs(3), async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.ok()?;
            send(&mut ws, first.clone()).await;
            let m = recv(&mut ws).await;
            Some((ws, m))
        });
        let Ok(Some((ws, m))) = attempt.await else {
            return (None, json!({"type": "unreachable", "url": url}));
        };
        if m["type"] != "moved" {
            return (Some(ws), m);
        }
        drop(ws);
        url = m["url"].as_str().unwrap().to_string();
    }
    panic!("moved more than twice");
}

/// A token that may list and administer every room (REST).
pub fn admin_token() -> String {
    let ks = KeyStore::new([(KEY.to_string(), SECRET.to_string())]);
    let video = VideoGrant {
        room_list: true,
        room_admin: true,
        room_create: true,
        ..VideoGrant::default()
    };
    let claims = Claims {
        iss: KEY.into(),
        sub: "admin".into(),
        exp: signaling::auth::unix_now() + 600,
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

pub async fn ws(server: &Server) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http))
        .await
        .expect("ws connects")
        .0
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Next text message as JSON, or the close frame as {"close": code}.
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("message in time");
        match m {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(f))) => return json!({ "close": f.map(|f| u16::from(f.code)) }),
            Some(Ok(_)) => continue,
            other => return json!({ "ended": format!("{other:?}") }),
        }
    }
}

/// A participant: a testkit str0m client on two real UDP sockets plus a WebSocket.
pub struct Participant {
    pub client: SimClient,
    pub_sock: UdpSocket,
    sub_sock: UdpSocket,
    pub ws: Ws,
    pub id: ParticipantId,
    pub datagrams: [u64; 2],
    /// Signaling messages other than SDP, in arrival order.
    pub messages: Vec<Value>,
    /// The server's answer for the publisher connection.
    pub answer: Option<String>,
    /// The session's resume token (joined with `resume: true`).
    pub resume_token: Option<String>,
}

impl Participant {
    pub async fn join(server: &Server, room: &str, name: &str) -> Self {
        Self::join_with(server, room, name, false).await
    }

    /// Join keeping the session for a resume if the socket drops.
    pub async fn join_resumable(server: &Server, room: &str, name: &str) -> Self {
        Self::join_with(server, room, name, true).await
    }

    async fn join_with(server: &Server, room: &str, name: &str, resume: bool) -> Self {
        Self::join_at(&format!("ws://{}/ws", server.http), room, name, resume).await
    }

    /// Join through the node at `url` (a WebSocket URL), following a cluster's `moved`.
    pub async fn join_at(url: &str, room: &str, name: &str, resume: bool) -> Self {
        let first = json!({"type": "join", "token": token(room, name, 600), "version": 1, "resume": resume});
        let (ws, joined) = join_following(url, &first).await;
        let mut ws = ws.expect("the node is reachable");
        let resume_token = joined["resume_token"].as_str().map(str::to_string);
        assert_eq!(joined["type"], "joined", "{joined}");
        let id = ParticipantId(joined["participant"]["id"].as_u64().unwrap());
        let pub_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sub_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        pub_sock.set_nonblocking(true).unwrap();
        sub_sock.set_nonblocking(true).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(id.0);
        let mut client = SimClient::new(
            Instant::now(),
            Instant::now(),
            id,
            ClientSpec::av(),
            pub_sock.local_addr().unwrap(),
            sub_sock.local_addr().unwrap(),
            &mut rng,
        );
        let offer = client.make_offer().unwrap();
        send(&mut ws, json!({"type": "publish_offer", "sdp": offer})).await;
        Self {
            client,
            pub_sock,
            sub_sock,
            ws,
            id,
            datagrams: [0, 0],
            messages: Vec::new(),
            answer: None,
            resume_token,
        }
    }

    /// Run the client's IO for `d`: sockets, signaling and str0m timers.
    pub async fn run(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            let now = Instant::now();
            for k in 0..2 {
                loop {
                    let sock = if k == 0 {
                        &self.pub_sock
                    } else {
                        &self.sub_sock
                    };
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        break;
                    };
                    self.datagrams[k] += 1;
                    let to = sock.local_addr().unwrap();
                    self.client.receive(now, from, to, &buf[..n]);
                    // str0m's rule: drain after every input.
                    self.flush(now);
                }
            }
            while let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_micros(1), self.ws.next()).await
            {
                let m: Value = serde_json::from_str(&t).unwrap();
                match m["type"].as_str() {
                    Some("publish_answer") => {
                        let sdp = m["sdp"].as_str().unwrap();
                        self.answer = Some(sdp.to_string());
                        self.client.accept_publish_answer(sdp)
                    }
                    Some("subscribe_offer") => {
                        let tracks: Vec<OfferedTrack> = m["tracks"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|t| OfferedTrack {
                                mid: t["mid"].as_str().unwrap().into(),
                                track: sfu_core::TrackId(t["track"].as_u64().unwrap()),
                                publisher: ParticipantId(t["publisher"].as_u64().unwrap()),
                                kind: if t["kind"] == "audio" {
                                    TrackKind::Audio
                                } else {
                                    TrackKind::Video
                                },
                            })
                            .collect();
                        if let Some(answer) = self
                            .client
                            .accept_subscribe_offer(m["sdp"].as_str().unwrap(), tracks)
                        {
                            send(
                                &mut self.ws,
                                json!({"type": "subscribe_answer", "sdp": answer}),
                            )
                            .await;
                        }
                    }
                    _ => self.messages.push(m),
                }
            }
            self.client.timeout(now);
            self.flush(now);
            self.client.produce(now);
            self.flush(now);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn flush(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.client
            .drain(now, |src, dst, data| out.push((src, dst, data)));
        for (src, dst, data) in out {
            let sock = if src == self.pub_sock.local_addr().unwrap() {
                &self.pub_sock
            } else {
                &self.sub_sock
            };
            let _ = sock.send_to(&data, dst);
        }
    }
}

pub async fn run_all(ps: &mut [Participant], d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        for p in ps.iter_mut() {
            p.run(Duration::from_millis(5)).await;
        }
    }
}

//! Janus VideoRoom (Debian's `janus` 1.1.x) as a rival target: a minimal, fair
//! configuration, and a participant driver over Janus's plain HTTP JSON API.
//!
//! Fairness: Janus runs with its own defaults except what the machine forces — only the
//! VideoRoom plugin and the HTTP transport are loaded, debug level 4 (its default) to a
//! log file, no stdout logging, the HTTP API bound to the namespace address, and the
//! advertised IP set (it cannot detect one in a namespace without a default route). Rooms
//! are created with no bitrate cap (`bitrate: 0`), VP8 + Opus, no recording.
//!
//! Simulcast: Janus takes the *first* rid of `a=simulcast:send` as its highest substream
//! (2). Our publishers list layers lowest first (q;h;f), so subscribers ask for
//! substream 0 to get the top layer `f`, as the Switchboard allocator forwards it.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use sfu_core::testkit::SimClient;
use sfu_core::ParticipantId;
use tokio::sync::mpsc;

use crate::driver::{short, Ctx, CONNECT_TIMEOUT};
use crate::netns::Pair;
use crate::scenario::Plan;
use crate::session::{Media, Signal};

/// Write the three configuration files Janus needs into `dir`.
pub fn write_config(dir: &Path, ip: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let disable_plugins = [
        "audiobridge",
        "duktape",
        "echotest",
        "lua",
        "nosip",
        "recordplay",
        "sip",
        "streaming",
        "textroom",
        "videocall",
        "voicemail",
    ]
    .map(|p| format!("libjanus_{p}.so"))
    .join(",");
    std::fs::write(
        dir.join("janus.jcfg"),
        format!(
            r#"general: {{
    configs_folder = "{d}"
    plugins_folder = "{lib}/plugins"
    transports_folder = "{lib}/transports"
    events_folder = "{lib}/events"
    loggers_folder = "{lib}/loggers"
    debug_level = 4
    interface = "{ip}"
    admin_secret = "janusoverlord"
}}
certificates: {{ }}
media: {{ rtp_port_range = "20000-40000" }}
nat: {{ nice_debug = false ice_enforce_list = "{iface}" }}
plugins: {{ disable = "{disable_plugins}" }}
transports: {{ disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }}
loggers: {{ disable = "libjanus_jsonlog.so" }}
events: {{ broadcast = false }}
"#,
            d = dir.display(),
            iface = ip,
        ),
    )?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            "general: {{ json = \"plain\" base_path = \"/janus\" http = true port = 8088 ip = \"{ip}\" https = false }}\n\
             admin: {{ admin_base_path = \"/admin\" admin_http = false }}\ncors: {{ }}\n"
        ),
    )?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: { }\n")?;
    Ok(())
}

/// Start Janus inside namespace `ns`; wait until its log says the HTTP server is up.
pub fn spawn(ns: &str, dir: &Path) -> anyhow::Result<Child> {
    let log = dir.join("janus.log");
    let _ = std::fs::remove_file(&log);
    let child = Pair::command_in(ns, "janus")
        .arg("-C")
        .arg(dir.join("janus.jcfg"))
        .arg("-F")
        .arg(dir)
        .arg("-N")
        .arg("-L")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting janus (apt-get install janus)")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("HTTP webserver started")
            || text.contains("Sessions watchdog started")
                && text.contains("JANUS VideoRoom plugin initialized")
        {
            std::thread::sleep(Duration::from_millis(300));
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("janus did not start within 20 s; see {}", log.display())
}

/// Janus treats `a=ssrc` lines in a simulcast video section as one plain stream (its log
/// says "Peer video fallback SSRC") and then forwards no video. Browsers send rid-only
/// simulcast offers; drop the SSRC lines of simulcast sections to offer the same (str0m
/// still sends the rid header extension on each layer's first packets).
fn rid_only_simulcast(offer: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    let lines: Vec<&str> = offer.split("\r\n").collect();
    let mut i = 0;
    while i < lines.len() {
        // one media section: from an m= line to the next
        let start = i;
        i += 1;
        while i < lines.len() && !lines[i].starts_with("m=") {
            i += 1;
        }
        let section = &lines[start..i];
        let simulcast = section.iter().any(|l| l.starts_with("a=simulcast:"));
        for l in section {
            if simulcast && (l.starts_with("a=ssrc:") || l.starts_with("a=ssrc-group:")) {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    // split() leaves one empty trailing piece for the final CRLF
    while out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// The substream index that selects our top layer `f` (see the module docs).
const JANUS_TOP_SUBSTREAM: u8 = 0;

fn room_number(name: &str) -> u64 {
    // FNV-1a: a stable number per room name.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    1 + h % 1_000_000_000
}

fn transaction() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, mut body: Value) -> Result<Value, String> {
        body["transaction"] = json!(transaction());
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .timeout(CONNECT_TIMEOUT)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("janus http: {}", short(&e.to_string())))?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| format!("janus reply: {}", short(&e.to_string())))?;
        if v["janus"] == "error" {
            return Err(format!("janus error {}", v["error"]["code"]));
        }
        Ok(v)
    }
}

struct JanusSignal {
    api: Api,
    session: u64,
    publisher: u64,
    subscriber: Option<u64>,
    room: u64,
    own_feed: Option<u64>,
    publishes: bool,
    wants_subscribe: bool,
    last_keepalive: Instant,
    publishers_expected: usize,
}

impl JanusSignal {
    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, String> {
        let mut m = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        self.api
            .post(&format!("/{}/{}", self.session, handle), m)
            .await
    }
}

impl Signal for JanusSignal {
    async fn on_message(
        &mut self,
        v: Value,
        client: &mut SimClient,
        ctx: &Ctx,
    ) -> Result<(), String> {
        if v["janus"] != "event" {
            return Ok(());
        }
        let data = &v["plugindata"]["data"];
        let sdp = v["jsep"]["sdp"].as_str();
        if let Some(sdp) = sdp {
            ctx.allowed.check_sdp(sdp).map_err(|e| e.to_string())?;
        }
        match data["videoroom"].as_str() {
            Some("joined") => {
                self.own_feed = data["id"].as_u64();
                if let (Ok(dir), Some(sdp)) = (std::env::var("SB_DUMP_SDP"), sdp) {
                    let _ = std::fs::write(format!("{dir}/answer-{}.sdp", self.session), sdp);
                }
                if let Some(sdp) = sdp {
                    client.accept_publish_answer(sdp);
                }
            }
            Some("attached") => {
                let tracks = crate::session::offered_tracks(&data["streams"], "type", "feed_id");
                if let (Some(sdp), Some(h)) = (sdp, self.subscriber) {
                    let answer = client
                        .accept_subscribe_offer(sdp, tracks)
                        .ok_or("could not answer the Janus offer")?;
                    self.message(
                        h,
                        json!({"request": "start"}),
                        Some(json!({"type": "answer", "sdp": answer})),
                    )
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn tick(&mut self, _client: &mut SimClient, _ctx: &Ctx) -> Result<(), String> {
        if self.last_keepalive.elapsed() > Duration::from_secs(20) {
            self.last_keepalive = Instant::now();
            self.api
                .post(&format!("/{}", self.session), json!({"janus": "keepalive"}))
                .await?;
        }
        if !self.wants_subscribe
            || self.subscriber.is_some()
            || (self.publishes && self.own_feed.is_none())
        {
            return Ok(());
        }
        // Janus subscriptions name feeds: wait until every publisher of the room is in.
        let r = self
            .message(
                self.publisher,
                json!({"request": "listparticipants", "room": self.room}),
                None,
            )
            .await?;
        let feeds: Vec<u64> = r["plugindata"]["data"]["participants"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p["publisher"] == true)
                    .filter_map(|p| p["id"].as_u64())
                    .filter(|id| Some(*id) != self.own_feed)
                    .collect()
            })
            .unwrap_or_default();
        let others = self.publishers_expected - usize::from(self.publishes);
        if feeds.len() < others || feeds.is_empty() {
            return Ok(());
        }
        let h = attach(&self.api, self.session).await?;
        self.subscriber = Some(h);
        let streams: Vec<Value> = feeds
            .iter()
            .map(|f| json!({"feed": f, "substream": JANUS_TOP_SUBSTREAM}))
            .collect();
        self.message(h, json!({"request": "join", "ptype": "subscriber", "room": self.room, "streams": streams}), None).await?;
        Ok(())
    }

    async fn leave(&mut self) {
        let _ = self
            .api
            .post(&format!("/{}", self.session), json!({"janus": "destroy"}))
            .await;
    }
}

async fn attach(api: &Api, session: u64) -> Result<u64, String> {
    let v = api
        .post(
            &format!("/{session}"),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await?;
    v["data"]["id"]
        .as_u64()
        .ok_or_else(|| "attach without id".into())
}

pub async fn run(plan: &Plan, ctx: &Ctx, base: &str) -> Result<(), String> {
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let api = Api {
        http: http.clone(),
        base: base.to_string(),
    };
    let v = api
        .post("", json!({"janus": "create"}))
        .await
        .map_err(|e| format!("signaling connect: {e}"))?;
    let session = v["data"]["id"].as_u64().ok_or("create without id")?;
    let publisher = attach(&api, session).await?;
    let room = room_number(&plan.room);
    // Create the room if it is not there yet ("already exists" is fine).
    let create = json!({"janus": "message", "body": {"request": "create", "room": room, "description": "load",
        "publishers": 64, "bitrate": 0, "videocodec": "vp8", "audiocodec": "opus", "fir_freq": 10,
        "record": false, "permanent": false}});
    let _ = api.post(&format!("/{session}/{publisher}"), create).await;
    // One long poll at a time, re-issued as soon as it returns.
    let (tx, mut events) = mpsc::channel::<Value>(256);
    let poll_url = format!("{base}/{session}?maxev=10");
    tokio::spawn(async move {
        loop {
            let r = http
                .get(&poll_url)
                .timeout(Duration::from_secs(40))
                .send()
                .await;
            let Ok(r) = r else { break };
            let Ok(v) = r.json::<Value>().await else {
                break;
            };
            let list = if let Value::Array(a) = v { a } else { vec![v] };
            for e in list {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    let id = ParticipantId(room ^ (plan.join_at.as_micros() as u64) ^ session);
    let mut media = Media::bind(ctx, plan, id).await?;
    let mut sig = JanusSignal {
        api,
        session,
        publisher,
        subscriber: None,
        room,
        own_feed: None,
        publishes: plan.spec.publishes(),
        wants_subscribe: plan.spec.subscribe,
        last_keepalive: Instant::now(),
        publishers_expected: ctx.publishers_per_room,
    };
    if let Some(offer) = media.client.make_offer() {
        if let Ok(dir) = std::env::var("SB_DUMP_SDP") {
            let _ = std::fs::write(format!("{dir}/offer-{}.sdp", plan.name), &offer);
        }
        sig.message(
            publisher,
            json!({"request": "join", "ptype": "publisher", "room": room, "display": plan.name}),
            Some(json!({"type": "offer", "sdp": rid_only_simulcast(&offer)})),
        )
        .await?;
    }
    media.run(&mut sig, &mut events, ctx, plan, started).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_written_and_rooms_are_stable() {
        let dir = std::env::temp_dir().join(format!("sb-janus-cfg-{}", std::process::id()));
        write_config(&dir, "10.99.7.1").unwrap();
        let main = std::fs::read_to_string(dir.join("janus.jcfg")).unwrap();
        assert!(main.contains("interface = \"10.99.7.1\""));
        assert!(main.contains("libjanus_streaming.so"));
        let http = std::fs::read_to_string(dir.join("janus.transport.http.jcfg")).unwrap();
        assert!(http.contains("ip = \"10.99.7.1\""));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(room_number("load-1-0"), room_number("load-1-0"));
        assert_ne!(room_number("load-1-0"), room_number("load-1-1"));
        assert!(room_number("x") >= 1);
        let offer = "v=0\r\nm=audio 9 X 111\r\na=ssrc:1 cname:a\r\nm=video 9 X 96\r\na=rid:q send\r\na=simulcast:send q;f\r\na=ssrc:2 cname:v\r\na=ssrc-group:FID 2 3\r\n";
        let m = rid_only_simulcast(offer);
        assert_eq!(m, "v=0\r\nm=audio 9 X 111\r\na=ssrc:1 cname:a\r\nm=video 9 X 96\r\na=rid:q send\r\na=simulcast:send q;f\r\n");
    }
}

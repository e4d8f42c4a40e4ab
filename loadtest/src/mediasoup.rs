//! mediasoup as a target: the Node bridge in `loadtest/mediasoup/` (a Worker per core, a
//! Router per room, SDP translated to mediasoup's parameters and back) over plain HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use sfu_core::testkit::SimClient;
use sfu_core::{OfferedTrack, ParticipantId};
use tokio::sync::mpsc;

use crate::driver::{short, Ctx, CONNECT_TIMEOUT};
use crate::scenario::Plan;
use crate::session::{Media, Signal};

/// The bridge's directory in the source tree.
pub fn bridge_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mediasoup")
}

/// The mediasoup worker binary the bridge runs, when it has been built
/// (`bash loadtest/mediasoup/build.sh`).
pub fn worker_bin(dir: &Path) -> Option<PathBuf> {
    let p = dir.join("node_modules/mediasoup/worker/out/Release/mediasoup-worker");
    p.is_file().then_some(p)
}

/// Start the bridge (`node bridge.mjs`) on `ip:port`, in network namespace `netns` if
/// given, with `workers` mediasoup workers; wait until it listens.
pub fn spawn(
    dir: &Path,
    ip: &str,
    port: u16,
    workers: usize,
    netns: Option<&str>,
    log: &Path,
) -> anyhow::Result<Child> {
    anyhow::ensure!(
        worker_bin(dir).is_some(),
        "the mediasoup worker is not built (bash loadtest/mediasoup/build.sh)"
    );
    let mut cmd = match netns {
        Some(ns) => crate::netns::Pair::command_in(ns, "node"),
        None => Command::new("node"),
    };
    let file = std::fs::File::create(log)?;
    let mut child = cmd
        .current_dir(dir)
        .args(["bridge.mjs", "--ip", ip, "--port", &port.to_string()])
        .args(["--workers", &workers.to_string()])
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .context("starting node bridge.mjs")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("mediasoup bridge listening")
        {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "the mediasoup bridge exited ({status}); see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    anyhow::bail!(
        "the mediasoup bridge did not start within 20 s; see {}",
        log.display()
    )
}

/// The pids a bridge names at start (`pids node=N workers=A,B`): Node first.
pub fn pids_from_log(log: &str) -> Option<Vec<u32>> {
    let line = log.lines().find(|l| l.starts_with("pids node="))?;
    let mut parts = line.split_whitespace().skip(1);
    let node: u32 = parts.next()?.strip_prefix("node=")?.parse().ok()?;
    let workers = parts.next()?.strip_prefix("workers=")?;
    let mut all = vec![node];
    for w in workers.split(',').filter(|w| !w.is_empty()) {
        all.push(w.parse().ok()?);
    }
    Some(all)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// POST `body` to `path`; Ok(None) for 409 (not yet), Err for any other failure.
    async fn post(&self, path: &str, body: Value) -> Result<Option<Value>, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(CONNECT_TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("mediasoup http: {}", short(&e.to_string())))?;
        let status = r.status().as_u16();
        let v: Value = r
            .json()
            .await
            .map_err(|e| format!("mediasoup reply: {}", short(&e.to_string())))?;
        match status {
            200 => Ok(Some(v)),
            409 => Ok(None),
            s => Err(format!("mediasoup {s}: {}", short(&v["error"].to_string()))),
        }
    }
}

struct MediasoupSignal {
    api: Api,
    room: String,
    id: u64,
    wants_subscribe: bool,
    subscribed: bool,
    /// Other publishers to wait for before subscribing (all of them, as with Janus).
    expect: usize,
}

/// The tracks of a subscribe reply, as the harness's client names them.
fn offered_tracks(v: &Value) -> Vec<OfferedTrack> {
    crate::session::offered_tracks(&v["tracks"], "kind", "publisher")
}

impl Signal for MediasoupSignal {
    async fn on_message(
        &mut self,
        _v: Value,
        _client: &mut SimClient,
        _ctx: &Ctx,
    ) -> Result<(), String> {
        Ok(()) // the bridge answers requests; it sends nothing by itself
    }

    async fn tick(&mut self, client: &mut SimClient, ctx: &Ctx) -> Result<(), String> {
        if !self.wants_subscribe || self.subscribed || self.expect == 0 {
            return Ok(());
        }
        let path = format!("/rooms/{}/peers/{}/subscribe", self.room, self.id);
        let Some(v) = self.api.post(&path, json!({"expect": self.expect})).await? else {
            return Ok(()); // not every publisher is in yet
        };
        self.subscribed = true;
        let offer = v["offer"]
            .as_str()
            .ok_or("subscribe reply without an offer")?;
        ctx.allowed.check_sdp(offer).map_err(|e| e.to_string())?;
        let answer = client
            .accept_subscribe_offer(offer, offered_tracks(&v))
            .ok_or("could not answer the mediasoup offer")?;
        if let Ok(dir) = std::env::var("SB_DUMP_SDP") {
            let _ = std::fs::write(format!("{dir}/subscriber-offer-{}.sdp", self.id), offer);
            let _ = std::fs::write(format!("{dir}/subscriber-answer-{}.sdp", self.id), &answer);
        }
        let path = format!("/rooms/{}/peers/{}/answer", self.room, self.id);
        self.api.post(&path, json!({"sdp": answer})).await?;
        Ok(())
    }

    async fn leave(&mut self) {
        let _ = self
            .api
            .http
            .delete(format!(
                "{}/rooms/{}/peers/{}",
                self.api.base, self.room, self.id
            ))
            .timeout(CONNECT_TIMEOUT)
            .send()
            .await;
    }
}

pub async fn run(plan: &Plan, ctx: &Ctx, base: &str) -> Result<(), String> {
    let started = Instant::now();
    let api = Api {
        http: reqwest::Client::builder()
            .build()
            .map_err(|e| e.to_string())?,
        base: base.to_string(),
    };
    // The media sockets first: the offer names them.
    let provisional = ParticipantId(plan.join_at.as_micros() as u64 ^ 0x5eed);
    let mut media = Media::bind(ctx, plan, provisional).await?;
    let offer = media.client.make_offer();
    let dump = std::env::var("SB_DUMP_SDP").ok();
    if let (Some(dir), Some(o)) = (&dump, &offer) {
        let _ = std::fs::write(format!("{dir}/publisher-offer-{}.sdp", plan.name), o);
    }
    let mut body = json!({"name": plan.name});
    if let Some(o) = &offer {
        body["offer"] = json!(o);
    }
    let v = api
        .post(&format!("/rooms/{}/peers", plan.room), body)
        .await
        .map_err(|e| format!("signaling connect: {e}"))?
        .ok_or("join refused (409)")?;
    let id = v["id"].as_u64().ok_or("join reply without an id")?;
    if let Some(answer) = v["answer"].as_str() {
        ctx.allowed.check_sdp(answer).map_err(|e| e.to_string())?;
        media.client.accept_publish_answer(answer);
    }
    let publishes = plan.spec.publishes();
    let mut sig = MediasoupSignal {
        api,
        room: plan.room.clone(),
        id,
        wants_subscribe: plan.spec.subscribe,
        subscribed: false,
        expect: ctx.publishers_per_room - usize::from(publishes),
    };
    let (_tx, mut events) = mpsc::channel::<Value>(1);
    media.run(&mut sig, &mut events, ctx, plan, started).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu_core::TrackKind;

    #[test]
    fn subscribe_replies_name_their_tracks() {
        let v = json!({"offer": "v=0", "tracks": [
            {"mid": "0", "kind": "audio", "publisher": 7},
            {"mid": "1", "kind": "video", "publisher": 7},
            {"mid": "2", "kind": "data", "publisher": 7}
        ]});
        let t = offered_tracks(&v);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[1].mid.as_str(), t[1].kind, t[1].publisher),
            ("1", TrackKind::Video, ParticipantId(7))
        );
        assert!(offered_tracks(&json!({})).is_empty());
    }

    #[test]
    fn the_bridge_names_its_pids() {
        let log = "pids node=10 workers=11,12\nmediasoup bridge listening on http://x";
        assert_eq!(pids_from_log(log), Some(vec![10, 11, 12]));
        assert_eq!(pids_from_log("nothing"), None);
        assert_eq!(pids_from_log("pids node=x workers=1"), None);
    }
}

//! The directory through Redis Sentinel, against real `redis-server`s on loopback (a
//! primary, its replica and one Sentinel, started by the test): a node finds the primary
//! through the Sentinel, and after a failover its next writes go to the new primary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster::registry;
use cluster::Redis;

mod common;
use common::{free_port, node, wait_for_port};

/// The processes, stopped when dropped.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn redis(args: &[&str]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (scripts/test.sh installs Debian's redis-server)")
}

/// A primary on `p`, its replica on `r`, a Sentinel on `s` watching it
/// as `sb` (quorum 1).
fn start((p, r, s): (u16, u16, u16), dir: &std::path::Path) -> Procs {
    let common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    let mut procs = Procs(vec![]);
    let primary = p.to_string();
    procs
        .0
        .push(redis(&[&["--port", &primary][..], &common].concat()));
    wait_for_port(p);
    let replica = r.to_string();
    procs.0.push(redis(
        &[
            &["--port", &replica, "--replicaof", "127.0.0.1", &primary][..],
            &common,
        ]
        .concat(),
    ));
    wait_for_port(r);
    // A Sentinel rewrites its configuration file, so it gets one of its own.
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "bind 127.0.0.1\nport {s}\nsentinel monitor sb 127.0.0.1 {p} 1\n\
             sentinel down-after-milliseconds sb 1000\nsentinel failover-timeout sb 4000\n"
        ),
    )
    .unwrap();
    procs.0.push(
        Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel runs"),
    );
    wait_for_port(s);
    procs
}

async fn cmd<T: redis::FromRedisValue>(port: u16, c: &mut redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    c.query_async(&mut conn).await
}

/// What the Redis at `port` says it is (`master`, `slave`).
async fn role(port: u16) -> String {
    let r: Vec<redis::Value> = cmd(port, &mut redis::cmd("ROLE")).await.unwrap_or_default();
    match r.first() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Whether the node's record is stored on the Redis at `port`.
async fn stored_at(port: u16, id: &str) -> bool {
    let key = format!("{}node:{id}", cluster::PREFIX);
    cmd::<bool>(port, redis::cmd("EXISTS").arg(&key))
        .await
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_is_found_through_sentinel_and_followed_across_a_failover() {
    let ports = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("sb-sentinel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _procs = start(ports, &dir);
    let (primary, replica, sentinel) = ports;

    let r = Redis::new(&format!("redis+sentinel://127.0.0.1:{sentinel}/sb")).unwrap();
    registry::publish(&r, &node("n1")).await.unwrap();
    assert!(stored_at(primary, "n1").await, "written to the primary");
    assert_eq!(registry::nodes(&r).await.unwrap().len(), 1);

    // Fail over (the Sentinel needs a moment to learn of the replica; it says NOGOODSLAVE
    // until then), and wait until it names the replica as the primary.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let asked: redis::RedisResult<String> =
            cmd(sentinel, redis::cmd("SENTINEL").arg("FAILOVER").arg("sb")).await;
        if asked.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "failover refused: {asked:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    loop {
        let addr: Vec<String> = cmd(
            sentinel,
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg("sb"),
        )
        .await
        .unwrap();
        // Done when the replica is the primary and the old primary has become its replica
        // (until then the old one still takes writes: Redis's own failover window).
        if addr.get(1) == Some(&replica.to_string())
            && role(replica).await == "master"
            && role(primary).await == "slave"
        {
            break;
        }
        assert!(Instant::now() < deadline, "no failover: {addr:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The old connection goes to a demoted server (READONLY, or closed): that call fails,
    // drops the connection, and a later one asks the Sentinel again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    while registry::publish(&r, &node("n2")).await.is_err() {
        failures += 1;
        assert!(Instant::now() < deadline, "never reached the new primary");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored_at(replica, "n2").await, "written to the new primary");
    assert!(
        failures <= 3,
        "{failures} failed writes before the new primary"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! The directory against a real `redis-server` on loopback (started by the test): one home
//! under concurrent claims, placement by room count, re-homing after a node's key expires,
//! fencing, and a clear error within a second when Redis is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::registry;
use cluster::rooms;
use cluster::{ClusterError, Redis};

mod common;
use common::{node, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_home_under_concurrent_claims_spread_by_load_rehomed_and_fenced() {
    let server = RedisServer::start();
    let redis = Arc::new(Redis::new(&server.url).unwrap());
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    for id in &ids {
        registry::publish(&redis, &node(id)).await.unwrap();
    }
    assert_eq!(registry::nodes(&redis).await.unwrap().len(), 3);
    // 100 concurrent first claims of one room, from "nodes" that list the candidates in
    // different orders: one home, one epoch.
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (redis, mut c) = (redis.clone(), ids.clone());
        c.rotate_left(i % 3);
        tasks.push(tokio::spawn(async move {
            rooms::claim(&redis, "r", &c).await.unwrap()
        }));
    }
    let mut homes = Vec::new();
    for t in tasks {
        homes.push(t.await.unwrap());
    }
    assert!(homes
        .iter()
        .all(|h| h.node == homes[0].node && h.epoch == 1));
    assert_eq!(homes.iter().filter(|h| h.placed).count(), 1, "placed once");
    // 29 more rooms spread over the three by room count: 10 each.
    for i in 0..29 {
        rooms::claim(&redis, &format!("room{i}"), &ids)
            .await
            .unwrap();
    }
    let mut per = std::collections::HashMap::new();
    for i in 0..29 {
        let (n, _) = rooms::home(&redis, &format!("room{i}"))
            .await
            .unwrap()
            .unwrap();
        *per.entry(n).or_insert(0) += 1;
    }
    *per.entry(homes[0].node.clone()).or_insert(0) += 1;
    assert_eq!(
        per.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{per:?}"
    );
    // The home's node dies (its key goes): the next claim re-homes with epoch 2.
    let dead = homes[0].node.clone();
    registry::withdraw(&redis, &dead).await.unwrap();
    let again = rooms::claim(&redis, "r", &ids).await.unwrap();
    assert_ne!(again.node, dead);
    assert_eq!((again.epoch, again.placed), (2, true));
    // The old home comes back with its stale epoch: it cannot release the room.
    registry::publish(&redis, &node(&dead)).await.unwrap();
    assert!(!rooms::release(&redis, "r", &dead, 1).await.unwrap());
    assert_eq!(
        rooms::claim(&redis, "r", &ids).await.unwrap().node,
        again.node
    );
    assert!(rooms::release(&redis, "r", &again.node, 2).await.unwrap());
    assert_eq!(rooms::home(&redis, "r").await.unwrap(), None);
    // No serving candidate alive: a clear error, nothing claimed.
    assert_eq!(
        rooms::claim(&redis, "lonely", &["gone".to_string()]).await,
        Err(ClusterError::NoNode)
    );
    // Redis gone: every call fails within a second, with the reason.
    drop(server);
    let t0 = Instant::now();
    let e = rooms::claim(&redis, "new", &ids).await.unwrap_err();
    assert!(matches!(e, ClusterError::Unavailable(_)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_accepts_and_never_answers_costs_a_bounded_wait() {
    // A listener that takes connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            // Held open, never read from nor written to.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(s);
            });
        }
    });
    let redis = Redis::new(&format!("redis://127.0.0.1:{port}/")).unwrap();
    for _ in 0..3 {
        let t0 = Instant::now();
        let e = rooms::claim(&redis, "r", &["a".to_string()])
            .await
            .unwrap_err();
        assert!(matches!(e, ClusterError::Unavailable(_)), "{e:?}");
        assert!(
            t0.elapsed() < Duration::from_millis(2_000),
            "bounded: {:?}",
            t0.elapsed()
        );
    }
}

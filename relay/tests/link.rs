//! Two (or three) relay endpoints on loopback: a link only between nodes that know each
//! other's certificates and the cluster secret; control messages and media both ways;
//! what a link refuses.

use relay::control::{Kind, Layer};
use relay::{Control, Identity, Peers, RelayEndpoint, RelayError};

const SECRET: &[u8] = b"cluster secret of the test";

struct Node {
    ep: RelayEndpoint,
    peers: Peers,
}

fn node(name: &str, secret: &[u8]) -> Node {
    let peers = Peers::default();
    let id = Identity::generate(name).unwrap();
    let ep = RelayEndpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        name,
        id,
        peers.clone(),
        secret,
    )
    .unwrap();
    Node { ep, peers }
}

/// Each node learns the other's fingerprint (what the registry does in the cluster).
fn introduce(a: &Node, b: &Node, a_name: &str, b_name: &str) {
    a.peers.insert(b.ep.fingerprint(), b_name.into());
    b.peers.insert(a.ep.fingerprint(), a_name.into());
}

#[tokio::test]
async fn known_nodes_link_and_exchange_control_and_media() {
    let (a, b) = (node("a", SECRET), node("b", SECRET));
    introduce(&a, &b, "a", "b");
    let addr = a.ep.local_addr().unwrap();
    let (accepted, dialed) = tokio::join!(a.ep.accept(), b.ep.connect(addr, a.ep.fingerprint()));
    let (mut at_a, mut at_b) = (accepted.unwrap().unwrap(), dialed.unwrap());
    assert_eq!((at_a.peer(), at_b.peer()), ("b", "a"));

    let announce = Control::Announce {
        room: "webinar".into(),
        track: "TR_v".into(),
        participant: "PA_1".into(),
        kind: Kind::Video,
        codec: "VP8".into(),
        layers: vec![
            Layer {
                rid: "q".into(),
                flow: 7,
            },
            Layer {
                rid: "f".into(),
                flow: 9,
            },
        ],
    };
    at_a.send_control(&announce).await.unwrap();
    assert_eq!(at_b.recv_control().await.unwrap(), Some(announce));
    let demand = Control::Demand {
        room: "webinar".into(),
        track: "TR_v".into(),
        flows: vec![9],
    };
    at_b.send_control(&demand).await.unwrap();
    assert_eq!(at_a.recv_control().await.unwrap(), Some(demand));

    // Media both ways: each datagram arrives as the flow and RTP packet sent.
    let (ma, mb) = (at_a.media(), at_b.media());
    let rtp: Vec<u8> = [0x80, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1]
        .into_iter()
        .chain([7u8; 1000])
        .collect();
    for i in 0..20u8 {
        let mut p = rtp.clone();
        p[3] = i;
        ma.send(9, &p).unwrap();
        let (flow, got) = mb.recv().await.unwrap();
        assert_eq!((flow, &got[..]), (9, &p[..]));
        mb.send(7, &p[..12]).unwrap();
        let (flow, got) = ma.recv().await.unwrap();
        assert_eq!((flow, &got[..]), (7, &p[..12]));
    }
    // Junk datagrams are dropped (counted), the next good one still arrives.
    mb.send_raw(&[1, 0, 0, 0, 9, 0x40]).unwrap();
    mb.send_raw(&[2; 40]).unwrap();
    mb.send(7, &rtp[..12]).unwrap();
    assert_eq!(ma.recv().await.unwrap().0, 7);
    // A packet larger than the path's datagrams is refused, not sent.
    let huge = vec![0x80u8; 1_600];
    assert!(matches!(
        ma.send(9, &huge),
        Err(RelayError::TooLarge(1_605, _))
    ));
    at_b.close("done");
    assert!(matches!(at_a.recv_control().await, Err(_) | Ok(None)));
}

#[tokio::test]
async fn a_stranger_a_wrong_certificate_and_a_wrong_secret_get_no_link() {
    let (a, b) = (node("a", SECRET), node("b", SECRET));
    introduce(&a, &b, "a", "b");
    let addr = a.ep.local_addr().unwrap();

    // A node whose certificate a does not know: its handshake fails at a.
    let stranger = node("c", SECRET);
    stranger.peers.insert(a.ep.fingerprint(), "a".into());
    let (accepted, dialed) =
        tokio::join!(a.ep.accept(), stranger.ep.connect(addr, a.ep.fingerprint()));
    assert!(
        accepted.unwrap().is_err(),
        "a refuses a certificate the registry does not name"
    );
    assert!(dialed.is_err());

    // b expects another certificate than a's: b refuses a.
    let other = Identity::generate("x").unwrap().fingerprint;
    let dialing = b.ep.connect(addr, other);
    let (accepted, dialed) = tokio::join!(
        async { tokio::time::timeout(std::time::Duration::from_secs(3), a.ep.accept()).await },
        dialing
    );
    assert!(dialed.is_err(), "b refuses a certificate it did not expect");
    if let Ok(Some(r)) = accepted {
        assert!(r.is_err());
    }

    // A node with the right certificate (in a's registry) but not the cluster secret.
    let forger = node("d", b"another secret");
    introduce(&a, &forger, "a", "d");
    let (accepted, dialed) =
        tokio::join!(a.ep.accept(), forger.ep.connect(addr, a.ep.fingerprint()));
    let refused = accepted
        .unwrap()
        .err()
        .expect("a refuses a hello without the secret");
    assert!(matches!(refused, RelayError::Hello(_)), "{refused}");
    assert!(dialed.is_err());

    // a and b still link afterwards.
    let (accepted, dialed) = tokio::join!(a.ep.accept(), b.ep.connect(addr, a.ep.fingerprint()));
    assert_eq!(accepted.unwrap().unwrap().peer(), "b");
    assert_eq!(dialed.unwrap().peer(), "a");
}

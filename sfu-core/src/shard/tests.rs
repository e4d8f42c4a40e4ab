//! The shard's own input handling: the STUN budget for new source addresses.

use super::*;
use crate::testkit::stun_binding_request;
use crate::{Command, RoomId};

fn stun(user: &str, id: u8) -> Vec<u8> {
    stun_binding_request(user, u16::from(id))
}

#[test]
fn stun_from_new_addresses_is_budgeted_per_source_ip() {
    let t0 = crate::test_clock::origin();
    let server: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut shard = Shard::new(ShardConfig::new(server), t0);
    shard.handle_input(
        t0,
        Input::Command(Command::Join {
            room: RoomId::from("r"),
            participant: ParticipantId(1),
            can_publish: true,
            can_subscribe: true,
            track_streams: false,
            auto_subscribe: true,
        }),
    );
    let ufrag = shard.peers.routes.bindings().1.next().unwrap().0.clone();
    // An attacker who learned the ufrag sprays checks from many ports of one IP.
    for port in 0..200u16 {
        let src: SocketAddr = format!("10.9.9.9:{}", 10_000 + port).parse().unwrap();
        let m = stun(&format!("{ufrag}:evil"), port as u8);
        shard.handle_input(
            t0,
            Input::Datagram {
                source: src,
                contents: &m,
            },
        );
    }
    let s = shard.stats();
    assert_eq!(
        s.dropped_rate_limited,
        200 - u64::from(NEW_SOURCE_STUN_PER_SEC)
    );
    // Another IP has its own budget; a second later the budget is back.
    let other: SocketAddr = "10.8.8.8:4000".parse().unwrap();
    shard.handle_input(
        t0,
        Input::Datagram {
            source: other,
            contents: &stun(&format!("{ufrag}:x"), 1),
        },
    );
    assert_eq!(shard.stats().dropped_rate_limited, s.dropped_rate_limited);
    let later = t0 + Duration::from_millis(1_100);
    let src: SocketAddr = "10.9.9.9:9999".parse().unwrap();
    shard.handle_input(
        later,
        Input::Datagram {
            source: src,
            contents: &stun(&format!("{ufrag}:evil"), 7),
        },
    );
    assert_eq!(shard.stats().dropped_rate_limited, s.dropped_rate_limited);
    // Unknown ufrags never reach a peer and cost no budget.
    shard.handle_input(
        later,
        Input::Datagram {
            source: src,
            contents: &stun("nobody:x", 8),
        },
    );
    assert_eq!(
        shard.stats().dropped_unknown_source,
        s.dropped_unknown_source + 1
    );
    // No address was bound by any of it (none passed the integrity check).
    assert_eq!(shard.peers.routes.bindings().0.count(), 0);
}

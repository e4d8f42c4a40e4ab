//! Resume tokens over real sockets, with str0m clients whose media runs throughout: a
//! token works once, for its own participant (the access token sent with it must be of
//! the same identity and room), within the grace period. Every refusal is an
//! `error` `resume_refused` and close code 4011, and leaves the session as it was.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sfu_core::TrackKind;

/// A new socket that sends `resume`: its answer (`resumed` or `error`), and for a refusal
/// the close code. What was queued while the socket was away (an `active_speaker`, say)
/// comes before `resumed` by design, so it is passed over.
async fn attempt(server: &Server, resume_token: &str, access: &str) -> (Value, Option<Value>, Ws) {
    let mut ws = ws(server).await;
    send(
        &mut ws,
        json!({"type": "resume", "token": resume_token, "access_token": access}),
    )
    .await;
    let mut first = recv(&mut ws).await;
    for _ in 0..64 {
        if first["type"] == "resumed" || first["type"] == "error" {
            break;
        }
        first = recv(&mut ws).await;
    }
    let close = (first["type"] == "error").then_some(());
    let close = match close {
        Some(()) => Some(recv(&mut ws).await),
        None => None,
    };
    (first, close, ws)
}

fn refused(first: &Value, close: &Option<Value>, why: &str) {
    assert_eq!(first["type"], "error", "{why}: {first}");
    assert_eq!(first["code"], "resume_refused", "{why}: {first}");
    assert_eq!(close.as_ref().unwrap()["close"], 4011, "{why}");
}

fn video(p: &Participant, from: &Participant) -> u64 {
    p.client
        .stream_from(from.id, TrackKind::Video)
        .map_or(0, |v| v.packets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_tokens_work_once_for_their_own_participant_within_the_grace() {
    let server = start_server_with(&["--resume-grace", "3"]);
    let mut ps = [
        Participant::join_resumable(&server, "r", "ann").await,
        Participant::join_resumable(&server, "r", "bob").await,
    ];
    run_all(&mut ps, Duration::from_secs(2)).await;
    let ann = ps[0].resume_token.clone().expect("a resume token at join");
    let bob = ps[1].resume_token.clone().unwrap();
    assert_ne!(ann, bob);
    // Ann's socket drops (no leave): her session is kept.
    ps[0].ws.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Her token with bob's access token, or with hers for another room: not hers to take.
    let (f, c, _) = attempt(&server, &ann, &token("r", "bob", 600)).await;
    refused(&f, &c, "another identity");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("for this identity and room"),
        "{f}"
    );
    let (f, c, _) = attempt(&server, &ann, &token("other", "ann", 600)).await;
    refused(&f, &c, "another room");
    // A forged token, and an expired access token.
    let (f, c, _) = attempt(
        &server,
        "RT_00000000000000000000000000000000",
        &token("r", "ann", 600),
    )
    .await;
    refused(&f, &c, "forged");
    let (f, c, _) = attempt(&server, &ann, &token("r", "ann", -60)).await;
    refused(&f, &c, "expired access token");
    // Her own: resumed, the same participant, and the media went on meanwhile.
    let (f, c, ws) = attempt(&server, &ann, &token("r", "ann", 600)).await;
    assert!(c.is_none(), "{f}");
    assert_eq!(f["type"], "resumed", "{f}");
    assert_eq!(f["participant"]["id"], ps[0].id.0);
    let next = f["resume_token"].as_str().unwrap().to_string();
    assert_ne!(next, ann);
    ps[0].ws = ws;
    let before = video(&ps[1], &ps[0]);
    run_all(&mut ps, Duration::from_secs(1)).await;
    assert!(video(&ps[1], &ps[0]) > before + 20, "media flows");
    // The token worked once.
    let (f, c, _) = attempt(&server, &ann, &token("r", "ann", 600)).await;
    refused(&f, &c, "reused");
    // Bob's socket drops and he is not back within the grace period (3 s): gone.
    ps[1].ws.close(None).await.unwrap();
    run_all(&mut ps[..1], Duration::from_secs(5)).await;
    let (f, c, _) = attempt(&server, &bob, &token("r", "bob", 600)).await;
    refused(&f, &c, "past the grace period");
    assert!(ps[0]
        .messages
        .iter()
        .any(|m| m["type"] == "participant_left" && m["participant"] == ps[1].id.0));
}

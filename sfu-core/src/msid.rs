//! MediaStream ids (`a=msid`, RFC 8830) of what a subscriber receives. All tracks of one
//! publisher share one stream id, so that a page that does `video.srcObject =
//! event.streams[0]` in `ontrack` (Eyevinn's webrtc-player, most hand-written players)
//! gets the publisher's audio and video in one stream, not whichever track came last.
//!
//! On the WebSocket subscriber connection the server offers, and `add_media` takes the
//! stream id. A WHEP viewer offers, and str0m 0.25 gives an m-line created from a remote
//! offer the msid written on that m-line, or a random one per m-line when there is none
//! (receive-only offers carry none); it has no API to choose it (ADR 0002). So the
//! viewer's offer is given the stream id before str0m reads it: str0m then answers with
//! it, and keeps it for the session.

use crate::ids::{ParticipantId, TrackId};

/// The stream id of a publisher's tracks, on every subscriber connection: its LiveKit
/// participant sid (`PA_<id>`), which LiveKit's client SDKs read from the stream id to
/// know whose track arrived (the part before a `|`, and there is none here).
pub(crate) fn publisher_stream(publisher: ParticipantId) -> String {
    format!("PA_{publisher}")
}

/// The stream id of one track, for a subscriber that takes a stream per track (LiveKit's
/// SDKs): `PA_<publisher>|<track sid>`, the sid being the publisher's client's, or else
/// `TR_<track>`.
pub(crate) fn track_stream(publisher: ParticipantId, track: TrackId, sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("PA_{publisher}|{sid}"),
        None => format!("PA_{publisher}|TR_{track}"),
    }
}

/// The stream id of a WHEP speaker view: one for the whole session, whoever speaks.
pub(crate) const SPEAKER_STREAM: &str = "speaker";

/// `offer` with every audio and video m-line's `a=msid` set to `stream` (any msid the
/// viewer wrote is replaced): track ids are `{stream}-{index of the m-line}`. Other
/// m-lines and session-level lines are kept as they are; line endings become CRLF.
pub(crate) fn with_stream_id(offer: &str, stream: &str) -> String {
    let mut out = String::with_capacity(offer.len() + 128);
    let mut media_index = 0usize;
    let mut in_av = false;
    let close = |out: &mut String, in_av: bool, index: usize| {
        if in_av {
            out.push_str(&format!("a=msid:{stream} {stream}-{index}\r\n"));
        }
    };
    for line in offer.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            close(&mut out, in_av, media_index);
            media_index += 1;
            in_av = line.starts_with("m=audio") || line.starts_with("m=video");
        } else if in_av && line.starts_with("a=msid:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    close(&mut out, in_av, media_index);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1 2\r\na=msid-semantic: WMS\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=recvonly\r\na=msid:- {abc}\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:2\r\n";

    fn msids(sdp: &str) -> Vec<&str> {
        sdp.lines().filter(|l| l.starts_with("a=msid:")).collect()
    }

    #[test]
    fn every_audio_and_video_m_line_gets_the_stream_and_nothing_else_changes() {
        let out = with_stream_id(OFFER, "p7");
        assert_eq!(msids(&out), ["a=msid:p7 p7-1", "a=msid:p7 p7-2"]);
        // The viewer's own msid is gone; the data m-line has none; the rest is intact.
        assert!(!out.contains("{abc}"));
        let rest: Vec<&str> = out.lines().filter(|l| !l.starts_with("a=msid:")).collect();
        let want: Vec<&str> = OFFER
            .lines()
            .filter(|l| !l.starts_with("a=msid:"))
            .collect();
        assert_eq!(rest, want);
        assert!(out.ends_with("a=mid:2\r\n"));
    }

    #[test]
    fn bare_line_feeds_and_a_last_media_m_line() {
        let offer = "v=0\ns=-\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:0\n";
        let out = with_stream_id(offer, SPEAKER_STREAM);
        assert_eq!(
            out,
            "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:speaker speaker-1\r\n"
        );
        assert_eq!(with_stream_id("v=0\r\n", "x"), "v=0\r\n");
    }
}

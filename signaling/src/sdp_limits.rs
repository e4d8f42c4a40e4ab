//! How much an offer may ask for. Each media section a publisher offers becomes a track
//! that every subscriber's connection renegotiates for; an offer with thousands of
//! `m=` lines (which fit in a 64 KiB WHIP body or a 256 KiB WebSocket message) would make
//! every subscriber in the room renegotiate thousands of m-lines. A browser publishes
//! four at most (camera, microphone, screen, screen audio) and a WHEP viewer asks for
//! two; more than [`MAX_MEDIA_SECTIONS`] is refused before anything reaches the media plane.

/// Media sections (`m=` lines) an offer may have.
pub const MAX_MEDIA_SECTIONS: usize = 16;

/// Err (a message for the client) when `sdp` has more than [`MAX_MEDIA_SECTIONS`].
pub fn check_media_sections(sdp: &str) -> Result<(), String> {
    let n = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if n > MAX_MEDIA_SECTIONS {
        return Err(format!(
            "the offer has {n} media sections; at most {MAX_MEDIA_SECTIONS} are taken"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browsers_offer_passes_and_a_thousand_m_lines_do_not() {
        let m = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n";
        assert!(check_media_sections(&format!("v=0\r\n{}", m.repeat(4))).is_ok());
        assert!(check_media_sections(&format!("v=0\r\n{}", m.repeat(16))).is_ok());
        let e = check_media_sections(&format!("v=0\r\n{}", m.repeat(1_000))).unwrap_err();
        assert!(e.contains("1000 media sections"), "{e}");
    }
}

//! A participant's identity and display name: the rules, written once. Every path that
//! takes one from outside (REST bodies and paths, SIP calls placed through the API) checks
//! it here; names that arrive in tokens are cleaned with [`clean_name`] instead, since a
//! token's signer already vouched for them.

use crate::Error;

/// Longest identity, in characters.
pub const MAX_IDENTITY: usize = 256;
/// Longest display name, in characters.
pub const MAX_NAME: usize = 64;

/// 1 to [`MAX_IDENTITY`] characters, none of them a control character (CR, LF, NUL, DEL,
/// C1 controls): an identity can end up in logs, webhooks and SIP headers.
pub fn check_identity(s: &str) -> Result<(), Error> {
    let ok = !s.is_empty() && s.chars().count() <= MAX_IDENTITY && !s.chars().any(char::is_control);
    ok.then_some(()).ok_or_else(|| {
        Error::Invalid(format!(
            "identity: 1-{MAX_IDENTITY} characters, no control characters"
        ))
    })
}

/// 1 to [`MAX_NAME`] characters, none of them a control character, not only spaces.
pub fn check_name(s: &str) -> Result<(), Error> {
    let ok =
        !s.trim().is_empty() && s.chars().count() <= MAX_NAME && !s.chars().any(char::is_control);
    ok.then_some(()).ok_or_else(|| {
        Error::Invalid(format!(
            "name: 1-{MAX_NAME} characters, no control characters"
        ))
    })
}

/// A name from a token or a query, made to keep the rule: control characters dropped,
/// trimmed, cut to [`MAX_NAME`]; `fallback` when nothing is left.
pub fn clean_name(s: &str, fallback: &str) -> String {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    if t.is_empty() {
        fallback
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME)
            .collect()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        assert!(check_identity("alice").is_ok());
        assert!(check_identity(&"é".repeat(MAX_IDENTITY)).is_ok());
        for bad in [
            "",
            "a\r\nP-Asserted-Identity: x",
            "a\0",
            "a\u{85}b",
            "\u{7f}",
        ] {
            assert!(check_identity(bad).is_err(), "{bad:?}");
        }
        assert!(check_identity(&"x".repeat(MAX_IDENTITY + 1)).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("☎ Ann \"the boss\"").is_ok());
        for bad in [
            "",
            "   ",
            "Ann\r\nP-Asserted-Identity: <sip:+1@x>",
            "tab\there",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(clean_name(" a\r\nb ", "f"), "ab");
        assert_eq!(clean_name("\n", "fall\nback"), "fallback");
    }
}

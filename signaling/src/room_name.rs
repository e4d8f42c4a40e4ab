//! Room names: 1–128 characters of `A-Z a-z 0-9 _ . -`. The rule is written once, here;
//! a [`RoomName`] is a name that passed it.

use std::borrow::Borrow;
use std::fmt;


#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

/// A name outside the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid room name: 1-128 characters of A-Z a-z 0-9 _ . -")]
pub struct BadRoomName;

impl RoomName {
    /// The name, or [`BadRoomName`].
    pub fn parse(s: &str) -> Result<Self, BadRoomName> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(BadRoomName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for RoomName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by `RoomName` are looked up by `&str`.
impl Borrow<str> for RoomName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<RoomName> for String {
    fn from(r: RoomName) -> String {
        r.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert!(RoomName::parse("demo-1_a.b").is_ok());
        assert_eq!(RoomName::parse(""), Err(BadRoomName));
        assert_eq!(RoomName::parse("a b"), Err(BadRoomName));
        assert_eq!(RoomName::parse("ü"), Err(BadRoomName));
        assert!(RoomName::parse(&"x".repeat(128)).is_ok());
        assert_eq!(RoomName::parse(&"x".repeat(129)), Err(BadRoomName));
    }
}

//! Room names: 1–128 characters of `A-Z a-z 0-9 _ . -`. The rule is written once, here;
//! a [`RoomName`] is a name that passed it.

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

/// A name outside the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid room name: 1-128 characters of A-Z a-z 0-9 _ . -")]
pub struct BadRoomName;

impl RoomName {
    /// Whether `s` keeps the rule (no allocation).
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    }

    /// The name, or [`BadRoomName`].
    pub fn parse(s: &str) -> Result<Self, BadRoomName> {
        if Self::is_valid(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(BadRoomName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by room name are looked up with a plain `&str`.
impl std::borrow::Borrow<str> for RoomName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert_eq!(
            RoomName::parse("demo-1_a.b").map(|r| r.as_str().to_string()),
            Ok("demo-1_a.b".into())
        );
        assert_eq!(RoomName::parse(""), Err(BadRoomName));
        assert_eq!(RoomName::parse("a b"), Err(BadRoomName));
        assert_eq!(RoomName::parse("ü"), Err(BadRoomName));
        assert!(RoomName::is_valid(&"x".repeat(128)));
        assert!(!RoomName::is_valid(&"x".repeat(129)));
    }
}

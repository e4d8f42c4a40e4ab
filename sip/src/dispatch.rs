//! Which room a call goes to: dispatch rules matched on the called number (the request
//! URI's user part), then a fixed room, a room per caller, or a PIN typed as DTMF.

use crate::dtmf::Digit;

/// What a rule does with the calls it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Every call to the rule's numbers joins this room.
    Room(String),
    /// Each caller gets a room of their own: `prefix` followed by the caller's number.
    RoomPerCaller { prefix: String },
    /// The caller types a PIN and `#`; each PIN leads to its room. `tries` wrong PINs
    /// and the call is hung up.
    Pin {
        pins: Vec<(String, String)>,
        tries: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The called numbers (user parts) this rule answers; empty: every number.
    pub numbers: Vec<String>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Join(String),
    AskPin(PinEntry),
    /// No rule matches: 404.
    NoRoute,
}

#[derive(Debug, Clone, Default)]
pub struct Dispatcher {
    rules: Vec<Rule>,
    /// Development mode: a call to `sip:<room>@host` that no rule takes joins `<room>`.
    user_part_is_room: bool,
}

/// The characters kept of a caller's number in a per-caller room name.
fn room_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect()
}

impl Dispatcher {
    pub fn new(rules: Vec<Rule>, user_part_is_room: bool) -> Self {
        Dispatcher {
            rules,
            user_part_is_room,
        }
    }

    /// Where a call from `caller` to `called` goes (user parts of the From and request
    /// URIs). The first matching rule wins.
    pub fn route(&self, called: &str, caller: &str) -> Decision {
        let rule = self
            .rules
            .iter()
            .find(|r| r.numbers.is_empty() || r.numbers.iter().any(|n| n == called));
        match rule.map(|r| &r.action) {
            Some(Action::Room(room)) => Decision::Join(room.clone()),
            Some(Action::RoomPerCaller { prefix }) => {
                let who = room_safe(caller);
                if who.is_empty() {
                    Decision::NoRoute
                } else {
                    Decision::Join(format!("{prefix}{who}"))
                }
            }
            Some(Action::Pin { pins, tries }) => {
                Decision::AskPin(PinEntry::new(pins.clone(), *tries))
            }
            None if self.user_part_is_room
                && !room_safe(called).is_empty()
                && room_safe(called) == called =>
            {
                Decision::Join(called.to_string())
            }
            None => Decision::NoRoute,
        }
    }
}

/// Longest PIN read; more digits make the entry wrong.
const MAX_PIN: usize = 16;

/// Reading a PIN: digits until `#` (`*` starts over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinEntry {
    pins: Vec<(String, String)>,
    tries_left: u8,
    typed: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinStep {
    More,
    Join(String),
    /// Wrong PIN; the caller may try again.
    Wrong {
        tries_left: u8,
    },
    /// Wrong too often: hang up.
    HangUp,
}

impl PinEntry {
    pub fn new(pins: Vec<(String, String)>, tries: u8) -> Self {
        PinEntry {
            pins,
            tries_left: tries.max(1),
            typed: String::new(),
        }
    }

    pub fn digit(&mut self, d: Digit) -> PinStep {
        match d.as_char() {
            '*' => {
                self.typed.clear();
                PinStep::More
            }
            '#' => {
                let typed = std::mem::take(&mut self.typed);
                if let Some((_, room)) = self.pins.iter().find(|(pin, _)| *pin == typed) {
                    return PinStep::Join(room.clone());
                }
                self.tries_left -= 1;
                if self.tries_left == 0 {
                    PinStep::HangUp
                } else {
                    PinStep::Wrong {
                        tries_left: self.tries_left,
                    }
                }
            }
            c => {
                if self.typed.len() <= MAX_PIN {
                    self.typed.push(c);
                }
                PinStep::More
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        vec![
            Rule {
                numbers: vec!["100".into()],
                action: Action::Room("lobby".into()),
            },
            Rule {
                numbers: vec!["200".into(), "201".into()],
                action: Action::RoomPerCaller {
                    prefix: "call-".into(),
                },
            },
            Rule {
                numbers: vec!["300".into()],
                action: Action::Pin {
                    pins: vec![("1234".into(), "board".into()), ("99".into(), "ops".into())],
                    tries: 3,
                },
            },
        ]
    }

    #[test]
    fn rules_by_called_number() {
        let d = Dispatcher::new(rules(), false);
        assert_eq!(d.route("100", "+15550001"), Decision::Join("lobby".into()));
        assert_eq!(
            d.route("201", "+1 555 0001"),
            Decision::Join("call-15550001".into())
        );
        assert!(matches!(d.route("300", "x"), Decision::AskPin(_)));
        assert_eq!(d.route("400", "x"), Decision::NoRoute);
        assert_eq!(
            d.route("200", "+"),
            Decision::NoRoute,
            "nothing left of the caller"
        );
    }

    #[test]
    fn development_mode_dials_rooms_by_name() {
        let d = Dispatcher::new(rules(), true);
        assert_eq!(
            d.route("standup", "alice"),
            Decision::Join("standup".into())
        );
        assert_eq!(
            d.route("100", "alice"),
            Decision::Join("lobby".into()),
            "rules first"
        );
        assert_eq!(
            d.route("bad room!", "alice"),
            Decision::NoRoute,
            "not a room name"
        );
        let catch_all = Dispatcher::new(
            vec![Rule {
                numbers: vec![],
                action: Action::Room("all".into()),
            }],
            true,
        );
        assert_eq!(
            catch_all.route("standup", "a"),
            Decision::Join("all".into())
        );
    }

    fn typed(p: &mut PinEntry, keys: &str) -> Vec<PinStep> {
        keys.chars()
            .map(|c| p.digit(Digit::new(c).unwrap()))
            .collect()
    }

    #[test]
    fn a_pin_joins_its_room_and_three_wrong_ones_hang_up() {
        let Decision::AskPin(mut p) = Dispatcher::new(rules(), false).route("300", "x") else {
            panic!("a PIN rule")
        };
        assert_eq!(typed(&mut p, "12").last(), Some(&PinStep::More));
        assert_eq!(
            typed(&mut p, "*1234#").last(),
            Some(&PinStep::Join("board".into()))
        );
        let mut p = PinEntry::new(vec![("99".into(), "ops".into())], 3);
        assert_eq!(
            typed(&mut p, "1#").last(),
            Some(&PinStep::Wrong { tries_left: 2 })
        );
        assert_eq!(
            typed(&mut p, "98#").last(),
            Some(&PinStep::Wrong { tries_left: 1 })
        );
        assert_eq!(typed(&mut p, "#").last(), Some(&PinStep::HangUp));
        let mut p = PinEntry::new(vec![("99".into(), "ops".into())], 3);
        assert_eq!(
            typed(&mut p, "99#").last(),
            Some(&PinStep::Join("ops".into()))
        );
        // An overlong entry is wrong, however it ends.
        let mut p = PinEntry::new(vec![("1".into(), "r".into())], 2);
        let long = format!("{}1#", "1".repeat(40));
        assert_eq!(
            typed(&mut p, &long).last(),
            Some(&PinStep::Wrong { tries_left: 1 })
        );
    }
}

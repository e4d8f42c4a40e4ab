//! The SIP gateway's tables in the configuration file: `[[sip_rules]]`,
//! `[[sip_trunks]]` and `[[sip_users]]` (TOML only: they are lists of tables).

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// One SIP dispatch rule: the called numbers it takes (none: every number) and exactly
/// one of `room` (a fixed room), `room_prefix` (a room per caller: prefix + the caller's
/// number) or `pins` (PIN → room, typed as DTMF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipRule {
    #[serde(default)]
    pub numbers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub pins: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_tries: Option<u8>,
}

impl SipRule {
    /// The gateway's form of the rule, or what is wrong with it.
    pub fn to_rule(&self) -> anyhow::Result<sip::dispatch::Rule> {
        use sip::dispatch::{Action, Rule};
        let action = match (&self.room, &self.room_prefix, self.pins.is_empty()) {
            (Some(room), None, true) => Action::Room(room.clone()),
            (None, Some(prefix), true) => Action::RoomPerCaller {
                prefix: prefix.clone(),
            },
            (None, None, false) => Action::Pin {
                pins: self
                    .pins
                    .iter()
                    .map(|(p, r)| (p.clone(), r.clone()))
                    .collect(),
                tries: self.pin_tries.unwrap_or(3),
            },
            _ => anyhow::bail!(
                "sip_rules: a rule for {:?} needs exactly one of `room`, `room_prefix` or `pins`",
                self.numbers
            ),
        };
        Ok(Rule {
            numbers: self.numbers.clone(),
            action,
        })
    }
}

/// A SIP trunk: where a provider's calls come from (`networks`, and/or digest
/// credentials it must answer with), the numbers it calls, and the way out for outbound
/// calls through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTrunk {
    pub name: String,
    /// Source networks of its INVITEs (`203.0.113.0/24`, `2001:db8::/32`, or one address).
    #[serde(default)]
    pub networks: Vec<String>,
    /// Called numbers it may call; none: any.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Inbound digest credentials (the provider is challenged with 407).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Outbound: the provider's SIP server, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_address: Option<String>,
    /// Outbound: our caller number (From).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_number: Option<String>,
    /// Outbound: answers to the provider's challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_password: Option<Secret>,
    /// Outbound: number prefixes calls through it may dial (`["+1555", "+44"]`; `[""]`:
    /// any number). Needed with `outbound_address`: no trunk calls everywhere by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_allow: Vec<String>,
}

fn credentials(
    what: &str,
    user: &Option<String>,
    password: &Option<Secret>,
) -> anyhow::Result<Option<sip::access::Credentials>> {
    match (user, password) {
        (None, None) => Ok(None),
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
            Ok(Some(sip::access::Credentials {
                username: u.clone(),
                password: p.expose().to_string(),
            }))
        }
        _ => anyhow::bail!("{what}: a user name needs a password and a password a user name"),
    }
}

impl SipTrunk {
    /// The gateway's form of the trunk, or what is wrong with it.
    pub fn to_trunk(&self) -> anyhow::Result<sip::access::Trunk> {
        let what = format!("sip_trunks: trunk {:?}", self.name);
        anyhow::ensure!(!self.name.is_empty(), "sip_trunks: a trunk needs a name");
        let networks = self
            .networks
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| anyhow::anyhow!("{what}: `{n}` is not a network or an address"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let auth = credentials(&what, &self.username, &self.password)?;
        anyhow::ensure!(
            !networks.is_empty() || auth.is_some(),
            "{what}: needs `networks` or `username` and `password` (else anyone could call as it)"
        );
        let outbound = match (&self.outbound_address, &self.outbound_number) {
            (None, None) => None,
            (Some(address), Some(from)) => {
                anyhow::ensure!(
                    !self.outbound_allow.is_empty(),
                    "{what}: `outbound_allow` is needed with `outbound_address`: the number \
                     prefixes calls through it may dial (e.g. [\"+1555\"]; [\"\"] for any number)"
                );
                Some(sip::access::OutboundTrunk {
                    address: address.clone(),
                    from: from.clone(),
                    auth: credentials(&what, &self.outbound_username, &self.outbound_password)?,
                    allow: self.outbound_allow.clone(),
                })
            }
            _ => anyhow::bail!("{what}: `outbound_address` and `outbound_number` go together"),
        };
        Ok(sip::access::Trunk {
            name: self.name.clone(),
            networks,
            numbers: self.numbers.clone(),
            auth,
            outbound,
        })
    }
}

/// A SIP user: a phone that authenticates with digest, may call in from anywhere, and
/// may REGISTER to be reached by outbound calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipUser {
    pub username: String,
    pub password: Secret,
}

impl SipUser {
    pub fn check(&self) -> anyhow::Result<()> {
        let ok = !self.username.is_empty()
            && self.username.len() <= 64
            && self
                .username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '_' | '.'));
        anyhow::ensure!(
            ok,
            "sip_users: `{}`: 1-64 of A-Z a-z 0-9 + - _ .",
            self.username
        );
        anyhow::ensure!(
            !self.password.is_empty(),
            "sip_users: `{}` needs a password",
            self.username
        );
        Ok(())
    }

    pub fn to_credentials(&self) -> sip::access::Credentials {
        sip::access::Credentials {
            username: self.username.clone(),
            password: self.password.expose().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip::dispatch::Action;

    #[test]
    fn a_rule_needs_exactly_one_action() {
        let rule: SipRule = toml::from_str("numbers = [\"100\"]\nroom = \"lobby\"").unwrap();
        assert_eq!(rule.to_rule().unwrap().action, Action::Room("lobby".into()));
        let rule: SipRule = toml::from_str("room_prefix = \"call-\"").unwrap();
        assert!(matches!(
            rule.to_rule().unwrap().action,
            Action::RoomPerCaller { .. }
        ));
        let rule: SipRule = toml::from_str("pins = { \"1234\" = \"board\" }").unwrap();
        assert_eq!(
            rule.to_rule().unwrap().action,
            Action::Pin {
                pins: vec![("1234".into(), "board".into())],
                tries: 3
            }
        );
        for bad in ["numbers = [\"1\"]", "room = \"a\"\nroom_prefix = \"b\""] {
            let rule: SipRule = toml::from_str(bad).unwrap();
            let e = rule.to_rule().unwrap_err().to_string();
            assert!(e.starts_with("sip_rules:"), "{e}");
        }
        assert!(
            toml::from_str::<SipRule>("rooms = \"typo\"").is_err(),
            "unknown keys refused"
        );
    }

    #[test]
    fn a_trunk_needs_networks_or_credentials_and_whole_outbound_settings() {
        let t: SipTrunk = toml::from_str(
            "name = \"p\"\nnetworks = [\"203.0.113.0/24\", \"198.51.100.7\"]\nnumbers = [\"+15550100\"]\n\
             outbound_address = \"sip.example:5060\"\noutbound_number = \"+15550100\"\n\
             outbound_allow = [\"+1555\", \"+44\"]",
        )
        .unwrap();
        let trunk = t.to_trunk().unwrap();
        assert_eq!(trunk.networks.len(), 2);
        assert!(trunk.networks[1].contains(&"198.51.100.7".parse::<std::net::IpAddr>().unwrap()));
        let out = trunk.outbound.unwrap();
        assert_eq!(out.from, "+15550100");
        assert!(out.may_call("+15550123") && out.may_call("+442079460000"));
        assert!(!out.may_call("+19005550100") && !out.may_call("15550123"));
        for (bad, why) in [
            ("name = \"p\"", "needs `networks`"),
            ("name = \"p\"\nnetworks = [\"nope\"]", "not a network"),
            ("name = \"p\"\nusername = \"u\"", "needs a password"),
            (
                "name = \"p\"\nnetworks = [\"10.0.0.0/8\"]\noutbound_address = \"x:5060\"",
                "go together",
            ),
            (
                "name = \"p\"\nnetworks = [\"10.0.0.0/8\"]\noutbound_address = \"x:5060\"\n\
                 outbound_number = \"+1\"",
                "`outbound_allow` is needed",
            ),
        ] {
            let t: SipTrunk = toml::from_str(bad).unwrap();
            let e = t.to_trunk().unwrap_err().to_string();
            assert!(
                e.starts_with("sip_trunks:") && e.contains(why),
                "{bad}: {e}"
            );
        }
        let u: SipUser = toml::from_str("username = \"alice\"\npassword = \"\"").unwrap();
        assert!(u.check().is_err());
        let u: SipUser = toml::from_str("username = \"al ice\"\npassword = \"x\"").unwrap();
        assert!(u.check().is_err());
    }
}

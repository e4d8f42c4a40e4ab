//! Who may call: SIP trunks (a provider's source networks, its numbers, optional digest
//! credentials) and SIP users (phones with a user name and password, which may also
//! REGISTER). A request from anywhere else is dropped without an answer, so that the
//! gateway is never a reflector for spoofed sources.
//!
//! Sans-IO: the request's facts and the clock come from the caller.

use std::net::IpAddr;

use ipnet::IpNet;
use rsipstack::sip::Method;

use crate::digest::{Digest, DigestError};

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The password is never printed.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where calls to a trunk's numbers go out (REST outbound calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTrunk {
    /// `host:port` of the provider's SIP server.
    pub address: String,
    /// Answers to the provider's 401/407 challenges.
    pub auth: Option<Credentials>,
    /// The caller number (From user part) of outbound calls.
    pub from: String,
    /// Number prefixes it may dial (`""` matches every number).
    pub allow: Vec<String>,
}

impl OutboundTrunk {
    /// Whether a call to `number` may go out through this trunk.
    pub fn may_call(&self, number: &str) -> bool {
        self.allow.iter().any(|p| number.starts_with(p.as_str()))
    }
}

/// A SIP trunk: a provider's calls in, and a way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    /// Source networks its INVITEs come from; empty: any source, which then needs `auth`.
    pub networks: Vec<IpNet>,
    /// Called numbers (request URI user parts) it may call; empty: any.
    pub numbers: Vec<String>,
    /// Inbound INVITEs are challenged (407) and must answer with these.
    pub auth: Option<Credentials>,
    pub outbound: Option<OutboundTrunk>,
}

impl Trunk {
    fn covers(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    fn takes(&self, called: &str) -> bool {
        self.numbers.is_empty() || self.numbers.iter().any(|n| n == called)
    }
}

/// The raw `Authorization` and `Proxy-Authorization` header values of a request.
pub fn authorization_headers(req: &rsipstack::sip::Request) -> (Option<String>, Option<String>) {
    use rsipstack::sip::Header;
    let find = |proxy: bool| {
        req.headers.iter().find_map(|h| match h {
            Header::Authorization(a) if !proxy => Some(a.value().to_string()),
            Header::ProxyAuthorization(a) if proxy => Some(a.value().to_string()),
            _ => None,
        })
    };
    (find(false), find(true))
}

/// The facts of one request that decide whether it is let in.
pub struct Request<'a> {
    pub method: &'a Method,
    /// The Request-URI (a digest answer must be computed over it).
    pub uri: &'a rsipstack::sip::Uri,
    pub source: IpAddr,
    /// The request URI's user part.
    pub called: &'a str,
    /// The From URI's user part.
    pub caller: &'a str,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The raw `Proxy-Authorization` header, if any.
    pub proxy_authorization: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// From trunk `n` (its index).
    Trunk(usize),
    /// An authenticated SIP user.
    User(String),
    /// No trunks and no users are configured: the gateway is open (development, or a
    /// gateway behind the operator's own SBC).
    Open,
    /// Answer 401 (`proxy: false`, `WWW-Authenticate`) or 407 (`Proxy-Authenticate`)
    /// with this challenge value.
    Challenge { proxy: bool, header: String },
    /// Credentials given and wrong: 403.
    Forbidden,
    /// A trunk's source, calling a number the trunk does not have: 404.
    NotFound,
    /// From no trunk's networks and no user: no answer at all.
    Drop,
}

pub struct Access {
    trunks: Vec<Trunk>,
    users: Vec<Credentials>,
    digest: Digest,
}

impl Access {
    pub fn new(trunks: Vec<Trunk>, users: Vec<Credentials>, secret: &[u8]) -> Self {
        Access {
            trunks,
            users,
            digest: Digest::new(secret),
        }
    }

    pub fn trunks(&self) -> &[Trunk] {
        &self.trunks
    }

    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    fn password_of(&self, user: &str) -> Option<String> {
        self.users
            .iter()
            .find(|u| u.username == user)
            .map(|u| u.password.clone())
    }

    /// No trunks and no users: anyone may call.
    pub fn is_open(&self) -> bool {
        self.trunks.is_empty() && self.users.is_empty()
    }

    /// Whether `ip` is in a trunk's networks.
    pub fn is_trunk_source(&self, ip: IpAddr) -> bool {
        self.trunks.iter().any(|t| t.covers(ip))
    }

    pub fn is_user(&self, user: &str) -> bool {
        self.password_of(user).is_some()
    }

    /// Whether `r` may go on, and as whom.
    pub fn admit(&self, r: &Request<'_>, now: u64) -> Admission {
        if self.trunks.is_empty() && self.users.is_empty() {
            return Admission::Open;
        }
        let by_source = self
            .trunks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.covers(r.source))
            .collect::<Vec<_>>();
        if !by_source.is_empty() {
            return match by_source.iter().find(|(_, t)| t.takes(r.called)) {
                Some((i, t)) => self.trunk_auth(*i, t, r, now),
                None => Admission::NotFound,
            };
        }
        // Trunks open to any source, with credentials (providers with changing addresses).
        if let Some((i, t)) = self
            .trunks
            .iter()
            .enumerate()
            .find(|(_, t)| t.networks.is_empty() && t.auth.is_some() && t.takes(r.called))
        {
            if r.proxy_authorization.is_some() || !self.is_user(r.caller) {
                return self.trunk_auth(i, t, r, now);
            }
        }
        if self.is_user(r.caller) || r.authorization.is_some() && !self.users.is_empty() {
            return self.settle(
                false,
                self.digest
                    .verify(r.authorization, r.method, r.uri, now, |u| {
                        self.password_of(u)
                    }),
                now,
                Admission::User,
            );
        }
        Admission::Drop
    }

    fn trunk_auth(&self, i: usize, t: &Trunk, r: &Request<'_>, now: u64) -> Admission {
        let Some(c) = &t.auth else {
            return Admission::Trunk(i);
        };
        let result = self
            .digest
            .verify(r.proxy_authorization, r.method, r.uri, now, |u| {
                (u == c.username).then(|| c.password.clone())
            });
        self.settle(true, result, now, |_| Admission::Trunk(i))
    }

    fn settle(
        &self,
        proxy: bool,
        result: Result<String, DigestError>,
        now: u64,
        ok: impl FnOnce(String) -> Admission,
    ) -> Admission {
        match result {
            Ok(user) => ok(user),
            Err(DigestError::Missing) => Admission::Challenge {
                proxy,
                header: self.digest.challenge(now, false),
            },
            Err(DigestError::Stale) => Admission::Challenge {
                proxy,
                header: self.digest.challenge(now, true),
            },
            Err(_) => Admission::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::dialog::authenticate::compute_digest;
    use rsipstack::sip::headers::auth::{Algorithm, AuthQop};

    fn trunk(networks: &[&str], numbers: &[&str], auth: Option<(&str, &str)>) -> Trunk {
        Trunk {
            name: "provider".into(),
            networks: networks.iter().map(|n| n.parse().unwrap()).collect(),
            numbers: numbers.iter().map(|n| n.to_string()).collect(),
            auth: auth.map(|(u, p)| Credentials {
                username: u.into(),
                password: p.into(),
            }),
            outbound: None,
        }
    }

    fn alice() -> Credentials {
        Credentials {
            username: "alice".into(),
            password: "secret".into(),
        }
    }

    /// The Request-URI of every request here (and the digest uri of every answer).
    static URI: std::sync::LazyLock<rsipstack::sip::Uri> =
        std::sync::LazyLock::new(|| rsipstack::sip::Uri::try_from("sip:100@gw").unwrap());

    fn req<'a>(source: &str, called: &'a str, caller: &'a str) -> Request<'a> {
        Request {
            method: &Method::Invite,
            uri: &URI,
            source: source.parse().unwrap(),
            called,
            caller,
            authorization: None,
            proxy_authorization: None,
        }
    }

    /// The answer a phone would give to `challenge`.
    fn answer(challenge: &str, user: &str, password: &str) -> String {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let uri = "sip:100@gw";
        let qop = AuthQop::Auth {
            cnonce: "c0ffee".into(),
            nc: 1,
        };
        let r = compute_digest(
            user,
            password,
            crate::digest::REALM,
            nonce,
            &Method::Invite,
            uri,
            Algorithm::Md5,
            Some(&qop),
        );
        format!(
            "Digest username=\"{user}\", realm=\"switchboard\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{r}\", qop=auth, nc=00000001, cnonce=\"c0ffee\""
        )
    }

    #[test]
    fn with_nothing_configured_the_gateway_is_open() {
        let a = Access::new(vec![], vec![], b"k");
        assert_eq!(a.admit(&req("192.0.2.1", "100", "x"), 0), Admission::Open);
    }

    #[test]
    fn a_trunk_admits_its_networks_and_numbers_and_nothing_else() {
        let a = Access::new(
            vec![trunk(&["10.1.0.0/16"], &["+15550100"], None)],
            vec![],
            b"k",
        );
        assert_eq!(
            a.admit(&req("10.1.2.3", "+15550100", "x"), 0),
            Admission::Trunk(0)
        );
        assert_eq!(
            a.admit(&req("10.1.2.3", "+15550199", "x"), 0),
            Admission::NotFound
        );
        assert_eq!(
            a.admit(&req("10.2.0.1", "+15550100", "x"), 0),
            Admission::Drop
        );
        assert_eq!(a.admit(&req("::1", "+15550100", "x"), 0), Admission::Drop);
    }

    #[test]
    fn a_trunk_with_credentials_challenges_with_407_then_admits_the_right_answer() {
        let a = Access::new(
            vec![trunk(&["127.0.0.0/8"], &[], Some(("prov", "pw")))],
            vec![],
            b"k",
        );
        let Admission::Challenge {
            proxy: true,
            header,
        } = a.admit(&req("127.0.0.1", "100", "x"), 50)
        else {
            panic!("no 407")
        };
        let good = answer(&header, "prov", "pw");
        let bad = answer(&header, "prov", "guess");
        let mut r = req("127.0.0.1", "100", "x");
        r.proxy_authorization = Some(&good);
        assert_eq!(a.admit(&r, 51), Admission::Trunk(0));
        r.proxy_authorization = Some(&bad);
        assert_eq!(a.admit(&r, 51), Admission::Forbidden);
        // The right answer, long after: stale, challenged again.
        r.proxy_authorization = Some(&good);
        assert!(
            matches!(a.admit(&r, 50 + 3_600), Admission::Challenge { proxy: true, header } if header.ends_with("stale=true"))
        );
    }

    #[test]
    fn users_are_challenged_with_401_from_anywhere_and_strangers_are_dropped() {
        let a = Access::new(
            vec![trunk(&["10.1.0.0/16"], &[], None)],
            vec![alice()],
            b"k",
        );
        let Admission::Challenge {
            proxy: false,
            header,
        } = a.admit(&req("192.0.2.7", "lobby", "alice"), 5)
        else {
            panic!("no 401")
        };
        let good = answer(&header, "alice", "secret");
        let mut r = req("192.0.2.7", "lobby", "alice");
        r.authorization = Some(&good);
        assert_eq!(a.admit(&r, 6), Admission::User("alice".into()));
        let wrong = answer(&header, "alice", "nope");
        r.authorization = Some(&wrong);
        assert_eq!(a.admit(&r, 6), Admission::Forbidden);
        assert_eq!(
            a.admit(&req("192.0.2.7", "lobby", "mallory"), 6),
            Admission::Drop
        );
    }

    #[test]
    fn a_trunk_open_to_any_source_needs_its_credentials() {
        let a = Access::new(
            vec![trunk(&[], &["200"], Some(("prov", "pw")))],
            vec![],
            b"k",
        );
        assert!(matches!(
            a.admit(&req("198.51.100.1", "200", "x"), 0),
            Admission::Challenge { proxy: true, .. }
        ));
        assert_eq!(
            a.admit(&req("198.51.100.1", "201", "x"), 0),
            Admission::Drop
        );
    }
}

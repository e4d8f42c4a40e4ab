//! SDES (RFC 4568): how an m-line's media is keyed. An offer in `RTP/SAVP` or
//! `RTP/SAVPF` carries its keys in `a=crypto` lines; we take the first line (the
//! offerer's preference) with a suite of [`crate::srtp`], one inline key and no MKI or
//! session parameters, and answer with its tag, its suite and a fresh key of ours. An
//! `RTP/AVP` m-line is plain RTP (crypto lines there are ignored). Anything else (DTLS-SRTP's
//! `UDP/TLS/RTP/SAVP`, a secure profile without a line we can use) cannot be answered:
//! the caller refuses the call (audio) or the m-line (video), with the reason counted.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::srtp::{KeySalt, Srtp, Suite, KEY_SALT_LEN};

/// The RTP profiles of an m-line we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Avp,
    Avpf,
    Savp,
    Savpf,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "RTP/AVP" => Some(Profile::Avp),
            "RTP/AVPF" => Some(Profile::Avpf),
            "RTP/SAVP" => Some(Profile::Savp),
            "RTP/SAVPF" => Some(Profile::Savpf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Avp => "RTP/AVP",
            Profile::Avpf => "RTP/AVPF",
            Profile::Savp => "RTP/SAVP",
            Profile::Savpf => "RTP/SAVPF",
        }
    }

    fn secure(self) -> bool {
        matches!(self, Profile::Savp | Profile::Savpf)
    }
}

/// One `a=crypto` line we can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    pub key: KeySalt,
}

impl Crypto {
    /// The value of an `a=crypto:` attribute (after the colon): the line, or why it
    /// cannot be used (a suite we lack is no error, just not ours).
    pub fn parse(value: &str) -> Result<Crypto, &'static str> {
        let mut f = value.split_whitespace();
        let tag = f
            .next()
            .filter(|t| (1..=9).contains(&t.len()))
            .and_then(|t| t.parse().ok())
            .ok_or("bad tag")?;
        let suite = f.next().and_then(Suite::from_name).ok_or("suite")?;
        let key_params = f.next().ok_or("no key")?;
        if f.next().is_some() {
            return Err("session parameters");
        }
        if key_params.contains(';') {
            return Err("several keys");
        }
        let inline = key_params.strip_prefix("inline:").ok_or("not inline")?;
        let mut parts = inline.split('|');
        let b64 = parts.next().unwrap_or_default();
        // A lifetime may follow; an MKI (`n:len`) would change every packet's layout.
        if parts.any(|p| p.contains(':')) {
            return Err("MKI");
        }
        let raw = STANDARD.decode(b64).map_err(|_| "bad base64")?;
        let key: [u8; KEY_SALT_LEN] = raw.try_into().map_err(|_| "key length")?;
        Ok(Crypto {
            tag,
            suite,
            key: KeySalt(key),
        })
    }
}

/// How an m-line of an offer asks to be keyed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keying {
    /// None: a profile we do not answer (or none read yet).
    pub profile: Option<Profile>,
    /// Its usable crypto lines, in its order.
    pub crypto: Vec<Crypto>,
    /// Why the first unusable line was not taken (for the refusal's reason).
    pub unusable: Option<&'static str>,
}

/// Our side of an SDES-keyed m-line: written into the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesAnswer {
    pub profile: Profile,
    pub tag: u32,
    pub suite: Suite,
    pub ours: KeySalt,
    /// The endpoint's key (a re-offer with another one rekeys what we receive).
    pub theirs: KeySalt,
}

impl SdesAnswer {
    /// The `a=crypto` line of the answer.
    pub fn attribute(&self) -> String {
        format!(
            "a=crypto:{} {} inline:{}\r\n",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.ours.0)
        )
    }

    pub fn srtp(&self) -> Srtp {
        Srtp::new(self.suite, &self.ours, &self.theirs)
    }
}

impl Keying {
    /// The m-line's profile (`m=` field 3).
    pub fn with_profile(profile: &str) -> Keying {
        Keying {
            profile: Profile::parse(profile),
            ..Keying::default()
        }
    }

    /// An attribute line of the m-line: its crypto line, if it is one.
    pub fn read(&mut self, line: &str) {
        let Some(value) = line.strip_prefix("a=crypto:") else {
            return;
        };
        match Crypto::parse(value) {
            Ok(c) => self.crypto.push(c),
            Err(why) => {
                self.unusable.get_or_insert(why);
            }
        }
    }

    /// Whether the m-line asks for SRTP.
    pub fn is_keyed(&self) -> bool {
        self.profile.is_some_and(Profile::secure)
    }

    /// Whether the m-line can be answered at all.
    pub fn acceptable(&self) -> Result<(), &'static str> {
        match self.profile {
            None => Err("profile"),
            Some(p) if p.secure() && self.crypto.is_empty() => {
                Err(self.unusable.unwrap_or("no crypto"))
            }
            Some(_) => Ok(()),
        }
    }

    /// Our answer: None for plain RTP; our key (`ours`, fresh) for the endpoint's first
    /// usable line; the reason when it cannot be answered.
    pub fn answer(&self, ours: KeySalt) -> Result<Option<SdesAnswer>, &'static str> {
        self.acceptable()?;
        let profile = self.profile.ok_or("profile")?;
        if !profile.secure() {
            return Ok(None);
        }
        let c = self.crypto.first().ok_or("no crypto")?;
        Ok(Some(SdesAnswer {
            profile,
            tag: c.tag,
            suite: c.suite,
            ours,
            theirs: c.key.clone(),
        }))
    }

    /// A re-offer on a keyed m-line: the line of our suite (its tag may have changed, its
    /// key too), or why the re-offer cannot keep the call keyed.
    pub fn reoffer(&self, current: &SdesAnswer) -> Result<&Crypto, &'static str> {
        self.acceptable()?;
        if !self.is_keyed() {
            return Err("plain re-offer of a keyed call");
        }
        self.crypto
            .iter()
            .find(|c| c.suite == current.suite)
            .ok_or("suite changed")
    }
}

/// A fresh master key and salt for our direction.
pub fn fresh_key() -> KeySalt {
    KeySalt(rand::random())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"; // 30 bytes

    fn keying(profile: &str, lines: &[&str]) -> Keying {
        let mut k = Keying::with_profile(profile);
        for l in lines {
            k.read(l);
        }
        k
    }

    #[test]
    fn the_first_usable_line_is_answered_with_its_tag_and_a_key_of_ours() {
        let k = keying(
            "RTP/SAVP",
            &[
                "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:xyz",
                &format!("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^20"),
                &format!("a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
            ],
        );
        let a = k.answer(KeySalt([5; 30])).unwrap().unwrap();
        assert_eq!((a.tag, a.suite), (2, Suite::AesCm128HmacSha1_32));
        assert_eq!(a.theirs.0.to_vec(), STANDARD.decode(KEY).unwrap());
        let line = a.attribute();
        assert!(
            line.starts_with("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
            "{line}"
        );
        let ours = line
            .trim_end()
            .strip_prefix("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:");
        assert_eq!(STANDARD.decode(ours.unwrap()).unwrap(), [5; 30]);
    }

    #[test]
    fn plain_profiles_ignore_crypto_and_others_are_refused() {
        let line = format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}");
        assert_eq!(
            keying("RTP/AVP", &[&line]).answer(KeySalt([0; 30])),
            Ok(None)
        );
        assert_eq!(keying("RTP/AVPF", &[]).answer(KeySalt([0; 30])), Ok(None));
        for (profile, lines, why) in [
            ("UDP/TLS/RTP/SAVP", &[][..], "profile"),
            ("RTP/SAVP", &[][..], "no crypto"),
            (
                "RTP/SAVPF",
                &["a=crypto:1 F8_128_HMAC_SHA1_80 inline:x"][..],
                "suite",
            ),
        ] {
            assert_eq!(
                keying(profile, lines).answer(KeySalt([0; 30])),
                Err(why),
                "{profile}"
            );
        }
    }

    #[test]
    fn malformed_keys_are_not_used() {
        let short = STANDARD.encode([1u8; 29]);
        for (value, why) in [
            ("x AES_CM_128_HMAC_SHA1_80 inline:a", "bad tag"),
            ("1234567890 AES_CM_128_HMAC_SHA1_80 inline:a", "bad tag"),
            ("1 AES_CM_128_HMAC_SHA1_80", "no key"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", "bad base64"),
            (
                &format!("1 AES_CM_128_HMAC_SHA1_80 inline:{short}"),
                "key length",
            ),
            (
                &format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),
                "MKI",
            ),
            (
                &format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY};inline:{KEY}"),
                "several keys",
            ),
            (
                &format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=1"),
                "session parameters",
            ),
            (
                &format!("1 AES_CM_128_HMAC_SHA1_80 uri:{KEY}"),
                "not inline",
            ),
        ] {
            assert_eq!(Crypto::parse(value), Err(why), "{value}");
            let k = keying("RTP/SAVP", &[&format!("a=crypto:{value}")]);
            assert_eq!(k.answer(KeySalt([0; 30])), Err(why));
        }
    }

    #[test]
    fn a_reoffer_keeps_the_suite_and_may_change_tag_and_key() {
        let first = keying(
            "RTP/SAVP",
            &[&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
        );
        let current = first.answer(fresh_key()).unwrap().unwrap();
        let other = STANDARD.encode([3u8; 30]);
        let again = keying(
            "RTP/SAVP",
            &[&format!(
                "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:{other}"
            )],
        );
        let c = again.reoffer(&current).unwrap();
        assert_eq!((c.tag, c.key.0), (7, [3u8; 30]));
        let plain = keying("RTP/AVP", &[]);
        assert!(plain.reoffer(&current).is_err());
        let other_suite = keying(
            "RTP/SAVP",
            &[&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}")],
        );
        assert_eq!(other_suite.reoffer(&current), Err("suite changed"));
    }

    #[test]
    fn keys_are_redacted_in_debug_output() {
        let k = keying(
            "RTP/SAVP",
            &[&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")],
        );
        let a = k.answer(fresh_key()).unwrap().unwrap();
        let printed = format!("{k:?} {a:?}");
        assert!(
            !printed.contains(KEY) && printed.contains("<redacted>"),
            "{printed}"
        );
    }
}

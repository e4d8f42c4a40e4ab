//! A configuration value that is a secret. It reads as a plain string (TOML, environment,
//! flags) and is shown — `Debug`, `Display`, `Serialize`, which is what `config print`,
//! logs and error messages use — only in a redacted form. Marking a field's type as
//! [`Secret`] is the one place that decides it is never printed; the value itself is
//! reached through [`Secret::expose`] where it is used.
//!
//! How much of a secret may be shown depends on what it is ([`Redaction`]): nothing
//! ([`Whole`]: passwords, the TURN secret), the key names of an API key list
//! ([`KeyNames`]: `prod:<redacted>`), or a URL without its password ([`UrlPassword`]:
//! `redis://:<redacted>@host:6379`).

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted value shows.
pub const REDACTED: &str = "<redacted>";

/// How a kind of secret is shown.
pub trait Redaction {
    fn shown(value: &str) -> String;
}

/// Nothing of the value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole;

impl Redaction for Whole {
    fn shown(_: &str) -> String {
        REDACTED.to_string()
    }
}

/// `key:secret[,key2:secret2]`: the key names are shown, the secrets are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyNames;

impl Redaction for KeyNames {
    fn shown(value: &str) -> String {
        value
            .split(',')
            .map(|p| format!("{}:{REDACTED}", p.split(':').next().unwrap_or("").trim()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A URL: shown with the password of its user information (if any) redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPassword;

impl Redaction for UrlPassword {
    fn shown(value: &str) -> String {
        redact_url(value)
    }
}

/// `scheme://user:password@host…` → `scheme://user:<redacted>@host…`; a URL without a
/// password is unchanged. Something that is not a URL is redacted whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return REDACTED.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:{REDACTED}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// `text` (an error from a library that was handed `url`) with the URL, and its password
/// wherever else it appears, redacted.
pub fn redact_in(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some(password) = password_of(url) {
        out = out.replace(password, REDACTED);
    }
    out
}

/// The password of a URL's user information, if it has one.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

/// A secret configuration value; `R` says how it is shown.
pub struct Secret<R: Redaction = Whole> {
    value: String,
    kind: PhantomData<R>,
}

impl<R: Redaction> Secret<R> {
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            value: value.into(),
            kind: PhantomData,
        }
    }

    /// The value itself, for where it is used (never for printing).
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl<R: Redaction> Clone for Secret<R> {
    fn clone(&self) -> Self {
        Secret::new(self.value.clone())
    }
}

impl<R: Redaction> PartialEq for Secret<R> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<R: Redaction> fmt::Debug for Secret<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", R::shown(&self.value))
    }
}

impl<R: Redaction> fmt::Display for Secret<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&R::shown(&self.value))
    }
}

impl<R: Redaction> Serialize for Secret<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&R::shown(&self.value))
    }
}

impl<'de, R: Redaction> Deserialize<'de> for Secret<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_shows_only_what_is_not_secret() {
        let pw: Secret = Secret::new("hunter2");
        assert_eq!(format!("{pw} {pw:?}"), "<redacted> \"<redacted>\"");
        let keys: Secret<KeyNames> = Secret::new("prod:0123456789abcdef, old:fedcba9876543210");
        assert_eq!(keys.to_string(), "prod:<redacted>,old:<redacted>");
        assert_eq!(keys.expose(), "prod:0123456789abcdef, old:fedcba9876543210");
        for (url, shown) in [
            (
                "redis://:hunter2@redis:6379/0",
                "redis://:<redacted>@redis:6379/0",
            ),
            (
                "rediss://sb:hunter2@redis:6380",
                "rediss://sb:<redacted>@redis:6380",
            ),
            ("redis://redis:6379", "redis://redis:6379"),
            (
                "redis+sentinel://:pw@s0:26379,s1:26379/primary",
                "redis+sentinel://:<redacted>@s0:26379,s1:26379/primary",
            ),
            (
                "redis://a:b@c@host:1/x?y",
                "redis://a:<redacted>@host:1/x?y",
            ),
            ("not a url hunter2", "<redacted>"),
        ] {
            let s: Secret<UrlPassword> = Secret::new(url);
            assert_eq!(s.to_string(), shown, "{url}");
        }
    }

    #[test]
    fn a_librarys_error_text_loses_the_url_and_its_password() {
        let url = "redis+sentinel://:hunter2@s0:1/p";
        let e = format!("{url}: no primary; auth hunter2 refused");
        assert_eq!(
            redact_in(&e, url),
            "redis+sentinel://:<redacted>@s0:1/p: no primary; auth <redacted> refused"
        );
    }

    #[test]
    fn it_reads_as_a_plain_string_and_serializes_redacted() {
        #[derive(Serialize, Deserialize)]
        struct C {
            password: Secret,
        }
        let c: C = toml::from_str("password = \"hunter2\"").unwrap();
        assert_eq!(c.password.expose(), "hunter2");
        let printed = toml::to_string(&c).unwrap();
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}

//! Parsed value types ("parse, don't validate"): each is constructed only through a fallible
//! `parse`, so code past the HTTP boundary never handles a raw, unchecked string.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

pub use crate::text::{check_visible, is_hidden_char};
use serde::Serialize;

/// Why a value was rejected; becomes a field entry of a 422 problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// A custom role's name: 1–64 characters of `a-z`, `0-9`, `-` and `_`, starting with a
/// letter, and not the name of a system role (role fields take names, so they must not be
/// ambiguous).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if name.len() > 64 {
            return Err(Invalid("must be at most 64 characters"));
        }
        let mut chars = name.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase())
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(Invalid(
                "must start with a lower-case letter and contain only a-z, 0-9, '-' and '_'",
            ));
        }
        if crate::SystemRole::parse(name).is_some() {
            return Err(Invalid("is the name of a system role"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid e-mail address in its one canonical form, so that addresses that
/// look alike are one address (one account, one invitation, one throttle key).
///
/// Confusables policy: the input is NFKC-normalised (fullwidth and other compatibility forms
/// fold to their plain letters: `ｊｏｅ＠example.com` is `joe@example.com`), trimmed and
/// lower-cased, and must then be ASCII. Letters of other scripts that look like Latin ones
/// (Cyrillic `е`, Greek `ο`, …) cannot be told apart on screen, so a new address containing
/// them is refused; an internationalised domain is accepted in its ASCII (`xn--…`) form.
/// Look-alikes within ASCII (`rn`/`m`, `l`/`1`) are distinct addresses, as they are for
/// every mail system.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why a non-ASCII address is refused (also how [`Email::parse_for_lookup`] recognises one).
const EMAIL_NOT_ASCII: &str = "must be written in ASCII: letters of other scripts that look \
    like Latin ones are not accepted (write an internationalised domain in its xn-- form)";

impl Email {
    pub const MAX_LEN: usize = 254;

    /// A new address, to store or to send to (registration, invitations, members).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::check_length(raw)?;
        let candidate = Self::fold(raw);
        if !candidate.is_ascii() {
            // Checked after the syntax, so that text which is no address at all says so.
            Self::syntax(candidate)?;
            return Err(Invalid(EMAIL_NOT_ASCII));
        }
        Self::syntax(candidate)
    }

    /// An address typed to find an existing account (sign-in, password reset). Folded like
    /// [`Email::parse`]; one that is still not ASCII afterwards is taken in the form
    /// addresses were stored in before the ASCII rule (trimmed and lower-cased), so accounts
    /// registered then keep signing in. Never store an address parsed this way.
    pub fn parse_for_lookup(raw: &str) -> Result<Self, Invalid> {
        match Self::parse(raw) {
            Err(Invalid(reason)) if reason == EMAIL_NOT_ASCII => {
                Self::syntax(raw.trim().to_lowercase())
            }
            other => other,
        }
    }

    /// An address someone else vouches for (an external identity provider's claim), taken
    /// only as written: it must already be canonical apart from letter case. Folding a
    /// look-alike there would let the provider's check of one mailbox stand for another.
    pub fn parse_as_written(raw: &str) -> Result<Self, Invalid> {
        let parsed = Self::parse(raw)?;
        if parsed.0 != raw.trim().to_lowercase() {
            return Err(Invalid("must be written in plain ASCII letters"));
        }
        Ok(parsed)
    }

    /// The folding of [`Email::parse`] without the checks: NFKC, trimmed, lower-cased. For
    /// text that is compared with addresses but need not be one (throttle keys).
    pub fn fold(raw: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        raw.nfkc().collect::<String>().trim().to_lowercase()
    }

    fn check_length(raw: &str) -> Result<(), Invalid> {
        // Before folding, so that folding never works on unbounded input (NFKC may expand a
        // character; a fullwidth letter is three bytes).
        if raw.len() > 4 * Self::MAX_LEN {
            return Err(Invalid("must be at most 254 characters"));
        }
        Ok(())
    }

    fn syntax(candidate: String) -> Result<Self, Invalid> {
        if candidate.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if candidate.len() > Self::MAX_LEN {
            return Err(Invalid("must be at most 254 characters"));
        }
        let parsed: email_address::EmailAddress = candidate
            .parse()
            .map_err(|_| Invalid("must be a valid e-mail address"))?;
        // Require a dotted domain: `user@localhost` is valid per RFC but never a real inbox
        // for a SaaS account, and accepting it invites typos.
        if !parsed.domain().contains('.') || parsed.domain().starts_with('[') {
            return Err(Invalid("must be a valid e-mail address"));
        }
        Ok(Self(candidate))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    // E-mail addresses are personal data: keep the domain for debugging, hide the mailbox.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once('@') {
            Some((_, domain)) => write!(f, "Email(***@{domain})"),
            None => write!(f, "Email(***)"),
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password that satisfies the password policy. The plaintext never appears in
/// `Debug` output or logs.
pub struct Password(SecretString);

/// Passwords so common that a length check alone would let them through.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password123",
    "passw0rd",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyui",
    "qwerty123",
    "qwertyuiop",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "abcd1234",
    "letmein1",
    "welcome1",
    "welcome123",
    "admin123",
    "administrator",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "starwars",
    "trustno1",
    "superman",
    "whatever",
    "changeme",
    "p@ssw0rd",
    "monkey123",
    "dragon123",
    "1q2w3e4r",
    "zaq12wsx",
    "asdfghjkl",
    "87654321",
    "secret123",
    "tenantry",
    "tenantry1",
];

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Upper bound keeps hashing cost bounded (argon2 cost grows with input length only
    /// mildly, but unbounded bodies are an easy denial of service).
    pub const MAX_BYTES: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(Invalid("must be at least 8 characters"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(Invalid("must be at most 256 bytes"));
        }
        let lowered = raw.to_lowercase();
        let distinct = {
            let mut chars: Vec<char> = lowered.chars().collect();
            chars.sort_unstable();
            chars.dedup();
            chars.len()
        };
        if distinct < 3 || COMMON_PASSWORDS.contains(&lowered.as_str()) {
            return Err(Invalid("is too common; choose a less guessable password"));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// A display name part (first or last name): trimmed, 1–100 characters, no control,
/// bidirectional or invisible characters (see [`check_visible`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Invalid("must not be empty"));
        }
        if trimmed.chars().count() > 100 {
            return Err(Invalid("must be at most 100 characters"));
        }
        check_visible(trimmed, false)?;
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A URL-safe identifier: 3–63 characters of `a-z`, `0-9` and inner `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        if s.len() < 3 || s.len() > 63 {
            return Err(Invalid("must be 3 to 63 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Invalid("may contain only a-z, 0-9 and '-'"));
        }
        if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
            return Err(Invalid("must not start or end with '-' or contain '--'"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A slug derived from a display name ("Acme Corp." → "acme-corp"), padded when the
    /// name has too few usable characters. The caller makes it unique.
    pub fn from_name(name: &str) -> Self {
        let mut out = String::with_capacity(name.len());
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
            if out.len() >= 48 {
                break;
            }
        }
        let mut out = out.trim_end_matches('-').to_owned();
        if out.len() < 3 {
            if !out.is_empty() {
                out.push('-');
            }
            out.push_str("tenant");
        }
        Self(out)
    }

    /// This slug with a numeric suffix, used to resolve collisions.
    pub fn with_suffix(&self, n: u32) -> Self {
        Self(format!("{}-{n}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_canonicalised() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "alice@example.com");
        assert_eq!(format!("{e:?}"), "Email(***@example.com)");
    }

    #[test]
    fn bad_emails_are_rejected() {
        for raw in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@localhost",
            "a b@example.com",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("password").is_err());
        assert!(Password::parse("PassWord123").is_err());
        assert!(Password::parse("aaaaaaaaaaaa").is_err());
        assert!(Password::parse(&"x1".repeat(200)).is_err());
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(p.expose(), "correct horse battery");
        assert_eq!(format!("{p:?}"), "Password([REDACTED])");
    }

    #[test]
    fn names() {
        assert_eq!(PersonName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse("a\u{0}b").is_err());
        assert!(PersonName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn slugs() {
        assert!(Slug::parse("acme-corp").is_ok());
        for raw in [
            "ab",
            "-acme",
            "acme-",
            "ac--me",
            "Acme",
            "acme_corp",
            &"a".repeat(64),
        ] {
            assert!(Slug::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert_eq!(Slug::from_name("Acme Corp.").as_str(), "acme-corp");
        assert_eq!(Slug::from_name("  Ü!").as_str(), "tenant");
        assert_eq!(Slug::from_name("AB").as_str(), "ab-tenant");
        assert!(Slug::parse(Slug::from_name(&"Long Name ".repeat(20)).as_str()).is_ok());
        assert_eq!(Slug::from_name("acme").with_suffix(2).as_str(), "acme-2");
    }
}

/// A JSON object of bounded size (settings, preferences).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct JsonObject(serde_json::Value);

impl JsonObject {
    pub const MAX_BYTES: usize = 16 * 1024;

    pub fn parse(value: serde_json::Value) -> Result<Self, Invalid> {
        if !value.is_object() {
            return Err(Invalid("must be a JSON object"));
        }
        if value.to_string().len() > Self::MAX_BYTES {
            return Err(Invalid("must be at most 16 KiB"));
        }
        Ok(Self(value))
    }

    pub fn empty() -> Self {
        Self(serde_json::Value::Object(serde_json::Map::new()))
    }

    pub fn into_inner(self) -> serde_json::Value {
        self.0
    }
}

/// A resource name (tenant, project, API key): trimmed, 1–100 characters, no control,
/// bidirectional or invisible characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ResourceName(String);

impl ResourceName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        PersonName::parse(raw).map(|n| Self(n.into_inner()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text of at most 2,000 characters; line breaks and tabs, but no other control,
/// bidirectional or invisible characters (see [`check_visible`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.chars().count() > 2000 {
            return Err(Invalid("must be at most 2000 characters"));
        }
        check_visible(raw, true)?;
        Ok(Self(raw.trim().to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod confusables_tests {
    use super::*;

    #[test]
    fn fullwidth_addresses_fold_to_ascii() {
        for raw in [
            "ｊｏｅ@example.com",
            "ＪＯＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ",
            " joe@example.com\u{3000}",
        ] {
            assert_eq!(
                Email::parse(raw).unwrap().as_str(),
                "joe@example.com",
                "{raw:?}"
            );
        }
        assert_eq!(Email::fold(" ＡＢ "), "ab");
    }

    #[test]
    fn look_alike_scripts_are_refused_and_say_why() {
        // Cyrillic а and е, Greek ο, a German umlaut in the domain.
        for raw in [
            "\u{0430}da@example.com",
            "joe@\u{0435}xample.com",
            "j\u{03BF}e@example.com",
            "joe@bücher.de",
        ] {
            let Err(Invalid(why)) = Email::parse(raw) else {
                panic!("{raw:?} accepted");
            };
            assert!(why.contains("ASCII"), "{raw:?}: {why}");
        }
        // Invisible characters are no address at all.
        assert!(Email::parse("jo\u{200B}e@example.com").is_err());
        // Internationalised domains in their ASCII form are fine.
        assert_eq!(
            Email::parse("joe@xn--bcher-kva.de").unwrap().as_str(),
            "joe@xn--bcher-kva.de"
        );
        // Not an address at all still says so, whatever the script.
        assert_eq!(
            Email::parse("\u{0430}\u{0431}\u{0432}"),
            Err(Invalid("must be a valid e-mail address"))
        );
    }

    #[test]
    fn lookups_find_accounts_stored_before_the_ascii_rule() {
        assert_eq!(
            Email::parse_for_lookup(" J\u{00D6}e@Example.com ")
                .unwrap()
                .as_str(),
            "j\u{00F6}e@example.com"
        );
        assert_eq!(
            Email::parse_for_lookup("ｊｏｅ@example.com")
                .unwrap()
                .as_str(),
            "joe@example.com"
        );
        assert!(Email::parse_for_lookup("not an address").is_err());
    }

    #[test]
    fn vouched_addresses_are_taken_only_as_written() {
        assert_eq!(
            Email::parse_as_written("Joe@Example.com").unwrap().as_str(),
            "joe@example.com"
        );
        assert!(Email::parse_as_written("ｊｏｅ@example.com").is_err());
        assert!(Email::parse_as_written("\u{0430}da@example.com").is_err());
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn json_objects_are_bounded() {
        assert!(JsonObject::parse(serde_json::json!({"a": 1})).is_ok());
        assert!(JsonObject::parse(serde_json::json!([1])).is_err());
        assert!(JsonObject::parse(serde_json::json!({"a": "x".repeat(17000)})).is_err());
        assert!(Description::parse(&"x".repeat(2001)).is_err());
        assert_eq!(
            ResourceName::parse(" Store 1 ").unwrap().as_str(),
            "Store 1"
        );
    }
}

//! The checks behind each setting, shared by request parsing and by reading stored values.

use serde_json::Value;

use super::{EVENT_RETENTION_DAYS, MAX_EMAIL_DOMAINS, SESSION_IDLE_TIMEOUT_MINUTES};

/// Why a value was refused: the whole field, or one item of a list.
pub(super) enum Refusal {
    Field(&'static str),
    Item(usize, &'static str),
}

/// `null` → `None` (reset); anything else through `parse`.
pub(super) fn nullable<T>(
    value: &Value,
    parse: fn(&Value) -> Result<T, Refusal>,
) -> Result<Option<T>, Refusal> {
    if value.is_null() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

fn integer_in(
    value: &Value,
    (min, max): (u64, u64),
    message: &'static str,
) -> Result<u32, Refusal> {
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(Refusal::Field(message))
}

pub(super) fn retention_days(value: &Value) -> Result<u32, Refusal> {
    integer_in(
        value,
        EVENT_RETENTION_DAYS,
        "must be a whole number of days between 1 and 3650",
    )
}

/// A stored `null` means "no idle timeout" (the default).
pub(super) fn idle_minutes(value: &Value) -> Result<Option<u32>, Refusal> {
    if value.is_null() {
        return Ok(None);
    }
    integer_in(
        value,
        SESSION_IDLE_TIMEOUT_MINUTES,
        "must be a whole number of minutes between 5 and 43200, or null",
    )
    .map(Some)
}

pub(super) fn locale(value: &Value) -> Result<String, Refusal> {
    value.as_str().and_then(parse_locale).ok_or(Refusal::Field(
        "must be a BCP 47 language tag such as en, en-GB, pt-BR or zh-Hant-TW",
    ))
}

/// Language (2–3 letters), optional script (4 letters), optional region (2 letters or 3
/// digits), optional variants (5–8 alphanumerics, or a digit and 3 alphanumerics), in
/// canonical case: `EN-latn-gb` → `en-Latn-GB`. Extensions and private use are refused.
pub fn parse_locale(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > 35 {
        return None;
    }
    let mut parts = raw.split('-').peekable();
    let language = parts.next()?;
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = language.to_ascii_lowercase();
    if let Some(script) =
        parts.next_if(|p| p.len() == 4 && p.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        let lower = script.to_ascii_lowercase();
        out.push('-');
        out.push_str(&lower[..1].to_ascii_uppercase());
        out.push_str(&lower[1..]);
    }
    if let Some(region) = parts.next_if(|p| {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_alphabetic()))
            || (p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()))
    }) {
        out.push('-');
        out.push_str(&region.to_ascii_uppercase());
    }
    for variant in parts {
        let alnum = variant.bytes().all(|b| b.is_ascii_alphanumeric());
        let long = (5..=8).contains(&variant.len());
        let short = variant.len() == 4 && variant.as_bytes()[0].is_ascii_digit();
        if !alnum || !(long || short) {
            return None;
        }
        out.push('-');
        out.push_str(&variant.to_ascii_lowercase());
    }
    Some(out)
}

pub(super) fn domains(value: &Value) -> Result<Vec<String>, Refusal> {
    let items = value
        .as_array()
        .ok_or(Refusal::Field("must be a list of domain names"))?;
    if items.len() > MAX_EMAIL_DOMAINS {
        return Err(Refusal::Field("must list at most 50 domains"));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let domain = item.as_str().and_then(parse_domain).ok_or(Refusal::Item(
            index,
            "must be a domain name such as example.com",
        ))?;
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

/// A DNS name with at least two labels (ASCII; internationalised names in their `xn--`
/// form), lower-cased; a leading `@` is tolerated (`@example.com`).
pub fn parse_domain(raw: &str) -> Option<String> {
    let domain = raw.trim().trim_start_matches('@').to_ascii_lowercase();
    if domain.is_empty() || domain.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_digit()));
    (labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok).then_some(domain)
}

/// Whether a stored key is a known setting with a valid value.
pub(super) fn is_valid(key: &str, value: &Value) -> bool {
    match key {
        "event_retention_days" => retention_days(value).is_ok(),
        "default_locale" => locale(value).is_ok(),
        "session_idle_timeout_minutes" => idle_minutes(value).is_ok(),
        "allowed_email_domains" => domains(value).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_are_checked_and_canonicalised() {
        for (raw, canonical) in [
            ("en", "en"),
            ("EN-gb", "en-GB"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("sl-rozaj-biske", "sl-rozaj-biske"),
            ("de-CH-1996", "de-CH-1996"),
        ] {
            assert_eq!(parse_locale(raw).as_deref(), Some(canonical), "{raw}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en_GB",
            "en-",
            "en-GBR",
            "en-x-private",
            "12",
            "en-US-a",
        ] {
            assert_eq!(parse_locale(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn domains_are_checked_and_normalised() {
        assert_eq!(
            parse_domain(" @Example.COM ").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            parse_domain("xn--bcher-kva.ch").as_deref(),
            Some("xn--bcher-kva.ch")
        );
        for bad in [
            "localhost",
            "-a.com",
            "a-.com",
            "a..com",
            "a.123",
            "a b.com",
            "ex_ample.com",
            "",
        ] {
            assert_eq!(parse_domain(bad), None, "{bad:?} accepted");
        }
        assert_eq!(parse_domain(&format!("{}.com", "a".repeat(64))), None);
    }
}

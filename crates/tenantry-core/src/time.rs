//! Timestamp text on the hot paths, without `core::fmt`.
//!
//! chrono writes RFC 3339 through `fmt::Write` one character at a time, and serde_json's
//! `collect_str` escapes each of those characters separately: on a list of 20 projects that
//! was about a quarter of the server's instructions. These functions write the same bytes
//! into a stack buffer and hand serde one string. Anything outside the common case (years
//! outside 0000–9999, leap seconds) goes to chrono, so the output never differs from it.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::Serializer;

/// The longest text written: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_LEN: usize = 30;

/// How many fractional-second digits to write.
#[derive(Clone, Copy)]
enum Fraction {
    /// chrono's `SecondsFormat::AutoSi`: none, 3, 6 or 9 digits, whichever shows every
    /// non-zero digit (what `DateTime<Utc>`'s `Serialize` writes).
    AutoSi,
    /// Always 6 digits (the SQLite storage form, `%Y-%m-%dT%H:%M:%S%.6fZ`).
    Micros,
}

struct Text {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl Text {
    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    /// `value` as exactly `width` decimal digits (`value` must fit).
    fn digits(&mut self, mut value: u32, width: usize) {
        let end = self.len + width;
        for slot in self.buf[self.len..end].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len = end;
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// `None` when chrono must write it (year outside 0–9999, or a leap second).
fn encode(t: &DateTime<Utc>, fraction: Fraction) -> Option<Text> {
    // Once, not per field: `DateTime`'s accessors each re-derive the local date-time.
    let naive = t.naive_utc();
    let (date, time) = (naive.date(), naive.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let nano = time.nanosecond();
    if nano >= 1_000_000_000 {
        return None;
    }
    let mut text = Text {
        buf: [0; MAX_LEN],
        len: 0,
    };
    text.digits(year, 4);
    text.push(b'-');
    text.digits(date.month(), 2);
    text.push(b'-');
    text.digits(date.day(), 2);
    text.push(b'T');
    text.digits(time.hour(), 2);
    text.push(b':');
    text.digits(time.minute(), 2);
    text.push(b':');
    text.digits(time.second(), 2);
    match fraction {
        Fraction::Micros => {
            text.push(b'.');
            text.digits(nano / 1_000, 6);
        }
        Fraction::AutoSi if nano == 0 => {}
        Fraction::AutoSi if nano % 1_000_000 == 0 => {
            text.push(b'.');
            text.digits(nano / 1_000_000, 3);
        }
        Fraction::AutoSi if nano % 1_000 == 0 => {
            text.push(b'.');
            text.digits(nano / 1_000, 6);
        }
        Fraction::AutoSi => {
            text.push(b'.');
            text.digits(nano, 9);
        }
    }
    text.push(b'Z');
    Some(text)
}

/// Serialises a timestamp exactly as `DateTime<Utc>`'s own `Serialize` does (RFC 3339,
/// `Z`, only the non-zero sub-second digits), for `#[serde(serialize_with = …)]`.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match encode(t, Fraction::AutoSi) {
        Some(text) => serializer.serialize_str(text.as_str()),
        None => serde::Serialize::serialize(t, serializer),
    }
}

/// [`serialize`] for optional timestamps (`null` when absent).
pub fn serialize_opt<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, serializer),
        None => serializer.serialize_none(),
    }
}

/// The storage form on SQLite: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width, so text order is
/// time order).
pub fn storage_text(t: &DateTime<Utc>) -> String {
    match encode(t, Fraction::Micros) {
        Some(text) => text.as_str().to_owned(),
        None => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    }
}

/// Parses the storage form written by [`storage_text`]; `None` for any other text (callers
/// fall back to a general RFC 3339 parser).
pub fn parse_storage_text(text: &[u8]) -> Option<DateTime<Utc>> {
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        mo0,
        mo1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        mi0,
        mi1,
        b':',
        s0,
        s1,
        b'.',
        f0,
        f1,
        f2,
        f3,
        f4,
        f5,
        b'Z',
    ] = *text
    else {
        return None;
    };
    let num = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(&[y0, y1, y2, y3])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(&[mo0, mo1])?, num(&[d0, d1])?)?;
    let time = date.and_hms_micro_opt(
        num(&[h0, h1])?,
        num(&[mi0, mi1])?,
        num(&[s0, s1])?,
        num(&[f0, f1, f2, f3, f4, f5])?,
    )?;
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    fn samples() -> Vec<DateTime<Utc>> {
        let base = |y, nano| {
            NaiveDate::from_ymd_opt(y, 3, 7)
                .and_then(|d| d.and_hms_nano_opt(4, 5, 6, nano))
                .map(|t| t.and_utc())
                .unwrap()
        };
        let mut out = vec![
            crate::now(),
            Utc::now(),
            Utc.timestamp_opt(0, 0).unwrap(),
            base(2026, 0),
            base(2026, 120_000_000),
            base(2026, 123_000),
            base(2026, 123_456_000),
            base(2026, 123_456_789),
            base(2026, 1_000),
            base(2026, 1),
            base(2026, 999_999_999),
            NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                .map(|t| t.and_utc())
                .unwrap(), // leap second
            base(0, 5_000),
            base(999, 5_000),
            base(9999, 5_000),
            base(10_000, 5_000),
            base(-1, 5_000),
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
        ];
        let mut t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        for i in 0..2000_i64 {
            t += chrono::TimeDelta::microseconds(i * 7_919_113 + 1);
            out.push(t);
        }
        out
    }

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    #[test]
    fn serialises_exactly_like_chrono() {
        for t in samples() {
            assert_eq!(
                serde_json::to_string(&Ours(t)).unwrap(),
                serde_json::to_string(&t).unwrap(),
                "{t:?}"
            );
        }
    }

    #[test]
    fn storage_text_matches_the_format_string_and_parses_back() {
        for t in samples() {
            let text = storage_text(&t);
            assert_eq!(text, t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            let micros = t.timestamp_micros();
            let parsed = parse_storage_text(text.as_bytes());
            if (0..=9999).contains(&t.year()) && t.nanosecond() < 1_000_000_000 {
                assert_eq!(parsed.map(|p| p.timestamp_micros()), Some(micros), "{text}");
                let general = DateTime::parse_from_rfc3339(&text).unwrap();
                assert_eq!(parsed, Some(general.with_timezone(&Utc)));
            }
        }
    }

    #[test]
    fn other_text_is_left_to_the_general_parser() {
        for text in [
            "",
            "2026-03-07T04:05:06Z",
            "2026-03-07T04:05:06.123456+00:00",
            "2026-03-07 04:05:06.123456Z",
            "2026-13-07T04:05:06.123456Z",
            "2026-02-30T04:05:06.123456Z",
            "2026-03-07T24:05:06.123456Z",
            "2026-03-07T04:05:06.12345xZ",
            "+026-03-07T04:05:06.123456Z",
        ] {
            assert_eq!(parse_storage_text(text.as_bytes()), None, "{text}");
        }
    }
}

//! Does the content look like the MIME type the client declared? The first bytes of an
//! upload ([`crate::PutOutcome::head`]) are matched against magic numbers (`infer`) and, for
//! textual types, checked to be text. The declared type is what is stored and served; this
//! check only refuses uploads whose bytes contradict it (a "PDF" that is an executable).

use std::fmt;

/// A declared MIME type, normalised to its lowercase essence (`type/subtype`, parameters
/// such as `; charset=utf-8` dropped).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MimeType(String);

/// A string that is not a MIME type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MIME type (type/subtype)")]
pub struct InvalidMime(pub String);

/// The content contradicts the declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the content does not match the declared type {declared}{}", detected_suffix(.detected))]
pub struct Mismatch {
    pub declared: MimeType,
    /// What the magic bytes say it is, when they say anything.
    pub detected: Option<&'static str>,
}

fn detected_suffix(detected: &Option<&'static str>) -> String {
    detected.map_or_else(String::new, |d| format!(" (it looks like {d})"))
}

pub const OCTET_STREAM: &str = "application/octet-stream";

impl MimeType {
    pub fn parse(value: &str) -> Result<Self, InvalidMime> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 127
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        match essence.split_once('/') {
            Some((kind, sub)) if token(kind) && token(sub) => Ok(Self(essence)),
            _ => Err(InvalidMime(value.to_owned())),
        }
    }

    pub fn octet_stream() -> Self {
        Self(OCTET_STREAM.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_textual(&self) -> bool {
        let m = self.0.as_str();
        m.starts_with("text/")
            || m.ends_with("+json")
            || m.ends_with("+xml")
            || matches!(
                m,
                "application/json"
                    | "application/xml"
                    | "application/javascript"
                    | "application/x-ndjson"
                    | "application/csv"
                    | "application/yaml"
                    | "application/x-yaml"
                    | "application/toml"
                    | "application/sql"
            )
    }

    fn is_json(&self) -> bool {
        self.0 == "application/json" || self.0.ends_with("+json")
    }
}

impl fmt::Display for MimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `head` (the first bytes of the content, the whole content when shorter) against
/// the declared type:
///
/// * `application/octet-stream` accepts anything.
/// * When the magic bytes name a type, it must be the declared one (or a container of it:
///   OOXML/ODF/EPUB are ZIP files, old Office files are OLE storage, SVG is XML).
/// * Textual types (`text/*`, JSON, XML, CSV, YAML, …) need text: UTF-8 without NUL bytes
///   (a sequence cut at the end of `head` is fine), and for JSON a plausible first character.
///   HTML is recognised and must be declared as `text/html`.
/// * A type `infer` knows how to recognise (PNG, PDF, …) whose magic is absent is refused.
/// * Anything else is accepted: nothing contradicts it.
pub fn check(declared: &MimeType, head: &[u8]) -> Result<(), Mismatch> {
    let mismatch = |detected| Mismatch {
        declared: declared.clone(),
        detected,
    };
    if declared.as_str() == OCTET_STREAM {
        return Ok(());
    }
    match infer::get(head).map(|t| t.mime_type()) {
        Some(detected) => {
            if compatible(declared, detected) {
                Ok(())
            } else {
                Err(mismatch(Some(detected)))
            }
        }
        None if declared.is_textual() => {
            if looks_like_text(head) && (!declared.is_json() || looks_like_json(head)) {
                Ok(())
            } else {
                Err(mismatch(None))
            }
        }
        None if infer::is_mime_supported(canonical(declared.as_str())) => Err(mismatch(None)),
        None => Ok(()),
    }
}

/// Common aliases → the name `infer` uses.
fn canonical(mime: &str) -> &str {
    match mime {
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "image/x-icon" => "image/vnd.microsoft.icon",
        "image/x-png" => "image/png",
        "audio/wav" | "audio/wave" | "audio/vnd.wave" => "audio/x-wav",
        "audio/mp3" => "audio/mpeg",
        "audio/flac" => "audio/x-flac",
        "audio/aiff" => "audio/x-aiff",
        "video/avi" => "video/x-msvideo",
        "video/x-mkv" => "video/x-matroska",
        "application/x-zip-compressed" | "application/x-zip" => "application/zip",
        "application/x-gzip" => "application/gzip",
        "application/x-rar-compressed" => "application/vnd.rar",
        "application/x-sqlite3" => "application/vnd.sqlite3",
        "font/woff" => "application/font-woff",
        "font/ttf" | "font/otf" | "font/sfnt" => "application/font-sfnt",
        "text/rtf" => "application/rtf",
        "application/xml" | "image/svg+xml" => "text/xml",
        other => other,
    }
}

fn compatible(declared: &MimeType, detected: &str) -> bool {
    let declared = canonical(declared.as_str());
    if declared == detected {
        return true;
    }
    match detected {
        // ZIP containers: office documents, e-books, archives of the declared kind.
        "application/zip" => {
            declared.starts_with("application/vnd.openxmlformats-officedocument.")
                || declared.starts_with("application/vnd.oasis.opendocument.")
                || declared.ends_with("+zip")
                || matches!(
                    declared,
                    "application/java-archive" | "application/vnd.android.package-archive"
                )
        }
        // Specific ZIP-based formats declared as plain ZIP.
        d if declared == "application/zip"
            && (d.starts_with("application/vnd.openxmlformats-officedocument.")
                || d.starts_with("application/vnd.oasis.opendocument.")
                || d.ends_with("+zip")) =>
        {
            true
        }
        "application/x-ole-storage" => matches!(
            declared,
            "application/msword"
                | "application/vnd.ms-excel"
                | "application/vnd.ms-powerpoint"
                | "application/vnd.ms-outlook"
                | "application/vnd.visio"
        ),
        // XML: any XML-based declared type (SVG, Atom, …); HTML and scripts are text.
        "text/xml" => declared.ends_with("+xml") || declared == "text/plain",
        "text/x-shellscript" => {
            matches!(declared, "text/plain" | "application/x-sh" | "text/x-sh")
        }
        _ => false,
    }
}

fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut in the middle of a character at the end of the sniffed prefix.
        Err(e) => e.error_len().is_none(),
    }
}

fn looks_like_json(head: &[u8]) -> bool {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        None => true,
        Some(b) => matches!(
            b,
            b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises() {
        let m = MimeType::parse(" Text/Plain; charset=UTF-8").unwrap();
        assert_eq!(m.as_str(), "text/plain");
        for bad in ["", "text", "text/", "/plain", "te xt/plain", "a/b/c"] {
            assert!(MimeType::parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! `Content-Disposition: attachment` with a user's file name, safe to put in a header.

use std::fmt::Write;

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
/// Quotes, backslashes, control characters and path separators never reach the header;
/// the fallback replaces every non-ASCII or unsafe character with `_`.
pub fn attachment(filename: &str) -> String {
    let name: String = filename
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '/' | '\\') { '_' } else { c })
        .collect();
    let name = name.trim();
    let name = if name.is_empty() { "download" } else { name };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        // RFC 5987 attr-char
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            attachment("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            attachment("Résumé \"final\".pdf"),
            "attachment; filename=\"R_sum_ _final_.pdf\"; \
             filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert_eq!(
            attachment("../../etc/passwd\r\nX: y"),
            "attachment; filename=\".._.._etc_passwdX: y\"; \
             filename*=UTF-8''.._.._etc_passwdX%3A%20y"
        );
        assert_eq!(
            attachment("  "),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
    }
}

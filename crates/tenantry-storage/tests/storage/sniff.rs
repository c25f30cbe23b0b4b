//! Declared MIME type against the content's first bytes.

use tenantry_storage::sniff::{MimeType, check};

fn verdict(declared: &str, content: &[u8]) -> Result<(), Option<&'static str>> {
    check(&MimeType::parse(declared).unwrap(), content).map_err(|m| m.detected)
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
/// An ELF header (64 bytes: `infer` needs more than 52).
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0\
    \0\x10\x40\0\0\0\0\0\x40\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x40\0\x38\0\x01\0\x40\0\0\0\0\0";
const ZIP: &[u8] =
    b"PK\x03\x04\x14\0\0\0\x08\0\0\0!\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x08\0\0\0data.bin";

#[test]
fn matching_magic_is_accepted() {
    assert_eq!(verdict("image/png", PNG), Ok(()));
    assert_eq!(verdict("application/pdf", PDF), Ok(()));
    assert_eq!(verdict("image/jpeg", JPEG), Ok(()));
    assert_eq!(verdict("image/jpg", JPEG), Ok(()), "alias");
    assert_eq!(
        verdict("IMAGE/PNG; name=x", PNG),
        Ok(()),
        "case and parameters"
    );
    assert_eq!(verdict("application/zip", ZIP), Ok(()));
    assert_eq!(
        verdict(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ZIP
        ),
        Ok(()),
        "OOXML is a ZIP container"
    );
}

#[test]
fn contradicting_magic_is_a_mismatch() {
    assert_eq!(
        verdict("application/pdf", ELF),
        Err(Some("application/x-executable"))
    );
    assert_eq!(verdict("image/png", JPEG), Err(Some("image/jpeg")));
    assert_eq!(verdict("text/plain", PNG), Err(Some("image/png")));
    assert_eq!(
        verdict("application/json", PDF),
        Err(Some("application/pdf"))
    );
    assert_eq!(
        verdict("application/x-custom", ELF),
        Err(Some("application/x-executable"))
    );
    assert_eq!(
        verdict(
            "text/plain",
            b"<!DOCTYPE html><html><script>alert(1)</script>"
        ),
        Err(Some("text/html")),
        "HTML must be declared as HTML"
    );
}

#[test]
fn missing_magic_of_a_recognisable_type_is_a_mismatch() {
    assert_eq!(verdict("image/png", b"just some text"), Err(None));
    assert_eq!(verdict("application/pdf", b""), Err(None));
}

#[test]
fn octet_stream_accepts_anything() {
    for content in [ELF, PNG, b"text".as_slice(), b""] {
        assert_eq!(verdict("application/octet-stream", content), Ok(()));
    }
}

#[test]
fn textual_types_need_text() {
    assert_eq!(verdict("text/plain", "héllo wörld\n".as_bytes()), Ok(()));
    assert_eq!(verdict("text/plain", b""), Ok(()));
    assert_eq!(verdict("text/csv", b"id,name\n1,\"Ada\"\n"), Ok(()));
    assert_eq!(
        verdict("text/csv; charset=utf-8", b"\xEF\xBB\xBFa,b\n"),
        Ok(()),
        "BOM"
    );
    assert_eq!(verdict("application/json", b"  {\"a\": [1, 2]}"), Ok(()));
    assert_eq!(verdict("application/json", b"[]"), Ok(()));
    assert_eq!(verdict("application/vnd.api+json", b"{}"), Ok(()));
    assert_eq!(verdict("application/json", b"id,name\n"), Err(None));
    assert_eq!(verdict("text/plain", b"abc\0def"), Err(None), "NUL byte");
    assert_eq!(
        verdict("text/csv", b"\xff\xfe\xfa invalid"),
        Err(None),
        "not UTF-8"
    );
    // A multi-byte character cut by the end of the sniffed prefix is still text.
    let mut cut = "a".repeat(10).into_bytes();
    cut.extend_from_slice(&"é".as_bytes()[..1]);
    assert_eq!(verdict("text/plain", &cut), Ok(()));
    assert_eq!(
        verdict(
            "image/svg+xml",
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"
        ),
        Ok(())
    );
}

#[test]
fn unknown_types_without_contradiction_are_accepted() {
    assert_eq!(
        verdict("application/x-custom", b"\x01\x02\x03 custom format"),
        Ok(())
    );
}

#[test]
fn malformed_declarations_are_rejected() {
    for bad in ["", "png", "image/", "image png", "text/plain/extra"] {
        assert!(MimeType::parse(bad).is_err(), "{bad:?}");
    }
}

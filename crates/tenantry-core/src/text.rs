//! What user-supplied display text may contain. One check, used by every value type that
//! holds text shown to other people (names, descriptions, file names), so that text cannot
//! pretend to be something else on screen.

/// Characters that change how the text around them is displayed, or display as nothing:
/// C0 and C1 controls, bidirectional embeddings, overrides, isolates and marks (a
/// right-to-left override makes `evil\u{202E}fdp.exe` read `evilexe.pdf`), zero-width
/// spaces and word joiners that hide inside words, invisible operators, tag characters and
/// blank fillers. Zero-width (non-)joiners U+200C/U+200D stay allowed: Persian and Indic names and
/// emoji sequences need them.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}' // soft hyphen
                | '\u{034F}' // combining grapheme joiner
                | '\u{061C}' // Arabic letter mark
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
                | '\u{180E}' // Mongolian vowel separator
                | '\u{200B}' // zero-width space
                | '\u{200E}' | '\u{200F}' // left-to-right and right-to-left marks
                | '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{202A}'..='\u{202E}' // embeddings, pop, overrides
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{2066}'..='\u{2069}' // isolates
                | '\u{206A}'..='\u{206F}' // deprecated format controls
                | '\u{FEFF}' // zero-width no-break space (byte order mark)
                | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
                | '\u{E0000}'..='\u{E007F}' // tag characters
        )
}

/// The shared check of every user-supplied display text (names, descriptions, file names):
/// no [hidden characters](is_hidden_char). Multi-line text may keep line breaks and tabs.
pub fn check_visible(text: &str, multi_line: bool) -> Result<(), crate::values::Invalid> {
    let allowed = |c: char| multi_line && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| is_hidden_char(c) && !allowed(c)) {
        return Err(crate::values::Invalid(
            "must not contain control, bidirectional or invisible formatting characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Invalid;

    #[test]
    fn hidden_characters_are_refused_in_display_text() {
        for hidden in [
            '\u{202E}',
            '\u{202A}',
            '\u{2066}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{2060}',
            '\u{0007}',
            '\u{0085}',
            '\u{3164}',
            '\u{E0041}',
        ] {
            let text = format!("Ada{hidden}Lovelace");
            assert!(
                crate::PersonName::parse(&text).is_err(),
                "{hidden:?} in a name"
            );
            assert!(
                crate::ResourceName::parse(&text).is_err(),
                "{hidden:?} in a resource name"
            );
            assert!(
                crate::Description::parse(&text).is_err(),
                "{hidden:?} in a description"
            );
            assert!(check_visible(&text, false).is_err());
        }
        let Err(Invalid(why)) = crate::PersonName::parse("evil\u{202E}fdp.exe") else {
            panic!("RLO accepted");
        };
        assert!(why.contains("bidirectional"), "{why}");
        // Real names in every script, with the joiners they need, are fine.
        for name in [
            "Zoë",
            "Łukasz",
            "محمد",
            "نرگس\u{200C}ها",
            "李小龙",
            "Ἀθηνᾶ",
            "👩\u{200D}💻",
        ] {
            assert!(crate::PersonName::parse(name).is_ok(), "{name:?}");
        }
        // Descriptions keep their line breaks; names do not.
        assert!(crate::Description::parse("line one\nline two\tend").is_ok());
        assert!(crate::PersonName::parse("line one\nline two").is_err());
    }
}

//! Rules for text a person types: notes and device or patient labels.

use crate::error::ValidationError;

/// Longest device or patient label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// Refuses control characters other than line breaks and tabs: a NUL, for one, cannot be
/// stored in every database a diary travels through, and none of them belongs in a note.
pub fn check_plain_text(text: &str) -> Result<(), String> {
    match text.chars().position(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        Some(at) => Err(format!(
            "holds a control character (U+{:04X}) at position {at}; only line breaks and tabs are allowed",
            text.chars().nth(at).map_or(0, u32::from)
        )),
        None => Ok(()),
    }
}

/// Refuses a label longer than [`MAX_LABEL_CHARS`] or holding control characters; `field`
/// names it in the error (`label`, `--label`).
pub fn check_label(label: Option<&str>, field: &str) -> Result<(), ValidationError> {
    let chars = label.map_or(0, |l| l.chars().count());
    if chars > MAX_LABEL_CHARS {
        return Err(ValidationError::new(
            field,
            format!("is {chars} characters; at most {MAX_LABEL_CHARS} are allowed"),
        ));
    }
    label
        .map_or(Ok(()), check_plain_text)
        .map_err(|reason| ValidationError::new(field, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_plain() {
        assert!(check_label(None, "label").is_ok());
        assert!(check_label(Some("phone\tof J."), "label").is_ok());
        let long = "a".repeat(MAX_LABEL_CHARS + 1);
        assert_eq!(
            check_label(Some(&long), "--label").unwrap_err().to_string(),
            "--label: is 201 characters; at most 200 are allowed"
        );
        assert_eq!(
            check_label(Some("a\u{0}"), "label").unwrap_err().to_string(),
            "label: holds a control character (U+0000) at position 1; only line breaks and tabs are allowed"
        );
    }
}

//! Bounded free text for names, labels and short system fields.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// Trimmed text of 1..=MAX characters without control characters (newlines are allowed only where `allow_newlines`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BoundedText(String);

impl BoundedText {
    pub fn parse(raw: &str, max: usize) -> Result<BoundedText, TextError> {
        Self::parse_with(raw, max, false)
    }

    pub fn parse_multiline(raw: &str, max: usize) -> Result<BoundedText, TextError> {
        Self::parse_with(raw, max, true)
    }

    fn parse_with(raw: &str, max: usize, allow_newlines: bool) -> Result<BoundedText, TextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TextError::Empty);
        }
        if trimmed.chars().count() > max {
            return Err(TextError::TooLong { max });
        }
        let forbidden = |c: char| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t'));
        if trimmed.chars().any(forbidden) {
            return Err(TextError::ControlCharacter);
        }
        Ok(BoundedText(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

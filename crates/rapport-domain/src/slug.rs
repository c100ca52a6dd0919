//! Machine keys chosen by people: workspace slugs, stage keys, lead status keys, custom field keys.

use std::fmt;

use thiserror::Error;

/// Lower-case ASCII letters, digits and underscores, starting with a letter, 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SlugError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most 64 characters")]
    TooLong,
    #[error("must start with a lower-case letter and contain only a-z, 0-9 and _")]
    InvalidCharacter,
}

impl Slug {
    pub fn parse(raw: &str) -> Result<Slug, SlugError> {
        if raw.is_empty() {
            return Err(SlugError::Empty);
        }
        if raw.len() > 64 {
            return Err(SlugError::TooLong);
        }
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        if !first_ok || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(SlugError::InvalidCharacter);
        }
        Ok(Slug(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
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
    fn slugs() {
        assert!(Slug::parse("mql").is_ok());
        assert!(Slug::parse("budget_2026").is_ok());
        assert_eq!(Slug::parse(""), Err(SlugError::Empty));
        assert_eq!(Slug::parse("2fast"), Err(SlugError::InvalidCharacter));
        assert_eq!(Slug::parse("Budget"), Err(SlugError::InvalidCharacter));
        assert_eq!(Slug::parse("预算"), Err(SlugError::InvalidCharacter));
    }
}

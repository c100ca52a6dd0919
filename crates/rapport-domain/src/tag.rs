//! The tag library: a tree of at most four levels, addressed by paths such as `行业/制造业`.

use std::fmt;

use thiserror::Error;

pub const MAX_TAG_DEPTH: usize = 4;
const MAX_SEGMENT_CHARS: usize = 64;

/// Manual tags are set by people and API calls; dynamic tags are applied by their rule only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    Manual,
    Dynamic,
}

impl TagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TagKind::Manual => "manual",
            TagKind::Dynamic => "dynamic",
        }
    }

    pub fn parse(text: &str) -> Option<TagKind> {
        match text {
            "manual" => Some(TagKind::Manual),
            "dynamic" => Some(TagKind::Dynamic),
            _ => None,
        }
    }
}

/// A validated tag path: 1..=4 non-empty segments separated by `/`, each trimmed, at most 64 characters and free of
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagPath {
    segments: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TagPathError {
    #[error("a tag path must not be empty")]
    Empty,
    #[error("a tag path has at most {MAX_TAG_DEPTH} levels separated by /")]
    TooDeep,
    #[error("every level of a tag path needs a name (check for // or a trailing /)")]
    EmptySegment,
    #[error("a tag name is at most {MAX_SEGMENT_CHARS} characters")]
    SegmentTooLong,
    #[error("a tag name must not contain control characters")]
    ControlCharacter,
}

impl TagPath {
    pub fn parse(raw: &str) -> Result<TagPath, TagPathError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(TagPathError::Empty);
        }
        let segments = raw.split('/').map(Self::parse_segment).collect::<Result<Vec<_>, _>>()?;
        if segments.len() > MAX_TAG_DEPTH {
            return Err(TagPathError::TooDeep);
        }
        Ok(TagPath { segments })
    }

    /// Validates one level's name, as used when a tag is renamed.
    pub fn parse_segment(raw: &str) -> Result<String, TagPathError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(TagPathError::EmptySegment);
        }
        if name.chars().count() > MAX_SEGMENT_CHARS {
            return Err(TagPathError::SegmentTooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(TagPathError::ControlCharacter);
        }
        Ok(name.to_owned())
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    pub fn name(&self) -> &str {
        self.segments.last().map(String::as_str).unwrap_or_default()
    }

    /// The path of the enclosing group, if any.
    pub fn parent(&self) -> Option<TagPath> {
        (self.segments.len() > 1).then(|| TagPath { segments: self.segments[..self.segments.len() - 1].to_vec() })
    }

    /// This path and every ancestor, outermost first: `a`, `a/b`, `a/b/c`.
    pub fn prefixes(&self) -> Vec<TagPath> {
        (1..=self.segments.len()).map(|n| TagPath { segments: self.segments[..n].to_vec() }).collect()
    }

    pub fn child(&self, name: String) -> Result<TagPath, TagPathError> {
        if self.segments.len() >= MAX_TAG_DEPTH {
            return Err(TagPathError::TooDeep);
        }
        let mut segments = self.segments.clone();
        segments.push(name);
        Ok(TagPath { segments })
    }
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let path = TagPath::parse(" 行业 / 制造业 ").map(|p| p.to_string());
        assert_eq!(path, Ok("行业/制造业".to_owned()));
        assert_eq!(TagPath::parse("a/b/c/d").map(|p| p.depth()), Ok(4));
        assert_eq!(TagPath::parse("a/b/c/d/e"), Err(TagPathError::TooDeep));
        assert_eq!(TagPath::parse("a//b"), Err(TagPathError::EmptySegment));
        assert_eq!(TagPath::parse("a/"), Err(TagPathError::EmptySegment));
        assert_eq!(TagPath::parse(""), Err(TagPathError::Empty));
        let prefixes: Vec<String> =
            TagPath::parse("a/b/c").map(|p| p.prefixes().iter().map(|p| p.to_string()).collect()).unwrap_or_default();
        assert_eq!(prefixes, ["a", "a/b", "a/b/c"]);
    }
}

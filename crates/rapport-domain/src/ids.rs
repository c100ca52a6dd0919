//! Typed row identifiers. Every id is a positive 64-bit integer assigned by the store; the types keep a contact id
//! from being passed where a company id is expected.

use std::fmt;
use std::str::FromStr;

/// A text that is not a positive decimal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

macro_rules! id_type {
    ($($name:ident),* $(,)?) => {$(
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            pub const fn new(raw: i64) -> Self {
                Self(raw)
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            /// Ids travel as decimal strings; anything else (including zero or negatives, which the store never
            /// assigns) is rejected so that a malformed id reads as "not found" rather than as a database error.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.parse::<i64>() {
                    Ok(raw) if raw > 0 => Ok(Self(raw)),
                    _ => Err(InvalidId),
                }
            }
        }
    )*};
}

id_type!(
    WorkspaceId,
    UserId,
    ApiKeyId,
    ContactId,
    CompanyId,
    TagId,
    FieldId,
    NoteTemplateId,
    EventId,
    SourceId,
    FormId,
    JobId,
    SegmentId,
);

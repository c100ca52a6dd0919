//! Rapport's pure core: parsed value types and the rules of the data model.
//!
//! Architecture invariant: this crate does no IO. It never depends on tokio, sqlx, rusqlite or axum, and its types do
//! not derive `Serialize` for the API's sake — the http crate owns the wire format.

#![forbid(unsafe_code)]

mod contact;
mod field;
pub mod filter;
mod identity;
mod ids;
mod merge;
mod role;
mod slug;
mod tag;
mod text;

pub use contact::{Contact, ContactChanges, Patch, SystemFieldsPatch};
pub use field::{FieldDefinition, FieldEntity, FieldKey, FieldType, FieldValueError, MergeRule, validate_field_value};
pub use identity::{
    EmailAddress, EmailError, Identity, IdentityError, IdentityKind, PhoneError, PhoneNumber, normalize_domain,
};
pub use ids::{
    ApiKeyId, CompanyId, ContactId, EventId, FieldId, FormId, InvalidId, JobId, NoteTemplateId, SegmentId, SourceId,
    TagId, UserId, WorkspaceId,
};
pub use merge::{is_empty_value, merged_fields};
pub use role::{Permission, Role};
pub use slug::{Slug, SlugError};
pub use tag::{MAX_TAG_DEPTH, TagKind, TagPath, TagPathError};
pub use text::{BoundedText, TextError};

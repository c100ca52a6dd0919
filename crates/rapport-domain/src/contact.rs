//! The contact (a lead, 潜客) as the rest of Rapport sees it, and the shape of a change to one.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::identity::{EmailAddress, Identity, PhoneNumber};
use crate::ids::{CompanyId, ContactId, UserId, WorkspaceId};
use crate::slug::Slug;
use crate::tag::TagPath;
use crate::text::BoundedText;

#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub workspace_id: WorkspaceId,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub company_name: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub source: Option<String>,
    pub owner_id: Option<UserId>,
    pub company_id: Option<CompanyId>,
    /// Custom field values by key, already normalised by their definition.
    pub fields: Map<String, Value>,
    /// Tag paths, sorted.
    pub tags: Vec<String>,
    /// Every identity of the contact (the primary email, phone and user id are among them).
    pub identities: Vec<Identity>,
    pub stage: String,
    pub status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A field in a partial update: left alone, cleared, or set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Clear => Patch::Clear,
            Patch::Set(value) => Patch::Set(f(value)),
        }
    }

    pub fn as_ref(&self) -> Patch<&T> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Clear => Patch::Clear,
            Patch::Set(value) => Patch::Set(value),
        }
    }

    /// Applies the patch to a current value.
    pub fn apply_to(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Absent => current,
            Patch::Clear => None,
            Patch::Set(value) => Some(value),
        }
    }
}

/// The plain text system fields of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemFieldsPatch {
    pub first_name: Patch<BoundedText>,
    pub last_name: Patch<BoundedText>,
    pub title: Patch<BoundedText>,
    pub company_name: Patch<BoundedText>,
    pub city: Patch<BoundedText>,
    pub province: Patch<BoundedText>,
    pub country: Patch<BoundedText>,
    pub source: Patch<BoundedText>,
}

/// Everything a create, upsert or update may change on a contact, parsed at the boundary. Custom field values have
/// been checked against their definitions already; references (owner, company, stage, status) are checked by the
/// store inside the writing transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactChanges {
    pub email: Patch<EmailAddress>,
    pub phone: Patch<PhoneNumber>,
    pub user_id: Patch<String>,
    pub system: SystemFieldsPatch,
    pub owner_id: Patch<UserId>,
    pub company_id: Patch<CompanyId>,
    /// Custom values to set; `Value::Null` removes the value.
    pub fields: Vec<(String, Value)>,
    /// Manual tags to add; missing ones are created in the library.
    pub add_tags: Vec<TagPath>,
    pub stage: Option<Slug>,
    pub status: Patch<Slug>,
    /// Why the stage or status changes, recorded in the history.
    pub reason: Option<String>,
}

impl ContactChanges {
    /// The identities that an upsert matches on, in order of precedence: external user id, email, phone.
    pub fn match_identities(&self) -> Vec<Identity> {
        let mut identities = Vec::with_capacity(3);
        if let Patch::Set(user_id) = &self.user_id {
            identities.push(Identity::from_stored(crate::IdentityKind::UserId, user_id.clone()));
        }
        if let Patch::Set(email) = &self.email {
            identities.push(Identity::email(email));
        }
        if let Patch::Set(phone) = &self.phone {
            identities.push(Identity::phone(phone));
        }
        identities
    }
}

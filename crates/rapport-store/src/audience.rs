//! Records of the audience engine: segments, their members, and the change feed the engine follows.

use chrono::{DateTime, NaiveDate, Utc};
use rapport_domain::{BoundedText, CompanyId, Contact, ContactId, SegmentId, TagId, WorkspaceId};
use serde_json::{Map, Value};

use crate::records::ConsentChannel;

/// A saved filter whose members the engine keeps current. A segment with a `tag_id` is the definition of a dynamic
/// tag: its members carry the tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: SegmentId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub description: String,
    /// The canonical text form of the filter.
    pub filter: String,
    pub tag_id: Option<TagId>,
    /// Bumped whenever the filter changes, so that a build of an older definition is recognised as stale.
    pub version: i64,
    pub member_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewSegment {
    pub name: BoundedText,
    pub description: String,
    pub filter: String,
    /// For a dynamic tag: the tag (of kind dynamic) its members carry.
    pub tag_id: Option<TagId>,
}

#[derive(Debug, Clone, Default)]
pub struct SegmentUpdate {
    pub name: Option<BoundedText>,
    pub description: Option<String>,
    pub filter: Option<String>,
}

/// Where a reader of the change feed stands. Opaque outside the backend that issued it: SQLite counts change rows
/// and event ids, PostgreSQL counts transaction ids (everything older than the position has been read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeCursor {
    pub changes: i64,
    pub events: i64,
}

/// What a change row says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeSubject {
    /// The contact's row, identities, tags or consent changed, or the contact was created, merged away or erased.
    Contact(ContactId),
    /// A company's fields changed (its contacts' `company.*` values with them), or it was deleted.
    Company(CompanyId),
    /// The workspace's schema changed: custom fields, tags (renames and moves change group membership), stages,
    /// lead statuses or segments.
    Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub workspace_id: WorkspaceId,
    pub subject: ChangeSubject,
}

/// An event as the audience engine reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFact {
    pub id: i64,
    pub workspace_id: WorkspaceId,
    pub contact_id: ContactId,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// The properties as the event was given them (interned page properties put back).
    pub properties: Map<String, Value>,
}

/// One read of the change feed: the changes and the new events committed after the cursor, and where to read next.
/// Both lists may hold repeats and things already seen; readers apply them by re-reading current state.
#[derive(Debug, Clone, Default)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    pub events: Vec<EventFact>,
    pub next: ChangeCursor,
}

/// Everything a filter may ask about a contact, read in one go.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceContact {
    pub contact: Contact,
    /// The current consent state per channel (the newest record of each).
    pub consents: Vec<(ConsentChannel, bool)>,
    /// Each stage the contact entered, with when, oldest first (its first stage at its creation).
    pub stages: Vec<(String, DateTime<Utc>)>,
}

/// Membership changes the engine has decided, written in one transaction: member rows, `segment_entered` /
/// `segment_exited` timeline records and, for dynamic tags, the tag links with `tag_added` / `tag_removed`.
#[derive(Debug, Clone, Default)]
pub struct MembershipChanges {
    pub entered: Vec<(SegmentId, ContactId)>,
    pub exited: Vec<(SegmentId, ContactId)>,
}

impl MembershipChanges {
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty() && self.exited.is_empty()
    }
}

/// A day's tag changes, as the timeline recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagDay {
    /// The calendar day in UTC.
    pub day: NaiveDate,
    pub added: u64,
    pub removed: u64,
}

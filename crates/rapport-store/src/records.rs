//! Plain records that cross the storage boundary.

use std::fmt;

use chrono::{DateTime, Utc};
use rapport_domain::{
    ApiKeyId, BoundedText, CompanyId, ContactId, EmailAddress, FieldEntity, FieldType, FormId, Identity, MergeRule,
    NoteTemplateId, Patch, Role, Slug, SourceId, TagId, TagKind, TagPath, UserId, WorkspaceId,
};
use serde_json::{Map, Value};

// ----- Workspaces, users and keys -----

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub slug: Slug,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub workspace_id: WorkspaceId,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The argon2 PHC string; never leaves the server.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: EmailAddress,
    pub name: BoundedText,
    pub role: Role,
    pub password_hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub name: Option<BoundedText>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub role: Role,
    /// The first characters of the token, shown so that people can tell their keys apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: BoundedText,
    pub role: Role,
    pub prefix: String,
    /// SHA-256 of the token, hex-encoded. The token itself is never stored.
    pub token_hash: String,
}

// ----- Schema: custom fields, tags, stages, statuses, note templates -----

#[derive(Debug, Clone)]
pub struct NewField {
    pub entity: FieldEntity,
    pub key: Slug,
    pub label: BoundedText,
    pub field_type: FieldType,
    pub options: Vec<String>,
    pub merge_rule: MergeRule,
}

#[derive(Debug, Clone, Default)]
pub struct FieldUpdate {
    pub label: Option<BoundedText>,
    /// New option list of a select field; options still in use may be removed (values stay until edited).
    pub options: Option<Vec<String>>,
    pub merge_rule: Option<MergeRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub id: TagId,
    pub parent_id: Option<TagId>,
    pub name: String,
    pub path: String,
    pub kind: TagKind,
    /// Contacts carrying this very tag (not its descendants).
    pub contact_count: u64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewTag {
    pub path: TagPath,
    pub kind: TagKind,
}

#[derive(Debug, Clone, Default)]
pub struct TagUpdate {
    pub name: Option<String>,
    /// Move under another group (`Patch::Clear` moves to the top level). The tag keeps its contacts.
    pub parent_id: Patch<TagId>,
}

/// A lifecycle stage or a lead status: an ordered, keyed, labelled entry of a workspace list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    pub key: String,
    pub label: String,
    pub position: i64,
}

#[derive(Debug, Clone)]
pub struct NewListEntry {
    pub key: Slug,
    pub label: BoundedText,
    /// Where to insert; `None` appends.
    pub position: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ListEntryUpdate {
    pub label: Option<BoundedText>,
    pub position: Option<i64>,
}

/// Which ordered list an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Stages,
    LeadStatuses,
}

impl ListKind {
    pub fn entity(self) -> &'static str {
        match self {
            ListKind::Stages => "stage",
            ListKind::LeadStatuses => "lead status",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NoteTemplate {
    pub id: NoteTemplateId,
    pub name: String,
    /// The lead status the template is offered for; `None` for every status.
    pub status: Option<String>,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NoteTemplateInput {
    pub name: BoundedText,
    pub status: Option<Slug>,
    pub body: BoundedText,
}

// ----- Companies -----

#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    pub fields: Map<String, Value>,
    pub contact_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct CompanyChanges {
    pub name: Option<BoundedText>,
    /// Already normalised with `normalize_domain`.
    pub domain: Patch<String>,
    pub industry: Patch<BoundedText>,
    pub size: Patch<BoundedText>,
    pub fields: Vec<(String, Value)>,
}

// ----- Contacts -----

/// Who made a change, as recorded in histories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    ApiKey(ApiKeyId),
    User(UserId),
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// The result of one upsert: which contact, and whether it was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub id: ContactId,
    pub created: bool,
}

/// Keyset pagination. `after` is the last item of the previous page, as returned in [`Page::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<C> {
    pub after: Option<C>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Present when more items may follow.
    pub next: Option<C>,
}

/// Contacts are listed newest change first: `(updated_at, id)` descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactCursor {
    pub updated_at: DateTime<Utc>,
    pub id: ContactId,
}

/// Timeline items are listed newest first: `(at, source, id)` descending, where the source tells events (1) from
/// activities (0) so that ids of the two tables never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineCursor {
    pub at: DateTime<Utc>,
    pub source: i64,
    pub id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// `event`, `stage_changed`, `status_changed`, `tag_added`, `tag_removed`, `note`, …
    pub kind: String,
    pub at: DateTime<Utc>,
    pub data: Value,
    pub cursor: TimelineCursor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: i64,
    pub contact_id: ContactId,
    pub body: String,
    pub author: String,
    pub template_id: Option<NoteTemplateId>,
    pub created_at: DateTime<Utc>,
}

// ----- Events -----

/// How an event names its contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactRef {
    Id(ContactId),
    /// Matched by identity; a contact is created when none has it.
    Identity(Identity),
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub contact: ContactRef,
    pub event_type: String,
    pub properties: Map<String, Value>,
    pub context: Map<String, Value>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub source: Option<String>,
    /// Unique per workspace when present: a second event with the same message id is a duplicate and not stored.
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Stored {
        contact_id: ContactId,
        event_id: i64,
    },
    /// The message id was stored before; nothing was written.
    Duplicate,
    /// The event named a contact id that does not exist in the workspace; nothing was written for it.
    UnknownContact,
}

// ----- Sources and the tracking API -----

/// Where tracked data comes from (a website, an app, a backend). Its write key is what tracking clients send; it
/// identifies the workspace and is not a secret in the way an API key is (it ships inside web pages).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: SourceId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub kind: SourceKind,
    pub write_key: String,
    /// Unknown `identify` traits become new text custom fields instead of being reported.
    pub auto_create_fields: bool,
    /// The website tracker sends nothing for browsers that ask not to be tracked.
    pub honor_dnt: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Website,
    App,
    Backend,
    Other,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [SourceKind::Website, SourceKind::App, SourceKind::Backend, SourceKind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Website => "website",
            SourceKind::App => "app",
            SourceKind::Backend => "backend",
            SourceKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct NewSource {
    pub name: BoundedText,
    pub kind: SourceKind,
    pub write_key: String,
    pub auto_create_fields: bool,
    pub honor_dnt: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SourceUpdate {
    pub name: Option<BoundedText>,
    pub auto_create_fields: Option<bool>,
    pub honor_dnt: Option<bool>,
}

/// Who a tracking message is about: a known user id, an anonymous (device or cookie) id, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
}

/// One tracking message (the Segment spec's identify, track, page, screen, group and alias), already validated and
/// mapped to domain terms by the caller.
#[derive(Debug, Clone)]
pub struct TrackingMessage {
    /// Unique per workspace: a message id seen before makes the message a `Duplicate`, whatever its kind.
    pub message_id: String,
    pub source: SourceId,
    pub visitor: Visitor,
    pub op: TrackingOp,
}

#[derive(Debug, Clone)]
pub enum TrackingOp {
    /// Traits mapped onto contact changes. An email, phone or user id that belongs to another contact merges that
    /// contact into this one.
    Identify { changes: rapport_domain::ContactChanges },
    /// `track`, `page` (type `page_viewed`) and `screen` (type `screen_viewed`).
    Event {
        event_type: String,
        properties: Map<String, Value>,
        context: Map<String, Value>,
        occurred_at: DateTime<Utc>,
        received_at: DateTime<Utc>,
    },
    /// Links the contact to the company with this external group id, creating or updating it.
    Group { group_id: String, company: CompanyChanges },
    /// The contact known by `previous_id` (a user id or an anonymous id) and the visitor's user id are one person.
    Alias { previous_id: String },
    /// A hosted form was submitted: the answers identify like `Identify` does, a `form_submitted` event records
    /// them, and consent given on the form is recorded with its proof. Boxed: submissions are rare and large.
    FormSubmission(Box<FormSubmission>),
}

/// The event type a form submission records.
pub const FORM_SUBMITTED_EVENT: &str = "form_submitted";

/// What a submitted form writes, beyond what every tracking message carries.
#[derive(Debug, Clone)]
pub struct FormSubmission {
    pub form_id: FormId,
    /// The answers mapped onto the contact. A form always maps an email or a phone, so a visitor without any id
    /// (a browser without the tracker) is still resolved, by those.
    pub changes: rapport_domain::ContactChanges,
    /// The `form_submitted` event's properties (form id and name, every answer, page URL and referrer).
    pub properties: Map<String, Value>,
    pub context: Map<String, Value>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub consents: Vec<NewConsent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingOutcome {
    Applied { contact_id: ContactId },
    Duplicate,
    Rejected { code: &'static str, message: String },
}

/// Why two contacts were merged, as recorded in the survivor's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeReason {
    Alias,
    Identify,
    Api,
}

impl MergeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeReason::Alias => "alias",
            MergeReason::Identify => "identify",
            MergeReason::Api => "api",
        }
    }
}

// ----- Forms and consent -----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormStatus {
    /// The hosted page and the embed accept submissions.
    Active,
    /// Kept with its submissions, but no longer shown or accepting.
    Archived,
}

impl FormStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FormStatus::Active => "active",
            FormStatus::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<FormStatus> {
        [FormStatus::Active, FormStatus::Archived].into_iter().find(|status| status.as_str() == text)
    }
}

/// A hosted form. The store keeps its definition as a JSON document without interpreting it: the http crate
/// parses and checks it before it is written, and again when it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub id: FormId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub definition: Value,
    /// The source that the form's submissions (and the tracker on its hosted page) are recorded under.
    pub source_id: SourceId,
    pub status: FormStatus,
    pub submission_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewForm {
    pub name: BoundedText,
    pub definition: Value,
    pub source_id: SourceId,
}

#[derive(Debug, Clone, Default)]
pub struct FormUpdate {
    pub name: Option<BoundedText>,
    pub definition: Option<Value>,
    pub status: Option<FormStatus>,
}

/// A channel a person can consent to being contacted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsentChannel {
    Email,
    Sms,
    Phone,
    Wechat,
}

impl ConsentChannel {
    pub const ALL: [ConsentChannel; 4] =
        [ConsentChannel::Email, ConsentChannel::Sms, ConsentChannel::Phone, ConsentChannel::Wechat];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentChannel::Email => "email",
            ConsentChannel::Sms => "sms",
            ConsentChannel::Phone => "phone",
            ConsentChannel::Wechat => "wechat",
        }
    }

    pub fn parse(text: &str) -> Option<ConsentChannel> {
        ConsentChannel::ALL.into_iter().find(|channel| channel.as_str() == text)
    }
}

/// Consent given or refused, with its proof: when, from which address and browser, and the very text shown.
#[derive(Debug, Clone)]
pub struct NewConsent {
    pub channel: ConsentChannel,
    pub granted: bool,
    pub recorded_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    pub contact_id: ContactId,
    pub channel: ConsentChannel,
    pub granted: bool,
    pub recorded_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub text: String,
    /// The form it was given on, and the message id of that submission.
    pub form_id: Option<FormId>,
    pub message_id: Option<String>,
}

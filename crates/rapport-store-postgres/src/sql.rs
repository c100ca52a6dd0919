//! Conversions between rows and records, and the mapping of database errors to store errors.

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use rapport_domain::{
    ApiKeyId, CompanyId, Contact, ContactId, FieldDefinition, FieldEntity, FieldId, FieldType, Identity, IdentityKind,
    MergeRule, NoteTemplateId, Role, SegmentId, Slug, TagId, TagKind, UserId, WorkspaceId,
};
use rapport_store::{ApiKey, Company, ListEntry, NoteTemplate, Page, Segment, StoreError, Tag, User, Workspace};
use serde_json::{Map, Value};

/// The error for a failed write: a violation of the unique constraint `constraint` is the caller's conflict,
/// anything else is a backend failure described by `context`.
pub(crate) fn unique_conflict(
    error: sqlx::Error,
    constraint: &str,
    conflict: impl FnOnce() -> StoreError,
    context: &'static str,
) -> StoreError {
    if violated_unique_constraint(&error) == Some(constraint) {
        return conflict();
    }
    StoreError::Backend(anyhow::Error::new(error).context(context))
}

pub(crate) fn violated_unique_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(database) if database.is_unique_violation() => database.constraint(),
        _ => None,
    }
}

/// Cuts a list fetched with `limit + 1` rows down to a page whose `next` is present only when more rows exist.
pub(crate) fn page<T, C>(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> C) -> Page<T, C> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor) } else { None };
    Page { items, next }
}

/// The row count to fetch for a page of `limit`: one more, to learn whether another page follows.
pub(crate) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

pub(crate) fn json_object(value: Value, what: &'static str) -> anyhow::Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(anyhow!("the stored {what} is not a JSON object: {other}")),
    }
}

pub(crate) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    id: i64,
    slug: String,
    name: String,
    created_at: DateTime<Utc>,
}

pub(crate) const WORKSPACE_COLUMNS: &str = "id, slug, name, created_at";

impl WorkspaceRow {
    pub(crate) fn into_record(self) -> anyhow::Result<Workspace> {
        Ok(Workspace {
            id: WorkspaceId::new(self.id),
            slug: Slug::parse(&self.slug).context("a stored workspace slug")?,
            name: self.name,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    workspace_id: i64,
    email: String,
    name: String,
    role: String,
    password_hash: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub(crate) const USER_COLUMNS: &str = "id, workspace_id, email, name, role, password_hash, created_at, updated_at";

impl UserRow {
    pub(crate) fn into_record(self) -> anyhow::Result<User> {
        Ok(User {
            id: UserId::new(self.id),
            workspace_id: WorkspaceId::new(self.workspace_id),
            email: self.email,
            name: self.name,
            role: stored_role(&self.role)?,
            password_hash: self.password_hash,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: i64,
    workspace_id: i64,
    name: String,
    role: String,
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

pub(crate) const API_KEY_COLUMNS: &str = "id, workspace_id, name, role, prefix, created_at, last_used_at, revoked_at";

impl ApiKeyRow {
    pub(crate) fn into_record(self) -> anyhow::Result<ApiKey> {
        Ok(ApiKey {
            id: ApiKeyId::new(self.id),
            workspace_id: WorkspaceId::new(self.workspace_id),
            name: self.name,
            role: stored_role(&self.role)?,
            prefix: self.prefix,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        })
    }
}

fn stored_role(text: &str) -> anyhow::Result<Role> {
    Role::parse(text).with_context(|| format!("unknown stored role {text:?}"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct FieldRow {
    id: i64,
    entity: String,
    key: String,
    label: String,
    #[sqlx(rename = "type")]
    field_type: String,
    options: Vec<String>,
    merge_rule: String,
    created_at: DateTime<Utc>,
}

pub(crate) const FIELD_COLUMNS: &str = "id, entity, key, label, type, options, merge_rule, created_at";

impl FieldRow {
    pub(crate) fn into_record(self) -> anyhow::Result<FieldDefinition> {
        Ok(FieldDefinition {
            id: FieldId::new(self.id),
            entity: FieldEntity::parse(&self.entity)
                .with_context(|| format!("unknown stored field entity {:?}", self.entity))?,
            key: Slug::parse(&self.key).context("a stored field key")?,
            label: self.label,
            field_type: FieldType::parse(&self.field_type)
                .with_context(|| format!("unknown stored field type {:?}", self.field_type))?,
            options: self.options,
            merge_rule: MergeRule::parse(&self.merge_rule)
                .with_context(|| format!("unknown stored merge rule {:?}", self.merge_rule))?,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TagRow {
    pub(crate) id: i64,
    parent_id: Option<i64>,
    name: String,
    pub(crate) path: String,
    kind: String,
    contact_count: i64,
    created_at: DateTime<Utc>,
}

/// Selects from `tags t`.
pub(crate) const TAG_COLUMNS: &str = "t.id, t.parent_id, t.name, t.path, t.kind, t.created_at, \
     (SELECT count(*) FROM contact_tags ct WHERE ct.tag_id = t.id) AS contact_count";

impl TagRow {
    pub(crate) fn into_record(self) -> anyhow::Result<Tag> {
        Ok(Tag {
            id: TagId::new(self.id),
            parent_id: self.parent_id.map(TagId::new),
            name: self.name,
            path: self.path,
            kind: stored_tag_kind(&self.kind)?,
            contact_count: count(self.contact_count),
            created_at: self.created_at,
        })
    }
}

pub(crate) fn stored_tag_kind(text: &str) -> anyhow::Result<TagKind> {
    TagKind::parse(text).with_context(|| format!("unknown stored tag kind {text:?}"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct ListEntryRow {
    pub(crate) key: String,
    label: String,
    position: i64,
}

impl ListEntryRow {
    pub(crate) fn into_record(self) -> ListEntry {
        ListEntry { key: self.key, label: self.label, position: self.position }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct NoteTemplateRow {
    id: i64,
    name: String,
    status: Option<String>,
    body: String,
    created_at: DateTime<Utc>,
}

pub(crate) const NOTE_TEMPLATE_COLUMNS: &str = "id, name, status, body, created_at";

impl NoteTemplateRow {
    pub(crate) fn into_record(self) -> NoteTemplate {
        NoteTemplate {
            id: NoteTemplateId::new(self.id),
            name: self.name,
            status: self.status,
            body: self.body,
            created_at: self.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CompanyRow {
    id: i64,
    name: String,
    domain: Option<String>,
    industry: Option<String>,
    size: Option<String>,
    fields: Value,
    contact_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Selects from `companies co`.
pub(crate) const COMPANY_COLUMNS: &str = "co.id, co.name, co.domain, co.industry, co.size, co.fields, \
     co.created_at, co.updated_at, \
     (SELECT count(*) FROM contacts c WHERE c.company_id = co.id) AS contact_count";

impl CompanyRow {
    pub(crate) fn into_record(self) -> anyhow::Result<Company> {
        Ok(Company {
            id: CompanyId::new(self.id),
            name: self.name,
            domain: self.domain,
            industry: self.industry,
            size: self.size,
            fields: json_object(self.fields, "company fields")?,
            contact_count: count(self.contact_count),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SegmentRow {
    id: i64,
    workspace_id: i64,
    name: String,
    description: String,
    filter: String,
    tag_id: Option<i64>,
    version: i64,
    member_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Selects from `segments s`.
pub(crate) const SEGMENT_COLUMNS: &str = "s.id, s.workspace_id, s.name, s.description, s.filter, s.tag_id, \
     s.version, s.created_at, s.updated_at, \
     (SELECT count(*) FROM segment_members m WHERE m.segment_id = s.id) AS member_count";

impl SegmentRow {
    pub(crate) fn into_record(self) -> Segment {
        Segment {
            id: SegmentId::new(self.id),
            workspace_id: WorkspaceId::new(self.workspace_id),
            name: self.name,
            description: self.description,
            filter: self.filter,
            tag_id: self.tag_id.map(TagId::new),
            version: self.version,
            member_count: count(self.member_count),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A contact with its tags and identities, as read for the API.
#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    id: i64,
    workspace_id: i64,
    email: Option<String>,
    phone: Option<String>,
    user_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    title: Option<String>,
    company_name: Option<String>,
    city: Option<String>,
    province: Option<String>,
    country: Option<String>,
    source: Option<String>,
    owner_id: Option<i64>,
    company_id: Option<i64>,
    fields: Value,
    stage: String,
    status: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    tags: Vec<String>,
    identity_kinds: Vec<String>,
    identity_values: Vec<String>,
}

/// `SELECT` of full contacts from `contacts c`; the caller appends the `WHERE` clause.
macro_rules! select_contacts {
    () => {
        "SELECT c.id, c.workspace_id, c.email, c.phone, c.user_id, c.first_name, c.last_name, c.title, \
         c.company_name, c.city, c.province, c.country, c.source, c.owner_id, c.company_id, c.fields, c.stage, \
         c.status, c.created_at, c.updated_at, \
         ARRAY(SELECT t.path FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id \
               WHERE ct.contact_id = c.id ORDER BY t.path) AS tags, \
         ARRAY(SELECT i.kind FROM contact_identities i WHERE i.contact_id = c.id \
               ORDER BY i.kind, i.value) AS identity_kinds, \
         ARRAY(SELECT i.value FROM contact_identities i WHERE i.contact_id = c.id \
               ORDER BY i.kind, i.value) AS identity_values \
         FROM contacts c "
    };
}
pub(crate) use select_contacts;

impl ContactRow {
    pub(crate) fn into_record(self) -> anyhow::Result<Contact> {
        let mut identities = self
            .identity_kinds
            .iter()
            .zip(self.identity_values)
            .map(|(kind, value)| Ok(Identity::from_stored(stored_identity_kind(kind)?, value)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        identities.sort();
        Ok(Contact {
            id: ContactId::new(self.id),
            workspace_id: WorkspaceId::new(self.workspace_id),
            email: self.email,
            phone: self.phone,
            user_id: self.user_id,
            first_name: self.first_name,
            last_name: self.last_name,
            title: self.title,
            company_name: self.company_name,
            city: self.city,
            province: self.province,
            country: self.country,
            source: self.source,
            owner_id: self.owner_id.map(UserId::new),
            company_id: self.company_id.map(CompanyId::new),
            fields: json_object(self.fields, "contact fields")?,
            tags: self.tags,
            identities,
            stage: self.stage,
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub(crate) fn stored_identity_kind(text: &str) -> anyhow::Result<IdentityKind> {
    IdentityKind::parse(text).with_context(|| format!("unknown stored identity kind {text:?}"))
}

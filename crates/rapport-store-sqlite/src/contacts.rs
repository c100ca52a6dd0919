//! Contacts: upserts matched by identity, updates that record stage and status changes, reads and keyset listing.
//!
//! Upserts are the ingestion hot path. A call loads the workspace's stages and statuses once, resolves identities
//! with cached statements, and writes each contact with one `INSERT` or one `UPDATE` whose parameters say, column
//! by column, whether to keep or replace the value, so an update never reads the row back.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use rapport_domain::{
    CompanyId, Contact, ContactChanges, ContactId, Identity, IdentityKind, Patch, UserId, WorkspaceId,
};
use rapport_store::{Actor, ContactCursor, ListKind, Page, PageRequest, StoreError, StoreResult, UpsertOutcome};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::{Map, Value, json};

use crate::events::erase_events;
use crate::history::record_activity;
use crate::memo::WriterMemo;
use crate::schema::entry_keys;
use crate::sql::{fetch_limit, into_page, json_object_at, micros, now_micros, parsed_at, time_at};
use crate::tags::{TagResolver, link_tags};

/// Who writes, where and when: shared by every row one call writes.
pub(crate) struct ChangeContext {
    pub(crate) workspace: WorkspaceId,
    pub(crate) actor: String,
    pub(crate) now: i64,
}

impl ChangeContext {
    pub(crate) fn new(workspace: WorkspaceId, actor: Actor) -> ChangeContext {
        ChangeContext { workspace, actor: actor.to_string(), now: now_micros() }
    }
}

/// The reference data that changes are checked against, loaded once per call.
pub(crate) struct References {
    /// Stage keys in list order; the first is where new contacts start.
    stages: Vec<String>,
    statuses: HashSet<String>,
    owners: HashMap<UserId, bool>,
    companies: HashMap<CompanyId, bool>,
    pub(crate) tags: TagResolver,
}

impl References {
    pub(crate) fn load(conn: &Connection, workspace: WorkspaceId) -> StoreResult<References> {
        Ok(References {
            stages: entry_keys(conn, workspace, ListKind::Stages)?,
            statuses: entry_keys(conn, workspace, ListKind::LeadStatuses)?.into_iter().collect(),
            owners: HashMap::new(),
            companies: HashMap::new(),
            tags: TagResolver::default(),
        })
    }

    /// Stage keys in list order.
    pub(crate) fn stages(&self) -> &[String] {
        &self.stages
    }

    pub(crate) fn first_stage(&self) -> StoreResult<&str> {
        let first = self.stages.first().context("the workspace has no stage")?;
        Ok(first)
    }

    fn owner_exists(&mut self, conn: &Connection, workspace: WorkspaceId, owner: UserId) -> StoreResult<bool> {
        if let Some(exists) = self.owners.get(&owner) {
            return Ok(*exists);
        }
        let exists = row_exists(
            conn,
            "SELECT EXISTS (SELECT 1 FROM users WHERE workspace_id = ?1 AND id = ?2)",
            workspace,
            owner.get(),
        )?;
        self.owners.insert(owner, exists);
        Ok(exists)
    }

    fn company_exists(&mut self, conn: &Connection, workspace: WorkspaceId, company: CompanyId) -> StoreResult<bool> {
        if let Some(exists) = self.companies.get(&company) {
            return Ok(*exists);
        }
        let exists = row_exists(
            conn,
            "SELECT EXISTS (SELECT 1 FROM companies WHERE workspace_id = ?1 AND id = ?2)",
            workspace,
            company.get(),
        )?;
        self.companies.insert(company, exists);
        Ok(exists)
    }
}

pub(crate) fn upsert_contacts(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    items: Vec<ContactChanges>,
    actor: Actor,
) -> StoreResult<Vec<UpsertOutcome>> {
    let context = ChangeContext::new(workspace, actor);
    let mut references = References::load(tx, workspace)?;
    let batch = items.len() > 1;
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, changes) in items.into_iter().enumerate() {
        let field = |name: &str| {
            if batch { format!("contacts[{index}].{name}") } else { name.to_owned() }
        };
        let mut matched = None;
        for identity in changes.match_identities() {
            let Some(owner) = identity_owner(tx, workspace, &identity)? else {
                continue;
            };
            match matched {
                None => matched = Some(owner),
                Some(selected) if selected != owner => {
                    return Err(identity_conflict(&identity, &field));
                }
                Some(_) => {}
            }
        }
        let id = apply_changes(tx, &context, &mut references, matched, changes, &field)?;
        outcomes.push(UpsertOutcome { id, created: matched.is_none() });
    }
    Ok(outcomes)
}

pub(crate) fn update_contact(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: ContactId,
    changes: ContactChanges,
    actor: Actor,
) -> StoreResult<Contact> {
    check_contact_exists(tx, workspace, id)?;
    let field = |name: &str| name.to_owned();
    for identity in changes.match_identities() {
        if identity_owner(tx, workspace, &identity)?.is_some_and(|owner| owner != id) {
            return Err(identity_conflict(&identity, &field));
        }
    }
    let context = ChangeContext::new(workspace, actor);
    let mut references = References::load(tx, workspace)?;
    apply_changes(tx, &context, &mut references, Some(id), changes, &field)?;
    get_contact(tx, workspace, id)
}

pub(crate) fn get_contact(conn: &Connection, workspace: WorkspaceId, id: ContactId) -> StoreResult<Contact> {
    let sql = format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_contact")?;
    let contact = statement
        .query_row(params![workspace.get(), id.get()], contact_from_row)
        .optional()
        .context("reading a contact")?;
    let contact = contact.ok_or(StoreError::not_found("contact"))?;
    let mut contacts = with_identities_and_tags(conn, vec![contact])?;
    contacts.pop().context("the contact vanished").map_err(StoreError::from)
}

pub(crate) fn find_contact(
    conn: &Connection,
    workspace: WorkspaceId,
    identity: &Identity,
) -> StoreResult<Option<Contact>> {
    match identity_owner(conn, workspace, identity)? {
        Some(id) => get_contact(conn, workspace, id).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn list_contacts(
    conn: &Connection,
    workspace: WorkspaceId,
    page: PageRequest<ContactCursor>,
) -> StoreResult<Page<Contact, ContactCursor>> {
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = ?1 AND (updated_at, id) < (?2, ?3)
         ORDER BY updated_at DESC, id DESC LIMIT ?4"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing list_contacts")?;
    let (before_time, before_id) =
        page.after.map_or((i64::MAX, i64::MAX), |after| (micros(after.updated_at), after.id.get()));
    let rows = statement
        .query_map(params![workspace.get(), before_time, before_id, fetch_limit(page.limit)], contact_from_row)
        .context("listing contacts")?;
    let contacts = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading contacts")?;
    let page =
        into_page(contacts, page.limit, |contact| ContactCursor { updated_at: contact.updated_at, id: contact.id });
    Ok(Page { items: with_identities_and_tags(conn, page.items)?, next: page.next })
}

/// Identities, tag links and activities go with the contact through `ON DELETE CASCADE`; events have no foreign
/// key (see the schema) and are erased with their traces by `erase_events`. Pointers of merged contacts to this
/// one go too: erasure leaves nothing that leads to the person.
pub(crate) fn delete_contact(
    tx: &Transaction<'_>,
    memo: &mut WriterMemo,
    workspace: WorkspaceId,
    id: ContactId,
) -> StoreResult<()> {
    check_contact_exists(tx, workspace, id)?;
    erase_events(tx, memo, workspace, id)?;
    tx.execute("DELETE FROM contact_merges WHERE survivor_id = ?1", [id.get()])
        .context("deleting the pointers to a contact")?;
    tx.execute("DELETE FROM contacts WHERE workspace_id = ?1 AND id = ?2", params![workspace.get(), id.get()])
        .context("deleting a contact")?;
    Ok(())
}

pub(crate) fn count_contacts(conn: &Connection, workspace: WorkspaceId) -> StoreResult<u64> {
    let mut statement = conn
        .prepare_cached("SELECT count(*) FROM contacts WHERE workspace_id = ?1")
        .context("preparing count_contacts")?;
    let count: i64 = statement.query_row([workspace.get()], |row| row.get(0)).context("counting contacts")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) fn contact_exists(conn: &Connection, workspace: WorkspaceId, id: ContactId) -> StoreResult<bool> {
    row_exists(conn, "SELECT EXISTS (SELECT 1 FROM contacts WHERE workspace_id = ?1 AND id = ?2)", workspace, id.get())
}

pub(crate) fn check_contact_exists(conn: &Connection, workspace: WorkspaceId, id: ContactId) -> StoreResult<()> {
    if contact_exists(conn, workspace, id)? { Ok(()) } else { Err(StoreError::not_found("contact")) }
}

pub(crate) fn touch_contact(tx: &Transaction<'_>, id: ContactId, now: i64) -> StoreResult<()> {
    let mut statement =
        tx.prepare_cached("UPDATE contacts SET updated_at = ?2 WHERE id = ?1").context("preparing touch_contact")?;
    statement.execute(params![id.get(), now]).context("touching a contact")?;
    Ok(())
}

/// The contact that has `identity` in this workspace.
pub(crate) fn identity_owner(
    conn: &Connection,
    workspace: WorkspaceId,
    identity: &Identity,
) -> StoreResult<Option<ContactId>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT contact_id FROM contact_identities WHERE workspace_id = ?1 AND kind = ?2 AND value = ?3",
        )
        .context("preparing identity_owner")?;
    let owner = statement
        .query_row(params![workspace.get(), identity.kind().as_str(), identity.value()], |row| row.get(0))
        .optional()
        .context("looking up an identity")?;
    Ok(owner.map(ContactId::new))
}

/// Creates a contact known only by `identity`, in `stage`, as events do for people seen for the first time.
pub(crate) fn insert_identified_contact(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    identity: &Identity,
    stage: &str,
    now: i64,
) -> StoreResult<ContactId> {
    let primary = |kind: IdentityKind| (identity.kind() == kind).then(|| identity.value());
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO contacts (workspace_id, email, phone, user_id, stage, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .context("preparing insert_identified_contact")?;
    insert
        .execute(params![
            workspace.get(),
            primary(IdentityKind::Email),
            primary(IdentityKind::Phone),
            primary(IdentityKind::UserId),
            stage,
            now
        ])
        .context("inserting a contact")?;
    let id = ContactId::new(tx.last_insert_rowid());
    add_identity(tx, workspace, id, identity)?;
    Ok(id)
}

/// Writes one contact's changes: checks its references, inserts or updates the row, records stage and status
/// changes, adds identities and tags. `existing` is the contact the changes matched, if any.
pub(crate) fn apply_changes(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    references: &mut References,
    existing: Option<ContactId>,
    changes: ContactChanges,
    field: &dyn Fn(&str) -> String,
) -> StoreResult<ContactId> {
    let workspace = context.workspace;
    check_references(tx, workspace, references, &changes, field)?;

    let id = match existing {
        None => insert_contact(tx, context, references, &changes)?,
        Some(id) => {
            update_row(tx, context, id, &changes)?;
            id
        }
    };
    for identity in changes.match_identities() {
        add_identity(tx, workspace, id, &identity)?;
    }
    link_tags(tx, context, id, &changes.add_tags, &field("tags"), &mut references.tags)?;
    Ok(id)
}

/// Checks the stage, status, owner and company that changes refer to: invalid `unknown_stage`, `unknown_status`,
/// `unknown_owner` or `unknown_company` on `field(…)`. Writes nothing.
pub(crate) fn check_references(
    conn: &Connection,
    workspace: WorkspaceId,
    references: &mut References,
    changes: &ContactChanges,
    field: &dyn Fn(&str) -> String,
) -> StoreResult<()> {
    if let Some(stage) = &changes.stage {
        if !references.stages.iter().any(|key| key == stage.as_str()) {
            return Err(StoreError::invalid("unknown_stage", field("stage"), format!("there is no stage {stage}")));
        }
    }
    if let Patch::Set(status) = &changes.status {
        if !references.statuses.contains(status.as_str()) {
            return Err(StoreError::invalid(
                "unknown_status",
                field("status"),
                format!("there is no lead status {status}"),
            ));
        }
    }
    if let Patch::Set(owner) = changes.owner_id {
        if !references.owner_exists(conn, workspace, owner)? {
            return Err(StoreError::invalid("unknown_owner", field("owner_id"), format!("there is no user {owner}")));
        }
    }
    if let Patch::Set(company) = changes.company_id {
        if !references.company_exists(conn, workspace, company)? {
            return Err(StoreError::invalid(
                "unknown_company",
                field("company_id"),
                format!("there is no company {company}"),
            ));
        }
    }
    Ok(())
}

fn insert_contact(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    references: &References,
    changes: &ContactChanges,
) -> StoreResult<ContactId> {
    let mut fields = Map::new();
    for (key, value) in &changes.fields {
        if !value.is_null() {
            fields.insert(key.clone(), value.clone());
        }
    }
    let stage = match &changes.stage {
        Some(stage) => stage.as_str(),
        None => references.first_stage()?,
    };
    let system = &changes.system;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO contacts (workspace_id, email, phone, user_id, first_name, last_name, title, company_name,
                 city, province, country, source, owner_id, company_id, fields, stage, status, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)",
        )
        .context("preparing insert_contact")?;
    insert
        .execute(params![
            context.workspace.get(),
            set_text(&changes.email, |email| email.as_str()),
            set_text(&changes.phone, |phone| phone.as_str()),
            set_text(&changes.user_id, String::as_str),
            set_text(&system.first_name, |text| text.as_str()),
            set_text(&system.last_name, |text| text.as_str()),
            set_text(&system.title, |text| text.as_str()),
            set_text(&system.company_name, |text| text.as_str()),
            set_text(&system.city, |text| text.as_str()),
            set_text(&system.province, |text| text.as_str()),
            set_text(&system.country, |text| text.as_str()),
            set_text(&system.source, |text| text.as_str()),
            set_id(&changes.owner_id, UserId::get),
            set_id(&changes.company_id, CompanyId::get),
            Value::Object(fields).to_string(),
            stage,
            set_text(&changes.status, |status| status.as_str()),
            context.now,
        ])
        .context("inserting a contact")?;
    Ok(ContactId::new(tx.last_insert_rowid()))
}

/// Updates the row in place. Each column gets two parameters: whether to replace it, and the new value.
fn update_row(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    id: ContactId,
    changes: &ContactChanges,
) -> StoreResult<()> {
    if changes.stage.is_some() || !changes.status.is_absent() {
        record_list_changes(tx, context, id, changes)?;
    }
    let field_changes = (!changes.fields.is_empty()).then(|| {
        let patch: Map<String, Value> = changes.fields.iter().cloned().collect();
        Value::Object(patch).to_string()
    });
    let system = &changes.system;
    let (email_set, email) = text_patch(&changes.email, |email| email.as_str());
    let (phone_set, phone) = text_patch(&changes.phone, |phone| phone.as_str());
    let (user_id_set, user_id) = text_patch(&changes.user_id, String::as_str);
    let (first_name_set, first_name) = text_patch(&system.first_name, |text| text.as_str());
    let (last_name_set, last_name) = text_patch(&system.last_name, |text| text.as_str());
    let (title_set, title) = text_patch(&system.title, |text| text.as_str());
    let (company_name_set, company_name) = text_patch(&system.company_name, |text| text.as_str());
    let (city_set, city) = text_patch(&system.city, |text| text.as_str());
    let (province_set, province) = text_patch(&system.province, |text| text.as_str());
    let (country_set, country) = text_patch(&system.country, |text| text.as_str());
    let (source_set, source) = text_patch(&system.source, |text| text.as_str());
    let (owner_set, owner) = id_patch(&changes.owner_id, UserId::get);
    let (company_set, company) = id_patch(&changes.company_id, CompanyId::get);
    let (status_set, status) = text_patch(&changes.status, |status| status.as_str());
    let mut update = tx
        .prepare_cached(
            "UPDATE contacts SET
                 email = iif(?2, ?3, email), phone = iif(?4, ?5, phone), user_id = iif(?6, ?7, user_id),
                 first_name = iif(?8, ?9, first_name), last_name = iif(?10, ?11, last_name),
                 title = iif(?12, ?13, title), company_name = iif(?14, ?15, company_name),
                 city = iif(?16, ?17, city), province = iif(?18, ?19, province), country = iif(?20, ?21, country),
                 source = iif(?22, ?23, source), owner_id = iif(?24, ?25, owner_id),
                 company_id = iif(?26, ?27, company_id),
                 fields = iif(?28 IS NULL, fields, json_patch(fields, ?28)),
                 stage = coalesce(?29, stage), status = iif(?30, ?31, status), updated_at = ?32
             WHERE id = ?1",
        )
        .context("preparing update_contact")?;
    update
        .execute(params![
            id.get(),
            email_set,
            email,
            phone_set,
            phone,
            user_id_set,
            user_id,
            first_name_set,
            first_name,
            last_name_set,
            last_name,
            title_set,
            title,
            company_name_set,
            company_name,
            city_set,
            city,
            province_set,
            province,
            country_set,
            country,
            source_set,
            source,
            owner_set,
            owner,
            company_set,
            company,
            field_changes,
            changes.stage.as_ref().map(|stage| stage.as_str()),
            status_set,
            status,
            context.now,
        ])
        .context("updating a contact")?;
    Ok(())
}

/// Records `stage_changed` and `status_changed` when the changes move the contact.
fn record_list_changes(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    id: ContactId,
    changes: &ContactChanges,
) -> StoreResult<()> {
    let mut current =
        tx.prepare_cached("SELECT stage, status FROM contacts WHERE id = ?1").context("preparing a read")?;
    let (stage, status): (String, Option<String>) =
        current.query_row([id.get()], |row| Ok((row.get(0)?, row.get(1)?))).context("reading stage and status")?;
    let reason = changes.reason.as_deref();
    if let Some(new_stage) = changes.stage.as_ref().filter(|new_stage| new_stage.as_str() != stage) {
        let data = json!({ "from": stage, "to": new_stage.as_str(), "actor": context.actor, "reason": reason });
        record_activity(tx, context.workspace, id, "stage_changed", context.now, &context.actor, &data)?;
    }
    let new_status = match &changes.status {
        Patch::Absent => return Ok(()),
        Patch::Clear => None,
        Patch::Set(new_status) => Some(new_status.as_str()),
    };
    if new_status != status.as_deref() {
        let data = json!({ "from": status, "to": new_status, "actor": context.actor, "reason": reason });
        record_activity(tx, context.workspace, id, "status_changed", context.now, &context.actor, &data)?;
    }
    Ok(())
}

pub(crate) fn add_identity(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: ContactId,
    identity: &Identity,
) -> StoreResult<()> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO contact_identities (workspace_id, kind, value, contact_id) VALUES (?1, ?2, ?3, ?4)",
        )
        .context("preparing add_identity")?;
    insert
        .execute(params![workspace.get(), identity.kind().as_str(), identity.value(), id.get()])
        .context("adding an identity")?;
    Ok(())
}

fn identity_conflict(identity: &Identity, field: &dyn Fn(&str) -> String) -> StoreError {
    let message = format!("{} {} belongs to another contact", field(identity.kind().as_str()), identity.value());
    StoreError::conflict("identity_conflict", message)
}

fn row_exists(conn: &Connection, sql: &str, workspace: WorkspaceId, id: i64) -> StoreResult<bool> {
    let mut statement = conn.prepare_cached(sql).context("preparing an existence check")?;
    Ok(statement.query_row(params![workspace.get(), id], |row| row.get(0)).context("checking existence")?)
}

fn set_text<T>(patch: &Patch<T>, text: impl Fn(&T) -> &str) -> Option<&str> {
    match patch {
        Patch::Set(value) => Some(text(value)),
        Patch::Absent | Patch::Clear => None,
    }
}

fn set_id<T: Copy>(patch: &Patch<T>, raw: impl Fn(T) -> i64) -> Option<i64> {
    match patch {
        Patch::Set(value) => Some(raw(*value)),
        Patch::Absent | Patch::Clear => None,
    }
}

fn text_patch<T>(patch: &Patch<T>, text: impl Fn(&T) -> &str) -> (bool, Option<&str>) {
    (!patch.is_absent(), set_text(patch, text))
}

fn id_patch<T: Copy>(patch: &Patch<T>, raw: impl Fn(T) -> i64) -> (bool, Option<i64>) {
    (!patch.is_absent(), set_id(patch, raw))
}

pub(crate) const CONTACT_COLUMNS: &str =
    "id, workspace_id, email, phone, user_id, first_name, last_name, title, company_name,
    city, province, country, source, owner_id, company_id, fields, stage, status, created_at, updated_at";

pub(crate) fn contact_from_row(row: &Row<'_>) -> rusqlite::Result<Contact> {
    Ok(Contact {
        id: ContactId::new(row.get(0)?),
        workspace_id: WorkspaceId::new(row.get(1)?),
        email: row.get(2)?,
        phone: row.get(3)?,
        user_id: row.get(4)?,
        first_name: row.get(5)?,
        last_name: row.get(6)?,
        title: row.get(7)?,
        company_name: row.get(8)?,
        city: row.get(9)?,
        province: row.get(10)?,
        country: row.get(11)?,
        source: row.get(12)?,
        owner_id: row.get::<_, Option<i64>>(13)?.map(UserId::new),
        company_id: row.get::<_, Option<i64>>(14)?.map(CompanyId::new),
        fields: json_object_at(row, 15)?,
        tags: Vec::new(),
        identities: Vec::new(),
        stage: row.get(16)?,
        status: row.get(17)?,
        created_at: time_at(row, 18)?,
        updated_at: time_at(row, 19)?,
    })
}

/// Fills in the identities and tags of a page of contacts with one query each.
pub(crate) fn with_identities_and_tags(conn: &Connection, mut contacts: Vec<Contact>) -> StoreResult<Vec<Contact>> {
    if contacts.is_empty() {
        return Ok(contacts);
    }
    let ids = Value::from(contacts.iter().map(|contact| contact.id.get()).collect::<Vec<_>>()).to_string();
    let position: HashMap<ContactId, usize> =
        contacts.iter().enumerate().map(|(index, contact)| (contact.id, index)).collect();

    let mut identities = conn
        .prepare_cached(
            "SELECT contact_id, kind, value FROM contact_identities
             WHERE contact_id IN (SELECT value FROM json_each(?1))",
        )
        .context("preparing the identities of contacts")?;
    let rows = identities
        .query_map([&ids], |row| {
            let kind = parsed_at(row, 1, IdentityKind::parse)?;
            Ok((ContactId::new(row.get(0)?), Identity::from_stored(kind, row.get(2)?)))
        })
        .context("reading identities")?;
    for row in rows {
        let (id, identity) = row.context("reading an identity")?;
        if let Some(&index) = position.get(&id) {
            contacts[index].identities.push(identity);
        }
    }

    let mut tags = conn
        .prepare_cached(
            "SELECT contact_tags.contact_id, tags.path FROM contact_tags JOIN tags ON tags.id = contact_tags.tag_id
             WHERE contact_tags.contact_id IN (SELECT value FROM json_each(?1))",
        )
        .context("preparing the tags of contacts")?;
    let rows = tags
        .query_map([&ids], |row| Ok((ContactId::new(row.get(0)?), row.get::<_, String>(1)?)))
        .context("reading tags")?;
    for row in rows {
        let (id, path) = row.context("reading a tag link")?;
        if let Some(&index) = position.get(&id) {
            contacts[index].tags.push(path);
        }
    }

    for contact in &mut contacts {
        contact.identities.sort();
        contact.tags.sort();
    }
    Ok(contacts)
}

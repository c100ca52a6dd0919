//! The contact write planner behind `upsert_contacts` and `update_contact`, and the bulk creation of contacts that
//! events name by a new identity.
//!
//! A call reads everything it needs up front with one query per kind (stages and statuses, owners, companies, the
//! tags it names, the owners of its identities, the rows of the contacts those own), applies the items in order to
//! that in-memory picture (so a later item sees what an earlier one did), and then writes each table once with
//! `UNNEST`ed arrays. A batch of a thousand contacts costs about a dozen round trips.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use rapport_domain::{
    CompanyId, ContactChanges, ContactId, Identity, IdentityKind, Patch, Slug, TagKind, TagPath, UserId, WorkspaceId,
};
use rapport_store::{Actor, StoreError, StoreResult, UpsertOutcome};
use serde_json::{Map, Value, json};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres};

use crate::companies::merge_fields;
use crate::connection::{WorkspaceLock, lock_workspace};
use crate::history::{Activity, insert_activities};
use crate::sql::{stored_identity_kind, unique_conflict};
use crate::tags::{TagLibrary, allocate_ids};

/// Which contact an item's changes go to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// The contact owning the first of the item's identities (user id, email, phone) that has an owner; a new
    /// contact when none has.
    Match,
    /// This contact; not found when it does not exist in the workspace.
    Contact(ContactId),
}

/// Applies `items` in order inside the caller's transaction and returns one outcome per item. Takes the contact
/// lock (and the tag library lock when tags are named). Field names in errors are prefixed with `contacts[i].`
/// when `batch` is set.
pub(crate) async fn write_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    items: Vec<(Target, ContactChanges)>,
    actor: Actor,
    batch: bool,
) -> StoreResult<Vec<UpsertOutcome>> {
    lock_workspace(connection, workspace, WorkspaceLock::Contacts).await?;
    let references = References::load(connection, workspace, &items).await?;

    let tag_paths: Vec<TagPath> = items.iter().flat_map(|(_, changes)| changes.add_tags.iter().cloned()).collect();
    let mut library = if tag_paths.is_empty() {
        TagLibrary::load(connection, workspace, &[]).await?
    } else {
        lock_workspace(connection, workspace, WorkspaceLock::TagLibrary).await?;
        TagLibrary::load(connection, workspace, &tag_paths).await?
    };

    let mut identities: Vec<Identity> = items.iter().flat_map(|(_, changes)| changes.match_identities()).collect();
    identities.sort_unstable();
    identities.dedup();
    let owners = resolve_identities(connection, workspace, &identities).await?;

    let mut wanted: Vec<i64> = owners.values().copied().collect();
    wanted.extend(items.iter().filter_map(|(target, _)| match target {
        Target::Contact(id) => Some(id.get()),
        Target::Match => None,
    }));
    wanted.sort_unstable();
    wanted.dedup();
    let rows = load_states(connection, workspace, &wanted).await?;
    let mut plan = Plan::new(actor, batch, rows, owners);
    plan.load_tag_links(connection, &tag_paths, &library).await?;

    for (index, (target, changes)) in items.into_iter().enumerate() {
        plan.apply(index, target, changes, &references, &library)?;
    }
    plan.write(connection, workspace, &mut library).await
}

/// Creates one contact per identity, in the workspace's first stage, as events do for people seen for the first
/// time. The primary email, phone or user id mirrors the identity. The caller holds the contact lock and has
/// checked that no contact owns these identities.
pub(crate) async fn create_identified_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    identities: &[Identity],
) -> StoreResult<Vec<ContactId>> {
    let first_stage: Option<String> = sqlx::query_scalar(
        "SELECT key FROM list_entries WHERE workspace_id = $1 AND list = 'stage' ORDER BY position, key LIMIT 1",
    )
    .bind(workspace.get())
    .fetch_optional(&mut *connection)
    .await
    .context("reading the first stage")?;
    let first_stage = first_stage.context("the workspace has no stage")?;
    let ids = allocate_ids(connection, "contacts_id_seq", identities.len()).await?;
    let mut columns = ContactColumns::default();
    let mut new_identities = IdentityColumns::default();
    for (identity, id) in identities.iter().zip(&ids) {
        let mut state = ContactState::new(first_stage.clone());
        state.id = *id;
        let primary = |kind: IdentityKind| (identity.kind() == kind).then(|| identity.value().to_owned());
        state.email = primary(IdentityKind::Email);
        state.phone = primary(IdentityKind::Phone);
        state.user_id = primary(IdentityKind::UserId);
        columns.push(&state);
        new_identities.push(identity, *id);
    }
    insert_contacts(connection, workspace, &columns).await?;
    new_identities.insert(connection, workspace).await?;
    Ok(ids.into_iter().map(ContactId::new).collect())
}

/// The contacts that own `identities` in the workspace.
pub(crate) async fn resolve_identities(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    identities: &[Identity],
) -> StoreResult<HashMap<Identity, i64>> {
    if identities.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<&str> = identities.iter().map(|identity| identity.kind().as_str()).collect();
    let values: Vec<&str> = identities.iter().map(Identity::value).collect();
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT i.kind, i.value, i.contact_id
         FROM UNNEST($2::text[], $3::text[]) AS wanted (kind, value)
         JOIN contact_identities i ON i.workspace_id = $1 AND i.kind = wanted.kind AND i.value = wanted.value",
    )
    .bind(workspace.get())
    .bind(&kinds)
    .bind(&values)
    .fetch_all(connection)
    .await
    .context("resolving identities")?;
    let mut owners = HashMap::with_capacity(rows.len());
    for (kind, value, contact) in rows {
        owners.insert(Identity::from_stored(stored_identity_kind(&kind)?, value), contact);
    }
    Ok(owners)
}

/// The reference data that changes are checked against, loaded once per call.
struct References {
    /// Stage keys in list order; the first is where new contacts start.
    stages: Vec<String>,
    statuses: HashSet<String>,
    owners: HashSet<i64>,
    companies: HashSet<i64>,
}

impl References {
    /// Owners and companies are read `FOR KEY SHARE`, so that they cannot disappear before the contacts that now
    /// point at them are written.
    async fn load(
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        items: &[(Target, ContactChanges)],
    ) -> StoreResult<References> {
        let entries: Vec<(String, String)> =
            sqlx::query_as("SELECT list, key FROM list_entries WHERE workspace_id = $1 ORDER BY list, position, key")
                .bind(workspace.get())
                .fetch_all(&mut *connection)
                .await
                .context("reading stages and lead statuses")?;
        let mut stages = Vec::new();
        let mut statuses = HashSet::new();
        for (list, key) in entries {
            if list == "stage" {
                stages.push(key);
            } else {
                statuses.insert(key);
            }
        }
        let owner_ids: Vec<i64> =
            items.iter().filter_map(|(_, changes)| patch_value(&changes.owner_id).map(|id| UserId::get(*id))).collect();
        let company_ids: Vec<i64> = items
            .iter()
            .filter_map(|(_, changes)| patch_value(&changes.company_id).map(|id| CompanyId::get(*id)))
            .collect();
        let owners = existing_ids(connection, "users", workspace, owner_ids).await?;
        let companies = existing_ids(connection, "companies", workspace, company_ids).await?;
        Ok(References { stages, statuses, owners, companies })
    }

    fn check(&self, changes: &ContactChanges, field: &dyn Fn(&str) -> String) -> StoreResult<()> {
        if let Some(stage) = &changes.stage {
            if !self.stages.iter().any(|key| key == stage.as_str()) {
                return Err(StoreError::invalid("unknown_stage", field("stage"), format!("there is no stage {stage}")));
            }
        }
        if let Patch::Set(status) = &changes.status {
            if !self.statuses.contains(status.as_str()) {
                let message = format!("there is no lead status {status}");
                return Err(StoreError::invalid("unknown_status", field("status"), message));
            }
        }
        if let Patch::Set(owner) = changes.owner_id {
            if !self.owners.contains(&owner.get()) {
                return Err(StoreError::invalid("unknown_owner", field("owner_id"), format!("there is no user {owner}")));
            }
        }
        if let Patch::Set(company) = changes.company_id {
            if !self.companies.contains(&company.get()) {
                let message = format!("there is no company {company}");
                return Err(StoreError::invalid("unknown_company", field("company_id"), message));
            }
        }
        Ok(())
    }

    fn first_stage(&self) -> StoreResult<&str> {
        Ok(self.stages.first().context("the workspace has no stage")?)
    }
}

async fn existing_ids(
    connection: &mut PgConnection,
    table: &str,
    workspace: WorkspaceId,
    mut ids: Vec<i64>,
) -> StoreResult<HashSet<i64>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let sql = format!("SELECT id FROM {table} WHERE workspace_id = $1 AND id = ANY($2) FOR KEY SHARE");
    let found: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(workspace.get())
        .bind(&ids)
        .fetch_all(connection)
        .await
        .with_context(|| format!("checking references to {table}"))?;
    Ok(found.into_iter().collect())
}

fn patch_value<T>(patch: &Patch<T>) -> Option<&T> {
    match patch {
        Patch::Set(value) => Some(value),
        Patch::Absent | Patch::Clear => None,
    }
}

/// Every column of a contact that a change may write.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ContactState {
    id: i64,
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
    fields: Json<Map<String, Value>>,
    stage: String,
    status: Option<String>,
}

impl ContactState {
    /// A contact that is yet to be inserted; its id is assigned when the plan is written.
    fn new(stage: String) -> ContactState {
        ContactState {
            id: 0,
            email: None,
            phone: None,
            user_id: None,
            first_name: None,
            last_name: None,
            title: None,
            company_name: None,
            city: None,
            province: None,
            country: None,
            source: None,
            owner_id: None,
            company_id: None,
            fields: Json(Map::new()),
            stage,
            status: None,
        }
    }

    /// Applies the columns of `changes`; stage, status, identities and tags are the planner's.
    fn apply_columns(&mut self, changes: &mut ContactChanges) {
        fn text<T: Clone>(patch: &Patch<T>, into: impl Fn(T) -> String, current: &mut Option<String>) {
            match patch {
                Patch::Absent => {}
                Patch::Clear => *current = None,
                Patch::Set(value) => *current = Some(into(value.clone())),
            }
        }
        text(&changes.email, |email| email.into_string(), &mut self.email);
        text(&changes.phone, |phone| phone.into_string(), &mut self.phone);
        text(&changes.user_id, |user_id| user_id, &mut self.user_id);
        let system = &changes.system;
        text(&system.first_name, |value| value.into_string(), &mut self.first_name);
        text(&system.last_name, |value| value.into_string(), &mut self.last_name);
        text(&system.title, |value| value.into_string(), &mut self.title);
        text(&system.company_name, |value| value.into_string(), &mut self.company_name);
        text(&system.city, |value| value.into_string(), &mut self.city);
        text(&system.province, |value| value.into_string(), &mut self.province);
        text(&system.country, |value| value.into_string(), &mut self.country);
        text(&system.source, |value| value.into_string(), &mut self.source);
        self.owner_id = changes.owner_id.clone().map(UserId::get).apply_to(self.owner_id);
        self.company_id = changes.company_id.clone().map(CompanyId::get).apply_to(self.company_id);
        merge_fields(&mut self.fields.0, std::mem::take(&mut changes.fields));
    }
}

async fn load_states(connection: &mut PgConnection, workspace: WorkspaceId, ids: &[i64]) -> StoreResult<Vec<ContactState>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as(
        "SELECT id, email, phone, user_id, first_name, last_name, title, company_name, city, province, country,
             source, owner_id, company_id, fields, stage, status
         FROM contacts WHERE workspace_id = $1 AND id = ANY($2) FOR NO KEY UPDATE",
    )
    .bind(workspace.get())
    .bind(ids)
    .fetch_all(connection)
    .await
    .context("reading the contacts to change")?;
    Ok(rows)
}

/// One contact the call touches.
struct Planned {
    state: ContactState,
    /// Inserted by this call.
    new: bool,
    /// An existing row that needs writing back.
    changed: bool,
    /// The paths of the call's tags that the contact carries.
    tags: HashSet<String>,
}

/// The in-memory picture of the contacts one call touches, and what it will write. Contacts are addressed by slot
/// (their index in `contacts`) because new ones have no id until the plan is written.
struct Plan {
    actor: String,
    batch: bool,
    contacts: Vec<Planned>,
    slot_by_id: HashMap<i64, usize>,
    identity_owners: HashMap<Identity, usize>,
    new_identities: Vec<(Identity, usize)>,
    new_links: Vec<(usize, TagPath)>,
    activities: Vec<(usize, &'static str, Value)>,
    outcomes: Vec<(usize, bool)>,
}

impl Plan {
    fn new(actor: Actor, batch: bool, rows: Vec<ContactState>, owners: HashMap<Identity, i64>) -> Plan {
        let mut slot_by_id = HashMap::with_capacity(rows.len());
        let contacts: Vec<Planned> = rows
            .into_iter()
            .enumerate()
            .map(|(slot, state)| {
                slot_by_id.insert(state.id, slot);
                Planned { state, new: false, changed: false, tags: HashSet::new() }
            })
            .collect();
        let identity_owners = owners
            .into_iter()
            .filter_map(|(identity, owner)| slot_by_id.get(&owner).map(|slot| (identity, *slot)))
            .collect();
        Plan {
            actor: actor.to_string(),
            batch,
            contacts,
            slot_by_id,
            identity_owners,
            new_identities: Vec::new(),
            new_links: Vec::new(),
            activities: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Reads which of the call's tags the loaded contacts already carry.
    async fn load_tag_links(
        &mut self,
        connection: &mut PgConnection,
        paths: &[TagPath],
        library: &TagLibrary,
    ) -> StoreResult<()> {
        let mut tag_paths: HashMap<i64, String> = HashMap::new();
        for path in paths {
            let text = path.to_string();
            if let Some((id, _)) = library.find(&text) {
                tag_paths.insert(id.get(), text);
            }
        }
        if tag_paths.is_empty() || self.contacts.is_empty() {
            return Ok(());
        }
        let contact_ids: Vec<i64> = self.slot_by_id.keys().copied().collect();
        let tag_ids: Vec<i64> = tag_paths.keys().copied().collect();
        let links: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT contact_id, tag_id FROM contact_tags WHERE contact_id = ANY($1) AND tag_id = ANY($2)",
        )
        .bind(&contact_ids)
        .bind(&tag_ids)
        .fetch_all(connection)
        .await
        .context("reading the contacts' tags")?;
        for (contact, tag) in links {
            if let (Some(slot), Some(path)) = (self.slot_by_id.get(&contact), tag_paths.get(&tag)) {
                self.contacts[*slot].tags.insert(path.clone());
            }
        }
        Ok(())
    }

    fn field(&self, index: usize, name: &str) -> String {
        if self.batch { format!("contacts[{index}].{name}") } else { name.to_owned() }
    }

    fn apply(
        &mut self,
        index: usize,
        target: Target,
        mut changes: ContactChanges,
        references: &References,
        library: &TagLibrary,
    ) -> StoreResult<()> {
        let field = |name: &str| self.field(index, name);
        let identities = changes.match_identities();
        let matched = match target {
            Target::Match => {
                let mut matched = None;
                for identity in &identities {
                    let Some(&owner) = self.identity_owners.get(identity) else { continue };
                    match matched {
                        None => matched = Some(owner),
                        Some(selected) if selected != owner => return Err(identity_conflict(identity, &field)),
                        Some(_) => {}
                    }
                }
                matched
            }
            Target::Contact(id) => {
                let slot = *self.slot_by_id.get(&id.get()).ok_or(StoreError::not_found("contact"))?;
                for identity in &identities {
                    if self.identity_owners.get(identity).is_some_and(|owner| *owner != slot) {
                        return Err(identity_conflict(identity, &field));
                    }
                }
                Some(slot)
            }
        };
        references.check(&changes, &field)?;
        let tags_field = field("tags");

        let slot = match matched {
            Some(slot) => {
                self.record_list_changes(slot, &changes);
                let planned = &mut self.contacts[slot];
                planned.state.apply_columns(&mut changes);
                if let Some(stage) = &changes.stage {
                    planned.state.stage = stage.as_str().to_owned();
                }
                planned.state.status = changes.status.clone().map(Slug::into_string).apply_to(planned.state.status.take());
                planned.changed |= !planned.new;
                slot
            }
            None => {
                let stage = match &changes.stage {
                    Some(stage) => stage.as_str(),
                    None => references.first_stage()?,
                };
                let mut state = ContactState::new(stage.to_owned());
                state.apply_columns(&mut changes);
                state.status = changes.status.clone().map(Slug::into_string).apply_to(None);
                self.contacts.push(Planned { state, new: true, changed: false, tags: HashSet::new() });
                self.contacts.len() - 1
            }
        };
        for identity in identities {
            if !self.identity_owners.contains_key(&identity) {
                self.identity_owners.insert(identity.clone(), slot);
                self.new_identities.push((identity, slot));
            }
        }
        for path in changes.add_tags {
            let text = path.to_string();
            library.check_manual(&text, &tags_field)?;
            if self.contacts[slot].tags.insert(text.clone()) {
                let data = json!({ "tag": text, "actor": self.actor });
                self.activities.push((slot, "tag_added", data));
                self.new_links.push((slot, path));
            }
        }
        self.outcomes.push((slot, matched.is_none()));
        Ok(())
    }

    /// Records `stage_changed` and `status_changed` when the changes move an existing contact.
    fn record_list_changes(&mut self, slot: usize, changes: &ContactChanges) {
        let state = &self.contacts[slot].state;
        let reason = changes.reason.as_deref();
        let mut recorded = Vec::new();
        if let Some(stage) = changes.stage.as_ref().filter(|stage| stage.as_str() != state.stage) {
            let data = json!({ "from": state.stage, "to": stage.as_str(), "actor": self.actor, "reason": reason });
            recorded.push((slot, "stage_changed", data));
        }
        let new_status = match &changes.status {
            Patch::Absent => None,
            Patch::Clear => Some(None),
            Patch::Set(status) => Some(Some(status.as_str())),
        };
        if let Some(new_status) = new_status.filter(|new_status| *new_status != state.status.as_deref()) {
            let data = json!({ "from": state.status, "to": new_status, "actor": self.actor, "reason": reason });
            recorded.push((slot, "status_changed", data));
        }
        self.activities.extend(recorded);
    }

    async fn write(
        mut self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        library: &mut TagLibrary,
    ) -> StoreResult<Vec<UpsertOutcome>> {
        let new_slots: Vec<usize> = (0..self.contacts.len()).filter(|slot| self.contacts[*slot].new).collect();
        let ids = allocate_ids(connection, "contacts_id_seq", new_slots.len()).await?;
        for (slot, id) in new_slots.iter().zip(ids) {
            self.contacts[*slot].state.id = id;
        }

        let mut inserted = ContactColumns::default();
        let mut updated = ContactColumns::default();
        for planned in &self.contacts {
            if planned.new {
                inserted.push(&planned.state);
            } else if planned.changed {
                updated.push(&planned.state);
            }
        }
        if !inserted.id.is_empty() {
            insert_contacts(connection, workspace, &inserted).await?;
        }
        if !updated.id.is_empty() {
            update_contacts(connection, workspace, &updated).await?;
        }

        let mut identities = IdentityColumns::default();
        for (identity, slot) in &self.new_identities {
            identities.push(identity, self.contacts[*slot].state.id);
        }
        identities.insert(connection, workspace).await?;

        if !self.new_links.is_empty() {
            library.create_missing(connection, workspace, self.new_links.iter().map(|(_, path)| path), TagKind::Manual).await?;
            let mut contact_ids = Vec::with_capacity(self.new_links.len());
            let mut tag_ids = Vec::with_capacity(self.new_links.len());
            for (slot, path) in &self.new_links {
                let (tag, _) = library.find(&path.to_string()).context("every linked tag is in the library")?;
                contact_ids.push(self.contacts[*slot].state.id);
                tag_ids.push(tag.get());
            }
            sqlx::query(
                "INSERT INTO contact_tags (contact_id, tag_id, added_at)
                 SELECT contact_id, tag_id, now() FROM UNNEST($1::bigint[], $2::bigint[]) AS l (contact_id, tag_id)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&contact_ids)
            .bind(&tag_ids)
            .execute(&mut *connection)
            .await
            .context("linking tags")?;
        }

        let activities: Vec<Activity> = self
            .activities
            .into_iter()
            .map(|(slot, kind, data)| Activity {
                contact_id: self.contacts[slot].state.id,
                kind,
                actor: self.actor.clone(),
                data,
            })
            .collect();
        insert_activities(connection, workspace, activities).await?;

        Ok(self
            .outcomes
            .into_iter()
            .map(|(slot, created)| UpsertOutcome { id: ContactId::new(self.contacts[slot].state.id), created })
            .collect())
    }
}

fn identity_conflict(identity: &Identity, field: &dyn Fn(&str) -> String) -> StoreError {
    let message = format!("{} {} belongs to another contact", field(identity.kind().as_str()), identity.value());
    StoreError::conflict("identity_conflict", message)
}

/// Contact rows as parallel arrays, the shape `UNNEST` takes.
#[derive(Default)]
struct ContactColumns {
    id: Vec<i64>,
    email: Vec<Option<String>>,
    phone: Vec<Option<String>>,
    user_id: Vec<Option<String>>,
    first_name: Vec<Option<String>>,
    last_name: Vec<Option<String>>,
    title: Vec<Option<String>>,
    company_name: Vec<Option<String>>,
    city: Vec<Option<String>>,
    province: Vec<Option<String>>,
    country: Vec<Option<String>>,
    source: Vec<Option<String>>,
    owner_id: Vec<Option<i64>>,
    company_id: Vec<Option<i64>>,
    fields: Vec<Value>,
    stage: Vec<String>,
    status: Vec<Option<String>>,
}

/// The `UNNEST` of [`ContactColumns`] bound from `$2` on, aliased `u`.
macro_rules! unnest_contacts {
    () => {
        "UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
             $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::jsonb[],
             $17::text[], $18::text[])
         AS u (id, email, phone, user_id, first_name, last_name, title, company_name, city, province, country,
             source, owner_id, company_id, fields, stage, status)"
    };
}

impl ContactColumns {
    fn push(&mut self, state: &ContactState) {
        self.id.push(state.id);
        self.email.push(state.email.clone());
        self.phone.push(state.phone.clone());
        self.user_id.push(state.user_id.clone());
        self.first_name.push(state.first_name.clone());
        self.last_name.push(state.last_name.clone());
        self.title.push(state.title.clone());
        self.company_name.push(state.company_name.clone());
        self.city.push(state.city.clone());
        self.province.push(state.province.clone());
        self.country.push(state.country.clone());
        self.source.push(state.source.clone());
        self.owner_id.push(state.owner_id);
        self.company_id.push(state.company_id);
        self.fields.push(Value::Object(state.fields.0.clone()));
        self.stage.push(state.stage.clone());
        self.status.push(state.status.clone());
    }

    fn bind<'q>(&'q self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(&self.id)
            .bind(&self.email)
            .bind(&self.phone)
            .bind(&self.user_id)
            .bind(&self.first_name)
            .bind(&self.last_name)
            .bind(&self.title)
            .bind(&self.company_name)
            .bind(&self.city)
            .bind(&self.province)
            .bind(&self.country)
            .bind(&self.source)
            .bind(&self.owner_id)
            .bind(&self.company_id)
            .bind(&self.fields)
            .bind(&self.stage)
            .bind(&self.status)
    }
}

async fn insert_contacts(connection: &mut PgConnection, workspace: WorkspaceId, columns: &ContactColumns) -> StoreResult<()> {
    let query = sqlx::query(concat!(
        "INSERT INTO contacts (id, workspace_id, email, phone, user_id, first_name, last_name, title, company_name,
             city, province, country, source, owner_id, company_id, fields, stage, status, created_at, updated_at)
         SELECT u.id, $1, u.email, u.phone, u.user_id, u.first_name, u.last_name, u.title, u.company_name, u.city,
             u.province, u.country, u.source, u.owner_id, u.company_id, u.fields, u.stage, u.status, now(), now()
         FROM ",
        unnest_contacts!()
    ))
    .bind(workspace.get());
    columns.bind(query).execute(connection).await.context("inserting contacts")?;
    Ok(())
}

/// Writes whole rows back; every updated contact's `updated_at` becomes the transaction's time.
async fn update_contacts(connection: &mut PgConnection, workspace: WorkspaceId, columns: &ContactColumns) -> StoreResult<()> {
    let query = sqlx::query(concat!(
        "UPDATE contacts c SET email = u.email, phone = u.phone, user_id = u.user_id, first_name = u.first_name,
             last_name = u.last_name, title = u.title, company_name = u.company_name, city = u.city,
             province = u.province, country = u.country, source = u.source, owner_id = u.owner_id,
             company_id = u.company_id, fields = u.fields, stage = u.stage, status = u.status, updated_at = now()
         FROM ",
        unnest_contacts!(),
        " WHERE c.workspace_id = $1 AND c.id = u.id"
    ))
    .bind(workspace.get());
    columns.bind(query).execute(connection).await.context("updating contacts")?;
    Ok(())
}

/// New identity rows as parallel arrays.
#[derive(Default)]
struct IdentityColumns {
    kinds: Vec<&'static str>,
    values: Vec<String>,
    contact_ids: Vec<i64>,
}

impl IdentityColumns {
    fn push(&mut self, identity: &Identity, contact: i64) {
        self.kinds.push(identity.kind().as_str());
        self.values.push(identity.value().to_owned());
        self.contact_ids.push(contact);
    }

    /// The contact lock makes a clash impossible; should one happen anyway it still reads as the caller's conflict.
    async fn insert(&self, connection: &mut PgConnection, workspace: WorkspaceId) -> StoreResult<()> {
        if self.kinds.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO contact_identities (workspace_id, kind, value, contact_id)
             SELECT $1, kind, value, contact_id FROM UNNEST($2::text[], $3::text[], $4::bigint[])
                 AS i (kind, value, contact_id)",
        )
        .bind(workspace.get())
        .bind(&self.kinds)
        .bind(&self.values)
        .bind(&self.contact_ids)
        .execute(connection)
        .await
        .map_err(|error| {
            let conflict = || StoreError::conflict("identity_conflict", "an identity belongs to another contact");
            unique_conflict(error, "contact_identities_pkey", conflict, "inserting identities")
        })?;
        Ok(())
    }
}

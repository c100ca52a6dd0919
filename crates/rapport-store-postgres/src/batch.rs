//! The contact write planner behind `upsert_contacts` and `update_contact`, and the bulk creation of contacts that
//! events name by a new identity.
//!
//! A call reads everything it needs up front with one query per kind (stages and statuses, owners, companies, the
//! tags it names, the owners of its identities, the rows of the contacts those own), applies the items in order to
//! that in-memory picture (so a later item sees what an earlier one did), and then writes each table once with
//! `UNNEST`ed arrays. A batch of a thousand contacts costs about a dozen round trips.
//!
//! `plan.rs` holds the in-memory picture and what it will write; `rows.rs` the contact rows and the statements
//! that read and write them as arrays.

mod plan;
mod rows;

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use rapport_domain::{
    CompanyId, ContactChanges, ContactId, Identity, IdentityKind, Patch, TagPath, UserId, WorkspaceId,
};
use rapport_store::{StoreError, StoreResult, UpsertOutcome};
use sqlx::PgConnection;

use crate::connection::{LockMode, WorkspaceLock, lock_workspace};
use crate::sql::stored_identity_kind;
use crate::tags::{TagLibrary, allocate_ids};
use plan::Plan;
use rows::{ContactColumns, ContactState, IdentityColumns, insert_contacts, load_states};

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
/// lock (and the tag library lock when tags are named). `actor` is who the history records (`api_key:3`,
/// `source:2`, …). Field names in errors are prefixed with `contacts[i].` when `batch` is set.
pub(crate) async fn write_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    items: Vec<(Target, ContactChanges)>,
    actor: &str,
    batch: bool,
) -> StoreResult<Vec<UpsertOutcome>> {
    for (lock, _) in contact_write_locks(&items) {
        lock_workspace(connection, workspace, lock).await?;
    }
    write_locked_contacts(connection, workspace, items, actor, batch).await
}

/// The locks [`write_contacts`] takes for `items`, in lock order: the contact lock, and the tag library lock when
/// the items name tags.
pub(crate) fn contact_write_locks(items: &[(Target, ContactChanges)]) -> Vec<(WorkspaceLock, LockMode)> {
    let mut locks = vec![(WorkspaceLock::Contacts, LockMode::Exclusive)];
    if items.iter().any(|(_, changes)| !changes.add_tags.is_empty()) {
        locks.push((WorkspaceLock::TagLibrary, LockMode::Exclusive));
    }
    locks
}

/// [`write_contacts`] for a caller that holds the locks of [`contact_write_locks`] already.
pub(crate) async fn write_locked_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    items: Vec<(Target, ContactChanges)>,
    actor: &str,
    batch: bool,
) -> StoreResult<Vec<UpsertOutcome>> {
    let references = References::load(connection, workspace, &items).await?;

    let tag_paths: Vec<TagPath> = items.iter().flat_map(|(_, changes)| changes.add_tags.iter().cloned()).collect();
    let mut library = TagLibrary::load(connection, workspace, &tag_paths).await?;

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
        "SELECT wanted.kind, wanted.value, i.contact_id
         FROM UNNEST($2::text[], $3::text[]) AS wanted (kind, value)
         CROSS JOIN LATERAL (
             SELECT contact_id FROM contact_identities
             WHERE workspace_id = $1 AND kind = wanted.kind AND value = wanted.value OFFSET 0
         ) AS i",
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
    /// The owners and companies checked here stay until the contacts that point at them are written: deleting a
    /// user or a company takes the contact lock, which the caller holds.
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
                return Err(StoreError::invalid(
                    "unknown_owner",
                    field("owner_id"),
                    format!("there is no user {owner}"),
                ));
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
    let sql = format!("SELECT id FROM {table} WHERE workspace_id = $1 AND id = ANY($2)");
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

//! Merging two contacts into one, and the pointers that keep an absorbed id leading to its survivor.
//!
//! A merge is one change: everything that hangs off the absorbed contact (identities, tag links, activities,
//! events, the documents only its events used, message ids, pointers of earlier merges) is re-pointed with one
//! statement, the absorbed row is deleted with its segment memberships (the audience engine decides the survivor's
//! anew), and the survivor's row is rewritten with the merged values.
//!
//! A merge deletes a contact, so it holds the erasure lock exclusively, like erasure does: event ingestion, which
//! resolves contacts without the contact lock, holds it shared and so never writes an event for a contact that a
//! merge is taking away.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{Contact, ContactId, WorkspaceId, merged_fields};
use rapport_store::{Actor, MergeReason, StoreError, StoreResult};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::connection::{LockMode, PostgresStore, WorkspaceLock, commit};
use crate::contacts::get_contact;
use crate::history::{Activity, insert_activities};

impl PostgresStore {
    pub(crate) async fn merge_contacts(
        &self,
        workspace: WorkspaceId,
        survivor: ContactId,
        absorbed: ContactId,
        reason: MergeReason,
        actor: Actor,
    ) -> StoreResult<Contact> {
        if survivor == absorbed {
            return Err(StoreError::invalid("same_contact", "absorb", "a contact cannot be merged into itself"));
        }
        let mut tx = self.begin_locked(workspace, &MERGE_LOCKS).await?;
        let stages = stage_order(&mut tx, workspace).await?;
        merge_into(&mut tx, workspace, survivor, absorbed, reason, &actor.to_string(), &stages).await?;
        let contact = get_contact(&mut tx, workspace, survivor).await?;
        commit(tx).await?;
        Ok(contact)
    }

    /// Pointers are kept flat (see the migration), so this is one look-up.
    pub(crate) async fn merged_into(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Option<ContactId>> {
        let survivor: Option<i64> =
            sqlx::query_scalar("SELECT survivor_id FROM contact_merges WHERE absorbed_id = $1 AND workspace_id = $2")
                .bind(id.get())
                .bind(workspace.get())
                .fetch_optional(&self.pool)
                .await
                .context("following a merge")?;
        Ok(survivor.map(ContactId::new))
    }
}

/// The locks a transaction that merges contacts takes, in lock order: the erasure lock exclusively (a merge
/// deletes a contact) and the contact lock. The tag library lock is not needed although a merge writes tag links:
/// it only re-points links of tags that are in use, so a concurrent `delete_tag` sees every tag it touches in use,
/// before the merge or after it. Taken with [`PostgresStore::begin_locked`].
pub(crate) const MERGE_LOCKS: [(WorkspaceLock, LockMode); 2] =
    [(WorkspaceLock::Erasure, LockMode::Exclusive), (WorkspaceLock::Contacts, LockMode::Exclusive)];

/// The workspace's stage keys in list order.
pub(crate) async fn stage_order(connection: &mut PgConnection, workspace: WorkspaceId) -> StoreResult<Vec<String>> {
    let stages = sqlx::query_scalar(
        "SELECT key FROM list_entries WHERE workspace_id = $1 AND list = 'stage' ORDER BY position, key",
    )
    .bind(workspace.get())
    .fetch_all(connection)
    .await
    .context("reading the stages")?;
    Ok(stages)
}

/// Merges `absorbed` into `survivor`, both of the workspace (not found otherwise), and records a `merged` activity
/// on the survivor. Tags that come from the absorbed contact are not recorded one by one: the `merged` entry covers
/// them. The caller holds [`MERGE_LOCKS`]; nothing is written when an error is returned.
pub(crate) async fn merge_into(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    survivor: ContactId,
    absorbed: ContactId,
    reason: MergeReason,
    actor: &str,
    stages: &[String],
) -> StoreResult<()> {
    let rows: Vec<MergeRow> = sqlx::query_as(
        "SELECT id, email, phone, user_id, first_name, last_name, title, company_name, city, province, country,
             source, owner_id, company_id, fields, stage, status, created_at, updated_at
         FROM contacts WHERE workspace_id = $1 AND id = ANY($2)",
    )
    .bind(workspace.get())
    .bind(vec![survivor.get(), absorbed.get()])
    .fetch_all(&mut *connection)
    .await
    .context("reading the contacts to merge")?;
    let kept = rows.iter().find(|row| row.id == survivor.get()).ok_or(StoreError::not_found("contact"))?;
    let gone = rows.iter().find(|row| row.id == absorbed.get()).ok_or(StoreError::not_found("contact"))?;
    let keep_oldest: HashSet<String> = sqlx::query_scalar(
        "SELECT key FROM field_definitions WHERE workspace_id = $1 AND entity = 'contact' AND merge_rule = 'oldest'",
    )
    .bind(workspace.get())
    .fetch_all(&mut *connection)
    .await
    .context("reading the merge rules")?
    .into_iter()
    .collect();
    let merged = merged_values(kept, gone, stages, &keep_oldest);

    // Data-modifying CTEs see the same snapshot and touch disjoint rows, so the order of these does not matter.
    sqlx::query(
        "WITH identities AS (UPDATE contact_identities SET contact_id = $2 WHERE contact_id = $1),
             copied_tags AS (
                 INSERT INTO contact_tags (contact_id, tag_id, added_at)
                 SELECT $2, tag_id, added_at FROM contact_tags WHERE contact_id = $1
                     AND tag_id NOT IN (SELECT tag_id FROM segments WHERE tag_id IS NOT NULL)
                 ON CONFLICT DO NOTHING),
             removed_tags AS (DELETE FROM contact_tags WHERE contact_id = $1),
             activities AS (UPDATE activities SET contact_id = $2 WHERE contact_id = $1),
             events AS (UPDATE events SET contact_id = $2 WHERE contact_id = $1),
             documents AS (UPDATE event_documents SET sole_contact_id = $2 WHERE sole_contact_id = $1),
             message_ids AS (UPDATE message_ids SET contact_id = $2 WHERE contact_id = $1),
             consents AS (UPDATE consents SET contact_id = $2 WHERE contact_id = $1),
             pointers AS (UPDATE contact_merges SET survivor_id = $2 WHERE survivor_id = $1),
             pointer AS (INSERT INTO contact_merges (workspace_id, absorbed_id, survivor_id) VALUES ($3, $1, $2)),
             members AS (DELETE FROM segment_members WHERE contact_id = $1),
             deleted AS (DELETE FROM contacts WHERE id = $1)
         SELECT 1",
    )
    .bind(absorbed.get())
    .bind(survivor.get())
    .bind(workspace.get())
    .execute(&mut *connection)
    .await
    .context("moving the absorbed contact's records")?;

    sqlx::query(
        "UPDATE contacts SET email = $2, phone = $3, user_id = $4, first_name = $5, last_name = $6, title = $7,
             company_name = $8, city = $9, province = $10, country = $11, source = $12, owner_id = $13,
             company_id = $14, fields = $15, stage = $16, status = $17, created_at = $18, updated_at = now()
         WHERE id = $1",
    )
    .bind(survivor.get())
    .bind(&merged.email)
    .bind(&merged.phone)
    .bind(&merged.user_id)
    .bind(&merged.first_name)
    .bind(&merged.last_name)
    .bind(&merged.title)
    .bind(&merged.company_name)
    .bind(&merged.city)
    .bind(&merged.province)
    .bind(&merged.country)
    .bind(&merged.source)
    .bind(merged.owner_id)
    .bind(merged.company_id)
    .bind(&merged.fields)
    .bind(&merged.stage)
    .bind(&merged.status)
    .bind(merged.created_at)
    .execute(&mut *connection)
    .await
    .context("writing the merged contact")?;

    let data = json!({ "absorbed_id": absorbed.to_string(), "reason": reason.as_str(), "actor": actor });
    let activity = Activity { contact_id: survivor.get(), kind: "merged", actor: actor.to_owned(), data };
    insert_activities(connection, workspace, vec![activity]).await
}

/// The columns of a contact that a merge reads and rewrites.
#[derive(Debug, Clone, sqlx::FromRow)]
struct MergeRow {
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
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The survivor's values after the merge: each field takes the first non-empty value in the order of
/// [`preference`]; the stage is the further one; the earlier `created_at` is kept. Identities and tags are not
/// here: they move as rows.
fn merged_values(
    survivor: &MergeRow,
    absorbed: &MergeRow,
    stages: &[String],
    keep_oldest: &HashSet<String>,
) -> MergeRow {
    let [first, second] = preference(survivor, absorbed);
    let [older, newer] =
        if absorbed.created_at < survivor.created_at { [absorbed, survivor] } else { [survivor, absorbed] };
    let text = |field: fn(&MergeRow) -> &Option<String>| {
        let value = field(first).as_ref().filter(|value| !value.trim().is_empty());
        value.or(field(second).as_ref()).cloned()
    };
    let position = |stage: &str| stages.iter().position(|key| key == stage);
    let stage = if position(&absorbed.stage) > position(&survivor.stage) { &absorbed.stage } else { &survivor.stage };
    MergeRow {
        id: survivor.id,
        email: text(|row| &row.email),
        phone: text(|row| &row.phone),
        user_id: text(|row| &row.user_id),
        first_name: text(|row| &row.first_name),
        last_name: text(|row| &row.last_name),
        title: text(|row| &row.title),
        company_name: text(|row| &row.company_name),
        city: text(|row| &row.city),
        province: text(|row| &row.province),
        country: text(|row| &row.country),
        source: text(|row| &row.source),
        owner_id: first.owner_id.or(second.owner_id),
        company_id: first.company_id.or(second.company_id),
        fields: Json(merged_fields([&first.fields, &second.fields], [&older.fields, &newer.fields], |key| {
            keep_oldest.contains(key)
        })),
        stage: stage.clone(),
        status: text(|row| &row.status),
        created_at: survivor.created_at.min(absorbed.created_at),
        updated_at: survivor.updated_at,
    }
}

/// The two contacts in the order their values are preferred: the most recently updated first, the survivor on a
/// tie. Custom fields whose merge rule is `oldest` use the order of creation instead.
fn preference<'a>(survivor: &'a MergeRow, absorbed: &'a MergeRow) -> [&'a MergeRow; 2] {
    if absorbed.updated_at > survivor.updated_at { [absorbed, survivor] } else { [survivor, absorbed] }
}

//! Merging two contacts into one, and the pointers that keep an absorbed id leading to its survivor.
//!
//! A merge is one change: the survivor's row is rewritten with the merged values in one `UPDATE`, everything that
//! hangs off the absorbed contact (identities, events, activities, message ids, pointers of earlier merges) is
//! re-pointed with one `UPDATE` per table, its tags are copied, and its row is deleted.

use std::collections::HashSet;

use anyhow::Context;
use rapport_domain::{CompanyId, Contact, ContactId, UserId, WorkspaceId, merged_fields};
use rapport_store::{Actor, MergeReason, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::{Value, json};

use crate::contacts::{ChangeContext, References, get_contact};
use crate::events::contact_event_ids;
use crate::history::record_activity;
use crate::memo::WriterMemo;
use crate::sql::micros;

pub(crate) fn merge_contacts(
    tx: &Transaction<'_>,
    memo: &mut WriterMemo,
    workspace: WorkspaceId,
    survivor: ContactId,
    absorbed: ContactId,
    reason: MergeReason,
    actor: Actor,
) -> StoreResult<Contact> {
    if survivor == absorbed {
        return Err(StoreError::invalid("same_contact", "absorb", "a contact cannot be merged into itself"));
    }
    let context = ChangeContext::new(workspace, actor);
    let references = References::load(tx, workspace)?;
    merge_into(tx, &context, &references, survivor, absorbed, reason)?;
    memo.contact_absorbed(absorbed);
    get_contact(tx, workspace, survivor)
}

/// Where an absorbed id went. Pointers are kept flat (see the schema), so this is one look-up.
pub(crate) fn merged_into(conn: &Connection, workspace: WorkspaceId, id: ContactId) -> StoreResult<Option<ContactId>> {
    let mut statement = conn
        .prepare_cached("SELECT survivor_id FROM contact_merges WHERE absorbed_id = ?1 AND workspace_id = ?2")
        .context("preparing merged_into")?;
    let survivor: Option<i64> = statement
        .query_row(params![id.get(), workspace.get()], |row| row.get(0))
        .optional()
        .context("following a merge")?;
    Ok(survivor.map(ContactId::new))
}

/// Merges `absorbed` into `survivor`, both of the context's workspace (not found otherwise), recording a `merged`
/// activity. Tags that come from the absorbed contact are not recorded one by one: the `merged` entry covers them.
/// The caller tells the writer's memo that `absorbed` is gone.
pub(crate) fn merge_into(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    references: &References,
    survivor: ContactId,
    absorbed: ContactId,
    reason: MergeReason,
) -> StoreResult<()> {
    let workspace = context.workspace;
    let kept = get_contact(tx, workspace, survivor)?;
    let gone = get_contact(tx, workspace, absorbed)?;
    let keep_oldest = keep_oldest_fields(tx, workspace)?;
    let merged = merged_values(&kept, &gone, references.stages(), &keep_oldest);

    let (from, to) = (absorbed.get(), survivor.get());
    let moves = [
        ("moving identities", "UPDATE contact_identities SET contact_id = ?2 WHERE contact_id = ?1"),
        (
            "uniting tags",
            "INSERT OR IGNORE INTO contact_tags (contact_id, tag_id, added_at)
             SELECT ?2, tag_id, added_at FROM contact_tags WHERE contact_id = ?1
                 AND tag_id NOT IN (SELECT tag_id FROM segments WHERE tag_id IS NOT NULL)",
        ),
        ("moving activities", "UPDATE activities SET contact_id = ?2 WHERE contact_id = ?1"),
        ("moving message ids", "UPDATE message_ids SET contact_id = ?2 WHERE contact_id = ?1"),
        ("moving consents", "UPDATE consents SET contact_id = ?2 WHERE contact_id = ?1"),
        ("moving merge pointers", "UPDATE contact_merges SET survivor_id = ?2 WHERE survivor_id = ?1"),
    ];
    for (doing, sql) in moves {
        let mut statement = tx.prepare_cached(sql).context("preparing a merge step")?;
        statement.execute(params![from, to]).context(doing)?;
    }
    let events = Value::from(contact_event_ids(tx, absorbed)?).to_string();
    let mut move_events = tx
        .prepare_cached("UPDATE events SET contact_id = ?2 WHERE id IN (SELECT value FROM json_each(?1))")
        .context("preparing to move events")?;
    move_events.execute(params![events, to]).context("moving events")?;
    // What is left of it (its own tag links) goes with the row.
    let mut delete = tx.prepare_cached("DELETE FROM contacts WHERE id = ?1").context("preparing a deletion")?;
    delete.execute([from]).context("deleting the absorbed contact")?;
    let mut pointer = tx
        .prepare_cached("INSERT INTO contact_merges (absorbed_id, workspace_id, survivor_id) VALUES (?1, ?2, ?3)")
        .context("preparing a merge pointer")?;
    pointer.execute(params![from, workspace.get(), to]).context("pointing to the survivor")?;

    let mut update = tx
        .prepare_cached(
            "UPDATE contacts SET email = ?2, phone = ?3, user_id = ?4, first_name = ?5, last_name = ?6, title = ?7,
                 company_name = ?8, city = ?9, province = ?10, country = ?11, source = ?12, owner_id = ?13,
                 company_id = ?14, fields = ?15, stage = ?16, status = ?17, created_at = ?18, updated_at = ?19
             WHERE id = ?1",
        )
        .context("preparing the merged contact")?;
    update
        .execute(params![
            to,
            merged.email,
            merged.phone,
            merged.user_id,
            merged.first_name,
            merged.last_name,
            merged.title,
            merged.company_name,
            merged.city,
            merged.province,
            merged.country,
            merged.source,
            merged.owner_id.map(UserId::get),
            merged.company_id.map(CompanyId::get),
            Value::Object(merged.fields).to_string(),
            merged.stage,
            merged.status,
            micros(merged.created_at),
            context.now,
        ])
        .context("writing the merged contact")?;

    let data = json!({ "absorbed_id": absorbed.to_string(), "reason": reason.as_str(), "actor": context.actor });
    record_activity(tx, workspace, survivor, "merged", context.now, &context.actor, &data)?;
    Ok(())
}

/// The survivor's values after the merge: each field takes the first non-empty value in the order of
/// [`preference`]; the stage is the further one; the earlier `created_at` is kept. Identities and tags are not
/// here: they move as rows.
fn merged_values(survivor: &Contact, absorbed: &Contact, stages: &[String], keep_oldest: &HashSet<String>) -> Contact {
    let [first, second] = preference(survivor, absorbed);
    let [older, newer] =
        if absorbed.created_at < survivor.created_at { [absorbed, survivor] } else { [survivor, absorbed] };
    let text = |field: fn(&Contact) -> &Option<String>| {
        let value = field(first).as_ref().filter(|value| !value.trim().is_empty());
        value.or(field(second).as_ref()).cloned()
    };
    let position = |stage: &str| stages.iter().position(|key| key == stage);
    let stage = if position(&absorbed.stage) > position(&survivor.stage) { &absorbed.stage } else { &survivor.stage };
    Contact {
        email: text(|contact| &contact.email),
        phone: text(|contact| &contact.phone),
        user_id: text(|contact| &contact.user_id),
        first_name: text(|contact| &contact.first_name),
        last_name: text(|contact| &contact.last_name),
        title: text(|contact| &contact.title),
        company_name: text(|contact| &contact.company_name),
        city: text(|contact| &contact.city),
        province: text(|contact| &contact.province),
        country: text(|contact| &contact.country),
        source: text(|contact| &contact.source),
        owner_id: first.owner_id.or(second.owner_id),
        company_id: first.company_id.or(second.company_id),
        fields: merged_fields([&first.fields, &second.fields], [&older.fields, &newer.fields], |key| {
            keep_oldest.contains(key)
        }),
        stage: stage.clone(),
        status: text(|contact| &contact.status),
        created_at: survivor.created_at.min(absorbed.created_at),
        ..survivor.clone()
    }
}

/// The two contacts in the order their values are preferred: the most recently updated first, the survivor on a
/// tie. Custom fields whose merge rule is `oldest` use the order of creation instead.
fn preference<'a>(survivor: &'a Contact, absorbed: &'a Contact) -> [&'a Contact; 2] {
    if absorbed.updated_at > survivor.updated_at { [absorbed, survivor] } else { [survivor, absorbed] }
}

/// Keys of the workspace's contact fields whose merge rule keeps the earlier created contact's value.
fn keep_oldest_fields(conn: &Connection, workspace: WorkspaceId) -> StoreResult<HashSet<String>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT key FROM field_definitions
             WHERE workspace_id = ?1 AND entity = 'contact' AND merge_rule = 'oldest'",
        )
        .context("preparing the merge rules")?;
    let keys = statement.query_map([workspace.get()], |row| row.get(0)).context("reading the merge rules")?;
    Ok(keys.collect::<rusqlite::Result<_>>().context("reading the merge rules")?)
}

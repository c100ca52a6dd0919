//! What happened to a contact: events, activities (stage, status and tag changes, notes) and the timeline that
//! merges them.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::SecondsFormat;
use rapport_domain::{ContactId, Identity, NoteTemplateId, WorkspaceId};
use rapport_store::{
    Actor, ContactRef, EventOutcome, NewEvent, Note, Page, PageRequest, StoreError, StoreResult,
    TimelineCursor, TimelineEntry,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::{Value, json};

use crate::contacts::{
    References, check_contact_exists, contact_exists, identity_owner, insert_identified_contact,
};
use crate::schema::get_note_template;
use crate::sql::{fetch_limit, into_page, json_at, micros, now_micros, time_at, time_from_micros};

/// Timeline cursors tell events (source 1 in the query below) from activities (source 0).
const EVENT_SOURCE: i64 = 1;

pub(crate) fn record_activity(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    contact: ContactId,
    kind: &str,
    at: i64,
    actor: &str,
    data: &Value,
) -> StoreResult<i64> {
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO activities (workspace_id, contact_id, kind, at, actor, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .context("preparing record_activity")?;
    insert
        .execute(params![
            workspace.get(),
            contact.get(),
            kind,
            at,
            actor,
            data.to_string()
        ])
        .context("recording an activity")?;
    Ok(tx.last_insert_rowid())
}

// ----- Timeline -----

/// Events and activities, newest first, merged by `(at, source, id)`. Each side is cut to the page size before the
/// merge, so a page reads at most twice its size whatever the length of the history.
pub(crate) fn contact_timeline(
    conn: &Connection,
    workspace: WorkspaceId,
    id: ContactId,
    page: PageRequest<TimelineCursor>,
) -> StoreResult<Page<TimelineEntry, TimelineCursor>> {
    check_contact_exists(conn, workspace, id)?;
    let mut statement = conn
        .prepare_cached(
            "SELECT * FROM (
                 SELECT occurred_at, 1, id, 'event', NULL, type, properties, context, source, message_id, received_at
                 FROM events WHERE contact_id = ?1 AND (occurred_at, 1, id) < (?2, ?3, ?4)
                 ORDER BY occurred_at DESC, id DESC LIMIT ?5)
             UNION ALL
             SELECT * FROM (
                 SELECT at, 0, id, kind, data, NULL, NULL, NULL, NULL, NULL, NULL
                 FROM activities WHERE contact_id = ?1 AND (at, 0, id) < (?2, ?3, ?4)
                 ORDER BY at DESC, id DESC LIMIT ?5)
             ORDER BY 1 DESC, 2 DESC, 3 DESC LIMIT ?5",
        )
        .context("preparing contact_timeline")?;
    let (at, source, entry) = page.after.map_or((i64::MAX, i64::MAX, i64::MAX), |after| {
        (micros(after.at), after.source, after.id)
    });
    let rows = statement
        .query_map(
            params![id.get(), at, source, entry, fetch_limit(page.limit)],
            timeline_entry_from_row,
        )
        .context("reading the timeline")?;
    let entries = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading timeline entries")?;
    Ok(into_page(entries, page.limit, |entry| entry.cursor))
}

fn timeline_entry_from_row(row: &Row<'_>) -> rusqlite::Result<TimelineEntry> {
    let at = time_at(row, 0)?;
    let source: i64 = row.get(1)?;
    let id: i64 = row.get(2)?;
    let kind: String = row.get(3)?;
    let data = if source == EVENT_SOURCE {
        let received_at = time_at(row, 10)?.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        json!({
            "id": id,
            "type": row.get::<_, String>(5)?,
            "properties": json_at(row, 6)?,
            "context": json_at(row, 7)?,
            "source": row.get::<_, Option<String>>(8)?,
            "message_id": row.get::<_, Option<String>>(9)?,
            "received_at": received_at,
        })
    } else {
        json_at(row, 4)?
    };
    Ok(TimelineEntry {
        kind,
        at,
        data,
        cursor: TimelineCursor { at, source, id },
    })
}

// ----- Notes -----

pub(crate) fn add_note(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    contact: ContactId,
    body: &str,
    template: Option<NoteTemplateId>,
    actor: Actor,
) -> StoreResult<Note> {
    check_contact_exists(tx, workspace, contact)?;
    if let Some(template) = template {
        match get_note_template(tx, workspace, template) {
            Err(StoreError::NotFound { .. }) => {
                let message = format!("there is no note template {template}");
                return Err(StoreError::invalid(
                    "unknown_note_template",
                    "template_id",
                    message,
                ));
            }
            other => other?,
        };
    }
    let now = now_micros();
    let author = actor.to_string();
    let data =
        json!({ "body": body, "author": author, "template_id": template.map(NoteTemplateId::get) });
    let id = record_activity(tx, workspace, contact, "note", now, &author, &data)?;
    // The note's id is the activity's, known only once it is inserted.
    tx.execute(
        "UPDATE activities SET data = json_set(data, '$.id', id) WHERE id = ?1",
        [id],
    )
    .context("numbering a note")?;
    Ok(Note {
        id,
        contact_id: contact,
        body: body.to_owned(),
        author,
        template_id: template,
        created_at: time_from_micros(now).context("note time")?,
    })
}

pub(crate) fn delete_note(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    contact: ContactId,
    note: i64,
) -> StoreResult<()> {
    let deleted = tx
        .execute(
            "DELETE FROM activities WHERE workspace_id = ?1 AND contact_id = ?2 AND id = ?3 AND kind = 'note'",
            params![workspace.get(), contact.get(), note],
        )
        .context("deleting a note")?;
    if deleted == 0 {
        return Err(StoreError::not_found("note"));
    }
    Ok(())
}

// ----- Events -----

/// Events are the highest-volume write. Per event this costs a contact probe (cached for the call) and one insert,
/// which also detects a stored message id through the unique index; the message id is probed separately only
/// before creating a contact, so that a duplicate event creates nobody.
pub(crate) fn insert_events(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    events: Vec<NewEvent>,
) -> StoreResult<Vec<EventOutcome>> {
    let mut first_stage: Option<String> = None;
    let mut contacts_by_id: HashMap<ContactId, bool> = HashMap::new();
    let mut contacts_by_identity: HashMap<Identity, ContactId> = HashMap::new();
    let mut message_ids: HashSet<String> = HashSet::new();
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO events (workspace_id, contact_id, type, properties, context, occurred_at, received_at,
                 source, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT DO NOTHING",
        )
        .context("preparing insert_events")?;
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if let Some(message_id) = &event.message_id {
            if !message_ids.insert(message_id.clone()) {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
        }
        let contact_id = match event.contact {
            ContactRef::Id(id) => {
                let exists = match contacts_by_id.get(&id) {
                    Some(exists) => *exists,
                    None => {
                        let exists = contact_exists(tx, workspace, id)?;
                        contacts_by_id.insert(id, exists);
                        exists
                    }
                };
                if !exists {
                    outcomes.push(EventOutcome::UnknownContact);
                    continue;
                }
                id
            }
            ContactRef::Identity(identity) => match contacts_by_identity.get(&identity) {
                Some(id) => *id,
                None => {
                    let id = match identity_owner(tx, workspace, &identity)? {
                        Some(id) => id,
                        None => {
                            if let Some(message_id) = &event.message_id {
                                if message_id_stored(tx, workspace, message_id)? {
                                    outcomes.push(EventOutcome::Duplicate);
                                    continue;
                                }
                            }
                            if first_stage.is_none() {
                                first_stage = Some(
                                    References::load(tx, workspace)?.first_stage()?.to_owned(),
                                );
                            }
                            let stage = first_stage.as_deref().unwrap_or_default();
                            insert_identified_contact(
                                tx,
                                workspace,
                                &identity,
                                stage,
                                now_micros(),
                            )?
                        }
                    };
                    contacts_by_identity.insert(identity, id);
                    id
                }
            },
        };
        let inserted = insert
            .execute(params![
                workspace.get(),
                contact_id.get(),
                event.event_type,
                Value::Object(event.properties).to_string(),
                Value::Object(event.context).to_string(),
                micros(event.occurred_at),
                micros(event.received_at),
                event.source,
                event.message_id,
            ])
            .context("inserting an event")?;
        outcomes.push(if inserted == 1 {
            EventOutcome::Stored {
                contact_id,
                event_id: tx.last_insert_rowid(),
            }
        } else {
            EventOutcome::Duplicate
        });
    }
    Ok(outcomes)
}

fn message_id_stored(
    conn: &Connection,
    workspace: WorkspaceId,
    message_id: &str,
) -> StoreResult<bool> {
    let mut statement = conn
        .prepare_cached("SELECT 1 FROM events WHERE workspace_id = ?1 AND message_id = ?2")
        .context("preparing a message id probe")?;
    let found: Option<i64> = statement
        .query_row(params![workspace.get(), message_id], |row| row.get(0))
        .optional()
        .context("probing a message id")?;
    Ok(found.is_some())
}

//! What happened to a contact: activities (stage, status and tag changes, notes, merges) and the timeline that
//! merges them with the contact's events (stored by `events.rs`).

use anyhow::Context;
use rapport_domain::{ContactId, NoteTemplateId, WorkspaceId};
use rapport_store::{Actor, Note, Page, PageRequest, StoreError, StoreResult, TimelineCursor, TimelineEntry};
use rusqlite::{Connection, Row, Transaction, params};
use serde_json::{Value, json};

use crate::contacts::check_contact_exists;
use crate::events::{EVENT_TIMELINE_COLUMNS, EVENT_TIMELINE_JOINS, event_data, newest_event_ids};
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
        .execute(params![workspace.get(), contact.get(), kind, at, actor, data.to_string()])
        .context("recording an activity")?;
    Ok(tx.last_insert_rowid())
}

// ----- Timeline -----

/// Events and activities, newest first, merged by `(at, source, id)`. Each side is cut to the page size before the
/// merge (the events' side by `newest_event_ids`, block by block), so a page reads at most twice its size whatever
/// the length of the history, plus one index look-up per block of events.
pub(crate) fn contact_timeline(
    conn: &Connection,
    workspace: WorkspaceId,
    id: ContactId,
    page: PageRequest<TimelineCursor>,
) -> StoreResult<Page<TimelineEntry, TimelineCursor>> {
    check_contact_exists(conn, workspace, id)?;
    let (at, source, entry) =
        page.after.map_or((i64::MAX, i64::MAX, i64::MAX), |after| (micros(after.at), after.source, after.id));
    let limit = usize::try_from(fetch_limit(page.limit)).unwrap_or(usize::MAX);
    let events = Value::from(newest_event_ids(conn, id, (at, source, entry), limit)?).to_string();
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT * FROM (
                     SELECT events.occurred_at, 1, events.id, 'event', NULL, {EVENT_TIMELINE_COLUMNS}
                     FROM events {EVENT_TIMELINE_JOINS}
                     WHERE events.id IN (SELECT value FROM json_each(?6))
                     ORDER BY events.occurred_at DESC, events.id DESC LIMIT ?5)
                 UNION ALL
                 SELECT * FROM (
                     SELECT at, 0, id, kind, data, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
                     FROM activities WHERE contact_id = ?1 AND (at, 0, id) < (?2, ?3, ?4)
                     ORDER BY at DESC, id DESC LIMIT ?5)
                 ORDER BY 1 DESC, 2 DESC, 3 DESC LIMIT ?5"
        ))
        .context("preparing contact_timeline")?;
    let rows = statement
        .query_map(params![id.get(), at, source, entry, fetch_limit(page.limit), events], timeline_entry_from_row)
        .context("reading the timeline")?;
    let entries = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading timeline entries")?;
    Ok(into_page(entries, page.limit, |entry| entry.cursor))
}

fn timeline_entry_from_row(row: &Row<'_>) -> rusqlite::Result<TimelineEntry> {
    let at = time_at(row, 0)?;
    let source: i64 = row.get(1)?;
    let id: i64 = row.get(2)?;
    let kind: String = row.get(3)?;
    let data = if source == EVENT_SOURCE { event_data(row, 5, id, row.get(0)?)? } else { json_at(row, 4)? };
    Ok(TimelineEntry { kind, at, data, cursor: TimelineCursor { at, source, id } })
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
                return Err(StoreError::invalid("unknown_note_template", "template_id", message));
            }
            other => other?,
        };
    }
    let now = now_micros();
    let author = actor.to_string();
    let data = json!({ "body": body, "author": author, "template_id": template.map(NoteTemplateId::get) });
    let id = record_activity(tx, workspace, contact, "note", now, &author, &data)?;
    // The note's id is the activity's, known only once it is inserted.
    tx.execute("UPDATE activities SET data = json_set(data, '$.id', id) WHERE id = ?1", [id])
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

//! What happened to a contact: activities (stage, status and tag changes, notes, merges) and the timeline that
//! merges them with the contact's events (stored by `events.rs`).

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{ContactId, NoteTemplateId, WorkspaceId};
use rapport_store::{Actor, Note, Page, PageRequest, StoreError, StoreResult, TimelineCursor, TimelineEntry};
use serde_json::Value;
use sqlx::PgConnection;

use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::contacts::check_contact_exists;
use crate::events::{StoredEvent, event_data, timeline_events_sql};
use crate::sql::{fetch_limit, page};

/// Timeline cursors tell events (source 1) from activities (source 0).
const EVENT_SOURCE: i64 = 1;
const ACTIVITY_SOURCE: i64 = 0;

/// A history entry to record; its time is the transaction's.
pub(crate) struct Activity {
    pub(crate) contact_id: i64,
    pub(crate) kind: &'static str,
    pub(crate) actor: String,
    pub(crate) data: Value,
}

/// Inserts activities in order, so that their ids (the timeline's tie-breaker), drawn by the insert row by row, follow
/// the order of the changes.
pub(crate) async fn insert_activities(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    activities: Vec<Activity>,
) -> StoreResult<()> {
    insert_activities_at(connection, workspace, activities, None).await
}

/// [`insert_activities`] at the time `at` instead of the transaction's, for changes decided earlier than they are
/// written (the audience engine's memberships).
pub(crate) async fn insert_activities_at(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    activities: Vec<Activity>,
    at: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    if activities.is_empty() {
        return Ok(());
    }
    let mut contact_ids = Vec::with_capacity(activities.len());
    let mut kinds = Vec::with_capacity(activities.len());
    let mut actors = Vec::with_capacity(activities.len());
    let mut data = Vec::with_capacity(activities.len());
    for activity in activities {
        contact_ids.push(activity.contact_id);
        kinds.push(activity.kind);
        actors.push(activity.actor);
        data.push(activity.data);
    }
    sqlx::query(
        "INSERT INTO activities (workspace_id, contact_id, kind, at, actor, data)
         SELECT $1, contact_id, kind, coalesce($6, now()), actor, data
         FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::jsonb[]) AS a (contact_id, kind, actor, data)",
    )
    .bind(workspace.get())
    .bind(&contact_ids)
    .bind(&kinds)
    .bind(&actors)
    .bind(&data)
    .bind(at)
    .execute(connection)
    .await
    .context("recording activities")?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    at: DateTime<Utc>,
    source: i64,
    id: i64,
    kind: String,
    data: Option<Value>,
    event_type: Option<String>,
    properties: Option<Value>,
    context: Option<Value>,
    event_source: Option<String>,
    message_id: Option<Vec<u8>>,
    received_at: Option<DateTime<Utc>>,
}

/// Events and activities, newest first, merged by `(at, source, id)`. Each side is cut to the page size before the
/// merge and walks its `(contact_id, time)` index, so a page reads at most twice its size however long the history.
/// `$2`/`$3` bound the events and `$2`/`$4` the activities (see [`side_bound`]).
macro_rules! timeline_sql {
    ($event_filter:literal, $activity_filter:literal) => {
        concat!(
            "SELECT * FROM ((",
            timeline_events_sql!($event_filter),
            ") UNION ALL
                 (SELECT at, 0::bigint, id, kind, data, NULL, NULL, NULL, NULL, NULL, NULL
                  FROM activities WHERE contact_id = $1 ",
            $activity_filter,
            " ORDER BY at DESC, id DESC LIMIT $5)
             ) AS timeline ORDER BY at DESC, source DESC, id DESC LIMIT $5"
        )
    };
}

const TIMELINE_FIRST_PAGE: &str =
    timeline_sql!("AND $2::timestamptz IS NULL", "AND $3::bigint IS NULL AND $4::bigint IS NULL");
// The first bound lets the events' scan start at the cursor: the index has no `id` to compare the pair with.
const TIMELINE_NEXT_PAGE: &str =
    timeline_sql!("AND occurred_at <= $2 AND (occurred_at, id) < ($2, $3)", "AND (at, id) < ($2, $4)");

/// Turns the cursor `(at, source, id) < (A, S, I)` into a bound for one side of the timeline, whose rows all have
/// `source = side`: `(time, id) < (A, bound)`. A side below `S` keeps every row at `A`; a side above it keeps none.
fn side_bound(cursor: &TimelineCursor, side: i64) -> i64 {
    match side.cmp(&cursor.source) {
        std::cmp::Ordering::Less => i64::MAX,
        std::cmp::Ordering::Equal => cursor.id,
        std::cmp::Ordering::Greater => i64::MIN,
    }
}

impl PostgresStore {
    pub(crate) async fn contact_timeline(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        request: PageRequest<TimelineCursor>,
    ) -> StoreResult<Page<TimelineEntry, TimelineCursor>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        check_contact_exists(&mut connection, workspace, id).await?;
        let after = request.after.as_ref();
        let sql = if after.is_some() { TIMELINE_NEXT_PAGE } else { TIMELINE_FIRST_PAGE };
        let rows: Vec<TimelineRow> = sqlx::query_as(sql)
            .bind(id.get())
            .bind(after.map(|after| after.at))
            .bind(after.map(|after| side_bound(after, EVENT_SOURCE)))
            .bind(after.map(|after| side_bound(after, ACTIVITY_SOURCE)))
            .bind(fetch_limit(request.limit))
            .fetch_all(&mut *connection)
            .await
            .context("reading the timeline")?;
        let entries = rows.into_iter().map(timeline_entry).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(page(entries, request.limit, |entry| entry.cursor))
    }

    // ----- Notes -----

    pub(crate) async fn add_note(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        body: &str,
        template: Option<NoteTemplateId>,
        actor: Actor,
    ) -> StoreResult<Note> {
        let mut tx = self.begin().await?;
        // Activities have no foreign key; the contact lock keeps the contact from being erased before the note is
        // written.
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        check_contact_exists(&mut tx, workspace, contact).await?;
        if let Some(template) = template {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM note_templates WHERE workspace_id = $1 AND id = $2)")
                    .bind(workspace.get())
                    .bind(template.get())
                    .fetch_one(&mut *tx)
                    .await
                    .context("checking the note template")?;
            if !exists {
                let message = format!("there is no note template {template}");
                return Err(StoreError::invalid("unknown_note_template", "template_id", message));
            }
        }
        let author = actor.to_string();
        // The note's id is the activity's, taken from the sequence first so that the data can carry it.
        let (id, created_at): (i64, DateTime<Utc>) = sqlx::query_as(
            "WITH new_note AS (SELECT nextval('activities_id_seq') AS id)
             INSERT INTO activities (id, workspace_id, contact_id, kind, at, actor, data)
             SELECT id, $1, $2, 'note', now(), $3,
                 jsonb_build_object('id', id, 'body', $4::text, 'author', $3::text, 'template_id', $5::bigint)
             FROM new_note RETURNING id, at",
        )
        .bind(workspace.get())
        .bind(contact.get())
        .bind(&author)
        .bind(body)
        .bind(template.map(NoteTemplateId::get))
        .fetch_one(&mut *tx)
        .await
        .context("recording a note")?;
        commit(tx).await?;
        Ok(Note { id, contact_id: contact, body: body.to_owned(), author, template_id: template, created_at })
    }

    pub(crate) async fn delete_note(&self, workspace: WorkspaceId, contact: ContactId, note: i64) -> StoreResult<()> {
        let deleted = sqlx::query(
            "DELETE FROM activities WHERE workspace_id = $1 AND contact_id = $2 AND id = $3 AND kind = 'note'",
        )
        .bind(workspace.get())
        .bind(contact.get())
        .bind(note)
        .execute(&self.pool)
        .await
        .context("deleting a note")?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::not_found("note"));
        }
        Ok(())
    }
}

fn timeline_entry(row: TimelineRow) -> anyhow::Result<TimelineEntry> {
    let data = if row.source == EVENT_SOURCE {
        event_data(StoredEvent {
            id: row.id,
            event_type: row.event_type,
            properties: row.properties,
            context: row.context,
            source: row.event_source,
            message_id: row.message_id,
            received_at: row.received_at,
        })
    } else {
        row.data.context("an activity without data")?
    };
    Ok(TimelineEntry {
        kind: row.kind,
        at: row.at,
        data,
        cursor: TimelineCursor { at: row.at, source: row.source, id: row.id },
    })
}

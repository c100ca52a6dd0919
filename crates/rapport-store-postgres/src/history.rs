//! What happened to a contact: events, activities (stage, status and tag changes, notes) and the timeline that
//! merges them.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use rapport_domain::{ContactId, Identity, NoteTemplateId, WorkspaceId};
use rapport_store::{
    Actor, ContactRef, EventOutcome, NewEvent, Note, Page, PageRequest, StoreError, StoreResult, TimelineCursor,
    TimelineEntry,
};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::batch::{create_identified_contacts, resolve_identities};
use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace, lock_workspace_shared};
use crate::contacts::check_contact_exists;
use crate::sql::{fetch_limit, page};
use crate::tags::allocate_ids;

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

/// Inserts activities in order, so that their ids (the timeline's tie-breaker) follow the order of the changes.
pub(crate) async fn insert_activities(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    activities: Vec<Activity>,
) -> StoreResult<()> {
    if activities.is_empty() {
        return Ok(());
    }
    let ids = allocate_ids(connection, "activities_id_seq", activities.len()).await?;
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
        "INSERT INTO activities (id, workspace_id, contact_id, kind, at, actor, data)
         SELECT id, $1, contact_id, kind, now(), actor, data
         FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[])
             AS a (id, contact_id, kind, actor, data)",
    )
    .bind(workspace.get())
    .bind(&ids)
    .bind(&contact_ids)
    .bind(&kinds)
    .bind(&actors)
    .bind(&data)
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
    message_id: Option<String>,
    received_at: Option<DateTime<Utc>>,
}

/// Events and activities, newest first, merged by `(at, source, id)`. Each side is cut to the page size before the
/// merge and walks its `(contact_id, time, id)` index, so a page reads at most twice its size however long the
/// history. `$2`/`$3` bound the events and `$2`/`$4` the activities (see [`side_bound`]).
macro_rules! timeline_sql {
    ($event_filter:literal, $activity_filter:literal) => {
        concat!(
            "SELECT * FROM (
                 (SELECT occurred_at AS at, 1::bigint AS source, id, 'event' AS kind, NULL::jsonb AS data,
                      type AS event_type, properties, context, source AS event_source, message_id, received_at
                  FROM events WHERE contact_id = $1 ",
            $event_filter,
            " ORDER BY occurred_at DESC, id DESC LIMIT $5)
                 UNION ALL
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
const TIMELINE_NEXT_PAGE: &str = timeline_sql!("AND (occurred_at, id) < ($2, $3)", "AND (at, id) < ($2, $4)");

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

    // ----- Events -----

    /// Events are the highest-volume write. A call resolves the contacts its events name with one query per kind
    /// of reference, creates the missing ones in bulk (under the contact lock, taken only then), and inserts all
    /// events with one statement whose `ON CONFLICT DO NOTHING` on the message id tells duplicates apart. Calls
    /// that create no contact hold only the shared erasure lock, so they run side by side.
    pub(crate) async fn insert_events(
        &self,
        workspace: WorkspaceId,
        events: Vec<NewEvent>,
    ) -> StoreResult<Vec<EventOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        // Events have no foreign key; from here to the commit, no contact they name can be erased.
        lock_workspace_shared(&mut tx, workspace, WorkspaceLock::Erasure).await?;

        let mut named_ids: Vec<i64> = Vec::new();
        let mut named_identities: Vec<Identity> = Vec::new();
        for event in &events {
            match &event.contact {
                ContactRef::Id(id) => named_ids.push(id.get()),
                ContactRef::Identity(identity) => named_identities.push(identity.clone()),
            }
        }
        named_ids.sort_unstable();
        named_ids.dedup();
        named_identities.sort_unstable();
        named_identities.dedup();
        let known_ids = existing_contacts(&mut tx, workspace, &named_ids).await?;
        let mut owners = resolve_identities(&mut tx, workspace, &named_identities).await?;

        // A stored message id makes its event a duplicate before anything else is looked at: such an event must
        // neither create a contact nor read as naming an unknown one. Calls where that can matter learn first which
        // of their message ids are stored; for the others the insert's ON CONFLICT is enough.
        let may_create = named_identities.iter().any(|identity| !owners.contains_key(identity));
        let may_miss = events.iter().any(|event| {
            event.message_id.is_some() && matches!(&event.contact, ContactRef::Id(id) if !known_ids.contains(&id.get()))
        });
        let stored_message_ids = if may_create || may_miss {
            stored_message_ids(&mut tx, workspace, &events).await?
        } else {
            HashSet::new()
        };

        let mut outcomes = vec![EventOutcome::Duplicate; events.len()];
        let mut accepted: Vec<(usize, NewEvent)> = Vec::with_capacity(events.len());
        let mut seen_message_ids: HashSet<String> = HashSet::new();
        let mut to_create: Vec<Identity> = Vec::new();
        let mut scheduled: HashSet<Identity> = HashSet::new();
        for (index, event) in events.into_iter().enumerate() {
            if let Some(message_id) = &event.message_id {
                if stored_message_ids.contains(message_id) || !seen_message_ids.insert(message_id.clone()) {
                    continue;
                }
            }
            match &event.contact {
                ContactRef::Id(id) if !known_ids.contains(&id.get()) => {
                    outcomes[index] = EventOutcome::UnknownContact;
                    continue;
                }
                ContactRef::Id(_) => {}
                ContactRef::Identity(identity) => {
                    if !owners.contains_key(identity) && scheduled.insert(identity.clone()) {
                        to_create.push(identity.clone());
                    }
                }
            }
            accepted.push((index, event));
        }

        if !to_create.is_empty() {
            lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
            // Another call may have created some of them while this one waited for the lock.
            let created_meanwhile = resolve_identities(&mut tx, workspace, &to_create).await?;
            to_create.retain(|identity| !created_meanwhile.contains_key(identity));
            owners.extend(created_meanwhile);
            let ids = create_identified_contacts(&mut tx, workspace, &to_create).await?;
            owners.extend(to_create.into_iter().zip(ids.into_iter().map(ContactId::get)));
        }

        let ids = allocate_ids(&mut tx, "events_id_seq", accepted.len()).await?;
        let mut columns = EventColumns::with_capacity(accepted.len());
        let mut contact_of: HashMap<i64, (usize, i64)> = HashMap::with_capacity(accepted.len());
        for ((index, event), id) in accepted.into_iter().zip(ids) {
            let contact_id = match &event.contact {
                ContactRef::Id(contact) => contact.get(),
                ContactRef::Identity(identity) => {
                    *owners.get(identity).context("every named identity has a contact")?
                }
            };
            contact_of.insert(id, (index, contact_id));
            columns.push(id, contact_id, event);
        }
        let stored = columns.insert(&mut tx, workspace).await?;
        commit(tx).await?;
        for id in stored {
            if let Some((index, contact_id)) = contact_of.get(&id) {
                outcomes[*index] = EventOutcome::Stored { contact_id: ContactId::new(*contact_id), event_id: id };
            }
        }
        Ok(outcomes)
    }
}

fn timeline_entry(row: TimelineRow) -> anyhow::Result<TimelineEntry> {
    let data = if row.source == EVENT_SOURCE {
        json!({
            "id": row.id,
            "type": row.event_type,
            "properties": row.properties,
            "context": row.context,
            "source": row.event_source,
            "message_id": row.message_id,
            "received_at": row.received_at.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
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

async fn existing_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    ids: &[i64],
) -> StoreResult<HashSet<i64>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found: Vec<i64> = sqlx::query_scalar(
        "SELECT c.id FROM UNNEST($2::bigint[]) AS wanted (id)
         CROSS JOIN LATERAL (SELECT id FROM contacts WHERE id = wanted.id AND workspace_id = $1 OFFSET 0) AS c",
    )
    .bind(workspace.get())
    .bind(ids)
    .fetch_all(connection)
    .await
    .context("checking the events' contacts")?;
    Ok(found.into_iter().collect())
}

async fn stored_message_ids(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    events: &[NewEvent],
) -> StoreResult<HashSet<String>> {
    let message_ids: Vec<&str> = events.iter().filter_map(|event| event.message_id.as_deref()).collect();
    if message_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT wanted.message_id FROM UNNEST($2::text[]) AS wanted (message_id)
             CROSS JOIN LATERAL (
                 SELECT 1 FROM events WHERE workspace_id = $1 AND message_id = wanted.message_id LIMIT 1
             ) AS stored",
    )
    .bind(workspace.get())
    .bind(&message_ids)
    .fetch_all(connection)
    .await
    .context("probing message ids")?;
    Ok(stored.into_iter().collect())
}

/// Event rows as parallel arrays, the shape `UNNEST` takes.
struct EventColumns {
    ids: Vec<i64>,
    contact_ids: Vec<i64>,
    types: Vec<String>,
    properties: Vec<Value>,
    contexts: Vec<Value>,
    occurred_at: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
    sources: Vec<Option<String>>,
    message_ids: Vec<Option<String>>,
}

impl EventColumns {
    fn with_capacity(capacity: usize) -> EventColumns {
        EventColumns {
            ids: Vec::with_capacity(capacity),
            contact_ids: Vec::with_capacity(capacity),
            types: Vec::with_capacity(capacity),
            properties: Vec::with_capacity(capacity),
            contexts: Vec::with_capacity(capacity),
            occurred_at: Vec::with_capacity(capacity),
            received_at: Vec::with_capacity(capacity),
            sources: Vec::with_capacity(capacity),
            message_ids: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, id: i64, contact_id: i64, event: NewEvent) {
        self.ids.push(id);
        self.contact_ids.push(contact_id);
        self.types.push(event.event_type);
        self.properties.push(Value::Object(event.properties));
        self.contexts.push(Value::Object(event.context));
        self.occurred_at.push(event.occurred_at);
        self.received_at.push(event.received_at);
        self.sources.push(event.source);
        self.message_ids.push(event.message_id);
    }

    /// Inserts the events and returns the ids of those stored: an event whose message id another transaction
    /// stored first is skipped by `ON CONFLICT`, and so is a duplicate.
    async fn insert(&self, connection: &mut PgConnection, workspace: WorkspaceId) -> StoreResult<Vec<i64>> {
        if self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let stored = sqlx::query_scalar(
            "INSERT INTO events (id, workspace_id, contact_id, type, properties, context, occurred_at, received_at,
                 source, message_id)
             SELECT id, $1, contact_id, type, properties, context, occurred_at, received_at, source, message_id
             FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::jsonb[], $6::jsonb[], $7::timestamptz[],
                 $8::timestamptz[], $9::text[], $10::text[])
                 AS e (id, contact_id, type, properties, context, occurred_at, received_at, source, message_id)
             ON CONFLICT (workspace_id, message_id) WHERE message_id IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(workspace.get())
        .bind(&self.ids)
        .bind(&self.contact_ids)
        .bind(&self.types)
        .bind(&self.properties)
        .bind(&self.contexts)
        .bind(&self.occurred_at)
        .bind(&self.received_at)
        .bind(&self.sources)
        .bind(&self.message_ids)
        .fetch_all(connection)
        .await
        .context("inserting events")?;
        Ok(stored)
    }
}

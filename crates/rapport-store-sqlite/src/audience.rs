//! Segments, their members, and the change feed the audience engine follows.
//!
//! The feed has two parts. Change rows are appended by triggers (see `0005_audience.sql`) for every write that can
//! change what a filter says about a contact. Events are read from the events table itself: with one writer, event
//! ids grow in commit order, so "ids after the last one read" misses nothing. A cursor holds the last change row and
//! the last event id read.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use rapport_domain::{CompanyId, Contact, ContactId, SegmentId, TagId, TagKind, WorkspaceId};
use rapport_store::{
    AudienceContact, Change, ChangeBatch, ChangeCursor, ChangeSubject, ConsentChannel, EventFact, MembershipChanges,
    NewSegment, Page, PageRequest, Segment, SegmentUpdate, StoreError, StoreResult, TagDay,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::{Map, Value, json};

use crate::contacts::{CONTACT_COLUMNS, check_contact_exists, contact_from_row, with_identities_and_tags};
use crate::events::{EVENT_TIMELINE_COLUMNS, EVENT_TIMELINE_JOINS, event_data};
use crate::history::record_activity;
use crate::sql::{fetch_limit, into_page, micros, now_micros, time_at, time_from_micros};

const SEGMENT_COLUMNS: &str = "id, workspace_id, name, description, filter, tag_id, version, created_at, updated_at,
    (SELECT count(*) FROM segment_members WHERE segment_members.segment_id = segments.id)";

fn segment_from_row(row: &Row<'_>) -> rusqlite::Result<Segment> {
    Ok(Segment {
        id: SegmentId::new(row.get(0)?),
        workspace_id: WorkspaceId::new(row.get(1)?),
        name: row.get(2)?,
        description: row.get(3)?,
        filter: row.get(4)?,
        tag_id: row.get::<_, Option<i64>>(5)?.map(TagId::new),
        version: row.get(6)?,
        created_at: time_at(row, 7)?,
        updated_at: time_at(row, 8)?,
        member_count: u64::try_from(row.get::<_, i64>(9)?).unwrap_or_default(),
    })
}

fn name_taken(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation && message.contains("segments.name") =>
        {
            StoreError::conflict("segment_exists", "a segment with this name already exists")
        }
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation && message.contains("segments.tag_id") =>
        {
            StoreError::conflict("tag_has_segment", "this dynamic tag already has a definition")
        }
        _ => StoreError::Backend(anyhow::Error::from(error).context("writing a segment")),
    }
}

pub(crate) fn create_segment(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    segment: NewSegment,
) -> StoreResult<Segment> {
    if let Some(tag) = segment.tag_id {
        let kind: Option<String> = tx
            .query_row(
                "SELECT kind FROM tags WHERE workspace_id = ?1 AND id = ?2",
                params![workspace.get(), tag.get()],
                |row| row.get(0),
            )
            .optional()
            .context("reading a segment's tag")?;
        match kind {
            None => return Err(StoreError::invalid("unknown_tag", "tag_id", "no such tag in this workspace")),
            Some(kind) if kind != TagKind::Dynamic.as_str() => {
                return Err(StoreError::invalid("not_dynamic_tag", "tag_id", "only a dynamic tag can have a filter"));
            }
            Some(_) => {}
        }
    }
    let now = now_micros();
    tx.execute(
        "INSERT INTO segments (workspace_id, name, description, filter, tag_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            workspace.get(),
            segment.name.as_str(),
            segment.description,
            segment.filter,
            segment.tag_id.map(|tag| tag.get()),
            now
        ],
    )
    .map_err(name_taken)?;
    get_segment(tx, workspace, SegmentId::new(tx.last_insert_rowid()))
}

pub(crate) fn list_segments(conn: &Connection, workspace: WorkspaceId) -> StoreResult<Vec<Segment>> {
    let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE workspace_id = ?1 ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_segments")?;
    let rows = statement.query_map([workspace.get()], segment_from_row).context("listing segments")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading segments")?)
}

pub(crate) fn all_segments(conn: &Connection) -> StoreResult<Vec<Segment>> {
    let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing all_segments")?;
    let rows = statement.query_map([], segment_from_row).context("listing segments")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading segments")?)
}

pub(crate) fn get_segment(conn: &Connection, workspace: WorkspaceId, id: SegmentId) -> StoreResult<Segment> {
    let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_segment")?;
    let segment = statement
        .query_row(params![workspace.get(), id.get()], segment_from_row)
        .optional()
        .context("reading a segment")?;
    segment.ok_or(StoreError::not_found("segment"))
}

pub(crate) fn update_segment(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: SegmentId,
    update: SegmentUpdate,
) -> StoreResult<Segment> {
    let current = get_segment(tx, workspace, id)?;
    let filter_changed = update.filter.as_ref().is_some_and(|filter| *filter != current.filter);
    tx.execute(
        "UPDATE segments SET name = coalesce(?3, name), description = coalesce(?4, description),
             filter = coalesce(?5, filter), version = version + ?6, updated_at = ?7
         WHERE workspace_id = ?1 AND id = ?2",
        params![
            workspace.get(),
            id.get(),
            update.name.as_ref().map(|name| name.as_str()),
            update.description,
            update.filter,
            i64::from(filter_changed),
            now_micros()
        ],
    )
    .map_err(name_taken)?;
    get_segment(tx, workspace, id)
}

pub(crate) fn delete_segment(tx: &Transaction<'_>, workspace: WorkspaceId, id: SegmentId) -> StoreResult<()> {
    let deleted = tx
        .execute("DELETE FROM segments WHERE workspace_id = ?1 AND id = ?2", params![workspace.get(), id.get()])
        .context("deleting a segment")?;
    if deleted == 0 {
        return Err(StoreError::not_found("segment"));
    }
    Ok(())
}

pub(crate) fn segment_members(
    conn: &Connection,
    workspace: WorkspaceId,
    segment: SegmentId,
    page: PageRequest<ContactId>,
) -> StoreResult<Page<ContactId, ContactId>> {
    get_segment(conn, workspace, segment)?;
    let mut statement = conn
        .prepare_cached(
            "SELECT contact_id FROM segment_members WHERE segment_id = ?1 AND contact_id > ?2
             ORDER BY contact_id LIMIT ?3",
        )
        .context("preparing segment_members")?;
    let after = page.after.map_or(0, |id| id.get());
    let rows = statement
        .query_map(params![segment.get(), after, fetch_limit(page.limit)], |row| Ok(ContactId::new(row.get(0)?)))
        .context("listing segment members")?;
    let ids = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading segment members")?;
    Ok(into_page(ids, page.limit, |id| *id))
}

pub(crate) fn segment_contacts(
    conn: &Connection,
    workspace: WorkspaceId,
    segment: SegmentId,
    page: PageRequest<ContactId>,
) -> StoreResult<Page<Contact, ContactId>> {
    get_segment(conn, workspace, segment)?;
    let columns = CONTACT_COLUMNS.replace("id, workspace_id,", "contacts.id, contacts.workspace_id,");
    let sql = format!(
        "SELECT {columns} FROM segment_members JOIN contacts ON contacts.id = segment_members.contact_id
         WHERE segment_members.segment_id = ?1 AND segment_members.contact_id > ?2
         ORDER BY segment_members.contact_id LIMIT ?3"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing segment_contacts")?;
    let after = page.after.map_or(0, |id| id.get());
    let rows = statement
        .query_map(params![segment.get(), after, fetch_limit(page.limit)], contact_from_row)
        .context("listing segment contacts")?;
    let contacts = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading segment contacts")?;
    let page = into_page(contacts, page.limit, |contact| contact.id);
    Ok(Page { items: with_identities_and_tags(conn, page.items)?, next: page.next })
}

pub(crate) fn contact_segments(
    conn: &Connection,
    workspace: WorkspaceId,
    contact: ContactId,
) -> StoreResult<Vec<SegmentId>> {
    check_contact_exists(conn, workspace, contact)?;
    let mut statement = conn
        .prepare_cached("SELECT segment_id FROM segment_members WHERE contact_id = ?1 ORDER BY segment_id")
        .context("preparing contact_segments")?;
    let rows =
        statement.query_map([contact.get()], |row| Ok(SegmentId::new(row.get(0)?))).context("listing segments")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading segments")?)
}

/// What `apply_memberships` needs to know of a segment.
struct SegmentLabel {
    name: String,
    tag: Option<(TagId, String)>,
}

fn segment_labels(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    changes: &MembershipChanges,
) -> StoreResult<HashMap<SegmentId, SegmentLabel>> {
    let mut labels = HashMap::new();
    let mut statement = tx
        .prepare_cached(
            "SELECT segments.name, tags.id, tags.path FROM segments LEFT JOIN tags ON tags.id = segments.tag_id
             WHERE segments.workspace_id = ?1 AND segments.id = ?2",
        )
        .context("preparing a segment look-up")?;
    for (segment, _) in changes.entered.iter().chain(&changes.exited) {
        if labels.contains_key(segment) {
            continue;
        }
        let label = statement
            .query_row(params![workspace.get(), segment.get()], |row| {
                let tag = match row.get::<_, Option<i64>>(1)? {
                    Some(id) => Some((TagId::new(id), row.get::<_, String>(2)?)),
                    None => None,
                };
                Ok(SegmentLabel { name: row.get(0)?, tag })
            })
            .optional()
            .context("reading a segment")?;
        if let Some(label) = label {
            labels.insert(*segment, label);
        }
    }
    Ok(labels)
}

pub(crate) fn apply_memberships(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    changes: MembershipChanges,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let labels = segment_labels(tx, workspace, &changes)?;
    let at = micros(at);
    let actor = "system";
    let mut exists = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM contacts WHERE workspace_id = ?1 AND id = ?2)")
        .context("preparing a contact check")?;
    let mut enter = tx
        .prepare_cached("INSERT OR IGNORE INTO segment_members (segment_id, contact_id, since) VALUES (?1, ?2, ?3)")
        .context("preparing a member insert")?;
    let mut exit = tx
        .prepare_cached("DELETE FROM segment_members WHERE segment_id = ?1 AND contact_id = ?2")
        .context("preparing a member delete")?;
    let mut link = tx
        .prepare_cached("INSERT OR IGNORE INTO contact_tags (contact_id, tag_id, added_at) VALUES (?1, ?2, ?3)")
        .context("preparing a tag link")?;
    let mut unlink = tx
        .prepare_cached("DELETE FROM contact_tags WHERE contact_id = ?1 AND tag_id = ?2")
        .context("preparing a tag unlink")?;
    for (entering, (segment, contact)) in
        changes.entered.iter().map(|change| (true, change)).chain(changes.exited.iter().map(|change| (false, change)))
    {
        let Some(label) = labels.get(segment) else { continue };
        let present: bool = exists
            .query_row(params![workspace.get(), contact.get()], |row| row.get(0))
            .context("checking a contact")?;
        if !present {
            continue;
        }
        let changed = if entering {
            enter.execute(params![segment.get(), contact.get(), at]).context("adding a member")?
        } else {
            exit.execute(params![segment.get(), contact.get()]).context("removing a member")?
        };
        if changed == 0 {
            continue;
        }
        let kind = if entering { "segment_entered" } else { "segment_exited" };
        let data = json!({ "segment_id": segment.get(), "segment": label.name });
        record_activity(tx, workspace, *contact, kind, at, actor, &data)?;
        if let Some((tag, path)) = &label.tag {
            let linked = if entering {
                link.execute(params![contact.get(), tag.get(), at]).context("linking a dynamic tag")?
            } else {
                unlink.execute(params![contact.get(), tag.get()]).context("unlinking a dynamic tag")?
            };
            if linked > 0 {
                let kind = if entering { "tag_added" } else { "tag_removed" };
                record_activity(tx, workspace, *contact, kind, at, actor, &json!({ "tag": path, "actor": actor }))?;
            }
        }
    }
    Ok(())
}

// ----- The change feed -----

pub(crate) fn change_head(conn: &Connection) -> StoreResult<ChangeCursor> {
    let changes: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |row| row.get(0))
        .context("reading the feed")?;
    let events: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |row| row.get(0)).context("reading the feed")?;
    Ok(ChangeCursor { changes, events })
}

pub(crate) fn read_changes(conn: &Connection, after: ChangeCursor, limit: u32) -> StoreResult<ChangeBatch> {
    let mut next = after;
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, workspace_id, contact_id, company_id FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .context("preparing read_changes")?;
    let rows = statement
        .query_map(params![after.changes, i64::from(limit)], |row| {
            let seq: i64 = row.get(0)?;
            let workspace_id = WorkspaceId::new(row.get(1)?);
            let subject = match (row.get::<_, Option<i64>>(2)?, row.get::<_, Option<i64>>(3)?) {
                (Some(contact), _) => ChangeSubject::Contact(ContactId::new(contact)),
                (None, Some(company)) => ChangeSubject::Company(CompanyId::new(company)),
                (None, None) => ChangeSubject::Schema,
            };
            Ok((seq, Change { workspace_id, subject }))
        })
        .context("reading changes")?;
    let mut changes = Vec::new();
    for row in rows {
        let (seq, change) = row.context("reading a change")?;
        next.changes = seq;
        changes.push(change);
    }
    // The position moves past every row read, placeholders that keep erased ids taken (see `erase_events`)
    // included, though only real events are returned.
    let upper: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM (SELECT id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2)")
        .context("preparing the events of the feed")?
        .query_row(params![after.events, i64::from(limit)], |row| row.get(0))
        .context("reading the events of the feed")?;
    let Some(upper) = upper else { return Ok(ChangeBatch { changes, events: Vec::new(), next }) };
    let sql = format!(
        "SELECT events.id, events.workspace_id, events.contact_id, events.occurred_at, {EVENT_TIMELINE_COLUMNS}
         FROM events {EVENT_TIMELINE_JOINS} WHERE events.id > ?1 AND events.id <= ?2 ORDER BY events.id"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing the events of the feed")?;
    let rows = statement.query_map(params![after.events, upper], event_fact).context("reading events")?;
    let events = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading events")?;
    next.events = upper;
    Ok(ChangeBatch { changes, events, next })
}

pub(crate) fn prune_changes(tx: &Transaction<'_>, before: ChangeCursor) -> StoreResult<()> {
    tx.execute("DELETE FROM changes WHERE seq <= ?1", [before.changes]).context("pruning changes")?;
    Ok(())
}

fn event_fact(row: &Row<'_>) -> rusqlite::Result<EventFact> {
    let id: i64 = row.get(0)?;
    let occurred_at: i64 = row.get(3)?;
    let data = event_data(row, 4, id, occurred_at)?;
    let event_type = data.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
    let properties = match data.get("properties") {
        Some(Value::Object(properties)) => properties.clone(),
        _ => Map::new(),
    };
    Ok(EventFact {
        id,
        workspace_id: WorkspaceId::new(row.get(1)?),
        contact_id: ContactId::new(row.get(2)?),
        event_type,
        occurred_at: time_from_micros(occurred_at)?,
        properties,
    })
}

pub(crate) fn scan_events(
    conn: &Connection,
    workspace: WorkspaceId,
    event_types: &[String],
    delivered: ChangeCursor,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<EventFact>> {
    let types = Value::from(event_types.to_vec()).to_string();
    let sql = format!(
        "SELECT events.id, events.workspace_id, events.contact_id, events.occurred_at, {EVENT_TIMELINE_COLUMNS}
         FROM events {EVENT_TIMELINE_JOINS}
         WHERE events.workspace_id = ?1 AND events.id > ?2 AND events.id <= ?3
           AND events.type_id IN (SELECT id FROM event_types
                                  WHERE workspace_id = ?1 AND name IN (SELECT value FROM json_each(?4)))
         ORDER BY events.id LIMIT ?5"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing scan_events")?;
    let rows = statement
        .query_map(params![workspace.get(), after, delivered.events, types, i64::from(limit)], event_fact)
        .context("scanning events")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading events")?)
}

// ----- Contacts as filters see them -----

pub(crate) fn audience_contacts(
    conn: &Connection,
    workspace: WorkspaceId,
    after: Option<ContactId>,
    limit: u32,
) -> StoreResult<Vec<AudienceContact>> {
    let sql =
        format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
    let mut statement = conn.prepare_cached(&sql).context("preparing audience_contacts")?;
    let rows = statement
        .query_map(params![workspace.get(), after.map_or(0, |id| id.get()), i64::from(limit)], contact_from_row)
        .context("reading contacts")?;
    let contacts = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading contacts")?;
    with_audience_facts(conn, with_identities_and_tags(conn, contacts)?)
}

pub(crate) fn audience_contacts_by_id(
    conn: &Connection,
    workspace: WorkspaceId,
    ids: &[ContactId],
) -> StoreResult<Vec<AudienceContact>> {
    let ids = Value::from(ids.iter().map(|id| id.get()).collect::<Vec<_>>()).to_string();
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = ?1 AND id IN (SELECT value FROM json_each(?2))"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing audience_contacts_by_id")?;
    let rows = statement.query_map(params![workspace.get(), ids], contact_from_row).context("reading contacts")?;
    let contacts = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading contacts")?;
    with_audience_facts(conn, with_identities_and_tags(conn, contacts)?)
}

/// Adds consent states and stage histories to contacts, with one query each.
fn with_audience_facts(conn: &Connection, contacts: Vec<Contact>) -> StoreResult<Vec<AudienceContact>> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let ids = Value::from(contacts.iter().map(|contact| contact.id.get()).collect::<Vec<_>>()).to_string();
    let mut facts: Vec<AudienceContact> = contacts
        .into_iter()
        .map(|contact| {
            let stages = vec![(contact.stage.clone(), contact.created_at)];
            AudienceContact { contact, consents: Vec::new(), stages }
        })
        .collect();
    let position: HashMap<ContactId, usize> =
        facts.iter().enumerate().map(|(index, fact)| (fact.contact.id, index)).collect();

    // The newest record per channel: SQLite takes the bare columns from the row holding max().
    let mut consents = conn
        .prepare_cached(
            "SELECT contact_id, channel, granted, max(recorded_at * 1000000000 + id) FROM consents
             WHERE contact_id IN (SELECT value FROM json_each(?1)) GROUP BY contact_id, channel",
        )
        .context("preparing consent states")?;
    let rows = consents
        .query_map([&ids], |row| Ok((ContactId::new(row.get(0)?), row.get::<_, String>(1)?, row.get::<_, bool>(2)?)))
        .context("reading consent states")?;
    for row in rows {
        let (id, channel, granted) = row.context("reading a consent state")?;
        if let (Some(&index), Some(channel)) = (position.get(&id), ConsentChannel::parse(&channel)) {
            facts[index].consents.push((channel, granted));
        }
    }

    let mut stages = conn
        .prepare_cached(
            "SELECT contact_id, json_extract(data, '$.from'), json_extract(data, '$.to'), at FROM activities
             WHERE contact_id IN (SELECT value FROM json_each(?1)) AND kind = 'stage_changed' ORDER BY at, id",
        )
        .context("preparing stage histories")?;
    let rows = stages
        .query_map([&ids], |row| {
            let id = ContactId::new(row.get(0)?);
            Ok((id, row.get::<_, Option<String>>(1)?, row.get::<_, Option<String>>(2)?, time_at(row, 3)?))
        })
        .context("reading stage histories")?;
    let mut changed = vec![false; facts.len()];
    for row in rows {
        let (id, from, to, at) = row.context("reading a stage change")?;
        let (Some(&index), Some(to)) = (position.get(&id), to) else { continue };
        let stages = &mut facts[index].stages;
        // The contact started in the stage its first change left.
        if !changed[index] {
            changed[index] = true;
            if let (Some(first), Some(from)) = (stages.first_mut(), from) {
                first.0 = from;
            }
        }
        stages.push((to, at));
    }
    Ok(facts)
}

// ----- Tag statistics -----

pub(crate) fn tag_activity(
    conn: &Connection,
    workspace: WorkspaceId,
    tag: TagId,
    from: NaiveDate,
    to: NaiveDate,
) -> StoreResult<Vec<TagDay>> {
    let path: Option<String> = conn
        .query_row(
            "SELECT path FROM tags WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.get(), tag.get()],
            |row| row.get(0),
        )
        .optional()
        .context("reading a tag")?;
    let path = path.ok_or(StoreError::not_found("tag"))?;
    let start = from.and_hms_opt(0, 0, 0).map(|at| micros(at.and_utc())).unwrap_or(i64::MIN);
    let end = to.succ_opt().and_then(|day| day.and_hms_opt(0, 0, 0)).map(|at| micros(at.and_utc())).unwrap_or(i64::MAX);
    let mut statement = conn
        .prepare_cached(
            "SELECT at / 86400000000, sum(kind = 'tag_added'), sum(kind = 'tag_removed') FROM activities
             WHERE workspace_id = ?1 AND kind IN ('tag_added', 'tag_removed') AND at >= ?2 AND at < ?3
               AND json_extract(data, '$.tag') = ?4
             GROUP BY 1 ORDER BY 1",
        )
        .context("preparing tag_activity")?;
    let rows = statement
        .query_map(params![workspace.get(), start, end, path], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })
        .context("reading tag activity")?;
    let mut days = Vec::new();
    for row in rows {
        let (day, added, removed) = row.context("reading a day of tag activity")?;
        let Some(day) = chrono::DateTime::from_timestamp(day * 86_400, 0).map(|at| at.date_naive()) else { continue };
        days.push(TagDay {
            day,
            added: u64::try_from(added).unwrap_or_default(),
            removed: u64::try_from(removed).unwrap_or_default(),
        });
    }
    Ok(days)
}

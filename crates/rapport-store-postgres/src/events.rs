//! How events are stored, shared by the REST API's `insert_events` and the tracking API's `ingest_tracking`, and
//! how the timeline reads them back.
//!
//! `events` is the table that grows fastest, so a row holds little more than numbers (see the migration
//! `0002_capture.sql`, and the `capture_storage` example for what an event costs):
//! - the type and the REST API's free-text source are ids into `event_names`;
//! - JSON that repeats across events is interned in `event_documents` and referenced by id: the context without
//!   its page (the same for every event of a device: user agent, library, locale, IP address), the context's page,
//!   and the page-describing properties of page views (`url`, `path`, `title`, `referrer`, …), which usually equal
//!   the context's page and so share its document. Other properties are stored inline;
//! - the message id is kept compactly, and deduplicated through its hash (see `message_ids.rs`).
//!
//! A call writes its events with a handful of statements whatever their number: one look-up of the names it uses,
//! one of its documents (and an insert of the new ones), one insert of the events. Splitting the events and
//! hashing their documents needs no database ([`PreparedEvents`]), so the tracking API does it on a blocking thread
//! while the database resolves the call's visitors.

mod interning;

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use rapport_domain::{ContactId, Identity, SourceId, WorkspaceId};
use rapport_store::{ContactRef, EventOutcome, NewEvent, StoreResult};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use crate::batch::{create_identified_contacts, resolve_identities};
use crate::connection::{LockMode, PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::message_ids::{message_hash, message_id_from_stored, stored_message_id};
use crate::sql::violated_unique_constraint;
use crate::tags::allocate_ids;

pub(crate) use interning::SharedIds;
use interning::{Documents, NameIds};

/// Properties that describe the page a page view was on, interned as one document when the properties have a
/// `url` or a `path` (the Segment page spec's fields, plus the page call's name and category).
const PAGE_PROPERTY_KEYS: [&str; 8] = ["category", "keywords", "name", "path", "referrer", "search", "title", "url"];

/// What a caller hands over of an event, before it knows the event's contact.
pub(crate) struct EventPayload {
    pub(crate) event_type: String,
    pub(crate) properties: Map<String, Value>,
    pub(crate) context: Map<String, Value>,
    pub(crate) occurred_at: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
    /// The REST API's free-text source.
    pub(crate) source_name: Option<String>,
}

/// Events split into what is stored inline and the names and documents they refer to, deduplicated, with their
/// keys computed: the part of writing events that needs no database, and so can run while the database resolves
/// the events' contacts.
pub(crate) struct PreparedEvents {
    events: Vec<PreparedEvent>,
    names: NameIds,
    documents: Documents,
}

struct PreparedEvent {
    type_name: usize,
    source_name: Option<usize>,
    /// The slots of the context (without its page), of the context's page and of the page properties.
    documents: [Option<usize>; 3],
    /// What is left of the properties, serialised here so that the work stays off the caller's thread.
    properties: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
}

/// Where a prepared event goes: its index among the payloads, its contact and where it came from.
pub(crate) struct EventPlacement {
    pub(crate) payload: usize,
    pub(crate) contact_id: i64,
    /// The tracking source the event came through.
    pub(crate) source_id: Option<SourceId>,
    /// The message id and its hash (see [`message_hash`]).
    pub(crate) message_id: Option<(i64, String)>,
}

/// How events get their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventIds {
    /// Taken from the sequence up front and returned, for callers that report them.
    Report,
    /// Assigned by the insert, for callers that do not need them.
    Omit,
}

impl PreparedEvents {
    pub(crate) fn prepare(payloads: Vec<EventPayload>) -> PreparedEvents {
        let mut names = NameIds::default();
        let mut documents = Documents::default();
        let mut events = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let (properties, page) = split_page_properties(payload.properties);
            let mut context = payload.context;
            let context_page = match context.remove("page") {
                Some(Value::Object(page)) => Some(page),
                Some(other) => {
                    context.insert("page".to_owned(), other);
                    None
                }
                None => None,
            };
            // A page view's properties usually describe the page of its context: one document serves both.
            let page = match (page, &context_page) {
                (Some(page), Some(context_page)) if &page == context_page => None,
                (page, _) => Some(page),
            };
            let context_page_slot = context_page.as_ref().map(|page| documents.intern(page));
            let page_slot = match page {
                None => context_page_slot,
                Some(page) => page.as_ref().map(|page| documents.intern(page)),
            };
            events.push(PreparedEvent {
                type_name: names.intern("type", payload.event_type),
                source_name: payload.source_name.map(|name| names.intern("source", name)),
                documents: [(!context.is_empty()).then(|| documents.intern(&context)), context_page_slot, page_slot],
                properties: Value::Object(properties).to_string(),
                occurred_at: payload.occurred_at,
                received_at: payload.received_at,
            });
        }
        PreparedEvents { events, names, documents }
    }

    /// Applies the merges made since [`PreparedEvents::look_up_documents`] ran to the sole contacts it found.
    pub(crate) fn follow_merges(&mut self, survivor_of: impl Fn(i64) -> i64) {
        for (_, sole_contact) in self.documents.found.values_mut() {
            *sole_contact = sole_contact.map(&survivor_of);
        }
    }

    /// Looks up the documents that exist already, before the events' contacts are known, so that this can run on
    /// another connection while the caller's resolves the contacts. [`write_events`] looks up only what is left.
    pub(crate) async fn look_up_documents(
        &mut self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        cache: &SharedIds,
    ) -> StoreResult<()> {
        let documents = &mut self.documents;
        let wanted: Vec<usize> = (0..documents.wanted.len())
            .filter(|slot| cache.document(workspace, &documents.wanted[*slot].hash).is_none())
            .collect();
        for (slot, id, sole_contact) in documents.look_up(connection, workspace, &wanted).await? {
            documents.found.insert(slot, (id, sole_contact));
        }
        Ok(())
    }
}

/// What became of a placed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventWrite {
    /// Stored, with its id when the caller asked for ids.
    Stored(Option<i64>),
    /// Its message hash was stored already, by a transaction that committed after the caller looked.
    Duplicate,
}

/// Writes the placed events and returns what became of each, in order. The caller holds the erasure lock at least
/// shared and has checked that the contacts exist. A large insert has no `ON CONFLICT`, which costs about half as
/// much again: callers look message hashes up first where a duplicate would matter to them, and when a stored one
/// comes through anyway (a concurrent transaction stored it first, or the caller relied on this), the insert fails
/// and is repeated with `ON CONFLICT DO NOTHING`. A small one skips conflicts straight away
/// ([`SKIPPING_INSERT_LIMIT`]).
pub(crate) async fn write_events(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    mut prepared: PreparedEvents,
    placements: Vec<EventPlacement>,
    ids: EventIds,
    shared_ids: &SharedIds,
) -> StoreResult<Vec<EventWrite>> {
    if placements.is_empty() {
        return Ok(Vec::new());
    }
    for placement in &placements {
        let event = &prepared.events[placement.payload];
        for slot in event.documents.iter().flatten() {
            prepared.documents.used_by(*slot, placement.contact_id);
        }
        prepared.names.used(event.type_name);
        if let Some(slot) = event.source_name {
            prepared.names.used(slot);
        }
    }
    let name_ids = prepared.names.resolve(connection, workspace, shared_ids).await?;
    let document_ids = prepared.documents.resolve(connection, workspace, shared_ids).await?;

    let mut columns = EventColumns::with_capacity(placements.len());
    for placement in placements {
        let event = &mut prepared.events[placement.payload];
        let document = |slot: Option<usize>| slot.map_or(0, |slot| document_ids[slot]);
        let source = match (placement.source_id, event.source_name) {
            (Some(source), _) => i32::try_from(source.get()).context("a source id")?,
            (None, Some(name)) => -name_ids[name],
            (None, None) => 0,
        };
        columns.contact_ids.push(placement.contact_id);
        columns.occurred_at.push(event.occurred_at);
        columns.received_at.push(event.received_at);
        columns.type_ids.push(name_ids[event.type_name]);
        columns.sources.push(source);
        columns.context_ids.push(document(event.documents[0]));
        columns.context_page_ids.push(document(event.documents[1]));
        columns.page_ids.push(document(event.documents[2]));
        columns.properties.push(std::mem::take(&mut event.properties));
        match placement.message_id {
            Some((hash, message_id)) => {
                columns.message_hashes.push(Some(hash));
                columns.message_ids.push(stored_message_id(&message_id));
            }
            None => {
                columns.message_hashes.push(None);
                columns.message_ids.push(Vec::new());
            }
        }
    }
    if ids == EventIds::Report {
        columns.ids = Some(allocate_ids(connection, "events_id_seq", columns.contact_ids.len()).await?);
    }
    columns.insert(connection).await
}

/// The message hashes among `hashes` that the workspace has stored. All are looked up among the message ids of
/// tracking messages that stored no event, which no constraint covers; those whose `probe_events` is set among
/// events' too. For the others the caller relies on the event insert, which finds a stored one through the unique
/// index (see [`write_events`]).
pub(crate) async fn stored_message_hashes(
    connection: &mut PgConnection,
    hashes: &[i64],
    probe_events: &[bool],
) -> StoreResult<HashSet<i64>> {
    if hashes.is_empty() {
        return Ok(HashSet::new());
    }
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT wanted.hash FROM UNNEST($1::bigint[], $2::bool[]) AS wanted (hash, probe_events)
         WHERE EXISTS (SELECT 1 FROM message_ids WHERE message_hash = wanted.hash)
             OR (wanted.probe_events AND EXISTS (SELECT 1 FROM events WHERE message_hash = wanted.hash))",
    )
    .bind(hashes)
    .bind(probe_events)
    .fetch_all(connection)
    .await
    .context("probing message ids")?;
    Ok(stored.into_iter().collect())
}

impl PostgresStore {
    /// A call resolves the contacts its events name with one query per kind of reference, looks its message ids
    /// up, creates the missing contacts in bulk (under the contact lock, taken only then), and writes all events at
    /// once. Calls that create no contact hold only the shared erasure lock, so they run side by side.
    pub(crate) async fn insert_events(
        &self,
        workspace: WorkspaceId,
        events: Vec<NewEvent>,
    ) -> StoreResult<Vec<EventOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Events have no foreign key; from here to the commit, no contact they name can be erased or merged away.
        let mut tx = self.begin_locked(workspace, &[(WorkspaceLock::Erasure, LockMode::Shared)]).await?;

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
        // neither create a contact nor read as naming an unknown one.
        let hashes: Vec<Option<i64>> = events
            .iter()
            .map(|event| event.message_id.as_deref().map(|message_id| message_hash(workspace, message_id)))
            .collect();
        let probed: Vec<i64> = hashes.iter().flatten().copied().collect();
        let stored = stored_message_hashes(&mut tx, &probed, &vec![true; probed.len()]).await?;

        let mut outcomes = vec![EventOutcome::Duplicate; events.len()];
        let mut accepted: Vec<(usize, NewEvent)> = Vec::with_capacity(events.len());
        let mut seen: HashSet<i64> = HashSet::new();
        let mut to_create: Vec<Identity> = Vec::new();
        let mut scheduled: HashSet<Identity> = HashSet::new();
        for (index, event) in events.into_iter().enumerate() {
            if let Some(hash) = hashes[index] {
                if stored.contains(&hash) || !seen.insert(hash) {
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

        let accepted_indexes: Vec<usize> = accepted.iter().map(|(index, _)| *index).collect();
        let mut payloads = Vec::with_capacity(accepted.len());
        let mut placements = Vec::with_capacity(accepted.len());
        for (index, event) in accepted {
            let contact_id = match &event.contact {
                ContactRef::Id(contact) => contact.get(),
                ContactRef::Identity(identity) => {
                    *owners.get(identity).context("every named identity has a contact")?
                }
            };
            placements.push(EventPlacement {
                payload: payloads.len(),
                contact_id,
                source_id: None,
                message_id: hashes[index].zip(event.message_id),
            });
            payloads.push(EventPayload {
                event_type: event.event_type,
                properties: event.properties,
                context: event.context,
                occurred_at: event.occurred_at,
                received_at: event.received_at,
                source_name: event.source,
            });
        }
        let indexes: Vec<(usize, i64)> =
            accepted_indexes.into_iter().zip(placements.iter().map(|placement| placement.contact_id)).collect();
        let prepared = PreparedEvents::prepare(payloads);
        let written =
            write_events(&mut tx, workspace, prepared, placements, EventIds::Report, &self.shared_ids).await?;
        commit(tx).await?;
        for ((index, contact_id), written) in indexes.into_iter().zip(written) {
            if let EventWrite::Stored(Some(event_id)) = written {
                outcomes[index] = EventOutcome::Stored { contact_id: ContactId::new(contact_id), event_id };
            }
        }
        Ok(outcomes)
    }
}

// ----- Reading events back -----

/// The event side of the timeline: the contact's events `$1` in timeline order, cut to `$5` rows, with the names
/// and documents they refer to. `$filter` bounds `(occurred_at, id)`.
macro_rules! timeline_events_sql {
    ($filter:literal) => {
        concat!(
            "SELECT e.occurred_at AS at, 1::bigint AS source, e.id, 'event' AS kind, NULL::jsonb AS data,
                 t.name AS event_type,
                 CASE WHEN e.page_id = 0 THEN e.properties::jsonb ELSE e.properties::jsonb || p.body END
                     AS properties,
                 coalesce(c.body, '{}'::jsonb) || CASE WHEN e.context_page_id = 0 THEN '{}'::jsonb
                     ELSE jsonb_build_object('page', cp.body) END AS context,
                 CASE WHEN e.source > 0 THEN e.source::text ELSE s.name END AS event_source,
                 e.message_id, e.received_at
             FROM (SELECT * FROM events WHERE contact_id = $1 ",
            $filter,
            " ORDER BY occurred_at DESC, id DESC LIMIT $5) AS e
             JOIN event_names t ON t.id = e.type_id
             LEFT JOIN event_names s ON s.id = -e.source
             LEFT JOIN event_documents c ON c.id = e.context_id
             LEFT JOIN event_documents cp ON cp.id = e.context_page_id
             LEFT JOIN event_documents p ON p.id = e.page_id"
        )
    };
}
pub(crate) use timeline_events_sql;

/// The columns [`timeline_events_sql`] adds for an event.
pub(crate) struct StoredEvent {
    pub(crate) id: i64,
    pub(crate) event_type: Option<String>,
    pub(crate) properties: Option<Value>,
    pub(crate) context: Option<Value>,
    pub(crate) source: Option<String>,
    pub(crate) message_id: Option<Vec<u8>>,
    pub(crate) received_at: Option<DateTime<Utc>>,
}

/// An event as the timeline shows it: `{"id", "type", "properties", "context", "source", "message_id",
/// "received_at"}`. The source is the REST API's free text, or the tracking source's id as a decimal string.
pub(crate) fn event_data(event: StoredEvent) -> Value {
    json!({
        "id": event.id,
        "type": event.event_type,
        "properties": event.properties,
        "context": event.context,
        "source": event.source,
        "message_id": event.message_id.as_deref().and_then(message_id_from_stored),
        "received_at": event.received_at.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    })
}

// ----- Internals -----

/// Splits off the page-describing properties of a page view; other events keep all their properties inline.
fn split_page_properties(mut properties: Map<String, Value>) -> (Map<String, Value>, Option<Map<String, Value>>) {
    if !properties.contains_key("url") && !properties.contains_key("path") {
        return (properties, None);
    }
    let mut page = Map::new();
    for key in PAGE_PROPERTY_KEYS {
        if let Some((key, value)) = properties.remove_entry(key) {
            page.insert(key, value);
        }
    }
    (properties, Some(page))
}

/// Up to this many events, the insert skips stored message hashes with `ON CONFLICT DO NOTHING` straight away
/// (see [`write_events`]): for a handful of rows the conflict check costs less than the two round trips of the
/// savepoint that the plain insert needs, and single tracking calls commit a few events at a time.
const SKIPPING_INSERT_LIMIT: usize = 64;

/// Event rows as parallel arrays, the shape `UNNEST` takes.
struct EventColumns {
    /// `None` lets the insert assign them.
    ids: Option<Vec<i64>>,
    contact_ids: Vec<i64>,
    occurred_at: Vec<DateTime<Utc>>,
    received_at: Vec<DateTime<Utc>>,
    message_hashes: Vec<Option<i64>>,
    type_ids: Vec<i32>,
    sources: Vec<i32>,
    context_ids: Vec<i32>,
    context_page_ids: Vec<i32>,
    page_ids: Vec<i32>,
    /// Serialised JSON, stored as it is (see the migration `0005_lean_capture_rows.sql`).
    properties: Vec<String>,
    message_ids: Vec<Vec<u8>>,
}

/// The columns an insert binds from `$1` on, ids first.
macro_rules! unnest_events {
    () => {
        "UNNEST($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::bigint[], $6::int[], $7::int[],
             $8::int[], $9::int[], $10::int[], $11::text[], $12::bytea[])
         AS e (id, contact_id, occurred_at, received_at, message_hash, type_id, source, context_id, context_page_id,
             page_id, properties, message_id)"
    };
}

/// Binds the columns of [`unnest_events`]; without ids, an empty array, which `UNNEST` pads with NULLs.
macro_rules! bind_events {
    ($query:expr, $columns:expr) => {
        $query
            .bind($columns.ids.as_deref().unwrap_or_default())
            .bind(&$columns.contact_ids)
            .bind(&$columns.occurred_at)
            .bind(&$columns.received_at)
            .bind(&$columns.message_hashes)
            .bind(&$columns.type_ids)
            .bind(&$columns.sources)
            .bind(&$columns.context_ids)
            .bind(&$columns.context_page_ids)
            .bind(&$columns.page_ids)
            .bind(&$columns.properties)
            .bind(&$columns.message_ids)
    };
}

impl EventColumns {
    fn with_capacity(capacity: usize) -> EventColumns {
        EventColumns {
            ids: None,
            contact_ids: Vec::with_capacity(capacity),
            occurred_at: Vec::with_capacity(capacity),
            received_at: Vec::with_capacity(capacity),
            message_hashes: Vec::with_capacity(capacity),
            type_ids: Vec::with_capacity(capacity),
            sources: Vec::with_capacity(capacity),
            context_ids: Vec::with_capacity(capacity),
            context_page_ids: Vec::with_capacity(capacity),
            page_ids: Vec::with_capacity(capacity),
            properties: Vec::with_capacity(capacity),
            message_ids: Vec::with_capacity(capacity),
        }
    }

    /// Inserts the events in a savepoint; when another transaction stored one of their message hashes since the
    /// caller looked, the insert is repeated with `ON CONFLICT DO NOTHING`, and the events it skips are duplicates.
    async fn insert(&self, connection: &mut PgConnection) -> StoreResult<Vec<EventWrite>> {
        if self.contact_ids.len() <= SKIPPING_INSERT_LIMIT {
            return self.insert_skipping(connection).await;
        }
        sqlx::query("SAVEPOINT event_insert").execute(&mut *connection).await.context("starting a savepoint")?;
        let plain = concat!(
            "INSERT INTO events (id, contact_id, occurred_at, received_at, message_hash, type_id, source, context_id,
                 context_page_id, page_id, properties, message_id)
             SELECT coalesce(e.id, nextval('events_id_seq')), e.contact_id, e.occurred_at, e.received_at,
                 e.message_hash, e.type_id, e.source, e.context_id, e.context_page_id, e.page_id, e.properties::json,
                 e.message_id
             FROM ",
            unnest_events!()
        );
        match bind_events!(sqlx::query(plain), self).execute(&mut *connection).await {
            Ok(_) => {
                sqlx::query("RELEASE SAVEPOINT event_insert")
                    .execute(&mut *connection)
                    .await
                    .context("releasing a savepoint")?;
                return Ok(match &self.ids {
                    Some(ids) => ids.iter().map(|id| EventWrite::Stored(Some(*id))).collect(),
                    None => vec![EventWrite::Stored(None); self.contact_ids.len()],
                });
            }
            Err(error) if violated_unique_constraint(&error) == Some("events_by_message_hash") => {}
            Err(error) => return Err(anyhow::Error::new(error).context("inserting events").into()),
        }
        sqlx::query("ROLLBACK TO SAVEPOINT event_insert")
            .execute(&mut *connection)
            .await
            .context("rolling a savepoint back")?;
        let written = self.insert_skipping(connection).await?;
        sqlx::query("RELEASE SAVEPOINT event_insert")
            .execute(&mut *connection)
            .await
            .context("releasing a savepoint")?;
        Ok(written)
    }

    /// Inserts the events with `ON CONFLICT DO NOTHING`; the events it skips are duplicates.
    async fn insert_skipping(&self, connection: &mut PgConnection) -> StoreResult<Vec<EventWrite>> {
        let skipping = concat!(
            "INSERT INTO events (id, contact_id, occurred_at, received_at, message_hash, type_id, source, context_id,
                 context_page_id, page_id, properties, message_id)
             SELECT coalesce(e.id, nextval('events_id_seq')), e.contact_id, e.occurred_at, e.received_at,
                 e.message_hash, e.type_id, e.source, e.context_id, e.context_page_id, e.page_id, e.properties::json,
                 e.message_id
             FROM ",
            unnest_events!(),
            " ON CONFLICT (message_hash) WHERE message_hash IS NOT NULL DO NOTHING
             RETURNING id, message_hash"
        );
        let inserted: Vec<(i64, Option<i64>)> = bind_events!(sqlx::query_as(skipping), self)
            .fetch_all(&mut *connection)
            .await
            .context("inserting events")?;
        // Events without a message hash cannot conflict; the others are told apart by it.
        let stored: HashMap<i64, i64> =
            inserted.into_iter().filter_map(|(id, hash)| hash.map(|hash| (hash, id))).collect();
        Ok(self
            .message_hashes
            .iter()
            .enumerate()
            .map(|(index, hash)| match hash {
                None => EventWrite::Stored(self.ids.as_ref().map(|ids| ids[index])),
                Some(hash) => match stored.get(hash) {
                    Some(id) => EventWrite::Stored(self.ids.as_ref().map(|_| *id)),
                    None => EventWrite::Duplicate,
                },
            })
            .collect())
    }
}

pub(crate) async fn existing_contacts(
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

//! How events are stored, shared by the REST API's `insert_events` and the tracking API's `ingest_tracking`.
//!
//! `events` is the table that grows fastest, so a row holds little more than numbers: about 65 bytes, plus 25 in
//! the contact index, 17 in `message_ids` and some 35 of shared documents for Segment-like web traffic (the
//! `capture_storage` example measures it):
//! - the type is an id into `event_types`, a small per-workspace dictionary;
//! - JSON that repeats across events is interned in `event_documents` and referenced by id: the context without
//!   its page (the same for every event of a device: user agent, library, locale, IP address), the context's page,
//!   and the page-describing properties of page views (`url`, `path`, `title`, `referrer`, …), which usually equal
//!   the context's page and so share its document. Other properties are stored inline as JSON text;
//! - `received_at` is kept as its delay after `occurred_at`, a few bytes instead of eight;
//! - the message id is kept compactly (see `message_ids.rs`), and deduplicated through `message_ids`;
//! - the contact index is split into blocks of consecutive events (see the schema), so that a commit writes into
//!   the newest block only; a contact's events are read block by block ([`newest_event_ids`]).
//!
//! Documents count their references (in the narrow `event_document_refs`, so that counting does not rewrite the
//! pages that hold the bodies) so that erasing a contact also erases the documents only its events used: a URL or
//! an IP address is personal data too. Event types and documents are looked up in the writer's memo first (see
//! `memo.rs`), the database only for what the memo has not seen.

use std::collections::HashMap;

use anyhow::Context;
use chrono::SecondsFormat;
use rapport_domain::{ContactId, Identity, SourceId, WorkspaceId};
use rapport_store::{ContactRef, EventOutcome, NewEvent, StoreResult};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::contacts::{References, contact_exists, identity_owner, insert_identified_contact};
use crate::memo::WriterMemo;
use crate::message_ids::{hash_from_stored, message_hash, message_id_from_stored, stored_message_id};
use crate::sql::{corrupt, micros, now_micros, time_from_micros};

/// Properties that describe the page a page view was on, kept in an interned document when the properties have a
/// `url` or a `path` (the Segment page spec's fields, plus the page call's name and category).
const PAGE_PROPERTY_KEYS: [&str; 8] = ["category", "keywords", "name", "path", "referrer", "search", "title", "url"];

/// One event as it is written. It borrows its data, so that the caller decides where the (many, small)
/// allocations of the messages are freed.
pub(crate) struct EventRow<'a> {
    /// Set only when an upgrade copies events that already have ids.
    pub(crate) id: Option<i64>,
    pub(crate) contact: ContactId,
    pub(crate) event_type: &'a str,
    /// The properties and context, already serialized.
    pub(crate) documents: &'a EventDocuments,
    /// Microseconds, like every stored time.
    pub(crate) occurred_at: i64,
    pub(crate) received_at: i64,
    /// The free-text source of the REST API.
    pub(crate) source: Option<&'a str>,
    /// The tracking source the event came through.
    pub(crate) source_id: Option<SourceId>,
    pub(crate) message_id: Option<&'a str>,
}

/// An event's JSON as it is stored: the inline properties, and the documents to intern, serialized and hashed.
/// Building it needs no database, so the tracking API does it before taking the writer connection, and the
/// serializing and hashing of one commit overlaps the writing of the previous one.
pub(crate) struct EventDocuments {
    properties: Option<String>,
    page: Option<Document>,
    context: Option<Document>,
    context_page: ContextPage,
}

/// A document to intern: its body and the first 16 bytes of the body's SHA-256, too many for two bodies ever to
/// share them.
struct Document {
    body: String,
    digest: u128,
}

enum ContextPage {
    None,
    /// A page view's context repeats its page properties: the same document, serialized once.
    SameAsPage,
    Document(Document),
}

impl EventDocuments {
    pub(crate) fn new(properties: &Map<String, Value>, context: &Map<String, Value>) -> StoreResult<EventDocuments> {
        let describes_page = properties.contains_key("url") || properties.contains_key("path");
        let page = describes_page.then(|| Document::new(&Only { map: properties, keep: is_page_key })).transpose()?;
        let properties_text = if describes_page {
            let rest = Only { map: properties, keep: |key| !is_page_key(key) };
            (rest.len() > 0).then(|| serialize(&rest)).transpose()?
        } else {
            (!properties.is_empty()).then(|| serialize(properties)).transpose()?
        };
        let (context_document, context_page) = match context.get("page") {
            Some(Value::Object(page)) => {
                let rest = Only { map: context, keep: |key| key != "page" };
                let context_document = (rest.len() > 0).then(|| Document::new(&rest)).transpose()?;
                let context_page = if describes_page && same_page(properties, page) {
                    ContextPage::SameAsPage
                } else {
                    ContextPage::Document(Document::new(page)?)
                };
                (context_document, context_page)
            }
            _ => ((!context.is_empty()).then(|| Document::new(context)).transpose()?, ContextPage::None),
        };
        Ok(EventDocuments { properties: properties_text, page, context: context_document, context_page })
    }
}

impl Document {
    fn new(content: &impl Serialize) -> StoreResult<Document> {
        let body = serialize(content)?;
        let digest = Sha256::digest(body.as_bytes());
        let mut first = [0_u8; 16];
        first.copy_from_slice(&digest[..16]);
        Ok(Document { body, digest: u128::from_be_bytes(first) })
    }
}

/// Writes the events of one call in one workspace. Reference counts are added up in memory and written by
/// [`EventWriter::finish`], which every user must call before committing.
pub(crate) struct EventWriter {
    workspace: WorkspaceId,
    type_ids: HashMap<String, i64>,
    added_references: HashMap<i64, i64>,
}

impl EventWriter {
    pub(crate) fn new(workspace: WorkspaceId) -> EventWriter {
        EventWriter { workspace, type_ids: HashMap::new(), added_references: HashMap::new() }
    }

    /// Records a message id; `false` when the workspace has it already (from earlier in this transaction too).
    /// `owner` is set for messages that store no event, so that erasing their contact finds them.
    pub(crate) fn claim_message_id(
        &self,
        tx: &Transaction<'_>,
        message_id: &str,
        owner: Option<ContactId>,
    ) -> StoreResult<bool> {
        self.claim_message_hash(tx, message_hash(message_id), owner)
    }

    /// [`EventWriter::claim_message_id`] with the id's hash (see `message_ids.rs`) computed already.
    pub(crate) fn claim_message_hash(
        &self,
        tx: &Transaction<'_>,
        hash: i64,
        owner: Option<ContactId>,
    ) -> StoreResult<bool> {
        let mut claim = tx
            .prepare_cached("INSERT OR IGNORE INTO message_ids (workspace_id, hash, contact_id) VALUES (?1, ?2, ?3)")
            .context("preparing a message id claim")?;
        let claimed = claim
            .execute(params![self.workspace.get(), hash, owner.map(ContactId::get)])
            .context("claiming a message id")?;
        Ok(claimed == 1)
    }

    pub(crate) fn insert(
        &mut self,
        tx: &Transaction<'_>,
        memo: &mut WriterMemo,
        event: EventRow<'_>,
    ) -> StoreResult<i64> {
        let type_id = self.type_id(tx, memo, event.event_type)?;
        let documents = event.documents;
        let page_id = documents.page.as_ref().map(|page| self.document(tx, memo, page)).transpose()?;
        let context_id = documents.context.as_ref().map(|context| self.document(tx, memo, context)).transpose()?;
        let context_page_id = match (&documents.context_page, page_id) {
            (ContextPage::None, _) => None,
            (ContextPage::SameAsPage, Some(page_id)) => Some(self.reference(page_id)),
            (ContextPage::SameAsPage, None) => None,
            (ContextPage::Document(page), _) => Some(self.document(tx, memo, page)?),
        };
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (id, workspace_id, contact_id, type_id, occurred_at, received_delay, properties,
                     page_id, context_id, context_page_id, source, source_id, message_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .context("preparing an event insert")?;
        insert
            .execute(params![
                event.id,
                self.workspace.get(),
                event.contact.get(),
                type_id,
                event.occurred_at,
                event.received_at - event.occurred_at,
                documents.properties,
                page_id,
                context_id,
                context_page_id,
                event.source,
                event.source_id.map(SourceId::get),
                event.message_id.map(stored_message_id),
            ])
            .context("inserting an event")?;
        Ok(tx.last_insert_rowid())
    }

    /// Writes the reference counts of the documents this writer used.
    pub(crate) fn finish(self, tx: &Transaction<'_>) -> StoreResult<()> {
        add_references(tx, self.added_references.into_iter())
    }

    fn type_id(&mut self, tx: &Transaction<'_>, memo: &mut WriterMemo, name: &str) -> StoreResult<i64> {
        if let Some(id) = self.type_ids.get(name) {
            return Ok(*id);
        }
        let key = (self.workspace, name.to_owned());
        let id = match memo.event_types.get(&key) {
            Some(id) => id,
            None => {
                let id = intern_event_type(tx, self.workspace, name)?;
                memo.event_types.learn(key, id);
                id
            }
        };
        self.type_ids.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The id of the interned document, counting one more reference to it.
    fn document(&mut self, tx: &Transaction<'_>, memo: &mut WriterMemo, document: &Document) -> StoreResult<i64> {
        let key = (self.workspace, document.digest);
        let id = match memo.documents.get(&key) {
            Some(id) => id,
            None => {
                // The stored hash is the digest's first eight bytes.
                let hash = (document.digest >> 64) as i64;
                let id = intern_document(tx, self.workspace, hash, &document.body)?;
                memo.documents.learn(key, id);
                id
            }
        };
        Ok(self.reference(id))
    }

    fn reference(&mut self, document: i64) -> i64 {
        *self.added_references.entry(document).or_default() += 1;
        document
    }
}

/// Whether the workspace has stored the message id with this hash (earlier in this transaction included).
pub(crate) fn message_hash_seen(conn: &Connection, workspace: WorkspaceId, hash: i64) -> StoreResult<bool> {
    let mut probe = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM message_ids WHERE workspace_id = ?1 AND hash = ?2)")
        .context("preparing a message id probe")?;
    Ok(probe.query_row(params![workspace.get(), hash], |row| row.get(0)).context("probing a message id")?)
}

/// Appends events from the REST API. Per event this costs a contact probe (remembered for the call), a message id
/// claim and one insert; the claim comes before a contact is created, so that a duplicate event creates nobody.
pub(crate) fn insert_events(
    tx: &Transaction<'_>,
    memo: &mut WriterMemo,
    workspace: WorkspaceId,
    events: &[NewEvent],
) -> StoreResult<Vec<EventOutcome>> {
    let mut writer = EventWriter::new(workspace);
    let mut first_stage: Option<String> = None;
    let mut contacts_by_id: HashMap<ContactId, bool> = HashMap::new();
    let mut contacts_by_identity: HashMap<Identity, ContactId> = HashMap::new();
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if let ContactRef::Id(id) = &event.contact {
            let exists = match contacts_by_id.get(id) {
                Some(exists) => *exists,
                None => {
                    let exists = contact_exists(tx, workspace, *id)?;
                    contacts_by_id.insert(*id, exists);
                    exists
                }
            };
            if !exists {
                outcomes.push(EventOutcome::UnknownContact);
                continue;
            }
        }
        if let Some(message_id) = &event.message_id {
            if !writer.claim_message_id(tx, message_id, None)? {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
        }
        let contact_id = match &event.contact {
            ContactRef::Id(id) => *id,
            ContactRef::Identity(identity) => match contacts_by_identity.get(identity) {
                Some(id) => *id,
                None => {
                    let id = match identity_owner(tx, workspace, identity)? {
                        Some(id) => id,
                        None => {
                            if first_stage.is_none() {
                                first_stage = Some(References::load(tx, workspace)?.first_stage()?.to_owned());
                            }
                            let stage = first_stage.as_deref().unwrap_or_default();
                            insert_identified_contact(tx, workspace, identity, stage, now_micros())?
                        }
                    };
                    contacts_by_identity.insert(identity.clone(), id);
                    id
                }
            },
        };
        let documents = EventDocuments::new(&event.properties, &event.context)?;
        let event_id = writer.insert(
            tx,
            memo,
            EventRow {
                id: None,
                contact: contact_id,
                event_type: &event.event_type,
                documents: &documents,
                occurred_at: micros(event.occurred_at),
                received_at: micros(event.received_at),
                source: event.source.as_deref(),
                source_id: None,
                message_id: event.message_id.as_deref(),
            },
        )?;
        outcomes.push(EventOutcome::Stored { contact_id, event_id });
    }
    writer.finish(tx)?;
    Ok(outcomes)
}

/// Erases a contact's events with every trace of them: their message ids (and those of the contact's other
/// messages) and the documents no other event uses.
pub(crate) fn erase_events(
    tx: &Transaction<'_>,
    memo: &mut WriterMemo,
    workspace: WorkspaceId,
    contact: ContactId,
) -> StoreResult<()> {
    memo.contact_erased();
    let mut hashes = Vec::new();
    let mut released: HashMap<i64, i64> = HashMap::new();
    let ids = Value::from(contact_event_ids(tx, contact)?).to_string();
    {
        let mut select = tx
            .prepare_cached(
                "SELECT message_id, page_id, context_id, context_page_id FROM events
                 WHERE id IN (SELECT value FROM json_each(?1)) AND workspace_id = ?2",
            )
            .context("preparing the events of a contact")?;
        let mut rows = select.query(params![ids, workspace.get()]).context("reading events")?;
        while let Some(row) = rows.next().context("reading an event")? {
            if let Some(hash) = hash_from_stored(row.get_ref(0).context("a message id")?) {
                hashes.push(hash);
            }
            for index in 1..=3 {
                if let Some(document) = row.get::<_, Option<i64>>(index).context("a document id")? {
                    *released.entry(document).or_default() -= 1;
                }
            }
        }
    }
    let mut forget = tx
        .prepare_cached("DELETE FROM message_ids WHERE workspace_id = ?1 AND hash = ?2")
        .context("preparing a message id deletion")?;
    for hash in hashes {
        forget.execute(params![workspace.get(), hash]).context("forgetting a message id")?;
    }
    tx.execute("DELETE FROM message_ids WHERE contact_id = ?1", [contact.get()])
        .context("forgetting a contact's message ids")?;
    let highest = |tx: &Transaction<'_>| -> StoreResult<Option<i64>> {
        Ok(tx.query_row("SELECT max(id) FROM events", [], |row| row.get(0)).context("reading the highest event id")?)
    };
    let highest_before = highest(tx)?;
    tx.execute(
        "DELETE FROM events WHERE workspace_id = ?1 AND contact_id = ?2",
        params![workspace.get(), contact.get()],
    )
    .context("deleting a contact's events")?;
    // Event ids must never be handed out again: the audience engine follows new events by id. SQLite gives a new
    // row the highest id plus one, so when the newest events were this contact's, a placeholder keeps their id
    // taken. It belongs to no contact (0) and no type (0), so no reader joins it.
    let highest_after = highest(tx)?;
    if let Some(before) = highest_before.filter(|before| highest_after < Some(*before)) {
        tx.execute(
            "INSERT INTO events (id, workspace_id, contact_id, type_id, occurred_at, received_delay)
             VALUES (?1, ?2, 0, 0, 0, 0)",
            params![before, workspace.get()],
        )
        .context("keeping the highest event id taken")?;
    }
    let documents: Vec<i64> = released.keys().copied().collect();
    add_references(tx, released.into_iter())?;
    let mut unused = tx
        .prepare_cached(
            "DELETE FROM event_documents WHERE id = ?1
                 AND (SELECT refs FROM event_document_refs WHERE document_id = ?1) <= 0",
        )
        .context("preparing a document deletion")?;
    let mut uncounted = tx
        .prepare_cached("DELETE FROM event_document_refs WHERE document_id = ?1 AND refs <= 0")
        .context("preparing a reference count deletion")?;
    for document in documents {
        unused.execute([document]).context("deleting an unused document")?;
        uncounted.execute([document]).context("deleting a reference count")?;
    }
    Ok(())
}

/// How many low bits of an event id its block leaves out: `id >> EVENT_BLOCK_BITS` is the block, exactly as the
/// expression of the index `events_by_contact`, which queries must repeat to the letter to use it.
const BLOCK: &str = "(events.id >> 16)";

/// The ids of a contact's newest events that come before a timeline cursor `(at, source, id)` (events have source
/// 1), newest first, at most `limit`. Each block of the index gives its newest; the blocks' answers are merged.
pub(crate) fn newest_event_ids(
    conn: &Connection,
    contact: ContactId,
    before: (i64, i64, i64),
    limit: usize,
) -> StoreResult<Vec<i64>> {
    let (at, source, id) = before;
    // (occurred_at, 1, id) < (at, source, id) as a bound on (occurred_at, id) alone, which the index can seek.
    let before_id = match source.cmp(&1) {
        std::cmp::Ordering::Greater => i64::MAX,
        std::cmp::Ordering::Equal => id,
        std::cmp::Ordering::Less => 0,
    };
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT occurred_at, id FROM events
             WHERE {BLOCK} = ?1 AND contact_id = ?2 AND (occurred_at, id) < (?3, ?4)
             ORDER BY occurred_at DESC, id DESC LIMIT ?5"
        ))
        .context("preparing a contact's newest events")?;
    let mut found: Vec<(i64, i64)> = Vec::new();
    for block in event_blocks(conn)? {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(params![block, contact.get(), at, before_id, limit], |row| Ok((row.get(0)?, row.get(1)?)))
            .context("reading a contact's events")?;
        for row in rows {
            found.push(row.context("reading a contact's event")?);
        }
    }
    found.sort_unstable_by(|left, right| right.cmp(left));
    found.truncate(limit);
    Ok(found.into_iter().map(|(_, id)| id).collect())
}

/// Every event id of a contact.
pub(crate) fn contact_event_ids(conn: &Connection, contact: ContactId) -> StoreResult<Vec<i64>> {
    let mut statement = conn
        .prepare_cached(&format!("SELECT id FROM events WHERE {BLOCK} = ?1 AND contact_id = ?2"))
        .context("preparing a contact's events")?;
    let mut ids = Vec::new();
    for block in event_blocks(conn)? {
        let rows = statement.query_map(params![block, contact.get()], |row| row.get(0)).context("reading events")?;
        for row in rows {
            ids.push(row.context("reading an event id")?);
        }
    }
    Ok(ids)
}

/// The blocks that hold events, newest first (none without events).
fn event_blocks(conn: &Connection) -> StoreResult<impl Iterator<Item = i64>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT max{BLOCK} FROM events")).context("preparing the newest block")?;
    let newest: Option<i64> = statement.query_row([], |row| row.get(0)).context("reading the newest block")?;
    Ok((0..newest.map_or(0, |newest| newest + 1)).rev())
}

/// The columns the timeline selects for an event, after its time, source and id; read by [`event_data`].
pub(crate) const EVENT_TIMELINE_COLUMNS: &str = "event_types.name, events.properties, page.body, context.body,
    context_page.body, events.source, events.source_id, events.message_id, events.received_delay";

/// The joins [`EVENT_TIMELINE_COLUMNS`] needs.
pub(crate) const EVENT_TIMELINE_JOINS: &str = "JOIN event_types ON event_types.id = events.type_id
    LEFT JOIN event_documents AS page ON page.id = events.page_id
    LEFT JOIN event_documents AS context ON context.id = events.context_id
    LEFT JOIN event_documents AS context_page ON context_page.id = events.context_page_id";

/// An event as the timeline shows it, rebuilt from the columns of [`EVENT_TIMELINE_COLUMNS`] starting at `first`:
/// `{"id", "type", "properties", "context", "source", "message_id", "received_at"}`. The source is the REST API's
/// free text, or the tracking source's id as a decimal string.
pub(crate) fn event_data(row: &Row<'_>, first: usize, id: i64, occurred_at: i64) -> rusqlite::Result<Value> {
    let mut properties = object_at(row, first + 1)?;
    properties.extend(object_at(row, first + 2)?);
    let mut context = object_at(row, first + 3)?;
    if let Some(page) = row.get::<_, Option<String>>(first + 4)? {
        context.insert("page".to_owned(), parse(first + 4, &page)?);
    }
    let source = match row.get::<_, Option<String>>(first + 5)? {
        Some(source) => Some(source),
        None => row.get::<_, Option<i64>>(first + 6)?.map(|id| id.to_string()),
    };
    let message_id = message_id_from_stored(row.get_ref(first + 7)?);
    let received_at = time_from_micros(occurred_at + row.get::<_, i64>(first + 8)?)?;
    Ok(json!({
        "id": id,
        "type": row.get::<_, String>(first)?,
        "properties": properties,
        "context": context,
        "source": source,
        "message_id": message_id,
        "received_at": received_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }))
}

fn is_page_key(key: &str) -> bool {
    PAGE_PROPERTY_KEYS.contains(&key)
}

/// Whether the context's page is exactly the page-describing part of the properties.
fn same_page(properties: &Map<String, Value>, page: &Map<String, Value>) -> bool {
    let page_properties = properties.keys().filter(|key| is_page_key(key)).count();
    page.len() == page_properties
        && page.iter().all(|(key, value)| is_page_key(key) && properties.get(key) == Some(value))
}

/// The entries of a JSON object whose keys pass `keep`, serialized as an object of their own without copying.
struct Only<'a> {
    map: &'a Map<String, Value>,
    keep: fn(&str) -> bool,
}

impl Only<'_> {
    fn len(&self) -> usize {
        self.map.keys().filter(|key| (self.keep)(key)).count()
    }
}

impl Serialize for Only<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.map.iter().filter(|(key, _)| (self.keep)(key)))
    }
}

fn serialize(value: &impl Serialize) -> StoreResult<String> {
    Ok(serde_json::to_string(value).context("serializing JSON")?)
}

/// Finds or adds the document with this body and hash (the first eight bytes of its SHA-256, as stored). Hashes may
/// collide, so a match is confirmed on the body.
fn intern_document(tx: &Transaction<'_>, workspace: WorkspaceId, hash: i64, body: &str) -> StoreResult<i64> {
    let mut find = tx
        .prepare_cached("SELECT id, body FROM event_documents WHERE workspace_id = ?1 AND hash = ?2")
        .context("preparing a document lookup")?;
    let mut rows = find.query(params![workspace.get(), hash]).context("looking up a document")?;
    while let Some(row) = rows.next().context("reading a document")? {
        if let ValueRef::Text(stored) = row.get_ref(1).context("a document body")? {
            if stored == body.as_bytes() {
                return Ok(row.get(0).context("a document id")?);
            }
        }
    }
    let mut insert = tx
        .prepare_cached("INSERT INTO event_documents (workspace_id, hash, body) VALUES (?1, ?2, ?3)")
        .context("preparing a document insert")?;
    insert.execute(params![workspace.get(), hash, body]).context("adding a document")?;
    Ok(tx.last_insert_rowid())
}

fn intern_event_type(tx: &Transaction<'_>, workspace: WorkspaceId, name: &str) -> StoreResult<i64> {
    let mut find = tx
        .prepare_cached("SELECT id FROM event_types WHERE workspace_id = ?1 AND name = ?2")
        .context("preparing an event type lookup")?;
    let found: Option<i64> = find
        .query_row(params![workspace.get(), name], |row| row.get(0))
        .optional()
        .context("looking up an event type")?;
    if let Some(id) = found {
        return Ok(id);
    }
    let mut insert = tx
        .prepare_cached("INSERT INTO event_types (workspace_id, name) VALUES (?1, ?2)")
        .context("preparing an event type insert")?;
    insert.execute(params![workspace.get(), name]).context("adding an event type")?;
    Ok(tx.last_insert_rowid())
}

fn add_references(tx: &Transaction<'_>, deltas: impl Iterator<Item = (i64, i64)>) -> StoreResult<()> {
    let mut update = tx
        .prepare_cached(
            "INSERT INTO event_document_refs (document_id, refs) VALUES (?1, ?2)
             ON CONFLICT (document_id) DO UPDATE SET refs = refs + excluded.refs",
        )
        .context("preparing a reference count update")?;
    for (document, delta) in deltas {
        update.execute(params![document, delta]).context("counting document references")?;
    }
    Ok(())
}

fn object_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Map<String, Value>> {
    match row.get::<_, Option<String>>(index)? {
        None => Ok(Map::new()),
        Some(text) => match parse(index, &text)? {
            Value::Object(map) => Ok(map),
            _ => Err(corrupt(index, "not a JSON object".to_owned())),
        },
    }
}

fn parse(index: usize, text: &str) -> rusqlite::Result<Value> {
    serde_json::from_str(text).map_err(|error| corrupt(index, error.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The block expression of the queries must be the index's to the letter, or SQLite scans the whole table.
    #[test]
    fn contact_queries_use_the_block_index() {
        let directory = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(&directory.path().join("plan.db")).unwrap();
        drop(store);
        let conn = Connection::open(directory.path().join("plan.db")).unwrap();
        let plan = |sql: &str| {
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = statement.query_map([], |row| row.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let newest = plan(&format!(
            "SELECT occurred_at, id FROM events WHERE {BLOCK} = 1 AND contact_id = 2 AND (occurred_at, id) < (3, 4)
             ORDER BY occurred_at DESC, id DESC LIMIT 5"
        ));
        assert!(
            newest.contains("USING COVERING INDEX events_by_contact") && !newest.contains("TEMP B-TREE"),
            "{newest}"
        );
        let all = plan(&format!("SELECT id FROM events WHERE {BLOCK} = 1 AND contact_id = 2"));
        assert!(all.contains("USING COVERING INDEX events_by_contact"), "{all}");
    }

    /// A late event lands in a newer block than earlier ones; reads merge the blocks back into time order.
    #[test]
    fn contact_events_are_merged_across_blocks() {
        let directory = tempfile::tempdir().unwrap();
        drop(crate::SqliteStore::open(&directory.path().join("blocks.db")).unwrap());
        let conn = Connection::open(directory.path().join("blocks.db")).unwrap();
        // (id, contact, occurred_at): ids 65,536 apart fall into different blocks.
        let events = [(5, 7, 100), (9, 8, 150), (65_541, 7, 300), (131_080, 7, 200), (131_081, 7, 300)];
        for (id, contact, occurred_at) in events {
            conn.execute(
                "INSERT INTO events (id, workspace_id, contact_id, type_id, occurred_at, received_delay)
                 VALUES (?1, 1, ?2, 1, ?3, 0)",
                params![id, contact, occurred_at],
            )
            .unwrap();
        }
        let contact = ContactId::new(7);
        let newest = |before, limit| newest_event_ids(&conn, contact, before, limit).unwrap();
        assert_eq!(newest((i64::MAX, i64::MAX, i64::MAX), 10), [131_081, 65_541, 131_080, 5]);
        assert_eq!(newest((i64::MAX, i64::MAX, i64::MAX), 2), [131_081, 65_541]);
        assert_eq!(newest((300, 1, 65_541), 10), [131_080, 5], "after an event");
        assert_eq!(newest((300, 0, 1), 10), [131_080, 5], "after an activity at the same time");
        assert_eq!(newest((300, 2, 1), 10), [131_081, 65_541, 131_080, 5]);
        let mut all = contact_event_ids(&conn, contact).unwrap();
        all.sort_unstable();
        assert_eq!(all, [5, 65_541, 131_080, 131_081]);
    }
}

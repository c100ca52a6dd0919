//! The names and JSON documents that events refer to instead of repeating them, deduplicated within a call and
//! looked up or added with one statement each.

use std::collections::HashMap;

use anyhow::Context;
use rapport_domain::WorkspaceId;
use rapport_store::StoreResult;
use serde_json::{Map, Value};
use sqlx::PgConnection;

use crate::message_ids::document_hash;

/// The event names a call uses, by slot.
#[derive(Default)]
pub(super) struct NameIds {
    slots: HashMap<(&'static str, String), usize>,
    wanted: Vec<(&'static str, String)>,
    used: Vec<bool>,
}

impl NameIds {
    pub(super) fn intern(&mut self, kind: &'static str, name: String) -> usize {
        let key = (kind, name);
        if let Some(slot) = self.slots.get(&key) {
            return *slot;
        }
        let slot = self.wanted.len();
        self.wanted.push(key.clone());
        self.used.push(false);
        self.slots.insert(key, slot);
        slot
    }

    pub(super) fn used(&mut self, slot: usize) {
        self.used[slot] = true;
    }

    /// The id of every used slot's name (0 for the others), adding the names the workspace does not have yet.
    /// Names are inserted only when missing, so that the sequence is not spent on every call.
    pub(super) async fn resolve(
        &self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        cache: &SharedIds,
    ) -> StoreResult<Vec<i32>> {
        let mut ids: Vec<Option<i32>> = self
            .used
            .iter()
            .zip(&self.wanted)
            .map(|(used, (kind, name))| if *used { cache.name(workspace, kind, name) } else { Some(0) })
            .collect();
        for attempt in 0..2 {
            let missing: Vec<usize> = (0..ids.len()).filter(|slot| ids[*slot].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let kinds: Vec<&str> = missing.iter().map(|slot| self.wanted[*slot].0).collect();
            let names: Vec<&str> = missing.iter().map(|slot| self.wanted[*slot].1.as_str()).collect();
            let found: Vec<(i64, i32)> = sqlx::query_as(
                "SELECT wanted.ordinal, n.id
                 FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS wanted (kind, name, ordinal)
                 JOIN event_names n ON n.workspace_id = $1 AND n.kind = wanted.kind AND n.name = wanted.name",
            )
            .bind(workspace.get())
            .bind(&kinds)
            .bind(&names)
            .fetch_all(&mut *connection)
            .await
            .context("looking up event names")?;
            let mut found_slots = Vec::with_capacity(found.len());
            for (ordinal, id) in found {
                let slot = missing[ordinal_index(ordinal)?];
                ids[slot] = Some(id);
                found_slots.push((slot, id));
            }
            if attempt == 0 {
                // Names found before this call added any were committed by others: they stay.
                let found =
                    found_slots.into_iter().map(|(slot, id)| (self.wanted[slot].0, self.wanted[slot].1.clone(), id));
                cache.remember_names(workspace, found);
            }
            let absent: Vec<usize> = missing.into_iter().filter(|slot| ids[*slot].is_none()).collect();
            if absent.is_empty() || attempt == 1 {
                break;
            }
            // A name another transaction adds meanwhile is skipped here and found by the second look-up.
            let kinds: Vec<&str> = absent.iter().map(|slot| self.wanted[*slot].0).collect();
            let names: Vec<&str> = absent.iter().map(|slot| self.wanted[*slot].1.as_str()).collect();
            sqlx::query(
                "INSERT INTO event_names (workspace_id, kind, name)
                 SELECT $1, kind, name FROM UNNEST($2::text[], $3::text[]) AS new (kind, name)
                 ON CONFLICT DO NOTHING",
            )
            .bind(workspace.get())
            .bind(&kinds)
            .bind(&names)
            .execute(&mut *connection)
            .await
            .context("adding event names")?;
        }
        ids.into_iter().map(|id| id.context("every event name has an id").map_err(Into::into)).collect()
    }
}

/// Ids that stay valid for good, remembered across calls so that a call looks up only the rest: the ids of event
/// names, which are never changed nor deleted, and of documents that the store has seen shared by several contacts,
/// which are never deleted (erasure deletes only the documents of one contact) nor changed. Only ids that a look-up
/// found are remembered, never those of rows the caller's own transaction added, which may yet roll back. Bounded:
/// each map starts over when full.
#[derive(Default)]
pub(crate) struct SharedIds {
    documents: std::sync::Mutex<HashMap<(i64, [u8; 16]), i32>>,
    names: std::sync::Mutex<HashMap<(i64, &'static str, String), i32>>,
}

/// Enough for the shared pages and contexts of a few large sites; an entry takes about 60 bytes.
const SHARED_DOCUMENTS_CAPACITY: usize = 200_000;
/// Event types and free-text sources; a workspace uses a few hundred.
const SHARED_NAMES_CAPACITY: usize = 100_000;

impl SharedIds {
    pub(super) fn document(&self, workspace: WorkspaceId, hash: &[u8; 16]) -> Option<i32> {
        self.documents.lock().ok()?.get(&(workspace.get(), *hash)).copied()
    }

    pub(super) fn remember_documents(&self, workspace: WorkspaceId, shared: impl Iterator<Item = ([u8; 16], i32)>) {
        if let Ok(mut ids) = self.documents.lock() {
            for (hash, id) in shared {
                if ids.len() >= SHARED_DOCUMENTS_CAPACITY {
                    ids.clear();
                }
                ids.insert((workspace.get(), hash), id);
            }
        }
    }

    fn name(&self, workspace: WorkspaceId, kind: &'static str, name: &str) -> Option<i32> {
        // The key is built to look up; names are short, and the map is consulted once per name and call.
        self.names.lock().ok()?.get(&(workspace.get(), kind, name.to_owned())).copied()
    }

    fn remember_names(&self, workspace: WorkspaceId, found: impl Iterator<Item = (&'static str, String, i32)>) {
        if let Ok(mut ids) = self.names.lock() {
            for (kind, name, id) in found {
                if ids.len() >= SHARED_NAMES_CAPACITY {
                    ids.clear();
                }
                ids.insert((workspace.get(), kind, name), id);
            }
        }
    }
}

/// The documents a call uses, by slot, with the contacts that use them.
#[derive(Default)]
pub(super) struct Documents {
    slots: HashMap<[u8; 16], usize>,
    pub(super) wanted: Vec<WantedDocument>,
    buffer: Vec<u8>,
    /// What a look-up before the contacts were known found: id and sole contact, by slot.
    pub(super) found: HashMap<usize, (i32, Option<i64>)>,
}

pub(super) struct WantedDocument {
    pub(super) hash: [u8; 16],
    body: String,
    users: DocumentUsers,
}

/// Which contacts of the call use a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocumentUsers {
    Nobody,
    One(i64),
    Several,
}

impl DocumentUsers {
    fn sole_contact(self) -> Option<i64> {
        match self {
            DocumentUsers::One(contact) => Some(contact),
            DocumentUsers::Nobody | DocumentUsers::Several => None,
        }
    }
}

impl Documents {
    /// Serialises into a buffer kept across calls: most documents of a call are repeats, whose text is only
    /// hashed, never kept.
    pub(super) fn intern(&mut self, content: &Map<String, Value>) -> usize {
        self.buffer.clear();
        if serde_json::to_writer(&mut self.buffer, content).is_err() {
            // Writing a JSON value into memory cannot fail; should it anyway, the value is serialised again.
            self.buffer = Value::Object(content.clone()).to_string().into_bytes();
        }
        let hash = document_hash(&self.buffer);
        if let Some(slot) = self.slots.get(&hash) {
            return *slot;
        }
        let slot = self.wanted.len();
        self.slots.insert(hash, slot);
        let body = String::from_utf8_lossy(&self.buffer).into_owned();
        self.wanted.push(WantedDocument { hash, body, users: DocumentUsers::Nobody });
        slot
    }

    pub(super) fn used_by(&mut self, slot: usize, contact: i64) {
        let users = &mut self.wanted[slot].users;
        *users = match *users {
            DocumentUsers::Nobody => DocumentUsers::One(contact),
            DocumentUsers::One(sole) if sole == contact => DocumentUsers::One(sole),
            DocumentUsers::One(_) | DocumentUsers::Several => DocumentUsers::Several,
        };
    }

    /// The stored documents among `slots`: slot, id and sole contact.
    pub(super) async fn look_up(
        &self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        slots: &[usize],
    ) -> StoreResult<Vec<(usize, i32, Option<i64>)>> {
        if slots.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<&[u8]> = slots.iter().map(|slot| &self.wanted[*slot].hash[..]).collect();
        let found: Vec<(i64, i32, Option<i64>)> = sqlx::query_as(
            "SELECT wanted.ordinal, d.id, d.sole_contact_id
             FROM UNNEST($2::bytea[]) WITH ORDINALITY AS wanted (hash, ordinal)
             CROSS JOIN LATERAL (
                 SELECT id, sole_contact_id FROM event_documents
                 WHERE workspace_id = $1 AND hash = wanted.hash OFFSET 0
             ) AS d",
        )
        .bind(workspace.get())
        .bind(&hashes)
        .fetch_all(connection)
        .await
        .context("looking up event documents")?;
        found
            .into_iter()
            .map(|(ordinal, id, sole_contact)| Ok((slots[ordinal_index(ordinal)?], id, sole_contact)))
            .collect()
    }

    /// The id of every used slot's document (0 for the others), adding the new ones, and marking as shared the
    /// documents that a contact other than their sole one now uses.
    pub(super) async fn resolve(
        &self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        cache: &SharedIds,
    ) -> StoreResult<Vec<i32>> {
        let mut ids: Vec<Option<i32>> = vec![None; self.wanted.len()];
        let mut now_shared: Vec<i32> = Vec::new();
        let mut found_shared: Vec<([u8; 16], i32)> = Vec::new();
        let mut note = |slot: usize, id: i32, sole_contact: Option<i64>, ids: &mut Vec<Option<i32>>| {
            ids[slot] = Some(id);
            if sole_contact.is_none() {
                found_shared.push((self.wanted[slot].hash, id));
            } else if sole_contact != self.wanted[slot].users.sole_contact() {
                now_shared.push(id);
            }
        };
        for (slot, wanted) in self.wanted.iter().enumerate() {
            if wanted.users == DocumentUsers::Nobody {
                ids[slot] = Some(0);
            } else if let Some((id, sole_contact)) = self.found.get(&slot) {
                note(slot, *id, *sole_contact, &mut ids);
            } else if let Some(id) = cache.document(workspace, &wanted.hash) {
                ids[slot] = Some(id);
            }
        }
        for attempt in 0..2 {
            let missing: Vec<usize> = (0..ids.len()).filter(|slot| ids[*slot].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            for (slot, id, sole_contact) in self.look_up(connection, workspace, &missing).await? {
                note(slot, id, sole_contact, &mut ids);
            }
            let absent: Vec<usize> = missing.into_iter().filter(|slot| ids[*slot].is_none()).collect();
            if absent.is_empty() || attempt == 1 {
                break;
            }
            let hashes: Vec<&[u8]> = absent.iter().map(|slot| &self.wanted[*slot].hash[..]).collect();
            let sole_contacts: Vec<Option<i64>> =
                absent.iter().map(|slot| self.wanted[*slot].users.sole_contact()).collect();
            let bodies: Vec<&str> = absent.iter().map(|slot| self.wanted[*slot].body.as_str()).collect();
            // A document another transaction adds meanwhile is skipped here and found by the second look-up.
            let inserted: Vec<(Vec<u8>, i32)> = sqlx::query_as(
                "INSERT INTO event_documents (workspace_id, hash, sole_contact_id, body)
                 SELECT $1, hash, sole_contact_id, body::jsonb
                 FROM UNNEST($2::bytea[], $3::bigint[], $4::text[]) AS new (hash, sole_contact_id, body)
                 ON CONFLICT DO NOTHING
                 RETURNING hash, id",
            )
            .bind(workspace.get())
            .bind(&hashes)
            .bind(&sole_contacts)
            .bind(&bodies)
            .fetch_all(&mut *connection)
            .await
            .context("adding event documents")?;
            for (hash, id) in inserted {
                let slot = <[u8; 16]>::try_from(hash.as_slice()).ok().and_then(|hash| self.slots.get(&hash));
                if let Some(slot) = slot {
                    ids[*slot] = Some(id);
                }
            }
        }
        if !now_shared.is_empty() {
            sqlx::query("UPDATE event_documents SET sole_contact_id = NULL WHERE id = ANY($1)")
                .bind(&now_shared)
                .execute(&mut *connection)
                .await
                .context("marking event documents shared")?;
        }
        cache.remember_documents(workspace, found_shared.into_iter());
        ids.into_iter().map(|id| id.context("every event document has an id").map_err(Into::into)).collect()
    }
}

fn ordinal_index(ordinal: i64) -> anyhow::Result<usize> {
    usize::try_from(ordinal - 1).context("an ordinal out of range")
}

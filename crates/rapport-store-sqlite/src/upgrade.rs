//! Re-encoding data written by older schemas, run by the migrations that change how it is stored.

use std::collections::HashMap;

use anyhow::Context;
use rapport_domain::{ContactId, WorkspaceId};
use rapport_store::StoreResult;
use rusqlite::Transaction;

use crate::events::{EventDocuments, EventRow, EventWriter};
use crate::memo::WriterMemo;
use crate::sql::json_object_at;

/// Copies the events of the first schema (`events_v1`, one JSON text per column and a unique index on message ids)
/// into the current layout, keeping their ids, then drops the old table.
pub(crate) fn upgrade_events_v1(tx: &Transaction<'_>) -> StoreResult<()> {
    let mut memo = WriterMemo::default();
    let mut writers: HashMap<WorkspaceId, EventWriter> = HashMap::new();
    {
        let mut select = tx
            .prepare(
                "SELECT id, workspace_id, contact_id, type, properties, context, occurred_at, received_at, source,
                     message_id
                 FROM events_v1 ORDER BY id",
            )
            .context("preparing to read events_v1")?;
        let mut rows = select.query([]).context("reading events_v1")?;
        while let Some(row) = rows.next().context("reading an event of events_v1")? {
            let workspace = WorkspaceId::new(row.get(1).context("workspace_id")?);
            let writer = writers.entry(workspace).or_insert_with(|| EventWriter::new(workspace));
            let event_type: String = row.get(3).context("type")?;
            let properties = json_object_at(row, 4).context("properties")?;
            let context = json_object_at(row, 5).context("context")?;
            let source: Option<String> = row.get(8).context("source")?;
            let message_id: Option<String> = row.get(9).context("message_id")?;
            if let Some(message_id) = &message_id {
                writer.claim_message_id(tx, message_id, None)?;
            }
            let documents = EventDocuments::new(&properties, &context)?;
            let event = EventRow {
                id: Some(row.get(0).context("id")?),
                contact: ContactId::new(row.get(2).context("contact_id")?),
                event_type: &event_type,
                documents: &documents,
                occurred_at: row.get(6).context("occurred_at")?,
                received_at: row.get(7).context("received_at")?,
                source: source.as_deref(),
                source_id: None,
                message_id: message_id.as_deref(),
            };
            writer.insert(tx, &mut memo, event)?;
        }
    }
    for writer in writers.into_values() {
        writer.finish(tx)?;
    }
    tx.execute_batch("DROP TABLE events_v1").context("dropping events_v1")?;
    Ok(())
}

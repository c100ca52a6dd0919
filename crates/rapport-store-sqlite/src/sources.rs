//! Tracking sources and their write keys. A write key is unique across workspaces: it is what names the workspace
//! on a tracking request, through one look-up in the unique index on `write_key`.

use anyhow::Context;
use rapport_domain::{SourceId, WorkspaceId};
use rapport_store::{NewSource, Source, SourceKind, SourceUpdate, StoreError, StoreResult};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, Transaction, params};

use crate::sql::{micros, now_micros, optional_time_at, parsed_at, time_at};

const SOURCE_COLUMNS: &str =
    "id, workspace_id, name, kind, write_key, auto_create_fields, honor_dnt, created_at, revoked_at";

pub(crate) fn create_source(tx: &Transaction<'_>, workspace: WorkspaceId, source: NewSource) -> StoreResult<Source> {
    tx.execute(
        "INSERT INTO sources (workspace_id, name, kind, write_key, auto_create_fields, honor_dnt, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            workspace.get(),
            source.name.as_str(),
            source.kind.as_str(),
            source.write_key,
            source.auto_create_fields,
            source.honor_dnt,
            now_micros(),
        ],
    )
    .map_err(|error| write_key_taken(error, "inserting a source"))?;
    get_source(tx, workspace, SourceId::new(tx.last_insert_rowid()))
}

pub(crate) fn list_sources(conn: &Connection, workspace: WorkspaceId) -> StoreResult<Vec<Source>> {
    let sql = format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE workspace_id = ?1 ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_sources")?;
    let rows = statement.query_map([workspace.get()], source_from_row).context("listing sources")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading sources")?)
}

pub(crate) fn get_source(conn: &Connection, workspace: WorkspaceId, id: SourceId) -> StoreResult<Source> {
    let sql = format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_source")?;
    let source = statement
        .query_row(params![workspace.get(), id.get()], source_from_row)
        .optional()
        .context("reading a source")?;
    source.ok_or(StoreError::not_found("source"))
}

pub(crate) fn update_source(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: SourceId,
    update: SourceUpdate,
) -> StoreResult<Source> {
    let updated = tx
        .execute(
            "UPDATE sources SET name = coalesce(?3, name), auto_create_fields = coalesce(?4, auto_create_fields),
                 honor_dnt = coalesce(?5, honor_dnt)
             WHERE workspace_id = ?1 AND id = ?2",
            params![
                workspace.get(),
                id.get(),
                update.name.as_ref().map(|name| name.as_str()),
                update.auto_create_fields,
                update.honor_dnt,
            ],
        )
        .context("updating a source")?;
    if updated == 0 {
        return Err(StoreError::not_found("source"));
    }
    get_source(tx, workspace, id)
}

pub(crate) fn rotate_source_key(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: SourceId,
    write_key: &str,
) -> StoreResult<Source> {
    let updated = tx
        .execute(
            "UPDATE sources SET write_key = ?3 WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.get(), id.get(), write_key],
        )
        .map_err(|error| write_key_taken(error, "rotating a write key"))?;
    if updated == 0 {
        return Err(StoreError::not_found("source"));
    }
    get_source(tx, workspace, id)
}

pub(crate) fn revoke_source(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: SourceId,
    at: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Source> {
    let updated = tx
        .execute(
            "UPDATE sources SET revoked_at = coalesce(revoked_at, ?3) WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.get(), id.get(), micros(at)],
        )
        .context("revoking a source")?;
    if updated == 0 {
        return Err(StoreError::not_found("source"));
    }
    get_source(tx, workspace, id)
}

pub(crate) fn source_by_write_key(conn: &Connection, write_key: &str) -> StoreResult<Option<Source>> {
    let sql = format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE write_key = ?1 AND revoked_at IS NULL");
    let mut statement = conn.prepare_cached(&sql).context("preparing source_by_write_key")?;
    Ok(statement.query_row([write_key], source_from_row).optional().context("looking up a write key")?)
}

/// Turns the unique index's complaint into the store's conflict; other errors pass through.
fn write_key_taken(error: rusqlite::Error, doing: &'static str) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => {
            StoreError::conflict("write_key_exists", "a source with this write key exists")
        }
        _ => StoreError::Backend(anyhow::Error::from(error).context(doing)),
    }
}

fn source_from_row(row: &Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        id: SourceId::new(row.get(0)?),
        workspace_id: WorkspaceId::new(row.get(1)?),
        name: row.get(2)?,
        kind: parsed_at(row, 3, SourceKind::parse)?,
        write_key: row.get(4)?,
        auto_create_fields: row.get(5)?,
        honor_dnt: row.get(6)?,
        created_at: time_at(row, 7)?,
        revoked_at: optional_time_at(row, 8)?,
    })
}

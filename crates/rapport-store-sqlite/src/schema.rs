//! The workspace's own schema: custom field definitions, the stage and lead status lists, note templates.

use anyhow::Context;
use rapport_domain::{FieldDefinition, FieldEntity, FieldId, FieldType, MergeRule, NoteTemplateId, Slug, WorkspaceId};
use rapport_store::{
    FieldUpdate, ListEntry, ListEntryUpdate, ListKind, NewField, NewListEntry, NoteTemplate, NoteTemplateInput,
    StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::sql::{now_micros, parsed_at, time_at};

// ----- Custom fields -----

const FIELD_COLUMNS: &str = "id, entity, key, label, type, options, created_at, merge_rule";

pub(crate) fn create_field(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    field: NewField,
) -> StoreResult<FieldDefinition> {
    let taken: Option<i64> = tx
        .query_row(
            "SELECT id FROM field_definitions WHERE workspace_id = ?1 AND entity = ?2 AND key = ?3",
            params![workspace.get(), field.entity.as_str(), field.key.as_str()],
            |row| row.get(0),
        )
        .optional()
        .context("checking the field key")?;
    if taken.is_some() {
        let message = format!("the {} field {} exists already", field.entity.as_str(), field.key);
        return Err(StoreError::conflict("field_exists", message));
    }
    tx.execute(
        "INSERT INTO field_definitions (workspace_id, entity, key, label, type, options, created_at, merge_rule)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            workspace.get(),
            field.entity.as_str(),
            field.key.as_str(),
            field.label.as_str(),
            field.field_type.as_str(),
            options_json(&field.options),
            now_micros(),
            field.merge_rule.as_str(),
        ],
    )
    .context("inserting a field definition")?;
    get_field(tx, workspace, FieldId::new(tx.last_insert_rowid()))
}

pub(crate) fn list_fields(
    conn: &Connection,
    workspace: WorkspaceId,
    entity: Option<FieldEntity>,
) -> StoreResult<Vec<FieldDefinition>> {
    let sql = format!(
        "SELECT {FIELD_COLUMNS} FROM field_definitions WHERE workspace_id = ?1 AND (?2 IS NULL OR entity = ?2) ORDER BY id"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing list_fields")?;
    let rows = statement
        .query_map(params![workspace.get(), entity.map(FieldEntity::as_str)], field_from_row)
        .context("listing fields")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading fields")?)
}

pub(crate) fn get_field(conn: &Connection, workspace: WorkspaceId, id: FieldId) -> StoreResult<FieldDefinition> {
    let sql = format!("SELECT {FIELD_COLUMNS} FROM field_definitions WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_field")?;
    let field = statement
        .query_row(params![workspace.get(), id.get()], field_from_row)
        .optional()
        .context("reading a field")?;
    field.ok_or(StoreError::not_found("field"))
}

pub(crate) fn update_field(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: FieldId,
    update: FieldUpdate,
) -> StoreResult<FieldDefinition> {
    let current = get_field(tx, workspace, id)?;
    tx.execute(
        "UPDATE field_definitions SET label = ?3, options = ?4, merge_rule = ?5 WHERE workspace_id = ?1 AND id = ?2",
        params![
            workspace.get(),
            id.get(),
            update.label.map_or(current.label, |label| label.into_string()),
            options_json(&update.options.unwrap_or(current.options)),
            update.merge_rule.unwrap_or(current.merge_rule).as_str(),
        ],
    )
    .context("updating a field definition")?;
    get_field(tx, workspace, id)
}

/// Removes the definition and its values; the values of other fields and the records' `updated_at` are untouched.
pub(crate) fn delete_field(tx: &Transaction<'_>, workspace: WorkspaceId, id: FieldId) -> StoreResult<()> {
    let field = get_field(tx, workspace, id)?;
    let table = match field.entity {
        FieldEntity::Contact => "contacts",
        FieldEntity::Company => "companies",
    };
    // Keys are slugs, so the JSON path needs no escaping beyond the quotes.
    let json_path = format!("$.\"{}\"", field.key);
    let sql = format!(
        "UPDATE {table} SET fields = json_remove(fields, ?2) WHERE workspace_id = ?1 AND json_type(fields, ?2) IS NOT NULL"
    );
    tx.execute(&sql, params![workspace.get(), json_path]).context("removing the field's values")?;
    tx.execute("DELETE FROM field_definitions WHERE id = ?1", [id.get()]).context("deleting a field definition")?;
    Ok(())
}

fn options_json(options: &[String]) -> String {
    serde_json::Value::from(options.to_vec()).to_string()
}

fn field_from_row(row: &Row<'_>) -> rusqlite::Result<FieldDefinition> {
    let options: String = row.get(5)?;
    Ok(FieldDefinition {
        id: FieldId::new(row.get(0)?),
        entity: parsed_at(row, 1, FieldEntity::parse)?,
        key: parsed_at(row, 2, |text| Slug::parse(text).ok())?,
        label: row.get(3)?,
        field_type: parsed_at(row, 4, FieldType::parse)?,
        options: serde_json::from_str(&options)
            .map_err(|error| rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, error.into()))?,
        created_at: time_at(row, 6)?,
        merge_rule: parsed_at(row, 7, MergeRule::parse)?,
    })
}

// ----- Stages and lead statuses -----

/// The table of a list. The two lists have the same shape and rules.
pub(crate) fn list_table(list: ListKind) -> &'static str {
    match list {
        ListKind::Stages => "stages",
        ListKind::LeadStatuses => "lead_statuses",
    }
}

fn list_code(list: ListKind, stage_code: &'static str, status_code: &'static str) -> &'static str {
    match list {
        ListKind::Stages => stage_code,
        ListKind::LeadStatuses => status_code,
    }
}

pub(crate) fn list_entries(conn: &Connection, workspace: WorkspaceId, list: ListKind) -> StoreResult<Vec<ListEntry>> {
    let sql =
        format!("SELECT key, label, position FROM {} WHERE workspace_id = ?1 ORDER BY position, key", list_table(list));
    let mut statement = conn.prepare_cached(&sql).context("preparing list_entries")?;
    let rows = statement
        .query_map([workspace.get()], |row| {
            Ok(ListEntry { key: row.get(0)?, label: row.get(1)?, position: row.get(2)? })
        })
        .context("listing entries")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading entries")?)
}

pub(crate) fn create_entry(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    list: ListKind,
    entry: NewListEntry,
) -> StoreResult<ListEntry> {
    let mut keys = entry_keys(tx, workspace, list)?;
    if keys.iter().any(|key| key == entry.key.as_str()) {
        let code = list_code(list, "stage_exists", "status_exists");
        return Err(StoreError::conflict(code, format!("the {} {} exists already", list.entity(), entry.key)));
    }
    let sql = format!("INSERT INTO {} (workspace_id, key, label, position) VALUES (?1, ?2, ?3, 0)", list_table(list));
    tx.execute(&sql, params![workspace.get(), entry.key.as_str(), entry.label.as_str()])
        .context("inserting an entry")?;
    let position = clamp_position(entry.position, keys.len());
    keys.insert(position, entry.key.into_string());
    renumber(tx, workspace, list, &keys)?;
    get_entry(tx, workspace, list, &keys[position])
}

pub(crate) fn update_entry(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    list: ListKind,
    key: &str,
    update: ListEntryUpdate,
) -> StoreResult<ListEntry> {
    get_entry(tx, workspace, list, key)?;
    if let Some(label) = update.label {
        let sql = format!("UPDATE {} SET label = ?3 WHERE workspace_id = ?1 AND key = ?2", list_table(list));
        tx.execute(&sql, params![workspace.get(), key, label.as_str()]).context("relabelling an entry")?;
    }
    if let Some(position) = update.position {
        let mut keys = entry_keys(tx, workspace, list)?;
        keys.retain(|existing| existing != key);
        let position = clamp_position(Some(position), keys.len());
        keys.insert(position, key.to_owned());
        renumber(tx, workspace, list, &keys)?;
    }
    get_entry(tx, workspace, list, key)
}

pub(crate) fn delete_entry(tx: &Transaction<'_>, workspace: WorkspaceId, list: ListKind, key: &str) -> StoreResult<()> {
    get_entry(tx, workspace, list, key)?;
    let column = list_code(list, "stage", "status");
    let sql = format!("SELECT EXISTS (SELECT 1 FROM contacts WHERE workspace_id = ?1 AND {column} = ?2)");
    let in_use: bool = tx.query_row(&sql, params![workspace.get(), key], |row| row.get(0)).context("checking use")?;
    if in_use {
        let code = list_code(list, "stage_in_use", "status_in_use");
        return Err(StoreError::conflict(code, format!("contacts are still in the {} {key}", list.entity())));
    }
    let mut keys = entry_keys(tx, workspace, list)?;
    if list == ListKind::Stages && keys.len() == 1 {
        return Err(StoreError::conflict("last_stage", "a workspace keeps at least one stage"));
    }
    let sql = format!("DELETE FROM {} WHERE workspace_id = ?1 AND key = ?2", list_table(list));
    tx.execute(&sql, params![workspace.get(), key]).context("deleting an entry")?;
    keys.retain(|existing| existing != key);
    renumber(tx, workspace, list, &keys)
}

fn get_entry(conn: &Connection, workspace: WorkspaceId, list: ListKind, key: &str) -> StoreResult<ListEntry> {
    let sql = format!("SELECT key, label, position FROM {} WHERE workspace_id = ?1 AND key = ?2", list_table(list));
    let entry = conn
        .query_row(&sql, params![workspace.get(), key], |row| {
            Ok(ListEntry { key: row.get(0)?, label: row.get(1)?, position: row.get(2)? })
        })
        .optional()
        .context("reading an entry")?;
    entry.ok_or(StoreError::not_found(list.entity()))
}

/// The list's keys in their current order.
pub(crate) fn entry_keys(conn: &Connection, workspace: WorkspaceId, list: ListKind) -> StoreResult<Vec<String>> {
    let sql = format!("SELECT key FROM {} WHERE workspace_id = ?1 ORDER BY position, key", list_table(list));
    let mut statement = conn.prepare_cached(&sql).context("preparing entry_keys")?;
    let rows = statement.query_map([workspace.get()], |row| row.get(0)).context("listing entry keys")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading entry keys")?)
}

fn clamp_position(position: Option<i64>, len: usize) -> usize {
    position.map_or(len, |position| usize::try_from(position.max(0)).unwrap_or(len).min(len))
}

fn renumber(tx: &Transaction<'_>, workspace: WorkspaceId, list: ListKind, keys: &[String]) -> StoreResult<()> {
    let sql = format!("UPDATE {} SET position = ?3 WHERE workspace_id = ?1 AND key = ?2", list_table(list));
    let mut statement = tx.prepare_cached(&sql).context("preparing renumber")?;
    for (position, key) in keys.iter().enumerate() {
        statement.execute(params![workspace.get(), key, position]).context("renumbering entries")?;
    }
    Ok(())
}

// ----- Note templates -----

const NOTE_TEMPLATE_COLUMNS: &str = "id, name, status, body, created_at";

pub(crate) fn list_note_templates(conn: &Connection, workspace: WorkspaceId) -> StoreResult<Vec<NoteTemplate>> {
    let sql = format!("SELECT {NOTE_TEMPLATE_COLUMNS} FROM note_templates WHERE workspace_id = ?1 ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_note_templates")?;
    let rows = statement.query_map([workspace.get()], note_template_from_row).context("listing note templates")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading note templates")?)
}

pub(crate) fn get_note_template(
    conn: &Connection,
    workspace: WorkspaceId,
    id: NoteTemplateId,
) -> StoreResult<NoteTemplate> {
    let sql = format!("SELECT {NOTE_TEMPLATE_COLUMNS} FROM note_templates WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_note_template")?;
    let template = statement
        .query_row(params![workspace.get(), id.get()], note_template_from_row)
        .optional()
        .context("reading a note template")?;
    template.ok_or(StoreError::not_found("note template"))
}

pub(crate) fn create_note_template(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    input: NoteTemplateInput,
) -> StoreResult<NoteTemplate> {
    check_template_status(tx, workspace, input.status.as_ref())?;
    tx.execute(
        "INSERT INTO note_templates (workspace_id, name, status, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            workspace.get(),
            input.name.as_str(),
            input.status.as_ref().map(Slug::as_str),
            input.body.as_str(),
            now_micros()
        ],
    )
    .context("inserting a note template")?;
    get_note_template(tx, workspace, NoteTemplateId::new(tx.last_insert_rowid()))
}

pub(crate) fn update_note_template(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: NoteTemplateId,
    input: NoteTemplateInput,
) -> StoreResult<NoteTemplate> {
    get_note_template(tx, workspace, id)?;
    check_template_status(tx, workspace, input.status.as_ref())?;
    tx.execute(
        "UPDATE note_templates SET name = ?3, status = ?4, body = ?5 WHERE workspace_id = ?1 AND id = ?2",
        params![
            workspace.get(),
            id.get(),
            input.name.as_str(),
            input.status.as_ref().map(Slug::as_str),
            input.body.as_str()
        ],
    )
    .context("updating a note template")?;
    get_note_template(tx, workspace, id)
}

pub(crate) fn delete_note_template(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: NoteTemplateId,
) -> StoreResult<()> {
    let deleted = tx
        .execute("DELETE FROM note_templates WHERE workspace_id = ?1 AND id = ?2", params![workspace.get(), id.get()])
        .context("deleting a note template")?;
    if deleted == 0 {
        return Err(StoreError::not_found("note template"));
    }
    Ok(())
}

fn check_template_status(conn: &Connection, workspace: WorkspaceId, status: Option<&Slug>) -> StoreResult<()> {
    let Some(status) = status else { return Ok(()) };
    if !entry_keys(conn, workspace, ListKind::LeadStatuses)?.iter().any(|key| key == status.as_str()) {
        return Err(StoreError::invalid("unknown_status", "status", format!("there is no lead status {status}")));
    }
    Ok(())
}

fn note_template_from_row(row: &Row<'_>) -> rusqlite::Result<NoteTemplate> {
    Ok(NoteTemplate {
        id: NoteTemplateId::new(row.get(0)?),
        name: row.get(1)?,
        status: row.get(2)?,
        body: row.get(3)?,
        created_at: time_at(row, 4)?,
    })
}

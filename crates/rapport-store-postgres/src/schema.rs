//! The workspace's own schema: custom field definitions, the stage and lead status lists, note templates.

use anyhow::Context;
use rapport_domain::{FieldDefinition, FieldEntity, FieldId, MergeRule, NoteTemplateId, Slug, WorkspaceId};
use rapport_store::{
    FieldUpdate, ListEntry, ListEntryUpdate, ListKind, NewField, NewListEntry, NoteTemplate, NoteTemplateInput,
    StoreError, StoreResult,
};
use sqlx::PgConnection;

use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::sql::{FIELD_COLUMNS, FieldRow, ListEntryRow, NOTE_TEMPLATE_COLUMNS, NoteTemplateRow, unique_conflict};

impl PostgresStore {
    // ----- Custom fields -----

    pub(crate) async fn create_field(&self, workspace: WorkspaceId, field: NewField) -> StoreResult<FieldDefinition> {
        let sql = format!(
            "INSERT INTO field_definitions (workspace_id, entity, key, label, type, options, merge_rule, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now()) RETURNING {FIELD_COLUMNS}"
        );
        let row: FieldRow = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(field.entity.as_str())
            .bind(field.key.as_str())
            .bind(field.label.as_str())
            .bind(field.field_type.as_str())
            .bind(&field.options)
            .bind(field.merge_rule.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(|error| {
                let exists = || {
                    let message = format!("the {} field {} exists already", field.entity.as_str(), field.key);
                    StoreError::conflict("field_exists", message)
                };
                unique_conflict(error, "field_definitions_key_key", exists, "inserting a field definition")
            })?;
        Ok(row.into_record()?)
    }

    pub(crate) async fn list_fields(
        &self,
        workspace: WorkspaceId,
        entity: Option<FieldEntity>,
    ) -> StoreResult<Vec<FieldDefinition>> {
        let sql = format!(
            "SELECT {FIELD_COLUMNS} FROM field_definitions
             WHERE workspace_id = $1 AND ($2::text IS NULL OR entity = $2) ORDER BY id"
        );
        let rows: Vec<FieldRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(entity.map(FieldEntity::as_str))
            .fetch_all(&self.pool)
            .await
            .context("listing fields")?;
        Ok(rows.into_iter().map(FieldRow::into_record).collect::<anyhow::Result<_>>()?)
    }

    pub(crate) async fn get_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<FieldDefinition> {
        let sql = format!("SELECT {FIELD_COLUMNS} FROM field_definitions WHERE workspace_id = $1 AND id = $2");
        let row: Option<FieldRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a field")?;
        Ok(row.ok_or(StoreError::not_found("field"))?.into_record()?)
    }

    pub(crate) async fn update_field(
        &self,
        workspace: WorkspaceId,
        id: FieldId,
        update: FieldUpdate,
    ) -> StoreResult<FieldDefinition> {
        let sql = format!(
            "UPDATE field_definitions SET label = coalesce($3, label), options = coalesce($4, options),
                 merge_rule = coalesce($5, merge_rule)
             WHERE workspace_id = $1 AND id = $2 RETURNING {FIELD_COLUMNS}"
        );
        let row: Option<FieldRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(update.label.as_ref().map(|label| label.as_str()))
            .bind(update.options.as_deref())
            .bind(update.merge_rule.map(MergeRule::as_str))
            .fetch_optional(&self.pool)
            .await
            .context("updating a field definition")?;
        Ok(row.ok_or(StoreError::not_found("field"))?.into_record()?)
    }

    /// Removes the definition and its values; the values of other fields and the records' `updated_at` are untouched.
    /// Rewriting contact rows takes the contact lock.
    pub(crate) async fn delete_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        let deleted: Option<(String, String)> =
            sqlx::query_as("DELETE FROM field_definitions WHERE workspace_id = $1 AND id = $2 RETURNING entity, key")
                .bind(workspace.get())
                .bind(id.get())
                .fetch_optional(&mut *tx)
                .await
                .context("deleting a field definition")?;
        let (entity, key) = deleted.ok_or(StoreError::not_found("field"))?;
        let table = match FieldEntity::parse(&entity) {
            Some(FieldEntity::Contact) => "contacts",
            Some(FieldEntity::Company) => "companies",
            None => return Err(anyhow::anyhow!("unknown stored field entity {entity:?}").into()),
        };
        let sql = format!("UPDATE {table} SET fields = fields - $2 WHERE workspace_id = $1 AND fields ? $2");
        sqlx::query(&sql)
            .bind(workspace.get())
            .bind(&key)
            .execute(&mut *tx)
            .await
            .context("removing the field's values")?;
        commit(tx).await
    }

    // ----- Stages and lead statuses -----

    pub(crate) async fn list_entries(&self, workspace: WorkspaceId, list: ListKind) -> StoreResult<Vec<ListEntry>> {
        let rows: Vec<ListEntryRow> = sqlx::query_as(
            "SELECT key, label, position FROM list_entries
             WHERE workspace_id = $1 AND list = $2 ORDER BY position, key",
        )
        .bind(workspace.get())
        .bind(list_name(list))
        .fetch_all(&self.pool)
        .await
        .context("listing entries")?;
        Ok(rows.into_iter().map(ListEntryRow::into_record).collect())
    }

    pub(crate) async fn create_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        entry: NewListEntry,
    ) -> StoreResult<ListEntry> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Lists).await?;
        let mut keys = entry_keys(&mut tx, workspace, list).await?;
        let exists = || {
            let code = list_code(list, "stage_exists", "status_exists");
            StoreError::conflict(code, format!("the {} {} exists already", list.entity(), entry.key))
        };
        sqlx::query("INSERT INTO list_entries (workspace_id, list, key, label, position) VALUES ($1, $2, $3, $4, 0)")
            .bind(workspace.get())
            .bind(list_name(list))
            .bind(entry.key.as_str())
            .bind(entry.label.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|error| unique_conflict(error, "list_entries_pkey", exists, "inserting an entry"))?;
        let position = clamp_position(entry.position, keys.len());
        keys.insert(position, entry.key.into_string());
        renumber(&mut tx, workspace, list, &keys).await?;
        let created = get_entry(&mut tx, workspace, list, &keys[position]).await?;
        commit(tx).await?;
        Ok(created)
    }

    pub(crate) async fn update_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        key: &str,
        update: ListEntryUpdate,
    ) -> StoreResult<ListEntry> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Lists).await?;
        get_entry(&mut tx, workspace, list, key).await?;
        if let Some(label) = update.label {
            sqlx::query("UPDATE list_entries SET label = $4 WHERE workspace_id = $1 AND list = $2 AND key = $3")
                .bind(workspace.get())
                .bind(list_name(list))
                .bind(key)
                .bind(label.as_str())
                .execute(&mut *tx)
                .await
                .context("relabelling an entry")?;
        }
        if let Some(position) = update.position {
            let mut keys = entry_keys(&mut tx, workspace, list).await?;
            keys.retain(|existing| existing != key);
            let position = clamp_position(Some(position), keys.len());
            keys.insert(position, key.to_owned());
            renumber(&mut tx, workspace, list, &keys).await?;
        }
        let updated = get_entry(&mut tx, workspace, list, key).await?;
        commit(tx).await?;
        Ok(updated)
    }

    pub(crate) async fn delete_entry(&self, workspace: WorkspaceId, list: ListKind, key: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // Contacts move between stages under the contact lock; holding it here keeps a contact from entering the
        // entry between the check and the deletion.
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Lists).await?;
        get_entry(&mut tx, workspace, list, key).await?;
        let column = list_code(list, "stage", "status");
        let sql = format!("SELECT EXISTS (SELECT 1 FROM contacts WHERE workspace_id = $1 AND {column} = $2)");
        let in_use: bool = sqlx::query_scalar(&sql)
            .bind(workspace.get())
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .context("checking whether contacts use the entry")?;
        if in_use {
            let code = list_code(list, "stage_in_use", "status_in_use");
            return Err(StoreError::conflict(code, format!("contacts are still in the {} {key}", list.entity())));
        }
        let mut keys = entry_keys(&mut tx, workspace, list).await?;
        if list == ListKind::Stages && keys.len() == 1 {
            return Err(StoreError::conflict("last_stage", "a workspace keeps at least one stage"));
        }
        sqlx::query("DELETE FROM list_entries WHERE workspace_id = $1 AND list = $2 AND key = $3")
            .bind(workspace.get())
            .bind(list_name(list))
            .bind(key)
            .execute(&mut *tx)
            .await
            .context("deleting an entry")?;
        keys.retain(|existing| existing != key);
        renumber(&mut tx, workspace, list, &keys).await?;
        commit(tx).await
    }

    // ----- Note templates -----

    pub(crate) async fn list_note_templates(&self, workspace: WorkspaceId) -> StoreResult<Vec<NoteTemplate>> {
        let sql = format!("SELECT {NOTE_TEMPLATE_COLUMNS} FROM note_templates WHERE workspace_id = $1 ORDER BY id");
        let rows: Vec<NoteTemplateRow> =
            sqlx::query_as(&sql).bind(workspace.get()).fetch_all(&self.pool).await.context("listing note templates")?;
        Ok(rows.into_iter().map(NoteTemplateRow::into_record).collect())
    }

    pub(crate) async fn get_note_template(
        &self,
        workspace: WorkspaceId,
        id: NoteTemplateId,
    ) -> StoreResult<NoteTemplate> {
        let sql = format!("SELECT {NOTE_TEMPLATE_COLUMNS} FROM note_templates WHERE workspace_id = $1 AND id = $2");
        let row: Option<NoteTemplateRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a note template")?;
        Ok(row.ok_or(StoreError::not_found("note template"))?.into_record())
    }

    pub(crate) async fn create_note_template(
        &self,
        workspace: WorkspaceId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate> {
        let mut tx = self.begin().await?;
        check_template_status(&mut tx, workspace, input.status.as_ref()).await?;
        let sql = format!(
            "INSERT INTO note_templates (workspace_id, name, status, body, created_at)
             VALUES ($1, $2, $3, $4, now()) RETURNING {NOTE_TEMPLATE_COLUMNS}"
        );
        let row: NoteTemplateRow = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(input.name.as_str())
            .bind(input.status.as_ref().map(Slug::as_str))
            .bind(input.body.as_str())
            .fetch_one(&mut *tx)
            .await
            .context("inserting a note template")?;
        commit(tx).await?;
        Ok(row.into_record())
    }

    pub(crate) async fn update_note_template(
        &self,
        workspace: WorkspaceId,
        id: NoteTemplateId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE note_templates SET name = $3, status = $4, body = $5
             WHERE workspace_id = $1 AND id = $2 RETURNING {NOTE_TEMPLATE_COLUMNS}"
        );
        let row: Option<NoteTemplateRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(input.name.as_str())
            .bind(input.status.as_ref().map(Slug::as_str))
            .bind(input.body.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("updating a note template")?;
        let row = row.ok_or(StoreError::not_found("note template"))?;
        check_template_status(&mut tx, workspace, input.status.as_ref()).await?;
        commit(tx).await?;
        Ok(row.into_record())
    }

    pub(crate) async fn delete_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM note_templates WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.get())
            .bind(id.get())
            .execute(&self.pool)
            .await
            .context("deleting a note template")?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::not_found("note template"));
        }
        Ok(())
    }
}

/// The value of `list_entries.list` for a list.
pub(crate) fn list_name(list: ListKind) -> &'static str {
    match list {
        ListKind::Stages => "stage",
        ListKind::LeadStatuses => "status",
    }
}

fn list_code(list: ListKind, stage_code: &'static str, status_code: &'static str) -> &'static str {
    match list {
        ListKind::Stages => stage_code,
        ListKind::LeadStatuses => status_code,
    }
}

async fn get_entry(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    list: ListKind,
    key: &str,
) -> StoreResult<ListEntry> {
    let row: Option<ListEntryRow> = sqlx::query_as(
        "SELECT key, label, position FROM list_entries WHERE workspace_id = $1 AND list = $2 AND key = $3",
    )
    .bind(workspace.get())
    .bind(list_name(list))
    .bind(key)
    .fetch_optional(connection)
    .await
    .context("reading an entry")?;
    Ok(row.ok_or(StoreError::not_found(list.entity()))?.into_record())
}

/// The list's keys in their current order.
pub(crate) async fn entry_keys(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    list: ListKind,
) -> StoreResult<Vec<String>> {
    let keys =
        sqlx::query_scalar("SELECT key FROM list_entries WHERE workspace_id = $1 AND list = $2 ORDER BY position, key")
            .bind(workspace.get())
            .bind(list_name(list))
            .fetch_all(connection)
            .await
            .context("listing entry keys")?;
    Ok(keys)
}

/// Where an entry goes: `None` and positions past the end append, negative positions go first.
fn clamp_position(position: Option<i64>, len: usize) -> usize {
    position.map_or(len, |position| usize::try_from(position.max(0)).unwrap_or(len).min(len))
}

async fn renumber(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    list: ListKind,
    keys: &[String],
) -> StoreResult<()> {
    let positions: Vec<i64> = (0..).take(keys.len()).collect();
    sqlx::query(
        "UPDATE list_entries e SET position = n.position
         FROM UNNEST($3::text[], $4::bigint[]) AS n (key, position)
         WHERE e.workspace_id = $1 AND e.list = $2 AND e.key = n.key AND e.position <> n.position",
    )
    .bind(workspace.get())
    .bind(list_name(list))
    .bind(keys)
    .bind(&positions)
    .execute(connection)
    .await
    .context("renumbering entries")?;
    Ok(())
}

async fn check_template_status(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    status: Option<&Slug>,
) -> StoreResult<()> {
    let Some(status) = status else { return Ok(()) };
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM list_entries WHERE workspace_id = $1 AND list = 'status' AND key = $2)",
    )
    .bind(workspace.get())
    .bind(status.as_str())
    .fetch_one(connection)
    .await
    .context("checking the template's status")?;
    if !exists {
        return Err(StoreError::invalid("unknown_status", "status", format!("there is no lead status {status}")));
    }
    Ok(())
}

//! Tracking sources and their write keys. A write key is unique across workspaces: it is what names the workspace
//! on a tracking request, through one look-up in the unique index on `write_key`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{SourceId, WorkspaceId};
use rapport_store::{NewSource, Source, SourceKind, SourceUpdate, StoreError, StoreResult};

use crate::connection::PostgresStore;
use crate::sql::unique_conflict;

const SOURCE_COLUMNS: &str =
    "id, workspace_id, name, kind, write_key, auto_create_fields, honor_dnt, created_at, revoked_at";

#[derive(sqlx::FromRow)]
struct SourceRow {
    id: i64,
    workspace_id: i64,
    name: String,
    kind: String,
    write_key: String,
    auto_create_fields: bool,
    honor_dnt: bool,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl SourceRow {
    fn into_record(self) -> anyhow::Result<Source> {
        Ok(Source {
            id: SourceId::new(self.id),
            workspace_id: WorkspaceId::new(self.workspace_id),
            name: self.name,
            kind: SourceKind::parse(&self.kind)
                .with_context(|| format!("unknown stored source kind {:?}", self.kind))?,
            write_key: self.write_key,
            auto_create_fields: self.auto_create_fields,
            honor_dnt: self.honor_dnt,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

impl PostgresStore {
    pub(crate) async fn create_source(&self, workspace: WorkspaceId, source: NewSource) -> StoreResult<Source> {
        let sql = format!(
            "INSERT INTO sources (workspace_id, name, kind, write_key, auto_create_fields, honor_dnt, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, now()) RETURNING {SOURCE_COLUMNS}"
        );
        let row: SourceRow = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(source.name.as_str())
            .bind(source.kind.as_str())
            .bind(&source.write_key)
            .bind(source.auto_create_fields)
            .bind(source.honor_dnt)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| write_key_taken(error, "inserting a source"))?;
        Ok(row.into_record()?)
    }

    pub(crate) async fn list_sources(&self, workspace: WorkspaceId) -> StoreResult<Vec<Source>> {
        let sql = format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE workspace_id = $1 ORDER BY id");
        let rows: Vec<SourceRow> =
            sqlx::query_as(&sql).bind(workspace.get()).fetch_all(&self.pool).await.context("listing sources")?;
        Ok(rows.into_iter().map(SourceRow::into_record).collect::<anyhow::Result<_>>()?)
    }

    pub(crate) async fn get_source(&self, workspace: WorkspaceId, id: SourceId) -> StoreResult<Source> {
        let sql = format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE workspace_id = $1 AND id = $2");
        let row: Option<SourceRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a source")?;
        Ok(row.ok_or(StoreError::not_found("source"))?.into_record()?)
    }

    pub(crate) async fn update_source(
        &self,
        workspace: WorkspaceId,
        id: SourceId,
        update: SourceUpdate,
    ) -> StoreResult<Source> {
        let sql = format!(
            "UPDATE sources SET name = coalesce($3, name), auto_create_fields = coalesce($4, auto_create_fields),
                 honor_dnt = coalesce($5, honor_dnt)
             WHERE workspace_id = $1 AND id = $2 RETURNING {SOURCE_COLUMNS}"
        );
        let row: Option<SourceRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(update.name.as_ref().map(|name| name.as_str()))
            .bind(update.auto_create_fields)
            .bind(update.honor_dnt)
            .fetch_optional(&self.pool)
            .await
            .context("updating a source")?;
        Ok(row.ok_or(StoreError::not_found("source"))?.into_record()?)
    }

    pub(crate) async fn rotate_source_key(
        &self,
        workspace: WorkspaceId,
        id: SourceId,
        write_key: &str,
    ) -> StoreResult<Source> {
        let sql =
            format!("UPDATE sources SET write_key = $3 WHERE workspace_id = $1 AND id = $2 RETURNING {SOURCE_COLUMNS}");
        let row: Option<SourceRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(write_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| write_key_taken(error, "rotating a write key"))?;
        Ok(row.ok_or(StoreError::not_found("source"))?.into_record()?)
    }

    pub(crate) async fn revoke_source(
        &self,
        workspace: WorkspaceId,
        id: SourceId,
        at: DateTime<Utc>,
    ) -> StoreResult<Source> {
        let sql = format!(
            "UPDATE sources SET revoked_at = coalesce(revoked_at, $3) WHERE workspace_id = $1 AND id = $2
             RETURNING {SOURCE_COLUMNS}"
        );
        let row: Option<SourceRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(at)
            .fetch_optional(&self.pool)
            .await
            .context("revoking a source")?;
        Ok(row.ok_or(StoreError::not_found("source"))?.into_record()?)
    }

    /// One probe of the unique index on `write_key`.
    pub(crate) async fn source_by_write_key(&self, write_key: &str) -> StoreResult<Option<Source>> {
        let sql = format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE write_key = $1 AND revoked_at IS NULL");
        let row: Option<SourceRow> =
            sqlx::query_as(&sql).bind(write_key).fetch_optional(&self.pool).await.context("looking up a write key")?;
        Ok(row.map(SourceRow::into_record).transpose()?)
    }
}

fn write_key_taken(error: sqlx::Error, context: &'static str) -> StoreError {
    let taken = || StoreError::conflict("write_key_exists", "a source with this write key exists");
    unique_conflict(error, "sources_write_key_key", taken, context)
}

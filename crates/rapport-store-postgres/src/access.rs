//! Workspaces, users and API keys.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{ApiKeyId, Slug, UserId, WorkspaceId};
use rapport_store::{
    ApiKey, NewApiKey, NewUser, Page, PageRequest, StoreError, StoreResult, User, UserUpdate, Workspace,
};

use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::sql::{
    API_KEY_COLUMNS, ApiKeyRow, USER_COLUMNS, UserRow, WORKSPACE_COLUMNS, WorkspaceRow, fetch_limit, page,
    unique_conflict,
};

const DEFAULT_STAGES: [(&str, &str); 5] =
    [("raw", "Raw lead"), ("mql", "MQL"), ("sal", "SAL"), ("sql", "SQL"), ("customer", "Customer")];

const DEFAULT_LEAD_STATUSES: [(&str, &str); 4] = [
    ("not_reached", "Not reached"),
    ("reached_no_intent", "Reached, no intent"),
    ("unqualified", "Unqualified"),
    ("contacted", "Contacted"),
];

impl PostgresStore {
    // ----- Workspaces -----

    pub(crate) async fn create_workspace(&self, slug: &Slug, name: &str) -> StoreResult<Workspace> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "INSERT INTO workspaces (slug, name, created_at) VALUES ($1, $2, now()) RETURNING {WORKSPACE_COLUMNS}"
        );
        let row: WorkspaceRow =
            sqlx::query_as(&sql).bind(slug.as_str()).bind(name).fetch_one(&mut *tx).await.map_err(|error| {
                let exists =
                    || StoreError::conflict("workspace_exists", format!("the workspace {slug} exists already"));
                unique_conflict(error, "workspaces_slug_key", exists, "inserting a workspace")
            })?;
        let workspace = row.into_record()?;
        let mut lists = Vec::new();
        let mut keys = Vec::new();
        let mut labels = Vec::new();
        let mut positions = Vec::new();
        for (list, entries) in [("stage", &DEFAULT_STAGES[..]), ("status", &DEFAULT_LEAD_STATUSES[..])] {
            for (position, (key, label)) in (0_i64..).zip(entries) {
                lists.push(list);
                keys.push(*key);
                labels.push(*label);
                positions.push(position);
            }
        }
        sqlx::query(
            "INSERT INTO list_entries (workspace_id, list, key, label, position)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bigint[])",
        )
        .bind(workspace.id.get())
        .bind(&lists)
        .bind(&keys)
        .bind(&labels)
        .bind(&positions)
        .execute(&mut *tx)
        .await
        .context("inserting the default stages and lead statuses")?;
        commit(tx).await?;
        Ok(workspace)
    }

    pub(crate) async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE slug = $1");
        let row: Option<WorkspaceRow> =
            sqlx::query_as(&sql).bind(slug).fetch_optional(&self.pool).await.context("reading a workspace")?;
        Ok(row.map(WorkspaceRow::into_record).transpose()?)
    }

    pub(crate) async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY id");
        let rows: Vec<WorkspaceRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await.context("listing workspaces")?;
        Ok(rows.into_iter().map(WorkspaceRow::into_record).collect::<anyhow::Result<_>>()?)
    }

    // ----- Users -----

    pub(crate) async fn create_user(&self, workspace: WorkspaceId, user: NewUser) -> StoreResult<User> {
        let sql = format!(
            "INSERT INTO users (workspace_id, email, name, role, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, now(), now()) RETURNING {USER_COLUMNS}"
        );
        let row: UserRow = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(user.email.as_str())
            .bind(user.name.as_str())
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| {
                let exists = || {
                    StoreError::conflict("user_exists", format!("a user with the email {} exists", user.email.as_str()))
                };
                unique_conflict(error, "users_email_key", exists, "inserting a user")
            })?;
        Ok(row.into_record()?)
    }

    pub(crate) async fn get_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<User> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id = $2");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a user")?;
        Ok(row.ok_or(StoreError::not_found("user"))?.into_record()?)
    }

    pub(crate) async fn user_by_email(&self, workspace: WorkspaceId, email: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND email = $2");
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .context("reading a user")?;
        Ok(row.map(UserRow::into_record).transpose()?)
    }

    pub(crate) async fn list_users(
        &self,
        workspace: WorkspaceId,
        request: PageRequest<UserId>,
    ) -> StoreResult<Page<User, UserId>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let rows: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(request.after.map_or(0, UserId::get))
            .bind(fetch_limit(request.limit))
            .fetch_all(&self.pool)
            .await
            .context("listing users")?;
        let users = rows.into_iter().map(UserRow::into_record).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(page(users, request.limit, |user| user.id))
    }

    pub(crate) async fn update_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        update: UserUpdate,
    ) -> StoreResult<User> {
        let sql = format!(
            "UPDATE users SET name = coalesce($3, name), role = coalesce($4, role),
                password_hash = coalesce($5, password_hash), updated_at = now()
             WHERE workspace_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
        );
        let row: Option<UserRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(update.name.as_ref().map(|name| name.as_str()))
            .bind(update.role.map(|role| role.as_str()))
            .bind(update.password_hash.as_deref())
            .fetch_optional(&self.pool)
            .await
            .context("updating a user")?;
        Ok(row.ok_or(StoreError::not_found("user"))?.into_record()?)
    }

    /// The user's contacts lose their owner (contacts have no foreign keys; see the migration), under the contact
    /// lock that every writer of contact rows holds.
    pub(crate) async fn delete_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        let deleted: i64 = sqlx::query_scalar(
            "WITH deleted AS (DELETE FROM users WHERE workspace_id = $1 AND id = $2 RETURNING id),
                 unowned AS (UPDATE contacts SET owner_id = NULL
                             WHERE owner_id IN (SELECT id FROM deleted) AND workspace_id = $1)
             SELECT count(*) FROM deleted",
        )
        .bind(workspace.get())
        .bind(id.get())
        .fetch_one(&mut *tx)
        .await
        .context("deleting a user")?;
        if deleted == 0 {
            return Err(StoreError::not_found("user"));
        }
        commit(tx).await
    }

    // ----- API keys -----

    pub(crate) async fn create_api_key(&self, workspace: WorkspaceId, key: NewApiKey) -> StoreResult<ApiKey> {
        let sql = format!(
            "INSERT INTO api_keys (workspace_id, name, role, prefix, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, now()) RETURNING {API_KEY_COLUMNS}"
        );
        let row: ApiKeyRow = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(key.name.as_str())
            .bind(key.role.as_str())
            .bind(&key.prefix)
            .bind(&key.token_hash)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| {
                let exists = || StoreError::conflict("api_key_exists", "an API key with this token exists");
                unique_conflict(error, "api_keys_token_hash_key", exists, "inserting an API key")
            })?;
        Ok(row.into_record()?)
    }

    pub(crate) async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE token_hash = $1 AND revoked_at IS NULL");
        let row: Option<ApiKeyRow> =
            sqlx::query_as(&sql).bind(token_hash).fetch_optional(&self.pool).await.context("reading an API key")?;
        Ok(row.map(ApiKeyRow::into_record).transpose()?)
    }

    pub(crate) async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()> {
        let touched = sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.get())
            .bind(at)
            .execute(&self.pool)
            .await
            .context("touching an API key")?
            .rows_affected();
        if touched == 0 {
            return Err(StoreError::not_found("api key"));
        }
        Ok(())
    }

    pub(crate) async fn list_api_keys(&self, workspace: WorkspaceId) -> StoreResult<Vec<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 ORDER BY id");
        let rows: Vec<ApiKeyRow> =
            sqlx::query_as(&sql).bind(workspace.get()).fetch_all(&self.pool).await.context("listing API keys")?;
        Ok(rows.into_iter().map(ApiKeyRow::into_record).collect::<anyhow::Result<_>>()?)
    }

    pub(crate) async fn get_api_key(&self, workspace: WorkspaceId, id: ApiKeyId) -> StoreResult<ApiKey> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 AND id = $2");
        let row: Option<ApiKeyRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading an API key")?;
        Ok(row.ok_or(StoreError::not_found("api key"))?.into_record()?)
    }

    pub(crate) async fn revoke_api_key(
        &self,
        workspace: WorkspaceId,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> StoreResult<ApiKey> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3)
             WHERE workspace_id = $1 AND id = $2 RETURNING {API_KEY_COLUMNS}"
        );
        let row: Option<ApiKeyRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(at)
            .fetch_optional(&self.pool)
            .await
            .context("revoking an API key")?;
        Ok(row.ok_or(StoreError::not_found("api key"))?.into_record()?)
    }
}

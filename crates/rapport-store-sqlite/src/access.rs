//! Workspaces, users and API keys.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{ApiKeyId, Role, Slug, UserId, WorkspaceId};
use rapport_store::{
    ApiKey, ListKind, NewApiKey, NewUser, Page, PageRequest, StoreError, StoreResult, User, UserUpdate, Workspace,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::schema::list_table;
use crate::sql::{fetch_limit, into_page, micros, now_micros, optional_time_at, parsed_at, time_at};

const DEFAULT_STAGES: [(&str, &str); 5] =
    [("raw", "Raw lead"), ("mql", "MQL"), ("sal", "SAL"), ("sql", "SQL"), ("customer", "Customer")];

const DEFAULT_LEAD_STATUSES: [(&str, &str); 4] = [
    ("not_reached", "Not reached"),
    ("reached_no_intent", "Reached, no intent"),
    ("unqualified", "Unqualified"),
    ("contacted", "Contacted"),
];

// ----- Workspaces -----

const WORKSPACE_COLUMNS: &str = "id, slug, name, created_at";

pub(crate) fn create_workspace(tx: &Transaction<'_>, slug: &Slug, name: &str) -> StoreResult<Workspace> {
    if workspace_by_slug(tx, slug.as_str())?.is_some() {
        return Err(StoreError::conflict("workspace_exists", format!("the workspace {slug} exists already")));
    }
    tx.execute(
        "INSERT INTO workspaces (slug, name, created_at) VALUES (?1, ?2, ?3)",
        params![slug.as_str(), name, now_micros()],
    )
    .context("inserting a workspace")?;
    let id = tx.last_insert_rowid();
    for (list, entries) in
        [(ListKind::Stages, &DEFAULT_STAGES[..]), (ListKind::LeadStatuses, &DEFAULT_LEAD_STATUSES[..])]
    {
        let sql =
            format!("INSERT INTO {} (workspace_id, key, label, position) VALUES (?1, ?2, ?3, ?4)", list_table(list));
        let mut insert = tx.prepare_cached(&sql).context("preparing default list entries")?;
        for (position, (key, label)) in entries.iter().enumerate() {
            insert.execute(params![id, key, label, position]).context("inserting a default list entry")?;
        }
    }
    workspace_by_slug(tx, slug.as_str())?.context("the new workspace vanished").map_err(StoreError::from)
}

pub(crate) fn workspace_by_slug(conn: &Connection, slug: &str) -> StoreResult<Option<Workspace>> {
    let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces WHERE slug = ?1");
    let mut statement = conn.prepare_cached(&sql).context("preparing workspace_by_slug")?;
    Ok(statement.query_row([slug], workspace_from_row).optional().context("reading a workspace")?)
}

pub(crate) fn list_workspaces(conn: &Connection) -> StoreResult<Vec<Workspace>> {
    let sql = format!("SELECT {WORKSPACE_COLUMNS} FROM workspaces ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_workspaces")?;
    let rows = statement.query_map([], workspace_from_row).context("listing workspaces")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading workspaces")?)
}

fn workspace_from_row(row: &Row<'_>) -> rusqlite::Result<Workspace> {
    Ok(Workspace {
        id: WorkspaceId::new(row.get(0)?),
        slug: parsed_at(row, 1, |text| Slug::parse(text).ok())?,
        name: row.get(2)?,
        created_at: time_at(row, 3)?,
    })
}

// ----- Users -----

const USER_COLUMNS: &str = "id, workspace_id, email, name, role, password_hash, created_at, updated_at";

pub(crate) fn create_user(tx: &Transaction<'_>, workspace: WorkspaceId, user: NewUser) -> StoreResult<User> {
    if user_by_email(tx, workspace, user.email.as_str())?.is_some() {
        return Err(StoreError::conflict(
            "user_exists",
            format!("a user with the email {} exists", user.email.as_str()),
        ));
    }
    let now = now_micros();
    tx.execute(
        "INSERT INTO users (workspace_id, email, name, role, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![workspace.get(), user.email.as_str(), user.name.as_str(), user.role.as_str(), user.password_hash, now],
    )
    .context("inserting a user")?;
    get_user(tx, workspace, UserId::new(tx.last_insert_rowid()))
}

pub(crate) fn get_user(conn: &Connection, workspace: WorkspaceId, id: UserId) -> StoreResult<User> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_user")?;
    let user =
        statement.query_row(params![workspace.get(), id.get()], user_from_row).optional().context("reading a user")?;
    user.ok_or(StoreError::not_found("user"))
}

pub(crate) fn user_by_email(conn: &Connection, workspace: WorkspaceId, email: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND email = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing user_by_email")?;
    let email = email.trim().to_lowercase();
    Ok(statement.query_row(params![workspace.get(), email], user_from_row).optional().context("reading a user")?)
}

pub(crate) fn list_users(
    conn: &Connection,
    workspace: WorkspaceId,
    page: PageRequest<UserId>,
) -> StoreResult<Page<User, UserId>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_users")?;
    let after = page.after.map_or(0, UserId::get);
    let rows = statement
        .query_map(params![workspace.get(), after, fetch_limit(page.limit)], user_from_row)
        .context("listing users")?;
    let users = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading users")?;
    Ok(into_page(users, page.limit, |user| user.id))
}

pub(crate) fn update_user(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: UserId,
    update: UserUpdate,
) -> StoreResult<User> {
    let current = get_user(tx, workspace, id)?;
    tx.execute(
        "UPDATE users SET name = ?3, role = ?4, password_hash = ?5, updated_at = ?6 WHERE workspace_id = ?1 AND id = ?2",
        params![
            workspace.get(),
            id.get(),
            update.name.map_or(current.name, |name| name.into_string()),
            update.role.unwrap_or(current.role).as_str(),
            update.password_hash.unwrap_or(current.password_hash),
            now_micros(),
        ],
    )
    .context("updating a user")?;
    get_user(tx, workspace, id)
}

/// The user's contacts lose their owner through the foreign key's `ON DELETE SET NULL`.
pub(crate) fn delete_user(tx: &Transaction<'_>, workspace: WorkspaceId, id: UserId) -> StoreResult<()> {
    let deleted = tx
        .execute("DELETE FROM users WHERE workspace_id = ?1 AND id = ?2", params![workspace.get(), id.get()])
        .context("deleting a user")?;
    if deleted == 0 {
        return Err(StoreError::not_found("user"));
    }
    Ok(())
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: UserId::new(row.get(0)?),
        workspace_id: WorkspaceId::new(row.get(1)?),
        email: row.get(2)?,
        name: row.get(3)?,
        role: parsed_at(row, 4, Role::parse)?,
        password_hash: row.get(5)?,
        created_at: time_at(row, 6)?,
        updated_at: time_at(row, 7)?,
    })
}

// ----- API keys -----

const API_KEY_COLUMNS: &str = "id, workspace_id, name, role, prefix, created_at, last_used_at, revoked_at";

pub(crate) fn create_api_key(tx: &Transaction<'_>, workspace: WorkspaceId, key: NewApiKey) -> StoreResult<ApiKey> {
    let taken: Option<i64> = tx
        .query_row("SELECT id FROM api_keys WHERE token_hash = ?1", [&key.token_hash], |row| row.get(0))
        .optional()
        .context("checking the token hash")?;
    if taken.is_some() {
        return Err(StoreError::conflict("api_key_exists", "an API key with this token exists"));
    }
    tx.execute(
        "INSERT INTO api_keys (workspace_id, name, role, prefix, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![workspace.get(), key.name.as_str(), key.role.as_str(), key.prefix, key.token_hash, now_micros()],
    )
    .context("inserting an API key")?;
    get_api_key(tx, workspace, ApiKeyId::new(tx.last_insert_rowid()))
}

pub(crate) fn api_key_by_hash(conn: &Connection, token_hash: &str) -> StoreResult<Option<ApiKey>> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE token_hash = ?1 AND revoked_at IS NULL");
    let mut statement = conn.prepare_cached(&sql).context("preparing api_key_by_hash")?;
    Ok(statement.query_row([token_hash], api_key_from_row).optional().context("reading an API key")?)
}

pub(crate) fn touch_api_key(tx: &Transaction<'_>, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()> {
    let mut statement =
        tx.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1").context("preparing touch_api_key")?;
    if statement.execute(params![id.get(), micros(at)]).context("touching an API key")? == 0 {
        return Err(StoreError::not_found("api key"));
    }
    Ok(())
}

pub(crate) fn list_api_keys(conn: &Connection, workspace: WorkspaceId) -> StoreResult<Vec<ApiKey>> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = ?1 ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_api_keys")?;
    let rows = statement.query_map([workspace.get()], api_key_from_row).context("listing API keys")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading API keys")?)
}

pub(crate) fn get_api_key(conn: &Connection, workspace: WorkspaceId, id: ApiKeyId) -> StoreResult<ApiKey> {
    let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_api_key")?;
    let key = statement
        .query_row(params![workspace.get(), id.get()], api_key_from_row)
        .optional()
        .context("reading an API key")?;
    key.ok_or(StoreError::not_found("api key"))
}

pub(crate) fn revoke_api_key(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: ApiKeyId,
    at: DateTime<Utc>,
) -> StoreResult<ApiKey> {
    tx.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE workspace_id = ?1 AND id = ?2",
        params![workspace.get(), id.get(), micros(at)],
    )
    .context("revoking an API key")?;
    get_api_key(tx, workspace, id)
}

fn api_key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: ApiKeyId::new(row.get(0)?),
        workspace_id: WorkspaceId::new(row.get(1)?),
        name: row.get(2)?,
        role: parsed_at(row, 3, Role::parse)?,
        prefix: row.get(4)?,
        created_at: time_at(row, 5)?,
        last_used_at: optional_time_at(row, 6)?,
        revoked_at: optional_time_at(row, 7)?,
    })
}

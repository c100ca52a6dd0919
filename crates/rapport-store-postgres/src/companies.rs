//! Companies (accounts). A domain identifies at most one company per workspace, and so does the external id that
//! tracking `group` calls name a company by.

use anyhow::Context;
use rapport_domain::{BoundedText, CompanyId, Patch, WorkspaceId};
use rapport_store::{Company, CompanyChanges, Page, PageRequest, StoreError, StoreResult};
use serde_json::{Map, Value};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::sql::{COMPANY_COLUMNS, CompanyRow, fetch_limit, page, unique_conflict};

/// The longest company name a group id may give.
const MAX_COMPANY_NAME_CHARS: usize = 1_000;

impl PostgresStore {
    pub(crate) async fn create_company(&self, workspace: WorkspaceId, changes: CompanyChanges) -> StoreResult<Company> {
        let mut tx = self.begin().await?;
        let id = insert_company(&mut tx, workspace, changes).await?;
        let company = get_company(&mut tx, workspace, id).await?;
        commit(tx).await?;
        Ok(company)
    }

    pub(crate) async fn get_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<Company> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        get_company(&mut connection, workspace, id).await
    }

    pub(crate) async fn company_by_domain(&self, workspace: WorkspaceId, domain: &str) -> StoreResult<Option<Company>> {
        let sql = format!("SELECT {COMPANY_COLUMNS} FROM companies co WHERE co.workspace_id = $1 AND co.domain = $2");
        let row: Option<CompanyRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(domain)
            .fetch_optional(&self.pool)
            .await
            .context("reading a company")?;
        Ok(row.map(CompanyRow::into_record).transpose()?)
    }

    pub(crate) async fn list_companies(
        &self,
        workspace: WorkspaceId,
        request: PageRequest<CompanyId>,
    ) -> StoreResult<Page<Company, CompanyId>> {
        let sql = format!(
            "SELECT {COMPANY_COLUMNS} FROM companies co
             WHERE co.workspace_id = $1 AND co.id > $2 ORDER BY co.id LIMIT $3"
        );
        let rows: Vec<CompanyRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(request.after.map_or(0, CompanyId::get))
            .bind(fetch_limit(request.limit))
            .fetch_all(&self.pool)
            .await
            .context("listing companies")?;
        let companies = rows.into_iter().map(CompanyRow::into_record).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(page(companies, request.limit, |company| company.id))
    }

    pub(crate) async fn update_company(
        &self,
        workspace: WorkspaceId,
        id: CompanyId,
        changes: CompanyChanges,
    ) -> StoreResult<Company> {
        let mut tx = self.begin().await?;
        update_company(&mut tx, workspace, id, changes).await?;
        let company = get_company(&mut tx, workspace, id).await?;
        commit(tx).await?;
        Ok(company)
    }

    /// The company's contacts lose the link (contacts have no foreign keys; see the migration), under the contact
    /// lock that every writer of contact rows holds.
    pub(crate) async fn delete_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        let deleted: i64 = sqlx::query_scalar(
            "WITH deleted AS (DELETE FROM companies WHERE workspace_id = $1 AND id = $2 RETURNING id),
                 unlinked AS (UPDATE contacts SET company_id = NULL
                              WHERE company_id IN (SELECT id FROM deleted) AND workspace_id = $1)
             SELECT count(*) FROM deleted",
        )
        .bind(workspace.get())
        .bind(id.get())
        .fetch_one(&mut *tx)
        .await
        .context("deleting a company")?;
        if deleted == 0 {
            return Err(StoreError::not_found("company"));
        }
        commit(tx).await
    }
}

/// The company of a tracking group: the one with this external id, else the one with the changes' domain that no
/// group has claimed yet (adopted: it gets the external id), else a new one, named after the group id when the
/// changes name none. The changes are applied to a found company as an update. Conflict `company_exists` when the
/// changes' domain belongs to another company. The caller holds the contact lock, which keeps two calls from
/// creating the same group.
pub(crate) async fn group_company(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    group_id: &str,
    mut changes: CompanyChanges,
) -> StoreResult<CompanyId> {
    let mut found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM companies WHERE workspace_id = $1 AND external_id = $2")
            .bind(workspace.get())
            .bind(group_id)
            .fetch_optional(&mut *connection)
            .await
            .context("finding a group's company")?;
    if found.is_none() {
        if let Patch::Set(domain) = &changes.domain {
            found = sqlx::query_scalar(
                "SELECT id FROM companies WHERE workspace_id = $1 AND domain = $2 AND external_id IS NULL",
            )
            .bind(workspace.get())
            .bind(domain)
            .fetch_optional(&mut *connection)
            .await
            .context("finding a company by its domain")?;
        }
    }
    let id = match found {
        Some(id) => {
            update_company(connection, workspace, CompanyId::new(id), changes).await?;
            CompanyId::new(id)
        }
        None => {
            if changes.name.is_none() {
                let name = BoundedText::parse(group_id, MAX_COMPANY_NAME_CHARS)
                    .map_err(|error| StoreError::invalid("invalid_message", "group_id", error.to_string()))?;
                changes.name = Some(name);
            }
            insert_company(connection, workspace, changes).await?
        }
    };
    sqlx::query("UPDATE companies SET external_id = $2 WHERE id = $1 AND external_id IS DISTINCT FROM $2")
        .bind(id.get())
        .bind(group_id)
        .execute(&mut *connection)
        .await
        .context("naming a company by its group id")?;
    Ok(id)
}

async fn insert_company(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    changes: CompanyChanges,
) -> StoreResult<CompanyId> {
    let Some(name) = &changes.name else {
        return Err(StoreError::invalid("missing_field", "name", "a company needs a name"));
    };
    let domain = changes.domain.clone().apply_to(None);
    let mut fields = Map::new();
    merge_fields(&mut fields, changes.fields);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO companies (workspace_id, name, domain, industry, size, fields, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, now(), now()) RETURNING id",
    )
    .bind(workspace.get())
    .bind(name.as_str())
    .bind(domain.as_deref())
    .bind(changes.industry.apply_to(None).map(|text| text.into_string()))
    .bind(changes.size.apply_to(None).map(|text| text.into_string()))
    .bind(Value::Object(fields))
    .fetch_one(connection)
    .await
    .map_err(|error| domain_conflict(error, domain.as_deref(), "inserting a company"))?;
    Ok(CompanyId::new(id))
}

async fn update_company(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    id: CompanyId,
    changes: CompanyChanges,
) -> StoreResult<()> {
    let current: Option<CompanyColumns> = sqlx::query_as(
        "SELECT name, domain, industry, size, fields FROM companies WHERE workspace_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(workspace.get())
    .bind(id.get())
    .fetch_optional(&mut *connection)
    .await
    .context("reading a company")?;
    let CompanyColumns { name, domain, industry, size, fields: Json(mut fields) } =
        current.ok_or(StoreError::not_found("company"))?;
    merge_fields(&mut fields, changes.fields);
    let domain = changes.domain.apply_to(domain);
    sqlx::query(
        "UPDATE companies SET name = $3, domain = $4, industry = $5, size = $6, fields = $7, updated_at = now()
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace.get())
    .bind(id.get())
    .bind(changes.name.map_or(name, |name| name.into_string()))
    .bind(domain.as_deref())
    .bind(changes.industry.map(|text| text.into_string()).apply_to(industry))
    .bind(changes.size.map(|text| text.into_string()).apply_to(size))
    .bind(Value::Object(fields))
    .execute(connection)
    .await
    .map_err(|error| domain_conflict(error, domain.as_deref(), "updating a company"))?;
    Ok(())
}

/// The columns of a company that an update rewrites.
#[derive(sqlx::FromRow)]
struct CompanyColumns {
    name: String,
    domain: Option<String>,
    industry: Option<String>,
    size: Option<String>,
    fields: Json<Map<String, Value>>,
}

async fn get_company(connection: &mut PgConnection, workspace: WorkspaceId, id: CompanyId) -> StoreResult<Company> {
    let sql = format!("SELECT {COMPANY_COLUMNS} FROM companies co WHERE co.workspace_id = $1 AND co.id = $2");
    let row: Option<CompanyRow> = sqlx::query_as(&sql)
        .bind(workspace.get())
        .bind(id.get())
        .fetch_optional(connection)
        .await
        .context("reading a company")?;
    Ok(row.ok_or(StoreError::not_found("company"))?.into_record()?)
}

fn domain_conflict(error: sqlx::Error, domain: Option<&str>, context: &'static str) -> StoreError {
    let exists = || {
        let message = format!("a company with the domain {} exists", domain.unwrap_or_default());
        StoreError::conflict("company_exists", message)
    };
    unique_conflict(error, "companies_domain_key", exists, context)
}

/// Applies custom field changes to a stored JSON object: `null` removes the value.
pub(crate) fn merge_fields(fields: &mut Map<String, Value>, changes: Vec<(String, Value)>) {
    for (key, value) in changes {
        if value.is_null() {
            fields.remove(&key);
        } else {
            fields.insert(key, value);
        }
    }
}

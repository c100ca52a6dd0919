//! Companies (accounts). A domain identifies at most one company per workspace, and so does the external id that
//! tracking `group` calls name a company by.

use anyhow::Context;
use rapport_domain::{BoundedText, CompanyId, Patch, WorkspaceId};
use rapport_store::{Company, CompanyChanges, Page, PageRequest, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::{Map, Value};

use crate::sql::{fetch_limit, into_page, json_object_at, merge_fields, now_micros, time_at};

const COMPANY_COLUMNS: &str = "id, name, domain, industry, size, fields, created_at, updated_at,
    (SELECT count(*) FROM contacts WHERE contacts.company_id = companies.id)";

pub(crate) fn create_company(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    changes: CompanyChanges,
) -> StoreResult<Company> {
    let Some(name) = &changes.name else {
        return Err(StoreError::invalid("missing_field", "name", "a company needs a name"));
    };
    let domain = changes.domain.clone().apply_to(None);
    check_domain_free(tx, workspace, domain.as_deref(), None)?;
    let mut fields = Map::new();
    merge_fields(&mut fields, changes.fields);
    tx.execute(
        "INSERT INTO companies (workspace_id, name, domain, industry, size, fields, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            workspace.get(),
            name.as_str(),
            domain,
            changes.industry.apply_to(None).map(|text| text.into_string()),
            changes.size.apply_to(None).map(|text| text.into_string()),
            Value::Object(fields).to_string(),
            now_micros(),
        ],
    )
    .context("inserting a company")?;
    get_company(tx, workspace, CompanyId::new(tx.last_insert_rowid()))
}

pub(crate) fn get_company(conn: &Connection, workspace: WorkspaceId, id: CompanyId) -> StoreResult<Company> {
    let sql = format!("SELECT {COMPANY_COLUMNS} FROM companies WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_company")?;
    let company = statement
        .query_row(params![workspace.get(), id.get()], company_from_row)
        .optional()
        .context("reading a company")?;
    company.ok_or(StoreError::not_found("company"))
}

pub(crate) fn company_by_domain(
    conn: &Connection,
    workspace: WorkspaceId,
    domain: &str,
) -> StoreResult<Option<Company>> {
    let sql = format!("SELECT {COMPANY_COLUMNS} FROM companies WHERE workspace_id = ?1 AND domain = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing company_by_domain")?;
    Ok(statement
        .query_row(params![workspace.get(), domain], company_from_row)
        .optional()
        .context("reading a company")?)
}

pub(crate) fn list_companies(
    conn: &Connection,
    workspace: WorkspaceId,
    page: PageRequest<CompanyId>,
) -> StoreResult<Page<Company, CompanyId>> {
    let sql =
        format!("SELECT {COMPANY_COLUMNS} FROM companies WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_companies")?;
    let after = page.after.map_or(0, CompanyId::get);
    let rows = statement
        .query_map(params![workspace.get(), after, fetch_limit(page.limit)], company_from_row)
        .context("listing companies")?;
    let companies = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading companies")?;
    Ok(into_page(companies, page.limit, |company| company.id))
}

pub(crate) fn update_company(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: CompanyId,
    changes: CompanyChanges,
) -> StoreResult<Company> {
    let current = get_company(tx, workspace, id)?;
    if let Patch::Set(domain) = &changes.domain {
        check_domain_free(tx, workspace, Some(domain), Some(id))?;
    }
    let domain = changes.domain.apply_to(current.domain);
    let mut fields = current.fields;
    merge_fields(&mut fields, changes.fields);
    tx.execute(
        "UPDATE companies SET name = ?3, domain = ?4, industry = ?5, size = ?6, fields = ?7, updated_at = ?8
         WHERE workspace_id = ?1 AND id = ?2",
        params![
            workspace.get(),
            id.get(),
            changes.name.map_or(current.name, |name| name.into_string()),
            domain,
            changes.industry.map(|text| text.into_string()).apply_to(current.industry),
            changes.size.map(|text| text.into_string()).apply_to(current.size),
            Value::Object(fields).to_string(),
            now_micros(),
        ],
    )
    .context("updating a company")?;
    get_company(tx, workspace, id)
}

/// The company's contacts lose the link through the foreign key's `ON DELETE SET NULL`.
pub(crate) fn delete_company(tx: &Transaction<'_>, workspace: WorkspaceId, id: CompanyId) -> StoreResult<()> {
    let deleted = tx
        .execute("DELETE FROM companies WHERE workspace_id = ?1 AND id = ?2", params![workspace.get(), id.get()])
        .context("deleting a company")?;
    if deleted == 0 {
        return Err(StoreError::not_found("company"));
    }
    Ok(())
}

/// The company of a tracking group: the one with this external id, else the one with the changes' domain that no
/// group has claimed yet (adopted: it gets the external id), else a new one, named after the group id when the
/// changes name none. The changes are applied to a found company as an update. Conflict `company_exists` when the
/// changes' domain belongs to another company.
pub(crate) fn group_company(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    group_id: &str,
    mut changes: CompanyChanges,
) -> StoreResult<CompanyId> {
    let mut by_external_id = tx
        .prepare_cached("SELECT id FROM companies WHERE workspace_id = ?1 AND external_id = ?2")
        .context("preparing a group look-up")?;
    let mut found: Option<i64> = by_external_id
        .query_row(params![workspace.get(), group_id], |row| row.get(0))
        .optional()
        .context("finding a group")?;
    if found.is_none() {
        if let Patch::Set(domain) = &changes.domain {
            let mut by_domain = tx
                .prepare_cached(
                    "SELECT id FROM companies WHERE workspace_id = ?1 AND domain = ?2 AND external_id IS NULL",
                )
                .context("preparing a company look-up by domain")?;
            found = by_domain
                .query_row(params![workspace.get(), domain], |row| row.get(0))
                .optional()
                .context("finding a company by domain")?;
        }
    }
    let id = match found {
        Some(id) => update_company(tx, workspace, CompanyId::new(id), changes)?.id,
        None => {
            if changes.name.is_none() {
                let name = BoundedText::parse(group_id, 1_000)
                    .map_err(|error| StoreError::invalid("invalid_message", "group_id", error.to_string()))?;
                changes.name = Some(name);
            }
            create_company(tx, workspace, changes)?.id
        }
    };
    tx.execute(
        "UPDATE companies SET external_id = ?2 WHERE id = ?1 AND external_id IS NOT ?2",
        params![id.get(), group_id],
    )
    .context("naming a company by its group id")?;
    Ok(id)
}

fn check_domain_free(
    conn: &Connection,
    workspace: WorkspaceId,
    domain: Option<&str>,
    except: Option<CompanyId>,
) -> StoreResult<()> {
    let Some(domain) = domain else { return Ok(()) };
    let owner: Option<i64> = conn
        .query_row(
            "SELECT id FROM companies WHERE workspace_id = ?1 AND domain = ?2",
            params![workspace.get(), domain],
            |row| row.get(0),
        )
        .optional()
        .context("checking a company domain")?;
    match owner {
        Some(owner) if Some(CompanyId::new(owner)) != except => {
            Err(StoreError::conflict("company_exists", format!("a company with the domain {domain} exists")))
        }
        _ => Ok(()),
    }
}

fn company_from_row(row: &Row<'_>) -> rusqlite::Result<Company> {
    Ok(Company {
        id: CompanyId::new(row.get(0)?),
        name: row.get(1)?,
        domain: row.get(2)?,
        industry: row.get(3)?,
        size: row.get(4)?,
        fields: json_object_at(row, 5)?,
        created_at: time_at(row, 6)?,
        updated_at: time_at(row, 7)?,
        contact_count: row.get::<_, i64>(8)?.try_into().unwrap_or(0),
    })
}

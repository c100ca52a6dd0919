//! Background jobs: a queue in the `jobs` table. Every write runs on the single writer connection, so a claim can
//! pick the oldest queued job and mark it running in one `UPDATE … RETURNING` without another writer in between.
//! Statuses are written as SQL literals, as in the migration, so that each statement reads on its own.

use anyhow::Context;
use rapport_domain::{JobId, WorkspaceId};
use rapport_store::{Job, JobEnd, JobError, JobKind, JobStatus, NewJob, Page, PageRequest, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::Value;

use crate::sql::{corrupt, fetch_limit, into_page, json_at, now_micros, optional_time_at, parsed_at, time_at};

const JOB_COLUMNS: &str = "id, workspace_id, kind, status, params, progress, result, error_code, error_message,
     cancel_requested, created_by, created_at, started_at, finished_at, updated_at";

pub(crate) fn create_job(tx: &Transaction<'_>, workspace: WorkspaceId, job: NewJob) -> StoreResult<Job> {
    let now = now_micros();
    tx.execute(
        "INSERT INTO jobs (workspace_id, kind, status, params, progress, created_by, created_at, updated_at)
         VALUES (?1, ?2, 'queued', ?3, '{}', ?4, ?5, ?5)",
        params![workspace.get(), job.kind.as_str(), job.params.to_string(), job.actor.to_string(), now],
    )
    .context("inserting a job")?;
    get_job(tx, workspace, JobId::new(tx.last_insert_rowid()))
}

pub(crate) fn get_job(conn: &Connection, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_job")?;
    let job =
        statement.query_row(params![workspace.get(), id.get()], job_from_row).optional().context("reading a job")?;
    job.ok_or(StoreError::not_found("job"))
}

pub(crate) fn list_jobs(
    conn: &Connection,
    workspace: WorkspaceId,
    kind: JobKind,
    page: PageRequest<JobId>,
) -> StoreResult<Page<Job, JobId>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = ?1 AND kind = ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4"
    );
    let mut statement = conn.prepare_cached(&sql).context("preparing list_jobs")?;
    let before = page.after.map_or(i64::MAX, JobId::get);
    let rows = statement
        .query_map(params![workspace.get(), kind.as_str(), before, fetch_limit(page.limit)], job_from_row)
        .context("listing jobs")?;
    let jobs = rows.collect::<rusqlite::Result<Vec<_>>>().context("reading jobs")?;
    Ok(into_page(jobs, page.limit, |job| job.id))
}

pub(crate) fn claim_job(tx: &Transaction<'_>) -> StoreResult<Option<Job>> {
    let sql = format!(
        "UPDATE jobs SET status = 'running', started_at = ?1, updated_at = ?1
         WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1)
         RETURNING {JOB_COLUMNS}"
    );
    let mut statement = tx.prepare_cached(&sql).context("preparing claim_job")?;
    Ok(statement.query_row([now_micros()], job_from_row).optional().context("claiming a job")?)
}

pub(crate) fn report_job_progress(tx: &Transaction<'_>, id: JobId, progress: &Value) -> StoreResult<bool> {
    let mut statement = tx
        .prepare_cached(
            "UPDATE jobs SET progress = ?2, updated_at = ?3 WHERE id = ?1 AND status = 'running'
             RETURNING cancel_requested",
        )
        .context("preparing report_job_progress")?;
    let params = params![id.get(), progress.to_string(), now_micros()];
    let cancel_requested: Option<bool> =
        statement.query_row(params, |row| row.get(0)).optional().context("storing a job's progress")?;
    cancel_requested.ok_or(StoreError::not_found("job"))
}

pub(crate) fn finish_job(tx: &Transaction<'_>, id: JobId, end: JobEnd) -> StoreResult<Job> {
    end.check()?;
    let sql = format!(
        "UPDATE jobs SET status = ?2, progress = ?3, result = ?4, error_code = ?5, error_message = ?6,
             finished_at = ?7, updated_at = ?7
         WHERE id = ?1 AND status = 'running'
         RETURNING {JOB_COLUMNS}"
    );
    let mut statement = tx.prepare_cached(&sql).context("preparing finish_job")?;
    let (error_code, error_message) = end.error.map(|error| (error.code, error.message)).unzip();
    let params = params![
        id.get(),
        end.status.as_str(),
        end.progress.to_string(),
        end.result.map(|result| result.to_string()),
        error_code,
        error_message,
        now_micros(),
    ];
    let job = statement.query_row(params, job_from_row).optional().context("finishing a job")?;
    job.ok_or(StoreError::not_found("job"))
}

/// One statement decides by the stored status. When it matches nothing, the job is either absent or finished, and
/// the read after it tells the two apart.
pub(crate) fn cancel_job(tx: &Transaction<'_>, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
    let sql = format!(
        "UPDATE jobs SET
             status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
             finished_at = CASE WHEN status = 'queued' THEN ?3 ELSE finished_at END,
             cancel_requested = CASE WHEN status = 'running' THEN 1 ELSE cancel_requested END,
             updated_at = ?3
         WHERE workspace_id = ?1 AND id = ?2 AND status IN ('queued', 'running')
         RETURNING {JOB_COLUMNS}"
    );
    let mut statement = tx.prepare_cached(&sql).context("preparing cancel_job")?;
    let params = params![workspace.get(), id.get(), now_micros()];
    match statement.query_row(params, job_from_row).optional().context("cancelling a job")? {
        Some(job) => Ok(job),
        None => {
            let job = get_job(tx, workspace, id)?;
            let message = format!("the job has already finished ({})", job.status.as_str());
            Err(StoreError::conflict("job_finished", message))
        }
    }
}

pub(crate) fn fail_interrupted_jobs(tx: &Transaction<'_>) -> StoreResult<u64> {
    let error = JobError::interrupted();
    let failed = tx
        .execute(
            "UPDATE jobs SET status = 'failed', error_code = ?1, error_message = ?2, finished_at = ?3, updated_at = ?3
             WHERE status = 'running'",
            params![error.code, error.message, now_micros()],
        )
        .context("failing interrupted jobs")?;
    Ok(u64::try_from(failed).unwrap_or_default())
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let error_code: Option<String> = row.get(7)?;
    let error_message: Option<String> = row.get(8)?;
    Ok(Job {
        id: JobId::new(row.get(0)?),
        workspace: WorkspaceId::new(row.get(1)?),
        kind: parsed_at(row, 2, JobKind::parse)?,
        status: parsed_at(row, 3, JobStatus::parse)?,
        params: json_at(row, 4)?,
        progress: json_at(row, 5)?,
        result: optional_json_at(row, 6)?,
        error: error_code.map(|code| JobError { code, message: error_message.unwrap_or_default() }),
        cancel_requested: row.get(9)?,
        created_by: row.get(10)?,
        created_at: time_at(row, 11)?,
        started_at: optional_time_at(row, 12)?,
        finished_at: optional_time_at(row, 13)?,
        updated_at: time_at(row, 14)?,
    })
}

fn optional_json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| serde_json::from_str(&text).map_err(|error| corrupt(index, error.to_string()))).transpose()
}

//! Background jobs: a queue in the `jobs` table. Runners claim with `FOR UPDATE SKIP LOCKED`, so claims running at
//! the same time each take a different job and never wait on each other; every other write is one statement that
//! decides by the stored status, so it needs no lock of its own.
//!
//! Statuses are SQL literals, not parameters: the planner can then prove that `status = 'queued'` falls inside the
//! partial index `jobs_unfinished` even in a prepared statement's generic plan, instead of walking every finished
//! job in id order.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{JobId, WorkspaceId};
use rapport_store::{Job, JobEnd, JobError, JobKind, JobStatus, NewJob, Page, PageRequest, StoreError, StoreResult};
use serde_json::Value;

use crate::connection::PostgresStore;
use crate::sql::{fetch_limit, page};

const JOB_COLUMNS: &str = "id, workspace_id, kind, status, params, progress, result, error_code, error_message,
     cancel_requested, created_by, created_at, started_at, finished_at, updated_at";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    workspace_id: i64,
    kind: String,
    status: String,
    params: Value,
    progress: Value,
    result: Option<Value>,
    error_code: Option<String>,
    error_message: Option<String>,
    cancel_requested: bool,
    created_by: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

impl JobRow {
    fn into_record(self) -> anyhow::Result<Job> {
        Ok(Job {
            id: JobId::new(self.id),
            workspace: WorkspaceId::new(self.workspace_id),
            kind: JobKind::parse(&self.kind).with_context(|| format!("unknown stored job kind {:?}", self.kind))?,
            status: JobStatus::parse(&self.status)
                .with_context(|| format!("unknown stored job status {:?}", self.status))?,
            params: self.params,
            progress: self.progress,
            result: self.result,
            error: self.error_code.map(|code| JobError { code, message: self.error_message.unwrap_or_default() }),
            cancel_requested: self.cancel_requested,
            created_by: self.created_by,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            updated_at: self.updated_at,
        })
    }
}

impl PostgresStore {
    pub(crate) async fn create_job(&self, workspace: WorkspaceId, job: NewJob) -> StoreResult<Job> {
        let sql = format!(
            "INSERT INTO jobs (workspace_id, kind, status, params, progress, created_by, created_at, updated_at)
             VALUES ($1, $2, 'queued', $3, '{{}}', $4, now(), now()) RETURNING {JOB_COLUMNS}"
        );
        let row: JobRow = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(job.kind.as_str())
            .bind(&job.params)
            .bind(job.actor.to_string())
            .fetch_one(&self.pool)
            .await
            .context("inserting a job")?;
        Ok(row.into_record()?)
    }

    pub(crate) async fn get_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND id = $2");
        let row: Option<JobRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a job")?;
        Ok(row.ok_or(StoreError::not_found("job"))?.into_record()?)
    }

    pub(crate) async fn list_jobs(
        &self,
        workspace: WorkspaceId,
        kind: JobKind,
        request: PageRequest<JobId>,
    ) -> StoreResult<Page<Job, JobId>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE workspace_id = $1 AND kind = $2 AND id < $3
             ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<JobRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(kind.as_str())
            .bind(request.after.map_or(i64::MAX, JobId::get))
            .bind(fetch_limit(request.limit))
            .fetch_all(&self.pool)
            .await
            .context("listing jobs")?;
        let jobs = rows.into_iter().map(JobRow::into_record).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(page(jobs, request.limit, |job| job.id))
    }

    /// The subquery locks the oldest queued row, skipping rows that another transaction holds instead of waiting for
    /// them; a row that another claim committed after this statement's snapshot is re-checked against `status` when
    /// locked, and passed over.
    pub(crate) async fn claim_job(&self) -> StoreResult<Option<Job>> {
        let sql = format!(
            "UPDATE jobs SET status = 'running', started_at = now(), updated_at = now()
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING {JOB_COLUMNS}"
        );
        let row: Option<JobRow> = sqlx::query_as(&sql).fetch_optional(&self.pool).await.context("claiming a job")?;
        Ok(row.map(JobRow::into_record).transpose()?)
    }

    pub(crate) async fn report_job_progress(&self, id: JobId, progress: Value) -> StoreResult<bool> {
        let cancel_requested: Option<bool> = sqlx::query_scalar(
            "UPDATE jobs SET progress = $2, updated_at = now() WHERE id = $1 AND status = 'running'
             RETURNING cancel_requested",
        )
        .bind(id.get())
        .bind(&progress)
        .fetch_optional(&self.pool)
        .await
        .context("storing a job's progress")?;
        cancel_requested.ok_or(StoreError::not_found("job"))
    }

    pub(crate) async fn finish_job(&self, id: JobId, end: JobEnd) -> StoreResult<Job> {
        end.check()?;
        let sql = format!(
            "UPDATE jobs SET status = $2, progress = $3, result = $4, error_code = $5, error_message = $6,
                 finished_at = now(), updated_at = now()
             WHERE id = $1 AND status = 'running'
             RETURNING {JOB_COLUMNS}"
        );
        let (error_code, error_message) = end.error.map(|error| (error.code, error.message)).unzip();
        let row: Option<JobRow> = sqlx::query_as(&sql)
            .bind(id.get())
            .bind(end.status.as_str())
            .bind(&end.progress)
            .bind(&end.result)
            .bind(error_code)
            .bind(error_message)
            .fetch_optional(&self.pool)
            .await
            .context("finishing a job")?;
        Ok(row.ok_or(StoreError::not_found("job"))?.into_record()?)
    }

    /// One statement decides by the stored status, so a claim racing with it either comes first (the job is asked
    /// to stop) or finds it cancelled. When it matches nothing, the job is either absent or finished, and a
    /// finished job never changes again, so the read that tells the two apart cannot be stale.
    pub(crate) async fn cancel_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
        let sql = format!(
            "UPDATE jobs SET
                 status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                 finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
                 cancel_requested = CASE WHEN status = 'running' THEN true ELSE cancel_requested END,
                 updated_at = now()
             WHERE workspace_id = $1 AND id = $2 AND status IN ('queued', 'running')
             RETURNING {JOB_COLUMNS}"
        );
        let row: Option<JobRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("cancelling a job")?;
        if let Some(row) = row {
            return Ok(row.into_record()?);
        }
        let job = self.get_job(workspace, id).await?;
        Err(StoreError::conflict("job_finished", format!("the job has already finished ({})", job.status.as_str())))
    }

    pub(crate) async fn fail_interrupted_jobs(&self) -> StoreResult<u64> {
        let error = JobError::interrupted();
        let failed = sqlx::query(
            "UPDATE jobs SET status = 'failed', error_code = $1, error_message = $2, finished_at = now(),
                 updated_at = now()
             WHERE status = 'running'",
        )
        .bind(&error.code)
        .bind(&error.message)
        .execute(&self.pool)
        .await
        .context("failing interrupted jobs")?;
        Ok(failed.rows_affected())
    }
}

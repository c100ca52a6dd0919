//! Background jobs: CSV imports and exports started through the API, queued in the store and run one at a time
//! by the engine's job runner.

use chrono::{DateTime, Utc};
use rapport_domain::{JobId, WorkspaceId};
use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::records::Actor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    ImportContacts,
    ExportContacts,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ImportContacts => "import_contacts",
            JobKind::ExportContacts => "export_contacts",
        }
    }

    pub fn parse(text: &str) -> Option<JobKind> {
        match text {
            "import_contacts" => Some(JobKind::ImportContacts),
            "export_contacts" => Some(JobKind::ExportContacts),
            _ => None,
        }
    }
}

/// `Queued` → `Running` → one of the finished states; `Queued` may also go straight to `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// A job as stored. `params`, `progress` and `result` are documents of the job's kind, written by the API and the
/// runner; the store keeps them as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub workspace: WorkspaceId,
    pub kind: JobKind,
    pub status: JobStatus,
    pub params: Value,
    pub progress: Value,
    pub result: Option<Value>,
    pub error: Option<JobError>,
    /// Set by a cancellation while the job runs; the runner stops at its next progress report.
    pub cancel_requested: bool,
    /// The actor who started it, as recorded in histories (`user:3`, `api_key:1`).
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    /// The error of a job that was running when the server stopped, recorded by `Store::fail_interrupted_jobs`.
    pub fn interrupted() -> JobError {
        JobError {
            code: "interrupted".to_owned(),
            message: "the server stopped while this job ran; start it again".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub params: Value,
    pub actor: Actor,
}

/// How a running job ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub status: JobStatus,
    pub progress: Value,
    pub result: Option<Value>,
    pub error: Option<JobError>,
}

impl JobEnd {
    /// Invalid `invalid_job_status` unless the job ends in a finished state; `Store::finish_job` checks this before
    /// it writes anything.
    pub fn check(&self) -> StoreResult<()> {
        if self.status.is_finished() {
            return Ok(());
        }
        let message = format!("a job ends as succeeded, failed or cancelled, not as {}", self.status.as_str());
        Err(StoreError::invalid("invalid_job_status", "status", message))
    }
}

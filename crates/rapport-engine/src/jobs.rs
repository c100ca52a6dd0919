//! Background jobs: CSV imports and exports started through the API.
//!
//! Jobs are rows in the store (see `rapport_store::Job`), so a queued job survives a restart; their files live in
//! one directory of the server's: `uploads/` for imported files until their job ends, and `<job id>/` for what a
//! job leaves behind (an import's `errors.csv`, an export's `contacts.csv`). The [`JobRunner`] claims one job at
//! a time, runs it with the same code as the command line (`rapport_csv`), and records progress every
//! [`PROGRESS_EVERY`] so that clients can poll it; a cancellation takes effect at the next progress report.
//!
//! The job documents (`params`, `progress`, `result`) are written here and shown by the API as they are stored:
//!
//! - import params: `{"upload", "file_name", "mappings", "encoding", "dry_run"}`;
//! - import progress: `{"bytes_read", "total_bytes", "rows", "created", "updated", "failed", "empty", "valid"}`;
//! - import result: the final counts plus `elapsed_ms`, `encoding`, `columns`, `ignored`, `error_count`, the first
//!   [`ERRORS_KEPT`] `errors` (`row`, `line`, `column`, `value`, `reason`; all of them are in `errors.csv`) and,
//!   for a dry run, `preview` (the first rows as they would land);
//! - export progress `{"written", "total"}` and result `{"rows", "bytes"}`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use rapport_csv::export::{ExportControl, ExportScope, export_contacts};
use rapport_csv::import::{
    self, Flow, ImportObserver, ImportProgress, ImportRequest, ImportSummary, PreviewOutcome, RowError, RowPreview,
    SetupError,
};
use rapport_domain::{JobId, SegmentId};
use rapport_store::{Job, JobEnd, JobError, JobKind, JobStatus, NewJob, Store, StoreResult};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

/// How often a running job records its progress (and notices a cancellation).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Row errors kept in an import's result document; `errors.csv` has every one.
pub const ERRORS_KEPT: usize = 100;
/// How often the runner looks for queued jobs when nobody wakes it (another server may have queued one).
const POLL_EVERY: Duration = Duration::from_secs(5);
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// The handle the API holds: queues jobs, wakes the runner, and knows where job files are. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn Store>,
    files: Arc<JobFiles>,
    wake: Arc<Notify>,
}

/// Where job files live.
#[derive(Debug)]
pub struct JobFiles {
    root: PathBuf,
}

impl JobFiles {
    /// Creates the directory and its `uploads/` folder.
    pub fn create(root: PathBuf) -> anyhow::Result<JobFiles> {
        std::fs::create_dir_all(root.join("uploads"))
            .with_context(|| format!("creating the job directory {}", root.display()))?;
        Ok(JobFiles { root })
    }

    /// The folder uploads are written into before their job is queued.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// An upload's path from the relative name stored in the job's params. `None` for a name that leaves the
    /// uploads folder.
    pub fn upload(&self, name: &str) -> Option<PathBuf> {
        let simple = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
        simple.then(|| self.uploads().join(name))
    }

    /// An import's error report (CSV with a byte order mark).
    pub fn errors_report(&self, job: JobId) -> PathBuf {
        self.root.join(job.to_string()).join("errors.csv")
    }

    /// An export's file.
    pub fn export(&self, job: JobId) -> PathBuf {
        self.root.join(job.to_string()).join("contacts.csv")
    }

    fn job_folder(&self, job: JobId) -> anyhow::Result<PathBuf> {
        let folder = self.root.join(job.to_string());
        std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
        Ok(folder)
    }
}

impl Jobs {
    pub fn new(store: Arc<dyn Store>, files: JobFiles) -> Jobs {
        Jobs { store, files: Arc::new(files), wake: Arc::new(Notify::new()) }
    }

    pub fn files(&self) -> &JobFiles {
        &self.files
    }

    /// Queues a job and wakes the runner.
    pub async fn submit(&self, workspace: rapport_domain::WorkspaceId, job: NewJob) -> StoreResult<Job> {
        let job = self.store.create_job(workspace, job).await?;
        self.wake.notify_one();
        Ok(job)
    }

    /// The runner of these jobs; run exactly one per server.
    pub fn runner(&self) -> JobRunner {
        JobRunner { jobs: self.clone() }
    }
}

/// Runs queued jobs one at a time.
pub struct JobRunner {
    jobs: Jobs,
}

impl JobRunner {
    /// Fails the jobs a previous run left running, then runs queued jobs until `shutdown` resolves. A job still
    /// running at shutdown is left `running` and failed as interrupted at the next start.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        match self.jobs.store.fail_interrupted_jobs().await {
            Ok(0) => {}
            Ok(count) => tracing::warn!(count, "failed jobs that a previous run left unfinished"),
            Err(error) => tracing::error!(error = %error, "cannot fail interrupted jobs"),
        }
        tokio::pin!(shutdown);
        loop {
            let work = async {
                loop {
                    match self.run_next().await {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(error) => {
                            tracing::error!(error = format!("{error:#}"), "the job runner cannot claim a job");
                            break;
                        }
                    }
                }
                tokio::select! {
                    () = self.jobs.wake.notified() => {}
                    () = tokio::time::sleep(POLL_EVERY) => {}
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = work => {}
            }
        }
    }

    /// Claims and runs the oldest queued job; `false` when there was none. A job's own failure is recorded on the
    /// job; only a failure to claim or to record is an error here.
    pub async fn run_next(&self) -> anyhow::Result<bool> {
        let Some(job) = self.jobs.store.claim_job().await.context("claiming a job")? else {
            return Ok(false);
        };
        let started = Instant::now();
        tracing::info!(job = %job.id, kind = job.kind.as_str(), workspace = %job.workspace, "job started");
        let end = match job.kind {
            JobKind::ImportContacts => self.import(&job).await,
            JobKind::ExportContacts => self.export(&job).await,
        };
        let end = end.unwrap_or_else(|error| {
            tracing::error!(job = %job.id, error = format!("{error:#}"), "job failed");
            failed(&job, "job_failed", format!("the job stopped because of an internal error: {error}"))
        });
        let status = end.status;
        self.jobs.store.finish_job(job.id, end).await.context("recording the end of a job")?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(job = %job.id, status = status.as_str(), elapsed_ms, "job ended");
        Ok(true)
    }

    async fn import(&self, job: &Job) -> anyhow::Result<JobEnd> {
        let params = &job.params;
        let upload = params["upload"].as_str().and_then(|name| self.jobs.files.upload(name));
        let Some(upload) = upload else {
            return Ok(failed(job, "invalid_job", "the job names no uploaded file"));
        };
        let request = ImportRequest {
            file: upload.clone(),
            workspace: job.workspace,
            mappings: strings(&params["mappings"]),
            encoding: params["encoding"].as_str().map(str::to_owned),
        };
        let dry_run = params["dry_run"].as_bool().unwrap_or(false);
        let ended = self.run_import(job, request, dry_run).await;
        if let Err(error) = std::fs::remove_file(&upload) {
            tracing::warn!(job = %job.id, %error, "cannot remove the uploaded file");
        }
        ended
    }

    async fn run_import(&self, job: &Job, request: ImportRequest, dry_run: bool) -> anyhow::Result<JobEnd> {
        let prepared = match import::prepare(self.jobs.store.as_ref(), &request).await {
            Ok(prepared) => prepared,
            Err(SetupError::Invalid { code, message }) => return Ok(failed(job, code, message)),
            Err(SetupError::Backend(error)) => return Err(error),
        };
        let mut result = Map::new();
        result.insert("encoding".into(), json!(prepared.encoding_name()));
        let columns: Vec<Value> =
            prepared.columns().into_iter().map(|(column, field)| json!({"column": column, "field": field})).collect();
        result.insert("columns".into(), Value::from(columns));
        result.insert("ignored".into(), json!(prepared.ignored()));
        self.jobs.files.job_folder(job.id)?;
        let mut observer = JobObserver::new(self.jobs.store.clone(), job.id, &self.jobs.files.errors_report(job.id))?;
        let outcome = import::run(self.jobs.store.clone(), prepared, dry_run, &mut observer).await;
        observer.report.flush().context("writing the error report")?;
        let progress = observer.last_progress.take().unwrap_or_else(|| json!({}));
        let summary = match outcome {
            Ok(summary) => summary,
            Err(error) => {
                tracing::error!(job = %job.id, error = format!("{error:#}"), "import stopped");
                let message = format!(
                    "the import stopped part-way because of an internal error ({error}); the rows counted in its \
                     progress were handled, and importing the file again updates them rather than duplicating them"
                );
                let mut end = failed(job, "import_aborted", message);
                end.progress = progress;
                end.result = Some(observer.result(result, None));
                return Ok(end);
            }
        };
        let status = if summary.stopped { JobStatus::Cancelled } else { JobStatus::Succeeded };
        Ok(JobEnd {
            status,
            progress: import_progress(&summary, observer.bytes_read, observer.total_bytes),
            result: Some(observer.result(result, Some(&summary))),
            error: None,
        })
    }

    async fn export(&self, job: &Job) -> anyhow::Result<JobEnd> {
        let path = self.jobs.files.export(job.id);
        self.jobs.files.job_folder(job.id)?;
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let scope = match job.params.get("segment_id").and_then(Value::as_i64) {
            Some(segment) => ExportScope::Segment(SegmentId::new(segment)),
            None => ExportScope::All,
        };
        let total = match scope {
            ExportScope::All => self.jobs.store.count_contacts(job.workspace).await.context("counting contacts")?,
            ExportScope::Segment(segment) => {
                self.jobs.store.get_segment(job.workspace, segment).await.context("reading the segment")?.member_count
            }
        };
        let control = Arc::new(ExportControl::default());
        let exporting = export_contacts(self.jobs.store.clone(), job.workspace, scope, file, control.clone());
        tokio::pin!(exporting);
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        let written = loop {
            tokio::select! {
                written = &mut exporting => break written,
                _ = ticks.tick() => {
                    let progress = json!({"written": control.written.load(Ordering::Relaxed), "total": total});
                    if self.jobs.store.report_job_progress(job.id, progress).await? {
                        control.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        let stopped = control.stop.load(Ordering::Relaxed);
        // A failed or stopped export leaves no partial file to be mistaken for the whole.
        if stopped || written.is_err() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        let written = written?;
        let progress = json!({"written": written, "total": total});
        if stopped {
            return Ok(JobEnd { status: JobStatus::Cancelled, progress, result: None, error: None });
        }
        let bytes = std::fs::metadata(&path).with_context(|| format!("reading the size of {}", path.display()))?.len();
        Ok(JobEnd {
            status: JobStatus::Succeeded,
            progress,
            result: Some(json!({"rows": written, "bytes": bytes})),
            error: None,
        })
    }
}

fn failed(job: &Job, code: &str, message: impl Into<String>) -> JobEnd {
    JobEnd {
        status: JobStatus::Failed,
        progress: job.progress.clone(),
        result: None,
        error: Some(JobError { code: code.to_owned(), message: message.into() }),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn import_progress(summary: &ImportSummary, bytes_read: u64, total_bytes: u64) -> Value {
    json!({
        "bytes_read": bytes_read,
        "total_bytes": total_bytes,
        "rows": summary.rows,
        "created": summary.created,
        "updated": summary.updated,
        "failed": summary.failed,
        "empty": summary.empty,
        "valid": summary.valid,
    })
}

fn row_error(error: &RowError) -> Value {
    json!({
        "row": error.row,
        "line": error.line,
        "column": error.error.column,
        "value": error.error.value,
        "reason": error.error.reason,
    })
}

/// Records an import job's progress in the store and its errors in `errors.csv`.
struct JobObserver {
    store: Arc<dyn Store>,
    job: JobId,
    report: csv::Writer<BufWriter<File>>,
    errors: Vec<Value>,
    error_count: u64,
    previews: Vec<Value>,
    last_report: Option<Instant>,
    last_progress: Option<Value>,
    bytes_read: u64,
    total_bytes: u64,
}

impl JobObserver {
    fn new(store: Arc<dyn Store>, job: JobId, report: &Path) -> anyhow::Result<JobObserver> {
        let file = File::create(report).with_context(|| format!("creating {}", report.display()))?;
        let mut file = BufWriter::new(file);
        file.write_all(BYTE_ORDER_MARK).context("writing the error report")?;
        let mut report = csv::Writer::from_writer(file);
        report.write_record(["row", "line", "column", "value", "reason"]).context("writing the error report")?;
        Ok(JobObserver {
            store,
            job,
            report,
            errors: Vec::new(),
            error_count: 0,
            previews: Vec::new(),
            last_report: None,
            last_progress: None,
            bytes_read: 0,
            total_bytes: 0,
        })
    }

    fn result(&mut self, mut result: Map<String, Value>, summary: Option<&ImportSummary>) -> Value {
        if let Some(summary) = summary {
            let counts = import_progress(summary, self.bytes_read, self.total_bytes);
            if let Value::Object(counts) = counts {
                result.extend(counts);
            }
            result.insert("elapsed_ms".into(), json!(summary.elapsed.as_millis() as u64));
            result.insert("stopped".into(), json!(summary.stopped));
        }
        result.insert("error_count".into(), json!(self.error_count));
        result.insert("errors".into(), Value::from(std::mem::take(&mut self.errors)));
        if !self.previews.is_empty() {
            result.insert("preview".into(), Value::from(std::mem::take(&mut self.previews)));
        }
        Value::Object(result)
    }
}

#[async_trait]
impl ImportObserver for JobObserver {
    fn preview(&mut self, preview: &RowPreview) -> anyhow::Result<()> {
        let entry = match &preview.outcome {
            PreviewOutcome::Empty => json!({"row": preview.row, "outcome": "empty"}),
            PreviewOutcome::Valid(values) => {
                let values: Vec<Value> =
                    values.iter().map(|(field, value)| json!({"field": field, "value": value})).collect();
                json!({"row": preview.row, "outcome": "valid", "values": values})
            }
            PreviewOutcome::Invalid(errors) => {
                let errors: Vec<Value> = errors
                    .iter()
                    .map(|error| json!({"column": error.column, "value": error.value, "reason": error.reason}))
                    .collect();
                json!({"row": preview.row, "outcome": "invalid", "errors": errors})
            }
        };
        self.previews.push(entry);
        Ok(())
    }

    fn errors(&mut self, errors: &[RowError]) -> anyhow::Result<()> {
        for error in errors {
            self.error_count += 1;
            if self.errors.len() < ERRORS_KEPT {
                self.errors.push(row_error(error));
            }
            self.report
                .write_record([
                    error.row.to_string().as_str(),
                    error.line.to_string().as_str(),
                    error.error.column.as_str(),
                    error.error.value.as_str(),
                    error.error.reason.as_str(),
                ])
                .context("writing the error report")?;
        }
        Ok(())
    }

    async fn progress(&mut self, progress: ImportProgress<'_>) -> anyhow::Result<Flow> {
        self.bytes_read = progress.bytes_read;
        self.total_bytes = progress.total_bytes;
        let document = import_progress(progress.summary, progress.bytes_read, progress.total_bytes);
        self.last_progress = Some(document.clone());
        if self.last_report.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) {
            return Ok(Flow::Continue);
        }
        self.last_report = Some(Instant::now());
        let cancel = self.store.report_job_progress(self.job, document).await.context("recording progress")?;
        Ok(if cancel { Flow::Stop } else { Flow::Continue })
    }
}

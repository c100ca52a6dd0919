//! Background jobs: the queue's life cycle, claims in order and never twice, cancellation, and recovery after a
//! stop.

use std::collections::BTreeSet;
use std::sync::Arc;

use rapport_domain::{ApiKeyId, JobId, UserId, WorkspaceId};
use serde_json::{Value, json};

use super::{code, workspace};
use crate::{Actor, Job, JobEnd, JobError, JobKind, JobStatus, NewJob, PageRequest, Store};

/// Claims that run at the same time in `concurrent_claims_take_each_job_once`.
const CLAIMERS: usize = 8;

pub async fn job_lifecycle(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let params = json!({"file": "contacts.csv", "columns": {"邮箱": "email"}});
    let new = NewJob { kind: JobKind::ImportContacts, params: params.clone(), actor: Actor::ApiKey(ApiKeyId::new(3)) };
    let created = store.create_job(ws, new).await.unwrap();
    assert_eq!(describe(&created), "import_contacts queued progress={}");
    assert_eq!((created.workspace, &created.params, created.created_by.as_str()), (ws, &params, "api_key:3"));
    assert_eq!((created.started_at, created.finished_at, created.updated_at), (None, None, created.created_at));
    assert_eq!(store.get_job(ws, created.id).await.unwrap(), created);

    let claimed = store.claim_job().await.unwrap().unwrap();
    assert_eq!((claimed.id, describe(&claimed)), (created.id, "import_contacts running progress={}".to_owned()));
    assert_eq!(claimed.started_at, Some(claimed.updated_at));
    assert!(claimed.updated_at >= created.updated_at);
    assert_eq!(store.get_job(ws, created.id).await.unwrap(), claimed);
    assert_eq!(store.claim_job().await.unwrap(), None, "the only job is running");

    assert!(!store.report_job_progress(created.id, json!({"rows": 500, "errors": 2})).await.unwrap());
    let reported = store.get_job(ws, created.id).await.unwrap();
    assert_eq!(describe(&reported), r#"import_contacts running progress={"errors":2,"rows":500}"#);
    assert!(reported.updated_at >= claimed.updated_at);

    let invalid = JobEnd { status: JobStatus::Queued, progress: json!({}), result: None, error: None };
    assert_eq!(code(store.finish_job(created.id, invalid).await), "invalid invalid_job_status status");
    assert_eq!(store.get_job(ws, created.id).await.unwrap(), reported, "a rejected end writes nothing");

    let end = JobEnd {
        status: JobStatus::Succeeded,
        progress: json!({"rows": 1000, "errors": 2}),
        result: Some(json!({"created": 990, "updated": 8})),
        error: None,
    };
    let finished = store.finish_job(created.id, end).await.unwrap();
    assert_eq!(
        describe(&finished),
        r#"import_contacts succeeded progress={"errors":2,"rows":1000} result={"created":990,"updated":8}"#
    );
    assert_eq!((finished.started_at, finished.finished_at), (claimed.started_at, Some(finished.updated_at)));
    assert!(finished.updated_at >= reported.updated_at);
    assert_eq!(store.get_job(ws, created.id).await.unwrap(), finished);

    assert_eq!(code(store.report_job_progress(created.id, json!({})).await), "not_found job");
    assert_eq!(store.claim_job().await.unwrap(), None);
}

pub async fn job_failure_records_the_error(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let id = export(store, ws).await;
    store.claim_job().await.unwrap().unwrap();
    let error = JobError { code: "unreadable_file".to_owned(), message: "line 3 is not valid UTF-8".to_owned() };
    let end = JobEnd { status: JobStatus::Failed, progress: json!({"rows": 2}), result: None, error: Some(error) };
    let failed = store.finish_job(id, end).await.unwrap();
    assert_eq!(
        describe(&failed),
        r#"export_contacts failed progress={"rows":2} error=unreadable_file: line 3 is not valid UTF-8"#
    );
    assert_eq!(store.get_job(ws, id).await.unwrap(), failed);
}

pub async fn list_jobs_newest_first(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let mut imports = Vec::new();
    for _ in 0..5 {
        imports.push(import(store, ws).await);
    }
    let export = export(store, ws).await;
    import(store, other).await;

    let newest_first: Vec<JobId> = imports.iter().rev().copied().collect();
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_jobs(ws, JobKind::ImportContacts, PageRequest { after, limit: 2 }).await.unwrap();
        pages.push((ids(&page.items), page.next));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    let page = |range: std::ops::Range<usize>, next: Option<usize>| {
        (newest_first[range].to_vec(), next.map(|index| newest_first[index]))
    };
    assert_eq!(pages, [page(0..2, Some(1)), page(2..4, Some(3)), page(4..5, None)]);

    let exports = store.list_jobs(ws, JobKind::ExportContacts, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert_eq!((ids(&exports.items), exports.next), (vec![export], None));
    let all = store.list_jobs(ws, JobKind::ImportContacts, PageRequest { after: None, limit: 5 }).await.unwrap();
    assert_eq!((ids(&all.items), all.next), (newest_first, None), "a full last page names no next page");
}

pub async fn claim_takes_the_oldest_queued_job(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let a = workspace(store, "acme").await;
    let b = workspace(store, "beta").await;
    let a1 = import(store, a).await;
    let b1 = export(store, b).await;
    let cancelled = import(store, a).await;
    let a2 = export(store, a).await;
    store.cancel_job(a, cancelled).await.unwrap();

    let mut claims = Vec::new();
    while let Some(job) = store.claim_job().await.unwrap() {
        assert_eq!(store.get_job(job.workspace, job.id).await.unwrap(), job);
        claims.push((job.workspace, job.id, describe(&job)));
    }
    let running = |kind: &str| format!("{kind} running progress={{}}");
    assert_eq!(
        claims,
        [(a, a1, running("import_contacts")), (b, b1, running("export_contacts")), (a, a2, running("export_contacts"))]
    );
    assert_eq!(store.get_job(a, cancelled).await.unwrap().status, JobStatus::Cancelled);
}

/// Runners claiming at once each get a different job, and together they get every job.
pub async fn concurrent_claims_take_each_job_once(store: Arc<dyn Store>) {
    let a = workspace(store.as_ref(), "acme").await;
    let b = workspace(store.as_ref(), "beta").await;
    let mut queued = BTreeSet::new();
    for index in 0..24 {
        queued.insert(import(store.as_ref(), if index % 3 == 0 { b } else { a }).await);
    }

    let mut claimers = tokio::task::JoinSet::new();
    for _ in 0..CLAIMERS {
        let store = Arc::clone(&store);
        claimers.spawn(async move {
            let mut claimed = Vec::new();
            while let Some(job) = store.claim_job().await.unwrap() {
                assert_eq!(job.status, JobStatus::Running);
                claimed.push(job.id);
            }
            claimed
        });
    }
    let mut claimed = Vec::new();
    while let Some(ids) = claimers.join_next().await {
        claimed.extend(ids.unwrap());
    }
    let distinct: BTreeSet<JobId> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), distinct.len(), "a job was claimed twice: {claimed:?}");
    assert_eq!(distinct, queued);
}

pub async fn cancel_job_by_status(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let running = import(store, ws).await;
    let queued = import(store, ws).await;
    store.claim_job().await.unwrap().unwrap();

    let cancelled = store.cancel_job(ws, queued).await.unwrap();
    assert_eq!(describe(&cancelled), "import_contacts cancelled progress={}");
    assert_eq!((cancelled.started_at, cancelled.finished_at), (None, Some(cancelled.updated_at)));
    assert_eq!(store.get_job(ws, queued).await.unwrap(), cancelled);
    assert_eq!(code(store.cancel_job(ws, queued).await), "conflict job_finished");

    let asked = store.cancel_job(ws, running).await.unwrap();
    assert_eq!(describe(&asked), "import_contacts running progress={} cancel_requested");
    assert_eq!(asked.finished_at, None);
    assert_eq!(store.cancel_job(ws, running).await.unwrap().status, JobStatus::Running, "asking twice is fine");
    assert!(store.report_job_progress(running, json!({"rows": 10})).await.unwrap(), "the runner learns of it");
    let end = JobEnd { status: JobStatus::Cancelled, progress: json!({"rows": 10}), result: None, error: None };
    let stopped = store.finish_job(running, end).await.unwrap();
    assert_eq!(describe(&stopped), r#"import_contacts cancelled progress={"rows":10} cancel_requested"#);
    assert_eq!(code(store.cancel_job(ws, running).await), "conflict job_finished");

    let done = import(store, ws).await;
    store.claim_job().await.unwrap().unwrap();
    store.finish_job(done, succeeded()).await.unwrap();
    assert_eq!(code(store.cancel_job(ws, done).await), "conflict job_finished");
    assert_eq!(store.get_job(ws, done).await.unwrap().status, JobStatus::Succeeded);
    assert_eq!(code(store.cancel_job(ws, JobId::new(999_999)).await), "not_found job");
}

pub async fn finish_requires_a_running_job(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let queued = import(store, ws).await;
    let before = store.get_job(ws, queued).await.unwrap();
    assert_eq!(code(store.finish_job(queued, succeeded()).await), "not_found job");
    assert_eq!(code(store.report_job_progress(queued, json!({"rows": 1})).await), "not_found job");
    assert_eq!(store.get_job(ws, queued).await.unwrap(), before);
    assert_eq!(code(store.finish_job(JobId::new(999_999), succeeded()).await), "not_found job");

    store.claim_job().await.unwrap().unwrap();
    let finished = store.finish_job(queued, succeeded()).await.unwrap();
    assert_eq!(code(store.finish_job(queued, succeeded()).await), "not_found job", "a job finishes once");
    assert_eq!(store.get_job(ws, queued).await.unwrap(), finished);
}

pub async fn fail_interrupted_jobs_fails_running_ones(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let a = workspace(store, "acme").await;
    let b = workspace(store, "beta").await;
    let done = import(store, a).await;
    store.claim_job().await.unwrap().unwrap();
    let done = store.finish_job(done, succeeded()).await.unwrap();
    let running_a = import(store, a).await;
    let running_b = export(store, b).await;
    store.claim_job().await.unwrap().unwrap();
    store.claim_job().await.unwrap().unwrap();
    store.report_job_progress(running_b, json!({"rows": 40})).await.unwrap();
    store.cancel_job(b, running_b).await.unwrap();
    let queued = import(store, a).await;

    assert_eq!(store.fail_interrupted_jobs().await.unwrap(), 2);
    let interrupted = "error=interrupted: the server stopped while this job ran; start it again";
    let failed_a = store.get_job(a, running_a).await.unwrap();
    assert_eq!(describe(&failed_a), format!("import_contacts failed progress={{}} {interrupted}"));
    assert_eq!(failed_a.finished_at, Some(failed_a.updated_at));
    let failed_b = store.get_job(b, running_b).await.unwrap();
    assert_eq!(
        describe(&failed_b),
        format!(r#"export_contacts failed progress={{"rows":40}} {interrupted} cancel_requested"#)
    );
    assert_eq!(store.get_job(a, done.id).await.unwrap(), done, "finished jobs stay as they were");
    assert_eq!(store.get_job(a, queued).await.unwrap().status, JobStatus::Queued);

    assert_eq!(store.fail_interrupted_jobs().await.unwrap(), 0);
    assert_eq!(store.claim_job().await.unwrap().map(|job| job.id), Some(queued), "queued jobs still run");
}

pub async fn jobs_are_isolated_by_workspace(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let a = workspace(store, "acme").await;
    let b = workspace(store, "beta").await;
    let queued = import(store, a).await;
    let before = store.get_job(a, queued).await.unwrap();

    assert_eq!(code(store.get_job(b, queued).await), "not_found job");
    assert_eq!(code(store.cancel_job(b, queued).await), "not_found job");
    let listed = store.list_jobs(b, JobKind::ImportContacts, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert_eq!((listed.items, listed.next), (Vec::new(), None));
    assert_eq!(store.get_job(a, queued).await.unwrap(), before, "nothing was cancelled");

    let running = store.claim_job().await.unwrap().unwrap();
    assert_eq!(code(store.get_job(b, running.id).await), "not_found job");
    assert_eq!(code(store.cancel_job(b, running.id).await), "not_found job");
    assert!(!store.get_job(a, running.id).await.unwrap().cancel_requested);
}

// ----- Helpers -----

/// What a job's status and documents say, in one line: `import_contacts running progress={"rows":10}` followed by
/// `result=…`, `error=code: message` and `cancel_requested` when present.
fn describe(job: &Job) -> String {
    let mut parts =
        vec![job.kind.as_str().to_owned(), job.status.as_str().to_owned(), format!("progress={}", job.progress)];
    if let Some(result) = &job.result {
        parts.push(format!("result={result}"));
    }
    if let Some(error) = &job.error {
        parts.push(format!("error={}: {}", error.code, error.message));
    }
    if job.cancel_requested {
        parts.push("cancel_requested".to_owned());
    }
    parts.join(" ")
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|job| job.id).collect()
}

async fn import(store: &dyn Store, workspace: WorkspaceId) -> JobId {
    queue(store, workspace, JobKind::ImportContacts, json!({"file": "contacts.csv"})).await
}

async fn export(store: &dyn Store, workspace: WorkspaceId) -> JobId {
    queue(store, workspace, JobKind::ExportContacts, json!({"columns": ["email", "phone"]})).await
}

async fn queue(store: &dyn Store, workspace: WorkspaceId, kind: JobKind, params: Value) -> JobId {
    let job = NewJob { kind, params, actor: Actor::User(UserId::new(1)) };
    let job = store.create_job(workspace, job).await.unwrap();
    assert_eq!((job.status, job.created_by.as_str()), (JobStatus::Queued, "user:1"));
    job.id
}

fn succeeded() -> JobEnd {
    JobEnd { status: JobStatus::Succeeded, progress: json!({"rows": 1}), result: Some(json!({})), error: None }
}

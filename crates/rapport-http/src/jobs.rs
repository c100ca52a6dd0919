//! `/api/v1/imports` and `/api/v1/exports`: CSV imports and exports as background jobs.
//!
//! An import is a `multipart/form-data` upload. The file is streamed to the job directory and checked (encoding
//! label, header, mapping) before the job is queued, so a bad request gets its 400 at once and leaves nothing
//! behind. The job then runs in the engine's job runner; clients poll `GET …/{id}` for its progress and result.

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rapport_csv::import::{self, ImportRequest, SetupError};
use rapport_domain::{JobId, Permission, SegmentId};
use rapport_store::{Job, JobKind, JobStatus, NewJob, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, path_id};
use crate::state::AppState;
use crate::wire::{ListBody, PageParams, decode_cursor, encode_cursor, page_limit, time};

/// The largest file an import accepts (the 1,000,000-row benchmark file is about 124 MiB).
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024 * 1024;
/// The most `map` parts one import takes.
const MAX_MAPPINGS: usize = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    // Uploads may be far larger than the API's other bodies; the limit set closest to the route wins.
    let uploads = OpenApiRouter::new()
        .routes(routes!(list_imports, create_import))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD_BYTES));
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(get_import, cancel_import))
        .routes(routes!(import_errors))
        .routes(routes!(list_exports, create_export))
        .routes(routes!(get_export, cancel_export))
        .routes(routes!(export_file))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobBody {
    pub id: String,
    /// `import_contacts` or `export_contacts`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// What the job was asked to do: an import's `file_name`, `mappings`, `encoding` and `dry_run`.
    #[schema(value_type = Object)]
    pub params: Value,
    /// Counts so far. Imports: `bytes_read`, `total_bytes`, `rows`, `created`, `updated`, `failed`, `empty`,
    /// `valid`; exports: `written`, `total`.
    #[schema(value_type = Object)]
    pub progress: Value,
    /// When finished. Imports: the final counts, `elapsed_ms`, `encoding`, `columns`, `ignored`, `error_count`,
    /// the first 100 `errors` (`row`, `line`, `column`, `value`, `reason`) and, for a dry run, `preview`.
    /// Exports: `rows` and `bytes`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<JobErrorBody>,
    pub cancel_requested: bool,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Where to fetch what the job produced: `errors` (an import's error report as CSV) or `file` (an export).
    #[schema(value_type = Object)]
    pub links: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobErrorBody {
    pub code: String,
    pub message: String,
}

impl From<Job> for JobBody {
    fn from(job: Job) -> JobBody {
        let id = job.id.to_string();
        let links = match job.kind {
            JobKind::ImportContacts if job.status.is_finished() && job.result.is_some() => {
                json!({"self": format!("/api/v1/imports/{id}"), "errors": format!("/api/v1/imports/{id}/errors")})
            }
            JobKind::ImportContacts => json!({"self": format!("/api/v1/imports/{id}")}),
            JobKind::ExportContacts if job.status == JobStatus::Succeeded => {
                json!({"self": format!("/api/v1/exports/{id}"), "file": format!("/api/v1/exports/{id}/file")})
            }
            JobKind::ExportContacts => json!({"self": format!("/api/v1/exports/{id}")}),
        };
        let mut params = job.params;
        if let Some(params) = params.as_object_mut() {
            // The stored upload's name is the server's business.
            params.remove("upload");
        }
        JobBody {
            id,
            kind: job.kind.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            params,
            progress: job.progress,
            result: job.result,
            error: job.error.map(|error| JobErrorBody { code: error.code, message: error.message }),
            cancel_requested: job.cancel_requested,
            created_by: job.created_by,
            created_at: time(job.created_at),
            started_at: job.started_at.map(time),
            finished_at: job.finished_at.map(time),
            links,
        }
    }
}

/// The parts of an import upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ImportUpload {
    /// The CSV file (UTF-8 with or without a byte order mark, GBK or GB18030).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// `COLUMN=FIELD`, once per mapped column, e.g. `邮箱=email`. Without any, headers map by name.
    pub map: Option<Vec<String>>,
    /// An encoding label overriding detection: `utf-8`, `gbk`, `gb18030`, …
    pub encoding: Option<String>,
    /// `true` checks every row and previews the first ten without writing anything.
    pub dry_run: Option<bool>,
}

/// Starts an import of contacts from a CSV file. The file, encoding and mapping are checked before the job is
/// queued: a problem there is a 400 and nothing is kept.
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports",
    request_body(content = ImportUpload, content_type = "multipart/form-data"),
    responses((status = 202, body = JobBody), (status = 400, description = "missing_file, invalid_mapping, \
        unknown_encoding, empty_file, unreadable_header, invalid_upload")))]
async fn create_import(State(state): State<AppState>, caller: Caller, multipart: Multipart) -> ApiResult<Response> {
    caller.require(Permission::WriteContacts)?;
    let upload = receive_upload(&state, multipart).await?;
    let request = ImportRequest {
        file: upload.path.clone(),
        workspace: caller.workspace,
        mappings: upload.mappings.clone(),
        encoding: upload.encoding.clone(),
    };
    let checked = match import::prepare(state.store.as_ref(), &request).await {
        Ok(_) => Ok(()),
        Err(SetupError::Invalid { code, message }) => Err(ApiError::bad_request(code, message)),
        Err(SetupError::Backend(error)) => Err(ApiError::internal(error)),
    };
    if let Err(error) = checked {
        upload.discard().await;
        return Err(error);
    }
    let params = json!({
        "upload": upload.name,
        "file_name": upload.file_name,
        "mappings": upload.mappings,
        "encoding": upload.encoding,
        "dry_run": upload.dry_run,
        "bytes": upload.bytes,
    });
    let job = NewJob { kind: JobKind::ImportContacts, params, actor: caller.actor() };
    let job = match state.jobs.submit(caller.workspace, job).await {
        Ok(job) => job,
        Err(error) => {
            upload.discard().await;
            return Err(error.into());
        }
    };
    Ok(accepted("/api/v1/imports", job))
}

fn accepted(base: &str, job: Job) -> Response {
    let location = format!("{base}/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(JobBody::from(job))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// An upload on disk, with the form's other parts.
struct Upload {
    path: std::path::PathBuf,
    name: String,
    file_name: Option<String>,
    bytes: u64,
    mappings: Vec<String>,
    encoding: Option<String>,
    dry_run: bool,
}

impl Upload {
    async fn discard(&self) {
        if let Err(error) = tokio::fs::remove_file(&self.path).await {
            tracing::warn!(%error, path = %self.path.display(), "cannot remove a rejected upload");
        }
    }
}

/// Reads the form: the file is streamed to the uploads folder, the other parts are small. A problem with the form
/// removes what was written.
async fn receive_upload(state: &AppState, mut multipart: Multipart) -> ApiResult<Upload> {
    let mut upload: Option<Upload> = None;
    let mut mappings = Vec::new();
    let mut encoding = None;
    let mut dry_run = false;
    let result: ApiResult<()> = async {
        while let Some(mut field) = multipart.next_field().await.map_err(invalid_upload)? {
            let name = field.name().unwrap_or_default().to_owned();
            match name.as_str() {
                "file" => {
                    if upload.is_some() {
                        return Err(ApiError::field("file", "send one file per import"));
                    }
                    let file_name = field.file_name().map(str::to_owned);
                    let (path, stored) = new_upload_path(state)?;
                    let mut file = tokio::fs::File::create(&path)
                        .await
                        .map_err(|error| ApiError::internal(anyhow::Error::new(error).context("creating an upload")))?;
                    upload = Some(Upload {
                        path,
                        name: stored,
                        file_name,
                        bytes: 0,
                        mappings: Vec::new(),
                        encoding: None,
                        dry_run: false,
                    });
                    while let Some(chunk) = field.chunk().await.map_err(invalid_upload)? {
                        file.write_all(&chunk).await.map_err(|error| {
                            ApiError::internal(anyhow::Error::new(error).context("writing an upload"))
                        })?;
                        if let Some(upload) = upload.as_mut() {
                            upload.bytes += chunk.len() as u64;
                        }
                    }
                    file.flush()
                        .await
                        .map_err(|error| ApiError::internal(anyhow::Error::new(error).context("writing an upload")))?;
                }
                "map" => {
                    let text = field.text().await.map_err(invalid_upload)?;
                    if mappings.len() >= MAX_MAPPINGS {
                        return Err(ApiError::field("map", format!("at most {MAX_MAPPINGS} mappings")));
                    }
                    mappings.push(text);
                }
                "encoding" => encoding = Some(field.text().await.map_err(invalid_upload)?.trim().to_owned()),
                "dry_run" => {
                    dry_run = match field.text().await.map_err(invalid_upload)?.trim() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => return Err(ApiError::field("dry_run", "must be true or false")),
                    }
                }
                other => {
                    let message = format!("unknown part {other:?}: an import takes file, map, encoding and dry_run");
                    return Err(ApiError::field(other, message));
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        if let Some(upload) = &upload {
            upload.discard().await;
        }
        return Err(error);
    }
    let mut upload =
        upload.ok_or_else(|| ApiError::bad_request("missing_file", "attach the CSV file as the `file` part"))?;
    upload.mappings = mappings;
    upload.encoding = encoding.filter(|label| !label.is_empty());
    upload.dry_run = dry_run;
    Ok(upload)
}

fn new_upload_path(state: &AppState) -> ApiResult<(std::path::PathBuf, String)> {
    let mut bytes = [0_u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let name: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>() + ".csv";
    let path =
        state.jobs.files().upload(&name).ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad upload name")))?;
    Ok((path, name))
}

fn invalid_upload(error: axum::extract::multipart::MultipartError) -> ApiError {
    let status = error.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let message = format!("the file is larger than {} MiB", MAX_UPLOAD_BYTES / 1024 / 1024);
        return ApiError::new(status, "payload_too_large", message);
    }
    ApiError::bad_request(
        "invalid_upload",
        format!("the upload is not valid multipart/form-data: {}", error.body_text()),
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportInput {
    /// Export only this segment's members (in id order) instead of every contact.
    #[serde(default)]
    pub segment_id: Option<String>,
}

/// Starts an export of every contact of the workspace, or of one segment's members, as CSV (UTF-8 with a byte order
/// mark, so Excel shows Chinese correctly); fetch it from `links.file` once the job has succeeded.
#[utoipa::path(post, path = "/api/v1/exports", tag = "exports", request_body = ExportInput,
    responses((status = 202, body = JobBody)))]
async fn create_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ExportInput>,
) -> ApiResult<Response> {
    caller.require(Permission::Read)?;
    let params = match input.segment_id {
        None => json!({}),
        Some(raw) => {
            let segment: SegmentId = path_id(&raw, "segment")?;
            // Checked now, so that a wrong id is a 404 rather than a failed job.
            state.store.get_segment(caller.workspace, segment).await?;
            json!({ "segment_id": segment.get() })
        }
    };
    let job = NewJob { kind: JobKind::ExportContacts, params, actor: caller.actor() };
    let job = state.jobs.submit(caller.workspace, job).await?;
    Ok(accepted("/api/v1/exports", job))
}

async fn list_jobs(
    state: &AppState,
    caller: &Caller,
    kind: JobKind,
    params: PageParams,
) -> ApiResult<Json<ListBody<JobBody>>> {
    caller.require(Permission::Read)?;
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(JobId::new(decode_cursor(cursor, 1)?[0])),
    };
    let page = state.store.list_jobs(caller.workspace, kind, PageRequest { after, limit }).await?;
    Ok(Json(ListBody {
        items: page.items.into_iter().map(JobBody::from).collect(),
        next_cursor: page.next.map(|id| encode_cursor(&[id.get()])),
    }))
}

async fn get_job(state: &AppState, caller: &Caller, kind: JobKind, id: &str) -> ApiResult<Job> {
    caller.require(Permission::Read)?;
    let entity = match kind {
        JobKind::ImportContacts => "import",
        JobKind::ExportContacts => "export",
    };
    let id: JobId = path_id(id, entity)?;
    let job = state.store.get_job(caller.workspace, id).await.map_err(|error| match error {
        rapport_store::StoreError::NotFound { .. } => ApiError::not_found(entity),
        other => other.into(),
    })?;
    if job.kind != kind {
        return Err(ApiError::not_found(entity));
    }
    Ok(job)
}

async fn cancel(state: &AppState, caller: &Caller, kind: JobKind, id: &str) -> ApiResult<Json<JobBody>> {
    let permission = match kind {
        JobKind::ImportContacts => Permission::WriteContacts,
        JobKind::ExportContacts => Permission::Read,
    };
    caller.require(permission)?;
    let job = get_job(state, caller, kind, id).await?;
    Ok(Json(state.store.cancel_job(caller.workspace, job.id).await?.into()))
}

/// A job's file, streamed.
async fn send_file(path: std::path::PathBuf, download_name: String) -> ApiResult<Response> {
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(StatusCode::GONE, "file_gone", "the job's file is no longer kept on the server"));
        }
        Err(error) => return Err(ApiError::internal(anyhow::Error::new(error).context("opening a job file"))),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(length) = file.metadata().await.map(|metadata| metadata.len()) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{download_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((headers, body).into_response())
}

/// Import jobs, newest first.
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports", params(PageParams),
    responses((status = 200, body = ListBody<JobBody>)))]
async fn list_imports(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<ListBody<JobBody>>> {
    list_jobs(&state, &caller, JobKind::ImportContacts, params).await
}

/// An import's status, progress and, once finished, its result.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", params(("id" = String, Path)),
    responses((status = 200, body = JobBody), (status = 404)))]
async fn get_import(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<JobBody>> {
    Ok(Json(get_job(&state, &caller, JobKind::ImportContacts, &id).await?.into()))
}

/// Cancels a queued import, or stops a running one after the batch it is writing (rows written stay written).
#[utoipa::path(delete, path = "/api/v1/imports/{id}", tag = "imports", params(("id" = String, Path)),
    responses((status = 200, body = JobBody), (status = 404), (status = 409, description = "job_finished")))]
async fn cancel_import(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobBody>> {
    cancel(&state, &caller, JobKind::ImportContacts, &id).await
}

/// Every error of a finished import as CSV (`row,line,column,value,reason`), for Excel.
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors", tag = "imports", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv"), (status = 404), (status = 409, description = "job_running")))]
async fn import_errors(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let job = get_job(&state, &caller, JobKind::ImportContacts, &id).await?;
    if !job.status.is_finished() {
        return Err(ApiError::new(StatusCode::CONFLICT, "job_running", "the import has not finished yet"));
    }
    send_file(state.jobs.files().errors_report(job.id), format!("import-{}-errors.csv", job.id)).await
}

/// Export jobs, newest first.
#[utoipa::path(get, path = "/api/v1/exports", tag = "exports", params(PageParams),
    responses((status = 200, body = ListBody<JobBody>)))]
async fn list_exports(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<ListBody<JobBody>>> {
    list_jobs(&state, &caller, JobKind::ExportContacts, params).await
}

#[utoipa::path(get, path = "/api/v1/exports/{id}", tag = "exports", params(("id" = String, Path)),
    responses((status = 200, body = JobBody), (status = 404)))]
async fn get_export(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<JobBody>> {
    Ok(Json(get_job(&state, &caller, JobKind::ExportContacts, &id).await?.into()))
}

/// Cancels a queued export or stops a running one (its partial file is removed).
#[utoipa::path(delete, path = "/api/v1/exports/{id}", tag = "exports", params(("id" = String, Path)),
    responses((status = 200, body = JobBody), (status = 404), (status = 409, description = "job_finished")))]
async fn cancel_export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<JobBody>> {
    cancel(&state, &caller, JobKind::ExportContacts, &id).await
}

/// The exported CSV file of a succeeded export.
#[utoipa::path(get, path = "/api/v1/exports/{id}/file", tag = "exports", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/csv"), (status = 404), (status = 409, description = "job_not_done")))]
async fn export_file(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let job = get_job(&state, &caller, JobKind::ExportContacts, &id).await?;
    if job.status != JobStatus::Succeeded {
        let message = format!("the export is {}; its file is ready once it has succeeded", job.status.as_str());
        return Err(ApiError::new(StatusCode::CONFLICT, "job_not_done", message));
    }
    send_file(state.jobs.files().export(job.id), format!("contacts-{}.csv", job.id)).await
}

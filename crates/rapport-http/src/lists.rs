//! `/api/v1/stages` and `/api/v1/lead-statuses`: the workspace's ordered, configurable lists.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{BoundedText, Permission, Slug};
use rapport_store::{ListEntry, ListEntryUpdate, ListKind, NewListEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stages, create_stage))
        .routes(routes!(update_stage, delete_stage))
        .routes(routes!(list_statuses, create_status))
        .routes(routes!(update_status, delete_status))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListEntryBody {
    pub key: String,
    pub label: String,
    /// 0-based order in the list; stages compare by it.
    pub position: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntriesBody {
    /// In list order.
    pub items: Vec<ListEntryBody>,
}

impl From<ListEntry> for ListEntryBody {
    fn from(entry: ListEntry) -> ListEntryBody {
        ListEntryBody { key: entry.key, label: entry.label, position: entry.position }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEntryInput {
    pub key: String,
    pub label: String,
    /// Where to insert (0-based); appended when absent.
    #[serde(default)]
    pub position: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEntryPatchInput {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub position: Option<i64>,
}

async fn list(state: AppState, caller: Caller, list: ListKind) -> ApiResult<Json<EntriesBody>> {
    caller.require(Permission::Read)?;
    let entries = state.store.list_entries(caller.workspace, list).await?;
    Ok(Json(EntriesBody { items: entries.into_iter().map(ListEntryBody::from).collect() }))
}

async fn create(
    state: AppState,
    caller: Caller,
    list: ListKind,
    input: ListEntryInput,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let key = check.check("key", Slug::parse(&input.key));
    let label = check.check("label", BoundedText::parse(&input.label, 100));
    if input.position.is_some_and(|position| position < 0) {
        check.error("position", "must not be negative");
    }
    check.finish(())?;
    let (Some(key), Some(label)) = (key, label) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let entry =
        state.store.create_entry(caller.workspace, list, NewListEntry { key, label, position: input.position }).await?;
    Ok((StatusCode::CREATED, Json(ListEntryBody::from(entry))))
}

async fn update(
    state: AppState,
    caller: Caller,
    list: ListKind,
    key: String,
    input: ListEntryPatchInput,
) -> ApiResult<Json<ListEntryBody>> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let label = input.label.and_then(|raw| check.check("label", BoundedText::parse(&raw, 100)));
    if input.position.is_some_and(|position| position < 0) {
        check.error("position", "must not be negative");
    }
    check.finish(())?;
    let update = ListEntryUpdate { label, position: input.position };
    Ok(Json(state.store.update_entry(caller.workspace, list, &key, update).await?.into()))
}

async fn delete(state: AppState, caller: Caller, list: ListKind, key: String) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageSchema)?;
    state.store.delete_entry(caller.workspace, list, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The lifecycle stages in order (Raw lead → MQL → SAL → SQL → Customer by default).
#[utoipa::path(get, path = "/api/v1/stages", tag = "schema", responses((status = 200, body = EntriesBody)))]
async fn list_stages(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<EntriesBody>> {
    list(state, caller, ListKind::Stages).await
}

#[utoipa::path(post, path = "/api/v1/stages", tag = "schema", request_body = ListEntryInput,
    responses((status = 201, body = ListEntryBody), (status = 409, description = "stage_exists")))]
async fn create_stage(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ListEntryInput>,
) -> ApiResult<impl IntoResponse> {
    create(state, caller, ListKind::Stages, input).await
}

#[utoipa::path(patch, path = "/api/v1/stages/{key}", tag = "schema", params(("key" = String, Path)),
    request_body = ListEntryPatchInput, responses((status = 200, body = ListEntryBody), (status = 404)))]
async fn update_stage(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(input): ApiJson<ListEntryPatchInput>,
) -> ApiResult<Json<ListEntryBody>> {
    update(state, caller, ListKind::Stages, key, input).await
}

/// Deletes a stage no contact is in.
#[utoipa::path(delete, path = "/api/v1/stages/{key}", tag = "schema", params(("key" = String, Path)),
    responses((status = 204), (status = 409, description = "stage_in_use")))]
async fn delete_stage(State(state): State<AppState>, caller: Caller, Path(key): Path<String>) -> ApiResult<StatusCode> {
    delete(state, caller, ListKind::Stages, key).await
}

/// The lead statuses in order.
#[utoipa::path(get, path = "/api/v1/lead-statuses", tag = "schema", responses((status = 200, body = EntriesBody)))]
async fn list_statuses(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<EntriesBody>> {
    list(state, caller, ListKind::LeadStatuses).await
}

#[utoipa::path(post, path = "/api/v1/lead-statuses", tag = "schema", request_body = ListEntryInput,
    responses((status = 201, body = ListEntryBody), (status = 409, description = "status_exists")))]
async fn create_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ListEntryInput>,
) -> ApiResult<impl IntoResponse> {
    create(state, caller, ListKind::LeadStatuses, input).await
}

#[utoipa::path(patch, path = "/api/v1/lead-statuses/{key}", tag = "schema", params(("key" = String, Path)),
    request_body = ListEntryPatchInput, responses((status = 200, body = ListEntryBody), (status = 404)))]
async fn update_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    ApiJson(input): ApiJson<ListEntryPatchInput>,
) -> ApiResult<Json<ListEntryBody>> {
    update(state, caller, ListKind::LeadStatuses, key, input).await
}

#[utoipa::path(delete, path = "/api/v1/lead-statuses/{key}", tag = "schema", params(("key" = String, Path)),
    responses((status = 204), (status = 409, description = "status_in_use")))]
async fn delete_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    delete(state, caller, ListKind::LeadStatuses, key).await
}

//! `/api/v1/note-templates`: reusable note texts, optionally offered for one lead status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{BoundedText, NoteTemplateId, Permission, Slug};
use rapport_store::{NoteTemplate, NoteTemplateInput};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, path_id};
use crate::state::AppState;
use crate::wire::{ListBody, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_templates, create_template)).routes(routes!(
        get_template,
        update_template,
        delete_template
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteTemplateBody {
    pub id: String,
    pub name: String,
    /// The lead status this template is offered for; `null` for all.
    pub status: Option<String>,
    pub body: String,
    pub created_at: String,
}

impl From<NoteTemplate> for NoteTemplateBody {
    fn from(template: NoteTemplate) -> NoteTemplateBody {
        NoteTemplateBody {
            id: template.id.to_string(),
            name: template.name,
            status: template.status,
            body: template.body,
            created_at: time(template.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    pub body: String,
}

fn parse(input: TemplateInput) -> ApiResult<NoteTemplateInput> {
    let mut check = Validator::default();
    let name = check.check("name", BoundedText::parse(&input.name, 100));
    let status = input.status.and_then(|raw| check.check("status", Slug::parse(&raw)));
    let body = check.check("body", BoundedText::parse_multiline(&input.body, 10_000));
    check.finish(())?;
    match (name, body) {
        (Some(name), Some(body)) => Ok(NoteTemplateInput { name, status, body }),
        _ => Err(ApiError::field("body", "is invalid")),
    }
}

#[utoipa::path(get, path = "/api/v1/note-templates", tag = "schema",
    responses((status = 200, body = ListBody<NoteTemplateBody>)))]
async fn list_templates(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ListBody<NoteTemplateBody>>> {
    caller.require(Permission::Read)?;
    let templates = state.store.list_note_templates(caller.workspace).await?;
    Ok(Json(ListBody { items: templates.into_iter().map(NoteTemplateBody::from).collect(), next_cursor: None }))
}

#[utoipa::path(post, path = "/api/v1/note-templates", tag = "schema", request_body = TemplateInput,
    responses((status = 201, body = NoteTemplateBody), (status = 400, description = "unknown_status")))]
async fn create_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<TemplateInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let template = state.store.create_note_template(caller.workspace, parse(input)?).await?;
    Ok((StatusCode::CREATED, Json(NoteTemplateBody::from(template))))
}

#[utoipa::path(get, path = "/api/v1/note-templates/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 200, body = NoteTemplateBody), (status = 404)))]
async fn get_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<NoteTemplateBody>> {
    caller.require(Permission::Read)?;
    let id: NoteTemplateId = path_id(&id, "note template")?;
    Ok(Json(state.store.get_note_template(caller.workspace, id).await?.into()))
}

/// Replaces a template's name, status and body.
#[utoipa::path(put, path = "/api/v1/note-templates/{id}", tag = "schema", params(("id" = String, Path)),
    request_body = TemplateInput, responses((status = 200, body = NoteTemplateBody), (status = 404)))]
async fn update_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TemplateInput>,
) -> ApiResult<Json<NoteTemplateBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: NoteTemplateId = path_id(&id, "note template")?;
    Ok(Json(state.store.update_note_template(caller.workspace, id, parse(input)?).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/note-templates/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageSchema)?;
    let id: NoteTemplateId = path_id(&id, "note template")?;
    state.store.delete_note_template(caller.workspace, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

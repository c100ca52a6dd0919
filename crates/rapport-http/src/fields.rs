//! `/api/v1/fields`: custom field definitions for contacts and companies.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{BoundedText, FieldDefinition, FieldEntity, FieldId, FieldType, MergeRule, Permission, Slug};
use rapport_store::{FieldUpdate, NewField};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, ApiQuery, path_id};
use crate::state::AppState;
use crate::wire::{ListBody, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_fields, create_field)).routes(routes!(
        get_field,
        update_field,
        delete_field
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldBody {
    pub id: String,
    /// `contact` or `company`.
    pub entity: String,
    pub key: String,
    pub label: String,
    /// text, long_text, number, boolean, date, datetime, single_select, multi_select, email, phone or url.
    #[serde(rename = "type")]
    pub field_type: String,
    pub options: Vec<String>,
    /// Which value survives when two contacts merge: `latest` (the most recently updated contact's) or `oldest`
    /// (the earlier created contact's, e.g. for the original lead source). Empty values never win.
    pub merge_rule: String,
    pub created_at: String,
}

impl From<FieldDefinition> for FieldBody {
    fn from(field: FieldDefinition) -> FieldBody {
        FieldBody {
            id: field.id.to_string(),
            entity: field.entity.as_str().to_owned(),
            key: field.key.into_string(),
            label: field.label,
            field_type: field.field_type.as_str().to_owned(),
            options: field.options,
            merge_rule: field.merge_rule.as_str().to_owned(),
            created_at: time(field.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    /// Lower-case letters, digits and `_`, starting with a letter; used as `fields.KEY`.
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: String,
    /// `contact` (default) or `company`.
    #[serde(default)]
    pub entity: Option<String>,
    /// The choices of a single or multi select.
    #[serde(default)]
    pub options: Option<Vec<String>>,
    /// `latest` (default) or `oldest`: which contact's value a merge keeps. Contact fields only.
    #[serde(default)]
    pub merge_rule: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldPatchInput {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub options: Option<Vec<String>>,
    #[serde(default)]
    pub merge_rule: Option<String>,
}

/// A merge rule applies to contact fields; companies are not merged.
fn parse_merge_rule(check: &mut Validator, raw: Option<String>, entity: Option<FieldEntity>) -> Option<MergeRule> {
    let rule = check.check("merge_rule", MergeRule::parse(raw.as_deref()?).ok_or("must be latest or oldest"))?;
    if rule == MergeRule::Oldest && entity == Some(FieldEntity::Company) {
        check.error("merge_rule", "only contact fields have a merge rule (companies are not merged)");
    }
    Some(rule)
}

fn parse_options(check: &mut Validator, raw: Vec<String>) -> Vec<String> {
    let mut options: Vec<String> = Vec::with_capacity(raw.len());
    for (index, option) in raw.iter().enumerate() {
        if let Some(option) = check.check(&format!("options[{index}]"), BoundedText::parse(option, 200)) {
            if options.iter().any(|existing| existing == option.as_str()) {
                check.error(&format!("options[{index}]"), "repeats an earlier option");
            }
            options.push(option.into_string());
        }
    }
    if options.len() > 500 {
        check.error("options", "may hold at most 500 choices");
    }
    options
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FieldListParams {
    /// Only fields of `contact` or `company`.
    pub entity: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/fields", tag = "schema", params(FieldListParams),
    responses((status = 200, body = ListBody<FieldBody>)))]
async fn list_fields(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<FieldListParams>,
) -> ApiResult<Json<ListBody<FieldBody>>> {
    caller.require(Permission::Read)?;
    let mut check = Validator::default();
    let entity = params
        .entity
        .and_then(|raw| check.check("entity", FieldEntity::parse(&raw).ok_or("must be contact or company")));
    check.finish(())?;
    let fields = state.store.list_fields(caller.workspace, entity).await?;
    Ok(Json(ListBody { items: fields.into_iter().map(FieldBody::from).collect(), next_cursor: None }))
}

/// Defines a custom field, e.g. `{"key": "budget", "label": "预算", "type": "number"}`.
#[utoipa::path(post, path = "/api/v1/fields", tag = "schema", request_body = FieldInput,
    responses((status = 201, body = FieldBody), (status = 409, description = "field_exists")))]
async fn create_field(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<FieldInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let key = check.check("key", Slug::parse(&input.key));
    let label = check.check("label", BoundedText::parse(&input.label, 100));
    let field_type = check.check(
        "type",
        FieldType::parse(&input.field_type).ok_or(
            "must be one of text, long_text, number, boolean, date, datetime, single_select, multi_select, email, \
             phone, url",
        ),
    );
    let entity = match input.entity {
        None => Some(FieldEntity::Contact),
        Some(raw) => check.check("entity", FieldEntity::parse(&raw).ok_or("must be contact or company")),
    };
    let options = parse_options(&mut check, input.options.unwrap_or_default());
    let merge_rule = parse_merge_rule(&mut check, input.merge_rule, entity).unwrap_or_default();
    if let Some(field_type) = field_type {
        if field_type.has_options() && options.is_empty() {
            check.error("options", "a select field needs at least one option");
        }
        if !field_type.has_options() && !options.is_empty() {
            check.error("options", "only select fields have options");
        }
    }
    check.finish(())?;
    // Every `None` above recorded an error, so `finish` has returned already; this is only the type-level proof.
    let (Some(key), Some(label), Some(field_type), Some(entity)) = (key, label, field_type, entity) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let field = state
        .store
        .create_field(caller.workspace, NewField { entity, key, label, field_type, options, merge_rule })
        .await?;
    Ok((StatusCode::CREATED, Json(FieldBody::from(field))))
}

#[utoipa::path(get, path = "/api/v1/fields/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 200, body = FieldBody), (status = 404)))]
async fn get_field(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FieldBody>> {
    caller.require(Permission::Read)?;
    let id: FieldId = path_id(&id, "field")?;
    Ok(Json(state.store.get_field(caller.workspace, id).await?.into()))
}

/// Changes a field's label, options or merge rule. The key and type are fixed once created.
#[utoipa::path(patch, path = "/api/v1/fields/{id}", tag = "schema", params(("id" = String, Path)),
    request_body = FieldPatchInput, responses((status = 200, body = FieldBody), (status = 404)))]
async fn update_field(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<FieldPatchInput>,
) -> ApiResult<Json<FieldBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: FieldId = path_id(&id, "field")?;
    let mut check = Validator::default();
    let label = input.label.and_then(|raw| check.check("label", BoundedText::parse(&raw, 100)));
    let options = input.options.map(|raw| parse_options(&mut check, raw));
    let current = state.store.get_field(caller.workspace, id).await?;
    let merge_rule = parse_merge_rule(&mut check, input.merge_rule, Some(current.entity));
    if let Some(options) = &options {
        if !current.field_type.has_options() && !options.is_empty() {
            check.error("options", "only select fields have options");
        }
        if current.field_type.has_options() && options.is_empty() {
            check.error("options", "a select field needs at least one option");
        }
    }
    check.finish(())?;
    Ok(Json(state.store.update_field(caller.workspace, id, FieldUpdate { label, options, merge_rule }).await?.into()))
}

/// Deletes the field and its values on every record.
#[utoipa::path(delete, path = "/api/v1/fields/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_field(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageSchema)?;
    let id: FieldId = path_id(&id, "field")?;
    state.store.delete_field(caller.workspace, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

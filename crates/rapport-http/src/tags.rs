//! `/api/v1/tags`: the tag library, a tree of at most four levels.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{Patch, Permission, TagId, TagKind, TagPath};
use rapport_store::{NewTag, Tag, TagUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiResult, Validator};
use crate::extract::{ApiJson, Nullable, path_id};
use crate::state::AppState;
use crate::wire::{WireId, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tags, create_tag)).routes(routes!(get_tag, update_tag, delete_tag))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagBody {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// The full path, levels separated by `/`.
    pub path: String,
    /// `manual` or `dynamic`.
    pub kind: String,
    /// Contacts carrying this very tag.
    pub contact_count: u64,
    pub created_at: String,
    #[schema(no_recursion)]
    pub children: Vec<TagBody>,
}

impl From<Tag> for TagBody {
    fn from(tag: Tag) -> TagBody {
        TagBody {
            id: tag.id.to_string(),
            parent_id: tag.parent_id.map(|id| id.to_string()),
            name: tag.name,
            path: tag.path,
            kind: tag.kind.as_str().to_owned(),
            contact_count: tag.contact_count,
            created_at: time(tag.created_at),
            children: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagTreeBody {
    /// Top-level tags with their `children`, ordered by path.
    pub items: Vec<TagBody>,
}

/// Builds the nested tree from the flat list, keeping the list's path order among siblings.
fn build_tree(tags: Vec<Tag>) -> Vec<TagBody> {
    let mut by_parent: HashMap<Option<String>, Vec<TagBody>> = HashMap::new();
    for tag in tags {
        let body = TagBody::from(tag);
        by_parent.entry(body.parent_id.clone()).or_default().push(body);
    }
    fn attach(node: &mut TagBody, by_parent: &mut HashMap<Option<String>, Vec<TagBody>>) {
        if let Some(mut children) = by_parent.remove(&Some(node.id.clone())) {
            for child in &mut children {
                attach(child, by_parent);
            }
            node.children = children;
        }
    }
    let mut roots = by_parent.remove(&None).unwrap_or_default();
    for root in &mut roots {
        attach(root, &mut by_parent);
    }
    roots
}

/// The whole tag library as a tree, with per-tag contact counts.
#[utoipa::path(get, path = "/api/v1/tags", tag = "schema", responses((status = 200, body = TagTreeBody)))]
async fn list_tags(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TagTreeBody>> {
    caller.require(Permission::Read)?;
    let tags = state.store.list_tags(caller.workspace).await?;
    Ok(Json(TagTreeBody { items: build_tree(tags) }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagInput {
    /// e.g. `行业/制造业`; missing groups above it are created.
    pub path: String,
    /// `manual` (default) or `dynamic`.
    #[serde(default)]
    pub kind: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/tags", tag = "schema", request_body = TagInput,
    responses((status = 201, body = TagBody), (status = 409, description = "tag_exists")))]
async fn create_tag(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<TagInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let path = check.check("path", TagPath::parse(&input.path));
    let kind = match input.kind {
        None => Some(TagKind::Manual),
        Some(raw) => check.check("kind", TagKind::parse(&raw).ok_or("must be manual or dynamic")),
    };
    check.finish(())?;
    let (Some(path), Some(kind)) = (path, kind) else {
        return Err(crate::error::ApiError::field("body", "is invalid"));
    };
    let tag = state.store.create_tag(caller.workspace, NewTag { path, kind }).await?;
    Ok((StatusCode::CREATED, Json(TagBody::from(tag))))
}

#[utoipa::path(get, path = "/api/v1/tags/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 200, body = TagBody), (status = 404)))]
async fn get_tag(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<TagBody>> {
    caller.require(Permission::Read)?;
    let id: TagId = path_id(&id, "tag")?;
    Ok(Json(state.store.get_tag(caller.workspace, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagPatchInput {
    /// A new name for this level.
    #[serde(default)]
    pub name: Option<String>,
    /// Move under another tag; `null` moves to the top level. Contacts keep the tag.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub parent_id: Nullable<WireId>,
}

/// Renames a tag or moves it (with everything under it) to another group.
#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "schema", params(("id" = String, Path)),
    request_body = TagPatchInput, responses((status = 200, body = TagBody), (status = 409, description = "tag_exists")))]
async fn update_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TagPatchInput>,
) -> ApiResult<Json<TagBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: TagId = path_id(&id, "tag")?;
    let mut check = Validator::default();
    let name = input.name.and_then(|raw| check.check("name", TagPath::parse_segment(&raw)));
    let parent_id: Patch<TagId> =
        check.check("parent_id", input.parent_id.parse(|raw| raw.parse::<TagId>())).unwrap_or_default();
    check.finish(())?;
    Ok(Json(state.store.update_tag(caller.workspace, id, TagUpdate { name, parent_id }).await?.into()))
}

/// Deletes a tag that has no sub-tags and that no contact carries.
#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 204), (status = 409, description = "tag_in_use or tag_has_children")))]
async fn delete_tag(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageSchema)?;
    let id: TagId = path_id(&id, "tag")?;
    state.store.delete_tag(caller.workspace, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

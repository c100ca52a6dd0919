//! `/api/v1/tags`: the tag library, a tree of at most four levels. A dynamic tag may carry a filter (its
//! definition, stored as a segment with the tag's id): the audience engine then adds and removes it as contacts
//! start and stop matching.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{BoundedText, Patch, Permission, TagId, TagKind, TagPath, WorkspaceId};
use rapport_store::{NewSegment, NewTag, Segment, SegmentUpdate, StoreError, Tag, TagUpdate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, ApiQuery, Nullable, path_id};
use crate::filters::{FilterForms, ParsedFilter, check_filter, check_tag_rule, stored_filter_json};
use crate::state::AppState;
use crate::wire::{WireId, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tags, create_tag))
        .routes(routes!(get_tag, update_tag, delete_tag))
        .routes(routes!(tag_stats))
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
    /// A dynamic tag's rule in its canonical text form: contacts matching it carry the tag. Absent on manual tags
    /// and on dynamic tags without a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The same rule in its JSON form.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter_json: Option<Value>,
    pub created_at: String,
    #[schema(no_recursion)]
    pub children: Vec<TagBody>,
}

/// Dynamic tags' definitions by tag.
type Definitions = HashMap<TagId, Segment>;

async fn definitions(state: &AppState, workspace: WorkspaceId) -> ApiResult<Definitions> {
    let segments = state.store.list_segments(workspace).await?;
    Ok(segments.into_iter().filter_map(|segment| segment.tag_id.map(|tag| (tag, segment))).collect())
}

impl TagBody {
    fn new(tag: Tag, definitions: &Definitions) -> TagBody {
        let filter = definitions.get(&tag.id).map(|definition| definition.filter.clone());
        TagBody {
            id: tag.id.to_string(),
            parent_id: tag.parent_id.map(|id| id.to_string()),
            name: tag.name,
            path: tag.path,
            kind: tag.kind.as_str().to_owned(),
            contact_count: tag.contact_count,
            filter_json: filter.as_deref().map(stored_filter_json),
            filter,
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
fn build_tree(tags: Vec<Tag>, definitions: &Definitions) -> Vec<TagBody> {
    let mut by_parent: HashMap<Option<String>, Vec<TagBody>> = HashMap::new();
    for tag in tags {
        let body = TagBody::new(tag, definitions);
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
    let definitions = definitions(&state, caller.workspace).await?;
    Ok(Json(TagTreeBody { items: build_tree(tags, &definitions) }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagInput {
    /// e.g. `行业/制造业`; missing groups above it are created.
    pub path: String,
    /// `manual` (default) or `dynamic`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A dynamic tag's rule in the text form, e.g. `stage >= sql and fields.budget >= 50000`.
    #[serde(default)]
    pub filter: Option<String>,
    /// The rule in the JSON form (instead of `filter`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_json: Option<Value>,
}

/// Creates a tag. A dynamic tag may come with its rule (`filter` or `filter_json`); contacts then get and lose it
/// as they start and stop matching.
#[utoipa::path(post, path = "/api/v1/tags", tag = "schema", request_body = TagInput,
    responses((status = 201, body = TagBody),
        (status = 400, description = "validation_failed, filter_parse_error, invalid_filter"),
        (status = 409, description = "tag_exists")))]
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
    let has_filter = input.filter.is_some() || input.filter_json.is_some();
    if has_filter && kind == Some(TagKind::Manual) {
        check.error("filter", "only a dynamic tag has a filter (\"kind\": \"dynamic\")");
    }
    check.finish(())?;
    let (Some(path), Some(kind)) = (path, kind) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let filter = FilterForms { text: input.filter, json: input.filter_json }.parse()?;
    if let Some(filter) = &filter {
        check_filter(&state.audience, caller.workspace, filter, None).await?;
    }
    let tag = state.store.create_tag(caller.workspace, NewTag { path, kind }).await?;
    let mut definitions = Definitions::new();
    if let Some(filter) = filter {
        match define(&state, caller.workspace, &tag, filter).await {
            Ok(segment) => {
                definitions.insert(tag.id, segment);
            }
            Err(error) => {
                // The tag and its rule are written by two store calls: take the tag back so that a failed request
                // leaves nothing behind.
                if let Err(undo) = state.store.delete_tag(caller.workspace, tag.id).await {
                    tracing::error!(error = %undo, tag = %tag.id, "removing a dynamic tag whose rule was refused");
                }
                return Err(error.into());
            }
        }
    }
    Ok((StatusCode::CREATED, Json(TagBody::new(tag, &definitions))))
}

/// Stores a dynamic tag's rule as a segment named by the tag's path.
async fn define(
    state: &AppState,
    workspace: WorkspaceId,
    tag: &Tag,
    filter: ParsedFilter,
) -> Result<Segment, StoreError> {
    let name = BoundedText::parse(&tag.path, DEFINITION_NAME_MAX)
        .map_err(|error| StoreError::invalid("invalid_tag", "path", error.to_string()))?;
    let new = NewSegment { name, description: String::new(), filter: filter.canonical, tag_id: Some(tag.id) };
    state.store.create_segment(workspace, new).await
}

/// A tag path has at most four levels of 64 characters.
const DEFINITION_NAME_MAX: usize = 4 * 64 + 3;

#[utoipa::path(get, path = "/api/v1/tags/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 200, body = TagBody), (status = 404)))]
async fn get_tag(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<TagBody>> {
    caller.require(Permission::Read)?;
    let id: TagId = path_id(&id, "tag")?;
    let tag = state.store.get_tag(caller.workspace, id).await?;
    let definitions = definitions(&state, caller.workspace).await?;
    Ok(Json(TagBody::new(tag, &definitions)))
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
    /// A dynamic tag's new rule in the text form; its members are worked out again.
    #[serde(default)]
    pub filter: Option<String>,
    /// The new rule in the JSON form (instead of `filter`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_json: Option<Value>,
}

/// Renames a tag or moves it (with everything under it) to another group; sets or changes a dynamic tag's rule.
#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "schema", params(("id" = String, Path)),
    request_body = TagPatchInput, responses((status = 200, body = TagBody),
        (status = 400, description = "not_dynamic_tag, filter_parse_error, invalid_filter, tag_too_deep, tag_cycle"),
        (status = 409, description = "tag_exists")))]
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
    let filter = FilterForms { text: input.filter, json: input.filter_json }.parse()?;
    let mut tag = state.store.get_tag(caller.workspace, id).await?;
    let definitions = definitions(&state, caller.workspace).await?;
    let existing = definitions.get(&id).map(|definition| definition.id);
    if let Some(filter) = &filter {
        if tag.kind != TagKind::Dynamic {
            return Err(ApiError::bad_request("not_dynamic_tag", "filter: only a dynamic tag has a filter"));
        }
        check_tag_rule(&state.audience, caller.workspace, filter, id).await?;
    }
    // The move or rename goes first: it is the step the store may still refuse (tag_exists, tag_too_deep, …),
    // and nothing else has been written then.
    let moved = name.is_some() || !matches!(parent_id, Patch::Absent);
    if moved {
        tag = state.store.update_tag(caller.workspace, id, TagUpdate { name, parent_id }).await?;
    }
    if let Some(filter) = filter {
        match existing {
            Some(segment) => {
                let update = SegmentUpdate { filter: Some(filter.canonical), ..SegmentUpdate::default() };
                state.store.update_segment(caller.workspace, segment, update).await?;
            }
            None => {
                define(&state, caller.workspace, &tag, filter).await?;
            }
        }
    }
    if moved {
        rename_definitions(&state, caller.workspace).await;
    }
    let definitions = self::definitions(&state, caller.workspace).await?;
    Ok(Json(TagBody::new(tag, &definitions)))
}

/// Keeps each dynamic tag's definition named by its tag's path after tags were renamed or moved, so that timeline
/// records of membership changes name the tag as it is called now. The tag change itself has been written; a
/// failure here is logged, not answered.
async fn rename_definitions(state: &AppState, workspace: WorkspaceId) {
    let renamed = async {
        let tags: HashMap<TagId, String> =
            state.store.list_tags(workspace).await?.into_iter().map(|tag| (tag.id, tag.path)).collect();
        for (tag, definition) in definitions(state, workspace).await? {
            let Some(path) = tags.get(&tag) else { continue };
            if *path == definition.name {
                continue;
            }
            let Ok(name) = BoundedText::parse(path, DEFINITION_NAME_MAX) else { continue };
            let update = SegmentUpdate { name: Some(name), ..SegmentUpdate::default() };
            state.store.update_segment(workspace, definition.id, update).await?;
        }
        Ok::<(), ApiError>(())
    };
    if let Err(error) = renamed.await {
        tracing::warn!(code = error.code, message = %error.message, "renaming dynamic tag definitions");
    }
}

/// Deletes a tag that has no sub-tags and that no contact carries, with a dynamic tag's rule.
#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "schema", params(("id" = String, Path)),
    responses((status = 204), (status = 409, description = "tag_in_use or tag_has_children")))]
async fn delete_tag(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageSchema)?;
    let id: TagId = path_id(&id, "tag")?;
    state.store.delete_tag(caller.workspace, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TagStatsParams {
    /// The period's length in days, ending today (UTC): 1 to 366, default 30.
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagStatsBody {
    pub tag_id: String,
    pub path: String,
    /// Contacts carrying the tag now.
    pub contact_count: u64,
    /// Contacts in the workspace now.
    pub workspace_contacts: u64,
    pub period: TagPeriodBody,
    /// The period of the same length just before.
    pub previous: TagPeriodBody,
    /// `period.tagging_rate − previous.tagging_rate`, in percentage points.
    pub tagging_rate_change: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagPeriodBody {
    /// First and last day, `YYYY-MM-DD` (UTC).
    pub from: String,
    pub to: String,
    pub added: u64,
    pub removed: u64,
    /// Additions as a percentage of the workspace's contacts.
    pub tagging_rate: f64,
    /// Every day of the period, with zeros.
    pub days: Vec<TagDayBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagDayBody {
    pub date: String,
    pub added: u64,
    pub removed: u64,
}

/// How a tag is used over time: additions and removals per day, the tagging rate, and its change against the
/// previous period of the same length.
#[utoipa::path(get, path = "/api/v1/tags/{id}/stats", tag = "tags", params(("id" = String, Path), TagStatsParams),
    responses((status = 200, body = TagStatsBody), (status = 404, description = "not_found")))]
async fn tag_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<TagStatsParams>,
) -> ApiResult<Json<TagStatsBody>> {
    caller.require(Permission::Read)?;
    let id: TagId = path_id(&id, "tag")?;
    let days = params.days.unwrap_or(30);
    if !(1..=366).contains(&days) {
        return Err(ApiError::field("days", "must be between 1 and 366"));
    }
    let tag = state.store.get_tag(caller.workspace, id).await?;
    let contacts = state.store.count_contacts(caller.workspace).await?;
    let today = chrono::Utc::now().date_naive();
    let length = chrono::Days::new(u64::from(days));
    let from = today.checked_sub_days(length).and_then(|day| day.succ_opt()).unwrap_or(today);
    let previous_to = from.pred_opt().unwrap_or(from);
    let previous_from = from.checked_sub_days(length).unwrap_or(from);
    let activity = state.store.tag_activity(caller.workspace, id, previous_from, today).await?;
    let period = |start: chrono::NaiveDate, end: chrono::NaiveDate| {
        let mut body = TagPeriodBody {
            from: start.to_string(),
            to: end.to_string(),
            added: 0,
            removed: 0,
            tagging_rate: 0.0,
            days: Vec::new(),
        };
        let mut day = start;
        while day <= end {
            let found = activity.iter().find(|entry| entry.day == day);
            let (added, removed) = found.map_or((0, 0), |entry| (entry.added, entry.removed));
            body.added += added;
            body.removed += removed;
            body.days.push(TagDayBody { date: day.to_string(), added, removed });
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        body.tagging_rate = if contacts == 0 { 0.0 } else { body.added as f64 * 100.0 / contacts as f64 };
        body
    };
    let current = period(from, today);
    let previous = period(previous_from, previous_to);
    Ok(Json(TagStatsBody {
        tag_id: tag.id.to_string(),
        path: tag.path,
        contact_count: tag.contact_count,
        workspace_contacts: contacts,
        tagging_rate_change: current.tagging_rate - previous.tagging_rate,
        period: current,
        previous,
    }))
}

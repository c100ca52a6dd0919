//! `/api/v1/segments`: saved filters (人群) whose members the audience engine keeps current, their members, and
//! previews of unsaved filters. A dynamic tag's definition is a segment too, but it is reached through its tag
//! (`/api/v1/tags`), never here.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::filter::{self, Condition};
use rapport_domain::{BoundedText, ContactId, Permission, SegmentId, WorkspaceId};
use rapport_engine::audience::{Audience, SegmentStatus};
use rapport_store::{NewSegment, PageRequest, Segment, SegmentUpdate, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::contacts::{ContactBody, follow_merge};
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, ApiQuery, path_id};
use crate::filters::{FilterForms, audience_error, catch_up, check_filter, stored_filter_json};
use crate::state::AppState;
use crate::wire::{ListBody, PageParams, decode_cursor, encode_cursor, page_limit, time};

const NAME_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 2_000;
const PREVIEW_DEFAULT: usize = 20;
const PREVIEW_MAX: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(preview))
        .routes(routes!(get_segment, update_segment, delete_segment))
        .routes(routes!(segment_count))
        .routes(routes!(segment_contacts))
        .routes(routes!(contact_segments))
}

/// A segment: its filter in both forms, where its build stands and how many contacts it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentBody {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The filter's canonical text form (see docs/filters.md).
    pub filter: String,
    /// The same filter in its JSON form.
    #[schema(value_type = Object)]
    pub filter_json: Value,
    /// `building` (members are being worked out), `ready` (members follow changes within moments) or `invalid`
    /// (the filter names something that was deleted since; see `problem`).
    pub status: String,
    /// While `building`: membership changes written so far of those needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressBody>,
    /// While `invalid`: what is wrong with the filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub member_count: u64,
    /// Goes up by one whenever the filter changes.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ProgressBody {
    pub done: u64,
    pub total: u64,
}

/// A segment's state as the API reports it: the engine's view when it has the stored version, else "building"
/// with the stored count (a segment just created or changed may not have reached the engine yet).
pub struct SegmentState {
    pub status: &'static str,
    pub progress: Option<ProgressBody>,
    pub problem: Option<String>,
    pub count: u64,
}

pub async fn segment_state(audience: &Audience, segment: &Segment) -> SegmentState {
    let building = |done, total, count| SegmentState {
        status: "building",
        progress: Some(ProgressBody { done, total }),
        problem: None,
        count,
    };
    match audience.segment(segment.workspace_id, segment.id).await {
        Some(view) if view.version == segment.version => match view.status {
            SegmentStatus::Ready => SegmentState { status: "ready", progress: None, problem: None, count: view.count },
            SegmentStatus::Building { done, total } => building(done, total, view.count),
            SegmentStatus::Invalid { message } => {
                SegmentState { status: "invalid", progress: None, problem: Some(message), count: view.count }
            }
        },
        _ => building(0, 0, segment.member_count),
    }
}

impl SegmentBody {
    async fn new(audience: &Audience, segment: Segment) -> SegmentBody {
        let state = segment_state(audience, &segment).await;
        SegmentBody {
            id: segment.id.to_string(),
            name: segment.name,
            description: segment.description,
            filter_json: stored_filter_json(&segment.filter),
            filter: segment.filter,
            status: state.status.to_owned(),
            progress: state.progress,
            problem: state.problem,
            member_count: state.count,
            version: segment.version,
            created_at: time(segment.created_at),
            updated_at: time(segment.updated_at),
        }
    }
}

/// A plain segment by id: dynamic tags' definitions are not found here.
async fn plain_segment(state: &AppState, workspace: WorkspaceId, raw_id: &str) -> ApiResult<Segment> {
    let id: SegmentId = path_id(raw_id, "segment")?;
    let segment = state.store.get_segment(workspace, id).await?;
    if segment.tag_id.is_some() {
        return Err(ApiError::not_found("segment"));
    }
    Ok(segment)
}

fn segment_name(check: &mut Validator, raw: &str) -> Option<BoundedText> {
    check.check("name", BoundedText::parse(raw, NAME_MAX))
}

fn segment_description(check: &mut Validator, raw: &str) -> Option<String> {
    if raw.trim().is_empty() {
        return Some(String::new());
    }
    check.check("description", BoundedText::parse_multiline(raw, DESCRIPTION_MAX)).map(BoundedText::into_string)
}

/// Every segment in creation order, on one page (dynamic tags' definitions are listed with their tags).
#[utoipa::path(get, path = "/api/v1/segments", tag = "segments", responses((status = 200, body = ListBody<SegmentBody>)))]
async fn list_segments(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ListBody<SegmentBody>>> {
    caller.require(Permission::Read)?;
    let segments = state.store.list_segments(caller.workspace).await?;
    let mut items = Vec::with_capacity(segments.len());
    for segment in segments.into_iter().filter(|segment| segment.tag_id.is_none()) {
        items.push(SegmentBody::new(&state.audience, segment).await);
    }
    Ok(Json(ListBody { items, next_cursor: None }))
}

/// A new segment. The filter comes as text (`filter`) or as JSON (`filter_json`), exactly one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The text form, e.g. `stage >= mql and tag("行业/制造业")`.
    #[serde(default)]
    pub filter: Option<String>,
    /// The JSON form, e.g. `{"stage": {"op": ">=", "value": "mql"}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_json: Option<Value>,
}

/// Saves a filter as a segment; the engine then works out its members (`status` `building`, then `ready`) and
/// keeps them current.
#[utoipa::path(post, path = "/api/v1/segments", tag = "segments", request_body = SegmentInput,
    responses((status = 201, body = SegmentBody),
        (status = 400, description = "validation_failed, filter_parse_error (details.position or details.path), invalid_filter"),
        (status = 409, description = "segment_exists"),
        (status = 503, description = "audience_loading (Retry-After)")))]
async fn create_segment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<SegmentInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let name = segment_name(&mut check, &input.name);
    let description = segment_description(&mut check, input.description.as_deref().unwrap_or_default());
    check.finish(())?;
    let (Some(name), Some(description)) = (name, description) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let filter = FilterForms { text: input.filter, json: input.filter_json }.require()?;
    check_filter(&state.audience, caller.workspace, &filter, None).await?;
    let new = NewSegment { name, description, filter: filter.canonical, tag_id: None };
    let segment = state.store.create_segment(caller.workspace, new).await?;
    Ok((StatusCode::CREATED, Json(SegmentBody::new(&state.audience, segment).await)))
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path)),
    responses((status = 200, body = SegmentBody), (status = 404, description = "not_found")))]
async fn get_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SegmentBody>> {
    caller.require(Permission::Read)?;
    let segment = plain_segment(&state, caller.workspace, &id).await?;
    Ok(Json(SegmentBody::new(&state.audience, segment).await))
}

/// Changes to a segment; absent fields stay as they are. A new filter (as `filter` or `filter_json`) is checked,
/// including that no segment would end up containing itself, and rebuilds the members.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatchInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_json: Option<Value>,
}

#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path)),
    request_body = SegmentPatchInput,
    responses((status = 200, body = SegmentBody),
        (status = 400, description = "validation_failed, filter_parse_error, invalid_filter, segment_cycle"),
        (status = 404, description = "not_found"), (status = 409, description = "segment_exists")))]
async fn update_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SegmentPatchInput>,
) -> ApiResult<Json<SegmentBody>> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let name = input.name.as_deref().and_then(|raw| segment_name(&mut check, raw));
    let description = input.description.as_deref().and_then(|raw| segment_description(&mut check, raw));
    check.finish(())?;
    let filter = FilterForms { text: input.filter, json: input.filter_json }.parse()?;
    let segment = plain_segment(&state, caller.workspace, &id).await?;
    if let Some(filter) = &filter {
        check_filter(&state.audience, caller.workspace, filter, Some(segment.id)).await?;
    }
    let update = SegmentUpdate { name, description, filter: filter.map(|filter| filter.canonical) };
    let segment = state.store.update_segment(caller.workspace, segment.id, update).await?;
    Ok(Json(SegmentBody::new(&state.audience, segment).await))
}

/// Deletes a segment. A segment another segment (or dynamic tag) names with `in_segment` cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = String, Path)),
    responses((status = 204), (status = 404, description = "not_found"), (status = 409, description = "segment_in_use")))]
async fn delete_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageSchema)?;
    let segment = plain_segment(&state, caller.workspace, &id).await?;
    let others = state.store.list_segments(caller.workspace).await?;
    let users: Vec<String> =
        others.iter().filter(|other| names_segment(&other.filter, segment.id)).map(describe_user).collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "segment_in_use",
            format!("the segment {} is used by {}; change their filters first", segment.name, users.join(", ")),
        ));
    }
    state.store.delete_segment(caller.workspace, segment.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a stored filter has an `in_segment` condition naming `id`.
fn names_segment(filter: &str, id: SegmentId) -> bool {
    let Ok(filter) = filter::parse(filter) else { return false };
    filter.conditions().into_iter().any(|condition| match condition {
        Condition::InSegment { segment } => segment.parse::<i64>().is_ok_and(|named| named == id.get()),
        _ => false,
    })
}

fn describe_user(segment: &Segment) -> String {
    match segment.tag_id {
        Some(_) => format!("the dynamic tag {:?}", segment.name),
        None => format!("segment {} ({:?})", segment.id, segment.name),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentCountBody {
    pub count: u64,
    /// `building`, `ready` or `invalid`, as on the segment.
    pub status: String,
}

/// How many contacts the segment holds now.
#[utoipa::path(get, path = "/api/v1/segments/{id}/count", tag = "segments", params(("id" = String, Path)),
    responses((status = 200, body = SegmentCountBody), (status = 404, description = "not_found")))]
async fn segment_count(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SegmentCountBody>> {
    caller.require(Permission::Read)?;
    let segment = plain_segment(&state, caller.workspace, &id).await?;
    let state = segment_state(&state.audience, &segment).await;
    Ok(Json(SegmentCountBody { count: state.count, status: state.status.to_owned() }))
}

/// The segment's members, in ascending id order.
#[utoipa::path(get, path = "/api/v1/segments/{id}/contacts", tag = "segments", params(("id" = String, Path), PageParams),
    responses((status = 200, body = ListBody<ContactBody>), (status = 404, description = "not_found")))]
async fn segment_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<ListBody<ContactBody>>> {
    caller.require(Permission::Read)?;
    let segment = plain_segment(&state, caller.workspace, &id).await?;
    members_page(&state, caller.workspace, segment.id, params.cursor.as_deref(), params.limit).await.map(Json)
}

/// One page of a segment's members by ascending id; the cursor is the last id of the previous page.
pub async fn members_page(
    state: &AppState,
    workspace: WorkspaceId,
    segment: SegmentId,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> ApiResult<ListBody<ContactBody>> {
    let limit = page_limit(limit)?;
    let after = match cursor {
        None => None,
        Some(cursor) => Some(ContactId::new(decode_cursor(cursor, 1)?[0])),
    };
    let page = state.store.segment_contacts(workspace, segment, PageRequest { after, limit }).await?;
    Ok(ListBody {
        items: page.items.into_iter().map(ContactBody::from).collect(),
        next_cursor: page.next.map(|id| encode_cursor(&[id.get()])),
    })
}

/// The members of a plain segment, for `GET /api/v1/contacts?segment=ID`.
pub async fn members_of(
    state: &AppState,
    workspace: WorkspaceId,
    raw_id: &str,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> ApiResult<ListBody<ContactBody>> {
    let segment = plain_segment(state, workspace, raw_id).await?;
    members_page(state, workspace, segment.id, cursor, limit).await
}

/// An unsaved filter to try out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter_json: Option<Value>,
    /// How many matching contacts to return, 1–100 (default 20).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewBody {
    /// How many contacts match now.
    pub count: u64,
    /// The first matching contacts by id.
    pub contacts: Vec<ContactBody>,
}

/// Evaluates a filter over the workspace's contacts without saving it.
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "segments", request_body = PreviewInput,
    responses((status = 200, body = PreviewBody),
        (status = 400, description = "validation_failed, filter_parse_error, invalid_filter"),
        (status = 503, description = "audience_loading (Retry-After)")))]
async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<PreviewInput>,
) -> ApiResult<Json<PreviewBody>> {
    caller.require(Permission::Read)?;
    let limit = input.limit.unwrap_or(PREVIEW_DEFAULT);
    if !(1..=PREVIEW_MAX).contains(&limit) {
        return Err(ApiError::field("limit", format!("must be between 1 and {PREVIEW_MAX}")));
    }
    let filter = FilterForms { text: input.filter, json: input.filter_json }.require()?;
    catch_up(&state.audience).await?;
    let preview = state.audience.preview(caller.workspace, &filter.filter, limit).await.map_err(audience_error)?;
    let mut contacts = Vec::with_capacity(preview.contacts.len());
    for id in preview.contacts {
        match state.store.get_contact(caller.workspace, id).await {
            Ok(contact) => contacts.push(ContactBody::from(contact)),
            // Erased or merged away since the engine last looked.
            Err(StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Json(PreviewBody { count: preview.count, contacts }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactSegmentsBody {
    /// The segments the contact is a member of, by id.
    pub items: Vec<SegmentRefBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentRefBody {
    pub id: String,
    pub name: String,
}

/// The segments a contact is in now (dynamic tags show as the contact's tags).
#[utoipa::path(get, path = "/api/v1/contacts/{id}/segments", tag = "segments", params(("id" = String, Path)),
    responses((status = 200, body = ContactSegmentsBody), (status = 404, description = "not_found")))]
async fn contact_segments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactSegmentsBody>> {
    caller.require(Permission::Read)?;
    let id: ContactId = path_id(&id, "contact")?;
    let member_of = state.store.contact_segments(caller.workspace, id).await;
    let member_of = follow_merge(&state, &caller, id, "/segments", member_of).await?;
    let segments = state.store.list_segments(caller.workspace).await?;
    let items = segments
        .into_iter()
        .filter(|segment| segment.tag_id.is_none() && member_of.contains(&segment.id))
        .map(|segment| SegmentRefBody { id: segment.id.to_string(), name: segment.name })
        .collect();
    Ok(Json(ContactSegmentsBody { items }))
}

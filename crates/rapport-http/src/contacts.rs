//! `/api/v1/contacts`: upsert by identity, find, list, update, erase, batch upsert, tags, notes and the timeline.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{
    BoundedText, Contact, ContactChanges, ContactId, EmailAddress, FieldDefinition, FieldEntity, Identity,
    IdentityKind, NoteTemplateId, Permission, PhoneNumber, Slug, SystemFieldsPatch, TagPath, validate_field_value,
};
use rapport_store::{ContactCursor, MergeReason, PageRequest, StoreError, TimelineCursor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, ApiQuery, Nullable, path_id};
use crate::state::AppState;
use crate::wire::{ListBody, PageParams, WireId, decode_cursor, encode_cursor, micros_to_time, page_limit, time};

pub const MAX_BATCH: usize = 1_000;
const SYSTEM_TEXT_MAX: usize = 200;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, upsert_contact))
        .routes(routes!(upsert_batch))
        .routes(routes!(get_contact, update_contact, delete_contact))
        .routes(routes!(add_tags, remove_tags))
        .routes(routes!(add_note))
        .routes(routes!(delete_note))
        .routes(routes!(timeline))
        .routes(routes!(merge_contact))
}

/// A contact (lead). Custom field values are under `fields`, tags are paths such as `行业/制造业`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactBody {
    pub id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub title: Option<String>,
    pub company_name: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub country: Option<String>,
    pub source: Option<String>,
    pub owner_id: Option<String>,
    pub company_id: Option<String>,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub tags: Vec<String>,
    pub identities: Vec<IdentityBody>,
    /// The lifecycle stage key (`raw`, `mql`, `sal`, `sql`, `customer` by default).
    pub stage: String,
    /// The lead status key.
    pub status: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityBody {
    /// `email`, `phone`, `user_id`, `anonymous_id`, `wechat_openid` or `wechat_unionid`.
    pub kind: String,
    pub value: String,
}

impl From<Contact> for ContactBody {
    fn from(contact: Contact) -> ContactBody {
        ContactBody {
            id: contact.id.to_string(),
            email: contact.email,
            phone: contact.phone,
            user_id: contact.user_id,
            first_name: contact.first_name,
            last_name: contact.last_name,
            title: contact.title,
            company_name: contact.company_name,
            city: contact.city,
            province: contact.province,
            country: contact.country,
            source: contact.source,
            owner_id: contact.owner_id.map(|id| id.to_string()),
            company_id: contact.company_id.map(|id| id.to_string()),
            fields: contact.fields,
            tags: contact.tags,
            identities: contact
                .identities
                .iter()
                .map(|identity| IdentityBody { kind: identity.kind().to_string(), value: identity.value().to_owned() })
                .collect(),
            stage: contact.stage,
            status: contact.status,
            created_at: time(contact.created_at),
            updated_at: time(contact.updated_at),
        }
    }
}

/// The writable part of a contact. Absent fields are left alone, `null` clears. `tags` are added (missing manual
/// tags are created); removing goes through `DELETE /api/v1/contacts/{id}/tags`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub phone: Nullable<String>,
    /// Your system's id for the person (the tracking API's `userId`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub user_id: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub first_name: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub last_name: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub title: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub company_name: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub city: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub province: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub country: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub source: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub owner_id: Nullable<WireId>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub company_id: Nullable<WireId>,
    /// Custom field values by field key; `null` removes a value.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Map<String, Value>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub status: Nullable<String>,
    /// Why the stage or status changes; kept in the history.
    #[serde(default)]
    pub reason: Option<String>,
}

impl ContactInput {
    /// Parses the input into domain changes, recording every bad field in `check`.
    pub fn into_changes(self, definitions: &[FieldDefinition], check: &mut Validator) -> ContactChanges {
        let text = |check: &mut Validator, name: &str, value: Nullable<String>| {
            check.check(name, value.parse(|raw| BoundedText::parse(&raw, SYSTEM_TEXT_MAX))).unwrap_or_default()
        };
        let system = SystemFieldsPatch {
            first_name: text(check, "first_name", self.first_name),
            last_name: text(check, "last_name", self.last_name),
            title: text(check, "title", self.title),
            company_name: text(check, "company_name", self.company_name),
            city: text(check, "city", self.city),
            province: text(check, "province", self.province),
            country: text(check, "country", self.country),
            source: text(check, "source", self.source),
        };
        let email = check.check("email", self.email.parse(|raw| EmailAddress::parse(&raw))).unwrap_or_default();
        let phone = check.check("phone", self.phone.parse(|raw| PhoneNumber::parse(&raw))).unwrap_or_default();
        let user_id = check
            .check(
                "user_id",
                self.user_id.parse(|raw| Identity::parse(IdentityKind::UserId, &raw).map(|id| id.value().to_owned())),
            )
            .unwrap_or_default();
        let owner_id = check.check("owner_id", self.owner_id.parse(|id| id.parse())).unwrap_or_default();
        let company_id = check.check("company_id", self.company_id.parse(|id| id.parse())).unwrap_or_default();
        let fields = custom_values(self.fields.unwrap_or_default(), definitions, check);
        let mut add_tags = Vec::new();
        for (index, raw) in self.tags.unwrap_or_default().iter().enumerate() {
            if let Some(path) = check.check(&format!("tags[{index}]"), TagPath::parse(raw)) {
                add_tags.push(path);
            }
        }
        let stage = self.stage.and_then(|raw| check.check("stage", Slug::parse(&raw)));
        let status = check.check("status", self.status.parse(|raw| Slug::parse(&raw))).unwrap_or_default();
        let reason = self.reason.filter(|reason| !reason.trim().is_empty());
        if reason.as_ref().is_some_and(|reason| reason.chars().count() > 1_000) {
            check.error("reason", "must be at most 1000 characters");
        }
        ContactChanges { email, phone, user_id, system, owner_id, company_id, fields, add_tags, stage, status, reason }
    }
}

/// Checks custom values against the workspace's definitions (shared with companies).
pub fn custom_values(
    values: Map<String, Value>,
    definitions: &[FieldDefinition],
    check: &mut Validator,
) -> Vec<(String, Value)> {
    let mut accepted = Vec::with_capacity(values.len());
    for (key, value) in values {
        let name = format!("fields.{key}");
        match definitions.iter().find(|definition| definition.key.as_str() == key) {
            None => check.error(&name, "is not a custom field of this workspace (create it with POST /api/v1/fields)"),
            Some(definition) => {
                if let Some(value) = check.check(&name, validate_field_value(definition, &value)) {
                    accepted.push((key, value));
                }
            }
        }
    }
    accepted
}

/// Turns "not found" for a contact id that was merged away into a redirect to the survivor (`suffix` is the rest
/// of the path, e.g. `/timeline`), so that ids stored elsewhere keep working after a merge.
pub(crate) async fn follow_merge<T>(
    state: &AppState,
    caller: &Caller,
    id: ContactId,
    suffix: &str,
    result: Result<T, StoreError>,
) -> ApiResult<T> {
    match result {
        Err(StoreError::NotFound { .. }) => match state.store.merged_into(caller.workspace, id).await? {
            Some(survivor) => Err(ApiError::moved(
                format!("/api/v1/contacts/{survivor}{suffix}"),
                format!("contact {id} was merged into contact {survivor}"),
                serde_json::json!({ "merged_into": survivor.to_string() }),
            )),
            None => Err(ApiError::not_found("contact")),
        },
        other => Ok(other?),
    }
}

async fn contact_fields(state: &AppState, caller: &Caller) -> ApiResult<Vec<FieldDefinition>> {
    Ok(state.store.list_fields(caller.workspace, Some(FieldEntity::Contact)).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContactListParams {
    /// Find the contact with this email (an exact identity match).
    pub email: Option<String>,
    /// Find the contact with this phone number.
    pub phone: Option<String>,
    /// Find the contact with this external user id.
    pub user_id: Option<String>,
    /// List the members of this segment instead, in ascending id order (the cursor then is a different one: pass
    /// back the `next_cursor` of this listing).
    pub segment: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Lists contacts, most recently updated first, finds one by identity, or lists a segment's members.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", params(ContactListParams),
    responses((status = 200, body = ListBody<ContactBody>)))]
async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ContactListParams>,
) -> ApiResult<Json<ListBody<ContactBody>>> {
    caller.require(Permission::Read)?;
    let lookups = [
        (IdentityKind::Email, "email", &params.email),
        (IdentityKind::Phone, "phone", &params.phone),
        (IdentityKind::UserId, "user_id", &params.user_id),
    ];
    if params.segment.is_some() && lookups.iter().any(|(_, _, value)| value.is_some()) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "segment lists members; it does not combine with a look-up",
        ));
    }
    if let Some((kind, name, Some(raw))) = lookups.iter().find(|(_, _, value)| value.is_some()) {
        let identity = Identity::parse(*kind, raw).map_err(|error| ApiError::field(*name, error.to_string()))?;
        let found = state.store.find_contact(caller.workspace, &identity).await?;
        return Ok(Json(ListBody { items: found.into_iter().map(ContactBody::from).collect(), next_cursor: None }));
    }
    if let Some(segment) = params.segment.as_deref() {
        let page =
            crate::segments::members_of(&state, caller.workspace, segment, params.cursor.as_deref(), params.limit)
                .await?;
        return Ok(Json(page));
    }
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => {
            let parts = decode_cursor(cursor, 2)?;
            Some(ContactCursor { updated_at: micros_to_time(parts[0])?, id: ContactId::new(parts[1]) })
        }
    };
    let page = state.store.list_contacts(caller.workspace, PageRequest { after, limit }).await?;
    Ok(Json(ListBody {
        items: page.items.into_iter().map(ContactBody::from).collect(),
        next_cursor: page.next.map(|next| encode_cursor(&[next.updated_at.timestamp_micros(), next.id.get()])),
    }))
}

/// Creates a contact, or updates the one that has the given user id, email or phone (in that order). Answers 201
/// when created and 200 when updated.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = ContactInput,
    responses((status = 201, body = ContactBody), (status = 200, body = ContactBody),
        (status = 400, description = "validation_failed, unknown_stage, …"), (status = 409, description = "identity_conflict")))]
async fn upsert_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ContactInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::WriteContacts)?;
    let definitions = contact_fields(&state, &caller).await?;
    let mut check = Validator::default();
    let changes = input.into_changes(&definitions, &mut check);
    let changes = check.finish(changes)?;
    let outcome = state.store.upsert_contacts(caller.workspace, vec![changes], caller.actor()).await?;
    let outcome =
        outcome.first().copied().ok_or_else(|| ApiError::internal(anyhow::anyhow!("upsert returned nothing")))?;
    let contact = state.store.get_contact(caller.workspace, outcome.id).await?;
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ContactBody::from(contact))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    /// Up to 1,000 contacts, upserted in order in one transaction.
    pub contacts: Vec<ContactInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchBody {
    /// One result per input contact, in order.
    pub items: Vec<BatchItemBody>,
    pub created: usize,
    pub updated: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItemBody {
    pub index: usize,
    pub id: String,
    pub created: bool,
}

/// Upserts up to 1,000 contacts at once, all or nothing: when any item is invalid, nothing is written and the
/// error lists every bad field as `contacts[i].field`.
#[utoipa::path(post, path = "/api/v1/contacts/batch", tag = "contacts", request_body = BatchInput,
    responses((status = 200, body = BatchBody), (status = 400, description = "validation_failed"),
        (status = 409, description = "identity_conflict")))]
async fn upsert_batch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<BatchInput>,
) -> ApiResult<Json<BatchBody>> {
    caller.require(Permission::WriteContacts)?;
    if input.contacts.is_empty() || input.contacts.len() > MAX_BATCH {
        return Err(ApiError::field("contacts", format!("must hold between 1 and {MAX_BATCH} contacts")));
    }
    let definitions = contact_fields(&state, &caller).await?;
    let mut all = Validator::default();
    let mut items = Vec::with_capacity(input.contacts.len());
    for (index, contact) in input.contacts.into_iter().enumerate() {
        let mut check = Validator::with_prefix(format!("contacts[{index}]"));
        items.push(contact.into_changes(&definitions, &mut check));
        all.absorb(check);
    }
    let items = all.finish(items)?;
    let outcomes = state.store.upsert_contacts(caller.workspace, items, caller.actor()).await?;
    let created = outcomes.iter().filter(|outcome| outcome.created).count();
    Ok(Json(BatchBody {
        created,
        updated: outcomes.len() - created,
        items: outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| BatchItemBody { index, id: outcome.id.to_string(), created: outcome.created })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, body = ContactBody), (status = 404, description = "not_found")))]
async fn get_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ContactBody>> {
    caller.require(Permission::Read)?;
    let id: ContactId = path_id(&id, "contact")?;
    let contact = follow_merge(&state, &caller, id, "", state.store.get_contact(caller.workspace, id).await).await?;
    Ok(Json(contact.into()))
}

/// Changes a contact. A different `stage` or `status` is recorded in its history with `reason`.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path)),
    request_body = ContactInput, responses((status = 200, body = ContactBody), (status = 404, description = "not_found")))]
async fn update_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ContactInput>,
) -> ApiResult<Json<ContactBody>> {
    caller.require(Permission::WriteContacts)?;
    let id: ContactId = path_id(&id, "contact")?;
    let definitions = contact_fields(&state, &caller).await?;
    let mut check = Validator::default();
    let changes = input.into_changes(&definitions, &mut check);
    let changes = check.finish(changes)?;
    let updated = state.store.update_contact(caller.workspace, id, changes, caller.actor()).await;
    Ok(Json(follow_merge(&state, &caller, id, "", updated).await?.into()))
}

/// Erases the person: the contact, its identities, tags, notes, history and events.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::EraseContacts)?;
    let id: ContactId = path_id(&id, "contact")?;
    let deleted = state.store.delete_contact(caller.workspace, id).await;
    follow_merge(&state, &caller, id, "", deleted).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsInput {
    /// Tag paths such as `行业/制造业`.
    pub tags: Vec<String>,
}

fn tag_paths(input: TagsInput) -> ApiResult<Vec<TagPath>> {
    let mut check = Validator::default();
    if input.tags.is_empty() || input.tags.len() > 100 {
        check.error("tags", "must hold between 1 and 100 tag paths");
    }
    let paths: Vec<TagPath> = input
        .tags
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| check.check(&format!("tags[{index}]"), TagPath::parse(raw)))
        .collect();
    check.finish(paths)
}

/// Adds manual tags, creating the ones missing from the library. Dynamic tags cannot be added by hand.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/tags", tag = "contacts", params(("id" = String, Path)),
    request_body = TagsInput, responses((status = 200, body = ContactBody), (status = 400, description = "dynamic_tag")))]
async fn add_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TagsInput>,
) -> ApiResult<Json<ContactBody>> {
    caller.require(Permission::WriteContacts)?;
    let id: ContactId = path_id(&id, "contact")?;
    let paths = tag_paths(input)?;
    let added = state.store.add_contact_tags(caller.workspace, id, &paths, caller.actor()).await;
    follow_merge(&state, &caller, id, "/tags", added).await?;
    Ok(Json(state.store.get_contact(caller.workspace, id).await?.into()))
}

/// Removes manual tags from the contact; tags it does not have are ignored.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}/tags", tag = "contacts", params(("id" = String, Path)),
    request_body = TagsInput, responses((status = 200, body = ContactBody)))]
async fn remove_tags(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TagsInput>,
) -> ApiResult<Json<ContactBody>> {
    caller.require(Permission::WriteContacts)?;
    let id: ContactId = path_id(&id, "contact")?;
    let paths = tag_paths(input)?;
    let removed = state.store.remove_contact_tags(caller.workspace, id, &paths, caller.actor()).await;
    follow_merge(&state, &caller, id, "/tags", removed).await?;
    Ok(Json(state.store.get_contact(caller.workspace, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    pub body: String,
    /// The note template the text started from, if any.
    #[serde(default)]
    pub template_id: Option<WireId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteBody {
    pub id: String,
    pub contact_id: String,
    pub body: String,
    pub author: String,
    pub template_id: Option<String>,
    pub created_at: String,
}

/// Writes a note on the contact; it appears in the timeline.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/notes", tag = "contacts", params(("id" = String, Path)),
    request_body = NoteInput, responses((status = 201, body = NoteBody)))]
async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NoteInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::WriteContacts)?;
    let id: ContactId = path_id(&id, "contact")?;
    let mut check = Validator::default();
    let body = check.check("body", BoundedText::parse_multiline(&input.body, 10_000));
    let template: Option<NoteTemplateId> =
        input.template_id.and_then(|raw| check.check("template_id", raw.parse::<NoteTemplateId>()));
    let body = check.finish(body)?.map(BoundedText::into_string).unwrap_or_default();
    let note = state.store.add_note(caller.workspace, id, &body, template, caller.actor()).await;
    let note = follow_merge(&state, &caller, id, "/notes", note).await?;
    let body = NoteBody {
        id: note.id.to_string(),
        contact_id: note.contact_id.to_string(),
        body: note.body,
        author: note.author,
        template_id: note.template_id.map(|id| id.to_string()),
        created_at: time(note.created_at),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{id}/notes/{note_id}", tag = "contacts",
    params(("id" = String, Path), ("note_id" = String, Path)), responses((status = 204), (status = 404)))]
async fn delete_note(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, note_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::WriteContacts)?;
    let id: ContactId = path_id(&id, "contact")?;
    let note_id: i64 = note_id.parse().map_err(|_| ApiError::not_found("note"))?;
    state.store.delete_note(caller.workspace, id, note_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInput {
    /// The contact to merge into this one. Its id keeps answering with a redirect to this contact.
    pub absorb: WireId,
}

/// Merges another contact into this one: identities, events, notes and history move here, tags are united, each
/// field keeps the most recently updated non-empty value, the stage keeps the furthest.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", params(("id" = String, Path)),
    request_body = MergeInput, responses((status = 200, body = ContactBody), (status = 404)))]
async fn merge_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<MergeInput>,
) -> ApiResult<Json<ContactBody>> {
    caller.require(Permission::WriteContacts)?;
    let survivor: ContactId = path_id(&id, "contact")?;
    let absorbed: ContactId = input.absorb.parse().map_err(|message| ApiError::field("absorb", message))?;
    let merged =
        state.store.merge_contacts(caller.workspace, survivor, absorbed, MergeReason::Api, caller.actor()).await;
    let merged = follow_merge(&state, &caller, survivor, "/merge", merged).await?;
    Ok(Json(merged.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineItemBody {
    /// `event`, `stage_changed`, `status_changed`, `tag_added`, `tag_removed`, `note`, `segment_entered`,
    /// `segment_exited` (`data.segment_id`, `data.segment`), …
    pub kind: String,
    pub at: String,
    #[schema(value_type = Object)]
    pub data: Value,
}

/// Everything that happened to the contact, newest first.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/timeline", tag = "contacts", params(("id" = String, Path), PageParams),
    responses((status = 200, body = ListBody<TimelineItemBody>)))]
async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<ListBody<TimelineItemBody>>> {
    caller.require(Permission::Read)?;
    let id: ContactId = path_id(&id, "contact")?;
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => {
            let parts = decode_cursor(cursor, 3)?;
            Some(TimelineCursor { at: micros_to_time(parts[0])?, source: parts[1], id: parts[2] })
        }
    };
    let page = state.store.contact_timeline(caller.workspace, id, PageRequest { after, limit }).await;
    let page = follow_merge(&state, &caller, id, "/timeline", page).await?;
    Ok(Json(ListBody {
        items: page
            .items
            .into_iter()
            .map(|entry| TimelineItemBody {
                data: timeline_data(&entry.kind, entry.data),
                kind: entry.kind,
                at: time(entry.at),
            })
            .collect(),
        next_cursor: page.next.map(|next| encode_cursor(&[next.at.timestamp_micros(), next.source, next.id])),
    }))
}

/// Ids travel as strings: a membership record's `segment_id` is shown as one whatever the store keeps.
fn timeline_data(kind: &str, mut data: Value) -> Value {
    if matches!(kind, "segment_entered" | "segment_exited")
        && let Some(id) = data.get_mut("segment_id")
        && let Value::Number(number) = id
    {
        *id = Value::String(number.to_string());
    }
    data
}

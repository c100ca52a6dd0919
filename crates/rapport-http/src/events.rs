//! `POST /api/v1/events`: server-side behaviour events in batches. Each event is checked on its own; valid ones are
//! stored and bad ones reported by index, so one typo does not drop a whole batch.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use rapport_domain::{ContactId, Identity, IdentityKind, Permission};
use rapport_store::{ContactRef, EventOutcome, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::wire::{WireId, parse_time};

pub const MAX_EVENTS: usize = 1_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest_events))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsInput {
    /// Up to 1,000 events.
    #[schema(value_type = Vec<EventInput>)]
    pub events: Vec<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    pub contact: ContactRefInput,
    /// The event type, e.g. `page_viewed`, `webinar_attended`.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// When it happened (RFC 3339); defaults to when it was received.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Makes the event idempotent: a message id already stored in the workspace is not stored again.
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// Names the contact by exactly one of its id or identities. A contact named by identity is created when unknown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRefInput {
    #[serde(default)]
    pub id: Option<WireId>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsBody {
    /// Events stored now or before (a repeated message id counts as accepted).
    pub accepted: usize,
    /// How many of the accepted were repeats of an already stored message id.
    pub duplicates: usize,
    pub errors: Vec<EventErrorBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventErrorBody {
    pub index: usize,
    pub code: String,
    pub message: String,
}

/// Records behaviour events for contacts.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventsInput,
    responses((status = 200, body = EventsBody), (status = 400, description = "the body is not an events batch")))]
async fn ingest_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<EventsInput>,
) -> ApiResult<Json<EventsBody>> {
    caller.require(Permission::WriteContacts)?;
    if input.events.is_empty() || input.events.len() > MAX_EVENTS {
        return Err(ApiError::field("events", format!("must hold between 1 and {MAX_EVENTS} events")));
    }
    let received_at = Utc::now();
    let mut errors = Vec::new();
    let mut indexes = Vec::with_capacity(input.events.len());
    let mut events = Vec::with_capacity(input.events.len());
    for (index, raw) in input.events.into_iter().enumerate() {
        match parse_event(raw, received_at) {
            Ok(event) => {
                indexes.push(index);
                events.push(event);
            }
            Err(message) => errors.push(EventErrorBody { index, code: "invalid_event".into(), message }),
        }
    }
    let outcomes =
        if events.is_empty() { Vec::new() } else { state.store.insert_events(caller.workspace, events).await? };
    let mut accepted = 0;
    let mut duplicates = 0;
    for (index, outcome) in indexes.into_iter().zip(outcomes) {
        match outcome {
            EventOutcome::Stored { .. } => accepted += 1,
            EventOutcome::Duplicate => {
                accepted += 1;
                duplicates += 1;
            }
            EventOutcome::UnknownContact => errors.push(EventErrorBody {
                index,
                code: "unknown_contact".into(),
                message: "contact.id: no contact with this id in the workspace".into(),
            }),
        }
    }
    errors.sort_by_key(|error| error.index);
    Ok(Json(EventsBody { accepted, duplicates, errors }))
}

fn parse_event(raw: Value, received_at: chrono::DateTime<Utc>) -> Result<NewEvent, String> {
    let input: EventInput = serde_path_to_error::deserialize(raw).map_err(|error| {
        let path = error.path().to_string();
        format!("{path}: {}", error.into_inner())
    })?;
    let contact = contact_ref(input.contact)?;
    let event_type = input.event_type.trim();
    if event_type.is_empty() || event_type.chars().count() > 200 || event_type.chars().any(char::is_control) {
        return Err("type: must be 1–200 characters without control characters".into());
    }
    let occurred_at = match input.occurred_at {
        Some(text) => parse_time(&text).map_err(|message| format!("occurred_at: {message}"))?,
        None => received_at,
    };
    let message_id = input.message_id.map(|id| id.trim().to_owned()).filter(|id| !id.is_empty());
    if message_id.as_ref().is_some_and(|id| id.len() > 200) {
        return Err("message_id: must be at most 200 characters".into());
    }
    let source = input.source.map(|source| source.trim().to_owned()).filter(|source| !source.is_empty());
    if source.as_ref().is_some_and(|source| source.chars().count() > 100) {
        return Err("source: must be at most 100 characters".into());
    }
    Ok(NewEvent {
        contact,
        event_type: event_type.to_owned(),
        properties: input.properties.unwrap_or_default(),
        context: input.context.unwrap_or_default(),
        occurred_at,
        received_at,
        source,
        message_id,
    })
}

fn contact_ref(input: ContactRefInput) -> Result<ContactRef, String> {
    let given = [input.id.is_some(), input.email.is_some(), input.phone.is_some(), input.user_id.is_some()];
    if given.iter().filter(|present| **present).count() != 1 {
        return Err("contact: name the contact by exactly one of id, email, phone or user_id".into());
    }
    if let Some(id) = input.id {
        return id.parse::<ContactId>().map(ContactRef::Id).map_err(|message| format!("contact.id: {message}"));
    }
    let (kind, name, raw) = match (input.email, input.phone, input.user_id) {
        (Some(email), _, _) => (IdentityKind::Email, "email", email),
        (_, Some(phone), _) => (IdentityKind::Phone, "phone", phone),
        (_, _, Some(user_id)) => (IdentityKind::UserId, "user_id", user_id),
        _ => {
            return Err("contact: name the contact by exactly one of id, email, phone or user_id".into());
        }
    };
    Identity::parse(kind, &raw).map(ContactRef::Identity).map_err(|error| format!("contact.{name}: {error}"))
}

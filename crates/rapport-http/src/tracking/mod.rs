//! The Segment-compatible tracking API: `/v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`,
//! `/v1/alias`, `/v1/batch`, and the GET pixel forms `/v1/pixel/track` and `/v1/pixel/page`. The official Segment
//! clients work against Rapport by changing only their host.

mod message;
mod traits;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::Utc;
use rapport_domain::{BoundedText, FieldEntity, FieldType, MergeRule, Patch, normalize_domain};
use rapport_engine::IngestError;
use rapport_store::{
    CompanyChanges, NewField, Source, StoreError, TrackingMessage, TrackingOp, TrackingOutcome, Visitor,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tower_http::cors::{Any, CorsLayer};

use crate::error::ApiError;
use crate::state::AppState;
use message::{CheckedMessage, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, MessageType, RawMessage};
use traits::{MappedTraits, map_traits};

/// A transparent 1×1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

pub fn routes() -> Router<AppState> {
    // Pages on customers' sites call these from the browser, so any origin may.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::CONTENT_ENCODING])
        .expose_headers([header::RETRY_AFTER]);
    Router::new()
        .route("/v1/identify", post(|s, h, b| single(s, h, b, MessageType::Identify)))
        .route("/v1/track", post(|s, h, b| single(s, h, b, MessageType::Track)))
        .route("/v1/page", post(|s, h, b| single(s, h, b, MessageType::Page)))
        .route("/v1/screen", post(|s, h, b| single(s, h, b, MessageType::Screen)))
        .route("/v1/group", post(|s, h, b| single(s, h, b, MessageType::Group)))
        .route("/v1/alias", post(|s, h, b| single(s, h, b, MessageType::Alias)))
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .route("/v1/pixel/track", get(|s, q| pixel(s, q, MessageType::Track)))
        .route("/v1/pixel/page", get(|s, q| pixel(s, q, MessageType::Page)))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
        .layer(cors)
}

fn tracking_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let mut response = ApiError::new(status, code, message).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The write key from HTTP Basic auth (as the user name) or, failing that, from the body.
fn write_key(headers: &HeaderMap, body_key: Option<&str>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .map(|pair| pair.split_once(':').map_or(pair.clone(), |(user, _)| user.to_owned()))
        .filter(|key| !key.is_empty());
    from_header.or_else(|| body_key.map(str::to_owned)).filter(|key| !key.trim().is_empty())
}

async fn source_for(state: &AppState, key: Option<String>) -> Result<Source, Response> {
    let Some(key) = key else {
        return Err(tracking_error(
            StatusCode::UNAUTHORIZED,
            "missing_write_key",
            "send the source's write key as the Basic auth user name or as writeKey in the body",
        ));
    };
    match state.store.source_by_write_key(key.trim()).await {
        Ok(Some(source)) => Ok(source),
        Ok(None) => {
            Err(tracking_error(StatusCode::UNAUTHORIZED, "invalid_write_key", "the write key is unknown or revoked"))
        }
        Err(error) => Err(ApiError::from(error).into_response()),
    }
}

fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Response> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(tracking_error(
            StatusCode::BAD_REQUEST,
            "request_too_large",
            format!("a request may carry at most {} KB", MAX_BATCH_BYTES / 1024),
        ));
    }
    serde_json::from_slice(body).map_err(|error| {
        tracking_error(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not a valid message: {error}"))
    })
}

/// A message with its index in the request, or why it was refused.
type Prepared = Vec<(usize, Result<TrackingMessage, (&'static str, String)>)>;

async fn single(State(state): State<AppState>, headers: HeaderMap, body: Bytes, kind: MessageType) -> Response {
    if body.len() > MAX_MESSAGE_BYTES {
        return tracking_error(
            StatusCode::BAD_REQUEST,
            "message_too_large",
            format!("a message may be at most {} KB", MAX_MESSAGE_BYTES / 1024),
        );
    }
    let raw: RawMessage = match parse_body(&body) {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    let source = match source_for(&state, write_key(&headers, raw.write_key.as_deref())).await {
        Ok(source) => source,
        Err(response) => return response,
    };
    let received_at = Utc::now();
    let checked = raw.check(Some(kind), None, received_at);
    let mut warnings = Vec::new();
    let prepared = prepare(&state, &source, vec![(0, checked)], &mut warnings).await;
    let summary = match commit(&state, &source, prepared).await {
        Ok(summary) => summary,
        Err(response) => return response,
    };
    if let Some(error) = summary.errors.first() {
        let mut body = json!({"error": {"code": error.1, "message": error.2}});
        if !warnings.is_empty() {
            body["warnings"] = json!(warnings);
        }
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    success(json!({"success": true}), warnings)
}

/// A batch as sent. Messages stay raw until each is parsed on its own, so that a malformed message fails alone and
/// its size is that of the bytes the client sent, measured without serializing it again.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(default)]
    write_key: Option<String>,
}

async fn batch(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let batch: BatchBody<'_> = match parse_body(&body) {
        Ok(batch) => batch,
        Err(response) => return response,
    };
    let source = match source_for(&state, write_key(&headers, batch.write_key.as_deref())).await {
        Ok(source) => source,
        Err(response) => return response,
    };
    let received_at = Utc::now();
    let mut checked = Vec::with_capacity(batch.batch.len());
    for (index, raw) in batch.batch.iter().enumerate() {
        if raw.get().len() > MAX_MESSAGE_BYTES {
            checked.push((index, Err(format!("a message may be at most {} KB", MAX_MESSAGE_BYTES / 1024))));
            continue;
        }
        let result = serde_json::from_str::<RawMessage>(raw.get())
            .map_err(|error| format!("the message is malformed: {error}"))
            .and_then(|mut message| {
                // The batch's context is the default for each message's.
                if let Some(shared) = &batch.context {
                    let context = message.context.get_or_insert_with(Map::new);
                    for (key, item) in shared {
                        context.entry(key.clone()).or_insert_with(|| item.clone());
                    }
                }
                message.check(None, batch.sent_at.as_deref(), received_at)
            });
        checked.push((index, result));
    }
    drop(batch);
    let mut warnings = Vec::new();
    let prepared = prepare(&state, &source, checked, &mut warnings).await;
    match commit(&state, &source, prepared).await {
        Ok(summary) => {
            let errors: Vec<Value> = summary
                .errors
                .iter()
                .map(|(index, code, message)| json!({"index": index, "code": code, "message": message}))
                .collect();
            success(
                json!({"success": true, "accepted": summary.accepted, "duplicates": summary.duplicates, "errors": errors}),
                warnings,
            )
        }
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct PixelQuery {
    data: Option<String>,
}

/// `GET /v1/pixel/track?data=<base64 JSON>`: for e-mails and pages that cannot run JavaScript. The JSON is a
/// message with its `writeKey`.
async fn pixel(State(state): State<AppState>, Query(query): Query<PixelQuery>, kind: MessageType) -> Response {
    let Some(data) = query.data else {
        return tracking_error(StatusCode::BAD_REQUEST, "missing_data", "pass the message as ?data=<base64 JSON>");
    };
    let engine = &base64::engine::general_purpose::STANDARD;
    let decoded = engine
        .decode(data.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(data.trim().trim_end_matches('=')));
    let Ok(bytes) = decoded else {
        return tracking_error(StatusCode::BAD_REQUEST, "invalid_data", "data is not base64");
    };
    let raw: RawMessage = match parse_body(&bytes) {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    let source = match source_for(&state, raw.write_key.clone()).await {
        Ok(source) => source,
        Err(response) => return response,
    };
    let checked = raw.check(Some(kind), None, Utc::now());
    let mut warnings = Vec::new();
    let prepared = prepare(&state, &source, vec![(0, checked)], &mut warnings).await;
    match commit(&state, &source, prepared).await {
        Ok(summary) if summary.errors.is_empty() => {
            ([(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store, max-age=0")], PIXEL)
                .into_response()
        }
        Ok(summary) => {
            let (_, code, message) = summary.errors.into_iter().next().unwrap_or((0, "invalid_message", String::new()));
            tracking_error(StatusCode::BAD_REQUEST, code, message)
        }
        Err(response) => response,
    }
}

fn success(mut body: Value, warnings: Vec<Value>) -> Response {
    if !warnings.is_empty() {
        body["warnings"] = Value::Array(warnings);
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

struct Summary {
    accepted: usize,
    duplicates: usize,
    errors: Vec<(usize, &'static str, String)>,
}

/// Hands the prepared messages to the group committer and waits until they are durable.
async fn commit(state: &AppState, source: &Source, prepared: Prepared) -> Result<Summary, Response> {
    let mut summary = Summary { accepted: 0, duplicates: 0, errors: Vec::new() };
    let mut indexes = Vec::with_capacity(prepared.len());
    let mut messages = Vec::with_capacity(prepared.len());
    for (index, result) in prepared {
        match result {
            Ok(message) => {
                indexes.push(index);
                messages.push(message);
            }
            Err((code, message)) => summary.errors.push((index, code, message)),
        }
    }
    let outcomes = match state.ingestor.submit(source.workspace_id, messages).await {
        Ok(outcomes) => outcomes,
        Err(IngestError::Overloaded) => {
            return Err(tracking_error(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "Rapport is busy writing; retry in a moment",
            ));
        }
        Err(IngestError::Stopped) => {
            return Err(tracking_error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "Rapport is shutting down"));
        }
        Err(IngestError::Store(error)) => return Err(ApiError::from(error).into_response()),
    };
    for (index, outcome) in indexes.into_iter().zip(outcomes) {
        match outcome {
            TrackingOutcome::Applied { .. } => summary.accepted += 1,
            TrackingOutcome::Duplicate => {
                summary.accepted += 1;
                summary.duplicates += 1;
            }
            TrackingOutcome::Rejected { code, message } => summary.errors.push((index, code, message)),
        }
    }
    summary.errors.sort_by_key(|error| error.0);
    Ok(summary)
}

/// Turns checked messages into store messages: traits mapped onto fields (creating text fields for unknown traits
/// when the source allows it), pages and screens into events.
async fn prepare(
    state: &AppState,
    source: &Source,
    checked: Vec<(usize, Result<CheckedMessage, String>)>,
    warnings: &mut Vec<Value>,
) -> Prepared {
    let needs_fields = checked.iter().any(|(_, result)| {
        result.as_ref().is_ok_and(|message| matches!(message.message_type, MessageType::Identify | MessageType::Group))
    });
    let mut definitions = if needs_fields {
        state.store.list_fields(source.workspace_id, None).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut prepared = Vec::with_capacity(checked.len());
    for (index, result) in checked {
        let mut message = match result {
            Ok(message) => message,
            Err(reason) => {
                prepared.push((index, Err(("invalid_message", reason))));
                continue;
            }
        };
        let visitor = Visitor { user_id: message.user_id.take(), anonymous_id: message.anonymous_id.take() };
        let message_id = message.message_id.take().unwrap_or_else(generated_message_id);
        let op = match message.message_type {
            MessageType::Identify => {
                let contact_fields: Vec<_> =
                    definitions.iter().filter(|field| field.entity == FieldEntity::Contact).cloned().collect();
                let mut mapped = map_traits(&message.traits, &contact_fields);
                if !mapped.missing_fields.is_empty() {
                    create_missing_fields(state, source, &mut mapped, &mut definitions).await;
                }
                for problem in &mapped.problems {
                    warnings.push(json!({"index": index, "trait": problem.trait_name, "message": problem.message}));
                }
                TrackingOp::Identify { changes: mapped.changes }
            }
            MessageType::Track | MessageType::Page | MessageType::Screen => event_op(message),
            MessageType::Group => TrackingOp::Group {
                group_id: message.group_id.take().unwrap_or_default(),
                company: company_changes(&message.traits, index, warnings),
            },
            MessageType::Alias => TrackingOp::Alias { previous_id: message.previous_id.take().unwrap_or_default() },
        };
        prepared.push((index, Ok(TrackingMessage { message_id, source: source.id, visitor, op })));
    }
    prepared
}

fn event_op(message: CheckedMessage) -> TrackingOp {
    let mut properties = message.properties;
    let event_type = match message.message_type {
        MessageType::Page => "page_viewed".to_owned(),
        MessageType::Screen => "screen_viewed".to_owned(),
        _ => message.name.clone().unwrap_or_default(),
    };
    if matches!(message.message_type, MessageType::Page | MessageType::Screen) {
        if let Some(name) = message.name {
            properties.entry("name").or_insert(Value::String(name));
        }
        if let Some(category) = message.category {
            properties.entry("category").or_insert(Value::String(category));
        }
        // Page calls from browsers carry the URL in the context; the event keeps it as a property too.
        if let Some(Value::Object(page)) = message.context.get("page") {
            for key in ["url", "path", "referrer", "title", "search"] {
                if let Some(value) = page.get(key) {
                    properties.entry(key).or_insert_with(|| value.clone());
                }
            }
        }
    }
    TrackingOp::Event {
        event_type,
        properties,
        context: message.context,
        occurred_at: message.timestamp,
        received_at: Utc::now(),
    }
}

fn company_changes(traits: &Map<String, Value>, index: usize, warnings: &mut Vec<Value>) -> CompanyChanges {
    let mut changes = CompanyChanges::default();
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    for (key, value) in traits {
        let parsed = text(value);
        match (key.as_str(), parsed) {
            ("name", Some(name)) => changes.name = BoundedText::parse(&name, 200).ok(),
            ("website" | "domain", Some(site)) => {
                if let Some(domain) = normalize_domain(&site) {
                    changes.domain = Patch::Set(domain);
                }
            }
            ("industry", Some(industry)) => {
                if let Ok(industry) = BoundedText::parse(&industry, 100) {
                    changes.industry = Patch::Set(industry);
                }
            }
            ("employees" | "size", Some(size)) => {
                if let Ok(size) = BoundedText::parse(&size, 50) {
                    changes.size = Patch::Set(size);
                }
            }
            _ => warnings.push(json!({"index": index, "trait": key, "message": "group traits other than name, website, industry and employees are not stored yet"})),
        }
    }
    changes
}

async fn create_missing_fields(
    state: &AppState,
    source: &Source,
    mapped: &mut MappedTraits,
    definitions: &mut Vec<rapport_domain::FieldDefinition>,
) {
    for missing in std::mem::take(&mut mapped.missing_fields) {
        if !source.auto_create_fields {
            mapped.problems.push(traits::TraitProblem {
                trait_name: missing.key.to_string(),
                message: format!(
                    "fields.{} is not a custom field; create it, or let this source create fields automatically",
                    missing.key
                ),
            });
            continue;
        }
        let existing =
            definitions.iter().find(|field| field.key == missing.key && field.entity == FieldEntity::Contact);
        let field = match existing {
            Some(field) => Some(field.clone()),
            None => {
                let Ok(label) = BoundedText::parse(missing.key.as_str(), 100) else { continue };
                let new_field = NewField {
                    entity: FieldEntity::Contact,
                    key: missing.key.clone(),
                    label,
                    field_type: FieldType::Text,
                    options: Vec::new(),
                    merge_rule: MergeRule::Latest,
                };
                match state.store.create_field(source.workspace_id, new_field).await {
                    Ok(field) => Some(field),
                    // Another request created it meanwhile.
                    Err(StoreError::Conflict { .. }) => state
                        .store
                        .list_fields(source.workspace_id, Some(FieldEntity::Contact))
                        .await
                        .ok()
                        .and_then(|fields| fields.into_iter().find(|field| field.key == missing.key)),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "creating a field for a trait failed");
                        None
                    }
                }
            }
        };
        if let Some(field) = field {
            match rapport_domain::validate_field_value(&field, &Value::String(missing.value.clone())) {
                Ok(value) => mapped.changes.fields.push((missing.key.into_string(), value)),
                Err(error) => mapped.problems.push(traits::TraitProblem {
                    trait_name: missing.key.to_string(),
                    message: format!("fields.{} {error}", missing.key),
                }),
            }
            if !definitions.iter().any(|known| known.id == field.id) {
                definitions.push(field);
            }
        }
    }
}

/// Messages without a `messageId` get one, so every stored message has an id; such messages are not idempotent.
fn generated_message_id() -> String {
    use rand::RngCore;
    let mut bytes = [0_u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("rapport-{hex}")
}

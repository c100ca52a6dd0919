//! Rapport's HTTP surface: the REST API under `/api/v1`, its OpenAPI document, the tracking API, hosted forms,
//! health.
//!
//! Architecture invariant: this is the only crate that knows JSON shapes and HTTP. Request DTOs are converted to
//! domain types by hand here; domain and store types never derive `Serialize` for the API's sake.

#![forbid(unsafe_code)]

mod access;
pub mod auth;
mod companies;
mod contacts;
mod error;
mod events;
mod extract;
mod fields;
mod filters;
pub mod forms;
mod jobs;
mod lists;
mod note_templates;
mod segments;
mod sources;
mod state;
mod tags;
mod tracker;
mod tracking;
mod wire;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDocument, SecurityRequirement};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// Largest accepted request body: a 1,000-contact batch with custom fields fits with room to spare.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Rapport API", description = "Contacts, companies, tags, segments, stages and events of a Rapport workspace. \
        Authenticate with `Authorization: Bearer <API key>`. Errors are `{\"error\": {\"code\", \"message\", \
        \"details\"}}` with a stable `code`."),
    modifiers(&BearerAuth),
    tags(
        (name = "contacts", description = "Contacts (leads), their tags, notes and timeline"),
        (name = "companies", description = "Companies (accounts)"),
        (name = "events", description = "Behaviour events"),
        (name = "segments", description = "Segments: saved filters whose members are kept current, and previews"),
        (name = "schema", description = "Custom fields, the tag library, stages, lead statuses, note templates"),
        (name = "access", description = "Users and API keys"),
        (name = "capture", description = "Tracking sources and their write keys"),
        (name = "forms", description = "Hosted forms: definitions, hosted pages and embeds"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("rk_…").build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("api_key", Vec::<String>::new())]);
    }
}

/// The API routes and the OpenAPI document generated from them.
fn api() -> (axum::Router<AppState>, OpenApiDocument) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(contacts::routes())
        .merge(companies::routes())
        .merge(events::routes())
        .merge(fields::routes())
        .merge(tags::routes())
        .merge(segments::routes())
        .merge(lists::routes())
        .merge(note_templates::routes())
        .merge(access::routes())
        .merge(sources::routes())
        .merge(jobs::routes())
        .merge(forms::routes())
        .split_for_parts()
}

/// The OpenAPI 3.1 document of the whole API.
pub fn openapi() -> OpenApiDocument {
    api().1
}

/// The complete application router.
pub fn router(state: AppState) -> axum::Router {
    let (api, document) = api();
    let document = std::sync::Arc::new(document);
    api.route("/api/v1/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
        .merge(tracking::routes())
        .merge(tracker::routes())
        .merge(forms::public_routes())
        .route("/healthz", get(health))
        .route("/", get(home))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn home() -> Html<&'static str> {
    Html(include_str!("home.html"))
}

async fn not_found() -> impl IntoResponse {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such endpoint; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

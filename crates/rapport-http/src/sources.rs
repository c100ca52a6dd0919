//! `/api/v1/sources`: where tracked data comes from, each with the write key its tracking clients send.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::Utc;
use rand::RngCore;
use rand::rngs::OsRng;
use rapport_domain::{BoundedText, Permission, SourceId};
use rapport_store::{NewSource, Source, SourceKind, SourceUpdate};
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
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, update_source, revoke_source))
        .routes(routes!(rotate_key))
}

/// Write keys are `wk_` and 24 random bytes in hex. They ship inside web pages, so they only let a client send
/// tracking data into one workspace; they read nothing.
pub(crate) fn mint_write_key() -> String {
    let mut bytes = [0_u8; 24];
    OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("wk_{hex}")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceBody {
    pub id: String,
    pub name: String,
    /// `website`, `app`, `backend` or `other`.
    pub kind: String,
    /// What tracking clients send (as the Basic auth user name, or `writeKey` in the body).
    pub write_key: String,
    pub auto_create_fields: bool,
    pub honor_dnt: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The HTML to paste into a website's pages: it loads `/rapport.js` from this server and records page views.
    pub snippet: String,
}

impl SourceBody {
    fn new(source: Source, base: &BaseUrl) -> SourceBody {
        SourceBody {
            snippet: tracking_snippet(&base.0, &source),
            id: source.id.to_string(),
            name: source.name,
            kind: source.kind.as_str().to_owned(),
            write_key: source.write_key,
            auto_create_fields: source.auto_create_fields,
            honor_dnt: source.honor_dnt,
            created_at: time(source.created_at),
            revoked_at: source.revoked_at.map(time),
        }
    }
}

/// The base URL the snippet sends browsers to: the scheme and host by which the request reached Rapport. Behind a
/// reverse proxy, the proxy must pass the public `Host` on (and `X-Forwarded-Proto: https`); the console will use
/// the configured public URL instead once there is one.
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<BaseUrl, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| parts.uri.authority().map(|authority| authority.as_str()))
            // The snippet is HTML and JavaScript: only a plain host name, address and port go into it.
            .filter(|host| {
                !host.is_empty()
                    && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            })
            .unwrap_or("localhost:8080");
        let https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        Ok(BaseUrl(format!("{}://{host}", if https { "https" } else { "http" })))
    }
}

/// The copy-paste snippet for a source: a stub `rapport` that queues calls until `/rapport.js` (loaded
/// asynchronously) replaces it, the source's write key, Do-Not-Track when the source honours it, and a page view.
pub fn tracking_snippet(base_url: &str, source: &Source) -> String {
    let script = serde_json::Value::from(format!("{base_url}/rapport.js"));
    let key = serde_json::Value::from(source.write_key.as_str());
    let host = serde_json::Value::from(base_url);
    let dnt = if source.honor_dnt { ", respectDnt: true" } else { "" };
    format!(
        r#"<script>
!function(){{var r=window.rapport=window.rapport||[];if(r.isRapport||r.load)return;["load","page","track","identify","reset"].forEach(function(m){{r[m]=function(){{r.push([m].concat([].slice.call(arguments)))}}}});var s=document.createElement("script");s.async=true;s.src={script};document.head.appendChild(s)}}();
rapport.load({key}, {{host: {host}{dnt}}});
rapport.page();
</script>"#
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceInput {
    pub name: String,
    /// `website`, `app`, `backend` or `other`.
    pub kind: String,
    /// Create a text custom field for an unknown `identify` trait instead of reporting it (default false).
    #[serde(default)]
    pub auto_create_fields: Option<bool>,
    /// The website tracker sends nothing for browsers with Do-Not-Track on (default false).
    #[serde(default)]
    pub honor_dnt: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatchInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub auto_create_fields: Option<bool>,
    #[serde(default)]
    pub honor_dnt: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/sources", tag = "capture", responses((status = 200, body = ListBody<SourceBody>)))]
async fn list_sources(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
) -> ApiResult<Json<ListBody<SourceBody>>> {
    caller.require(Permission::Read)?;
    let sources = state.store.list_sources(caller.workspace).await?;
    Ok(Json(ListBody {
        items: sources.into_iter().map(|source| SourceBody::new(source, &base)).collect(),
        next_cursor: None,
    }))
}

/// Creates a source, e.g. `{"name": "官网", "kind": "website"}`, and its write key.
#[utoipa::path(post, path = "/api/v1/sources", tag = "capture", request_body = SourceInput,
    responses((status = 201, body = SourceBody)))]
async fn create_source(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    ApiJson(input): ApiJson<SourceInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let name = check.check("name", BoundedText::parse(&input.name, 100));
    let kind = check.check("kind", SourceKind::parse(&input.kind).ok_or("must be website, app, backend or other"));
    check.finish(())?;
    let (Some(name), Some(kind)) = (name, kind) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let source = NewSource {
        name,
        kind,
        write_key: mint_write_key(),
        auto_create_fields: input.auto_create_fields.unwrap_or(false),
        honor_dnt: input.honor_dnt.unwrap_or(false),
    };
    let source = state.store.create_source(caller.workspace, source).await?;
    Ok((StatusCode::CREATED, Json(SourceBody::new(source, &base))))
}

#[utoipa::path(get, path = "/api/v1/sources/{id}", tag = "capture", params(("id" = String, Path)),
    responses((status = 200, body = SourceBody), (status = 404)))]
async fn get_source(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceBody>> {
    caller.require(Permission::Read)?;
    let id: SourceId = path_id(&id, "source")?;
    Ok(Json(SourceBody::new(state.store.get_source(caller.workspace, id).await?, &base)))
}

#[utoipa::path(patch, path = "/api/v1/sources/{id}", tag = "capture", params(("id" = String, Path)),
    request_body = SourcePatchInput, responses((status = 200, body = SourceBody), (status = 404)))]
async fn update_source(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SourcePatchInput>,
) -> ApiResult<Json<SourceBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: SourceId = path_id(&id, "source")?;
    let mut check = Validator::default();
    let name = input.name.and_then(|raw| check.check("name", BoundedText::parse(&raw, 100)));
    check.finish(())?;
    let update = SourceUpdate { name, auto_create_fields: input.auto_create_fields, honor_dnt: input.honor_dnt };
    Ok(Json(SourceBody::new(state.store.update_source(caller.workspace, id, update).await?, &base)))
}

/// Revokes the source: its write key stops working at once. Its data stays.
#[utoipa::path(delete, path = "/api/v1/sources/{id}", tag = "capture", params(("id" = String, Path)),
    responses((status = 200, body = SourceBody), (status = 404)))]
async fn revoke_source(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: SourceId = path_id(&id, "source")?;
    Ok(Json(SourceBody::new(state.store.revoke_source(caller.workspace, id, Utc::now()).await?, &base)))
}

/// Replaces the write key; the old one stops working at once.
#[utoipa::path(post, path = "/api/v1/sources/{id}/rotate-key", tag = "capture", params(("id" = String, Path)),
    responses((status = 200, body = SourceBody), (status = 404)))]
async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<SourceBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: SourceId = path_id(&id, "source")?;
    let source = state.store.rotate_source_key(caller.workspace, id, &mint_write_key()).await?;
    Ok(Json(SourceBody::new(source, &base)))
}

#[cfg(test)]
mod tests {
    use rapport_domain::WorkspaceId;

    use super::*;

    #[test]
    fn snippet_carries_the_key_and_do_not_track() {
        let mut source = Source {
            id: SourceId::new(1),
            workspace_id: WorkspaceId::new(1),
            name: "官网".to_owned(),
            kind: SourceKind::Website,
            write_key: "wk_0123".to_owned(),
            auto_create_fields: false,
            honor_dnt: false,
            created_at: Utc::now(),
            revoked_at: None,
        };
        let call = |snippet: String| snippet.lines().find(|line| line.starts_with("rapport.load")).map(str::to_owned);
        let snippet = tracking_snippet("https://rapport.example.com", &source);
        assert!(snippet.contains(r#"s.src="https://rapport.example.com/rapport.js""#), "{snippet}");
        assert_eq!(
            call(snippet).as_deref(),
            Some(r#"rapport.load("wk_0123", {host: "https://rapport.example.com"});"#)
        );
        source.honor_dnt = true;
        assert_eq!(
            call(tracking_snippet("http://127.0.0.1:8080", &source)).as_deref(),
            Some(r#"rapport.load("wk_0123", {host: "http://127.0.0.1:8080", respectDnt: true});"#)
        );
    }
}

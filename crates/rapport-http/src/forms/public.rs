//! The public side of forms, reached by visitors without an API key: `GET /f/{id}` (the hosted page) and `GET
//! /f/{id}/embed.js` here, `POST /f/{id}` (a submission) in `submit.rs`, and what both share: loading a form,
//! choosing the language, the client's address, error pages.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rapport_domain::FormId;
use rapport_store::{Form, FormStatus};
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::answers::{AnswerError, RawAnswers};
use super::definition::{FieldKind, FormDefinition, Lang, Localized};
use super::page::{FORM_STYLE, Rendering, escape, form_markup, language_links, page};
use super::wire::FormDefinitionWire;
use crate::error::Validator;
use crate::sources::{BaseUrl, tracking_snippet};
use crate::state::AppState;

/// The embed's behaviour: a plain script compiled into the binary, called with the form's configuration.
const EMBED_SCRIPT: &str = include_str!("../../assets/form-embed.js");
/// The website tracker's cookie, first-party on the hosted page's origin when the tracker runs there.
pub(super) const ANONYMOUS_ID_COOKIE: &str = "rapport_anonymous_id";
pub(super) const MAX_SUBMISSION_BYTES: usize = 64 * 1024;
pub(super) const USER_AGENT_MAX: usize = 512;
const URL_MAX: usize = 2_048;

pub fn routes() -> Router<AppState> {
    // The embed posts from customers' pages; which origins may is checked per form.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .expose_headers([header::RETRY_AFTER]);
    // The explicit OPTIONS route puts preflight requests through the CORS layer, which answers them; without it
    // the router's method-not-allowed fallback would.
    Router::new()
        .route("/f/{id}", get(show).post(super::submit::submit).options(|| async { StatusCode::NO_CONTENT }))
        .route("/f/{id}/embed.js", get(embed_script))
        .layer(cors)
}

/// The visitor's address: the peer, or the first `X-Forwarded-For` hop when the server is configured to trust it
/// (only behind a reverse proxy that sets it).
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ClientAddress, Self::Rejection> {
        if state.forms.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .and_then(|first| first.trim().parse::<IpAddr>().ok());
            if forwarded.is_some() {
                return Ok(ClientAddress(forwarded));
            }
        }
        Ok(ClientAddress(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())))
    }
}

/// A form as the public side uses it.
pub(super) struct PublicForm {
    pub(super) record: Form,
    pub(super) definition: FormDefinition,
}

/// Why a form cannot be shown or submitted.
pub(super) enum Unavailable {
    NotFound,
    Closed,
    Failed(anyhow::Error),
}

pub(super) async fn load(state: &AppState, raw_id: &str) -> Result<PublicForm, Unavailable> {
    let id: FormId = raw_id.parse().map_err(|_| Unavailable::NotFound)?;
    let record = match state.store.form_by_id(id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Unavailable::NotFound),
        Err(error) => return Err(Unavailable::Failed(anyhow::Error::new(error))),
    };
    if record.status == FormStatus::Archived {
        return Err(Unavailable::Closed);
    }
    let definition = stored_definition(&record).map_err(Unavailable::Failed)?;
    Ok(PublicForm { record, definition })
}

/// Parses a stored definition; it was checked when saved, so a failure here is a server fault.
pub fn stored_definition(form: &Form) -> anyhow::Result<FormDefinition> {
    let wire: FormDefinitionWire = serde_json::from_value(form.definition.clone())
        .map_err(|error| anyhow::anyhow!("stored definition of form {} does not parse: {error}", form.id))?;
    let mut check = Validator::default();
    FormDefinition::parse(&wire, None, &mut check)
        .ok_or_else(|| anyhow::anyhow!("stored definition of form {} is invalid", form.id))
}

pub(super) fn unavailable_page(lang: Lang, why: Unavailable) -> Response {
    let (status, zh, en) = match why {
        Unavailable::NotFound => (StatusCode::NOT_FOUND, "找不到此表单。", "This form does not exist."),
        Unavailable::Closed => (StatusCode::GONE, "此表单已停止收集。", "This form is no longer accepting answers."),
        Unavailable::Failed(error) => {
            tracing::error!(error = format!("{error:#}"), "a form could not be loaded");
            (StatusCode::INTERNAL_SERVER_ERROR, "出错了，请稍后再试。", "Something went wrong. Please try again later.")
        }
    };
    let text = Localized::both(zh, en);
    let body = format!(r#"<p class="rapport-form-intro" role="alert">{}</p>"#, escape(text.get(lang)));
    (status, no_store(), Html(page(lang, text.get(lang), &body, ""))).into_response()
}

pub(super) fn unavailable_json(why: Unavailable) -> Response {
    let (status, code, message) = match why {
        Unavailable::NotFound => (StatusCode::NOT_FOUND, "not_found", "找不到此表单。/ This form does not exist."),
        Unavailable::Closed => {
            (StatusCode::GONE, "form_closed", "此表单已停止收集。/ This form is no longer accepting answers.")
        }
        Unavailable::Failed(error) => return crate::error::ApiError::internal(error).into_response(),
    };
    json_error(status, code, message, Value::Null)
}

pub(super) fn json_error(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let mut error = json!({"code": code, "message": message});
    if !details.is_null() {
        error["details"] = details;
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

pub(super) fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// `?lang=`, else the browser's `Accept-Language`, else the form's default.
pub(super) fn pick_lang(explicit: Option<&str>, headers: &HeaderMap, default: Lang) -> Lang {
    explicit
        .and_then(Lang::parse)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(default)
}

pub(super) fn header_text(headers: &HeaderMap, name: header::HeaderName, max: usize) -> Option<String> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    (!text.is_empty()).then(|| text.chars().take(max).collect())
}

/// An absolute http(s) URL, or nothing: referrers and page URLs are recorded, never trusted.
pub(super) fn web_url(raw: Option<&str>) -> Option<String> {
    let url = raw?.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= URL_MAX
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then(|| url.to_owned())
}

pub(super) fn query_lang(query: &[(String, String)]) -> Option<&str> {
    query.iter().find(|(key, _)| key == "lang").map(|(_, value)| value.as_str())
}

// ----- The hosted page -----

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    base: BaseUrl,
) -> Response {
    let form = match load(&state, &id).await {
        Ok(form) => form,
        Err(why) => return unavailable_page(pick_lang(query_lang(&query), &headers, Lang::Zh), why),
    };
    let lang = pick_lang(query_lang(&query), &headers, form.definition.default_language);
    // The query string may fill answers in (a campaign in a hidden field, an email the link already knows).
    let mut values: RawAnswers = HashMap::new();
    for (key, value) in query {
        if form.definition.fields.iter().any(|field| field.key == key) {
            values.entry(key).or_default().push(value);
        }
    }
    let referrer = web_url(headers.get(header::REFERER).and_then(|value| value.to_str().ok())).unwrap_or_default();
    let token = state.forms.issue_token(form.record.id);
    hosted_page(&state, &form, lang, &base, &token, &values, &[], &referrer, StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn hosted_page(
    state: &AppState,
    form: &PublicForm,
    lang: Lang,
    base: &BaseUrl,
    token: &str,
    values: &RawAnswers,
    errors: &[AnswerError],
    referrer: &str,
    status: StatusCode,
) -> Response {
    let id = form.record.id.to_string();
    let path = format!("/f/{id}");
    let action = format!("{path}?lang={}", lang.tag());
    let markup = form_markup(&Rendering {
        form_id: &id,
        form: &form.definition,
        lang,
        action: &action,
        token,
        values,
        errors,
        referrer,
    });
    let title = form.definition.title.as_ref().map_or(form.record.name.as_str(), |title| title.get(lang));
    let mut body = language_links(&path, lang, &hidden_query(&form.definition, values));
    body.push_str(&format!("<h1>{}</h1>", escape(title)));
    if let Some(description) = &form.definition.description {
        body.push_str(&format!(r#"<p class="rapport-form-intro">{}</p>"#, escape(description.get(lang))));
    }
    body.push_str(&markup);
    // The tracker records the visit under the form's source, and leaves the anonymous id in a first-party
    // cookie that the submission reads back.
    let tracker = match state.store.get_source(form.record.workspace_id, form.record.source_id).await {
        Ok(source) if source.revoked_at.is_none() => tracking_snippet(&base.0, &source),
        _ => String::new(),
    };
    let mut response = (status, no_store(), Html(page(lang, title, &body, &tracker))).into_response();
    if let Some(policy) = frame_ancestors(&form.definition) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// `&key=value…` of the hidden fields' values: switching language keeps what the link into the page set (a
/// campaign, a channel). A function of its own, since the encoder is not `Send` and handlers' futures must be.
fn hidden_query(definition: &FormDefinition, values: &RawAnswers) -> String {
    let mut carried = form_urlencoded::Serializer::new(String::new());
    for field in definition.fields.iter().filter(|field| field.kind == FieldKind::Hidden) {
        for value in values.get(&field.key).into_iter().flatten() {
            carried.append_pair(&field.key, value);
        }
    }
    let carried = carried.finish();
    if carried.is_empty() { carried } else { format!("&{carried}") }
}

/// Pages of the allowed origins may frame the hosted page; without a list, any page may.
fn frame_ancestors(definition: &FormDefinition) -> Option<HeaderValue> {
    if definition.allowed_origins.is_empty() {
        return None;
    }
    HeaderValue::from_str(&format!("frame-ancestors 'self' {}", definition.allowed_origins.join(" "))).ok()
}

// ----- The embed -----

async fn embed_script(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    base: BaseUrl,
) -> Response {
    let form = match load(&state, &id).await {
        Ok(form) => form,
        Err(why) => {
            let status = match why {
                Unavailable::NotFound => StatusCode::NOT_FOUND,
                Unavailable::Closed => StatusCode::GONE,
                Unavailable::Failed(error) => {
                    tracing::error!(error = format!("{error:#}"), "a form could not be loaded");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            let script = "console.warn(\"Rapport: this form is not available\");";
            return (status, [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], script).into_response();
        }
    };
    let lang = pick_lang(query_lang(&query), &headers, form.definition.default_language);
    let form_id = form.record.id.to_string();
    let action = format!("{}/f/{form_id}", base.0);
    let token = state.forms.issue_token(form.record.id);
    let referrer = String::new();
    let values = HashMap::new();
    let markup = form_markup(&Rendering {
        form_id: &form_id,
        form: &form.definition,
        lang,
        action: &action,
        token: &token,
        values: &values,
        errors: &[],
        referrer: &referrer,
    });
    let config = json!({
        "formId": form_id,
        "action": action,
        "lang": lang.tag(),
        "html": markup,
        "style": FORM_STYLE,
        "messages": {
            "failed": Localized::both("提交失败，请检查网络后重试。", "The form could not be sent. Please check your connection and try again.").get(lang),
            "invalid": Localized::both("提交未成功，请检查标出的内容。", "The form was not sent. Please check the marked fields.").get(lang),
        },
    });
    let script = format!("{}({config});\n", EMBED_SCRIPT.trim_end().trim_end_matches(';'));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        script,
    )
        .into_response()
}

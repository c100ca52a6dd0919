//! `POST /f/{id}`: a submission, as a plain HTML form post (answered with a page) or as JSON from the embed
//! (answered with JSON). It passes, in order: the form lookup, the embedding origin, the per-address rate limit,
//! the honeypot and the fill-time token, the answers' checks — and only then becomes one tracking message,
//! committed by the ingestion pipeline before the visitor is answered.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use rapport_domain::{FieldEntity, Identity, IdentityKind};
use rapport_engine::IngestError;
use rapport_store::{FormSubmission, NewConsent, TrackingMessage, TrackingOp, TrackingOutcome, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::answers::{AnswerError, RawAnswers, check_answers};
use super::definition::{AfterSubmit, Lang, Localized};
use super::page::{HONEYPOT_INPUT, LANG_INPUT, REFERRER_INPUT, TOKEN_INPUT, escape, page};
use super::public::{
    ANONYMOUS_ID_COOKIE, ClientAddress, MAX_SUBMISSION_BYTES, PublicForm, USER_AGENT_MAX, Unavailable, header_text,
    hosted_page, json_error, load, no_store, pick_lang, query_lang, unavailable_json, unavailable_page, web_url,
};
use crate::sources::BaseUrl;
use crate::state::AppState;

/// What the embed posts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmission {
    answers: Map<String, Value>,
    #[serde(default)]
    token: Option<String>,
    /// The honeypot's content.
    #[serde(default)]
    hp: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    /// The page the form was embedded in, and where its visitor came from.
    #[serde(default)]
    page_url: Option<String>,
    #[serde(default)]
    referrer: Option<String>,
    /// The website tracker's ids on that page, so that the visitor's anonymous history joins the contact.
    #[serde(default)]
    anonymous_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

/// A submission in one shape, whichever way it came.
struct Submission {
    answers: RawAnswers,
    token: Option<String>,
    honeypot: bool,
    lang: Option<String>,
    page_url: Option<String>,
    referrer: Option<String>,
    anonymous_id: Option<String>,
    user_id: Option<String>,
}

impl Submission {
    fn from_urlencoded(body: &[u8], headers: &HeaderMap) -> Submission {
        let mut submission = Submission {
            answers: HashMap::new(),
            token: None,
            honeypot: false,
            lang: None,
            page_url: web_url(headers.get(header::REFERER).and_then(|value| value.to_str().ok())),
            referrer: None,
            anonymous_id: cookie(headers, ANONYMOUS_ID_COOKIE),
            user_id: None,
        };
        for (key, value) in form_urlencoded::parse(body) {
            match key.as_ref() {
                TOKEN_INPUT => submission.token = Some(value.into_owned()),
                HONEYPOT_INPUT => submission.honeypot |= !value.trim().is_empty(),
                LANG_INPUT => submission.lang = Some(value.into_owned()),
                REFERRER_INPUT => submission.referrer = web_url(Some(&value)),
                _ => submission.answers.entry(key.into_owned()).or_default().push(value.into_owned()),
            }
        }
        submission
    }

    fn from_json(input: JsonSubmission) -> Submission {
        let mut answers: RawAnswers = HashMap::new();
        for (key, value) in input.answers {
            let values = answers.entry(key).or_default();
            match value {
                Value::Array(items) => values.extend(items.iter().filter_map(scalar_text)),
                other => values.extend(scalar_text(&other)),
            }
        }
        Submission {
            answers,
            token: input.token,
            honeypot: input.hp.is_some_and(|hp| !hp.trim().is_empty()),
            lang: input.lang,
            page_url: web_url(input.page_url.as_deref()),
            referrer: web_url(input.referrer.as_deref()),
            anonymous_id: input.anonymous_id,
            user_id: input.user_id,
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| {
                form_urlencoded::parse(format!("v={value}").as_bytes()).next().map(|(_, value)| value.into_owned())
            })?
        })
    })
}

/// A visitor id as the tracking pipeline takes it, or nothing: a malformed id is dropped rather than failing the
/// person's submission.
fn visitor_id(kind: IdentityKind, raw: Option<String>) -> Option<String> {
    let raw = raw?;
    Identity::parse(kind, &raw).ok().map(|_| raw.trim().to_owned())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    base: BaseUrl,
    body: Bytes,
) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().to_ascii_lowercase().starts_with("application/json"));
    let form = match load(&state, &id).await {
        Ok(form) => form,
        Err(why) if json => return unavailable_json(why),
        Err(why) => return unavailable_page(pick_lang(query_lang(&query), &headers, Lang::Zh), why),
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) {
        let origin = origin.trim().to_ascii_lowercase();
        let allowed = &form.definition.allowed_origins;
        // Rapport's own hosted page always may; by host, since a proxy in front may have changed the scheme.
        let host_of = |url: &str| url.split_once("://").map(|(_, host)| host.to_owned());
        let own = host_of(&origin).is_some_and(|host| Some(host) == host_of(&base.0.to_ascii_lowercase()));
        if !allowed.is_empty() && !own && !allowed.contains(&origin) {
            return json_error(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "此网站不允许嵌入该表单。/ This form may not be embedded on this site.",
                json!({"origin": origin}),
            );
        }
    }
    if let Err(wait) = state.forms.limiter.take(address.unwrap_or(IpAddr::from([0, 0, 0, 0]))) {
        return rate_limited(json, (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1));
    }
    if body.len() > MAX_SUBMISSION_BYTES {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "提交的内容过大。/ The submission is too large.",
            Value::Null,
        );
    }
    let submission = if json {
        match crate::extract::parse_json::<JsonSubmission>(&body) {
            Ok(input) => Submission::from_json(input),
            Err(error) => return error.into_response(),
        }
    } else {
        Submission::from_urlencoded(&body, &headers)
    };
    let lang = pick_lang(submission.lang.as_deref().or(query_lang(&query)), &headers, form.definition.default_language);
    let reply = Reply { state: &state, form: &form, lang, json, base: &base };

    // A filled honeypot is answered like a success, so that the bot learns nothing; nothing is stored.
    if submission.honeypot {
        tracing::info!(form = %form.record.id, "honeypot filled; submission dropped");
        return reply.accepted();
    }
    let token = submission.token.as_deref().and_then(|token| state.forms.read_token(form.record.id, token));
    if form.definition.min_fill_seconds > 0 {
        match token.as_ref().and_then(|token| token.issued_at) {
            None => {
                let expired = vec![AnswerError {
                    key: String::new(),
                    message: Localized::both("页面已过期，请重新提交。", "This page has expired. Please submit again."),
                }];
                return reply.invalid(&submission, expired, "form_expired").await;
            }
            Some(issued_at) => {
                let elapsed = Utc::now().signed_duration_since(issued_at).num_seconds();
                if elapsed < i64::from(form.definition.min_fill_seconds) {
                    tracing::info!(form = %form.record.id, elapsed, "filled faster than a person; submission dropped");
                    return reply.accepted();
                }
            }
        }
    }

    let custom_fields = match state.store.list_fields(form.record.workspace_id, Some(FieldEntity::Contact)).await {
        Ok(fields) => fields,
        Err(error) => return crate::error::ApiError::from(error).into_response(),
    };
    let checked = match check_answers(&form.definition, &submission.answers, lang, &custom_fields) {
        Ok(checked) => checked,
        Err(errors) => return reply.invalid(&submission, errors, "validation_failed").await,
    };

    let now = Utc::now();
    let ip = address.map(|address| address.to_string());
    let user_agent = header_text(&headers, header::USER_AGENT, USER_AGENT_MAX);
    let consents = checked
        .consents
        .into_iter()
        .map(|(channel, text)| NewConsent {
            channel,
            granted: true,
            recorded_at: now,
            ip: ip.clone(),
            user_agent: user_agent.clone(),
            text,
        })
        .collect();
    let mut properties = Map::new();
    properties.insert("form_id".to_owned(), Value::from(form.record.id.to_string()));
    properties.insert("form_name".to_owned(), Value::from(form.record.name.clone()));
    properties.insert("answers".to_owned(), Value::Object(checked.answers));
    properties.insert("language".to_owned(), Value::from(lang.tag()));
    if let Some(url) = &submission.page_url {
        properties.insert("page_url".to_owned(), Value::from(url.clone()));
    }
    if let Some(referrer) = &submission.referrer {
        properties.insert("referrer".to_owned(), Value::from(referrer.clone()));
    }
    let mut context = Map::new();
    if let Some(user_agent) = &user_agent {
        context.insert("userAgent".to_owned(), Value::from(user_agent.clone()));
    }
    if let Some(ip) = &ip {
        context.insert("ip".to_owned(), Value::from(ip.clone()));
    }
    context.insert("locale".to_owned(), Value::from(lang.tag()));
    // The token's nonce makes a double submission of one rendering one message; without a token, every
    // submission is new.
    let nonce = token.map_or_else(super::random_hex, |token| token.nonce);
    let message = TrackingMessage {
        message_id: format!("form:{}:{nonce}", form.record.id),
        source: form.record.source_id,
        visitor: Visitor {
            user_id: visitor_id(IdentityKind::UserId, submission.user_id.clone()),
            anonymous_id: visitor_id(IdentityKind::AnonymousId, submission.anonymous_id.clone()),
        },
        op: TrackingOp::FormSubmission(Box::new(FormSubmission {
            form_id: form.record.id,
            changes: checked.changes,
            properties,
            context,
            occurred_at: now,
            received_at: now,
            consents,
        })),
    };
    match state.ingestor.submit(form.record.workspace_id, vec![message]).await {
        Ok(outcomes) => match outcomes.into_iter().next() {
            Some(TrackingOutcome::Applied { .. } | TrackingOutcome::Duplicate) => reply.accepted(),
            Some(TrackingOutcome::Rejected { code: "unknown_form", .. }) => {
                if json {
                    unavailable_json(Unavailable::Closed)
                } else {
                    unavailable_page(lang, Unavailable::Closed)
                }
            }
            Some(TrackingOutcome::Rejected { code, message }) => {
                tracing::warn!(form = %form.record.id, code, message, "a form submission was rejected");
                let errors = vec![AnswerError {
                    key: String::new(),
                    message: Localized::both("提交未能保存，请检查后重试。", "The submission could not be saved."),
                }];
                reply.invalid(&submission, errors, code).await
            }
            None => {
                crate::error::ApiError::internal(anyhow::anyhow!("no outcome for a form submission")).into_response()
            }
        },
        Err(IngestError::Overloaded) => rate_limited(json, 1),
        Err(IngestError::Stopped) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "服务器正在重启，请稍后再试。/ The server is restarting; please try again shortly.",
            Value::Null,
        ),
        Err(IngestError::Store(error)) => crate::error::ApiError::from(error).into_response(),
    }
}

fn rate_limited(json: bool, retry_after: u64) -> Response {
    let message = format!(
        "提交过于频繁，请 {retry_after} 秒后再试。/ Too many submissions. Please try again in {retry_after} seconds."
    );
    let mut response = if json {
        json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", &message, json!({"retry_after": retry_after}))
    } else {
        let body = format!(r#"<p class="rapport-form-intro" role="alert">{}</p>"#, escape(&message));
        (StatusCode::TOO_MANY_REQUESTS, no_store(), Html(page(Lang::Zh, "429", &body, ""))).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Answers a submission in the shape it came in.
struct Reply<'a> {
    state: &'a AppState,
    form: &'a PublicForm,
    lang: Lang,
    json: bool,
    base: &'a BaseUrl,
}

impl Reply<'_> {
    fn accepted(&self) -> Response {
        match (&self.form.definition.after_submit, self.json) {
            (AfterSubmit::Redirect(url), true) => axum::Json(json!({"ok": true, "redirect": url})).into_response(),
            (AfterSubmit::Redirect(url), false) => Redirect::to(url).into_response(),
            (AfterSubmit::Message(message), true) => {
                axum::Json(json!({"ok": true, "message": message.get(self.lang)})).into_response()
            }
            (AfterSubmit::Message(message), false) => {
                let text = message.get(self.lang);
                let title =
                    self.form.definition.title.as_ref().map_or(self.form.record.name.as_str(), |t| t.get(self.lang));
                let body = format!(
                    r#"<h1>{}</h1><div class="rapport-form-done" role="status">{}</div>"#,
                    escape(title),
                    escape(text)
                );
                (StatusCode::OK, no_store(), Html(page(self.lang, title, &body, ""))).into_response()
            }
        }
    }

    /// `422`: the page again with the answers and a message per field, or the errors as JSON.
    async fn invalid(&self, submission: &Submission, errors: Vec<AnswerError>, code: &str) -> Response {
        if self.json {
            let fields: Vec<Value> = errors
                .iter()
                .map(|error| {
                    let field =
                        if error.key.is_empty() { "answers".to_owned() } else { format!("answers.{}", error.key) };
                    json!({
                        "field": field,
                        "key": error.key,
                        "message": error.message.get(self.lang),
                        "messages": {"zh-CN": error.message.get(Lang::Zh), "en": error.message.get(Lang::En)},
                    })
                })
                .collect();
            let message = errors.first().map_or(String::new(), |first| {
                let field = if first.key.is_empty() { "answers".to_owned() } else { format!("answers.{}", first.key) };
                format!("{field}: {}", first.message.get(self.lang))
            });
            let mut details = json!({ "fields": fields });
            if code == "form_expired" {
                details["token"] = Value::from(self.state.forms.issue_token(self.form.record.id));
            }
            return json_error(StatusCode::UNPROCESSABLE_ENTITY, code, &message, details);
        }
        // A fresh token: the old one may have expired, and this rendering is a new attempt.
        let token = if code == "form_expired" {
            self.state.forms.issue_token(self.form.record.id)
        } else {
            submission.token.clone().unwrap_or_else(|| self.state.forms.issue_token(self.form.record.id))
        };
        let referrer = submission.referrer.clone().unwrap_or_default();
        hosted_page(
            self.state,
            self.form,
            self.lang,
            self.base,
            &token,
            &submission.answers,
            &errors,
            &referrer,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await
    }
}

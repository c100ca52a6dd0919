//! Hosted forms. `/api/v1/forms` manages them (this file); `public.rs` serves them to visitors at `/f/{id}`, as a
//! page and as an embed, and `submit.rs` takes their submissions. `wire.rs` is a definition's JSON shape and
//! `definition.rs` its parsed form and checks, `answers.rs` the checks of a submission, `page.rs` the HTML,
//! `limit.rs` the per-address rate limit.

mod answers;
mod definition;
mod limit;
mod page;
mod public;
mod submit;
mod wire;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use rand::RngCore;
use rand::rngs::OsRng;
use rapport_domain::{BoundedText, ContactId, FieldEntity, FormId, Permission, SourceId};
use rapport_store::{Consent, Form, FormStatus, FormUpdate, NewForm, NewSource, SourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, path_id};
use crate::sources::{BaseUrl, mint_write_key};
use crate::state::AppState;
use crate::wire::{ListBody, WireId, time};
pub use definition::FormDefinition;
pub use limit::RateLimit;
pub use public::routes as public_routes;
pub use wire::{AfterSubmitWire, FormDefinitionWire, FormFieldWire, FormOptionWire, LocalizedWire};

/// The name of the source that forms record under unless they name one.
const FORMS_SOURCE_NAME: &str = "Hosted forms";

/// How the public side of forms behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormsConfig {
    /// Submissions per client address.
    pub rate_limit: RateLimit,
    /// Take the client address from the first `X-Forwarded-For` hop. Only behind a reverse proxy that sets it:
    /// otherwise any client can claim any address.
    pub trust_forwarded_for: bool,
}

/// The public side's state: the rate limiter and the key that signs the tokens rendered into forms.
pub struct FormsRuntime {
    limiter: limit::RateLimiter,
    signing_key: [u8; 32],
    trust_forwarded_for: bool,
}

/// A token read back from a submission: its nonce (the submission's idempotency key) and, when its signature
/// holds, when the form was shown.
pub struct FormToken {
    nonce: String,
    issued_at: Option<DateTime<Utc>>,
}

impl FormsRuntime {
    /// The signing key is drawn at start: tokens shown before a restart keep their nonce but lose their time.
    pub fn new(config: FormsConfig) -> FormsRuntime {
        let mut signing_key = [0_u8; 32];
        OsRng.fill_bytes(&mut signing_key);
        FormsRuntime {
            limiter: limit::RateLimiter::new(config.rate_limit),
            signing_key,
            trust_forwarded_for: config.trust_forwarded_for,
        }
    }

    /// `{issued ms}.{nonce}.{signature}`: rendered into every form shown.
    fn issue_token(&self, form: FormId) -> String {
        let issued = Utc::now().timestamp_millis();
        let nonce = random_hex();
        let signature = self.sign(form, issued, &nonce);
        format!("{issued}.{nonce}.{signature}")
    }

    fn read_token(&self, form: FormId, token: &str) -> Option<FormToken> {
        let mut parts = token.trim().split('.');
        let (issued, nonce, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || nonce.len() != 32 || !nonce.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let issued: i64 = issued.parse().ok()?;
        let expected = self.sign(form, issued, nonce);
        let valid = expected.len() == signature.len()
            && expected.bytes().zip(signature.bytes()).fold(0_u8, |diff, (a, b)| diff | (a ^ b)) == 0;
        let issued_at = valid.then(|| DateTime::from_timestamp_millis(issued)).flatten();
        Some(FormToken { nonce: nonce.to_ascii_lowercase(), issued_at })
    }

    /// HMAC-SHA-256 (RFC 2104) of the token's parts, the first 16 bytes in hex.
    fn sign(&self, form: FormId, issued: i64, nonce: &str) -> String {
        let mut inner_pad = [0x36_u8; 64];
        let mut outer_pad = [0x5c_u8; 64];
        for (index, byte) in self.signing_key.iter().enumerate() {
            inner_pad[index] ^= byte;
            outer_pad[index] ^= byte;
        }
        let inner = Sha256::new().chain_update(inner_pad).chain_update(format!("{form}.{issued}.{nonce}")).finalize();
        let outer = Sha256::new().chain_update(outer_pad).chain_update(inner).finalize();
        outer.iter().take(16).map(|byte| format!("{byte:02x}")).collect()
    }
}

/// 16 random bytes in hex.
fn random_hex() -> String {
    let mut bytes = [0_u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_forms, create_form))
        .routes(routes!(get_form, update_form, archive_form))
        .routes(routes!(contact_consents))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FormBody {
    pub id: String,
    pub name: String,
    /// `active` or `archived`.
    pub status: String,
    /// The source its submissions and its hosted page's visits are recorded under.
    pub source_id: String,
    pub definition: FormDefinitionWire,
    pub submission_count: u64,
    /// The hosted page, to link to or share as a QR code.
    pub hosted_url: String,
    /// The HTML to paste where the form should appear on another site.
    pub embed: String,
    pub created_at: String,
    pub updated_at: String,
}

impl FormBody {
    fn new(form: Form, base: &BaseUrl) -> ApiResult<FormBody> {
        let definition: FormDefinitionWire = serde_json::from_value(form.definition)
            .map_err(|error| ApiError::internal(anyhow::anyhow!("stored form {} does not parse: {error}", form.id)))?;
        let hosted_url = format!("{}/f/{}", base.0, form.id);
        Ok(FormBody {
            embed: format!(
                "<div id=\"rapport-form-{id}\"></div>\n<script src=\"{hosted_url}/embed.js\" async></script>",
                id = form.id
            ),
            hosted_url,
            id: form.id.to_string(),
            name: form.name,
            status: form.status.as_str().to_owned(),
            source_id: form.source_id.to_string(),
            definition,
            submission_count: form.submission_count,
            created_at: time(form.created_at),
            updated_at: time(form.updated_at),
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormInput {
    pub name: String,
    pub definition: FormDefinitionWire,
    /// The source to record under; by default the workspace's "Hosted forms" source, created on first use.
    #[serde(default)]
    pub source_id: Option<WireId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormPatchInput {
    #[serde(default)]
    pub name: Option<String>,
    /// Replaces the whole definition.
    #[serde(default)]
    pub definition: Option<FormDefinitionWire>,
    /// `active` or `archived`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Checks a definition against the workspace's custom fields and returns the document to store.
async fn checked_definition(
    state: &AppState,
    caller: &Caller,
    wire: FormDefinitionWire,
    check: &mut Validator,
) -> ApiResult<Value> {
    let custom_fields = state.store.list_fields(caller.workspace, Some(FieldEntity::Contact)).await?;
    FormDefinition::parse(&wire, Some(&custom_fields), check);
    serde_json::to_value(&wire).map_err(|error| ApiError::internal(anyhow::Error::new(error)))
}

#[utoipa::path(get, path = "/api/v1/forms", tag = "forms", responses((status = 200, body = ListBody<FormBody>)))]
async fn list_forms(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
) -> ApiResult<Json<ListBody<FormBody>>> {
    caller.require(Permission::Read)?;
    let forms = state.store.list_forms(caller.workspace).await?;
    let items = forms.into_iter().map(|form| FormBody::new(form, &base)).collect::<ApiResult<_>>()?;
    Ok(Json(ListBody { items, next_cursor: None }))
}

/// Creates a form. Every problem of the definition is reported at once, by its JSON path
/// (`definition.fields[2].maps_to`); nothing is written then.
#[utoipa::path(post, path = "/api/v1/forms", tag = "forms", request_body = FormInput,
    responses((status = 201, body = FormBody), (status = 400, description = "validation_failed, unknown_source")))]
async fn create_form(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    ApiJson(input): ApiJson<FormInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageSchema)?;
    let mut check = Validator::default();
    let name = check.check("name", BoundedText::parse(&input.name, 200));
    let source_id = input.source_id.as_ref().and_then(|id| check.check("source_id", id.parse::<SourceId>()));
    let definition = checked_definition(&state, &caller, input.definition, &mut check).await?;
    check.finish(())?;
    let Some(name) = name else { return Err(ApiError::field("name", "is invalid")) };
    let source_id = match source_id {
        Some(id) => id,
        None => forms_source(&state, &caller).await?,
    };
    let form = state.store.create_form(caller.workspace, NewForm { name, definition, source_id }).await?;
    Ok((StatusCode::CREATED, Json(FormBody::new(form, &base)?)))
}

/// The workspace's "Hosted forms" source, created on first use.
async fn forms_source(state: &AppState, caller: &Caller) -> ApiResult<SourceId> {
    let sources = state.store.list_sources(caller.workspace).await?;
    if let Some(source) = sources.iter().find(|source| {
        source.name == FORMS_SOURCE_NAME && source.kind == SourceKind::Website && source.revoked_at.is_none()
    }) {
        return Ok(source.id);
    }
    let name =
        BoundedText::parse(FORMS_SOURCE_NAME, 100).map_err(|error| ApiError::internal(anyhow::Error::new(error)))?;
    let source = NewSource {
        name,
        kind: SourceKind::Website,
        write_key: mint_write_key(),
        auto_create_fields: false,
        honor_dnt: false,
    };
    Ok(state.store.create_source(caller.workspace, source).await?.id)
}

#[utoipa::path(get, path = "/api/v1/forms/{id}", tag = "forms", params(("id" = String, Path)),
    responses((status = 200, body = FormBody), (status = 404)))]
async fn get_form(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<FormBody>> {
    caller.require(Permission::Read)?;
    let id: FormId = path_id(&id, "form")?;
    Ok(Json(FormBody::new(state.store.get_form(caller.workspace, id).await?, &base)?))
}

/// Renames a form, replaces its definition, or archives (`"status": "archived"`) or reopens it.
#[utoipa::path(patch, path = "/api/v1/forms/{id}", tag = "forms", params(("id" = String, Path)),
    request_body = FormPatchInput, responses((status = 200, body = FormBody), (status = 400), (status = 404)))]
async fn update_form(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<FormPatchInput>,
) -> ApiResult<Json<FormBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: FormId = path_id(&id, "form")?;
    let mut check = Validator::default();
    let name = input.name.and_then(|raw| check.check("name", BoundedText::parse(&raw, 200)));
    let status =
        input.status.and_then(|raw| check.check("status", FormStatus::parse(&raw).ok_or("must be active or archived")));
    let definition = match input.definition {
        Some(wire) => Some(checked_definition(&state, &caller, wire, &mut check).await?),
        None => None,
    };
    check.finish(())?;
    let form = state.store.update_form(caller.workspace, id, FormUpdate { name, definition, status }).await?;
    Ok(Json(FormBody::new(form, &base)?))
}

/// Archives the form: its page and embed stop accepting answers; the form, its count and every submission stay.
#[utoipa::path(delete, path = "/api/v1/forms/{id}", tag = "forms", params(("id" = String, Path)),
    responses((status = 200, body = FormBody), (status = 404)))]
async fn archive_form(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
) -> ApiResult<Json<FormBody>> {
    caller.require(Permission::ManageSchema)?;
    let id: FormId = path_id(&id, "form")?;
    let update = FormUpdate { status: Some(FormStatus::Archived), ..FormUpdate::default() };
    Ok(Json(FormBody::new(state.store.update_form(caller.workspace, id, update).await?, &base)?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentBody {
    /// `email`, `sms`, `phone` or `wechat`.
    pub channel: String,
    pub granted: bool,
    pub recorded_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The text the person was shown, word for word.
    pub text: String,
    pub form_id: Option<String>,
    pub message_id: Option<String>,
}

impl From<Consent> for ConsentBody {
    fn from(consent: Consent) -> ConsentBody {
        ConsentBody {
            channel: consent.channel.as_str().to_owned(),
            granted: consent.granted,
            recorded_at: time(consent.recorded_at),
            ip: consent.ip,
            user_agent: consent.user_agent,
            text: consent.text,
            form_id: consent.form_id.map(|id| id.to_string()),
            message_id: consent.message_id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentsBody {
    /// The current state per channel: the newest record of each.
    pub current: Vec<ConsentBody>,
    /// Every record, newest first.
    pub history: Vec<ConsentBody>,
}

/// The contact's consent per channel, with its proof.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/consents", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, body = ConsentsBody), (status = 404)))]
async fn contact_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentsBody>> {
    caller.require(Permission::Read)?;
    let id: ContactId = path_id(&id, "contact")?;
    let history = state.store.contact_consents(caller.workspace, id).await?;
    let mut seen = Vec::new();
    let current = history
        .iter()
        .filter(|consent| {
            let first = !seen.contains(&consent.channel);
            seen.push(consent.channel);
            first
        })
        .cloned()
        .map(ConsentBody::from)
        .collect();
    Ok(Json(ConsentsBody { current, history: history.into_iter().map(ConsentBody::from).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_a_nonce_and_a_signed_time() {
        let runtime = FormsRuntime::new(FormsConfig::default());
        let form = FormId::new(7);
        let token = runtime.issue_token(form);
        let Some(read) = runtime.read_token(form, &token) else { panic!("a fresh token reads back: {token}") };
        assert_eq!(read.nonce.len(), 32);
        let age = Utc::now().signed_duration_since(read.issued_at.unwrap_or_default());
        assert!(age.num_seconds() < 5, "{age}");

        // Another form's, tampered with, or signed before a restart: the nonce still names the submission, but
        // the time is not believed.
        let other = runtime.read_token(FormId::new(8), &token).map(|token| token.issued_at);
        assert_eq!(other, Some(None));
        let (rest, _) = token.rsplit_once('.').unwrap_or_default();
        let tampered = runtime.read_token(form, &format!("{rest}.00000000000000000000000000000000"));
        assert_eq!(tampered.map(|token| (token.nonce, token.issued_at)), Some((read.nonce.clone(), None)));
        let restarted = FormsRuntime::new(FormsConfig::default()).read_token(form, &token);
        assert_eq!(restarted.map(|token| token.issued_at), Some(None));
        for malformed in ["", "x", "1.2.3", "1.zz.3", &format!("{token}.4")] {
            assert!(runtime.read_token(form, malformed).is_none(), "{malformed:?}");
        }
    }
}

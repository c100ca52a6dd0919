//! `/api/v1/companies`: accounts, with a normalised domain unique per workspace.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rapport_domain::{BoundedText, CompanyId, FieldEntity, Permission, normalize_domain};
use rapport_store::{Company, CompanyChanges, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::contacts::custom_values;
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, ApiQuery, Nullable, path_id};
use crate::state::AppState;
use crate::wire::{ListBody, decode_cursor, encode_cursor, page_limit, time};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_companies, create_company)).routes(routes!(
        get_company,
        update_company,
        delete_company
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompanyBody {
    pub id: String,
    pub name: String,
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub size: Option<String>,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub contact_count: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Company> for CompanyBody {
    fn from(company: Company) -> CompanyBody {
        CompanyBody {
            id: company.id.to_string(),
            name: company.name,
            domain: company.domain,
            industry: company.industry,
            size: company.size,
            fields: company.fields,
            contact_count: company.contact_count,
            created_at: time(company.created_at),
            updated_at: time(company.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanyInput {
    #[serde(default)]
    pub name: Option<String>,
    /// A web domain or URL; stored normalised (`https://www.Example.com/x` → `example.com`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub domain: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub industry: Nullable<String>,
    /// A size band such as `200-499`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub size: Nullable<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Map<String, Value>>,
}

async fn parse(state: &AppState, caller: &Caller, input: CompanyInput, creating: bool) -> ApiResult<CompanyChanges> {
    let definitions = state.store.list_fields(caller.workspace, Some(FieldEntity::Company)).await?;
    let mut check = Validator::default();
    let name = input.name.and_then(|raw| check.check("name", BoundedText::parse(&raw, 200)));
    if creating && name.is_none() && check.is_empty() {
        check.error("name", "is required");
    }
    let domain = check
        .check("domain", input.domain.parse(|raw| normalize_domain(&raw).ok_or("is not a valid web domain")))
        .unwrap_or_default();
    let industry =
        check.check("industry", input.industry.parse(|raw| BoundedText::parse(&raw, 100))).unwrap_or_default();
    let size = check.check("size", input.size.parse(|raw| BoundedText::parse(&raw, 50))).unwrap_or_default();
    let fields = custom_values(input.fields.unwrap_or_default(), &definitions, &mut check);
    check.finish(CompanyChanges { name, domain, industry, size, fields })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompanyListParams {
    /// Find the company with this domain.
    pub domain: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/companies", tag = "companies", params(CompanyListParams),
    responses((status = 200, body = ListBody<CompanyBody>)))]
async fn list_companies(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CompanyListParams>,
) -> ApiResult<Json<ListBody<CompanyBody>>> {
    caller.require(Permission::Read)?;
    if let Some(raw) = params.domain {
        let domain = normalize_domain(&raw).ok_or_else(|| ApiError::field("domain", "is not a valid web domain"))?;
        let found = state.store.company_by_domain(caller.workspace, &domain).await?;
        return Ok(Json(ListBody { items: found.into_iter().map(CompanyBody::from).collect(), next_cursor: None }));
    }
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(CompanyId::new(decode_cursor(cursor, 1)?[0])),
    };
    let page = state.store.list_companies(caller.workspace, PageRequest { after, limit }).await?;
    Ok(Json(ListBody {
        items: page.items.into_iter().map(CompanyBody::from).collect(),
        next_cursor: page.next.map(|next| encode_cursor(&[next.get()])),
    }))
}

#[utoipa::path(post, path = "/api/v1/companies", tag = "companies", request_body = CompanyInput,
    responses((status = 201, body = CompanyBody), (status = 409, description = "company_exists")))]
async fn create_company(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<CompanyInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::WriteContacts)?;
    let changes = parse(&state, &caller, input, true).await?;
    let company = state.store.create_company(caller.workspace, changes).await?;
    Ok((StatusCode::CREATED, Json(CompanyBody::from(company))))
}

#[utoipa::path(get, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = String, Path)),
    responses((status = 200, body = CompanyBody), (status = 404)))]
async fn get_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CompanyBody>> {
    caller.require(Permission::Read)?;
    let id: CompanyId = path_id(&id, "company")?;
    Ok(Json(state.store.get_company(caller.workspace, id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = String, Path)),
    request_body = CompanyInput, responses((status = 200, body = CompanyBody), (status = 404)))]
async fn update_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CompanyInput>,
) -> ApiResult<Json<CompanyBody>> {
    caller.require(Permission::WriteContacts)?;
    let id: CompanyId = path_id(&id, "company")?;
    let changes = parse(&state, &caller, input, false).await?;
    Ok(Json(state.store.update_company(caller.workspace, id, changes).await?.into()))
}

/// Deletes the company; its contacts stay, without the link.
#[utoipa::path(delete, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_company(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::EraseContacts)?;
    let id: CompanyId = path_id(&id, "company")?;
    state.store.delete_company(caller.workspace, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

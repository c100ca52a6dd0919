//! `/api/v1/users` and `/api/v1/api-keys`: who may use the workspace, and with which role.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use rapport_domain::{ApiKeyId, BoundedText, EmailAddress, Permission, Role, UserId};
use rapport_store::{ApiKey, NewApiKey, NewUser, PageRequest, User, UserUpdate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, hash_password, mint_token};
use crate::error::{ApiError, ApiResult, Validator};
use crate::extract::{ApiJson, ApiQuery, path_id};
use crate::state::AppState;
use crate::wire::{ListBody, PageParams, decode_cursor, encode_cursor, page_limit, time};

const MIN_PASSWORD_CHARS: usize = 10;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: String,
    pub email: String,
    pub name: String,
    /// owner, admin, marketer, sales_manager, sales_rep or viewer.
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<User> for UserBody {
    fn from(user: User) -> UserBody {
        UserBody {
            id: user.id.to_string(),
            email: user.email,
            name: user.name,
            role: user.role.as_str().to_owned(),
            created_at: time(user.created_at),
            updated_at: time(user.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub email: String,
    pub name: String,
    pub role: String,
    /// At least 10 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

fn parse_role(check: &mut Validator, caller: &Caller, raw: &str) -> Option<Role> {
    let role = check.check(
        "role",
        Role::parse(raw).ok_or("must be one of owner, admin, marketer, sales_manager, sales_rep, viewer"),
    )?;
    if !caller.role.may_grant(role) {
        check.error("role", format!("a key with role {} cannot grant {role}", caller.role));
        return None;
    }
    Some(role)
}

fn check_password(check: &mut Validator, password: &str) {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        check.error("password", format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    } else if password.len() > 1_024 {
        check.error("password", "must be at most 1024 bytes");
    }
}

async fn hash_off_executor(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| ApiError::internal(error.into()))?
        .map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/api/v1/users", tag = "access", params(PageParams),
    responses((status = 200, body = ListBody<UserBody>)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> ApiResult<Json<ListBody<UserBody>>> {
    caller.require(Permission::Read)?;
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(UserId::new(decode_cursor(cursor, 1)?[0])),
    };
    let page = state.store.list_users(caller.workspace, PageRequest { after, limit }).await?;
    Ok(Json(ListBody {
        items: page.items.into_iter().map(UserBody::from).collect(),
        next_cursor: page.next.map(|next| encode_cursor(&[next.get()])),
    }))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = UserInput,
    responses((status = 201, body = UserBody), (status = 409, description = "user_exists")))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<UserInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageAccess)?;
    let mut check = Validator::default();
    let email = check.check("email", EmailAddress::parse(&input.email));
    let name = check.check("name", BoundedText::parse(&input.name, 100));
    let role = parse_role(&mut check, &caller, &input.role);
    check_password(&mut check, &input.password);
    check.finish(())?;
    let (Some(email), Some(name), Some(role)) = (email, name, role) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let password_hash = hash_off_executor(input.password).await?;
    let user = state.store.create_user(caller.workspace, NewUser { email, name, role, password_hash }).await?;
    Ok((StatusCode::CREATED, Json(UserBody::from(user))))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 200, body = UserBody), (status = 404)))]
async fn get_user(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<UserBody>> {
    caller.require(Permission::Read)?;
    let id: UserId = path_id(&id, "user")?;
    Ok(Json(state.store.get_user(caller.workspace, id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "access", params(("id" = String, Path)),
    request_body = UserPatchInput, responses((status = 200, body = UserBody), (status = 404)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UserPatchInput>,
) -> ApiResult<Json<UserBody>> {
    caller.require(Permission::ManageAccess)?;
    let id: UserId = path_id(&id, "user")?;
    let current = state.store.get_user(caller.workspace, id).await?;
    let mut check = Validator::default();
    if !caller.role.may_grant(current.role) {
        return Err(ApiError::forbidden(format!("a key with role {} cannot change a {}", caller.role, current.role)));
    }
    let name = input.name.and_then(|raw| check.check("name", BoundedText::parse(&raw, 100)));
    let role = input.role.and_then(|raw| parse_role(&mut check, &caller, &raw));
    if let Some(password) = &input.password {
        check_password(&mut check, password);
    }
    check.finish(())?;
    let password_hash = match input.password {
        Some(password) => Some(hash_off_executor(password).await?),
        None => None,
    };
    let update = UserUpdate { name, role, password_hash };
    Ok(Json(state.store.update_user(caller.workspace, id, update).await?.into()))
}

/// Removes the user; contacts they owned become unowned.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_user(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageAccess)?;
    let id: UserId = path_id(&id, "user")?;
    let current = state.store.get_user(caller.workspace, id).await?;
    if !caller.role.may_grant(current.role) {
        return Err(ApiError::forbidden(format!("a key with role {} cannot remove a {}", caller.role, current.role)));
    }
    state.store.delete_user(caller.workspace, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyBody {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKey> for ApiKeyBody {
    fn from(key: ApiKey) -> ApiKeyBody {
        ApiKeyBody {
            id: key.id.to_string(),
            name: key.name,
            role: key.role.as_str().to_owned(),
            prefix: key.prefix,
            created_at: time(key.created_at),
            last_used_at: key.last_used_at.map(time),
            revoked_at: key.revoked_at.map(time),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyBody {
    #[serde(flatten)]
    pub key: ApiKeyBody,
    /// The secret key. It is shown only in this response.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    pub name: String,
    /// Defaults to `marketer`; never above the caller's own role.
    #[serde(default)]
    pub role: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "access", responses((status = 200, body = ListBody<ApiKeyBody>)))]
async fn list_keys(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<ListBody<ApiKeyBody>>> {
    caller.require(Permission::ManageAccess)?;
    let keys = state.store.list_api_keys(caller.workspace).await?;
    Ok(Json(ListBody { items: keys.into_iter().map(ApiKeyBody::from).collect(), next_cursor: None }))
}

/// Creates an API key. The secret `token` is in this response only; Rapport keeps just its hash.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "access", request_body = ApiKeyInput,
    responses((status = 201, body = CreatedApiKeyBody)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(input): ApiJson<ApiKeyInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageAccess)?;
    let mut check = Validator::default();
    let name = check.check("name", BoundedText::parse(&input.name, 100));
    let role = parse_role(&mut check, &caller, input.role.as_deref().unwrap_or("marketer"));
    check.finish(())?;
    let (Some(name), Some(role)) = (name, role) else {
        return Err(ApiError::field("body", "is invalid"));
    };
    let minted = mint_token();
    let key = NewApiKey { name, role, prefix: minted.prefix, token_hash: minted.hash };
    let key = state.store.create_api_key(caller.workspace, key).await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKeyBody { key: key.into(), token: minted.token })))
}

#[utoipa::path(get, path = "/api/v1/api-keys/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyBody), (status = 404)))]
async fn get_key(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ApiKeyBody>> {
    caller.require(Permission::ManageAccess)?;
    let id: ApiKeyId = path_id(&id, "API key")?;
    Ok(Json(state.store.get_api_key(caller.workspace, id).await?.into()))
}

/// Revokes the key at once; requests with it are refused from now on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyBody), (status = 404)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKeyBody>> {
    caller.require(Permission::ManageAccess)?;
    let id: ApiKeyId = path_id(&id, "API key")?;
    let key = state.store.get_api_key(caller.workspace, id).await?;
    if !caller.role.may_grant(key.role) {
        return Err(ApiError::forbidden(format!("a key with role {} cannot revoke a {} key", caller.role, key.role)));
    }
    Ok(Json(state.store.revoke_api_key(caller.workspace, id, Utc::now()).await?.into()))
}

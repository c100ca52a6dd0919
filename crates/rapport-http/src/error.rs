//! The API's error type: every failure becomes `{"error": {"code", "message", "details"}}` with a stable code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rapport_store::StoreError;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Where the resource lives now, for redirects.
    pub location: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`), for `503`s of a component still starting.
    pub retry_after: Option<u32>,
}

/// One invalid input field, named by its JSON path (`email`, `contacts[3].fields.budget`).
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Null, location: None, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(entity: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{entity} not found"))
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A request whose fields failed validation; the message names the first field, `details.fields` lists all.
    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        let message = match errors.first() {
            Some(first) if errors.len() == 1 => format!("{}: {}", first.field, first.message),
            Some(first) => format!("{}: {} (and {} more)", first.field, first.message, errors.len() - 1),
            None => "the request is invalid".to_owned(),
        };
        let fields: Vec<Value> =
            errors.iter().map(|error| json!({"field": error.field, "message": error.message})).collect();
        ApiError::bad_request("validation_failed", message).with_details(json!({ "fields": fields }))
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::validation(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// A permanent redirect (method kept) to where a merged-away record lives now.
    pub fn moved(location: String, message: impl Into<String>, details: Value) -> ApiError {
        let mut error = ApiError::new(StatusCode::PERMANENT_REDIRECT, "merged", message).with_details(details);
        error.location = Some(location);
        error
    }

    /// A `503` with `Retry-After`: the request is fine, but a part of the server is not ready for it yet.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after_seconds: u32) -> ApiError {
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        error.retry_after = Some(retry_after_seconds);
        error
    }

    pub fn internal(error: anyhow::Error) -> ApiError {
        tracing::error!(error = format!("{error:#}"), "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on the server; it has been logged",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { entity } => ApiError::not_found(entity),
            StoreError::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, code, message),
            StoreError::Invalid { code, field, message } => {
                ApiError::bad_request(code, format!("{field}: {message}")).with_details(json!({ "field": field }))
            }
            StoreError::Backend(error) => ApiError::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if !self.details.is_null() {
            body["details"] = self.details;
        }
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(location) = self.location.and_then(|location| location.parse().ok()) {
            response.headers_mut().insert(axum::http::header::LOCATION, location);
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Collects field errors while a request is converted, so that one response names every bad field.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
    prefix: String,
}

impl Validator {
    pub fn with_prefix(prefix: impl Into<String>) -> Validator {
        Validator { errors: Vec::new(), prefix: prefix.into() }
    }

    pub fn error(&mut self, field: &str, message: impl std::fmt::Display) {
        let field = if self.prefix.is_empty() { field.to_owned() } else { format!("{}.{field}", self.prefix) };
        self.errors.push(FieldError { field, message: message.to_string() });
    }

    /// Records the error of a failed parse under `field` and returns the value when it parsed.
    pub fn check<T, E: std::fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(field, error);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many errors have been recorded so far.
    pub fn count(&self) -> usize {
        self.errors.len()
    }

    pub fn absorb(&mut self, other: Validator) {
        self.errors.extend(other.errors);
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn finish<T>(self, value: T) -> ApiResult<T> {
        if self.errors.is_empty() { Ok(value) } else { Err(ApiError::validation(self.errors)) }
    }
}

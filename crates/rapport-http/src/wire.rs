//! Small wire conventions shared by every resource: ids as strings, RFC 3339 times, list envelopes and cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

/// `{"items": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListBody<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1–200 (default 50).
    pub limit: Option<u32>,
}

pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {MAX_PAGE_SIZE}"))),
    }
}

/// Cursors are opaque to clients: base64url of a short text of numbers.
pub fn encode_cursor(parts: &[i64]) -> String {
    let text = parts.iter().map(i64::to_string).collect::<Vec<_>>().join(":");
    URL_SAFE_NO_PAD.encode(text)
}

pub fn decode_cursor(cursor: &str, arity: usize) -> Result<Vec<i64>, ApiError> {
    let invalid = || ApiError::bad_request("invalid_cursor", "the cursor is not one this API handed out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let parts = text.split(':').map(str::parse).collect::<Result<Vec<i64>, _>>().map_err(|_| invalid())?;
    if parts.len() == arity { Ok(parts) } else { Err(invalid()) }
}

pub fn micros_to_time(micros: i64) -> Result<DateTime<Utc>, ApiError> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| ApiError::bad_request("invalid_cursor", "the cursor is not one this API handed out"))
}

pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 date-time such as 2026-05-01T09:30:00+08:00".to_owned())
}

/// An id as it travels: a decimal string, though a JSON integer is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(value_type = String)]
pub struct WireId(pub String);

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        Ok(WireId(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        }))
    }
}

impl WireId {
    pub fn parse<T: std::str::FromStr>(&self) -> Result<T, String> {
        self.0.parse().map_err(|_| format!("{:?} is not a valid id", self.0))
    }
}

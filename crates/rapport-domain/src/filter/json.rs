//! The JSON form of a filter.

use serde_json::Value;

use super::Filter;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterJsonError {
    /// Where in the document, as a JSON path (`$.and[2].op`).
    pub path: String,
    pub message: String,
}

pub fn to_json(filter: &Filter) -> Value {
    Value::String(filter.to_string())
}

pub fn from_json(value: &Value) -> Result<Filter, FilterJsonError> {
    Err(FilterJsonError { path: "$".to_owned(), message: format!("not implemented: {value}") })
}

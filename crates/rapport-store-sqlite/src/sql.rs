//! Conversions between SQLite values and the store's records: times as microseconds, JSON as text, and the
//! domain's parsed types read back from the columns they were written to.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Type;
use serde_json::{Map, Value};

/// The current time as stored: microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn time_from_micros(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, micros))
}

pub(crate) fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    time_from_micros(row.get(index)?)
}

pub(crate) fn optional_time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<i64>>(index)?.map(time_from_micros).transpose()
}

/// Reads a text column back into the domain type it was written from (a role, a slug, a kind, …).
pub(crate) fn parsed_at<T>(row: &Row<'_>, index: usize, parse: impl FnOnce(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| corrupt(index, format!("unexpected value {text:?}")))
}

pub(crate) fn json_object_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Map<String, Value>> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| corrupt(index, error.to_string()))
}

pub(crate) fn json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| corrupt(index, error.to_string()))
}

pub(crate) fn corrupt(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, message.into())
}

/// Applies custom field changes to a stored JSON object: `null` removes the value.
pub(crate) fn merge_fields(fields: &mut Map<String, Value>, changes: Vec<(String, Value)>) {
    for (key, value) in changes {
        if value.is_null() {
            fields.remove(&key);
        } else {
            fields.insert(key, value);
        }
    }
}

/// The `LIMIT` for a page: one more than asked, to learn whether another page follows.
pub(crate) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// Cuts a page fetched with [`fetch_limit`] and names the key of its last item when more follow.
pub(crate) fn into_page<T, C>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> C) -> rapport_store::Page<T, C> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(key) } else { None };
    rapport_store::Page { items, next }
}

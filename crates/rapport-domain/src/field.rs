//! Custom field definitions and the validation of values against their type.
//!
//! Values are kept as JSON values in a normalised form per type: text and selects as strings, numbers as finite
//! numbers, dates as `YYYY-MM-DD`, datetimes as RFC 3339 in UTC, multi-selects as arrays of distinct options.

use std::fmt;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Number, Value};
use thiserror::Error;

use crate::identity::{EmailAddress, PhoneNumber};
use crate::ids::FieldId;
use crate::slug::Slug;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Text,
    LongText,
    Number,
    Boolean,
    Date,
    Datetime,
    SingleSelect,
    MultiSelect,
    Email,
    Phone,
    Url,
}

impl FieldType {
    pub const ALL: [FieldType; 11] = [
        FieldType::Text,
        FieldType::LongText,
        FieldType::Number,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::SingleSelect,
        FieldType::MultiSelect,
        FieldType::Email,
        FieldType::Phone,
        FieldType::Url,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::SingleSelect => "single_select",
            FieldType::MultiSelect => "multi_select",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
        }
    }

    pub fn parse(text: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn has_options(self) -> bool {
        matches!(self, FieldType::SingleSelect | FieldType::MultiSelect)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of record a custom field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldEntity {
    Contact,
    Company,
}

impl FieldEntity {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldEntity::Contact => "contact",
            FieldEntity::Company => "company",
        }
    }

    pub fn parse(text: &str) -> Option<FieldEntity> {
        match text {
            "contact" => Some(FieldEntity::Contact),
            "company" => Some(FieldEntity::Company),
            _ => None,
        }
    }
}

/// A custom field key: a slug, used as `fields.KEY` in filters and as the JSON key of the value.
pub type FieldKey = Slug;

/// Which value a custom field keeps when two contacts merge (an empty value never wins over a non-empty one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MergeRule {
    /// The value of the most recently updated contact.
    #[default]
    Latest,
    /// The value of the earlier created contact, e.g. the original lead source or first campaign.
    Oldest,
}

impl MergeRule {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeRule::Latest => "latest",
            MergeRule::Oldest => "oldest",
        }
    }

    pub fn parse(text: &str) -> Option<MergeRule> {
        match text {
            "latest" => Some(MergeRule::Latest),
            "oldest" => Some(MergeRule::Oldest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldDefinition {
    pub id: FieldId,
    pub entity: FieldEntity,
    pub key: FieldKey,
    pub label: String,
    pub field_type: FieldType,
    /// The allowed values of a single or multi select; empty for other types.
    pub options: Vec<String>,
    pub merge_rule: MergeRule,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FieldValueError {
    #[error("expects {expected}")]
    WrongType { expected: &'static str },
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("{0:?} is not one of the field's options")]
    UnknownOption(String),
    #[error("is not a valid email address")]
    Email,
    #[error("is not a valid phone number")]
    Phone,
    #[error("must be an http or https URL")]
    Url,
}

const TEXT_MAX: usize = 1_000;
const LONG_TEXT_MAX: usize = 65_535;
const URL_MAX: usize = 2_048;

/// Checks `value` against the field's type and returns its normalised form. `null` is always accepted and clears
/// the value.
pub fn validate_field_value(field: &FieldDefinition, value: &Value) -> Result<Value, FieldValueError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match field.field_type {
        FieldType::Text => text(value, TEXT_MAX),
        FieldType::LongText => text(value, LONG_TEXT_MAX),
        FieldType::Number => number(value),
        FieldType::Boolean => boolean(value),
        FieldType::Date => date(value),
        FieldType::Datetime => datetime(value),
        FieldType::SingleSelect => {
            let choice = text(value, TEXT_MAX)?;
            check_option(field, choice.as_str().unwrap_or_default())?;
            Ok(choice)
        }
        FieldType::MultiSelect => {
            let items = value.as_array().ok_or(FieldValueError::WrongType { expected: "an array of options" })?;
            let mut chosen: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                let option = item.as_str().ok_or(FieldValueError::WrongType { expected: "an array of options" })?;
                check_option(field, option)?;
                if !chosen.iter().any(|existing| existing.as_str() == Some(option)) {
                    chosen.push(Value::String(option.to_owned()));
                }
            }
            Ok(Value::Array(chosen))
        }
        FieldType::Email => {
            let raw = value.as_str().ok_or(FieldValueError::WrongType { expected: "a string" })?;
            EmailAddress::parse(raw).map(|email| Value::String(email.into_string())).map_err(|_| FieldValueError::Email)
        }
        FieldType::Phone => {
            let raw = value.as_str().ok_or(FieldValueError::WrongType { expected: "a string" })?;
            PhoneNumber::parse(raw).map(|phone| Value::String(phone.into_string())).map_err(|_| FieldValueError::Phone)
        }
        FieldType::Url => {
            let raw = value.as_str().ok_or(FieldValueError::WrongType { expected: "a string" })?.trim();
            let has_host = raw
                .strip_prefix("https://")
                .or_else(|| raw.strip_prefix("http://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !has_host || raw.chars().any(char::is_whitespace) {
                return Err(FieldValueError::Url);
            }
            if raw.len() > URL_MAX {
                return Err(FieldValueError::TooLong { max: URL_MAX });
            }
            Ok(Value::String(raw.to_owned()))
        }
    }
}

fn text(value: &Value, max: usize) -> Result<Value, FieldValueError> {
    let raw = value.as_str().ok_or(FieldValueError::WrongType { expected: "a string" })?;
    if raw.chars().count() > max {
        return Err(FieldValueError::TooLong { max });
    }
    Ok(Value::String(raw.to_owned()))
}

/// Numbers may also arrive as numeric strings (spreadsheets and forms send text); they are stored as numbers.
fn number(value: &Value) -> Result<Value, FieldValueError> {
    const EXPECTED: FieldValueError = FieldValueError::WrongType { expected: "a number" };
    match value {
        Value::Number(_) => Ok(value.clone()),
        Value::String(text) => {
            let trimmed = text.trim();
            if let Ok(integer) = trimmed.parse::<i64>() {
                return Ok(Value::Number(integer.into()));
            }
            let float: f64 = trimmed.parse().map_err(|_| EXPECTED)?;
            Number::from_f64(float).map(Value::Number).ok_or(EXPECTED)
        }
        _ => Err(EXPECTED),
    }
}

fn boolean(value: &Value) -> Result<Value, FieldValueError> {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(text) if text == "true" => Ok(Value::Bool(true)),
        Value::String(text) if text == "false" => Ok(Value::Bool(false)),
        _ => Err(FieldValueError::WrongType { expected: "true or false" }),
    }
}

fn date(value: &Value) -> Result<Value, FieldValueError> {
    const EXPECTED: FieldValueError = FieldValueError::WrongType { expected: "a date as YYYY-MM-DD" };
    let raw = value.as_str().ok_or(EXPECTED)?;
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| EXPECTED)?;
    Ok(Value::String(date.format("%Y-%m-%d").to_string()))
}

fn datetime(value: &Value) -> Result<Value, FieldValueError> {
    const EXPECTED: FieldValueError = FieldValueError::WrongType { expected: "an RFC 3339 date-time with offset" };
    let raw = value.as_str().ok_or(EXPECTED)?;
    let parsed = DateTime::parse_from_rfc3339(raw.trim()).map_err(|_| EXPECTED)?;
    Ok(Value::String(parsed.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::AutoSi, true)))
}

fn check_option(field: &FieldDefinition, option: &str) -> Result<(), FieldValueError> {
    if field.options.iter().any(|allowed| allowed == option) {
        Ok(())
    } else {
        Err(FieldValueError::UnknownOption(option.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(field_type: FieldType, input: Value) -> String {
        let field = FieldDefinition {
            id: FieldId::new(1),
            entity: FieldEntity::Contact,
            key: Slug::parse("k").unwrap_or_else(|_| unreachable!()),
            label: "K".into(),
            field_type,
            options: vec!["红".into(), "blue".into()],
            merge_rule: MergeRule::Latest,
            created_at: DateTime::UNIX_EPOCH,
        };
        match validate_field_value(&field, &input) {
            Ok(value) => format!("ok {value}"),
            Err(error) => format!("err {error}"),
        }
    }

    #[test]
    fn values_by_type() {
        let cases = [
            (FieldType::Text, json!("你好"), r#"ok "你好""#),
            (FieldType::Text, json!(5), "err expects a string"),
            (FieldType::Text, json!("x".repeat(1001)), "err must be at most 1000 characters"),
            (FieldType::Number, json!(5000), "ok 5000"),
            (FieldType::Number, json!(" 12.5 "), "ok 12.5"),
            (FieldType::Number, json!("lots"), "err expects a number"),
            (FieldType::Boolean, json!("true"), "ok true"),
            (FieldType::Boolean, json!(1), "err expects true or false"),
            (FieldType::Date, json!("1990-02-28"), r#"ok "1990-02-28""#),
            (FieldType::Date, json!("1990-02-30"), "err expects a date as YYYY-MM-DD"),
            (FieldType::Datetime, json!("2026-01-01T08:00:00+08:00"), r#"ok "2026-01-01T00:00:00Z""#),
            (FieldType::SingleSelect, json!("红"), r#"ok "红""#),
            (FieldType::SingleSelect, json!("green"), r#"err "green" is not one of the field's options"#),
            (FieldType::MultiSelect, json!(["blue", "红", "blue"]), r#"ok ["blue","红"]"#),
            (FieldType::Email, json!("A@B.CN"), r#"ok "a@b.cn""#),
            (FieldType::Phone, json!("abc"), "err is not a valid phone number"),
            (FieldType::Url, json!("https://rapport.example/x"), r#"ok "https://rapport.example/x""#),
            (FieldType::Url, json!("ftp://x"), "err must be an http or https URL"),
            (FieldType::Url, json!(null), "ok null"),
        ];
        for (field_type, input, expected) in cases {
            assert_eq!(check(field_type, input.clone()), expected, "{field_type} {input}");
        }
    }
}

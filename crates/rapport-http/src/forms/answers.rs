//! Checking a submission against its form: every answer by its field's type, with messages in Simplified Chinese
//! and English, and the mapping of the answers onto contact changes, event properties and consents.

use std::collections::HashMap;

use chrono::NaiveDate;
use rapport_domain::{
    BoundedText, ContactChanges, EmailAddress, FieldDefinition, Patch, PhoneNumber, validate_field_value,
};
use rapport_store::ConsentChannel;
use serde_json::{Map, Number, Value};

use super::definition::{FieldKind, FormDefinition, FormField, Lang, Localized, Target};

/// The longest a mapped system field (name, title, city…) may be, as elsewhere in the API.
const SYSTEM_TEXT_MAX: usize = 200;

/// A submission's raw answers: every value sent under each key (checkboxes send several).
pub type RawAnswers = HashMap<String, Vec<String>>;

/// One rejected answer; `key` is the field's key, or empty for the form as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerError {
    pub key: String,
    pub message: Localized,
}

/// A submission that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedAnswers {
    pub changes: ContactChanges,
    /// Every answer by key, normalised (numbers as numbers, checkboxes as arrays or booleans).
    pub answers: Map<String, Value>,
    /// Consent boxes ticked: the channel and the text shown, in the language shown.
    pub consents: Vec<(ConsentChannel, String)>,
}

/// Checks the answers and maps them. `custom_fields` are the workspace's contact fields: a mapping to a field that
/// no longer exists is skipped (the answer stays on the event).
pub fn check_answers(
    form: &FormDefinition,
    raw: &RawAnswers,
    lang: Lang,
    custom_fields: &[FieldDefinition],
) -> Result<CheckedAnswers, Vec<AnswerError>> {
    let mut errors = Vec::new();
    let mut checked = CheckedAnswers { changes: ContactChanges::default(), answers: Map::new(), consents: Vec::new() };
    let mut full_name = None;
    for field in &form.fields {
        let values: Vec<&str> = raw
            .get(&field.key)
            .map(|values| values.iter().map(|value| value.trim()).filter(|value| !value.is_empty()).collect())
            .unwrap_or_default();
        let value = match answer(field, &values) {
            Ok(Some(value)) => value,
            Ok(None) if field.required => {
                let message = if field.kind == FieldKind::Consent {
                    Localized::both("请勾选此项以继续。", "Please tick this box to continue.")
                } else {
                    Localized::both("此项为必填项。", "This field is required.")
                };
                errors.push(AnswerError { key: field.key.clone(), message });
                continue;
            }
            Ok(None) => continue,
            Err(message) => {
                errors.push(AnswerError { key: field.key.clone(), message });
                continue;
            }
        };
        if let Some((channel, text)) = &field.consent {
            checked.consents.push((*channel, text.get(lang).to_owned()));
        }
        if let Some(target) = &field.maps_to {
            let text = value.as_str().unwrap_or_default();
            let system = &mut checked.changes.system;
            let result = match target {
                Target::Email => EmailAddress::parse(text)
                    .map(|email| checked.changes.email = Patch::Set(email))
                    .map_err(|_| email_error()),
                Target::Phone => PhoneNumber::parse(text)
                    .map(|phone| checked.changes.phone = Patch::Set(phone))
                    .map_err(|_| phone_error()),
                Target::Name => {
                    full_name = Some(text.to_owned());
                    Ok(())
                }
                Target::FirstName => set_text(&mut system.first_name, text),
                Target::LastName => set_text(&mut system.last_name, text),
                Target::Title => set_text(&mut system.title, text),
                Target::Company => set_text(&mut system.company_name, text),
                Target::City => set_text(&mut system.city, text),
                Target::Province => set_text(&mut system.province, text),
                Target::Country => set_text(&mut system.country, text),
                Target::Custom(key) => match custom_fields.iter().find(|definition| &definition.key == key) {
                    Some(definition) => match validate_field_value(definition, &value) {
                        Ok(value) => {
                            checked.changes.fields.push((key.as_str().to_owned(), value));
                            Ok(())
                        }
                        Err(_) => Err(Localized::both("此项的值无效。", "This value is not valid.")),
                    },
                    None => Ok(()),
                },
            };
            if let Err(message) = result {
                errors.push(AnswerError { key: field.key.clone(), message });
                continue;
            }
        }
        checked.answers.insert(field.key.clone(), value);
    }
    if let Some(name) = full_name {
        let system = &mut checked.changes.system;
        if system.first_name.is_absent() && system.last_name.is_absent() {
            let result = match name.rsplit_once(' ') {
                Some((first, last)) => {
                    set_text(&mut system.first_name, first.trim()).and_then(|()| set_text(&mut system.last_name, last))
                }
                None => set_text(&mut system.first_name, &name),
            };
            if let Err(message) = result {
                let key = form.fields.iter().find(|field| field.maps_to == Some(Target::Name));
                errors.push(AnswerError { key: key.map(|field| field.key.clone()).unwrap_or_default(), message });
            }
        }
    }
    if errors.is_empty() && checked.changes.email.is_absent() && checked.changes.phone.is_absent() {
        let key = form
            .fields
            .iter()
            .find(|field| matches!(field.maps_to, Some(Target::Email | Target::Phone)))
            .map(|field| field.key.clone())
            .unwrap_or_default();
        errors.push(AnswerError {
            key,
            message: Localized::both("请填写邮箱或手机号码。", "Please enter an email address or a phone number."),
        });
    }
    if errors.is_empty() { Ok(checked) } else { Err(errors) }
}

/// The field's answer as JSON, `None` when it was left empty, or why it is not acceptable.
fn answer(field: &FormField, values: &[&str]) -> Result<Option<Value>, Localized> {
    if field.kind == FieldKind::Checkbox && !field.options.is_empty() {
        let mut chosen = Vec::with_capacity(values.len());
        for value in values {
            if !field.options.iter().any(|option| option.value == *value) {
                return Err(option_error());
            }
            if !chosen.contains(value) {
                chosen.push(*value);
            }
        }
        return Ok((!chosen.is_empty()).then(|| Value::from(chosen)));
    }
    if values.len() > 1 {
        return Err(Localized::both("此项只能填写一个值。", "This field takes a single value."));
    }
    let Some(value) = values.first().copied() else {
        // The hidden field's default stands in when the page did not send it.
        return Ok(field
            .default
            .as_ref()
            .filter(|default| !default.trim().is_empty())
            .map(|default| Value::from(default.trim())));
    };
    if value.chars().count() > field.max_length {
        return Err(Localized::both(
            &format!("最多 {} 个字符。", field.max_length),
            &format!("Must be at most {} characters.", field.max_length),
        ));
    }
    if field.kind != FieldKind::Textarea && value.chars().any(char::is_control) {
        return Err(Localized::both("此项不能包含换行或控制字符。", "This field cannot contain line breaks."));
    }
    Ok(Some(match field.kind {
        FieldKind::Email => Value::from(EmailAddress::parse(value).map_err(|_| email_error())?.into_string()),
        FieldKind::Phone => Value::from(PhoneNumber::parse(value).map_err(|_| phone_error())?.into_string()),
        FieldKind::Number => {
            let number = value
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .ok_or_else(|| Localized::both("请输入数字。", "Please enter a number."))?;
            match value.parse::<i64>() {
                Ok(integer) => Value::from(integer),
                Err(_) => Number::from_f64(number).map(Value::Number).unwrap_or(Value::Null),
            }
        }
        FieldKind::Date => {
            let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
                Localized::both("请输入有效的日期（YYYY-MM-DD）。", "Please enter a valid date (YYYY-MM-DD).")
            })?;
            Value::from(date.format("%Y-%m-%d").to_string())
        }
        FieldKind::Select | FieldKind::Radio => {
            if !field.options.iter().any(|option| option.value == value) {
                return Err(option_error());
            }
            Value::from(value)
        }
        FieldKind::Checkbox | FieldKind::Consent => match value.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Value::Bool(true),
            // An unticked box sends nothing; "false" from a script means the same.
            "off" | "false" | "0" | "no" => return Ok(None),
            _ => return Err(option_error()),
        },
        FieldKind::Text | FieldKind::Textarea | FieldKind::Hidden => Value::from(value),
    }))
}

fn set_text(slot: &mut Patch<BoundedText>, text: &str) -> Result<(), Localized> {
    match BoundedText::parse(text, SYSTEM_TEXT_MAX) {
        Ok(text) => {
            *slot = Patch::Set(text);
            Ok(())
        }
        Err(_) => Err(Localized::both(
            &format!("最多 {SYSTEM_TEXT_MAX} 个字符，且不能包含控制字符。"),
            &format!("Must be at most {SYSTEM_TEXT_MAX} characters, without control characters."),
        )),
    }
}

fn email_error() -> Localized {
    Localized::both("请输入有效的邮箱地址。", "Please enter a valid email address.")
}

fn phone_error() -> Localized {
    Localized::both("请输入有效的手机号码。", "Please enter a valid phone number.")
}

fn option_error() -> Localized {
    Localized::both("请从给出的选项中选择。", "Please choose one of the options.")
}

//! A form's definition in its parsed form, and the checks that turn the wire shape (`wire.rs`) into it: once when
//! it is saved, and the same way when it is read back.

use std::collections::HashSet;

use rapport_domain::{FieldDefinition, FieldType, Slug};
use rapport_store::ConsentChannel;

use super::wire::{AfterSubmitWire, FormDefinitionWire, FormFieldWire, LocalizedWire};
use crate::error::Validator;

/// Longest label, placeholder, option or title; consent texts and messages may be longer.
const LABEL_MAX: usize = 200;
const LONG_TEXT_MAX: usize = 5_000;
const MAX_FIELDS: usize = 50;
const MAX_OPTIONS: usize = 200;
/// Default and ceiling of a text answer's length; a textarea allows more.
pub const TEXT_ANSWER_MAX: usize = 1_000;
pub const TEXTAREA_ANSWER_MAX: usize = 10_000;

/// The two languages forms speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// `zh`, `zh-CN`, `zh-Hans`… are Chinese; `en`, `en-US`… English.
    pub fn parse(text: &str) -> Option<Lang> {
        let primary = text.trim().split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first supported language of an `Accept-Language` header, by preference weight.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut ranked: Vec<(f32, Lang)> = header
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';');
                let lang = Lang::parse(pieces.next()?)?;
                let weight = pieces
                    .find_map(|piece| piece.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((weight, lang))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.first().map(|(_, lang)| *lang)
    }
}

/// A text in both languages; each falls back to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    zh: Option<String>,
    en: Option<String>,
}

impl Localized {
    pub fn both(zh: &str, en: &str) -> Localized {
        Localized { zh: Some(zh.to_owned()), en: Some(en.to_owned()) }
    }

    pub fn get(&self, lang: Lang) -> &str {
        let (first, second) = match lang {
            Lang::Zh => (&self.zh, &self.en),
            Lang::En => (&self.en, &self.zh),
        };
        first.as_deref().or(second.as_deref()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Email,
    Phone,
    Number,
    Select,
    Radio,
    Checkbox,
    Date,
    Textarea,
    Hidden,
    Consent,
}

impl FieldKind {
    const ALL: [FieldKind; 11] = [
        FieldKind::Text,
        FieldKind::Email,
        FieldKind::Phone,
        FieldKind::Number,
        FieldKind::Select,
        FieldKind::Radio,
        FieldKind::Checkbox,
        FieldKind::Date,
        FieldKind::Textarea,
        FieldKind::Hidden,
        FieldKind::Consent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Number => "number",
            FieldKind::Select => "select",
            FieldKind::Radio => "radio",
            FieldKind::Checkbox => "checkbox",
            FieldKind::Date => "date",
            FieldKind::Textarea => "textarea",
            FieldKind::Hidden => "hidden",
            FieldKind::Consent => "consent",
        }
    }

    fn parse(text: &str) -> Option<FieldKind> {
        FieldKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    fn has_options(self) -> bool {
        matches!(self, FieldKind::Select | FieldKind::Radio | FieldKind::Checkbox)
    }
}

/// Where an answer goes on the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Email,
    Phone,
    /// A full name, split into first and last name.
    Name,
    FirstName,
    LastName,
    Title,
    Company,
    City,
    Province,
    Country,
    Custom(Slug),
}

impl Target {
    fn parse(text: &str) -> Option<Target> {
        Some(match text {
            "email" => Target::Email,
            "phone" => Target::Phone,
            "name" => Target::Name,
            "first_name" => Target::FirstName,
            "last_name" => Target::LastName,
            "title" => Target::Title,
            "company" | "company_name" => Target::Company,
            "city" => Target::City,
            "province" => Target::Province,
            "country" => Target::Country,
            other => Target::Custom(Slug::parse(other.strip_prefix("fields.")?).ok()?),
        })
    }
}

#[derive(Debug, Clone)]
pub struct FormOption {
    pub value: String,
    pub label: Localized,
}

#[derive(Debug, Clone)]
pub struct FormField {
    pub key: String,
    pub kind: FieldKind,
    pub label: Localized,
    pub required: bool,
    pub placeholder: Option<Localized>,
    pub options: Vec<FormOption>,
    pub maps_to: Option<Target>,
    pub default: Option<String>,
    /// Consent fields: the channel and the text shown.
    pub consent: Option<(ConsentChannel, Localized)>,
    pub max_length: usize,
}

#[derive(Debug, Clone)]
pub enum AfterSubmit {
    Message(Localized),
    Redirect(String),
}

#[derive(Debug, Clone)]
pub struct FormDefinition {
    pub title: Option<Localized>,
    pub description: Option<Localized>,
    pub default_language: Lang,
    pub fields: Vec<FormField>,
    pub submit_label: Localized,
    pub after_submit: AfterSubmit,
    pub allowed_origins: Vec<String>,
    pub min_fill_seconds: u32,
}

impl FormDefinition {
    /// Parses a definition, recording every problem in `check` under `definition.…`. With `custom_fields`, mappings
    /// to custom fields are checked against the workspace's definitions and their types (when a form is saved);
    /// without, they are taken as they are (when a stored form is read: a field deleted since is skipped when
    /// answers are mapped).
    pub fn parse(
        wire: &FormDefinitionWire,
        custom_fields: Option<&[FieldDefinition]>,
        check: &mut Validator,
    ) -> Option<FormDefinition> {
        let errors_before = check.count();
        let title = wire.title.as_ref().and_then(|text| localized(check, "definition.title", text, LABEL_MAX));
        let description =
            wire.description.as_ref().and_then(|text| localized(check, "definition.description", text, LONG_TEXT_MAX));
        let default_language = match wire.default_language.as_deref() {
            None => Lang::Zh,
            Some(tag) => check
                .check("definition.default_language", Lang::parse(tag).ok_or("must be zh-CN or en"))
                .unwrap_or(Lang::Zh),
        };
        if wire.fields.is_empty() || wire.fields.len() > MAX_FIELDS {
            check.error("definition.fields", format!("must hold between 1 and {MAX_FIELDS} fields"));
        }
        let mut keys = HashSet::new();
        let mut fields = Vec::with_capacity(wire.fields.len());
        let mut identity = false;
        for (index, field) in wire.fields.iter().enumerate() {
            let path = format!("definition.fields[{index}]");
            if !keys.insert(field.key.trim().to_owned()) {
                check.error(&format!("{path}.key"), format!("duplicate key {:?}", field.key));
            }
            if let Some(parsed) = parse_field(field, &path, custom_fields, check) {
                identity |= matches!(parsed.maps_to, Some(Target::Email | Target::Phone));
                fields.push(parsed);
            }
        }
        if !identity && !wire.fields.is_empty() {
            check.error(
                "definition.fields",
                "a form must map a field to email or phone, so that a submission identifies the person",
            );
        }
        let submit_label = match &wire.submit_label {
            Some(text) => localized(check, "definition.submit_label", text, LABEL_MAX),
            None => Some(Localized::both("提交", "Submit")),
        };
        let after_submit = match &wire.after_submit {
            None => Some(AfterSubmit::Message(Localized::both("感谢您的提交！", "Thank you for your submission!"))),
            Some(AfterSubmitWire { message: Some(message), redirect: None }) => {
                localized(check, "definition.after_submit.message", message, LONG_TEXT_MAX).map(AfterSubmit::Message)
            }
            Some(AfterSubmitWire { message: None, redirect: Some(url) }) => {
                check.check("definition.after_submit.redirect", http_url(url)).map(AfterSubmit::Redirect)
            }
            Some(_) => {
                check.error("definition.after_submit", "give either a message or a redirect URL");
                None
            }
        };
        let mut allowed_origins = Vec::with_capacity(wire.allowed_origins.len());
        for (index, origin) in wire.allowed_origins.iter().enumerate() {
            if let Some(origin) = check.check(&format!("definition.allowed_origins[{index}]"), web_origin(origin)) {
                allowed_origins.push(origin);
            }
        }
        let min_fill_seconds = wire.min_fill_seconds.unwrap_or(0);
        if min_fill_seconds > 600 {
            check.error("definition.min_fill_seconds", "must be at most 600");
        }
        if check.count() > errors_before {
            return None;
        }
        Some(FormDefinition {
            title,
            description,
            default_language,
            fields,
            submit_label: submit_label?,
            after_submit: after_submit?,
            allowed_origins,
            min_fill_seconds,
        })
    }
}

fn parse_field(
    wire: &FormFieldWire,
    path: &str,
    custom_fields: Option<&[FieldDefinition]>,
    check: &mut Validator,
) -> Option<FormField> {
    let errors_before = check.count();
    let key = wire.key.trim();
    if Slug::parse(key).is_err() || key.starts_with('_') {
        check.error(
            &format!("{path}.key"),
            "must be a key of lower-case letters, digits and underscores, starting with a letter",
        );
    }
    let kind = check.check(
        &format!("{path}.type"),
        FieldKind::parse(&wire.kind)
            .ok_or("must be text, email, phone, number, select, radio, checkbox, date, textarea, hidden or consent"),
    );
    let label = match &wire.label {
        Some(text) => localized(check, &format!("{path}.label"), text, LABEL_MAX),
        None if matches!(kind, Some(FieldKind::Hidden | FieldKind::Consent)) => Some(Localized::both(key, key)),
        None => {
            check.error(&format!("{path}.label"), "is required (in zh-CN, en or both)");
            None
        }
    };
    let placeholder =
        wire.placeholder.as_ref().and_then(|text| localized(check, &format!("{path}.placeholder"), text, LABEL_MAX));
    let kind = kind?;
    let mut options = Vec::with_capacity(wire.options.len());
    if kind.has_options() || !wire.options.is_empty() {
        if !kind.has_options() {
            check.error(&format!("{path}.options"), "only select, radio and checkbox fields take options");
        } else if wire.options.is_empty() && kind != FieldKind::Checkbox {
            check.error(&format!("{path}.options"), format!("a {} field needs options", kind.as_str()));
        } else if wire.options.len() > MAX_OPTIONS {
            check.error(&format!("{path}.options"), format!("must hold at most {MAX_OPTIONS} options"));
        }
        let mut values = HashSet::new();
        for (index, option) in wire.options.iter().enumerate() {
            let option_path = format!("{path}.options[{index}]");
            let value = option.value.trim();
            if value.is_empty() || value.chars().count() > LABEL_MAX {
                check.error(&format!("{option_path}.value"), format!("must have 1 to {LABEL_MAX} characters"));
            } else if !values.insert(value.to_owned()) {
                check.error(&format!("{option_path}.value"), format!("duplicate option {value:?}"));
            }
            let label = match &option.label {
                Some(text) => localized(check, &format!("{option_path}.label"), text, LABEL_MAX),
                None => Some(Localized::both(value, value)),
            };
            if let Some(label) = label {
                options.push(FormOption { value: value.to_owned(), label });
            }
        }
    }
    let consent = match (kind, &wire.channel, &wire.text) {
        (FieldKind::Consent, channel, text) => {
            let channel = match channel {
                Some(channel) => check.check(
                    &format!("{path}.channel"),
                    ConsentChannel::parse(channel).ok_or("must be email, sms, phone or wechat"),
                ),
                None => {
                    check.error(&format!("{path}.channel"), "a consent field needs its channel");
                    None
                }
            };
            let text = match text {
                Some(text) => localized(check, &format!("{path}.text"), text, LONG_TEXT_MAX),
                None => {
                    check.error(&format!("{path}.text"), "a consent field needs the text shown beside its box");
                    None
                }
            };
            channel.zip(text)
        }
        (_, None, None) => None,
        _ => {
            check.error(&format!("{path}.channel"), "only consent fields take a channel and a text");
            None
        }
    };
    if wire.default.is_some() && kind != FieldKind::Hidden {
        check.error(&format!("{path}.default"), "only hidden fields take a default value");
    }
    if let Some(default) = &wire.default {
        if default.chars().count() > TEXT_ANSWER_MAX {
            check.error(&format!("{path}.default"), format!("must be at most {TEXT_ANSWER_MAX} characters"));
        }
    }
    let ceiling = if kind == FieldKind::Textarea { TEXTAREA_ANSWER_MAX } else { TEXT_ANSWER_MAX };
    let max_length = match wire.max_length {
        None => ceiling,
        Some(max) if (1..=ceiling).contains(&(max as usize)) => max as usize,
        Some(_) => {
            check.error(&format!("{path}.max_length"), format!("must be between 1 and {ceiling}"));
            ceiling
        }
    };
    let maps_to = match &wire.maps_to {
        None => None,
        Some(_) if kind == FieldKind::Consent => {
            check.error(&format!("{path}.maps_to"), "a consent field records consent and maps to no contact field");
            None
        }
        Some(raw) => {
            let target_path = format!("{path}.maps_to");
            match Target::parse(raw.trim()) {
                None => {
                    check.error(
                        &target_path,
                        format!(
                            "unknown contact field {raw:?}: use email, phone, name, first_name, last_name, title, \
                             company, city, province, country or fields.KEY"
                        ),
                    );
                    None
                }
                Some(target) => {
                    if let Err(message) = check_target(&target, kind, &options, custom_fields) {
                        check.error(&target_path, message);
                    }
                    Some(target)
                }
            }
        }
    };
    if check.count() > errors_before {
        return None;
    }
    Some(FormField {
        key: key.to_owned(),
        kind,
        label: label?,
        required: wire.required,
        placeholder,
        options,
        maps_to,
        default: wire.default.clone(),
        consent,
        max_length,
    })
}

/// Whether answers of this kind can be written to the target.
fn check_target(
    target: &Target,
    kind: FieldKind,
    options: &[FormOption],
    custom_fields: Option<&[FieldDefinition]>,
) -> Result<(), String> {
    let textual = matches!(kind, FieldKind::Text | FieldKind::Select | FieldKind::Radio | FieldKind::Hidden);
    match target {
        Target::Email if kind != FieldKind::Email && kind != FieldKind::Hidden => {
            Err("only an email (or hidden) field can map to email".to_owned())
        }
        Target::Phone if kind != FieldKind::Phone && kind != FieldKind::Hidden => {
            Err("only a phone (or hidden) field can map to phone".to_owned())
        }
        Target::Email | Target::Phone => Ok(()),
        Target::Custom(key) => {
            let Some(definitions) = custom_fields else { return Ok(()) };
            let Some(definition) = definitions.iter().find(|definition| &definition.key == key) else {
                return Err(format!("no contact custom field has the key {:?}; create it first", key.as_str()));
            };
            let fits = match definition.field_type {
                FieldType::Text => {
                    textual || matches!(kind, FieldKind::Email | FieldKind::Phone | FieldKind::Number | FieldKind::Date)
                }
                FieldType::LongText => textual || kind == FieldKind::Textarea,
                FieldType::Number => matches!(kind, FieldKind::Number | FieldKind::Hidden),
                FieldType::Boolean => kind == FieldKind::Checkbox && options.is_empty(),
                FieldType::Date => matches!(kind, FieldKind::Date | FieldKind::Hidden),
                FieldType::Datetime => kind == FieldKind::Hidden,
                FieldType::SingleSelect => textual,
                FieldType::MultiSelect => kind == FieldKind::Checkbox && !options.is_empty(),
                FieldType::Email => matches!(kind, FieldKind::Email | FieldKind::Hidden),
                FieldType::Phone => matches!(kind, FieldKind::Phone | FieldKind::Hidden),
                FieldType::Url => matches!(kind, FieldKind::Text | FieldKind::Hidden),
            };
            if !fits {
                return Err(format!(
                    "a {} field cannot fill the {} custom field {:?}",
                    kind.as_str(),
                    definition.field_type.as_str(),
                    key.as_str()
                ));
            }
            if definition.field_type.has_options() {
                if let Some(missing) = options.iter().find(|option| !definition.options.contains(&option.value)) {
                    return Err(format!(
                        "option {:?} is not an option of the custom field {:?}",
                        missing.value,
                        key.as_str()
                    ));
                }
            }
            Ok(())
        }
        _ if textual => Ok(()),
        _ => Err(format!("a {} field cannot fill a text contact field", kind.as_str())),
    }
}

fn localized(check: &mut Validator, path: &str, wire: &LocalizedWire, max: usize) -> Option<Localized> {
    let mut part = |lang: &str, text: &Option<String>| -> Option<String> {
        let text = text.as_deref()?.trim();
        if text.is_empty() {
            return None;
        }
        if text.chars().count() > max {
            check.error(&format!("{path}.{lang}"), format!("must be at most {max} characters"));
            return None;
        }
        if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            check.error(&format!("{path}.{lang}"), "must not contain control characters");
            return None;
        }
        Some(text.to_owned())
    };
    let zh = part("zh-CN", &wire.zh);
    let en = part("en", &wire.en);
    if zh.is_none() && en.is_none() {
        check.error(path, "needs a text in zh-CN, en or both");
        return None;
    }
    Some(Localized { zh, en })
}

/// An absolute http or https URL with a host and no spaces.
fn http_url(raw: &str) -> Result<String, &'static str> {
    let url = raw.trim();
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(host)
            if !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control()) && url.len() <= 2_048 =>
        {
            Ok(url.to_owned())
        }
        _ => Err("must be an absolute http or https URL"),
    }
}

/// `https://www.example.com` (scheme, host, optional port; no path).
fn web_origin(raw: &str) -> Result<String, &'static str> {
    let origin = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    match host {
        Some(host)
            if !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')) =>
        {
            Ok(origin)
        }
        _ => Err("must be an origin such as https://www.example.com"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_from_tags_and_accept_language() {
        assert_eq!(Lang::parse("zh-Hans-CN"), Some(Lang::Zh));
        assert_eq!(Lang::parse("EN_us"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::from_accept_language("fr-FR,en;q=0.8,zh-CN;q=0.9"), Some(Lang::Zh));
        assert_eq!(Lang::from_accept_language("en-GB,zh;q=0.5"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("de, fr;q=0.9"), None);
    }

    #[test]
    fn a_text_falls_back_to_the_other_language() {
        let only_chinese = Localized { zh: Some("姓名".to_owned()), en: None };
        assert_eq!((only_chinese.get(Lang::Zh), only_chinese.get(Lang::En)), ("姓名", "姓名"));
        let both = Localized::both("姓名", "Name");
        assert_eq!((both.get(Lang::Zh), both.get(Lang::En)), ("姓名", "Name"));
    }
}

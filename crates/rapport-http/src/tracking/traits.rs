//! Maps Segment `identify` traits onto a contact: well-known traits to system fields, the rest to custom fields.

use rapport_domain::{
    BoundedText, ContactChanges, EmailAddress, FieldDefinition, Patch, PhoneNumber, Slug, validate_field_value,
};
use serde_json::{Map, Value};

/// What could not be applied, reported back to the sender without failing the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraitProblem {
    pub trait_name: String,
    pub message: String,
}

/// Traits that name a custom field which does not exist yet; created as text fields when the source allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    pub key: Slug,
    pub value: String,
}

pub struct MappedTraits {
    pub changes: ContactChanges,
    pub problems: Vec<TraitProblem>,
    pub missing_fields: Vec<MissingField>,
}

const SYSTEM_TEXT_MAX: usize = 200;

/// `planType` → `plan_type`, `Plan Type` → `plan_type`; `None` when no valid key results (e.g. a Chinese name).
pub fn field_key(name: &str) -> Option<Slug> {
    let mut key = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                key.push('_');
            }
            key.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            key.push(c);
            previous_lower = true;
        } else if matches!(c, ' ' | '-' | '_' | '.') {
            if !key.ends_with('_') && !key.is_empty() {
                key.push('_');
            }
            previous_lower = false;
        } else {
            return None;
        }
    }
    Slug::parse(key.trim_end_matches('_')).ok()
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

pub fn map_traits(traits: &Map<String, Value>, definitions: &[FieldDefinition]) -> MappedTraits {
    let mut mapped =
        MappedTraits { changes: ContactChanges::default(), problems: Vec::new(), missing_fields: Vec::new() };
    let mut full_name: Option<&Value> = None;
    for (name, value) in traits {
        if value.is_null() {
            continue;
        }
        let changes = &mut mapped.changes;
        let problems = &mut mapped.problems;
        match name.as_str() {
            "email" => match value.as_str().map(EmailAddress::parse) {
                Some(Ok(email)) => changes.email = Patch::Set(email),
                Some(Err(error)) => report(problems, name, error),
                None => report(problems, name, "expects text"),
            },
            "phone" => match text_of(value).map(|text| PhoneNumber::parse(&text)) {
                Some(Ok(phone)) => changes.phone = Patch::Set(phone),
                Some(Err(error)) => report(problems, name, error),
                None => report(problems, name, "expects text"),
            },
            "name" => full_name = Some(value),
            "firstName" | "first_name" => set_text(&mut changes.system.first_name, value, problems, name),
            "lastName" | "last_name" => set_text(&mut changes.system.last_name, value, problems, name),
            "title" => set_text(&mut changes.system.title, value, problems, name),
            "city" => set_text(&mut changes.system.city, value, problems, name),
            "state" | "province" => set_text(&mut changes.system.province, value, problems, name),
            "country" => set_text(&mut changes.system.country, value, problems, name),
            "source" => set_text(&mut changes.system.source, value, problems, name),
            "company" => {
                let company = value.get("name").unwrap_or(value);
                set_text(&mut changes.system.company_name, company, problems, name);
            }
            "address" => {
                let Some(address) = value.as_object() else {
                    report(problems, name, "expects an object");
                    continue;
                };
                let system = &mut changes.system;
                for (part, slot) in
                    [("city", &mut system.city), ("state", &mut system.province), ("country", &mut system.country)]
                {
                    match address.get(part) {
                        Some(part_value) if slot.is_absent() && !part_value.is_null() => {
                            set_text(slot, part_value, problems, &format!("address.{part}"));
                        }
                        _ => {}
                    }
                }
            }
            // Identifiers travel outside the traits; Segment clients sometimes repeat them inside.
            "id" | "userId" | "user_id" | "anonymousId" | "createdAt" | "created_at" => {}
            _ => custom_trait(&mut mapped, name, value, definitions),
        }
    }
    if let Some(value) = full_name {
        split_name(&mut mapped, value);
    }
    mapped
}

fn report(problems: &mut Vec<TraitProblem>, name: &str, message: impl std::fmt::Display) {
    problems.push(TraitProblem { trait_name: name.to_owned(), message: message.to_string() });
}

fn set_text(slot: &mut Patch<BoundedText>, value: &Value, problems: &mut Vec<TraitProblem>, name: &str) {
    let Some(text) = text_of(value) else {
        report(problems, name, "expects text");
        return;
    };
    match BoundedText::parse(&text, SYSTEM_TEXT_MAX) {
        Ok(text) => *slot = Patch::Set(text),
        Err(error) => report(problems, name, error),
    }
}

/// `name` fills first and last name when those traits are not given: "Li Lei" → Li / Lei; a name without a space
/// (as Chinese names are usually written) goes whole into the first name.
fn split_name(mapped: &mut MappedTraits, value: &Value) {
    let system = &mut mapped.changes.system;
    if !system.first_name.is_absent() || !system.last_name.is_absent() {
        return;
    }
    let Some(text) = text_of(value) else {
        report(&mut mapped.problems, "name", "expects text");
        return;
    };
    match text.trim().rsplit_once(' ') {
        Some((first, last)) => {
            set_text(&mut system.first_name, &Value::String(first.to_owned()), &mut mapped.problems, "name");
            set_text(&mut system.last_name, &Value::String(last.to_owned()), &mut mapped.problems, "name");
        }
        None => set_text(&mut system.first_name, &Value::String(text), &mut mapped.problems, "name"),
    }
}

fn custom_trait(mapped: &mut MappedTraits, name: &str, value: &Value, definitions: &[FieldDefinition]) {
    let Some(key) = field_key(name) else {
        report(&mut mapped.problems, name, "cannot be stored: custom field keys use a-z, 0-9 and _");
        return;
    };
    match definitions.iter().find(|definition| definition.key == key) {
        Some(definition) => match validate_field_value(definition, value) {
            Ok(valid) => mapped.changes.fields.push((key.into_string(), valid)),
            Err(error) => report(&mut mapped.problems, name, format!("fields.{key} {error}")),
        },
        None => match text_of(value) {
            Some(text) => mapped.missing_fields.push(MissingField { key, value: text }),
            None => report(&mut mapped.problems, name, "is not a custom field and is not a plain value"),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(traits: Value) -> String {
        let Value::Object(traits) = traits else { return String::new() };
        let mapped = map_traits(&traits, &[]);
        let changes = &mapped.changes;
        let text = |patch: &Patch<BoundedText>| match patch {
            Patch::Set(text) => text.as_str().to_owned(),
            _ => "-".to_owned(),
        };
        let mut out = format!(
            "email={} first={} last={} company={} city={} province={} country={}",
            match &changes.email {
                Patch::Set(email) => email.as_str().to_owned(),
                _ => "-".into(),
            },
            text(&changes.system.first_name),
            text(&changes.system.last_name),
            text(&changes.system.company_name),
            text(&changes.system.city),
            text(&changes.system.province),
            text(&changes.system.country),
        );
        for missing in &mapped.missing_fields {
            out.push_str(&format!(" new:{}={}", missing.key, missing.value));
        }
        for problem in &mapped.problems {
            out.push_str(&format!(" problem:{}:{}", problem.trait_name, problem.message));
        }
        out
    }

    #[test]
    fn traits_map_onto_contacts() {
        let cases = [
            (
                json!({"email": "A@B.cn", "firstName": "Lei", "lastName": "Li", "company": {"name": "示例"}}),
                "email=a@b.cn first=Lei last=Li company=示例 city=- province=- country=-",
            ),
            (json!({"name": "王小明"}), "email=- first=王小明 last=- company=- city=- province=- country=-"),
            (
                json!({"name": "Ada King Lovelace"}),
                "email=- first=Ada King last=Lovelace company=- city=- province=- country=-",
            ),
            (
                json!({"address": {"city": "上海", "state": "上海", "country": "中国"}, "planType": "pro", "seats": 5}),
                "email=- first=- last=- company=- city=上海 province=上海 country=中国 new:plan_type=pro new:seats=5",
            ),
            (
                json!({"email": "nope", "兴趣": "AI", "tags": ["a"]}),
                "email=- first=- last=- company=- city=- province=- country=- problem:email:is not a valid email address \
                 problem:tags:is not a custom field and is not a plain value problem:兴趣:cannot be stored: custom \
                 field keys use a-z, 0-9 and _",
            ),
        ];
        for (traits, expected) in cases {
            let expected = expected.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(check(traits.clone()).split_whitespace().collect::<Vec<_>>().join(" "), expected, "{traits}");
        }
    }

    #[test]
    fn keys_from_trait_names() {
        let keys: Vec<Option<String>> = ["planType", "Plan Type", "plan-type", "seats2", "兴趣", "2fa"]
            .iter()
            .map(|name| field_key(name).map(Slug::into_string))
            .collect();
        let expected = [Some("plan_type"), Some("plan_type"), Some("plan_type"), Some("seats2"), None, None];
        assert_eq!(keys, expected.map(|key| key.map(str::to_owned)));
    }
}

//! One CSV record to one `ContactChanges`, checked as far as the file and the workspace's reference data allow, so
//! that a batch handed to the store does not fail on validation.
//!
//! Empty cells leave the stored value alone: re-importing a file with fewer columns never wipes data.

use std::collections::HashSet;

use chrono::NaiveDate;
use csv::StringRecord;
use rapport_domain::{
    BoundedText, ContactChanges, EmailAddress, FieldDefinition, FieldType, Identity, IdentityKind, Patch, PhoneNumber,
    Slug, SystemFieldsPatch, TagKind, TagPath, WorkspaceId, validate_field_value,
};
use rapport_store::{ListEntry, ListKind, Store, StoreResult};
use serde_json::Value;

use super::mapping::{ColumnPlan, Target, TextField};

/// The same bound as the REST API puts on system text fields.
const SYSTEM_TEXT_MAX: usize = 200;
/// Values quoted in the error report are cut to this many characters.
const REPORTED_VALUE_MAX: usize = 100;
/// What separates several tags or multi-select options in one cell.
const LIST_SEPARATORS: [char; 4] = [',', '，', ';', '|'];

/// The workspace's stages, lead statuses and dynamic tags, loaded once per import.
#[derive(Debug, Clone, Default)]
pub struct References {
    pub stages: Vec<ListEntry>,
    pub statuses: Vec<ListEntry>,
    pub dynamic_tags: HashSet<String>,
}

impl References {
    pub async fn load(store: &dyn Store, workspace: WorkspaceId) -> StoreResult<References> {
        let dynamic_tags = store
            .list_tags(workspace)
            .await?
            .into_iter()
            .filter(|tag| tag.kind == TagKind::Dynamic)
            .map(|tag| tag.path)
            .collect();
        Ok(References {
            stages: store.list_entries(workspace, ListKind::Stages).await?,
            statuses: store.list_entries(workspace, ListKind::LeadStatuses).await?,
            dynamic_tags,
        })
    }
}

/// Why one cell, or the row as a whole (empty `column`), cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl CellError {
    pub fn new(column: &str, value: &str, reason: impl Into<String>) -> CellError {
        let mut shown: String = value.chars().take(REPORTED_VALUE_MAX).collect();
        if shown.len() < value.len() {
            shown.push('…');
        }
        CellError { column: column.to_owned(), value: shown, reason: reason.into() }
    }
}

/// `Valid` is large, but each row's value is moved once into its batch; boxing it would cost an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ParsedRow {
    /// Every mapped cell is empty; the row is counted, not imported.
    Empty,
    Valid(ContactChanges),
    Invalid(Vec<CellError>),
}

/// Parses every mapped cell, collecting all the row's errors rather than stopping at the first.
pub fn parse_row(record: &StringRecord, plan: &ColumnPlan, references: &References) -> ParsedRow {
    let mut changes = ContactChanges::default();
    let mut errors = Vec::new();
    let mut any_value = false;
    for column in &plan.columns {
        let cell = record.get(column.index).unwrap_or_default().trim();
        if cell.is_empty() {
            continue;
        }
        any_value = true;
        if let Err(reason) = apply_cell(&mut changes, &column.target, cell, references) {
            errors.push(CellError::new(&column.header, cell, reason));
        }
    }
    if !errors.is_empty() {
        ParsedRow::Invalid(errors)
    } else if any_value {
        ParsedRow::Valid(changes)
    } else {
        ParsedRow::Empty
    }
}

fn apply_cell(
    changes: &mut ContactChanges,
    target: &Target,
    cell: &str,
    references: &References,
) -> Result<(), String> {
    match target {
        Target::Email => {
            let email = EmailAddress::parse(cell).map_err(|error| error.to_string())?;
            changes.email = Patch::Set(email);
        }
        Target::Phone => {
            let phone = PhoneNumber::parse(cell).map_err(|error| error.to_string())?;
            changes.phone = Patch::Set(phone);
        }
        Target::UserId => {
            let identity = Identity::parse(IdentityKind::UserId, cell).map_err(|error| error.to_string())?;
            changes.user_id = Patch::Set(identity.value().to_owned());
        }
        Target::Text(field) => {
            let text = BoundedText::parse(cell, SYSTEM_TEXT_MAX).map_err(|error| error.to_string())?;
            *text_slot(&mut changes.system, *field) = Patch::Set(text);
        }
        Target::Stage => {
            changes.stage = Some(list_entry(&references.stages, cell, "stage")?);
        }
        Target::Status => {
            changes.status = Patch::Set(list_entry(&references.statuses, cell, "lead status")?);
        }
        Target::Tags => {
            for raw in split_list(cell) {
                let path = TagPath::parse(raw).map_err(|error| format!("{raw:?}: {error}"))?;
                if references.dynamic_tags.contains(&path.to_string()) {
                    return Err(format!("{raw:?} is a dynamic tag; only rules add contacts to it"));
                }
                if !changes.add_tags.contains(&path) {
                    changes.add_tags.push(path);
                }
            }
        }
        Target::Field(definition) => {
            let value = field_value(definition, cell)?;
            let value = validate_field_value(definition, &value).map_err(|error| error.to_string())?;
            changes.fields.push((definition.key.as_str().to_owned(), value));
        }
    }
    Ok(())
}

fn text_slot(system: &mut SystemFieldsPatch, field: TextField) -> &mut Patch<BoundedText> {
    match field {
        TextField::FirstName => &mut system.first_name,
        TextField::LastName => &mut system.last_name,
        TextField::Title => &mut system.title,
        TextField::CompanyName => &mut system.company_name,
        TextField::City => &mut system.city,
        TextField::Province => &mut system.province,
        TextField::Country => &mut system.country,
        TextField::Source => &mut system.source,
    }
}

/// A stage or status named by its key (`mql`) or its label (`MQL`, `Raw lead`).
fn list_entry(entries: &[ListEntry], cell: &str, what: &str) -> Result<Slug, String> {
    let entry = entries
        .iter()
        .find(|entry| entry.key == cell)
        .or_else(|| entries.iter().find(|entry| entry.label.trim().eq_ignore_ascii_case(cell)))
        .ok_or_else(|| {
            let keys: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
            format!("is not a {what} of this workspace ({})", keys.join(", "))
        })?;
    Slug::parse(&entry.key).map_err(|error| error.to_string())
}

/// Spreadsheet text turned into the JSON value that [`validate_field_value`] expects for the field's type.
fn field_value(definition: &FieldDefinition, cell: &str) -> Result<Value, String> {
    let value = match definition.field_type {
        FieldType::Number => Value::String(without_thousands_separators(cell)),
        FieldType::Boolean => {
            Value::Bool(boolean(cell).ok_or_else(|| "expects true or false (also yes/no, 是/否, 1/0)".to_owned())?)
        }
        FieldType::Date => Value::String(date(cell).unwrap_or_else(|| cell.to_owned())),
        FieldType::MultiSelect => {
            Value::Array(split_list(cell).map(|option| Value::String(option.to_owned())).collect())
        }
        FieldType::Text
        | FieldType::LongText
        | FieldType::Datetime
        | FieldType::SingleSelect
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => Value::String(cell.to_owned()),
    };
    Ok(value)
}

/// The non-empty, trimmed items of a tag or multi-select cell.
pub fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(LIST_SEPARATORS).map(str::trim).filter(|item| !item.is_empty())
}

fn boolean(cell: &str) -> Option<bool> {
    match cell.to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" => Some(true),
        "false" | "no" | "n" | "0" | "否" => Some(false),
        _ => None,
    }
}

/// `2026-03-01`, `2026/3/1`, `2026.3.1` and `2026年3月1日` as `2026-03-01`.
fn date(cell: &str) -> Option<String> {
    ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"]
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(cell, format).ok())
        .map(|date| date.format("%Y-%m-%d").to_string())
}

/// `1,234,567.5` → `1234567.5`, only when the commas group digits by three; anything else is left for the type
/// check to reject.
fn without_thousands_separators(cell: &str) -> String {
    let (sign, rest) = match cell.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", cell),
    };
    let (whole, fraction) = match rest.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (rest, None),
    };
    let groups: Vec<&str> = whole.split(',').collect();
    let grouped = groups.len() > 1
        && groups.iter().all(|group| group.bytes().all(|b| b.is_ascii_digit()))
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|group| group.len() == 3);
    if !grouped {
        return cell.to_owned();
    }
    let mut number = format!("{sign}{}", groups.concat());
    if let Some(fraction) = fraction {
        number.push('.');
        number.push_str(fraction);
    }
    number
}

/// The changes as `(field, value)` lines, for the dry run's preview.
pub fn describe(changes: &ContactChanges) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut set = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            lines.push((name.to_owned(), value));
        }
    };
    let text = |patch: &Patch<BoundedText>| match patch {
        Patch::Set(text) => Some(text.as_str().to_owned()),
        Patch::Absent | Patch::Clear => None,
    };
    set(
        "email",
        match &changes.email {
            Patch::Set(email) => Some(email.as_str().to_owned()),
            Patch::Absent | Patch::Clear => None,
        },
    );
    set(
        "phone",
        match &changes.phone {
            Patch::Set(phone) => Some(phone.as_str().to_owned()),
            Patch::Absent | Patch::Clear => None,
        },
    );
    set(
        "user_id",
        match &changes.user_id {
            Patch::Set(user_id) => Some(user_id.clone()),
            Patch::Absent | Patch::Clear => None,
        },
    );
    let system = &changes.system;
    set("first_name", text(&system.first_name));
    set("last_name", text(&system.last_name));
    set("title", text(&system.title));
    set("company_name", text(&system.company_name));
    set("city", text(&system.city));
    set("province", text(&system.province));
    set("country", text(&system.country));
    set("source", text(&system.source));
    set("stage", changes.stage.as_ref().map(|stage| stage.as_str().to_owned()));
    set(
        "status",
        match &changes.status {
            Patch::Set(status) => Some(status.as_str().to_owned()),
            Patch::Absent | Patch::Clear => None,
        },
    );
    if !changes.add_tags.is_empty() {
        let tags: Vec<String> = changes.add_tags.iter().map(ToString::to_string).collect();
        set("tags", Some(tags.join(", ")));
    }
    for (key, value) in &changes.fields {
        set(&format!("fields.{key}"), Some(value.to_string()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_values_are_read_per_type() {
        assert_eq!(without_thousands_separators("1,234,567.50"), "1234567.50");
        assert_eq!(without_thousands_separators("-12,000"), "-12000");
        assert_eq!(without_thousands_separators("1,5"), "1,5");
        assert_eq!(without_thousands_separators("5000"), "5000");
        assert_eq!(date("2026/3/1").as_deref(), Some("2026-03-01"));
        assert_eq!(date("2026年3月1日").as_deref(), Some("2026-03-01"));
        assert_eq!(date("2026-02-30"), None);
        assert_eq!(boolean("是"), Some(true));
        assert_eq!(boolean("FALSE"), Some(false));
        assert_eq!(boolean("maybe"), None);
        let tags: Vec<&str> = split_list("行业/制造业，VIP; 华东 |").collect();
        assert_eq!(tags, ["行业/制造业", "VIP", "华东"]);
    }
}

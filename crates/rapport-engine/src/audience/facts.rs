//! A contact as the engine keeps it in memory: everything a filter may ask, packed small.
//!
//! The system text fields share one string (`text`) cut by end offsets; the stage and status are positions in the
//! workspace's lists; tags are sorted ids; custom fields are (slot, value) pairs in slot order. Times are seconds.

use chrono::{DateTime, NaiveDate, Utc};
use rapport_domain::{CompanyId, ContactId, FieldType, IdentityKind, TagId};
use rapport_store::{AudienceContact, ConsentChannel};
use serde_json::Value;

use super::schema::Schema;

/// The system text fields, in the order of `ContactFacts::text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    Email,
    Phone,
    FirstName,
    LastName,
    Title,
    CompanyName,
    City,
    Province,
    Country,
    Source,
}

const TEXT_FIELDS: usize = 10;

/// A custom field's value, parsed once by its type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FactValue {
    Text(Box<str>),
    Number(f64),
    Bool(bool),
    /// A calendar date, as days since 1970-01-01.
    Date(i32),
    /// An instant, as seconds since the epoch.
    Instant(i64),
    Multi(Box<[Box<str>]>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContactFacts {
    pub(crate) id: ContactId,
    text: Box<str>,
    ends: [u16; TEXT_FIELDS],
    pub(crate) stage: u16,
    /// Position in the status list plus one; 0 when no status is set.
    pub(crate) status: u16,
    /// One bit per identity kind (`IdentityKind::ALL` order).
    pub(crate) identities: u8,
    /// Two bits per consent channel (`ConsentChannel::ALL` order): 0 unknown, 1 granted, 2 denied.
    pub(crate) consents: u8,
    /// The owner's user id, 0 for none (ids start at 1): half the size of an `Option`.
    owner: i64,
    /// The company's id, 0 for none.
    company: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) tags: Box<[TagId]>,
    pub(crate) fields: Box<[(u16, FactValue)]>,
    /// (stage position, when entered), oldest first.
    pub(crate) stages: Box<[(u16, i64)]>,
}

impl ContactFacts {
    pub(crate) fn new(source: &AudienceContact, schema: &Schema) -> ContactFacts {
        let contact = &source.contact;
        let mut text = String::new();
        let mut ends = [0u16; TEXT_FIELDS];
        let values = [
            &contact.email,
            &contact.phone,
            &contact.first_name,
            &contact.last_name,
            &contact.title,
            &contact.company_name,
            &contact.city,
            &contact.province,
            &contact.country,
            &contact.source,
        ];
        for (index, value) in values.into_iter().enumerate() {
            if let Some(value) = value {
                // Text fields are bounded well below 64 KiB together; a longer one is cut at a character boundary.
                let room = usize::from(u16::MAX).saturating_sub(text.len());
                let mut end = value.len().min(room);
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                text.push_str(&value[..end]);
            }
            ends[index] = u16::try_from(text.len()).unwrap_or(u16::MAX);
        }
        let position = |key: &str| schema.stage_position(key).unwrap_or(u16::MAX);
        let status = contact
            .status
            .as_deref()
            .and_then(|status| schema.statuses.iter().position(|candidate| candidate == status))
            .and_then(|index| u16::try_from(index + 1).ok())
            .unwrap_or(0);
        let mut identities = 0u8;
        for identity in &contact.identities {
            if let Some(bit) = IdentityKind::ALL.iter().position(|kind| *kind == identity.kind()) {
                identities |= 1 << bit;
            }
        }
        let mut consents = 0u8;
        for (channel, granted) in &source.consents {
            if let Some(index) = ConsentChannel::ALL.iter().position(|candidate| candidate == channel) {
                consents |= (if *granted { 1 } else { 2 }) << (index * 2);
            }
        }
        let mut tags: Vec<TagId> = contact.tags.iter().filter_map(|path| schema.tags.get(path).copied()).collect();
        tags.sort();
        let mut fields: Vec<(u16, FactValue)> = contact
            .fields
            .iter()
            .filter_map(|(key, value)| {
                let (slot, field_type) = schema.contact_fields.get(key)?;
                Some((*slot, fact_value(*field_type, value)?))
            })
            .collect();
        fields.sort_by_key(|(slot, _)| *slot);
        ContactFacts {
            id: contact.id,
            text: text.into_boxed_str(),
            ends,
            stage: position(&contact.stage),
            status,
            identities,
            consents,
            owner: contact.owner_id.map_or(0, |owner| owner.get()),
            company: contact.company_id.map_or(0, |company| company.get()),
            created_at: contact.created_at.timestamp(),
            updated_at: contact.updated_at.timestamp(),
            tags: tags.into_boxed_slice(),
            fields: fields.into_boxed_slice(),
            stages: source.stages.iter().map(|(stage, at)| (position(stage), at.timestamp())).collect(),
        }
    }

    pub(crate) fn owner(&self) -> Option<i64> {
        (self.owner != 0).then_some(self.owner)
    }

    pub(crate) fn company(&self) -> Option<CompanyId> {
        (self.company != 0).then(|| CompanyId::new(self.company))
    }

    pub(crate) fn text(&self, field: TextField) -> Option<&str> {
        let index = field as usize;
        let start = if index == 0 { 0 } else { usize::from(self.ends[index - 1]) };
        let end = usize::from(self.ends[index]);
        (end > start).then(|| self.text.get(start..end)).flatten()
    }

    pub(crate) fn field(&self, slot: u16) -> Option<&FactValue> {
        self.fields.binary_search_by_key(&slot, |(candidate, _)| *candidate).ok().map(|index| &self.fields[index].1)
    }

    pub(crate) fn consent(&self, channel: ConsentChannel) -> u8 {
        let index = ConsentChannel::ALL.iter().position(|candidate| *candidate == channel).unwrap_or(0);
        (self.consents >> (index * 2)) & 0b11
    }

    /// Bytes held for this contact, inline and on the heap (for the memory figure).
    pub(crate) fn heap_bytes(&self) -> usize {
        let values: usize = self
            .fields
            .iter()
            .map(|(_, value)| match value {
                FactValue::Text(text) => text.len(),
                FactValue::Multi(items) => items.iter().map(|item| item.len() + 16).sum(),
                _ => 0,
            })
            .sum();
        self.text.len()
            + self.tags.len() * size_of::<TagId>()
            + self.fields.len() * size_of::<(u16, FactValue)>()
            + values
            + self.stages.len() * size_of::<(u16, i64)>()
    }
}

/// Parses a stored custom field value by its type; `None` for empty values and values that do not fit the type.
pub(crate) fn fact_value(field_type: FieldType, value: &Value) -> Option<FactValue> {
    match (field_type, value) {
        (_, Value::Null) => None,
        (FieldType::Number, Value::Number(number)) => number.as_f64().map(FactValue::Number),
        (FieldType::Boolean, Value::Bool(flag)) => Some(FactValue::Bool(*flag)),
        (FieldType::Date, Value::String(text)) => parse_day(text).map(FactValue::Date),
        (FieldType::Datetime, Value::String(text)) => parse_instant(text).map(FactValue::Instant),
        (FieldType::MultiSelect, Value::Array(items)) => {
            let items: Vec<Box<str>> = items.iter().filter_map(Value::as_str).map(Box::from).collect();
            (!items.is_empty()).then(|| FactValue::Multi(items.into_boxed_slice()))
        }
        (_, Value::String(text)) if !text.is_empty() => Some(FactValue::Text(text.as_str().into())),
        _ => None,
    }
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub(crate) fn parse_day(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    day_of_date(date)
}

pub(crate) fn day_of_date(date: NaiveDate) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from(date.signed_duration_since(epoch).num_days()).ok()
}

pub(crate) fn date_of_day(day: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(i64::from(day)))
}

/// An RFC 3339 date-time as seconds since the epoch.
pub(crate) fn parse_instant(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc).timestamp())
}

/// A workspace's contacts: facts packed in one vector, found by id through a small index. A map holding the facts
/// themselves would leave up to half its (large) slots empty after growing; here empty slots cost 12 bytes.
#[derive(Debug, Default)]
pub(crate) struct ContactTable {
    facts: Vec<ContactFacts>,
    slots: std::collections::HashMap<ContactId, u32>,
}

impl ContactTable {
    pub(crate) fn len(&self) -> usize {
        self.facts.len()
    }

    pub(crate) fn get(&self, id: &ContactId) -> Option<&ContactFacts> {
        self.slots.get(id).and_then(|slot| self.facts.get(*slot as usize))
    }

    pub(crate) fn values(&self) -> std::slice::Iter<'_, ContactFacts> {
        self.facts.iter()
    }

    pub(crate) fn insert(&mut self, facts: ContactFacts) {
        match self.slots.get(&facts.id) {
            Some(slot) => {
                if let Some(existing) = self.facts.get_mut(*slot as usize) {
                    *existing = facts;
                }
            }
            None => {
                let Ok(slot) = u32::try_from(self.facts.len()) else { return };
                self.slots.insert(facts.id, slot);
                self.facts.push(facts);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &ContactId) {
        let Some(slot) = self.slots.remove(id) else { return };
        let slot = slot as usize;
        self.facts.swap_remove(slot);
        if let Some(moved) = self.facts.get(slot) {
            self.slots.insert(moved.id, slot as u32);
        }
    }

    /// Gives back the room a load left over.
    pub(crate) fn shrink(&mut self) {
        self.facts.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    /// Bytes held, inline and on the heap.
    pub(crate) fn bytes(&self) -> usize {
        self.facts.capacity() * size_of::<ContactFacts>()
            + self.slots.capacity() * (size_of::<ContactId>() + size_of::<u32>() + 1)
            + self.facts.iter().map(ContactFacts::heap_bytes).sum::<usize>()
    }
}

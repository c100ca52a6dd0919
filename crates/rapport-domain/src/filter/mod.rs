//! The filter language: one definition of "which contacts", used by segments, dynamic tags and (later) scoring fit
//! rules, stage rules and journey conditions.
//!
//! A filter has two written forms that carry the same tree and convert into each other without loss:
//! - the text form, for people and tests (`text.rs` parses it, `print.rs` writes it back canonically), e.g.
//!   `stage >= mql and tag("行业/制造业") and count(event "page_viewed" where url contains "/pricing", last 30 days) >= 3`;
//! - the JSON form, for the API and the console (`json.rs`).
//!
//! This module is syntax only. Whether a field exists, a stage key is known or an operator suits a field's type is
//! checked against a workspace when a filter is compiled for evaluation (in the engine); the parser accepts any
//! well-formed filter.

mod json;
mod print;
#[cfg(test)]
mod tests;
mod text;

pub use json::{FilterJsonError, from_json, to_json};
pub use text::{FilterParseError, parse};

use serde_json::Number;

/// A boolean combination of conditions. `And` and `Or` hold at least two members after parsing (a group of one is
/// its member); parsing flattens `a and (b and c)` into one `And`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cond(Condition),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A system, custom or company field tested by a value test: `country = "中国"`, `fields.budget > 1000`.
    Field { field: FieldRef, test: Test },
    /// `tag("a/b")` (`Has`, exactly one path), `tag_any(...)`, `tag_all(...)`, `tag_none(...)`. A path naming a tag
    /// group matches any tag under it.
    Tag { mode: TagMode, paths: Vec<String> },
    /// `stage >= mql`: compared by the workspace's stage order.
    Stage { op: Cmp, stage: String },
    /// `stage_reached(mql, since "2026-01-01")`: the contact entered this stage (or a later one) at or after the
    /// date. `since` is `None` for "ever".
    StageReached { stage: String, since: Option<DateOperand> },
    /// `in_segment("12")`: membership of another segment, by id.
    InSegment { segment: String },
    /// `has_identity("wechat_openid")`: the contact holds an identity of this kind.
    HasIdentity { kind: String },
    /// `consent("email") = granted`: the current consent state for a channel (`unknown` when nothing is recorded).
    Consent { channel: String, state: ConsentState },
    /// `count(event "x" where p = v, last 30 days) >= 3`, `last(event "x", ever) < "2026-01-01"`.
    Behaviour(Behaviour),
}

/// What a field condition reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldRef {
    Email,
    /// The part of the email address after `@`, lower-cased.
    EmailDomain,
    Phone,
    FirstName,
    LastName,
    Title,
    /// The free-text company name on the contact (not the linked company's name: that is `company.name`).
    CompanyName,
    City,
    Province,
    Country,
    Source,
    /// The lead status key.
    Status,
    OwnerId,
    CreatedAt,
    UpdatedAt,
    /// `fields.KEY`: a custom contact field.
    Custom(String),
    /// `company.KEY`: a field of the linked company: `name`, `domain`, `industry`, `size` or a custom company field.
    Company(String),
}

impl FieldRef {
    /// The system fields by their text-form names, in the order the documentation lists them.
    pub const SYSTEM: [(&'static str, FieldRef); 15] = [
        ("email", FieldRef::Email),
        ("email_domain", FieldRef::EmailDomain),
        ("phone", FieldRef::Phone),
        ("first_name", FieldRef::FirstName),
        ("last_name", FieldRef::LastName),
        ("title", FieldRef::Title),
        ("company_name", FieldRef::CompanyName),
        ("city", FieldRef::City),
        ("province", FieldRef::Province),
        ("country", FieldRef::Country),
        ("source", FieldRef::Source),
        ("status", FieldRef::Status),
        ("owner_id", FieldRef::OwnerId),
        ("created_at", FieldRef::CreatedAt),
        ("updated_at", FieldRef::UpdatedAt),
    ];

    /// Parses a text-form field name: a system field, `fields.KEY` or `company.KEY`.
    pub fn parse(name: &str) -> Option<FieldRef> {
        if let Some(key) = name.strip_prefix("fields.") {
            return (!key.is_empty()).then(|| FieldRef::Custom(key.to_owned()));
        }
        if let Some(key) = name.strip_prefix("company.") {
            return (!key.is_empty()).then(|| FieldRef::Company(key.to_owned()));
        }
        FieldRef::SYSTEM.iter().find(|(text, _)| *text == name).map(|(_, field)| field.clone())
    }

    /// The text-form name.
    pub fn name(&self) -> String {
        match self {
            FieldRef::Custom(key) => format!("fields.{key}"),
            FieldRef::Company(key) => format!("company.{key}"),
            system => FieldRef::SYSTEM
                .iter()
                .find(|(_, field)| field == system)
                .map(|(text, _)| (*text).to_owned())
                .unwrap_or_default(),
        }
    }
}

/// A test of one value (a field's, or an event property's).
///
/// Empty values (absent, null, `""`, `[]`): every positive test is false on them, and `!=`, `not in` are the exact
/// negations of `=`, `in`, so they are true on them. `is empty` / `is not empty` ask about emptiness itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `= != < <= > >=` against a literal or a relative day (`today`, `yesterday`, `tomorrow`).
    Cmp(Cmp, Operand),
    /// `between A and B`, both ends included.
    Between(Operand, Operand),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    /// `matches "regex"`.
    Matches(String),
    /// Multi-select: `contains_any ("a", "b")`, `contains_all ("a", "b")`.
    ContainsAny(Vec<Literal>),
    ContainsAll(Vec<Literal>),
    Empty,
    NotEmpty,
    /// Dates: `during last 7 days`, `during this month`, `during today`.
    During(RelativeRange),
    /// Dates, by month and day only (birthdays): `anniversary today`, `anniversary next 7 days`.
    Anniversary(RelativeRange),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub const ALL: [Cmp; 6] = [Cmp::Eq, Cmp::Ne, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge];

    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    /// Whether `ordering` (left compared with right) satisfies the comparison.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Eq => ordering == Equal,
            Cmp::Ne => ordering != Equal,
            Cmp::Lt => ordering == Less,
            Cmp::Le => ordering != Greater,
            Cmp::Gt => ordering == Greater,
            Cmp::Ge => ordering != Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(Number),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Literal),
    Day(RelativeDay),
}

/// A date operand as written where only dates make sense (`since`, windows): `"2026-01-01"` or a relative day.
#[derive(Debug, Clone, PartialEq)]
pub enum DateOperand {
    /// `YYYY-MM-DD` or an RFC 3339 date-time, as written (checked when compiled).
    Text(String),
    Day(RelativeDay),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelativeDay {
    Today,
    Yesterday,
    Tomorrow,
}

/// A span of days relative to today (in the workspace's time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelativeRange {
    Day(RelativeDay),
    /// The N units ending today, today included: `last 7 days` is today and the six days before.
    Last(u32, Unit),
    /// The N units starting today, today included.
    Next(u32, Unit),
    /// The calendar week (Monday first), month or year that holds today.
    This(Period),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Days,
    Weeks,
    Months,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagMode {
    Has,
    Any,
    All,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentState {
    Granted,
    Denied,
    Unknown,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Granted => "granted",
            ConsentState::Denied => "denied",
            ConsentState::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<ConsentState> {
        [ConsentState::Granted, ConsentState::Denied, ConsentState::Unknown]
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(text))
    }
}

/// A behaviour condition: a measure of the contact's events of one type that pass the property tests, within a
/// window, compared with a value. `count(...) = 0` is "did not".
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub measure: Measure,
    pub event: String,
    pub properties: Vec<PropertyTest>,
    pub window: Window,
    /// For `Count`, a `Cmp` against a number (or `Between` two numbers); for `First` and `Last`, a date test
    /// (`Cmp`, `Between`, `During`, `Empty`, `NotEmpty`).
    pub test: Test,
}

/// The properties named by a behaviour condition behave as one event type, so the engine keeps one aggregate per
/// distinct (event type, property tests) pair; this is the key it uses.
impl Behaviour {
    pub fn predicate(&self) -> EventPredicate {
        EventPredicate { event: self.event.clone(), properties: self.properties.clone() }
    }
}

/// Which events a behaviour condition looks at, without the measure and window.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPredicate {
    pub event: String,
    pub properties: Vec<PropertyTest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    Count,
    First,
    Last,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Count => "count",
            Measure::First => "first",
            Measure::Last => "last",
        }
    }
}

/// `url contains "/pricing"` inside a behaviour condition. `property` is a key of the event's properties; a dotted
/// key reaches into nested objects (`product.sku`).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyTest {
    pub property: String,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// `ever`.
    Ever,
    /// `last N days`: today and the N − 1 days before (in the workspace's time zone).
    LastDays(u32),
    /// `between "2026-01-01" and "2026-03-31"`: both days included.
    Between(DateOperand, DateOperand),
}

impl Filter {
    /// Every condition of the filter, depth first, for dependency analysis.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Condition>) {
        match self {
            Filter::And(members) | Filter::Or(members) => members.iter().for_each(|member| member.collect(out)),
            Filter::Not(inner) => inner.collect(out),
            Filter::Cond(condition) => out.push(condition),
        }
    }
}

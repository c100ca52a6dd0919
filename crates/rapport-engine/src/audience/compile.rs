//! Filters compiled against a workspace's schema, and their evaluation against a contact's facts.
//!
//! Compiling checks what the parser cannot: that fields exist and the operators suit their types, that stage keys,
//! tags and segments exist, that dates are dates and regular expressions compile. A compiled filter reads only the
//! engine's memory: the contact's facts, its company's, its behaviour aggregates and the other segments' members.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use chrono::{Datelike, Months, NaiveDate};
use rapport_domain::filter::{
    Behaviour, Cmp, Condition, ConsentState, DateOperand, FieldRef, Filter, Literal, Measure, Operand, Period,
    PropertyTest, RelativeDay, RelativeRange, TagMode, Test, Unit, Window,
};
use rapport_domain::{CompanyId, ContactId, FieldType, IdentityKind, SegmentId, TagId};
use rapport_store::ConsentChannel;
use regex::Regex;
use serde_json::Value;

use super::facts::{ContactFacts, FactValue, TextField, date_of_day, day_of_date, parse_day, parse_instant};
use super::members::Members;
use super::schema::{CompanyFacts, Schema};

/// Why a filter cannot be used in a workspace, in words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterProblem {
    /// `invalid_filter`, or `segment_cycle` when segments would contain each other.
    pub code: &'static str,
    pub message: String,
}

impl FilterProblem {
    fn invalid(message: impl Into<String>) -> FilterProblem {
        FilterProblem { code: "invalid_filter", message: message.into() }
    }
}

/// The event predicates (event type and property tests) of a workspace's compiled filters, shared so that one
/// aggregate serves every condition that looks at the same events.
#[derive(Debug, Default)]
pub(crate) struct PredicateKeys {
    pub(crate) keys: Vec<String>,
}

impl PredicateKeys {
    fn index(&mut self, key: String) -> usize {
        match self.keys.iter().position(|candidate| *candidate == key) {
            Some(index) => index,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        }
    }
}

/// A compiled filter and what it depends on.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) root: Node,
    /// The workspace's event predicates the filter reads (indexes), for deciding what an event can change.
    pub(crate) predicates: Vec<usize>,
    pub(crate) segments: Vec<SegmentId>,
    /// Whether the answer can change with the date alone (relative dates, windows of the last N days).
    pub(crate) uses_today: bool,
    pub(crate) uses_company: bool,
}

#[derive(Debug)]
pub(crate) enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Value { source: Source, test: ValueTest },
    Tags { mode: TagMode, sets: Vec<Vec<TagId>> },
    Stage { cmp: Cmp, position: u16 },
    StageReached { position: u16, since: Option<Bound> },
    Segment(SegmentId),
    Identity(u8),
    Consent { channel: ConsentChannel, state: u8 },
    Behaviour { predicate: usize, measure: Measure, window: CompiledWindow, test: ValueTest },
}

#[derive(Debug)]
pub(crate) enum Source {
    Text(TextField),
    EmailDomain,
    Status,
    Owner,
    CreatedAt,
    UpdatedAt,
    Custom(u16),
    Company(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    /// Lower-cased: text comparisons ignore case.
    Text(String),
    Number(f64),
    Bool(bool),
    Day(DayRef),
    Instant(i64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum DayRef {
    Fixed(i32),
    Relative(RelativeDay),
}

/// A point in time a date is compared with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound {
    Day(DayRef),
    Instant(i64),
}

#[derive(Debug)]
pub(crate) enum ValueTest {
    Empty,
    NotEmpty,
    Eq(Lit),
    Ne(Lit),
    Order(Cmp, Lit),
    Between(Lit, Lit),
    In(Vec<Lit>),
    NotIn(Vec<Lit>),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Matches(Regex),
    ContainsAny(Vec<String>),
    ContainsAll(Vec<String>),
    During(RelativeRange),
    Anniversary(RelativeRange),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum CompiledWindow {
    Ever,
    LastDays(u32),
    Between(Bound, Bound),
}

/// A predicate over events: its type and property tests.
#[derive(Debug)]
pub(crate) struct EventMatcher {
    pub(crate) event: String,
    tests: Vec<(Vec<String>, ValueTest)>,
}

impl EventMatcher {
    pub(crate) fn matches(&self, event_type: &str, properties: &serde_json::Map<String, Value>, day: &Today) -> bool {
        event_type == self.event
            && self.tests.iter().all(|(path, test)| {
                let mut value = path.first().and_then(|key| properties.get(key));
                for key in path.iter().skip(1) {
                    value = value.and_then(|value| value.get(key));
                }
                test.holds(&json_val(value), day)
            })
    }
}

/// The day the evaluation happens on, and the time zone days are counted in.
#[derive(Debug, Clone, Copy)]
pub struct Today {
    pub day: i32,
    /// Seconds east of UTC.
    pub offset: i32,
}

impl Today {
    pub fn at(now: i64, offset: i32) -> Today {
        Today { day: local_day(now, offset), offset }
    }

    fn resolve(&self, day: DayRef) -> i32 {
        match day {
            DayRef::Fixed(day) => day,
            DayRef::Relative(RelativeDay::Today) => self.day,
            DayRef::Relative(RelativeDay::Yesterday) => self.day - 1,
            DayRef::Relative(RelativeDay::Tomorrow) => self.day + 1,
        }
    }

    fn local(&self, instant: i64) -> i32 {
        local_day(instant, self.offset)
    }

    /// The first and last day of a relative range.
    pub(crate) fn range(&self, range: RelativeRange) -> (i32, i32) {
        let today = self.day;
        let date = date_of_day(today).unwrap_or_default();
        let day = |date: Option<NaiveDate>| date.and_then(day_of_date).unwrap_or(today);
        let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX).max(1);
        match range {
            RelativeRange::Day(relative) => {
                let day = self.resolve(DayRef::Relative(relative));
                (day, day)
            }
            RelativeRange::Last(n, Unit::Days) => (today - count(n) + 1, today),
            RelativeRange::Last(n, Unit::Weeks) => (today - 7 * count(n) + 1, today),
            RelativeRange::Last(n, Unit::Months) => (day(date.checked_sub_months(Months::new(n.max(1)))) + 1, today),
            RelativeRange::Next(n, Unit::Days) => (today, today + count(n) - 1),
            RelativeRange::Next(n, Unit::Weeks) => (today, today + 7 * count(n) - 1),
            RelativeRange::Next(n, Unit::Months) => (today, day(date.checked_add_months(Months::new(n.max(1)))) - 1),
            RelativeRange::This(Period::Week) => {
                let monday = today - i32::try_from(date.weekday().num_days_from_monday()).unwrap_or(0);
                (monday, monday + 6)
            }
            RelativeRange::This(Period::Month) => {
                let first = date.with_day(1);
                let next = first.and_then(|first| first.checked_add_months(Months::new(1)));
                (day(first), day(next) - 1)
            }
            RelativeRange::This(Period::Year) => {
                let first = NaiveDate::from_ymd_opt(date.year(), 1, 1);
                let next = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1);
                (day(first), day(next) - 1)
            }
        }
    }
}

pub(crate) fn local_day(instant: i64, offset: i32) -> i32 {
    i32::try_from((instant + i64::from(offset)).div_euclid(86_400)).unwrap_or(i32::MAX)
}

/// What a compiled filter reads besides the contact itself.
pub(crate) struct World<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) companies: &'a HashMap<CompanyId, CompanyFacts>,
    pub(crate) members: &'a HashMap<SegmentId, Members>,
    /// Membership decided in the current pass but not yet written, which wins over `members`.
    pub(crate) pending: Option<&'a HashMap<(SegmentId, ContactId), bool>>,
    pub(crate) aggregates: &'a [HashMap<ContactId, Aggregate>],
    /// Aggregates of predicates past the end of `aggregates` (an unsaved filter's own, for previews).
    pub(crate) extra: &'a [HashMap<ContactId, Aggregate>],
    pub(crate) today: Today,
}

impl World<'_> {
    fn member(&self, segment: SegmentId, contact: ContactId) -> bool {
        if let Some(decided) = self.pending.and_then(|pending| pending.get(&(segment, contact))) {
            return *decided;
        }
        self.members.get(&segment).is_some_and(|members| members.contains(contact))
    }

    fn aggregate(&self, predicate: usize, contact: ContactId) -> Option<&Aggregate> {
        match self.aggregates.get(predicate) {
            Some(aggregates) => aggregates.get(&contact),
            None => self.extra.get(predicate - self.aggregates.len())?.get(&contact),
        }
    }
}

/// A contact's occurrences of one event predicate: counts per local day, and the exact first and last time.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Aggregate {
    /// (day, count), ascending by day.
    pub(crate) days: Vec<(i32, u32)>,
    pub(crate) first: i64,
    pub(crate) last: i64,
}

impl Aggregate {
    pub(crate) fn add(&mut self, at: i64, offset: i32) {
        let day = local_day(at, offset);
        let first_occurrence = self.days.is_empty();
        match self.days.binary_search_by_key(&day, |(candidate, _)| *candidate) {
            Ok(index) => self.days[index].1 += 1,
            Err(index) => self.days.insert(index, (day, 1)),
        }
        if first_occurrence {
            (self.first, self.last) = (at, at);
        } else {
            self.first = self.first.min(at);
            self.last = self.last.max(at);
        }
    }

    pub(crate) fn absorb(&mut self, other: Aggregate) {
        if other.days.is_empty() {
            return;
        }
        if self.days.is_empty() {
            *self = other;
            return;
        }
        for (day, count) in other.days {
            match self.days.binary_search_by_key(&day, |(candidate, _)| *candidate) {
                Ok(index) => self.days[index].1 += count,
                Err(index) => self.days.insert(index, (day, count)),
            }
        }
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }

    fn within(&self, from: i32, to: i32) -> &[(i32, u32)] {
        let start = self.days.partition_point(|(day, _)| *day < from);
        let end = self.days.partition_point(|(day, _)| *day <= to);
        &self.days[start..end.max(start)]
    }
}

/// A value as tests see it.
#[derive(Debug)]
pub(crate) enum Val<'a> {
    Missing,
    Text(&'a str),
    Number(f64),
    Bool(bool),
    Day(i32),
    Instant(i64),
    Multi(&'a [Box<str>]),
    JsonMulti(&'a [Value]),
}

fn json_val(value: Option<&Value>) -> Val<'_> {
    match value {
        None | Some(Value::Null) => Val::Missing,
        Some(Value::String(text)) if text.is_empty() => Val::Missing,
        Some(Value::String(text)) => Val::Text(text),
        Some(Value::Number(number)) => number.as_f64().map_or(Val::Missing, Val::Number),
        Some(Value::Bool(flag)) => Val::Bool(*flag),
        Some(Value::Array(items)) if items.is_empty() => Val::Missing,
        Some(Value::Array(items)) => Val::JsonMulti(items),
        Some(Value::Object(_)) => Val::Missing,
    }
}

fn fact_val(value: Option<&FactValue>) -> Val<'_> {
    match value {
        None => Val::Missing,
        Some(FactValue::Text(text)) => Val::Text(text),
        Some(FactValue::Number(number)) => Val::Number(*number),
        Some(FactValue::Bool(flag)) => Val::Bool(*flag),
        Some(FactValue::Date(day)) => Val::Day(*day),
        Some(FactValue::Instant(at)) => Val::Instant(*at),
        Some(FactValue::Multi(items)) => Val::Multi(items),
    }
}

/// Lower-cases only when needed.
fn fold(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_uppercase) { Cow::Owned(text.to_lowercase()) } else { Cow::Borrowed(text) }
}

impl ValueTest {
    pub(crate) fn holds(&self, value: &Val<'_>, today: &Today) -> bool {
        let missing = matches!(value, Val::Missing);
        match self {
            ValueTest::Empty => missing,
            ValueTest::NotEmpty => !missing,
            ValueTest::Ne(literal) => !equals(value, literal, today),
            ValueTest::NotIn(literals) => !literals.iter().any(|literal| equals(value, literal, today)),
            _ if missing => false,
            ValueTest::Eq(literal) => equals(value, literal, today),
            ValueTest::Order(cmp, literal) => {
                compare(value, literal, today).is_some_and(|ordering| cmp.holds(ordering))
            }
            ValueTest::Between(low, high) => {
                compare(value, low, today).is_some_and(|ordering| ordering != Ordering::Less)
                    && compare(value, high, today).is_some_and(|ordering| ordering != Ordering::Greater)
            }
            ValueTest::In(literals) => literals.iter().any(|literal| equals(value, literal, today)),
            ValueTest::Contains(needle) => text_of(value).is_some_and(|text| fold(text).contains(needle.as_str())),
            ValueTest::StartsWith(needle) => text_of(value).is_some_and(|text| fold(text).starts_with(needle.as_str())),
            ValueTest::EndsWith(needle) => text_of(value).is_some_and(|text| fold(text).ends_with(needle.as_str())),
            ValueTest::Matches(regex) => text_of(value).is_some_and(|text| regex.is_match(text)),
            ValueTest::ContainsAny(wanted) => wanted.iter().any(|item| has_item(value, item)),
            ValueTest::ContainsAll(wanted) => wanted.iter().all(|item| has_item(value, item)),
            ValueTest::During(range) => {
                let (from, to) = today.range(*range);
                day_of(value, today).is_some_and(|day| from <= day && day <= to)
            }
            ValueTest::Anniversary(range) => {
                let (from, to) = today.range(*range);
                day_of(value, today).and_then(date_of_day).is_some_and(|date| anniversary_within(date, from, to))
            }
        }
    }
}

fn text_of<'a>(value: &Val<'a>) -> Option<&'a str> {
    match value {
        Val::Text(text) => Some(text),
        _ => None,
    }
}

fn day_of(value: &Val<'_>, today: &Today) -> Option<i32> {
    match value {
        Val::Day(day) => Some(*day),
        Val::Instant(at) => Some(today.local(*at)),
        Val::Text(text) => parse_day(text),
        _ => None,
    }
}

fn has_item(value: &Val<'_>, item: &str) -> bool {
    match value {
        Val::Multi(items) => items.iter().any(|candidate| fold(candidate) == item),
        Val::JsonMulti(items) => {
            items.iter().any(|candidate| candidate.as_str().is_some_and(|text| fold(text) == item))
        }
        Val::Text(text) => fold(text) == item,
        _ => false,
    }
}

/// Whether the date's month and day fall within the days `from..=to` in any year (29 February counts as 28
/// February in other years).
fn anniversary_within(date: NaiveDate, from: i32, to: i32) -> bool {
    let (Some(start), Some(end)) = (date_of_day(from), date_of_day(to)) else { return false };
    (start.year()..=end.year()).any(|year| {
        let candidate = NaiveDate::from_ymd_opt(year, date.month(), date.day())
            .or_else(|| NaiveDate::from_ymd_opt(year, date.month(), date.day() - 1));
        candidate.and_then(day_of_date).is_some_and(|day| from <= day && day <= to)
    })
}

fn equals(value: &Val<'_>, literal: &Lit, today: &Today) -> bool {
    match (value, literal) {
        (Val::Multi(_) | Val::JsonMulti(_), Lit::Text(text)) => has_item(value, text),
        _ => compare(value, literal, today) == Some(Ordering::Equal),
    }
}

fn compare(value: &Val<'_>, literal: &Lit, today: &Today) -> Option<Ordering> {
    match (value, literal) {
        (Val::Text(text), Lit::Text(wanted)) => Some(fold(text).as_ref().cmp(wanted.as_str())),
        (Val::Number(number), Lit::Number(wanted)) => number.partial_cmp(wanted),
        (Val::Bool(flag), Lit::Bool(wanted)) => Some(flag.cmp(wanted)),
        (Val::Instant(at), Lit::Instant(wanted)) => Some(at.cmp(wanted)),
        (Val::Day(day), Lit::Instant(wanted)) => Some(day.cmp(&today.local(*wanted))),
        (_, Lit::Day(wanted)) => day_of(value, today).map(|day| day.cmp(&today.resolve(*wanted))),
        // Event properties carry dates as text: compared with a date literal as dates.
        (Val::Text(text), Lit::Instant(wanted)) => parse_instant(text).map(|at| at.cmp(wanted)),
        _ => None,
    }
}

// ----- Evaluation -----

impl Node {
    pub(crate) fn eval(&self, facts: &ContactFacts, world: &World<'_>) -> bool {
        match self {
            Node::All(members) => members.iter().all(|member| member.eval(facts, world)),
            Node::Any(members) => members.iter().any(|member| member.eval(facts, world)),
            Node::Not(inner) => !inner.eval(facts, world),
            Node::Value { source, test } => test.holds(&source.read(facts, world), &world.today),
            Node::Tags { mode, sets } => {
                let has = |set: &Vec<TagId>| set.iter().any(|tag| facts.tags.binary_search(tag).is_ok());
                match mode {
                    TagMode::Has | TagMode::Any => sets.iter().any(has),
                    TagMode::All => sets.iter().all(has),
                    TagMode::None => !sets.iter().any(has),
                }
            }
            Node::Stage { cmp, position } => facts.stage != u16::MAX && cmp.holds(facts.stage.cmp(position)),
            Node::StageReached { position, since } => facts.stages.iter().any(|(stage, at)| {
                *stage != u16::MAX
                    && stage >= position
                    && since.is_none_or(|since| match since {
                        Bound::Day(day) => world.today.local(*at) >= world.today.resolve(day),
                        Bound::Instant(instant) => *at >= instant,
                    })
            }),
            Node::Segment(segment) => world.member(*segment, facts.id),
            Node::Identity(bit) => facts.identities & (1 << bit) != 0,
            Node::Consent { channel, state } => facts.consent(*channel) == *state,
            Node::Behaviour { predicate, measure, window, test } => {
                let aggregate = world.aggregate(*predicate, facts.id);
                let (from, to) = match window {
                    CompiledWindow::Ever => (i32::MIN, i32::MAX),
                    CompiledWindow::LastDays(days) => {
                        (world.today.day - i32::try_from(*days).unwrap_or(i32::MAX).max(1) + 1, world.today.day)
                    }
                    CompiledWindow::Between(from, to) => (bound_day(from, &world.today), bound_day(to, &world.today)),
                };
                let days = aggregate.map_or(&[][..], |aggregate| aggregate.within(from, to));
                let value = match measure {
                    Measure::Count => Val::Number(days.iter().map(|(_, count)| f64::from(*count)).sum()),
                    Measure::First | Measure::Last => match (aggregate, window) {
                        (Some(aggregate), CompiledWindow::Ever) if !aggregate.days.is_empty() => {
                            Val::Instant(if *measure == Measure::First { aggregate.first } else { aggregate.last })
                        }
                        _ => {
                            let day = if *measure == Measure::First { days.first() } else { days.last() };
                            day.map_or(Val::Missing, |(day, _)| Val::Day(*day))
                        }
                    },
                };
                test.holds(&value, &world.today)
            }
        }
    }
}

fn bound_day(bound: &Bound, today: &Today) -> i32 {
    match bound {
        Bound::Day(day) => today.resolve(*day),
        Bound::Instant(at) => today.local(*at),
    }
}

impl Source {
    fn read<'a>(&self, facts: &'a ContactFacts, world: &World<'a>) -> Val<'a> {
        match self {
            Source::Text(field) => facts.text(*field).map_or(Val::Missing, Val::Text),
            Source::EmailDomain => facts
                .text(TextField::Email)
                .and_then(|email| email.rsplit_once('@'))
                .map_or(Val::Missing, |(_, domain)| Val::Text(domain)),
            Source::Status => usize::from(facts.status)
                .checked_sub(1)
                .and_then(|index| world.schema.statuses.get(index))
                .map_or(Val::Missing, |status| Val::Text(status)),
            Source::Owner => facts.owner().map_or(Val::Missing, |owner| Val::Number(owner as f64)),
            Source::CreatedAt => Val::Instant(facts.created_at),
            Source::UpdatedAt => Val::Instant(facts.updated_at),
            Source::Custom(slot) => fact_val(facts.field(*slot)),
            Source::Company(key) => facts
                .company()
                .and_then(|company| world.companies.get(&company))
                .map_or(Val::Missing, |company| fact_val(company.values.get(key))),
        }
    }
}

// ----- Compilation -----

/// The kinds of value a field holds, for checking operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Bool,
    Date,
    Instant,
    Multi,
}

fn kind_of(field_type: FieldType) -> Kind {
    match field_type {
        FieldType::Number => Kind::Number,
        FieldType::Boolean => Kind::Bool,
        FieldType::Date => Kind::Date,
        FieldType::Datetime => Kind::Instant,
        FieldType::MultiSelect => Kind::Multi,
        _ => Kind::Text,
    }
}

pub(crate) struct Compiler<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) predicates: &'a mut PredicateKeys,
    /// Segments that exist, with the segments their filters name (for the cycle check).
    pub(crate) segments: &'a HashMap<SegmentId, Vec<SegmentId>>,
    /// The segment being compiled, when it is one.
    pub(crate) this: Option<SegmentId>,
    /// Dynamic tags' segments: a filter on such a tag depends on that segment.
    pub(crate) tag_segments: &'a HashMap<TagId, SegmentId>,
}

impl Compiler<'_> {
    pub(crate) fn compile(&mut self, filter: &Filter) -> Result<(Compiled, Vec<EventMatcherSpec>), FilterProblem> {
        let mut state = State::default();
        let root = self.node(filter, &mut state)?;
        if let Some(this) = self.this {
            self.check_cycles(this, &state.segments)?;
        }
        let mut predicates: Vec<usize> = state.matchers.iter().map(|(index, _)| *index).collect();
        predicates.sort_unstable();
        predicates.dedup();
        let compiled = Compiled {
            root,
            predicates,
            segments: state.segments,
            uses_today: state.uses_today,
            uses_company: state.uses_company,
        };
        Ok((compiled, state.matchers.into_iter().map(|(index, matcher)| EventMatcherSpec { index, matcher }).collect()))
    }

    fn check_cycles(&self, this: SegmentId, direct: &[SegmentId]) -> Result<(), FilterProblem> {
        let mut stack: Vec<SegmentId> = direct.to_vec();
        let mut seen = HashSet::new();
        while let Some(segment) = stack.pop() {
            if segment == this {
                return Err(FilterProblem {
                    code: "segment_cycle",
                    message: format!(
                        "segment {this} would contain itself through in_segment or dynamic tag conditions"
                    ),
                });
            }
            if seen.insert(segment) {
                stack.extend(self.segments.get(&segment).into_iter().flatten().copied());
            }
        }
        Ok(())
    }

    fn node(&mut self, filter: &Filter, state: &mut State) -> Result<Node, FilterProblem> {
        Ok(match filter {
            Filter::And(members) => {
                Node::All(members.iter().map(|member| self.node(member, state)).collect::<Result<_, _>>()?)
            }
            Filter::Or(members) => {
                Node::Any(members.iter().map(|member| self.node(member, state)).collect::<Result<_, _>>()?)
            }
            Filter::Not(inner) => Node::Not(Box::new(self.node(inner, state)?)),
            Filter::Cond(condition) => self.condition(condition, state)?,
        })
    }

    fn condition(&mut self, condition: &Condition, state: &mut State) -> Result<Node, FilterProblem> {
        Ok(match condition {
            Condition::Field { field, test } => {
                let (source, kind) = self.field(field)?;
                if matches!(source, Source::Company(_)) {
                    state.uses_company = true;
                }
                let test = value_test(test, Some(kind), &field.name(), state)?;
                Node::Value { source, test }
            }
            Condition::Tag { mode, paths } => {
                let mut sets = Vec::new();
                for path in paths {
                    let set = self.schema.tag_subtree(path);
                    if set.is_empty() {
                        return Err(FilterProblem::invalid(format!("there is no tag \"{path}\"")));
                    }
                    for tag in &set {
                        if let Some(segment) = self.tag_segments.get(tag) {
                            if Some(*segment) == self.this {
                                return Err(FilterProblem {
                                    code: "segment_cycle",
                                    message: format!("the dynamic tag \"{path}\" cannot depend on itself"),
                                });
                            }
                            state.segments.push(*segment);
                        }
                    }
                    sets.push(set);
                }
                Node::Tags { mode: *mode, sets }
            }
            Condition::Stage { op, stage } => Node::Stage { cmp: *op, position: self.stage(stage)? },
            Condition::StageReached { stage, since } => {
                let since = match since {
                    None => None,
                    Some(since) => Some(date_bound(since, "stage_reached", state)?),
                };
                Node::StageReached { position: self.stage(stage)?, since }
            }
            Condition::InSegment { segment } => {
                let id = segment
                    .parse::<i64>()
                    .ok()
                    .map(SegmentId::new)
                    .filter(|id| self.segments.contains_key(id) || Some(*id) == self.this)
                    .ok_or_else(|| FilterProblem::invalid(format!("there is no segment with id \"{segment}\"")))?;
                if Some(id) == self.this {
                    return Err(FilterProblem {
                        code: "segment_cycle",
                        message: format!("segment {id} cannot contain itself"),
                    });
                }
                state.segments.push(id);
                Node::Segment(id)
            }
            Condition::HasIdentity { kind } => {
                let bit =
                    IdentityKind::ALL.iter().position(|candidate| candidate.as_str() == kind).ok_or_else(|| {
                        let known: Vec<&str> = IdentityKind::ALL.iter().map(|kind| kind.as_str()).collect();
                        FilterProblem::invalid(format!(
                            "unknown identity kind \"{kind}\"; kinds are {}",
                            known.join(", ")
                        ))
                    })?;
                Node::Identity(u8::try_from(bit).unwrap_or(0))
            }
            Condition::Consent { channel, state: wanted } => {
                let channel = ConsentChannel::parse(channel).ok_or_else(|| {
                    FilterProblem::invalid(format!(
                        "unknown consent channel \"{channel}\"; channels are email, sms, phone, wechat"
                    ))
                })?;
                let state = match wanted {
                    ConsentState::Unknown => 0,
                    ConsentState::Granted => 1,
                    ConsentState::Denied => 2,
                };
                Node::Consent { channel, state }
            }
            Condition::Behaviour(behaviour) => self.behaviour(behaviour, state)?,
        })
    }

    fn stage(&self, key: &str) -> Result<u16, FilterProblem> {
        self.schema.stage_position(key).ok_or_else(|| {
            FilterProblem::invalid(format!("there is no stage \"{key}\"; stages are {}", self.schema.stages.join(", ")))
        })
    }

    fn field(&self, field: &FieldRef) -> Result<(Source, Kind), FilterProblem> {
        Ok(match field {
            FieldRef::Email => (Source::Text(TextField::Email), Kind::Text),
            FieldRef::EmailDomain => (Source::EmailDomain, Kind::Text),
            FieldRef::Phone => (Source::Text(TextField::Phone), Kind::Text),
            FieldRef::FirstName => (Source::Text(TextField::FirstName), Kind::Text),
            FieldRef::LastName => (Source::Text(TextField::LastName), Kind::Text),
            FieldRef::Title => (Source::Text(TextField::Title), Kind::Text),
            FieldRef::CompanyName => (Source::Text(TextField::CompanyName), Kind::Text),
            FieldRef::City => (Source::Text(TextField::City), Kind::Text),
            FieldRef::Province => (Source::Text(TextField::Province), Kind::Text),
            FieldRef::Country => (Source::Text(TextField::Country), Kind::Text),
            FieldRef::Source => (Source::Text(TextField::Source), Kind::Text),
            FieldRef::Status => (Source::Status, Kind::Text),
            FieldRef::OwnerId => (Source::Owner, Kind::Number),
            FieldRef::CreatedAt => (Source::CreatedAt, Kind::Instant),
            FieldRef::UpdatedAt => (Source::UpdatedAt, Kind::Instant),
            FieldRef::Custom(key) => {
                let (slot, field_type) = self
                    .schema
                    .contact_fields
                    .get(key)
                    .ok_or_else(|| FilterProblem::invalid(format!("there is no custom field \"{key}\"")))?;
                (Source::Custom(*slot), kind_of(*field_type))
            }
            FieldRef::Company(key) => {
                let kind = match key.as_str() {
                    "name" | "domain" | "industry" | "size" => Kind::Text,
                    other => kind_of(*self.schema.company_fields.get(other).ok_or_else(|| {
                        FilterProblem::invalid(format!(
                            "there is no company field \"{other}\"; use name, domain, industry, size or a custom company field"
                        ))
                    })?),
                };
                (Source::Company(key.clone()), kind)
            }
        })
    }

    fn behaviour(&mut self, behaviour: &Behaviour, state: &mut State) -> Result<Node, FilterProblem> {
        let Behaviour { measure, event, properties, window, test } = behaviour;
        let mut tests = Vec::new();
        for PropertyTest { property, test } in properties {
            let path: Vec<String> = property.split('.').map(str::to_owned).collect();
            tests.push((path, value_test(test, None, property, state)?));
        }
        let key = format!(
            "{}",
            Filter::Cond(Condition::Behaviour(Behaviour {
                measure: Measure::Count,
                event: event.clone(),
                properties: properties.clone(),
                window: Window::Ever,
                test: Test::NotEmpty,
            }))
        );
        let index = self.predicates.index(key);
        state.matchers.push((index, EventMatcher { event: event.clone(), tests }));
        let window = match window {
            Window::Ever => CompiledWindow::Ever,
            Window::LastDays(days) => {
                state.uses_today = true;
                CompiledWindow::LastDays(*days)
            }
            Window::Between(from, to) => {
                CompiledWindow::Between(date_bound(from, "the window", state)?, date_bound(to, "the window", state)?)
            }
        };
        let kind = if *measure == Measure::Count { Kind::Number } else { Kind::Instant };
        let test = value_test(test, Some(kind), measure.as_str(), state)?;
        Ok(Node::Behaviour { predicate: index, measure: *measure, window, test })
    }
}

/// A predicate index and the matcher that feeds its aggregate.
pub(crate) struct EventMatcherSpec {
    pub(crate) index: usize,
    pub(crate) matcher: EventMatcher,
}

#[derive(Default)]
struct State {
    matchers: Vec<(usize, EventMatcher)>,
    segments: Vec<SegmentId>,
    uses_today: bool,
    uses_company: bool,
}

fn date_bound(operand: &DateOperand, what: &str, state: &mut State) -> Result<Bound, FilterProblem> {
    match operand {
        DateOperand::Day(day) => {
            state.uses_today = true;
            Ok(Bound::Day(DayRef::Relative(*day)))
        }
        DateOperand::Text(text) => date_literal(text)
            .ok_or_else(|| FilterProblem::invalid(format!("{what}: \"{text}\" is not a date (YYYY-MM-DD)"))),
    }
}

fn date_literal(text: &str) -> Option<Bound> {
    if text.len() == 10 {
        parse_day(text).map(|day| Bound::Day(DayRef::Fixed(day)))
    } else {
        parse_instant(text).map(Bound::Instant)
    }
}

/// Compiles a value test for a field of `kind` (`None` for event properties, whose type is only known per event).
fn value_test(test: &Test, kind: Option<Kind>, name: &str, state: &mut State) -> Result<ValueTest, FilterProblem> {
    let unfit = |what: &str| {
        let kind = match kind {
            Some(Kind::Text) => "a text field",
            Some(Kind::Number) => "a number",
            Some(Kind::Bool) => "a yes/no field",
            Some(Kind::Date | Kind::Instant) => "a date",
            Some(Kind::Multi) => "a multiple choice field",
            None => "a property",
        };
        FilterProblem::invalid(format!("{name} is {kind}: {what} does not apply"))
    };
    let is_date = matches!(kind, Some(Kind::Date | Kind::Instant));
    let textual = |what: &str| -> Result<(), FilterProblem> {
        if matches!(kind, None | Some(Kind::Text)) { Ok(()) } else { Err(unfit(what)) }
    };
    let mut literal = |operand: &Operand| -> Result<Lit, FilterProblem> { lit(operand, kind, name, state) };
    Ok(match test {
        Test::Empty => ValueTest::Empty,
        Test::NotEmpty => ValueTest::NotEmpty,
        Test::Cmp(cmp, operand) => {
            if kind == Some(Kind::Multi) {
                return Err(unfit(&format!("\"{}\"", cmp.symbol())));
            }
            if kind == Some(Kind::Bool) && !matches!(cmp, Cmp::Eq | Cmp::Ne) {
                return Err(unfit(&format!("\"{}\"", cmp.symbol())));
            }
            let value = literal(operand)?;
            match cmp {
                Cmp::Eq => ValueTest::Eq(value),
                Cmp::Ne => ValueTest::Ne(value),
                order => ValueTest::Order(*order, value),
            }
        }
        Test::Between(low, high) => {
            if matches!(kind, Some(Kind::Bool | Kind::Multi)) {
                return Err(unfit("between"));
            }
            ValueTest::Between(literal(low)?, literal(high)?)
        }
        Test::In(values) | Test::NotIn(values) => {
            if is_date || kind == Some(Kind::Bool) {
                return Err(unfit("in"));
            }
            let values =
                values.iter().map(|value| literal(&Operand::Literal(value.clone()))).collect::<Result<Vec<_>, _>>()?;
            if matches!(test, Test::In(_)) { ValueTest::In(values) } else { ValueTest::NotIn(values) }
        }
        Test::Contains(text) => {
            textual("contains")?;
            ValueTest::Contains(text.to_lowercase())
        }
        Test::StartsWith(text) => {
            textual("starts_with")?;
            ValueTest::StartsWith(text.to_lowercase())
        }
        Test::EndsWith(text) => {
            textual("ends_with")?;
            ValueTest::EndsWith(text.to_lowercase())
        }
        Test::Matches(pattern) => {
            textual("matches")?;
            let regex = regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|error| {
                FilterProblem::invalid(format!("{name} matches: not a valid regular expression: {error}"))
            })?;
            ValueTest::Matches(regex)
        }
        Test::ContainsAny(values) | Test::ContainsAll(values) => {
            if !matches!(kind, None | Some(Kind::Multi)) {
                return Err(unfit(if matches!(test, Test::ContainsAny(_)) { "contains_any" } else { "contains_all" }));
            }
            let values: Vec<String> = values
                .iter()
                .map(|value| match value {
                    Literal::Text(text) => Ok(text.to_lowercase()),
                    other => Err(FilterProblem::invalid(format!("{name}: {other:?} is not a text value"))),
                })
                .collect::<Result<_, _>>()?;
            if matches!(test, Test::ContainsAny(_)) {
                ValueTest::ContainsAny(values)
            } else {
                ValueTest::ContainsAll(values)
            }
        }
        Test::During(range) | Test::Anniversary(range) => {
            if !(is_date || kind.is_none()) {
                return Err(unfit(if matches!(test, Test::During(_)) { "during" } else { "anniversary" }));
            }
            state.uses_today = true;
            if matches!(test, Test::During(_)) { ValueTest::During(*range) } else { ValueTest::Anniversary(*range) }
        }
    })
}

fn lit(operand: &Operand, kind: Option<Kind>, name: &str, state: &mut State) -> Result<Lit, FilterProblem> {
    let wrong = |what: &str| FilterProblem::invalid(format!("{name} expects {what}"));
    match (operand, kind) {
        (Operand::Day(day), Some(Kind::Date | Kind::Instant) | None) => {
            state.uses_today = true;
            Ok(Lit::Day(DayRef::Relative(*day)))
        }
        (Operand::Day(_), _) => Err(wrong("a value, not a date")),
        (Operand::Literal(Literal::Text(text)), Some(Kind::Date | Kind::Instant)) => match date_literal(text) {
            Some(Bound::Day(day)) => Ok(Lit::Day(day)),
            Some(Bound::Instant(at)) => Ok(Lit::Instant(at)),
            None => Err(wrong(&format!("a date (YYYY-MM-DD), not \"{text}\""))),
        },
        (Operand::Literal(_), Some(Kind::Date | Kind::Instant)) => Err(wrong("a date (YYYY-MM-DD)")),
        (Operand::Literal(Literal::Number(number)), Some(Kind::Number) | None) => {
            number.as_f64().map(Lit::Number).ok_or_else(|| wrong("a number"))
        }
        (Operand::Literal(_), Some(Kind::Number)) => Err(wrong("a number")),
        (Operand::Literal(Literal::Bool(flag)), Some(Kind::Bool) | None) => Ok(Lit::Bool(*flag)),
        (Operand::Literal(_), Some(Kind::Bool)) => Err(wrong("true or false")),
        (Operand::Literal(Literal::Text(text)), Some(Kind::Text | Kind::Multi) | None) => {
            Ok(Lit::Text(text.to_lowercase()))
        }
        (Operand::Literal(_), Some(Kind::Text | Kind::Multi)) => Err(wrong("text in double quotes")),
    }
}

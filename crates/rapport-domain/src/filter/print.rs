//! The canonical text form of a filter: lower-case keywords, single spaces, strings always double-quoted, and only
//! the parentheses precedence needs. Parsing the printed form gives the same tree back.

use std::fmt::{self, Display, Formatter, Write};

use super::{
    Behaviour, Cmp, Condition, ConsentState, DateOperand, FieldRef, Filter, Literal, Operand, Period, PropertyTest,
    RelativeDay, RelativeRange, TagMode, Test, Unit, Window,
};

impl Display for Filter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            // The text form has no empty group; `()` shows one honestly (and does not parse).
            Filter::And(members) | Filter::Or(members) if members.is_empty() => f.write_str("()"),
            Filter::And(members) | Filter::Or(members) if members.len() == 1 => members[0].fmt(f),
            Filter::Or(members) => write_joined(f, members, " or ", |f, member| write_bound(f, member, Binding::Or)),
            Filter::And(members) => write_joined(f, members, " and ", |f, member| write_bound(f, member, Binding::And)),
            Filter::Not(inner) => {
                f.write_str("not ")?;
                write_bound(f, inner, Binding::Not)
            }
            Filter::Cond(condition) => condition.fmt(f),
        }
    }
}

impl Display for Condition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Field { field, test } => write!(f, "{field} {test}"),
            Condition::Tag { mode, paths } => {
                let name = match mode {
                    TagMode::Has if paths.len() == 1 => "tag",
                    // A has-test of several paths is not written in the text form; it reads as "has all of them".
                    TagMode::Has | TagMode::All => "tag_all",
                    TagMode::Any => "tag_any",
                    TagMode::None => "tag_none",
                };
                write!(f, "{name}(")?;
                write_joined(f, paths, ", ", |f, path| write_string(f, path))?;
                f.write_char(')')
            }
            Condition::Stage { op, stage } => {
                write!(f, "stage {op} ")?;
                write_key(f, stage)
            }
            Condition::StageReached { stage, since } => {
                f.write_str("stage_reached(")?;
                write_key(f, stage)?;
                if let Some(since) = since {
                    write!(f, ", since {since}")?;
                }
                f.write_char(')')
            }
            Condition::InSegment { segment } => {
                f.write_str("in_segment(")?;
                write_string(f, segment)?;
                f.write_char(')')
            }
            Condition::HasIdentity { kind } => {
                f.write_str("has_identity(")?;
                write_string(f, kind)?;
                f.write_char(')')
            }
            Condition::Consent { channel, state } => {
                f.write_str("consent(")?;
                write_string(f, channel)?;
                write!(f, ") = {state}")
            }
            Condition::Behaviour(behaviour) => behaviour.fmt(f),
        }
    }
}

impl Display for Behaviour {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(event ", self.measure.as_str())?;
        write_string(f, &self.event)?;
        if !self.properties.is_empty() {
            f.write_str(" where ")?;
            write_joined(f, &self.properties, " and ", |f, property| property.fmt(f))?;
        }
        write!(f, ", {}) {}", self.window, self.test)
    }
}

impl Display for PropertyTest {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_key(f, &self.property)?;
        write!(f, " {}", self.test)
    }
}

impl Display for FieldRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The test without its subject: `= "中国"`, `not in ("qq.com", "163.com")`, `during last 7 days`.
impl Display for Test {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let write_list = |f: &mut Formatter<'_>, name: &str, values: &[Literal]| {
            write!(f, "{name} (")?;
            write_joined(f, values, ", ", |f, value| value.fmt(f))?;
            f.write_char(')')
        };
        let write_text = |f: &mut Formatter<'_>, name: &str, text: &str| {
            write!(f, "{name} ")?;
            write_string(f, text)
        };
        match self {
            Test::Cmp(op, operand) => write!(f, "{op} {operand}"),
            Test::Between(low, high) => write!(f, "between {low} and {high}"),
            Test::In(values) => write_list(f, "in", values),
            Test::NotIn(values) => write_list(f, "not in", values),
            Test::Contains(text) => write_text(f, "contains", text),
            Test::StartsWith(text) => write_text(f, "starts_with", text),
            Test::EndsWith(text) => write_text(f, "ends_with", text),
            Test::Matches(pattern) => write_text(f, "matches", pattern),
            Test::ContainsAny(values) => write_list(f, "contains_any", values),
            Test::ContainsAll(values) => write_list(f, "contains_all", values),
            Test::Empty => f.write_str("is empty"),
            Test::NotEmpty => f.write_str("is not empty"),
            Test::During(range) => write!(f, "during {range}"),
            Test::Anniversary(range) => write!(f, "anniversary {range}"),
        }
    }
}

impl Display for Cmp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Text(text) => write_string(f, text),
            Literal::Number(number) => number.fmt(f),
            Literal::Bool(value) => value.fmt(f),
        }
    }
}

impl Display for Operand {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Literal(literal) => literal.fmt(f),
            Operand::Day(day) => day.fmt(f),
        }
    }
}

impl Display for DateOperand {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            DateOperand::Text(date) => write_string(f, date),
            DateOperand::Day(day) => day.fmt(f),
        }
    }
}

impl RelativeDay {
    pub fn as_str(self) -> &'static str {
        match self {
            RelativeDay::Today => "today",
            RelativeDay::Yesterday => "yesterday",
            RelativeDay::Tomorrow => "tomorrow",
        }
    }
}

impl Display for RelativeDay {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `last 7 days`, `last 1 week`, `next 3 months`, `this year`, `today`: the unit is singular for one.
impl Display for RelativeRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            RelativeRange::Day(day) => day.fmt(f),
            RelativeRange::Last(count, unit) => write!(f, "last {count} {}", unit.name(*count)),
            RelativeRange::Next(count, unit) => write!(f, "next {count} {}", unit.name(*count)),
            RelativeRange::This(period) => write!(f, "this {}", period.as_str()),
        }
    }
}

impl Unit {
    /// The unit's name after `count`: `days`, or `day` for one.
    pub fn name(self, count: u32) -> &'static str {
        match (self, count) {
            (Unit::Days, 1) => "day",
            (Unit::Days, _) => "days",
            (Unit::Weeks, 1) => "week",
            (Unit::Weeks, _) => "weeks",
            (Unit::Months, 1) => "month",
            (Unit::Months, _) => "months",
        }
    }
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }
}

impl Display for Window {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Window::Ever => f.write_str("ever"),
            Window::LastDays(days) => write!(f, "last {days} {}", Unit::Days.name(*days)),
            Window::Between(from, to) => write!(f, "between {from} and {to}"),
        }
    }
}

impl Display for ConsentState {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How tightly an operator holds its operands: an operand that binds more loosely needs parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    Or,
    And,
    Not,
}

fn binding(filter: &Filter) -> Binding {
    match filter {
        Filter::And(members) | Filter::Or(members) if members.len() == 1 => binding(&members[0]),
        Filter::Or(members) if members.len() > 1 => Binding::Or,
        Filter::And(members) if members.len() > 1 => Binding::And,
        _ => Binding::Not,
    }
}

/// Writes `filter` as an operand of an operator that binds like `context`. A group inside a group of the same kind
/// needs no parentheses: parsing flattens it, which changes the tree but not what it means.
fn write_bound(f: &mut Formatter<'_>, filter: &Filter, context: Binding) -> fmt::Result {
    if binding(filter) < context { write!(f, "({filter})") } else { filter.fmt(f) }
}

fn write_joined<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    separator: &str,
    mut write_item: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        write_item(f, item)?;
    }
    Ok(())
}

/// A stage key or property name: bare when it reads as a word, else a string.
fn write_key(f: &mut Formatter<'_>, key: &str) -> fmt::Result {
    let mut chars = key.chars();
    let bare = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if bare { f.write_str(key) } else { write_string(f, key) }
}

/// A double-quoted string with `"`, `\` and control characters escaped.
fn write_string(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

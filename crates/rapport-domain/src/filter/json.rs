//! The JSON form of a filter: explicit objects a console can build and inspect without parsing text.
//!
//! ```json
//! {"and": [
//!   {"stage": {"op": ">=", "value": "mql"}},
//!   {"field": "email_domain", "op": "not_in", "value": ["qq.com", "163.com"]},
//!   {"behaviour": {"measure": "count", "event": "page_viewed",
//!                  "where": [{"property": "url", "op": "contains", "value": "/pricing"}],
//!                  "window": {"last_days": 30}, "op": ">=", "value": 3}}
//! ]}
//! ```
//!
//! Every tree converts to JSON and back unchanged. Decoding rejects unknown keys and wrong types, naming the place
//! as a JSON path (`$.and[2].op`). `docs/filters.md` lists every shape.

use serde_json::{Map, Value, json};

use super::text::MAX_DEPTH;
use super::{
    Behaviour, Cmp, Condition, ConsentState, DateOperand, FieldRef, Filter, Literal, Measure, Operand, Period,
    PropertyTest, RelativeDay, RelativeRange, TagMode, Test, Unit, Window,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterJsonError {
    /// Where in the document, as a JSON path (`$.and[2].op`).
    pub path: String,
    pub message: String,
}

pub fn to_json(filter: &Filter) -> Value {
    match filter {
        Filter::And(members) => json!({ "and": members.iter().map(to_json).collect::<Vec<_>>() }),
        Filter::Or(members) => json!({ "or": members.iter().map(to_json).collect::<Vec<_>>() }),
        Filter::Not(inner) => json!({ "not": to_json(inner) }),
        Filter::Cond(condition) => condition_to_json(condition),
    }
}

pub fn from_json(value: &Value) -> Result<Filter, FilterJsonError> {
    filter(value, "$", 1)
}

/// The keys that say what a filter object is; each object has exactly one of them.
const NODE_KEYS: [&str; 11] = [
    "and",
    "or",
    "not",
    "field",
    "tag",
    "stage",
    "stage_reached",
    "in_segment",
    "has_identity",
    "consent",
    "behaviour",
];

/// Operator names in JSON, in the order the documentation lists them.
const OPERATORS: [&str; 19] = [
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "between",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "contains_any",
    "contains_all",
    "is_empty",
    "is_not_empty",
    "during",
    "anniversary",
];

fn condition_to_json(condition: &Condition) -> Value {
    match condition {
        Condition::Field { field, test } => {
            let mut object = Map::new();
            object.insert("field".into(), field.name().into());
            test_to_json(test, &mut object);
            Value::Object(object)
        }
        Condition::Tag { mode, paths } => json!({ "tag": { "mode": tag_mode_name(*mode), "paths": paths } }),
        Condition::Stage { op, stage } => json!({ "stage": { "op": op.symbol(), "value": stage } }),
        Condition::StageReached { stage, since } => {
            let mut object = Map::new();
            object.insert("stage".into(), stage.clone().into());
            if let Some(since) = since {
                object.insert("since".into(), date_to_json(since));
            }
            json!({ "stage_reached": object })
        }
        Condition::InSegment { segment } => json!({ "in_segment": segment }),
        Condition::HasIdentity { kind } => json!({ "has_identity": kind }),
        Condition::Consent { channel, state } => json!({ "consent": { "channel": channel, "state": state.as_str() } }),
        Condition::Behaviour(behaviour) => {
            let mut object = Map::new();
            object.insert("measure".into(), behaviour.measure.as_str().into());
            object.insert("event".into(), behaviour.event.clone().into());
            if !behaviour.properties.is_empty() {
                let properties = behaviour.properties.iter().map(|property| {
                    let mut object = Map::new();
                    object.insert("property".into(), property.property.clone().into());
                    test_to_json(&property.test, &mut object);
                    Value::Object(object)
                });
                object.insert("where".into(), properties.collect());
            }
            object.insert("window".into(), window_to_json(&behaviour.window));
            test_to_json(&behaviour.test, &mut object);
            json!({ "behaviour": object })
        }
    }
}

/// A test lives in the object of its subject: `"op"`, and `"value"` or `"range"` where the operator takes one.
fn test_to_json(test: &Test, object: &mut Map<String, Value>) {
    let list = |values: &[Literal]| Value::Array(values.iter().map(literal_to_json).collect());
    let (op, value, range) = match test {
        Test::Cmp(op, operand) => (op.symbol(), Some(operand_to_json(operand)), None),
        Test::Between(low, high) => ("between", Some(json!([operand_to_json(low), operand_to_json(high)])), None),
        Test::In(values) => ("in", Some(list(values)), None),
        Test::NotIn(values) => ("not_in", Some(list(values)), None),
        Test::Contains(text) => ("contains", Some(text.clone().into()), None),
        Test::StartsWith(text) => ("starts_with", Some(text.clone().into()), None),
        Test::EndsWith(text) => ("ends_with", Some(text.clone().into()), None),
        Test::Matches(pattern) => ("matches", Some(pattern.clone().into()), None),
        Test::ContainsAny(values) => ("contains_any", Some(list(values)), None),
        Test::ContainsAll(values) => ("contains_all", Some(list(values)), None),
        Test::Empty => ("is_empty", None, None),
        Test::NotEmpty => ("is_not_empty", None, None),
        Test::During(range) => ("during", None, Some(range_to_json(range))),
        Test::Anniversary(range) => ("anniversary", None, Some(range_to_json(range))),
    };
    object.insert("op".into(), op.into());
    if let Some(value) = value {
        object.insert("value".into(), value);
    }
    if let Some(range) = range {
        object.insert("range".into(), range);
    }
}

fn literal_to_json(literal: &Literal) -> Value {
    match literal {
        Literal::Text(text) => text.clone().into(),
        Literal::Number(number) => Value::Number(number.clone()),
        Literal::Bool(value) => (*value).into(),
    }
}

fn operand_to_json(operand: &Operand) -> Value {
    match operand {
        Operand::Literal(literal) => literal_to_json(literal),
        Operand::Day(day) => json!({ "day": day.as_str() }),
    }
}

fn date_to_json(date: &DateOperand) -> Value {
    match date {
        DateOperand::Text(text) => text.clone().into(),
        DateOperand::Day(day) => json!({ "day": day.as_str() }),
    }
}

fn range_to_json(range: &RelativeRange) -> Value {
    match range {
        RelativeRange::Day(day) => json!({ "day": day.as_str() }),
        RelativeRange::Last(count, unit) => json!({ "last": count, "unit": unit_name(*unit) }),
        RelativeRange::Next(count, unit) => json!({ "next": count, "unit": unit_name(*unit) }),
        RelativeRange::This(period) => json!({ "this": period.as_str() }),
    }
}

fn window_to_json(window: &Window) -> Value {
    match window {
        Window::Ever => "ever".into(),
        Window::LastDays(days) => json!({ "last_days": days }),
        Window::Between(from, to) => json!({ "between": [date_to_json(from), date_to_json(to)] }),
    }
}

fn tag_mode_name(mode: TagMode) -> &'static str {
    match mode {
        TagMode::Has => "has",
        TagMode::Any => "any",
        TagMode::All => "all",
        TagMode::None => "none",
    }
}

fn unit_name(unit: Unit) -> &'static str {
    unit.name(0)
}

type Decoded<T> = Result<T, FilterJsonError>;

fn filter(value: &Value, path: &str, depth: usize) -> Decoded<Filter> {
    let object = as_object(value, path, "a filter object")?;
    let kinds: Vec<&str> = NODE_KEYS.iter().copied().filter(|key| object.contains_key(*key)).collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            let message = format!("expected a filter object with one of the keys {}", NODE_KEYS.join(", "));
            return Err(match object.keys().next() {
                Some(key) => error(&key_path(path, key), format!("unknown key \"{key}\"; {message}")),
                None => error(path, message),
            });
        }
        [first, second, ..] => {
            let message = format!(
                "a filter object has one of the keys {}, not both \"{first}\" and \"{second}\"",
                NODE_KEYS.join(", ")
            );
            return Err(error(path, message));
        }
    };
    if matches!(kind, "and" | "or" | "not") && depth > MAX_DEPTH {
        return Err(error(path, format!("groups nest too deeply (at most {MAX_DEPTH} levels)")));
    }
    let inner_path = key_path(path, kind);
    let inner = &object[kind];
    if kind == "field" {
        only_keys(object, path, &["field", "op", "value", "range"], "a field condition")?;
        let name = string(inner, &inner_path)?;
        let field = FieldRef::parse(name).ok_or_else(|| {
            let names: Vec<&str> = FieldRef::SYSTEM.iter().map(|(name, _)| *name).collect();
            let message =
                format!("unknown field \"{name}\"; fields are {}, or fields.KEY / company.KEY", names.join(", "));
            error(&inner_path, message)
        })?;
        return Ok(Filter::Cond(Condition::Field { field, test: test(object, path)? }));
    }
    only_keys(object, path, &[kind], &format!("a \"{kind}\" filter object"))?;
    let members = || -> Decoded<Vec<Filter>> {
        let members = array(inner, &inner_path)?;
        members
            .iter()
            .enumerate()
            .map(|(index, member)| filter(member, &format!("{inner_path}[{index}]"), depth + 1))
            .collect()
    };
    let condition = match kind {
        "and" => return members().map(Filter::And),
        "or" => return members().map(Filter::Or),
        "not" => return Ok(Filter::Not(Box::new(filter(inner, &inner_path, depth + 1)?))),
        "tag" => {
            let tag = as_object(inner, &inner_path, "an object with mode and paths")?;
            only_keys(tag, &inner_path, &["mode", "paths"], "a tag condition")?;
            let (mode_value, mode_path) = required(tag, &inner_path, "mode")?;
            let modes = [("has", TagMode::Has), ("any", TagMode::Any), ("all", TagMode::All), ("none", TagMode::None)];
            let mode = one_of(mode_value, &mode_path, &modes)?;
            let (paths, paths_path) = required(tag, &inner_path, "paths")?;
            let paths = array(paths, &paths_path)?
                .iter()
                .enumerate()
                .map(|(index, path)| string(path, &format!("{paths_path}[{index}]")).map(str::to_owned))
                .collect::<Decoded<_>>()?;
            Condition::Tag { mode, paths }
        }
        "stage" => {
            let stage = as_object(inner, &inner_path, "an object with op and value")?;
            only_keys(stage, &inner_path, &["op", "value"], "a stage condition")?;
            let (op, op_path) = required(stage, &inner_path, "op")?;
            let op = one_of(op, &op_path, &Cmp::ALL.map(|cmp| (cmp.symbol(), cmp)))?;
            let (key, key_path) = required(stage, &inner_path, "value")?;
            Condition::Stage { op, stage: string(key, &key_path)?.to_owned() }
        }
        "stage_reached" => {
            let reached = as_object(inner, &inner_path, "an object with stage and since")?;
            only_keys(reached, &inner_path, &["stage", "since"], "a stage_reached condition")?;
            let (stage, stage_path) = required(reached, &inner_path, "stage")?;
            let since = match reached.get("since") {
                None | Some(Value::Null) => None,
                Some(since) => Some(date(since, &key_path(&inner_path, "since"))?),
            };
            Condition::StageReached { stage: string(stage, &stage_path)?.to_owned(), since }
        }
        "in_segment" => Condition::InSegment { segment: string(inner, &inner_path)?.to_owned() },
        "has_identity" => Condition::HasIdentity { kind: string(inner, &inner_path)?.to_owned() },
        "consent" => {
            let consent = as_object(inner, &inner_path, "an object with channel and state")?;
            only_keys(consent, &inner_path, &["channel", "state"], "a consent condition")?;
            let (channel, channel_path) = required(consent, &inner_path, "channel")?;
            let (state, state_path) = required(consent, &inner_path, "state")?;
            let states = [ConsentState::Granted, ConsentState::Denied, ConsentState::Unknown].map(|s| (s.as_str(), s));
            Condition::Consent {
                channel: string(channel, &channel_path)?.to_owned(),
                state: one_of(state, &state_path, &states)?,
            }
        }
        _ => Condition::Behaviour(behaviour(inner, &inner_path)?),
    };
    Ok(Filter::Cond(condition))
}

fn behaviour(value: &Value, path: &str) -> Decoded<Behaviour> {
    let object = as_object(value, path, "a behaviour object")?;
    let keys = ["measure", "event", "where", "window", "op", "value", "range"];
    only_keys(object, path, &keys, "a behaviour condition")?;
    let (measure, measure_path) = required(object, path, "measure")?;
    let measures = [Measure::Count, Measure::First, Measure::Last].map(|measure| (measure.as_str(), measure));
    let measure = one_of(measure, &measure_path, &measures)?;
    let (event, event_path) = required(object, path, "event")?;
    let event = string(event, &event_path)?.to_owned();
    let mut properties = Vec::new();
    if let Some(tests) = object.get("where") {
        let where_path = key_path(path, "where");
        for (index, property) in array(tests, &where_path)?.iter().enumerate() {
            let property_path = format!("{where_path}[{index}]");
            let property_object = as_object(property, &property_path, "a property test object")?;
            only_keys(property_object, &property_path, &["property", "op", "value", "range"], "a property test")?;
            let (name, name_path) = required(property_object, &property_path, "property")?;
            let name = string(name, &name_path)?.to_owned();
            properties.push(PropertyTest { property: name, test: test(property_object, &property_path)? });
        }
    }
    let window = match object.get("window") {
        Some(window) => self::window(window, &key_path(path, "window"))?,
        None => Window::Ever,
    };
    Ok(Behaviour { measure, event, properties, window, test: test(object, path)? })
}

/// The `op`, `value` and `range` keys of a field condition, property test or behaviour.
fn test(object: &Map<String, Value>, path: &str) -> Decoded<Test> {
    let (op_value, op_path) = required(object, path, "op")?;
    let op = string(op_value, &op_path)?;
    let value_path = key_path(path, "value");
    let value = || object.get("value").ok_or_else(|| error(&value_path, format!("missing; \"{op}\" needs a value")));
    let text = || value().and_then(|value| string(value, &value_path)).map(str::to_owned);
    let list = || -> Decoded<Vec<Literal>> {
        let values = array(value()?, &value_path)?;
        values.iter().enumerate().map(|(index, value)| literal(value, &format!("{value_path}[{index}]"))).collect()
    };
    let takes_range = matches!(op, "during" | "anniversary");
    let takes_value = !takes_range && !matches!(op, "is_empty" | "is_not_empty");
    if !takes_value && object.contains_key("value") {
        return Err(error(&value_path, format!("\"{op}\" takes no value")));
    }
    if !takes_range && object.contains_key("range") {
        let message = format!("\"{op}\" takes no range; only during and anniversary do");
        return Err(error(&key_path(path, "range"), message));
    }
    let range = || -> Decoded<RelativeRange> {
        let range_path = key_path(path, "range");
        let value =
            object.get("range").ok_or_else(|| error(&range_path, format!("missing; \"{op}\" needs a range")))?;
        self::range(value, &range_path)
    };
    if let Some(cmp) = Cmp::ALL.into_iter().find(|cmp| cmp.symbol() == op) {
        return Ok(Test::Cmp(cmp, operand(value()?, &value_path)?));
    }
    Ok(match op {
        "between" => {
            let [low, high] = pair(value()?, &value_path)?;
            Test::Between(operand(low, &format!("{value_path}[0]"))?, operand(high, &format!("{value_path}[1]"))?)
        }
        "in" => Test::In(list()?),
        "not_in" => Test::NotIn(list()?),
        "contains" => Test::Contains(text()?),
        "starts_with" => Test::StartsWith(text()?),
        "ends_with" => Test::EndsWith(text()?),
        "matches" => Test::Matches(text()?),
        "contains_any" => Test::ContainsAny(list()?),
        "contains_all" => Test::ContainsAll(list()?),
        "is_empty" => Test::Empty,
        "is_not_empty" => Test::NotEmpty,
        "during" => Test::During(range()?),
        "anniversary" => Test::Anniversary(range()?),
        _ => {
            let message = format!("unknown operator \"{op}\"; operators are {}", OPERATORS.join(", "));
            return Err(error(&op_path, message));
        }
    })
}

fn literal(value: &Value, path: &str) -> Decoded<Literal> {
    match value {
        Value::String(text) => Ok(Literal::Text(text.clone())),
        Value::Number(number) => Ok(Literal::Number(number.clone())),
        Value::Bool(value) => Ok(Literal::Bool(*value)),
        Value::Null => {
            Err(error(path, "expected a string, number or boolean, found null; test for no value with is_empty"))
        }
        other => Err(error(path, format!("expected a string, number or boolean, found {}", describe(other)))),
    }
}

fn operand(value: &Value, path: &str) -> Decoded<Operand> {
    match value {
        Value::Object(_) => relative_day(value, path).map(Operand::Day),
        _ => literal(value, path).map(Operand::Literal),
    }
}

fn date(value: &Value, path: &str) -> Decoded<DateOperand> {
    match value {
        Value::String(text) => Ok(DateOperand::Text(text.clone())),
        Value::Object(_) => relative_day(value, path).map(DateOperand::Day),
        other => Err(error(
            path,
            format!("expected a date (\"YYYY-MM-DD\") or {{\"day\": \"today\"}}, found {}", describe(other)),
        )),
    }
}

/// `{"day": "today"}`.
fn relative_day(value: &Value, path: &str) -> Decoded<RelativeDay> {
    let object = as_object(value, path, "{\"day\": ...}")?;
    only_keys(object, path, &["day"], "a relative day")?;
    let (day, day_path) = required(object, path, "day")?;
    one_of(
        day,
        &day_path,
        &[RelativeDay::Today, RelativeDay::Yesterday, RelativeDay::Tomorrow].map(|day| (day.as_str(), day)),
    )
}

fn range(value: &Value, path: &str) -> Decoded<RelativeRange> {
    let object = as_object(value, path, "a range object")?;
    if object.contains_key("day") {
        return relative_day(value, path).map(RelativeRange::Day);
    }
    if let Some(period) = object.get("this") {
        only_keys(object, path, &["this"], "a this-range")?;
        let periods = [Period::Week, Period::Month, Period::Year].map(|period| (period.as_str(), period));
        return one_of(period, &key_path(path, "this"), &periods).map(RelativeRange::This);
    }
    for direction in ["last", "next"] {
        let Some(count) = object.get(direction) else { continue };
        only_keys(object, path, &[direction, "unit"], "a range")?;
        let count = whole_number(count, &key_path(path, direction))?;
        let (unit, unit_path) = required(object, path, "unit")?;
        let unit =
            one_of(unit, &unit_path, &[Unit::Days, Unit::Weeks, Unit::Months].map(|unit| (unit_name(unit), unit)))?;
        return Ok(if direction == "last" {
            RelativeRange::Last(count, unit)
        } else {
            RelativeRange::Next(count, unit)
        });
    }
    Err(error(
        path,
        "expected a range: {\"day\": \"today\"}, {\"last\": 7, \"unit\": \"days\"}, {\"next\": 1, \"unit\": \"months\"} or {\"this\": \"week\"}",
    ))
}

fn window(value: &Value, path: &str) -> Decoded<Window> {
    let expected =
        "expected a window: \"ever\", {\"last_days\": 30} or {\"between\": [\"2026-01-01\", \"2026-03-31\"]}";
    match value {
        Value::String(text) if text == "ever" => Ok(Window::Ever),
        Value::Object(object) if object.contains_key("last_days") => {
            only_keys(object, path, &["last_days"], "a window")?;
            whole_number(&object["last_days"], &key_path(path, "last_days")).map(Window::LastDays)
        }
        Value::Object(object) if object.contains_key("between") => {
            only_keys(object, path, &["between"], "a window")?;
            let between_path = key_path(path, "between");
            let [from, to] = pair(&object["between"], &between_path)?;
            Ok(Window::Between(date(from, &format!("{between_path}[0]"))?, date(to, &format!("{between_path}[1]"))?))
        }
        other => Err(error(path, format!("{expected}, found {}", describe(other)))),
    }
}

fn whole_number(value: &Value, path: &str) -> Decoded<u32> {
    value
        .as_u64()
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| error(path, format!("expected a whole number, found {}", describe(value))))
}

fn pair<'a>(value: &'a Value, path: &str) -> Decoded<[&'a Value; 2]> {
    match array(value, path)?.as_slice() {
        [first, second] => Ok([first, second]),
        items => Err(error(path, format!("expected two items, found {}", items.len()))),
    }
}

fn as_object<'a>(value: &'a Value, path: &str, expected: &str) -> Decoded<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| error(path, format!("expected {expected}, found {}", describe(value))))
}

fn array<'a>(value: &'a Value, path: &str) -> Decoded<&'a Vec<Value>> {
    value.as_array().ok_or_else(|| error(path, format!("expected an array, found {}", describe(value))))
}

fn string<'a>(value: &'a Value, path: &str) -> Decoded<&'a str> {
    value.as_str().ok_or_else(|| error(path, format!("expected a string, found {}", describe(value))))
}

fn required<'a>(object: &'a Map<String, Value>, path: &str, key: &str) -> Decoded<(&'a Value, String)> {
    let key_path = key_path(path, key);
    match object.get(key) {
        Some(value) => Ok((value, key_path)),
        None => Err(error(&key_path, "missing")),
    }
}

fn one_of<T: Copy>(value: &Value, path: &str, choices: &[(&str, T)]) -> Decoded<T> {
    let names: Vec<String> = choices.iter().map(|(name, _)| format!("\"{name}\"")).collect();
    let expected = || format!("expected one of {}, found {}", names.join(", "), describe(value));
    let name = value.as_str().ok_or_else(|| error(path, expected()))?;
    choices.iter().find(|(choice, _)| *choice == name).map(|(_, choice)| *choice).ok_or_else(|| error(path, expected()))
}

fn only_keys(object: &Map<String, Value>, path: &str, allowed: &[&str], what: &str) -> Decoded<()> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => {
            let allowed: Vec<String> = allowed.iter().map(|key| format!("\"{key}\"")).collect();
            Err(error(
                &key_path(path, key),
                format!("unknown key \"{key}\"; {what} has the keys {}", allowed.join(", ")),
            ))
        }
        None => Ok(()),
    }
}

/// `$.a.b` for plain keys, `$["odd key"]` for others.
fn key_path(path: &str, key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { format!("{path}.{key}") } else { format!("{path}[{}]", Value::String(key.to_owned())) }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(value) => value.to_string(),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {}", Value::String(text.chars().take(40).collect())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn error(path: &str, message: impl Into<String>) -> FilterJsonError {
    FilterJsonError { path: path.to_owned(), message: message.into() }
}

//! Generated trees: every tree the parser can build prints to text that parses back to it, and every tree at all
//! survives the JSON form.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Number;

use crate::filter::*;

/// Any string, plus a bias towards what breaks quoting: quotes, backslashes, control characters and Chinese.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), r#"[a-z行业制造业/ "\\\n\t\r\x00\x1b\x7f😀]{0,12}"#]
}

/// Keys as the workspace allows them (custom field keys, stage keys), or any text where the form quotes it.
fn slug() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,10}"
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![slug(), "[A-Za-z_][A-Za-z0-9_.]{0,10}", text()]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-1000i32..1000).prop_map(|n| Number::from_f64(f64::from(n) / 8.0).unwrap_or_else(|| Number::from(n))),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        text().prop_map(Literal::Text),
        number().prop_map(Literal::Number),
        any::<bool>().prop_map(Literal::Bool)
    ]
}

fn literals() -> impl Strategy<Value = Vec<Literal>> {
    vec(literal(), 1..4)
}

fn day() -> impl Strategy<Value = RelativeDay> {
    select(vec![RelativeDay::Today, RelativeDay::Yesterday, RelativeDay::Tomorrow])
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![literal().prop_map(Operand::Literal), day().prop_map(Operand::Day)]
}

fn cmp() -> impl Strategy<Value = Cmp> {
    select(Cmp::ALL.to_vec())
}

fn range() -> impl Strategy<Value = RelativeRange> {
    let unit = select(vec![Unit::Days, Unit::Weeks, Unit::Months]);
    prop_oneof![
        day().prop_map(RelativeRange::Day),
        (any::<u32>(), unit.clone()).prop_map(|(count, unit)| RelativeRange::Last(count, unit)),
        (0u32..3, unit).prop_map(|(count, unit)| RelativeRange::Next(count, unit)),
        select(vec![Period::Week, Period::Month, Period::Year]).prop_map(RelativeRange::This),
    ]
}

fn test() -> impl Strategy<Value = Test> {
    prop_oneof![
        (cmp(), operand()).prop_map(|(op, operand)| Test::Cmp(op, operand)),
        (operand(), operand()).prop_map(|(low, high)| Test::Between(low, high)),
        literals().prop_map(Test::In),
        literals().prop_map(Test::NotIn),
        text().prop_map(Test::Contains),
        text().prop_map(Test::StartsWith),
        text().prop_map(Test::EndsWith),
        text().prop_map(Test::Matches),
        literals().prop_map(Test::ContainsAny),
        literals().prop_map(Test::ContainsAll),
        Just(Test::Empty),
        Just(Test::NotEmpty),
        range().prop_map(Test::During),
        range().prop_map(Test::Anniversary),
    ]
}

fn date() -> impl Strategy<Value = DateOperand> {
    prop_oneof![text().prop_map(DateOperand::Text), day().prop_map(DateOperand::Day)]
}

fn date_operand() -> impl Strategy<Value = Operand> {
    prop_oneof![text().prop_map(|date| Operand::Literal(Literal::Text(date))), day().prop_map(Operand::Day)]
}

fn field() -> impl Strategy<Value = FieldRef> {
    prop_oneof![
        select(FieldRef::SYSTEM.iter().map(|(_, field)| field.clone()).collect::<Vec<_>>()),
        slug().prop_map(FieldRef::Custom),
        slug().prop_map(FieldRef::Company),
    ]
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    let number = || number().prop_map(|number| Operand::Literal(Literal::Number(number)));
    let count_test = prop_oneof![
        (cmp(), number()).prop_map(|(op, value)| Test::Cmp(op, value)),
        (number(), number()).prop_map(|(low, high)| Test::Between(low, high)),
    ];
    let date_test = prop_oneof![
        (cmp(), date_operand()).prop_map(|(op, date)| Test::Cmp(op, date)),
        (date_operand(), date_operand()).prop_map(|(from, to)| Test::Between(from, to)),
        range().prop_map(Test::During),
        Just(Test::Empty),
        Just(Test::NotEmpty),
    ];
    let measured = prop_oneof![
        count_test.prop_map(|test| (Measure::Count, test)),
        (select(vec![Measure::First, Measure::Last]), date_test),
    ];
    let window = prop_oneof![
        Just(Window::Ever),
        any::<u32>().prop_map(Window::LastDays),
        (1u32..3).prop_map(Window::LastDays),
        (date(), date()).prop_map(|(from, to)| Window::Between(from, to)),
    ];
    let property = (key(), test()).prop_map(|(property, test)| PropertyTest { property, test });
    (measured, text(), vec(property, 0..3), window).prop_map(|((measure, test), event, properties, window)| Behaviour {
        measure,
        event,
        properties,
        window,
        test,
    })
}

fn condition() -> impl Strategy<Value = Condition> {
    let tag_mode = select(vec![TagMode::Any, TagMode::All, TagMode::None]);
    let consent_state = select(vec![ConsentState::Granted, ConsentState::Denied, ConsentState::Unknown]);
    prop_oneof![
        3 => (field(), test()).prop_map(|(field, test)| Condition::Field { field, test }),
        1 => text().prop_map(|path| Condition::Tag { mode: TagMode::Has, paths: vec![path] }),
        1 => (tag_mode, vec(text(), 1..4)).prop_map(|(mode, paths)| Condition::Tag { mode, paths }),
        1 => (cmp(), key()).prop_map(|(op, stage)| Condition::Stage { op, stage }),
        1 => (key(), option::of(date())).prop_map(|(stage, since)| Condition::StageReached { stage, since }),
        1 => text().prop_map(|segment| Condition::InSegment { segment }),
        1 => text().prop_map(|kind| Condition::HasIdentity { kind }),
        1 => (text(), consent_state).prop_map(|(channel, state)| Condition::Consent { channel, state }),
        2 => behaviour().prop_map(Condition::Behaviour),
    ]
}

/// Trees as the parser builds them: groups of two or more, a group never directly inside one of its own kind.
fn parsed_filter() -> impl Strategy<Value = Filter> {
    condition().prop_map(Filter::Cond).prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 2..5).prop_map(|members| flattened(members, true)),
            vec(inner.clone(), 2..5).prop_map(|members| flattened(members, false)),
            inner.prop_map(|filter| Filter::Not(Box::new(filter))),
        ]
    })
}

/// Any tree at all: groups of any size (empty ones when `smallest` is 0), nested in their own kind.
fn any_filter(smallest: usize) -> impl Strategy<Value = Filter> {
    condition().prop_map(Filter::Cond).prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            vec(inner.clone(), smallest..4).prop_map(Filter::And),
            vec(inner.clone(), smallest..4).prop_map(Filter::Or),
            inner.prop_map(|filter| Filter::Not(Box::new(filter))),
        ]
    })
}

fn flattened(members: Vec<Filter>, and: bool) -> Filter {
    let mut flat = Vec::new();
    for member in members {
        match member {
            Filter::And(inner) if and => flat.extend(inner),
            Filter::Or(inner) if !and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if and { Filter::And(flat) } else { Filter::Or(flat) }
}

/// What the parser makes of a tree's printed form: groups of one are their member, nested groups of the same kind
/// are flattened.
fn normalized(filter: &Filter) -> Filter {
    match filter {
        Filter::And(members) | Filter::Or(members) => {
            let and = matches!(filter, Filter::And(_));
            match flattened(members.iter().map(normalized).collect(), and) {
                Filter::And(mut members) | Filter::Or(mut members) if members.len() == 1 => members.remove(0),
                other => other,
            }
        }
        Filter::Not(inner) => Filter::Not(Box::new(normalized(inner))),
        Filter::Cond(condition) => Filter::Cond(condition.clone()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn text_round_trip(filter in parsed_filter()) {
        let text = filter.to_string();
        prop_assert_eq!(parse(&text), Ok(filter), "{}", text);
    }

    #[test]
    fn json_round_trip(filter in any_filter(0)) {
        prop_assert_eq!(from_json(&to_json(&filter)), Ok(filter));
    }

    /// Trees the parser never builds still print to text that means the same (the text form has no empty group).
    #[test]
    fn any_tree_prints_to_an_equivalent_text(filter in any_filter(1)) {
        let text = filter.to_string();
        prop_assert_eq!(parse(&text), Ok(normalized(&filter)), "{}", text);
    }
}

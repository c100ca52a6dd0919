//! The filter language through its three doors: text in, canonical text out, JSON both ways. Adding a case is one
//! line in a table; `roundtrip` generates trees to check the same promises on shapes nobody thought of.

mod roundtrip;

use serde_json::{Value, json};

use super::text::MAX_DEPTH;
use super::*;

/// Parses `text`, checks its canonical print, that the canonical print parses to the same tree, and that the tree
/// survives the JSON form.
#[track_caller]
fn check(text: &str, canonical: &str) -> Filter {
    let filter = match parse(text) {
        Ok(filter) => filter,
        Err(error) => panic!("{text:?} does not parse: {error}"),
    };
    assert_eq!(filter.to_string(), canonical, "canonical form of {text:?}");
    assert_eq!(parse(canonical).as_ref(), Ok(&filter), "reparsing {canonical:?}");
    assert_eq!(from_json(&to_json(&filter)).as_ref(), Ok(&filter), "JSON form of {text:?}");
    filter
}

#[track_caller]
fn parsed(text: &str) -> Filter {
    match parse(text) {
        Ok(filter) => filter,
        Err(error) => panic!("{text:?} does not parse: {error}"),
    }
}

#[track_caller]
fn check_error(text: &str, position: usize, fragment: &str) {
    match parse(text) {
        Ok(filter) => panic!("{text:?} parsed as {filter} but should fail with {fragment:?}"),
        Err(error) => {
            assert!(error.message.contains(fragment), "{text:?}: {:?} does not contain {fragment:?}", error.message);
            assert_eq!(error.position, position, "{text:?}: position of {:?}", error.message);
        }
    }
}

#[track_caller]
fn check_json_error(document: Value, path: &str, fragment: &str) {
    match from_json(&document) {
        Ok(filter) => panic!("{document} decoded as {filter} but should fail with {fragment:?}"),
        Err(error) => {
            assert!(error.message.contains(fragment), "{document}: {:?} does not contain {fragment:?}", error.message);
            assert_eq!(error.path, path, "{document}: path of {:?}", error.message);
        }
    }
}

const EXAMPLE: &str = "stage >= mql and tag(\"行业/制造业\") and email_domain not in (\"qq.com\",\"163.com\") and \
                       count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3";

#[test]
fn the_example_from_the_module_documentation() {
    check(
        EXAMPLE,
        "stage >= mql and tag(\"行业/制造业\") and email_domain not in (\"qq.com\", \"163.com\") and \
         count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3",
    );
}

#[test]
fn canonical_texts_print_as_written() {
    let cases = [
        // Field tests, one per operator.
        r#"email = "li.lei@example.com""#,
        r#"email_domain != "qq.com""#,
        r#"fields.budget < 1000"#,
        r#"fields.budget <= 1000"#,
        r#"fields.budget > 1000.5"#,
        r#"fields.budget >= -20"#,
        r#"title contains "经理""#,
        r#"phone starts_with "+86 138""#,
        r#"email ends_with "@example.com""#,
        r#"province in ("广东", "浙江")"#,
        r#"email_domain not in ("qq.com", "163.com")"#,
        r#"title matches "^(CEO|CTO|总经理)$""#,
        r#"fields.budget between 1000 and 5000"#,
        r#"created_at between "2026-01-01" and today"#,
        r#"fields.interests contains_any ("AI", "IoT")"#,
        r#"fields.interests contains_all ("AI", 5, true)"#,
        r#"city is empty"#,
        r#"country is not empty"#,
        r#"created_at >= yesterday"#,
        r#"updated_at < tomorrow"#,
        r#"created_at = today"#,
        r#"created_at during today"#,
        r#"created_at during yesterday"#,
        r#"created_at during tomorrow"#,
        r#"created_at during last 7 days"#,
        r#"created_at during last 1 day"#,
        r#"created_at during last 2 weeks"#,
        r#"created_at during last 1 week"#,
        r#"created_at during last 3 months"#,
        r#"created_at during last 0 days"#,
        r#"fields.renewal during next 1 month"#,
        r#"fields.renewal during next 30 days"#,
        r#"created_at during this week"#,
        r#"created_at during this month"#,
        r#"created_at during this year"#,
        r#"fields.birthday anniversary today"#,
        r#"fields.birthday anniversary next 7 days"#,
        r#"fields.vip = true"#,
        r#"fields.vip != false"#,
        r#"fields.ratio = 0.25"#,
        r#"status = "contacted""#,
        r#"owner_id = 5"#,
        r#"first_name = "磊" and last_name = "李""#,
        r#"company_name contains "科技""#,
        r#"company.industry = "制造业""#,
        r#"company.size >= 100"#,
        r#"city = "广州" or source = "官网""#,
        // Tags.
        r#"tag("行业/制造业")"#,
        r#"tag_any("行业/制造业", "行业/零售")"#,
        r#"tag_all("vip", "活动/2026 展会")"#,
        r#"tag_none("竞争对手")"#,
        // Stages.
        r#"stage = mql"#,
        r#"stage != customer"#,
        r#"stage < sql"#,
        r#"stage <= sal"#,
        r#"stage > raw_lead"#,
        r#"stage = "raw lead""#,
        r#"stage_reached(mql)"#,
        r#"stage_reached(sql, since "2026-01-01")"#,
        r#"stage_reached(customer, since yesterday)"#,
        // Segments, identities, consent.
        r#"in_segment("12")"#,
        r#"has_identity("wechat_openid")"#,
        r#"consent("email") = granted"#,
        r#"consent("sms") = denied"#,
        r#"consent("wechat") = unknown"#,
        // Behaviour.
        r#"count(event "page_viewed" where url contains "/pricing", last 30 days) >= 3"#,
        r#"count(event "signed_up", ever) = 0"#,
        r#"count(event "email_opened", last 1 day) > 0"#,
        r#"count(event "Demo Requested", between "2026-01-01" and "2026-03-31") between 1 and 5"#,
        r#"count(event "order_paid" where amount >= 100 and currency in ("CNY", "USD"), ever) >= 1"#,
        r#"count(event "order_paid" where product.sku starts_with "A-" and "utm source" = "wechat", ever) >= 1"#,
        r#"count(event "x" where coupon is empty and channel not in ("ads") and ref is not empty, ever) = 0"#,
        r#"count(event "x" where amount between 1 and 5 and paid = true, ever) >= 1"#,
        r#"count(event "x" where title matches "^a" and tags contains_any ("a", "b"), ever) >= 1"#,
        r#"count(event "x" where day during last 7 days and title ends_with "!", between yesterday and today) < 2"#,
        r#"first(event "signed_up", ever) < "2026-01-01""#,
        r#"first(event "signed_up", ever) >= today"#,
        r#"first(event "signed_up", ever) between "2026-01-01" and yesterday"#,
        r#"last(event "page_viewed", last 90 days) during last 7 days"#,
        r#"last(event "page_viewed", ever) is empty"#,
        r#"last(event "page_viewed", ever) is not empty"#,
        // Strings: escapes and unicode.
        r#"first_name = "a\"b\\c\nd\te\rf""#,
        r#"first_name = "\u0000\u001b 中文 😀""#,
        r#"first_name = """#,
    ];
    for text in cases {
        check(text, text);
    }
}

#[test]
fn texts_print_in_canonical_form() {
    let cases = [
        (r#"email_domain not in ("qq.com","163.com")"#, r#"email_domain not in ("qq.com", "163.com")"#),
        ("  email=\"x\"\n\tAND\u{3000}city  =  \"y\"  ", r#"email = "x" and city = "y""#),
        (r#"EMAIL = "x" Or Country Is Not Empty"#, r#"email = "x" or country is not empty"#),
        (r#"FIELDS.budget > 1 and Company.size < 2"#, r#"fields.budget > 1 and company.size < 2"#),
        (r#"STAGE >= mql AND NOT tag("x")"#, r#"stage >= mql and not tag("x")"#),
        (r#"created_at during LAST 7 DAYS"#, r#"created_at during last 7 days"#),
        (r#"created_at during last 1 weeks"#, r#"created_at during last 1 week"#),
        (r#"created_at during next 1 months"#, r#"created_at during next 1 month"#),
        (r#"created_at > TODAY"#, r#"created_at > today"#),
        (r#"fields.vip = TRUE"#, r#"fields.vip = true"#),
        (r#"fields.n = 007"#, r#"fields.n = 7"#),
        (r#"fields.n = -0"#, r#"fields.n = 0"#),
        (r#"fields.n = 1.50"#, r#"fields.n = 1.5"#),
        (r#"fields.n = 1e3"#, r#"fields.n = 1000.0"#),
        (r#"fields.n = 2.5E-3"#, r#"fields.n = 0.0025"#),
        (r#"fields.n = 18446744073709551616"#, r#"fields.n = 1.8446744073709552e+19"#),
        (r#"first_name = "\u4e2d\u6587\ud83d\ude00""#, r#"first_name = "中文😀""#),
        ("first_name = \"line\nbreak\"", r#"first_name = "line\nbreak""#),
        (r#"stage = "mql""#, r#"stage = mql"#),
        (r#"stage_reached("SQL", since "2026-01-01")"#, r#"stage_reached(SQL, since "2026-01-01")"#),
        (r#"in_segment(12)"#, r#"in_segment("12")"#),
        (r#"has_identity(wechat_openid)"#, r#"has_identity("wechat_openid")"#),
        (r#"consent(sms) = "Denied""#, r#"consent("sms") = denied"#),
        (r#"consent ( "email" ) = GRANTED"#, r#"consent("email") = granted"#),
        (r#"count(event "signed_up") >= 1"#, r#"count(event "signed_up", ever) >= 1"#),
        (r#"count(event page_viewed, last 1 days) = 0"#, r#"count(event "page_viewed", last 1 day) = 0"#),
        (
            r#"COUNT(EVENT "x" WHERE "url" CONTAINS "a" AND n > 1, LAST 7 DAYS) >= 1"#,
            r#"count(event "x" where url contains "a" and n > 1, last 7 days) >= 1"#,
        ),
        (r#"first(event "x") < "2026-01-01""#, r#"first(event "x", ever) < "2026-01-01""#),
        (r#"last(event "x") during this month"#, r#"last(event "x", ever) during this month"#),
        (r#"((city = "a"))"#, r#"city = "a""#),
        (r#"not (city = "a")"#, r#"not city = "a""#),
    ];
    for (text, canonical) in cases {
        check(text, canonical);
    }
}

#[test]
fn not_binds_tightest_then_and_then_or() {
    let a = parsed(r#"city = "a""#);
    let b = parsed(r#"city = "b""#);
    let c = parsed(r#"city = "c""#);
    let d = parsed(r#"city = "d""#);
    let not = |filter: &Filter| Filter::Not(Box::new(filter.clone()));
    let cases = [
        (
            r#"city = "a" or city = "b" and not city = "c""#,
            r#"city = "a" or city = "b" and not city = "c""#,
            Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), not(&c)])]),
        ),
        (
            r#"city = "a" and city = "b" or city = "c" and city = "d""#,
            r#"city = "a" and city = "b" or city = "c" and city = "d""#,
            Filter::Or(vec![Filter::And(vec![a.clone(), b.clone()]), Filter::And(vec![c.clone(), d.clone()])]),
        ),
        (
            r#"(city = "a" or city = "b") and city = "c""#,
            r#"(city = "a" or city = "b") and city = "c""#,
            Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()]),
        ),
        (
            r#"not (city = "a" and city = "b") or city = "c""#,
            r#"not (city = "a" and city = "b") or city = "c""#,
            Filter::Or(vec![not(&Filter::And(vec![a.clone(), b.clone()])), c.clone()]),
        ),
        (r#"not not city = "a""#, r#"not not city = "a""#, not(&not(&a))),
        (r#"not (not (city = "a"))"#, r#"not not city = "a""#, not(&not(&a))),
        (
            r#"city = "a" and (city = "b" and city = "c")"#,
            r#"city = "a" and city = "b" and city = "c""#,
            Filter::And(vec![a.clone(), b.clone(), c.clone()]),
        ),
        (
            r#"(city = "a" or (city = "b" or city = "c")) or city = "d""#,
            r#"city = "a" or city = "b" or city = "c" or city = "d""#,
            Filter::Or(vec![a.clone(), b.clone(), c.clone(), d.clone()]),
        ),
        (
            r#"city = "a" and (city = "b" or city = "c" and city = "d")"#,
            r#"city = "a" and (city = "b" or city = "c" and city = "d")"#,
            Filter::And(vec![a.clone(), Filter::Or(vec![b.clone(), Filter::And(vec![c.clone(), d.clone()])])]),
        ),
        // A between reads its own "and"; the next one joins conditions.
        (
            r#"fields.n between 1 and 2 and city = "a""#,
            r#"fields.n between 1 and 2 and city = "a""#,
            Filter::And(vec![parsed("fields.n between 1 and 2"), a.clone()]),
        ),
    ];
    for (text, canonical, tree) in cases {
        assert_eq!(check(text, canonical), tree, "tree of {text:?}");
    }
}

#[test]
fn where_clauses_chain_property_tests_until_the_comma() {
    let filter =
        parsed(r#"count(event "x" where a = 1 and b in (2, 3) and c between 4 and 5, ever) >= 1 and city = "y""#);
    let Filter::And(members) = &filter else { panic!("expected an and, got {filter:?}") };
    let [Filter::Cond(Condition::Behaviour(behaviour)), _] = members.as_slice() else { panic!("got {members:?}") };
    let properties: Vec<&str> = behaviour.properties.iter().map(|test| test.property.as_str()).collect();
    assert_eq!(properties, ["a", "b", "c"]);
    assert_eq!(behaviour.window, Window::Ever);
}

#[test]
fn numbers_keep_integers_as_integers() {
    let value = |text: &str| match parsed(&format!("fields.n = {text}")) {
        Filter::Cond(Condition::Field {
            test: Test::Cmp(Cmp::Eq, Operand::Literal(Literal::Number(number))), ..
        }) => number,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("42").as_u64(), Some(42));
    assert_eq!(value("-42").as_i64(), Some(-42));
    assert!(value("42.0").is_f64());
    assert_eq!(value("-9223372036854775808").as_i64(), Some(i64::MIN));
}

#[test]
fn printing_trees_the_parser_never_builds() {
    let a = parsed(r#"city = "a""#);
    let b = parsed(r#"city = "b""#);
    let or = Filter::Or(vec![a.clone(), b.clone()]);
    let cases = [
        (Filter::And(vec![]), "()"),
        (Filter::Or(vec![]), "()"),
        (Filter::And(vec![a.clone()]), r#"city = "a""#),
        (Filter::And(vec![b.clone(), Filter::And(vec![or.clone()])]), r#"city = "b" and (city = "a" or city = "b")"#),
        (
            Filter::And(vec![a.clone(), Filter::And(vec![b.clone(), a.clone()])]),
            r#"city = "a" and city = "b" and city = "a""#,
        ),
        (Filter::Not(Box::new(Filter::Or(vec![a.clone()]))), r#"not city = "a""#),
        (Filter::Not(Box::new(Filter::And(vec![or.clone()]))), r#"not (city = "a" or city = "b")"#),
        (
            Filter::Cond(Condition::Tag { mode: TagMode::Has, paths: vec!["x".into(), "y".into()] }),
            r#"tag_all("x", "y")"#,
        ),
        (Filter::Cond(Condition::Field { field: FieldRef::City, test: Test::In(vec![]) }), "city in ()"),
    ];
    for (filter, text) in cases {
        assert_eq!(filter.to_string(), text, "{filter:?}");
    }
}

#[test]
fn errors_say_where_and_what() {
    let too_deep = format!("{}city = \"a\"{}", "(".repeat(70), ")".repeat(70));
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "the filter is empty"),
        ("   ", 3, "the filter is empty"),
        (
            r#"emial = "x""#,
            0,
            r#"unknown field "emial" (did you mean "email"?); fields are email, email_domain, phone"#,
        ),
        (r#"city = "广州" and emial = "x""#, 16, r#"unknown field "emial""#),
        (r#"fields. = 1"#, 0, r#"unknown field "fields.""#),
        (r#"custom.x = 1"#, 0, "or fields.KEY / company.KEY"),
        (r#"city = "广州"#, 7, "unterminated string"),
        (r#"city = "广州" and title = "总经理"#, 24, "unterminated string"),
        (r#"city = "a\q""#, 9, r#"unknown escape "\q""#),
        (r#"city = "\u12""#, 8, r"\u needs four hex digits"),
        (r#"city = "\ud83d""#, 8, r"\u needs four hex digits"),
        (r#"city = 广州"#, 7, r#"unexpected "广"; text values are written in double quotes"#),
        (r#"city = guangzhou"#, 7, r#"found "guangzhou"; text values are written in double quotes, e.g. "guangzhou""#),
        (r#"city = "a" $"#, 11, r#"unexpected character "$""#),
        (r#"city ! "a""#, 5, r#"unexpected "!""#),
        (r#"(city = "a""#, 11, r#"expected ")" to close the "(" at character 0, found end of text"#),
        (r#"(城市 = "a""#, 1, r#"unexpected "城""#),
        (r#"city = "a")"#, 10, r#"this ")" closes no "(""#),
        (r#"city = "a" city = "b""#, 11, r#"expected "and", "or" or the end of the text, found "city""#),
        (r#"city = "a" and"#, 14, "expected a condition, found end of text"),
        (r#"and city = "a""#, 0, r#"expected a condition, found "and""#),
        (r#"not"#, 3, "expected a condition, found end of text"),
        (r#"city like "a""#, 5, r#"expected an operator (=, !=, <, <=, >, >=, contains"#),
        (r#"city"#, 4, r#"after "city", found end of text"#),
        (r#"city is "a""#, 8, r#"expected "empty" or "not empty" after "city is""#),
        (r#"city not "a""#, 9, r#"expected "in" after "city not""#),
        (r#"city in ()"#, 9, r#"expected a value (a "string", a number, true or false), found ")""#),
        (r#"city in ("a" "b")"#, 13, r#"expected "," or ")" in the list, found the string "b""#),
        (r#"city contains 5"#, 14, r#"expected a "string" after "city contains", found the number 5"#),
        (r#"fields.n = 1e999"#, 11, "the number 1e999 is too large"),
        (r#"fields.n = -x"#, 11, r#"expected a digit after "-""#),
        (r#"fields.n between 1 or 2"#, 19, r#"expected "and" between the two values, found "or""#),
        (r#"created_at during someday"#, 18, "expected a range (today, yesterday, tomorrow, last N days"),
        (r#"created_at during last 2 day"#, 25, r#"expected days, weeks or months after "last 2", found "day""#),
        (r#"created_at during last -2 days"#, 23, r#"expected a whole number after "last", found the number -2"#),
        (r#"created_at during this decade"#, 23, "expected week, month or year"),
        (r#"tag("a", "b")"#, 7, "tag(...) takes one path; use tag_any(...) or tag_all(...) for several"),
        (r#"tag(行业)"#, 4, r#"unexpected "行""#),
        (r#"tag_any()"#, 8, r#"expected a tag path in double quotes, e.g. "行业/制造业", found ")""#),
        (r#"tag"#, 3, r#"expected "(" after "tag", found end of text"#),
        (r#"stage mql"#, 6, r#"expected a comparison (=, !=, <, <=, >, >=) after "stage", found "mql""#),
        (r#"stage >= 3"#, 9, "expected a stage key after \"stage >=\""),
        (r#"stage_reached(mql, "2026-01-01")"#, 19, r#"expected "since" after the stage"#),
        (r#"stage_reached(mql"#, 17, r#"expected ")", found end of text"#),
        (r#"in_segment(seg)"#, 11, "expected a segment id in double quotes"),
        (r#"consent("email") != granted"#, 17, "consent(...) is compared with = only"),
        (r#"consent("email") = yes"#, 19, r#"expected granted, denied or unknown after "consent(...) =", found "yes""#),
        (r#"segment("12")"#, 0, r#"unknown condition "segment(...)"; the conditions written so are tag, tag_any"#),
        (
            r#"count(event "x", last 30 days)"#,
            30,
            r#"expected a comparison (=, !=, <, <=, >, >=) or between after "count(...)", found end of text"#,
        ),
        (r#"count(event "x") >= "3""#, 20, r#"expected a number after "count(...) >=", found the string "3""#),
        (r#"count("x") >= 1"#, 6, r#"expected "event" after "count(", found the string "x""#),
        (
            r#"count(event "x" where url contains "/p" last 30 days) >= 1"#,
            40,
            r#"expected "and", "," or ")", found "last""#,
        ),
        (r#"count(event "x" last 30 days) >= 1"#, 16, r#"expected "where", "," or ")", found "last""#),
        (r#"count(event "x" where, ever) >= 1"#, 21, "expected a property name"),
        (r#"count(event "x", last 30 weeks) >= 1"#, 25, r#"expected "days" after "last 30", found "weeks""#),
        (r#"count(event "x", always) >= 1"#, 17, "expected a window (last N days, ever or between"),
        (r#"count(event "x", ever ever) >= 1"#, 22, r#"expected ")", found "ever""#),
        (
            r#"last(event "x") >= 3"#,
            19,
            r#"expected a date ("YYYY-MM-DD") or today, yesterday, tomorrow after "last(...) >=""#,
        ),
        (
            r#"first(event "x") contains "a""#,
            17,
            "expected a date test (=, !=, <, <=, >, >=, between, during, is empty",
        ),
        (&too_deep, 63, "the filter nests too deeply (at most 64 levels)"),
    ];
    for &(text, position, fragment) in cases {
        check_error(text, position, fragment);
    }
}

/// The deepest text the parser takes is a tree as deep as the JSON form allows, and one level more fails in both.
#[test]
fn text_and_json_agree_on_the_deepest_filter() {
    let mut text = r#"city = "a" or city = "b""#.to_owned();
    for level in 0..MAX_DEPTH {
        let operator = if level % 2 == 0 { "and" } else { "or" };
        text = format!(r#"city = "c" {operator} ({text})"#);
        if level + 2 < MAX_DEPTH {
            continue;
        }
        match parse(&text) {
            Ok(filter) if level + 2 == MAX_DEPTH => {
                assert_eq!(from_json(&to_json(&filter)).as_ref(), Ok(&filter));
                let deeper = if level % 2 == 0 { Filter::Or(vec![filter]) } else { Filter::And(vec![filter]) };
                let error = from_json(&to_json(&deeper)).err().map(|error| error.message);
                assert_eq!(error.as_deref(), Some("groups nest too deeply (at most 64 levels)"));
            }
            Err(error) if level + 1 == MAX_DEPTH => assert!(error.message.contains("nests too deeply"), "{error}"),
            other => panic!("level {level}: {other:?}"),
        }
    }
}

#[test]
fn error_display_names_the_position() {
    let error = parse(r#"city = "a" or"#).err().map(|error| error.to_string());
    assert_eq!(error.as_deref(), Some("at character 13: expected a condition, found end of text"));
}

#[test]
fn json_documents_decode_to_the_same_tree_as_text() {
    let cases = [
        (
            json!({"and": [
                {"stage": {"op": ">=", "value": "mql"}},
                {"tag": {"mode": "has", "paths": ["行业/制造业"]}},
                {"field": "email_domain", "op": "not_in", "value": ["qq.com", "163.com"]},
                {"field": "created_at", "op": "during", "range": {"last": 30, "unit": "days"}},
                {"behaviour": {"measure": "count", "event": "page_viewed",
                               "where": [{"property": "url", "op": "contains", "value": "/pricing"}],
                               "window": {"last_days": 30}, "op": ">=", "value": 3}}
            ]}),
            "stage >= mql and tag(\"行业/制造业\") and email_domain not in (\"qq.com\", \"163.com\") and \
             created_at during last 30 days and \
             count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3",
        ),
        (
            json!({"or": [{"not": {"field": "country", "op": "=", "value": "中国"}}, {"field": "country", "op": "is_empty"}]}),
            r#"not country = "中国" or country is empty"#,
        ),
        (json!({"field": "created_at", "op": ">=", "value": {"day": "yesterday"}}), "created_at >= yesterday"),
        (
            json!({"field": "fields.budget", "op": "between", "value": [1000, 5000]}),
            "fields.budget between 1000 and 5000",
        ),
        (
            json!({"field": "fields.birthday", "op": "anniversary", "range": {"day": "today"}}),
            "fields.birthday anniversary today",
        ),
        (
            json!({"field": "fields.renewal", "op": "during", "range": {"next": 1, "unit": "months"}}),
            "fields.renewal during next 1 month",
        ),
        (json!({"field": "created_at", "op": "during", "range": {"this": "week"}}), "created_at during this week"),
        (
            json!({"field": "fields.tags", "op": "contains_all", "value": ["a", 1, false]}),
            r#"fields.tags contains_all ("a", 1, false)"#,
        ),
        (json!({"in_segment": "12"}), r#"in_segment("12")"#),
        (json!({"has_identity": "email"}), r#"has_identity("email")"#),
        (json!({"consent": {"channel": "email", "state": "granted"}}), r#"consent("email") = granted"#),
        (json!({"stage_reached": {"stage": "mql"}}), "stage_reached(mql)"),
        (json!({"stage_reached": {"stage": "mql", "since": null}}), "stage_reached(mql)"),
        (
            json!({"stage_reached": {"stage": "mql", "since": "2026-01-01"}}),
            r#"stage_reached(mql, since "2026-01-01")"#,
        ),
        (json!({"stage_reached": {"stage": "mql", "since": {"day": "today"}}}), "stage_reached(mql, since today)"),
        (json!({"tag": {"mode": "none", "paths": ["a", "b"]}}), r#"tag_none("a", "b")"#),
        (
            json!({"behaviour": {"measure": "count", "event": "x", "op": "=", "value": 0}}),
            r#"count(event "x", ever) = 0"#,
        ),
        (
            json!({"behaviour": {"measure": "last", "event": "x", "window": {"between": ["2026-01-01", {"day": "today"}]},
                                 "op": "during", "range": {"last": 7, "unit": "days"}}}),
            r#"last(event "x", between "2026-01-01" and today) during last 7 days"#,
        ),
        (
            json!({"behaviour": {"measure": "first", "event": "x", "where": [], "window": "ever", "op": "is_not_empty"}}),
            r#"first(event "x", ever) is not empty"#,
        ),
    ];
    for (document, text) in cases {
        let decoded = from_json(&document);
        assert_eq!(decoded.as_ref(), Ok(&parsed(text)), "{document}");
        assert_eq!(decoded.map(|filter| filter.to_string()).as_deref(), Ok(text));
    }
}

#[test]
fn json_shapes_are_explicit() {
    let cases = [
        ("city = \"广州\"", json!({"field": "city", "op": "=", "value": "广州"})),
        ("not city is empty", json!({"not": {"field": "city", "op": "is_empty"}})),
        (
            "city = \"a\" or city in (\"b\", 1)",
            json!({"or": [{"field": "city", "op": "=", "value": "a"}, {"field": "city", "op": "in", "value": ["b", 1]}]}),
        ),
        ("created_at < today", json!({"field": "created_at", "op": "<", "value": {"day": "today"}})),
        ("stage < sql", json!({"stage": {"op": "<", "value": "sql"}})),
        ("tag(\"vip\")", json!({"tag": {"mode": "has", "paths": ["vip"]}})),
        ("tag_any(\"a\", \"b\")", json!({"tag": {"mode": "any", "paths": ["a", "b"]}})),
        (
            "stage_reached(mql, since tomorrow)",
            json!({"stage_reached": {"stage": "mql", "since": {"day": "tomorrow"}}}),
        ),
        (
            "count(event \"x\" where a.b != true, ever) between 1 and 2",
            json!({"behaviour": {"measure": "count", "event": "x", "where": [{"property": "a.b", "op": "!=", "value": true}],
                                 "window": "ever", "op": "between", "value": [1, 2]}}),
        ),
    ];
    for (text, document) in cases {
        assert_eq!(to_json(&parsed(text)), document, "{text}");
    }
}

#[test]
fn json_keeps_trees_the_text_form_cannot_hold() {
    let city = Filter::Cond(Condition::Field { field: FieldRef::City, test: Test::In(vec![]) });
    let trees = [
        Filter::And(vec![]),
        Filter::Or(vec![city.clone()]),
        Filter::And(vec![city.clone(), Filter::And(vec![city.clone(), city.clone()])]),
        Filter::Cond(Condition::Tag { mode: TagMode::Has, paths: vec![] }),
    ];
    for tree in trees {
        assert_eq!(from_json(&to_json(&tree)).as_ref(), Ok(&tree));
    }
    assert_eq!(to_json(&Filter::And(vec![])), json!({"and": []}));
}

#[test]
fn json_errors_name_the_path() {
    let city = json!({"field": "city", "op": "=", "value": "a"});
    let mut deep = city.clone();
    for _ in 0..=MAX_DEPTH {
        deep = json!({"not": deep});
    }
    let deep_path = format!("${}", ".not".repeat(MAX_DEPTH));
    let cases = [
        (json!([]), "$", "expected a filter object, found an array"),
        (json!({}), "$", "expected a filter object with one of the keys and, or, not, field, tag"),
        (json!({"colour": "red"}), "$.colour", r#"unknown key "colour"; expected a filter object"#),
        (json!({"and": [], "or": []}), "$", r#"not both "and" and "or""#),
        (json!({"and": {}}), "$.and", "expected an array, found an object"),
        (
            json!({"and": [city, {"field": "city", "op": "like", "value": "a"}]}),
            "$.and[1].op",
            r#"unknown operator "like"; operators are =, !="#,
        ),
        (json!({"or": [{"not": 3}]}), "$.or[0].not", "expected a filter object, found the number 3"),
        (json!({"field": "emial", "op": "=", "value": "a"}), "$.field", r#"unknown field "emial"; fields are email"#),
        (json!({"field": 1, "op": "=", "value": "a"}), "$.field", "expected a string, found the number 1"),
        (
            json!({"field": "city", "op": "=", "value": "a", "colour": 1}),
            "$.colour",
            r#"unknown key "colour"; a field condition has the keys "field", "op", "value", "range""#,
        ),
        (json!({"field": "city", "op": "=", "value": "a", "odd key": 1}), r#"$["odd key"]"#, "unknown key"),
        (json!({"field": "city", "op": "="}), "$.value", r#"missing; "=" needs a value"#),
        (json!({"field": "city"}), "$.op", "missing"),
        (json!({"field": "city", "op": "is_empty", "value": "x"}), "$.value", r#""is_empty" takes no value"#),
        (json!({"field": "city", "op": "=", "value": "x", "range": {"this": "week"}}), "$.range", "takes no range"),
        (json!({"field": "city", "op": "=", "value": null}), "$.value", "found null; test for no value with is_empty"),
        (
            json!({"field": "city", "op": "=", "value": [1]}),
            "$.value",
            "expected a string, number or boolean, found an array",
        ),
        (
            json!({"field": "city", "op": "=", "value": {"day": "someday"}}),
            "$.value.day",
            r#"expected one of "today", "yesterday", "tomorrow", found the string "someday""#,
        ),
        (json!({"field": "city", "op": "in", "value": ["a", null]}), "$.value[1]", "found null"),
        (json!({"field": "city", "op": "between", "value": [1]}), "$.value", "expected two items, found 1"),
        (json!({"field": "created_at", "op": "during"}), "$.range", r#"missing; "during" needs a range"#),
        (
            json!({"field": "created_at", "op": "during", "range": {"last": 7, "unit": "fortnights"}}),
            "$.range.unit",
            r#"expected one of "days", "weeks", "months""#,
        ),
        (
            json!({"field": "created_at", "op": "during", "range": {"last": 1.5, "unit": "days"}}),
            "$.range.last",
            "expected a whole number, found the number 1.5",
        ),
        (json!({"field": "created_at", "op": "during", "range": {"always": true}}), "$.range", "expected a range"),
        (json!({"tag": {"mode": "has", "paths": [3]}}), "$.tag.paths[0]", "expected a string, found the number 3"),
        (json!({"tag": {"mode": "some", "paths": []}}), "$.tag.mode", r#"expected one of "has", "any", "all", "none""#),
        (
            json!({"tag": {"mode": "has", "paths": [], "colour": 1}}),
            "$.tag.colour",
            r#"a tag condition has the keys "mode", "paths""#,
        ),
        (json!({"tag": {"mode": "has", "paths": []}, "not": city}), "$", r#"not both "not" and "tag""#),
        (json!({"stage": {"op": "in", "value": "mql"}}), "$.stage.op", r#"expected one of "=", "!=""#),
        (json!({"stage_reached": {"stage": "mql", "since": 5}}), "$.stage_reached.since", "expected a date"),
        (
            json!({"consent": {"channel": "email", "state": "yes"}}),
            "$.consent.state",
            r#"expected one of "granted", "denied", "unknown""#,
        ),
        (json!({"in_segment": 12}), "$.in_segment", "expected a string, found the number 12"),
        (
            json!({"behaviour": {"measure": "sum", "event": "x", "op": "=", "value": 1}}),
            "$.behaviour.measure",
            r#"expected one of "count", "first", "last""#,
        ),
        (json!({"behaviour": {"measure": "count", "op": "=", "value": 1}}), "$.behaviour.event", "missing"),
        (
            json!({"behaviour": {"measure": "count", "event": "x", "window": {"last_days": -1}, "op": ">=", "value": 1}}),
            "$.behaviour.window.last_days",
            "expected a whole number, found the number -1",
        ),
        (
            json!({"behaviour": {"measure": "count", "event": "x", "window": "forever", "op": ">=", "value": 1}}),
            "$.behaviour.window",
            r#"expected a window: "ever""#,
        ),
        (
            json!({"behaviour": {"measure": "count", "event": "x", "window": {"between": ["2026-01-01"]}, "op": ">=", "value": 1}}),
            "$.behaviour.window.between",
            "expected two items",
        ),
        (
            json!({"behaviour": {"measure": "count", "event": "x", "where": [{"property": "url", "op": "contains"}], "op": ">=", "value": 1}}),
            "$.behaviour.where[0].value",
            "missing",
        ),
        (
            json!({"behaviour": {"measure": "count", "event": "x", "where": [{"name": "url"}], "op": ">=", "value": 1}}),
            "$.behaviour.where[0].name",
            "a property test has the keys",
        ),
        (deep, deep_path.as_str(), "groups nest too deeply"),
    ];
    for (document, path, fragment) in cases {
        check_json_error(document, path, fragment);
    }
}

#[test]
fn json_error_display_names_the_path() {
    let error = from_json(&json!({"and": [{"field": "city", "op": "like"}]})).err().map(|error| error.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "$.and[0].op: unknown operator \"like\"; operators are =, !=, <, <=, >, >=, between, in, not_in, contains, \
              starts_with, ends_with, matches, contains_any, contains_all, is_empty, is_not_empty, during, anniversary"
        )
    );
}

/// `docs/filters.md` shows filters in fenced blocks: a `text` block holds canonical filters, one a line, and a `json`
/// block right after it holds the same filters in the JSON form, line for line.
#[test]
fn the_language_reference_examples_hold() {
    let reference = include_str!("../../../../docs/filters.md");
    let mut blocks: Vec<(&str, Vec<&str>, bool)> = Vec::new();
    let mut lines = reference.lines();
    let mut adjacent = false;
    while let Some(line) = lines.next() {
        let Some(language) = line.strip_prefix("```") else {
            adjacent &= line.trim().is_empty();
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|line| !line.starts_with("```")).collect();
        blocks.push((language, body, adjacent));
        adjacent = true;
    }
    let (mut checked, mut paired) = (0, 0);
    for (index, (language, body, _)) in blocks.iter().enumerate() {
        if *language != "text" {
            continue;
        }
        let filters: Vec<Filter> = body.iter().map(|text| check(text, text)).collect();
        checked += filters.len();
        let Some((_, documents, true)) = blocks.get(index + 1).filter(|(language, ..)| *language == "json") else {
            continue;
        };
        assert_eq!(documents.len(), filters.len(), "JSON lines after {body:?}");
        paired += filters.len();
        for (document, filter) in documents.iter().zip(&filters) {
            let value: Value = match serde_json::from_str(document) {
                Ok(value) => value,
                Err(error) => panic!("{document}: {error}"),
            };
            assert_eq!(from_json(&value).as_ref(), Ok(filter), "{document}");
            assert_eq!(to_json(filter), value, "{document}");
        }
    }
    assert!(checked > 40 && paired > 30, "only {checked} examples found, {paired} with JSON");
}

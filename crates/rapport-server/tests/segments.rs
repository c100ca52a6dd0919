//! Segments and dynamic tags through the real server on both stores: filters in either form and their errors, then
//! members that follow contacts, tags and events within moments — watched the way a user would, by asking the API
//! again until the answer changes (or a few seconds have passed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::TestApp;
use rapport_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

api_tests!(
    filters_in_text_and_json_are_saved_canonically,
    parse_errors_say_where,
    filters_naming_unknown_things_are_invalid,
    segments_cannot_contain_themselves,
    members_follow_contact_changes,
    behaviour_conditions_follow_events,
    events_arriving_with_a_new_segment_count_once,
    preview_evaluates_unsaved_filters,
    segments_in_use_cannot_be_deleted,
    dynamic_tags_follow_their_rule,
    a_dynamic_tag_cannot_depend_on_itself,
    a_deleted_field_makes_its_segments_invalid,
    a_segment_exports_as_csv,
    tag_statistics_count_changes_per_day,
);

const INDUSTRY_FILTER: &str = r#"stage >= mql and tag("行业/制造业")"#;
const PRICING_FILTER: &str = r#"count(event "page_viewed" where url contains "/pricing", last 30 days) >= 3"#;

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

/// Asks `probe` again every few milliseconds until it answers `Ok`; fails with its last answer after ten seconds.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => panic!("{what}: still not the case after 10 s; last: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Waits until the segment is ready and holds `expected` contacts.
async fn wait_count(app: &TestApp, segment: &str, expected: u64) {
    eventually(&format!("segment {segment} holds {expected} contacts"), || async {
        let (status, body) = app.get(&format!("/api/v1/segments/{segment}/count")).await;
        if status == StatusCode::OK && body["status"] == "ready" && body["count"] == expected {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
}

/// Waits until the contact's tags satisfy `test`.
async fn wait_tags(app: &TestApp, contact: &str, what: &str, test: impl Fn(&[String]) -> bool) {
    eventually(what, || async {
        let (_, body) = app.get(&format!("/api/v1/contacts/{contact}")).await;
        let tags: Vec<String> =
            body["tags"].as_array().unwrap().iter().map(|tag| tag.as_str().unwrap().to_owned()).collect();
        if test(&tags) { Ok(()) } else { Err(format!("tags {tags:?}")) }
    })
    .await;
}

async fn create_tag(app: &TestApp, path: &str) {
    let (status, body) = app.post("/api/v1/tags", json!({"path": path})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create_segment(app: &TestApp, name: &str, filter: &str) -> Value {
    let (status, body) = app.post("/api/v1/segments", json!({"name": name, "filter": filter})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn upsert(app: &TestApp, contact: Value) -> String {
    let (status, body) = app.post("/api/v1/contacts", contact).await;
    assert!(status.is_success(), "{status} {body}");
    id_of(&body)
}

async fn timeline_kinds(app: &TestApp, contact: &str, segment: &str) -> Vec<String> {
    let (status, body) = app.get(&format!("/api/v1/contacts/{contact}/timeline")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut kinds: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["data"]["segment_id"].as_str() == Some(segment))
        .map(|item| item["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.reverse();
    kinds
}

async fn filters_in_text_and_json_are_saved_canonically(app: &TestApp) {
    create_tag(app, "行业/制造业").await;
    let (status, by_text) = app
        .post(
            "/api/v1/segments",
            json!({"name": "制造业 MQL", "description": "华东大客户", "filter": r#"STAGE>=mql AND (tag("行业/制造业"))"#}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_text}");
    assert_eq!(by_text["filter"], INDUSTRY_FILTER);
    let expected_json =
        json!({"and": [{"stage": {"op": ">=", "value": "mql"}}, {"tag": {"mode": "has", "paths": ["行业/制造业"]}}]});
    assert_eq!(by_text["filter_json"], expected_json);
    assert_eq!((by_text["name"].as_str(), by_text["description"].as_str()), (Some("制造业 MQL"), Some("华东大客户")));
    assert_eq!(by_text["version"], 1);
    assert!(["building", "ready"].contains(&by_text["status"].as_str().unwrap()), "{by_text}");

    let (status, by_json) =
        app.post("/api/v1/segments", json!({"name": "from JSON", "filter_json": expected_json.clone()})).await;
    assert_eq!(status, StatusCode::CREATED, "{by_json}");
    assert_eq!(by_json["filter"], INDUSTRY_FILTER);
    assert_eq!(by_json["filter_json"], expected_json);
    assert_eq!(by_json["description"], "");

    let text_id = id_of(&by_text);
    wait_count(app, &text_id, 0).await;
    let (status, fetched) = app.get(&format!("/api/v1/segments/{text_id}")).await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!((fetched["status"].as_str(), fetched["member_count"].as_u64()), (Some("ready"), Some(0)));
    assert!(fetched.get("progress").is_none() && fetched.get("problem").is_none(), "{fetched}");
    let (_, list) = app.get("/api/v1/segments").await;
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|item| item["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["制造业 MQL", "from JSON"]);

    // Exactly one form of the filter.
    let both = json!({"name": "both", "filter": "city = \"杭州\"", "filter_json": {"field": "city", "op": "=", "value": "杭州"}});
    let (status, body) = app.post("/api/v1/segments", both).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "validation_failed"), "{body}");
    let (status, body) = app.post("/api/v1/segments", json!({"name": "neither"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "validation_failed"), "{body}");
    let (status, body) = app.post("/api/v1/segments", json!({"name": " ", "filter": "city = \"杭州\""})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "validation_failed"), "{body}");
    // An empty group exists only in JSON and cannot be stored as text.
    let (status, body) = app.post("/api/v1/segments", json!({"name": "everyone", "filter_json": {"and": []}})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_filter"), "{body}");
    let (status, body) = app.post("/api/v1/segments", json!({"name": "from JSON", "filter": "city = \"杭州\""})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "segment_exists"), "{body}");

    // A patch that changes the filter bumps the version; one that only renames does not.
    let (status, patched) =
        app.patch(&format!("/api/v1/segments/{text_id}"), json!({"filter": "city  =  \"杭州\""})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!((patched["filter"].as_str(), patched["version"].as_i64()), (Some("city = \"杭州\""), Some(2)));
    let (_, renamed) = app.patch(&format!("/api/v1/segments/{text_id}"), json!({"name": "杭州"})).await;
    assert_eq!((renamed["name"].as_str(), renamed["version"].as_i64()), (Some("杭州"), Some(2)));

    let response = app.client.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap();
    let document: Value = response.json().await.unwrap();
    for path in [
        "/api/v1/segments",
        "/api/v1/segments/preview",
        "/api/v1/segments/{id}",
        "/api/v1/segments/{id}/count",
        "/api/v1/segments/{id}/contacts",
        "/api/v1/contacts/{id}/segments",
    ] {
        assert!(document["paths"][path].is_object(), "the OpenAPI document lacks {path}");
    }

    // Viewers read segments but do not define them; other workspaces do not see them.
    let viewer = app.key_in(app.workspace, Role::Viewer).await;
    let (status, _) = app.call_as(&viewer, Method::GET, &format!("/api/v1/segments/{text_id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call_as(&viewer, Method::POST, "/api/v1/segments", Some(json!({"name": "x", "filter": "city = \"a\""})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, other) = app.other_workspace("other").await;
    let (status, _) = app.call_as(&other, Method::GET, &format!("/api/v1/segments/{text_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn parse_errors_say_where(app: &TestApp) {
    // Character offsets, not bytes: the Chinese before the mistake counts one per character.
    for (filter, position) in
        [(r#"city = "广州" and emial = "x""#, 16), (r#"city = "广州"#, 7), (r#"province = "浙江" and city = 杭州"#, 27)]
    {
        let (status, body) = app.post("/api/v1/segments", json!({"name": "bad", "filter": filter})).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "filter_parse_error"), "{filter}: {body}");
        assert_eq!(body["error"]["details"]["position"], position, "{filter}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let filter_json =
        json!({"and": [{"field": "city", "op": "=", "value": "杭州"}, {"field": "city", "op": "like", "value": "x"}]});
    let (status, body) = app.post("/api/v1/segments", json!({"name": "bad", "filter_json": filter_json})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "filter_parse_error"), "{body}");
    assert_eq!(body["error"]["details"]["path"], "$.and[1].op", "{body}");

    // The same errors from a patch and from a preview.
    let segment = create_segment(app, "杭州", r#"city = "杭州""#).await;
    let (status, body) =
        app.patch(&format!("/api/v1/segments/{}", id_of(&segment)), json!({"filter": "城市 = \"杭州\""})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "filter_parse_error"), "{body}");
    assert_eq!(body["error"]["details"]["position"], 0);
    let (status, body) = app.post("/api/v1/segments/preview", json!({"filter": "city ="})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "filter_parse_error"), "{body}");
    assert_eq!(body["error"]["details"]["position"], 6);
    let (_, list) = app.get("/api/v1/segments").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing was saved by a rejected request");
}

async fn filters_naming_unknown_things_are_invalid(app: &TestApp) {
    for filter in [
        "fields.budget >= 1000",
        "stage >= champion",
        r#"tag("没有这个标签")"#,
        r#"in_segment("424242")"#,
        r#"company.headcount > 10"#,
    ] {
        let (status, body) = app.post("/api/v1/segments", json!({"name": "bad", "filter": filter})).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_filter"), "{filter}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // A type mismatch: numbers are not compared with text.
    let (status, body) = app.post("/api/v1/fields", json!({"key": "budget", "label": "预算", "type": "number"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        app.post("/api/v1/segments", json!({"name": "bad", "filter": r#"fields.budget contains "5""#})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_filter"), "{body}");
    let (status, body) =
        app.post("/api/v1/segments", json!({"name": "budget", "filter": "fields.budget >= 50000"})).await;
    assert_eq!(status, StatusCode::CREATED, "a field just created can be used: {body}");
    let (status, body) = app.post("/api/v1/segments/preview", json!({"filter": "fields.plan = \"pro\""})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_filter"), "{body}");
}

async fn segments_cannot_contain_themselves(app: &TestApp) {
    let a = id_of(&create_segment(app, "A", r#"city = "杭州""#).await);
    let b = id_of(&create_segment(app, "B", &format!(r#"in_segment("{a}") and stage >= mql"#)).await);
    let c = id_of(&create_segment(app, "C", &format!(r#"in_segment("{b}") or city = "宁波""#)).await);

    let (status, body) =
        app.patch(&format!("/api/v1/segments/{a}"), json!({"filter": format!(r#"in_segment("{c}")"#)})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "segment_cycle"), "{body}");
    let (status, body) =
        app.patch(&format!("/api/v1/segments/{a}"), json!({"filter": format!(r#"not in_segment("{a}")"#)})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "segment_cycle"), "{body}");
    let (_, unchanged) = app.get(&format!("/api/v1/segments/{a}")).await;
    assert_eq!((unchanged["filter"].as_str(), unchanged["version"].as_i64()), (Some(r#"city = "杭州""#), Some(1)));

    // Naming another segment without a loop is fine, and members flow through.
    let (status, body) =
        app.patch(&format!("/api/v1/segments/{c}"), json!({"filter": format!(r#"in_segment("{a}")"#)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    upsert(app, json!({"email": "hz@example.com", "city": "杭州", "stage": "sql"})).await;
    wait_count(app, &a, 1).await;
    wait_count(app, &b, 1).await;
    wait_count(app, &c, 1).await;
}

async fn members_follow_contact_changes(app: &TestApp) {
    create_tag(app, "行业/制造业").await;
    let segment = create_segment(app, "制造业线索", INDUSTRY_FILTER).await;
    let id = id_of(&segment);
    wait_count(app, &id, 0).await;

    let wang = upsert(app, json!({"email": "wang@example.cn", "stage": "mql", "tags": ["行业/制造业"]})).await;
    let li = upsert(app, json!({"email": "li@example.cn", "stage": "raw", "tags": ["行业/制造业"]})).await;
    let zhao = upsert(app, json!({"email": "zhao@example.cn", "stage": "sql", "tags": ["行业/零售"]})).await;
    wait_count(app, &id, 1).await;

    // Li moves up: now two.
    let (status, body) = app.patch(&format!("/api/v1/contacts/{li}"), json!({"stage": "sal"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_count(app, &id, 2).await;
    // Wang loses the tag: he leaves.
    let (status, body) =
        app.delete(&format!("/api/v1/contacts/{wang}/tags"), Some(json!({"tags": ["行业/制造业"]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_count(app, &id, 1).await;

    assert_eq!(timeline_kinds(app, &wang, &id).await, ["segment_entered", "segment_exited"]);
    assert_eq!(timeline_kinds(app, &li, &id).await, ["segment_entered"]);
    assert!(timeline_kinds(app, &zhao, &id).await.is_empty());
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{wang}/timeline")).await;
    let entered = timeline["items"].as_array().unwrap().iter().find(|item| item["kind"] == "segment_entered").unwrap();
    assert_eq!(entered["data"]["segment"], "制造业线索", "{entered}");

    // Members, three ways.
    let (status, members) = app.get(&format!("/api/v1/segments/{id}/contacts")).await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let ids: Vec<&str> = members["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [li.as_str()]);
    assert_eq!(members["items"][0]["email"], "li@example.cn");
    assert_eq!(members["next_cursor"], Value::Null);
    let (status, listed) = app.get(&format!("/api/v1/contacts?segment={id}")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"], members["items"]);
    let (status, of_li) = app.get(&format!("/api/v1/contacts/{li}/segments")).await;
    assert_eq!(status, StatusCode::OK, "{of_li}");
    assert_eq!(of_li, json!({"items": [{"id": id, "name": "制造业线索"}]}));
    let (_, of_wang) = app.get(&format!("/api/v1/contacts/{wang}/segments")).await;
    assert_eq!(of_wang, json!({"items": []}));
    let (status, _) = app.get("/api/v1/contacts?segment=999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Paging by id: three members, two per page.
    let more = [
        upsert(app, json!({"email": "a@example.cn", "stage": "customer", "tags": ["行业/制造业"]})).await,
        upsert(app, json!({"email": "b@example.cn", "stage": "sql", "tags": ["行业/制造业"]})).await,
    ];
    wait_count(app, &id, 3).await;
    let (_, first) = app.get(&format!("/api/v1/contacts?segment={id}&limit=2")).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = app.get(&format!("/api/v1/contacts?segment={id}&limit=2&cursor={cursor}")).await;
    let mut paged: Vec<&str> = Vec::new();
    for page in [&first, &second] {
        paged.extend(page["items"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap()));
    }
    assert_eq!(paged, [li.as_str(), more[0].as_str(), more[1].as_str()]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Erasing a member takes it out.
    let (status, _) = app.delete(&format!("/api/v1/contacts/{}", more[0]), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_count(app, &id, 2).await;
}

async fn behaviour_conditions_follow_events(app: &TestApp) {
    let segment = create_segment(app, "看过定价页", PRICING_FILTER).await;
    let id = id_of(&segment);
    assert_eq!(segment["filter"], PRICING_FILTER);
    let contact = upsert(app, json!({"email": "visitor@example.cn"})).await;
    wait_count(app, &id, 0).await;
    let view = |url: &str, occurred_at: Option<String>| {
        let mut event =
            json!({"contact": {"email": "visitor@example.cn"}, "type": "page_viewed", "properties": {"url": url}});
        if let Some(at) = occurred_at {
            event["occurred_at"] = json!(at);
        }
        event
    };
    let long_ago = (chrono::Utc::now() - chrono::Duration::days(45)).to_rfc3339();
    let events = json!({"events": [
        view("https://example.cn/pricing", None),
        view("https://example.cn/pricing?plan=pro", None),
        view("https://example.cn/blog", None),
        view("https://example.cn/pricing", Some(long_ago)),
    ]});
    let (status, body) = app.post("/api/v1/events", events).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(4)), "{body}");
    // Two recent pricing views of three needed, and the old one is outside the window.
    let (status, preview) = app.post("/api/v1/segments/preview", json!({"filter": PRICING_FILTER})).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    wait_count(app, &id, 0).await;

    let (status, body) =
        app.post("/api/v1/events", json!({"events": [view("https://example.cn/en/pricing", None)]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_count(app, &id, 1).await;
    assert_eq!(timeline_kinds(app, &contact, &id).await, ["segment_entered"]);

    // A segment created after the events counts them from history.
    let later = create_segment(
        app,
        "定价页两次",
        r#"count(event "page_viewed" where url contains "/pricing", last 7 days) >= 2"#,
    )
    .await;
    wait_count(app, &id_of(&later), 1).await;
}

/// Events the engine reads in the same batch as a new segment's definition are counted once: not once from
/// history when the segment is built and again from the batch.
async fn events_arriving_with_a_new_segment_count_once(app: &TestApp) {
    // A segment on the same event type with another predicate says when the events have been applied.
    let sentinel = id_of(&create_segment(app, "any view", r#"count(event "page_viewed", ever) >= 2"#).await);
    upsert(app, json!({"email": "once@example.cn"})).await;
    wait_count(app, &sentinel, 0).await;

    let segment = id_of(&create_segment(app, "three pricing views", PRICING_FILTER).await);
    let view =
        json!({"contact": {"email": "once@example.cn"}, "type": "page_viewed", "properties": {"url": "/pricing"}});
    let (status, body) = app.post("/api/v1/events", json!({"events": [view.clone(), view]})).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(2)), "{body}");
    wait_count(app, &sentinel, 1).await;
    wait_count(app, &segment, 0).await;
    let (_, preview) = app.post("/api/v1/segments/preview", json!({"filter": PRICING_FILTER})).await;
    assert_eq!(preview["count"], 0, "two views are not three: {preview}");
}

async fn preview_evaluates_unsaved_filters(app: &TestApp) {
    let first = upsert(app, json!({"email": "p1@example.cn", "city": "杭州"})).await;
    upsert(app, json!({"email": "p2@example.cn", "city": "杭州"})).await;
    upsert(app, json!({"email": "p3@example.cn", "city": "宁波"})).await;
    let body = eventually("the preview counts both contacts in 杭州", || async {
        let (status, body) =
            app.post("/api/v1/segments/preview", json!({"filter": r#"city = "杭州""#, "limit": 1})).await;
        if status == StatusCode::OK && body["count"] == 2 { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await;
    let contacts = body["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "limit");
    assert_eq!((contacts[0]["id"].as_str(), contacts[0]["city"].as_str()), (Some(first.as_str()), Some("杭州")));

    let filter_json = json!({"or": [{"field": "city", "op": "=", "value": "宁波"}, {"field": "email_domain", "op": "=", "value": "example.cn"}]});
    let (status, body) = app.post("/api/v1/segments/preview", json!({"filter_json": filter_json})).await;
    assert_eq!((status, body["count"].as_u64()), (StatusCode::OK, Some(3)), "{body}");
    assert_eq!(body["contacts"].as_array().unwrap().len(), 3);

    for limit in [0, 101] {
        let (status, body) =
            app.post("/api/v1/segments/preview", json!({"filter": r#"city = "杭州""#, "limit": limit})).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "validation_failed"), "{body}");
    }
    let (_, list) = app.get("/api/v1/segments").await;
    assert_eq!(list["items"], json!([]), "a preview saves nothing");
}

async fn segments_in_use_cannot_be_deleted(app: &TestApp) {
    let base = id_of(&create_segment(app, "华东", r#"province in ("浙江", "江苏", "上海")"#).await);
    let user = id_of(&create_segment(app, "华东 SQL", &format!(r#"in_segment("{base}") and stage >= sql"#)).await);

    let (status, body) = app.delete(&format!("/api/v1/segments/{base}"), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "segment_in_use"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("华东 SQL"), "{body}");
    let (status, _) = app.get(&format!("/api/v1/segments/{base}")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = app.delete(&format!("/api/v1/segments/{user}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.delete(&format!("/api/v1/segments/{base}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/api/v1/segments/{base}")).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _) = app.delete(&format!("/api/v1/segments/{base}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn dynamic_tags_follow_their_rule(app: &TestApp) {
    let (status, tag) =
        app.post("/api/v1/tags", json!({"path": "线索/高意向", "kind": "dynamic", "filter": "stage >= sql"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    assert_eq!((tag["kind"].as_str(), tag["filter"].as_str()), (Some("dynamic"), Some("stage >= sql")));
    assert_eq!(tag["filter_json"], json!({"stage": {"op": ">=", "value": "sql"}}));
    let tag_id = id_of(&tag);
    let path = "线索/高意向";

    let contact = upsert(app, json!({"email": "hot@example.cn", "stage": "mql"})).await;
    let (status, body) = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"stage": "sql"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_tags(app, &contact, "the contact gets the dynamic tag", |tags| tags.iter().any(|tag| tag == path)).await;

    // By hand, neither off nor on.
    let (status, body) = app.delete(&format!("/api/v1/contacts/{contact}/tags"), Some(json!({"tags": [path]}))).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "dynamic_tag"), "{body}");
    let other = upsert(app, json!({"email": "cold@example.cn"})).await;
    let (status, body) = app.post(&format!("/api/v1/contacts/{other}/tags"), json!({"tags": [path]})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "dynamic_tag"), "{body}");

    let (_, timeline) = app.get(&format!("/api/v1/contacts/{contact}/timeline")).await;
    assert!(timeline["items"].as_array().unwrap().iter().any(|item| item["kind"] == "tag_added"), "{timeline}");

    // Back down: the tag goes.
    let (status, _) = app.patch(&format!("/api/v1/contacts/{contact}"), json!({"stage": "mql"})).await;
    assert_eq!(status, StatusCode::OK);
    wait_tags(app, &contact, "the contact loses the dynamic tag", |tags| !tags.iter().any(|tag| tag == path)).await;

    // A new rule applies to everyone.
    let (status, patched) =
        app.patch(&format!("/api/v1/tags/{tag_id}"), json!({"filter": "email_domain = \"example.cn\""})).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["filter"], "email_domain = \"example.cn\"");
    wait_tags(app, &other, "the new rule tags the other contact", |tags| tags.iter().any(|tag| tag == path)).await;
    let (_, listed) = app.get("/api/v1/tags").await;
    let group = listed["items"].as_array().unwrap().iter().find(|item| item["path"] == "线索").unwrap().clone();
    assert_eq!(group["children"][0]["filter"], "email_domain = \"example.cn\"", "{listed}");
    assert!(group.get("filter").is_none(), "a manual tag has no filter: {group}");

    // Definitions are not segments of their own.
    let (_, segments) = app.get("/api/v1/segments").await;
    assert_eq!(segments["items"], json!([]));

    // Rules are checked, and a refused rule leaves no tag behind.
    let (status, body) =
        app.post("/api/v1/tags", json!({"path": "线索/无效", "kind": "dynamic", "filter": "fields.nope = 1"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_filter"), "{body}");
    let (status, body) =
        app.post("/api/v1/tags", json!({"path": "线索/坏", "kind": "dynamic", "filter": "stage >="})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "filter_parse_error"), "{body}");
    let (status, body) = app.post("/api/v1/tags", json!({"path": "手动", "filter": "stage >= sql"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "validation_failed"), "{body}");
    let (_, listed) = app.get("/api/v1/tags").await;
    let paths: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|item| item["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["线索"], "{listed}");
    let group = &listed["items"][0]["children"];
    assert_eq!(group.as_array().unwrap().len(), 1, "{listed}");

    // A manual tag takes no rule.
    create_tag(app, "手动").await;
    let (_, tags) = app.get("/api/v1/tags").await;
    let manual = tags["items"].as_array().unwrap().iter().find(|item| item["path"] == "手动").unwrap().clone();
    let (status, body) =
        app.patch(&format!("/api/v1/tags/{}", id_of(&manual)), json!({"filter": "stage >= sql"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "not_dynamic_tag"), "{body}");

    // Renaming keeps the rule; once nobody matches, the tag can be deleted with its rule.
    let (status, renamed) = app.patch(&format!("/api/v1/tags/{tag_id}"), json!({"name": "热线索"})).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(
        (renamed["path"].as_str(), renamed["filter"].as_str()),
        (Some("线索/热线索"), Some("email_domain = \"example.cn\""))
    );
    let (status, body) = app.delete(&format!("/api/v1/tags/{tag_id}"), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "tag_in_use"), "{body}");
    let (status, _) =
        app.patch(&format!("/api/v1/tags/{tag_id}"), json!({"filter": "email_domain = \"nobody.example\""})).await;
    assert_eq!(status, StatusCode::OK);
    wait_tags(app, &other, "the tag goes once nobody matches", |tags| tags.is_empty()).await;
    wait_tags(app, &contact, "the tag goes once nobody matches", |tags| tags.is_empty()).await;
    eventually("the tag counts no contacts", || async {
        let (_, tag) = app.get(&format!("/api/v1/tags/{tag_id}")).await;
        if tag["contact_count"] == 0 { Ok(()) } else { Err(tag.to_string()) }
    })
    .await;
    let (status, body) = app.delete(&format!("/api/v1/tags/{tag_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app.get(&format!("/api/v1/tags/{tag_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A dynamic tag whose rule reads the tag itself would add and remove it for ever.
async fn a_dynamic_tag_cannot_depend_on_itself(app: &TestApp) {
    let (status, tag) = app.post("/api/v1/tags", json!({"path": "循环", "kind": "dynamic"})).await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    let tag_id = id_of(&tag);
    let (status, body) = app.patch(&format!("/api/v1/tags/{tag_id}"), json!({"filter": r#"not tag("循环")"#})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "segment_cycle"), "{body}");

    // Through another dynamic tag, too.
    let (status, other) =
        app.post("/api/v1/tags", json!({"path": "另一个", "kind": "dynamic", "filter": r#"tag("循环")"#})).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let (status, body) = app.patch(&format!("/api/v1/tags/{tag_id}"), json!({"filter": r#"not tag("另一个")"#})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "segment_cycle"), "{body}");
}

async fn a_deleted_field_makes_its_segments_invalid(app: &TestApp) {
    let (status, field) = app.post("/api/v1/fields", json!({"key": "budget", "label": "预算", "type": "number"})).await;
    assert_eq!(status, StatusCode::CREATED, "{field}");
    let segment = id_of(&create_segment(app, "大预算", "fields.budget >= 50000").await);
    upsert(app, json!({"email": "rich@example.cn", "fields": {"budget": 80000}})).await;
    upsert(app, json!({"email": "poor@example.cn", "fields": {"budget": 800}})).await;
    wait_count(app, &segment, 1).await;

    let (status, _) = app.delete(&format!("/api/v1/fields/{}", id_of(&field)), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let body = eventually("the segment becomes invalid", || async {
        let (_, body) = app.get(&format!("/api/v1/segments/{segment}")).await;
        if body["status"] == "invalid" { Ok(body) } else { Err(body.to_string()) }
    })
    .await;
    assert!(body["problem"].as_str().unwrap().contains("budget"), "{body}");
    let (_, count) = app.get(&format!("/api/v1/segments/{segment}/count")).await;
    assert_eq!(count["status"], "invalid");

    // A new filter makes it whole again.
    let (status, body) =
        app.patch(&format!("/api/v1/segments/{segment}"), json!({"filter": "email_domain = \"example.cn\""})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_count(app, &segment, 2).await;
}

/// An export job limited to a segment writes exactly its members; an unknown segment is refused before a job is
/// queued.
async fn a_segment_exports_as_csv(app: &TestApp) {
    create_tag(app, "行业/制造业").await;
    let segment = create_segment(app, "制造业线索", INDUSTRY_FILTER).await;
    let id = id_of(&segment);
    upsert(app, json!({"email": "wang@example.cn", "stage": "mql", "tags": ["行业/制造业"], "first_name": "王"})).await;
    upsert(app, json!({"email": "li@example.cn", "stage": "raw", "tags": ["行业/制造业"]})).await;
    upsert(app, json!({"email": "zhao@example.cn", "stage": "sql", "tags": ["行业/制造业"], "first_name": "赵"})).await;
    wait_count(app, &id, 2).await;

    let (status, job) = app.post("/api/v1/exports", json!({"segment_id": id})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let path = format!("/api/v1/exports/{}", job["id"].as_str().unwrap());
    let job = eventually("the export finishes", || async {
        let (_, job) = app.get(&path).await;
        if job["status"] == "succeeded" { Ok(job) } else { Err(job.to_string()) }
    })
    .await;
    assert_eq!(job["progress"], json!({"written": 2, "total": 2}));
    let file = app
        .client
        .get(format!("{}{}", app.base, job["links"]["file"].as_str().unwrap()))
        .bearer_auth(common::OWNER_TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(&file[3..]);
    let emails: Vec<String> = reader.records().map(|row| row.unwrap()[1].to_owned()).collect();
    assert_eq!(emails, ["wang@example.cn", "zhao@example.cn"]);

    let (status, body) = app.post("/api/v1/exports", json!({"segment_id": "999999"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"), "{body}");
}

/// Additions and removals per day, the tagging rate and its change against the previous period.
async fn tag_statistics_count_changes_per_day(app: &TestApp) {
    let mut ids = Vec::new();
    for email in ["a@example.cn", "b@example.cn", "c@example.cn", "d@example.cn"] {
        ids.push(upsert(app, json!({"email": email, "tags": ["客户/重点"]})).await);
    }
    let (status, body) =
        app.delete(&format!("/api/v1/contacts/{}/tags", ids[0]), Some(json!({"tags": ["客户/重点"]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, tags) = app.get("/api/v1/tags").await;
    let tag = tags["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|tag| tag["children"].as_array().unwrap())
        .find(|tag| tag["path"] == "客户/重点")
        .unwrap()
        .clone();
    let (status, stats) = app.get(&format!("/api/v1/tags/{}/stats?days=7", id_of(&tag))).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!((stats["contact_count"].as_u64(), stats["workspace_contacts"].as_u64()), (Some(3), Some(4)));
    let period = &stats["period"];
    assert_eq!((period["added"].as_u64(), period["removed"].as_u64()), (Some(4), Some(1)));
    assert_eq!(period["days"].as_array().unwrap().len(), 7);
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(period["to"], today.as_str());
    assert_eq!(period["days"][6], json!({"date": today, "added": 4, "removed": 1}));
    assert_eq!(period["tagging_rate"].as_f64(), Some(100.0));
    assert_eq!(stats["previous"]["added"].as_u64(), Some(0));
    assert_eq!(stats["tagging_rate_change"].as_f64(), Some(100.0));
    let (status, body) = app.get(&format!("/api/v1/tags/{}/stats?days=0", id_of(&tag))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app.get("/api/v1/tags/999999/stats").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

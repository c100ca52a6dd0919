//! The REST API contract, end to end through the real server, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{OWNER_TOKEN, TestApp};
use rapport_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

api_tests!(
    health_and_openapi,
    authentication_and_roles,
    contact_upsert_by_identity,
    invalid_contacts_write_nothing,
    batch_upsert_is_all_or_nothing,
    custom_fields_are_typed,
    tags_on_contacts_and_the_library,
    stages_statuses_and_history,
    notes_and_note_templates,
    events_batch_and_timeline,
    erasure_removes_the_person,
    pagination_walks_every_contact_once,
    malformed_requests_get_clear_errors,
    users_and_api_keys,
    companies_link_contacts,
    tenant_isolation,
    merge_rules_per_field,
);

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

fn first_error_field(body: &Value) -> &str {
    body["error"]["details"]["fields"][0]["field"].as_str().unwrap_or_default()
}

async fn health_and_openapi(app: &TestApp) {
    let response = app.client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.client.get(format!("{}/api/v1/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/contacts",
        "/api/v1/contacts/batch",
        "/api/v1/contacts/{id}",
        "/api/v1/contacts/{id}/tags",
        "/api/v1/contacts/{id}/timeline",
        "/api/v1/companies/{id}",
        "/api/v1/events",
        "/api/v1/fields",
        "/api/v1/tags/{id}",
        "/api/v1/stages/{key}",
        "/api/v1/lead-statuses",
        "/api/v1/note-templates/{id}",
        "/api/v1/users/{id}",
        "/api/v1/api-keys/{id}",
        "/api/v1/imports",
        "/api/v1/imports/{id}/errors",
        "/api/v1/exports/{id}/file",
    ] {
        assert!(paths.contains_key(path), "the OpenAPI document lacks {path}");
    }
    assert!(paths["/api/v1/contacts"]["post"]["requestBody"].is_object());
    assert!(document["components"]["schemas"]["ContactBody"].is_object());
}

async fn authentication_and_roles(app: &TestApp) {
    let response = app.client.get(format!("{}/api/v1/contacts", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "unauthorized");

    let (status, body) = app.call_as("rk_not_a_key", Method::GET, "/api/v1/contacts", None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNAUTHORIZED, "unauthorized"));

    let viewer = app.key_in(app.workspace, Role::Viewer).await;
    let (status, _) = app.call_as(&viewer, Method::GET, "/api/v1/contacts", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        app.call_as(&viewer, Method::POST, "/api/v1/contacts", Some(json!({"email": "v@example.com"}))).await;
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    assert_eq!(app.contact_count().await, 0);

    let rep = app.key_in(app.workspace, Role::SalesRep).await;
    let (status, _) =
        app.call_as(&rep, Method::POST, "/api/v1/contacts", Some(json!({"email": "r@example.com"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call_as(&rep, Method::POST, "/api/v1/fields", Some(json!({"key": "x", "label": "X", "type": "text"})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call_as(&rep, Method::GET, "/api/v1/api-keys", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn contact_upsert_by_identity(app: &TestApp) {
    let (status, created) = app
        .post(
            "/api/v1/contacts",
            json!({"email": "Li.Lei@Example.com", "first_name": "雷", "last_name": "李", "city": "上海"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["email"], "li.lei@example.com");
    assert_eq!(created["stage"], "raw");
    assert_eq!(created["status"], Value::Null);
    assert_eq!(created["fields"], json!({}));
    assert_eq!(created["tags"], json!([]));
    for key in ["phone", "first_name", "last_name", "company_id", "owner_id", "created_at", "updated_at"] {
        assert!(created.get(key).is_some(), "contact lacks {key}");
    }

    let (status, updated) =
        app.post("/api/v1/contacts", json!({"email": "li.lei@example.com", "title": "采购经理"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["title"], "采购经理");
    assert_eq!(updated["city"], "上海", "fields left out stay as they were");

    let (status, by_phone) =
        app.post("/api/v1/contacts", json!({"phone": "+86 138 0013 8000", "user_id": "crm-7"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(by_phone["phone"], "+8613800138000");
    let (_, again) = app.post("/api/v1/contacts", json!({"user_id": "crm-7", "last_name": "韩"})).await;
    assert_eq!(again["id"], by_phone["id"]);

    for query in ["email=LI.LEI%40example.com", "phone=%2B8613800138000", "user_id=crm-7"] {
        let (status, found) = app.get(&format!("/api/v1/contacts?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(found["items"].as_array().unwrap().len(), 1, "{query}");
    }
    let (_, none) = app.get("/api/v1/contacts?email=nobody%40example.com").await;
    assert_eq!(none["items"], json!([]));

    let (status, fetched) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["title"], "采购经理");

    let (status, patched) =
        app.patch(&format!("/api/v1/contacts/{id}"), json!({"city": null, "country": "中国"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((patched["city"].clone(), patched["country"].clone()), (Value::Null, json!("中国")));

    // An identity that already belongs to someone else is a conflict, not a silent merge.
    let (status, body) = app.patch(&format!("/api/v1/contacts/{id}"), json!({"user_id": "crm-7"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "identity_conflict"));
    let (status, _) = app.get("/api/v1/contacts/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/contacts/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn invalid_contacts_write_nothing(app: &TestApp) {
    let cases = [
        (json!({"email": "not-an-email"}), "validation_failed", "email"),
        (json!({"email": "a@example.com", "phone": "call me"}), "validation_failed", "phone"),
        (json!({"email": "a@example.com", "favourite": 1}), "validation_failed", "body"),
        (json!({"email": "a@example.com", "fields": {"nope": 1}}), "validation_failed", "fields.nope"),
        (json!({"email": "a@example.com", "tags": ["a//b"]}), "validation_failed", "tags[0]"),
        (json!({"email": "a@example.com", "first_name": 42}), "validation_failed", "first_name"),
        (json!({"email": "a@example.com", "stage": "Nope!"}), "validation_failed", "stage"),
    ];
    for (input, code, field) in cases {
        let (status, body) = app.post("/api/v1/contacts", input.clone()).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, code), "{input} → {body}");
        let named = first_error_field(&body);
        assert!(
            named == field || (field == "body" && body["error"]["message"].as_str().unwrap().contains("favourite")),
            "{input} named {named}: {body}"
        );
    }
    for (input, code) in [
        (json!({"email": "a@example.com", "stage": "unknown"}), "unknown_stage"),
        (json!({"email": "a@example.com", "status": "unknown"}), "unknown_status"),
        (json!({"email": "a@example.com", "owner_id": "424242"}), "unknown_owner"),
        (json!({"email": "a@example.com", "company_id": "424242"}), "unknown_company"),
    ] {
        let (status, body) = app.post("/api/v1/contacts", input.clone()).await;
        assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, code), "{input} → {body}");
    }
    assert_eq!(app.contact_count().await, 0, "rejected requests wrote nothing");
    let (_, tags) = app.get("/api/v1/tags").await;
    assert_eq!(tags["items"], json!([]));
}

async fn batch_upsert_is_all_or_nothing(app: &TestApp) {
    let contacts: Vec<Value> =
        (0..5).map(|i| json!({"email": format!("b{i}@example.com"), "tags": ["来源/展会"]})).collect();
    let (status, body) = app.post("/api/v1/contacts/batch", json!({"contacts": contacts})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["created"].clone(), body["updated"].clone()), (json!(5), json!(0)));
    assert_eq!(body["items"].as_array().unwrap().len(), 5);

    // The same identity twice in one batch: the second item updates the first.
    let mixed = json!({"contacts": [
        {"email": "b0@example.com", "city": "杭州"},
        {"email": "new@example.com"},
        {"email": "NEW@example.com", "city": "深圳"},
    ]});
    let (status, body) = app.post("/api/v1/contacts/batch", mixed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["created"].clone(), body["updated"].clone()), (json!(1), json!(2)));
    assert_eq!(body["items"][1]["id"], body["items"][2]["id"]);
    assert_eq!(app.contact_count().await, 6);

    let bad = json!({"contacts": [{"email": "ok@example.com"}, {"email": "broken"}, {"phone": "x"}]});
    let (status, body) = app.post("/api/v1/contacts/batch", bad).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "validation_failed"));
    assert_eq!(first_error_field(&body), "contacts[1].email");
    assert_eq!(body["error"]["details"]["fields"][1]["field"], "contacts[2].phone");
    assert_eq!(app.contact_count().await, 6, "a rejected batch wrote nothing");

    let too_many: Vec<Value> = (0..1_001).map(|i| json!({"email": format!("m{i}@example.com")})).collect();
    let (status, body) = app.post("/api/v1/contacts/batch", json!({"contacts": too_many})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "contacts"));
    assert_eq!(app.contact_count().await, 6);
}

async fn custom_fields_are_typed(app: &TestApp) {
    let (status, field) = app.post("/api/v1/fields", json!({"key": "budget", "label": "预算", "type": "number"})).await;
    assert_eq!(status, StatusCode::CREATED, "{field}");
    assert_eq!(
        (field["key"].clone(), field["type"].clone(), field["entity"].clone()),
        (json!("budget"), json!("number"), json!("contact"))
    );
    let (status, body) = app.post("/api/v1/fields", json!({"key": "budget", "label": "again", "type": "text"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "field_exists"));
    let (status, body) =
        app.post("/api/v1/fields", json!({"key": "tier", "label": "级别", "type": "single_select"})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "options"));
    let (status, _) = app
        .post("/api/v1/fields", json!({"key": "tier", "label": "级别", "type": "single_select", "options": ["A", "B"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post("/api/v1/fields", json!({"key": "x", "label": "X", "type": "colour"})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "type"));

    let (status, contact) =
        app.post("/api/v1/contacts", json!({"email": "f@example.com", "fields": {"budget": 5000, "tier": "A"}})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(contact["fields"], json!({"budget": 5000, "tier": "A"}));
    let (status, body) =
        app.post("/api/v1/contacts", json!({"email": "f@example.com", "fields": {"budget": "lots"}})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "fields.budget"));
    let (status, body) = app.post("/api/v1/contacts", json!({"email": "f@example.com", "fields": {"tier": "Z"}})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "fields.tier"));
    let (_, cleared) = app.post("/api/v1/contacts", json!({"email": "f@example.com", "fields": {"tier": null}})).await;
    assert_eq!(cleared["fields"], json!({"budget": 5000}));

    let (status, _) = app.delete(&format!("/api/v1/fields/{}", field["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = app.get(&format!("/api/v1/contacts/{}", contact["id"].as_str().unwrap())).await;
    assert_eq!(after["fields"], json!({}), "deleting a field removes its values");
    let (_, listed) = app.get("/api/v1/fields").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

async fn tags_on_contacts_and_the_library(app: &TestApp) {
    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "t@example.com"})).await;
    let id = contact["id"].as_str().unwrap().to_owned();
    let (status, tagged) =
        app.post(&format!("/api/v1/contacts/{id}/tags"), json!({"tags": ["行业/制造业", "意向/高"]})).await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(
        tagged["tags"],
        json!(
            ["意向/高", "行业/制造业"]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        )
    );

    let (_, tree) = app.get("/api/v1/tags").await;
    let industry = tree["items"].as_array().unwrap().iter().find(|tag| tag["name"] == "行业").unwrap().clone();
    assert_eq!(industry["path"], "行业");
    assert_eq!(industry["children"][0]["path"], "行业/制造业");
    assert_eq!(industry["children"][0]["contact_count"], 1);

    // Moving a tag to another group keeps its contacts.
    let (_, group) = app.post("/api/v1/tags", json!({"path": "客户画像"})).await;
    let leaf_id = industry["children"][0]["id"].as_str().unwrap().to_owned();
    let (status, moved) = app.patch(&format!("/api/v1/tags/{leaf_id}"), json!({"parent_id": group["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["path"], "客户画像/制造业");
    let (_, contact) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert!(contact["tags"].as_array().unwrap().contains(&json!("客户画像/制造业")));

    let (status, body) = app.delete(&format!("/api/v1/tags/{leaf_id}"), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "tag_in_use"));
    let (status, body) = app.delete(&format!("/api/v1/tags/{}", group["id"].as_str().unwrap()), None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "tag_has_children"));
    let (status, body) = app.post("/api/v1/tags", json!({"path": "a/b/c/d/e"})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "path"));

    let (status, _) = app.post("/api/v1/tags", json!({"path": "自动/活跃", "kind": "dynamic"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post(&format!("/api/v1/contacts/{id}/tags"), json!({"tags": ["自动/活跃"]})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "dynamic_tag"));
    let (status, body) = app.post("/api/v1/contacts", json!({"email": "t@example.com", "tags": ["自动/活跃"]})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "dynamic_tag"));

    let (status, untagged) =
        app.delete(&format!("/api/v1/contacts/{id}/tags"), Some(json!({"tags": ["客户画像/制造业"]}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(untagged["tags"], json!(["意向/高"]));
    let (status, _) = app.delete(&format!("/api/v1/tags/{leaf_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "an unused leaf can be deleted");

    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline")).await;
    let kinds: Vec<&str> =
        timeline["items"].as_array().unwrap().iter().map(|item| item["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|kind| **kind == "tag_added").count(), 2);
    assert_eq!(kinds.iter().filter(|kind| **kind == "tag_removed").count(), 1);
}

async fn stages_statuses_and_history(app: &TestApp) {
    let (_, stages) = app.get("/api/v1/stages").await;
    let keys: Vec<&str> =
        stages["items"].as_array().unwrap().iter().map(|stage| stage["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["raw", "mql", "sal", "sql", "customer"]);
    let (_, statuses) = app.get("/api/v1/lead-statuses").await;
    assert!(statuses["items"].as_array().unwrap().len() >= 4);

    let (status, _) = app.post("/api/v1/stages", json!({"key": "evangelist", "label": "布道者"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app.post("/api/v1/stages", json!({"key": "mql", "label": "dup"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "stage_exists"));

    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "s@example.com"})).await;
    let id = contact["id"].as_str().unwrap().to_owned();
    let (status, moved) =
        app.patch(&format!("/api/v1/contacts/{id}"), json!({"stage": "mql", "reason": "下载白皮书"})).await;
    assert_eq!((status, moved["stage"].clone()), (StatusCode::OK, json!("mql")));
    let (_, back) =
        app.patch(&format!("/api/v1/contacts/{id}"), json!({"stage": "raw", "status": "unqualified"})).await;
    assert_eq!((back["stage"].clone(), back["status"].clone()), (json!("raw"), json!("unqualified")));

    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline")).await;
    let items = timeline["items"].as_array().unwrap();
    let stage_changes: Vec<&Value> = items.iter().filter(|item| item["kind"] == "stage_changed").collect();
    assert_eq!(stage_changes.len(), 2);
    assert_eq!(
        (stage_changes[0]["data"]["from"].clone(), stage_changes[0]["data"]["to"].clone()),
        (json!("mql"), json!("raw"))
    );
    assert_eq!(stage_changes[1]["data"]["reason"], "下载白皮书");
    assert!(stage_changes[1]["data"]["actor"].as_str().unwrap().starts_with("api_key:"));
    assert!(items.iter().any(|item| item["kind"] == "status_changed" && item["data"]["to"] == "unqualified"));

    let (status, body) = app.delete("/api/v1/stages/raw", None).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "stage_in_use"));
    let (status, _) = app.delete("/api/v1/stages/evangelist", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn notes_and_note_templates(app: &TestApp) {
    let (status, template) = app
        .post(
            "/api/v1/note-templates",
            json!({"name": "未接通", "status": "not_reached", "body": "电话未接通，明天再打。"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let (status, body) = app.post("/api/v1/note-templates", json!({"name": "x", "status": "nope", "body": "x"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "unknown_status"));

    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "n@example.com"})).await;
    let id = contact["id"].as_str().unwrap().to_owned();
    let (status, note) = app
        .post(
            &format!("/api/v1/contacts/{id}/notes"),
            json!({"body": "电话未接通，明天再打。", "template_id": template["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let (status, body) = app.post(&format!("/api/v1/contacts/{id}/notes"), json!({"body": "  "})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "body"));

    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline")).await;
    assert_eq!(timeline["items"][0]["kind"], "note");
    assert_eq!(timeline["items"][0]["data"]["body"], "电话未接通，明天再打。");
    let (status, _) = app.delete(&format!("/api/v1/contacts/{id}/notes/{}", note["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline")).await;
    assert_eq!(timeline["items"], json!([]));
}

async fn events_batch_and_timeline(app: &TestApp) {
    let (_, known) = app.post("/api/v1/contacts", json!({"email": "e@example.com"})).await;
    let known_id = known["id"].as_str().unwrap().to_owned();
    let batch = json!({"events": [
        {"contact": {"email": "e@example.com"}, "type": "page_viewed", "properties": {"url": "https://x.example/pricing"},
         "occurred_at": "2026-05-01T09:30:00+08:00", "message_id": "m-1"},
        {"contact": {"email": "newcomer@example.com"}, "type": "webinar_registered"},
        {"contact": {"id": known_id}, "type": "email_opened", "message_id": "m-2"},
        {"contact": {"email": "e@example.com"}, "properties": {}},
        {"contact": {"id": "999999"}, "type": "page_viewed"},
        {"contact": {}, "type": "page_viewed"},
        {"contact": {"email": "e@example.com"}, "type": "page_viewed", "occurred_at": "yesterday"},
    ]});
    let (status, body) = app.post("/api/v1/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 3);
    let errors: Vec<(u64, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| (error["index"].as_u64().unwrap(), error["code"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(3, "invalid_event"), (4, "unknown_contact"), (5, "invalid_event"), (6, "invalid_event")]);
    assert!(body["errors"][3]["message"].as_str().unwrap().contains("occurred_at"));
    assert_eq!(app.contact_count().await, 2, "an event for an unknown email creates the contact");

    let again =
        json!({"events": [{"contact": {"email": "e@example.com"}, "type": "page_viewed", "message_id": "m-1"}]});
    let (_, body) = app.post("/api/v1/events", again).await;
    assert_eq!((body["accepted"].clone(), body["duplicates"].clone()), (json!(1), json!(1)));

    let (_, timeline) = app.get(&format!("/api/v1/contacts/{known_id}/timeline")).await;
    let events: Vec<&Value> =
        timeline["items"].as_array().unwrap().iter().filter(|item| item["kind"] == "event").collect();
    assert_eq!(events.len(), 2, "the duplicate was stored once");
    assert_eq!(events[1]["data"]["type"], "page_viewed", "newest first: the May event is older");
    assert_eq!(events[1]["at"], "2026-05-01T01:30:00Z");
    assert_eq!(events[1]["data"]["properties"]["url"], "https://x.example/pricing");

    let (status, body) = app.post("/api/v1/events", json!({"events": []})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "events"));
}

async fn erasure_removes_the_person(app: &TestApp) {
    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "gone@example.com", "tags": ["x/y"]})).await;
    let id = contact["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .post(
            "/api/v1/events",
            json!({"events": [{"contact": {"id": id}, "type": "page_viewed", "message_id": "erase-1"}]}),
        )
        .await;
    assert_eq!(body["accepted"], 1);
    let (status, _) = app.delete(&format!("/api/v1/contacts/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&format!("/api/v1/contacts/{id}/timeline")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, found) = app.get("/api/v1/contacts?email=gone%40example.com").await;
    assert_eq!(found["items"], json!([]));
    let (status, _) = app.delete(&format!("/api/v1/contacts/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The same email is free again and starts with no history.
    let (status, fresh) = app.post("/api/v1/contacts", json!({"email": "gone@example.com"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{}/timeline", fresh["id"].as_str().unwrap())).await;
    assert_eq!(timeline["items"], json!([]));
}

async fn pagination_walks_every_contact_once(app: &TestApp) {
    let contacts: Vec<Value> = (0..120).map(|i| json!({"email": format!("p{i}@example.com")})).collect();
    app.post("/api/v1/contacts/batch", json!({"contacts": contacts})).await;
    let mut seen = std::collections::HashSet::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/contacts?limit=50&cursor={cursor}"),
            None => "/api/v1/contacts?limit=50".to_owned(),
        };
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        for item in items {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()), "a contact came twice");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(seen.len(), 120);

    // The most recently updated contact comes first.
    app.post("/api/v1/contacts", json!({"email": "p7@example.com", "city": "厦门"})).await;
    let (_, first) = app.get("/api/v1/contacts?limit=1").await;
    assert_eq!(first["items"][0]["email"], "p7@example.com");

    let (status, body) = app.get("/api/v1/contacts?cursor=garbage").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_cursor"));
    let (status, body) = app.get("/api/v1/contacts?limit=0").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (status, body) = app.get("/api/v1/contacts?colour=red").await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "invalid_query"));
}

async fn malformed_requests_get_clear_errors(app: &TestApp) {
    let url = format!("{}/api/v1/contacts", app.base);
    let response =
        app.client.post(&url).bearer_auth(OWNER_TOKEN).body("{\"email\": \"a@example.com\"}").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "unsupported_media_type");

    let response = app
        .client
        .post(&url)
        .bearer_auth(OWNER_TOKEN)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_json");

    let huge = "x".repeat(rapport_http::MAX_BODY_BYTES + 1);
    let response = app
        .client
        .post(&url)
        .bearer_auth(OWNER_TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"email\": \"{huge}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "payload_too_large");

    let (status, body) = app.get("/api/v1/nothing-here").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "route_not_found"));
    let (status, body) = app.call_as(OWNER_TOKEN, Method::PUT, "/api/v1/contacts", Some(json!({}))).await;
    assert_eq!((status, error_code(&body)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert_eq!(app.contact_count().await, 0);
}

async fn users_and_api_keys(app: &TestApp) {
    let user =
        json!({"email": "rep@example.com", "name": "小王", "role": "sales_rep", "password": "a long enough password"});
    let (status, created) = app.post("/api/v1/users", user.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("password_hash").is_none() && created.get("password").is_none());
    let (status, body) = app.post("/api/v1/users", user).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "user_exists"));
    let (status, body) = app
        .post("/api/v1/users", json!({"email": "x@example.com", "name": "x", "role": "viewer", "password": "short"}))
        .await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "password"));

    let user_id = created["id"].as_str().unwrap().to_owned();
    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "owned@example.com", "owner_id": user_id})).await;
    assert_eq!(contact["owner_id"], user_id.as_str());
    let (status, _) = app.delete(&format!("/api/v1/users/{user_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, contact) = app.get(&format!("/api/v1/contacts/{}", contact["id"].as_str().unwrap())).await;
    assert_eq!(contact["owner_id"], Value::Null, "a removed user's contacts become unowned");

    let admin = app.key_in(app.workspace, Role::Admin).await;
    let (status, body) =
        app.call_as(&admin, Method::POST, "/api/v1/api-keys", Some(json!({"name": "x", "role": "owner"}))).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "role"));
    let (status, key) =
        app.call_as(&admin, Method::POST, "/api/v1/api-keys", Some(json!({"name": "网站", "role": "marketer"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let token = key["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with(key["prefix"].as_str().unwrap()));
    let (status, _) = app.call_as(&token, Method::GET, "/api/v1/contacts", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, keys) = app.get("/api/v1/api-keys").await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|key| key.get("token").is_none() && key.get("token_hash").is_none())
    );
    let (status, revoked) = app.delete(&format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string());
    let (status, _) = app.call_as(&token, Method::GET, "/api/v1/contacts", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn companies_link_contacts(app: &TestApp) {
    let (status, company) = app
        .post(
            "/api/v1/companies",
            json!({"name": "示例科技", "domain": "https://www.Example.cn/about", "industry": "制造业"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{company}");
    assert_eq!(company["domain"], "example.cn");
    let (status, body) = app.post("/api/v1/companies", json!({"name": "Copy", "domain": "example.cn"})).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "company_exists"));
    let (status, body) = app.post("/api/v1/companies", json!({"domain": "other.cn"})).await;
    assert_eq!((status, first_error_field(&body)), (StatusCode::BAD_REQUEST, "name"));
    let (_, found) = app.get("/api/v1/companies?domain=EXAMPLE.cn").await;
    assert_eq!(found["items"][0]["id"], company["id"]);

    let company_id = company["id"].as_str().unwrap().to_owned();
    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "c@example.cn", "company_id": company_id})).await;
    assert_eq!(contact["company_id"], company_id.as_str());
    let (_, fetched) = app.get(&format!("/api/v1/companies/{company_id}")).await;
    assert_eq!(fetched["contact_count"], 1);
    let (status, _) = app.delete(&format!("/api/v1/companies/{company_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, contact) = app.get(&format!("/api/v1/contacts/{}", contact["id"].as_str().unwrap())).await;
    assert_eq!(contact["company_id"], Value::Null);
}

async fn tenant_isolation(app: &TestApp) {
    // Workspace A (default) has data; workspace B's owner key must see none of it.
    let (_, contact) = app.post("/api/v1/contacts", json!({"email": "a@example.com", "tags": ["A/secret"]})).await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    let (_, company) = app.post("/api/v1/companies", json!({"name": "A Co", "domain": "a.example"})).await;
    let (_, field) = app.post("/api/v1/fields", json!({"key": "secret", "label": "S", "type": "text"})).await;
    let (_, template) = app.post("/api/v1/note-templates", json!({"name": "t", "body": "b"})).await;
    let (_, user) = app
        .post(
            "/api/v1/users",
            json!({"email": "u@example.com", "name": "U", "role": "viewer", "password": "long enough password"}),
        )
        .await;
    let (_, key) = app.post("/api/v1/api-keys", json!({"name": "k"})).await;
    let (_, tags) = app.get("/api/v1/tags").await;
    let tag_id = tags["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, note) = app.post(&format!("/api/v1/contacts/{contact_id}/notes"), json!({"body": "私密"})).await;

    let (_, other) = app.other_workspace("agency_b").await;
    let id = |value: &Value| value["id"].as_str().unwrap().to_owned();
    let not_found = [
        (Method::GET, format!("/api/v1/contacts/{contact_id}"), None),
        (Method::PATCH, format!("/api/v1/contacts/{contact_id}"), Some(json!({"city": "x"}))),
        (Method::DELETE, format!("/api/v1/contacts/{contact_id}"), None),
        (Method::GET, format!("/api/v1/contacts/{contact_id}/timeline"), None),
        (Method::POST, format!("/api/v1/contacts/{contact_id}/tags"), Some(json!({"tags": ["x"]}))),
        (Method::DELETE, format!("/api/v1/contacts/{contact_id}/tags"), Some(json!({"tags": ["A/secret"]}))),
        (Method::POST, format!("/api/v1/contacts/{contact_id}/notes"), Some(json!({"body": "x"}))),
        (Method::DELETE, format!("/api/v1/contacts/{contact_id}/notes/{}", id(&note)), None),
        (Method::GET, format!("/api/v1/companies/{}", id(&company)), None),
        (Method::PATCH, format!("/api/v1/companies/{}", id(&company)), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/v1/companies/{}", id(&company)), None),
        (Method::GET, format!("/api/v1/fields/{}", id(&field)), None),
        (Method::PATCH, format!("/api/v1/fields/{}", id(&field)), Some(json!({"label": "x"}))),
        (Method::DELETE, format!("/api/v1/fields/{}", id(&field)), None),
        (Method::GET, format!("/api/v1/tags/{tag_id}"), None),
        (Method::PATCH, format!("/api/v1/tags/{tag_id}"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/v1/tags/{tag_id}"), None),
        (Method::GET, format!("/api/v1/note-templates/{}", id(&template)), None),
        (Method::PUT, format!("/api/v1/note-templates/{}", id(&template)), Some(json!({"name": "x", "body": "y"}))),
        (Method::DELETE, format!("/api/v1/note-templates/{}", id(&template)), None),
        (Method::GET, format!("/api/v1/users/{}", id(&user)), None),
        (Method::PATCH, format!("/api/v1/users/{}", id(&user)), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/v1/users/{}", id(&user)), None),
        (Method::GET, format!("/api/v1/api-keys/{}", id(&key)), None),
        (Method::DELETE, format!("/api/v1/api-keys/{}", id(&key)), None),
    ];
    for (method, path, body) in not_found {
        let (status, response) = app.call_as(&other, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path} from another workspace: {response}");
    }
    let empty_lists = [
        "/api/v1/contacts",
        "/api/v1/contacts?email=a%40example.com",
        "/api/v1/companies",
        "/api/v1/companies?domain=a.example",
        "/api/v1/fields",
        "/api/v1/tags",
        "/api/v1/note-templates",
    ];
    for path in empty_lists {
        let (status, body) = app.call_as(&other, Method::GET, path, None).await;
        assert_eq!((status, body["items"].clone()), (StatusCode::OK, json!([])), "{path}");
    }
    let (_, users) = app.call_as(&other, Method::GET, "/api/v1/users", None).await;
    assert_eq!(users["items"], json!([]));
    // Referencing A's records from B is refused, and B's same-email contact is a different person.
    let (status, body) = app
        .call_as(
            &other,
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"email": "b@example.com", "company_id": id(&company)})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "unknown_company"));
    let (status, body) = app
        .call_as(
            &other,
            Method::POST,
            "/api/v1/contacts",
            Some(json!({"email": "b@example.com", "owner_id": id(&user)})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "unknown_owner"));
    let (status, theirs) =
        app.call_as(&other, Method::POST, "/api/v1/contacts", Some(json!({"email": "a@example.com"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(theirs["id"], contact["id"]);
    let (_, body) = app
        .call_as(
            &other,
            Method::POST,
            "/api/v1/events",
            Some(json!({"events": [{"contact": {"id": contact_id}, "type": "x"}]})),
        )
        .await;
    assert_eq!(body["errors"][0]["code"], "unknown_contact");

    // A's data is untouched.
    let (_, mine) = app.get(&format!("/api/v1/contacts/{contact_id}")).await;
    assert_eq!((mine["tags"].clone(), mine["city"].clone()), (json!(["A/secret"]), Value::Null));
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{contact_id}/timeline")).await;
    assert!(timeline["items"].as_array().unwrap().iter().all(|item| item["kind"] != "event"));
}

/// A contact field whose merge rule is `oldest` keeps the earlier created contact's value, whichever contact
/// survives; other fields keep the most recently updated contact's value; empty values never win.
async fn merge_rules_per_field(app: &TestApp) {
    let field = |key: &str, rule: Option<&str>| {
        let mut body = json!({"key": key, "label": key, "type": "text"});
        if let Some(rule) = rule {
            body["merge_rule"] = json!(rule);
        }
        body
    };
    let (status, first_touch) = app.post("/api/v1/fields", field("first_touch", Some("oldest"))).await;
    assert_eq!((status, first_touch["merge_rule"].as_str()), (StatusCode::CREATED, Some("oldest")), "{first_touch}");
    let (status, plan) = app.post("/api/v1/fields", field("plan", None)).await;
    assert_eq!((status, plan["merge_rule"].as_str()), (StatusCode::CREATED, Some("latest")), "{plan}");
    let (status, region) = app.post("/api/v1/fields", field("region", Some("latest"))).await;
    assert_eq!(status, StatusCode::CREATED, "{region}");
    let region_path = format!("/api/v1/fields/{}", region["id"].as_str().unwrap());
    let (status, region) = app.patch(&region_path, json!({"merge_rule": "oldest"})).await;
    assert_eq!((status, region["merge_rule"].as_str()), (StatusCode::OK, Some("oldest")), "{region}");

    for (body, field) in [
        (json!({"key": "tier", "label": "Tier", "type": "text", "merge_rule": "first"}), "merge_rule"),
        (
            json!({"key": "tier", "label": "Tier", "type": "text", "entity": "company", "merge_rule": "oldest"}),
            "merge_rule",
        ),
    ] {
        let (status, error) = app.post("/api/v1/fields", body).await;
        assert_eq!((status, first_error_field(&error)), (StatusCode::BAD_REQUEST, field), "{error}");
    }
    let (status, error) = app.patch(&region_path, json!({"merge_rule": "newest"})).await;
    assert_eq!((status, first_error_field(&error)), (StatusCode::BAD_REQUEST, "merge_rule"), "{error}");
    let (_, listed) = app.get("/api/v1/fields").await;
    assert!(listed["items"].as_array().unwrap().iter().all(|item| item["key"] != "tier"), "{listed}");

    let (status, older) = app
        .post(
            "/api/v1/contacts",
            json!({"email": "old@example.com", "fields": {"first_touch": "展会", "plan": "free", "region": ""}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{older}");
    let (status, newer) = app
        .post(
            "/api/v1/contacts",
            json!({"email": "new@example.com", "fields": {"first_touch": "webinar", "plan": "pro", "region": "华东"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{newer}");
    let path = format!("/api/v1/contacts/{}/merge", newer["id"].as_str().unwrap());
    let (status, merged) = app.post(&path, json!({"absorb": older["id"]})).await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["fields"], json!({"first_touch": "展会", "plan": "pro", "region": "华东"}), "{merged}");
    assert_eq!(merged["created_at"], older["created_at"], "{merged}");
}

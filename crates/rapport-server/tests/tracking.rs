//! The Segment-compatible tracking API: the official Python and Node clients, unmodified, against the real server,
//! then the results read back through the REST API; and the API's edges (auth, limits, partial batches, pixel).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use common::{TestApp, e2e_enabled};
use reqwest::StatusCode;
use serde_json::{Value, json};

api_tests!(
    official_python_client,
    official_node_client,
    write_keys_and_auth,
    batches_store_the_valid_and_report_the_rest,
    size_limits,
    clock_skew_and_idempotency,
    beacon_gzip_and_pixel,
    anonymous_history_joins_the_identified_contact,
);

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

async fn source(app: &TestApp, auto_create_fields: bool) -> String {
    let (status, source) = app
        .post("/api/v1/sources", json!({"name": "官网", "kind": "website", "auto_create_fields": auto_create_fields}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    source["write_key"].as_str().unwrap().to_owned()
}

async fn track(app: &TestApp, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    let response =
        app.client.post(format!("{}{path}", app.base)).basic_auth(key, Some("")).json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn contact_by(app: &TestApp, query: &str) -> Value {
    let (status, found) = app.get(&format!("/api/v1/contacts?{query}")).await;
    assert_eq!(status, StatusCode::OK);
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "exactly one contact for {query}: {found}");
    items[0].clone()
}

async fn timeline_lines(app: &TestApp, id: &str) -> Vec<String> {
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline?limit=200")).await;
    timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| match item["kind"].as_str().unwrap() {
            "event" => format!("event {}", item["data"]["type"].as_str().unwrap()),
            kind => kind.to_owned(),
        })
        .collect()
}

fn identities(contact: &Value) -> Vec<String> {
    let mut identities: Vec<String> = contact["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|identity| format!("{}={}", identity["kind"].as_str().unwrap(), identity["value"].as_str().unwrap()))
        .collect();
    identities.sort();
    identities
}

async fn official_python_client(app: &TestApp) {
    if !e2e_enabled("official_python_client") {
        return;
    }
    let key = source(app, true).await;
    let output =
        Command::new("python3").arg(clients_dir().join("segment_python.py")).args([&app.base, &key]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let person = contact_by(app, "user_id=py-user-1").await;
    assert_eq!(
        (&person["email"], &person["first_name"], &person["last_name"], &person["title"], &person["company_name"]),
        (&json!("py.user@example.com"), &json!("Lei"), &json!("Li"), &json!("采购经理"), &json!("示例科技"))
    );
    assert_eq!(person["fields"]["plan_type"], "pro", "an unknown trait became a text field");
    assert_eq!(
        identities(&person),
        [
            "anonymous_id=py-anon-1",
            "email=legacy@example.com",
            "email=py.user@example.com",
            "user_id=py-legacy-7",
            "user_id=py-user-1"
        ]
    );
    // The legacy contact was merged away by the alias; its email finds the survivor.
    assert_eq!(contact_by(app, "email=legacy%40example.com").await["id"], person["id"]);
    assert_eq!(app.contact_count().await, 1);

    let company_id = person["company_id"].as_str().expect("group linked a company");
    let (_, company) = app.get(&format!("/api/v1/companies/{company_id}")).await;
    assert_eq!((&company["name"], &company["domain"]), (&json!("示例科技"), &json!("example-tech.cn")));

    let id = person["id"].as_str().unwrap();
    let lines = timeline_lines(app, id).await;
    for expected in ["event page_viewed", "event Whitepaper Downloaded", "event Demo Requested", "merged"] {
        assert!(lines.contains(&expected.to_owned()), "timeline lacks {expected}: {lines:?}");
    }
    assert_eq!(lines.iter().filter(|line| *line == "event Demo Requested").count(), 1, "messageId deduplicates");
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline?limit=200")).await;
    let demo = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["data"]["type"] == "Demo Requested")
        .unwrap()
        .clone();
    assert_eq!(demo["at"], "2026-03-01T08:00:00Z");
    assert_eq!(demo["data"]["properties"]["seats"], 25);
    let page = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["data"]["type"] == "page_viewed")
        .unwrap()
        .clone();
    assert_eq!(
        (&page["data"]["properties"]["name"], &page["data"]["properties"]["path"]),
        (&json!("Pricing"), &json!("/pricing"))
    );
}

async fn official_node_client(app: &TestApp) {
    if !e2e_enabled("official_node_client") {
        return;
    }
    let key = source(app, false).await;
    let output =
        Command::new("node").arg(clients_dir().join("segment_node.mjs")).args([&app.base, &key]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let person = contact_by(app, "user_id=node-user-1").await;
    assert_eq!(
        (&person["email"], &person["first_name"], &person["city"]),
        (&json!("node.user@example.com"), &json!("王小明"), &json!("深圳"))
    );
    assert_eq!(identities(&person), ["anonymous_id=node-anon-1", "email=node.user@example.com", "user_id=node-user-1"]);
    let lines = timeline_lines(app, person["id"].as_str().unwrap()).await;
    for expected in ["event page_viewed", "event Webinar Registered", "event screen_viewed"] {
        assert!(lines.contains(&expected.to_owned()), "timeline lacks {expected}: {lines:?}");
    }
    let company_id = person["company_id"].as_str().expect("group linked a company");
    let (_, company) = app.get(&format!("/api/v1/companies/{company_id}")).await;
    assert_eq!(company["name"], "Node 科技");
    assert_eq!(app.contact_count().await, 1);
}

async fn write_keys_and_auth(app: &TestApp) {
    let key = source(app, false).await;
    let message = json!({"userId": "u1", "event": "Signed Up"});
    let response = app.client.post(format!("{}/v1/track", app.base)).json(&message).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = track(app, "/v1/track", "wk_unknown", message.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_write_key")));
    let (status, body) = track(app, "/v1/track", &key, message.clone()).await;
    assert_eq!((status, body["success"].as_bool()), (StatusCode::OK, Some(true)));
    // The write key may travel in the body instead.
    let response = app
        .client
        .post(format!("{}/v1/track", app.base))
        .json(&json!({"userId": "u1", "event": "Logged In", "writeKey": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (_, sources) = app.get("/api/v1/sources").await;
    let id = sources["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, rotated) = app.post(&format!("/api/v1/sources/{id}/rotate-key"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let new_key = rotated["write_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    let (status, _) = track(app, "/v1/track", &key, message.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old key stops working");
    let (status, _) = track(app, "/v1/track", &new_key, message.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, revoked) = app.delete(&format!("/api/v1/sources/{id}"), None).await;
    assert_eq!((status, revoked["revoked_at"].is_string()), (StatusCode::OK, true));
    let (status, _) = track(app, "/v1/track", &new_key, message).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let person = contact_by(app, "user_id=u1").await;
    let lines = timeline_lines(app, person["id"].as_str().unwrap()).await;
    assert_eq!(lines, ["event Signed Up", "event Logged In", "event Signed Up"]);
}

async fn batches_store_the_valid_and_report_the_rest(app: &TestApp) {
    let key = source(app, false).await;
    let batch = json!({"batch": [
        {"type": "track", "userId": "b1", "event": "Viewed", "messageId": "b-1"},
        {"type": "track", "userId": "b1"},
        {"type": "identify", "userId": "b1", "traits": {"email": "b1@example.com", "favourite": "blue"}},
        {"type": "teleport", "userId": "b1"},
        {"type": "page", "anonymousId": "b-anon", "name": "Home"},
        {"type": "alias", "userId": "b1"},
        "not an object",
    ]});
    let (status, body) = track(app, "/v1/batch", &key, batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 3);
    let errors: Vec<u64> =
        body["errors"].as_array().unwrap().iter().map(|error| error["index"].as_u64().unwrap()).collect();
    assert_eq!(errors, [1, 3, 5, 6]);
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("event name"));
    assert_eq!(body["warnings"][0]["trait"], "favourite", "an unknown trait is reported, not stored: {body}");
    let person = contact_by(app, "user_id=b1").await;
    assert_eq!((&person["email"], &person["fields"]), (&json!("b1@example.com"), &json!({})));
    assert_eq!(app.contact_count().await, 2, "b1 and the anonymous visitor");

    let (status, body) = track(app, "/v1/track", &key, json!({"userId": "b1"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_message")));
    let (status, body) = track(app, "/v1/batch", &key, json!({"events": []})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
}

async fn size_limits(app: &TestApp) {
    let key = source(app, false).await;
    let big = "x".repeat(33 * 1024);
    let (status, body) =
        track(app, "/v1/track", &key, json!({"userId": "s1", "event": "Big", "properties": {"blob": big}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("message_too_large")));
    let within = "y".repeat(20 * 1024);
    let messages: Vec<Value> = (0..30)
        .map(|i| json!({"type": "track", "userId": "s1", "event": format!("E{i}"), "properties": {"blob": within}}))
        .collect();
    let (status, body) = track(app, "/v1/batch", &key, json!({"batch": messages})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("request_too_large")));
    let mixed = json!({"batch": [
        {"type": "track", "userId": "s1", "event": "Small"},
        {"type": "track", "userId": "s1", "event": "Big", "properties": {"blob": "z".repeat(33 * 1024)}},
    ]});
    let (status, body) = track(app, "/v1/batch", &key, mixed).await;
    assert_eq!(
        (status, body["accepted"].clone(), body["errors"][0]["index"].clone()),
        (StatusCode::OK, json!(1), json!(1))
    );
    let person = contact_by(app, "user_id=s1").await;
    assert_eq!(timeline_lines(app, person["id"].as_str().unwrap()).await, ["event Small"]);
}

async fn clock_skew_and_idempotency(app: &TestApp) {
    let key = source(app, false).await;
    let now = chrono::Utc::now();
    // The device clock runs an hour fast.
    let fast = now + chrono::Duration::hours(1);
    let sent_at = fast.to_rfc3339();
    let original = (fast - chrono::Duration::seconds(30)).to_rfc3339();
    let message = json!({"userId": "c1", "event": "Clicked", "originalTimestamp": original, "sentAt": sent_at, "messageId": "skew-1"});
    for _ in 0..3 {
        let (status, _) = track(app, "/v1/track", &key, message.clone()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let person = contact_by(app, "user_id=c1").await;
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{}/timeline", person["id"].as_str().unwrap())).await;
    let items = timeline["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the same messageId is stored once");
    let at = chrono::DateTime::parse_from_rfc3339(items[0]["at"].as_str().unwrap()).unwrap();
    let expected = now - chrono::Duration::seconds(30);
    let drift = (at.with_timezone(&chrono::Utc) - expected).num_seconds().abs();
    assert!(drift <= 5, "corrected to about 30 s before arrival, got {at} (expected ≈ {expected})");
}

async fn beacon_gzip_and_pixel(app: &TestApp) {
    let key = source(app, false).await;
    // navigator.sendBeacon sends text/plain with the key in the body.
    let beacon =
        json!({"batch": [{"type": "track", "anonymousId": "beacon-1", "event": "Left Page"}], "writeKey": key});
    let response = app
        .client
        .post(format!("{}/v1/batch", app.base))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(beacon.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(json!({"anonymousId": "beacon-1", "event": "Zipped"}).to_string().as_bytes()).unwrap();
    let response = app
        .client
        .post(format!("{}/v1/track", app.base))
        .basic_auth(&key, Some(""))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .encode(json!({"writeKey": key, "anonymousId": "beacon-1", "event": "Email Opened", "properties": {"campaign": "春季"}}).to_string());
    let response =
        app.client.get(format!("{}/v1/pixel/track?data={}", app.base, urlencode(&data))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/gif");
    assert_eq!(&response.bytes().await.unwrap()[..6], b"GIF89a");
    let response = app.client.get(format!("{}/v1/pixel/track?data=%%%", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let (_, all) = app.get("/api/v1/contacts").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "one anonymous visitor: {all}");
    let lines = timeline_lines(app, all["items"][0]["id"].as_str().unwrap()).await;
    assert_eq!(lines, ["event Email Opened", "event Zipped", "event Left Page"]);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

async fn anonymous_history_joins_the_identified_contact(app: &TestApp) {
    let key = source(app, false).await;
    let (_, known) = app.post("/api/v1/contacts", json!({"email": "known@example.com", "first_name": "旧"})).await;
    for event in ["Viewed Pricing", "Viewed Docs"] {
        track(app, "/v1/track", &key, json!({"anonymousId": "anon-9", "event": event})).await;
    }
    assert_eq!(app.contact_count().await, 2);
    // The visitor identifies with an email that belongs to the known contact: one person.
    let (status, _) = track(
        app,
        "/v1/identify",
        &key,
        json!({"userId": "crm-9", "anonymousId": "anon-9", "traits": {"email": "known@example.com", "firstName": "新"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.contact_count().await, 1);
    let person = contact_by(app, "email=known%40example.com").await;
    assert_eq!(person["first_name"], "新", "the identify is the most recent value");
    assert_eq!(identities(&person), ["anonymous_id=anon-9", "email=known@example.com", "user_id=crm-9"]);
    let lines = timeline_lines(app, person["id"].as_str().unwrap()).await;
    assert!(
        lines.contains(&"event Viewed Pricing".to_owned()) && lines.contains(&"event Viewed Docs".to_owned()),
        "{lines:?}"
    );
    assert!(lines.contains(&"merged".to_owned()), "{lines:?}");
    // Both former ids answer with the survivor.
    for former in [known["id"].as_str().unwrap(), person["id"].as_str().unwrap()] {
        let (status, found) = app.get(&format!("/api/v1/contacts/{former}")).await;
        assert_eq!((status, &found["id"]), (StatusCode::OK, &person["id"]), "{former}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_429_and_writes_nothing() {
    let app =
        TestApp::sqlite_with(rapport_engine::IngestConfig { max_pending_messages: 0, max_batch_messages: 10 }).await;
    let key = source(&app, false).await;
    let (status, body) = track(&app, "/v1/track", &key, json!({"userId": "o1", "event": "Busy"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("overloaded")));
    let response = app
        .client
        .post(format!("{}/v1/track", app.base))
        .basic_auth(&key, Some(""))
        .json(&json!({"userId": "o1", "event": "Busy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(app.contact_count().await, 0);
}

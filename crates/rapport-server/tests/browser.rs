//! The website tracker where it runs: `GET /rapport.js` and the snippet the sources API shows, then headless
//! Chromium on a customer's site (another origin) embedding that snippet — a page view with a campaign, a click, a
//! sign-up form and leaving the page — with the result read back through the REST API. Then hosted forms the same
//! way: a form embedded on the customer's site beside the tracker, and the hosted page without JavaScript.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use common::{TestApp, e2e_enabled};
use reqwest::StatusCode;
use serde_json::{Value, json};

api_tests!(tracker_script_and_snippet, website_tracker_in_chromium, hosted_form_in_chromium);

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn create_source(app: &TestApp, body: Value) -> Value {
    let (status, source) = app.post("/api/v1/sources", body).await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    source
}

async fn tracker_script_and_snippet(app: &TestApp) {
    let url = format!("{}/rapport.js", app.base);
    let response = app.client.get(&url).header("accept-encoding", "gzip, deflate, br").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/javascript; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert_eq!(headers["content-encoding"], "gzip");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let mut script = String::new();
    flate2::read::GzDecoder::new(&response.bytes().await.unwrap()[..]).read_to_string(&mut script).unwrap();
    assert!(script.starts_with("/*! rapport.js"), "{}", &script[..80]);

    let plain = app.client.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.text().await.unwrap(), script);
    let revalidated =
        app.client.get(&url).header("accept-encoding", "gzip").header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    let source = create_source(app, json!({"name": "官网", "kind": "website"})).await;
    let snippet = source["snippet"].as_str().unwrap();
    let key = source["write_key"].as_str().unwrap();
    assert!(snippet.contains(&format!(r#"s.src="{}/rapport.js""#, app.base)), "{snippet}");
    assert!(snippet.contains(&format!(r#"rapport.load("{key}", {{host: "{}"}});"#, app.base)), "{snippet}");
    let private = create_source(app, json!({"name": "隐私", "kind": "website", "honor_dnt": true})).await;
    assert!(private["snippet"].as_str().unwrap().contains("respectDnt: true"), "{private}");
    let (_, listed) = app.get("/api/v1/sources").await;
    let listed = listed["items"].as_array().unwrap().iter().find(|item| item["id"] == source["id"]).unwrap();
    assert_eq!(listed["snippet"], source["snippet"]);
}

async fn website_tracker_in_chromium(app: &TestApp) {
    if !e2e_enabled("website_tracker_in_chromium") {
        return;
    }
    let source = create_source(app, json!({"name": "官网", "kind": "website"})).await;
    let private = create_source(app, json!({"name": "隐私", "kind": "website", "honor_dnt": true})).await;
    let artefacts = repository().join("target/e2e-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    // Both backends run at once: each writes its own file, and the last one is renamed into place whole.
    let screenshot =
        artefacts.join(format!("tracker-{}-{}.png", std::process::id(), app.base.rsplit(':').next().unwrap()));
    let mut command = Command::new("node");
    command
        .arg(repository().join("tests/browser/tracker.mjs"))
        .args([&app.base, source["write_key"].as_str().unwrap()])
        .env("RAPPORT_SNIPPET", source["snippet"].as_str().unwrap())
        .env("RAPPORT_DNT_SNIPPET", private["snippet"].as_str().unwrap())
        .env("RAPPORT_SCREENSHOT", &screenshot);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    std::fs::rename(&screenshot, artefacts.join("tracker.png")).unwrap();
    let visit: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let anonymous_id = visit["anonymousId"].as_str().unwrap();

    // The visitor who signed up is one contact, the private site's visitor none.
    let (_, found) = app.get("/api/v1/contacts?user_id=web-user-1").await;
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{found}");
    let person = &items[0];
    assert_eq!((&person["email"], &person["first_name"]), (&json!("web@example.com"), &json!("Web")));
    let mut identities: Vec<String> = person["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|identity| format!("{}={}", identity["kind"].as_str().unwrap(), identity["value"].as_str().unwrap()))
        .collect();
    identities.sort();
    assert_eq!(
        identities,
        [format!("anonymous_id={anonymous_id}"), "email=web@example.com".to_owned(), "user_id=web-user-1".to_owned()]
    );
    assert_eq!(app.contact_count().await, 1, "nothing arrived from the browser with Do-Not-Track on");

    // Its timeline holds what it did while still anonymous, each message once although the unload beacon may
    // repeat what a fetch already delivered.
    let (_, timeline) =
        app.get(&format!("/api/v1/contacts/{}/timeline?limit=200", person["id"].as_str().unwrap())).await;
    let events: Vec<&Value> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["kind"] == "event")
        .map(|item| &item["data"])
        .collect();
    let only = |event_type: &str| {
        let matching: Vec<&&Value> = events.iter().filter(|event| event["type"] == event_type).collect();
        assert_eq!(matching.len(), 1, "one {event_type} in {timeline}");
        (*matching[0]).clone()
    };
    let page = only("page_viewed");
    let properties = &page["properties"];
    assert!(
        properties["url"].as_str().unwrap().starts_with("http://127.0.0.1:")
            && properties["url"].as_str().unwrap().ends_with("/pricing?utm_source=wechat&utm_campaign=spring"),
        "{page}"
    );
    assert_eq!(
        (&properties["path"], &properties["search"], &properties["title"]),
        (&json!("/pricing"), &json!("?utm_source=wechat&utm_campaign=spring"), &json!("Pricing | Example Co")),
    );
    let referrer = properties["referrer"].as_str().unwrap();
    assert!(referrer.starts_with("http://127.0.0.1:") && referrer.ends_with('/'), "{page}");
    assert_ne!(referrer, format!("{}/", app.base), "the site is another origin than Rapport");
    let context = &page["context"];
    assert_eq!(context["campaign"], json!({"source": "wechat", "name": "spring"}));
    assert_eq!(context["library"]["name"], "rapport.js");
    assert!(context["userAgent"].as_str().unwrap().contains("Chrome"), "{context}");
    assert!(context["timezone"].is_string() && context["locale"].is_string(), "{context}");

    let demo = only("Demo Requested");
    assert_eq!(demo["properties"], json!({"plan": "pro"}));
    assert_eq!(demo["context"]["page"]["path"], "/pricing");
    for event in [&page, &demo] {
        let message_id = event["message_id"].as_str().unwrap();
        let groups: Vec<usize> = message_id.split('-').map(str::len).collect();
        assert_eq!((groups, &message_id[14..15]), (vec![8, 4, 4, 4, 12], "4"), "a UUID v4: {message_id}");
    }
}

async fn hosted_form_in_chromium(app: &TestApp) {
    if !e2e_enabled("hosted_form_in_chromium") {
        return;
    }
    let site = create_source(app, json!({"name": "官网", "kind": "website"})).await;
    let (status, field) = app
        .post(
            "/api/v1/fields",
            json!({"key": "plan", "label": "版本", "type": "single_select", "options": ["pro", "team"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{field}");
    let definition = json!({
        "title": {"zh-CN": "预约演示", "en": "Book a demo"},
        "fields": [
            {"key": "name", "type": "text", "label": {"zh-CN": "姓名", "en": "Name"}, "required": true, "maps_to": "name"},
            {"key": "email", "type": "email", "label": {"zh-CN": "邮箱", "en": "Email"}, "required": true, "maps_to": "email"},
            {"key": "plan", "type": "select", "label": {"zh-CN": "版本", "en": "Plan"}, "maps_to": "fields.plan",
             "options": [{"value": "pro", "label": {"zh-CN": "专业版", "en": "Pro"}}, {"value": "team"}]},
            {"key": "email_consent", "type": "consent", "channel": "email", "required": true,
             "text": {"zh-CN": "我同意接收营销邮件。", "en": "I agree to receive marketing email."}}
        ],
        "after_submit": {"message": {"zh-CN": "谢谢！我们会尽快联系您。", "en": "Thank you! We will be in touch."}}
    });
    let (status, form) = app.post("/api/v1/forms", json!({"name": "Demo", "definition": definition})).await;
    assert_eq!(status, StatusCode::CREATED, "{form}");
    let form_id = form["id"].as_str().unwrap();

    let artefacts = repository().join("target/e2e-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot =
        artefacts.join(format!("forms-{}-{}.png", std::process::id(), app.base.rsplit(':').next().unwrap()));
    let mut command = Command::new("node");
    command
        .arg(repository().join("tests/browser/forms.mjs"))
        .args([&app.base, form_id])
        .env("RAPPORT_SNIPPET", site["snippet"].as_str().unwrap())
        .env("RAPPORT_EMBED", form["embed"].as_str().unwrap())
        .env("RAPPORT_SCREENSHOT", &screenshot);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for (suffix, name) in [("", "forms.png"), ("-error", "forms-error.png"), ("-hosted", "forms-hosted.png")] {
        let taken = screenshot.with_file_name(
            screenshot.file_name().unwrap().to_str().unwrap().replace(".png", &format!("{suffix}.png")),
        );
        std::fs::rename(taken, artefacts.join(name)).unwrap();
    }
    let visit: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let anonymous_id = visit["anonymousId"].as_str().unwrap();

    // The embedded form's visitor: one contact with the browser's anonymous id, its anonymous page views, the
    // submission and the consent with its proof.
    let (_, found) = app.get("/api/v1/contacts?email=browser@example.com").await;
    let person = &found["items"][0];
    assert_eq!((&person["first_name"], &person["last_name"]), (&json!("浏览器"), &json!("测试")), "{found}");
    assert_eq!(person["fields"], json!({"plan": "pro"}));
    assert!(
        person["identities"].as_array().unwrap().iter().any(|identity| identity["value"] == anonymous_id),
        "the anonymous id joined the contact: {person}"
    );
    let id = person["id"].as_str().unwrap();
    let (_, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline?limit=200")).await;
    let items = timeline["items"].as_array().unwrap();
    let events: Vec<&Value> = items.iter().filter(|item| item["kind"] == "event").map(|item| &item["data"]).collect();
    let pages: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "page_viewed")
        .map(|event| event["properties"]["path"].as_str().unwrap())
        .collect();
    assert!(pages.contains(&"/") && pages.contains(&"/demo"), "the anonymous page views: {timeline}");
    let submitted: Vec<&&Value> = events.iter().filter(|event| event["type"] == "form_submitted").collect();
    assert_eq!(submitted.len(), 1, "the invalid attempt stored nothing: {timeline}");
    let properties = &submitted[0]["properties"];
    assert_eq!(properties["answers"]["email"], "browser@example.com");
    assert!(properties["page_url"].as_str().unwrap().ends_with("/demo?utm_source=newsletter"), "{properties}");
    assert!(submitted[0]["context"]["userAgent"].as_str().unwrap().contains("Chrome"));
    let (_, consents) = app.get(&format!("/api/v1/contacts/{id}/consents")).await;
    let current = &consents["current"][0];
    assert_eq!(
        (&current["channel"], &current["granted"], &current["text"]),
        (&json!("email"), &json!(true), &json!("我同意接收营销邮件。"))
    );
    assert_eq!(current["ip"], "127.0.0.1");
    assert!(current["user_agent"].as_str().unwrap().contains("Chrome"), "{consents}");

    // The visitor of the hosted page without JavaScript.
    let (_, found) = app.get("/api/v1/contacts?email=noscript@example.com").await;
    let person = &found["items"][0];
    assert_eq!(person["first_name"], "No");
    let (_, consents) = app.get(&format!("/api/v1/contacts/{}/consents", person["id"].as_str().unwrap())).await;
    assert_eq!(consents["current"][0]["text"], "I agree to receive marketing email.");
    let (_, form) = app.get(&format!("/api/v1/forms/{form_id}")).await;
    assert_eq!(form["submission_count"], 2);
}

//! Hosted forms against the real server on both stores: the API (definitions checked, nothing written on a bad
//! one), then visitors' submissions to `/f/{id}` as a plain HTML form and as the embed's JSON — the contact, the
//! `form_submitted` event, consent with its proof, the thank-you or redirect, errors in both languages, the
//! honeypot, the rate limit and double submissions — read back through the REST API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_TYPE, LOCATION, RETRY_AFTER, USER_AGENT};
use serde_json::{Value, json};

api_tests!(
    definitions_are_checked_and_bad_ones_write_nothing,
    forms_lifecycle,
    hosted_page_renders_escaped_in_both_languages,
    urlencoded_submission_creates_the_contact_event_and_consent,
    validation_errors_in_both_languages_store_nothing,
    json_submission_joins_the_anonymous_history_and_redirects,
    double_submission_is_stored_once,
    honeypot_stores_nothing,
    minimum_fill_time_drops_fast_submissions,
    rate_limit_answers_429,
);

/// A demo-request form: name, email, phone, company, a custom select, a hidden campaign and email consent.
fn demo_definition() -> Value {
    json!({
        "title": {"zh-CN": "预约演示", "en": "Book a demo"},
        "description": {"zh-CN": "我们会在一个工作日内联系您。", "en": "We will get back to you within a working day."},
        "fields": [
            {"key": "name", "type": "text", "label": {"zh-CN": "姓名", "en": "Name"}, "required": true, "maps_to": "name"},
            {"key": "email", "type": "email", "label": {"zh-CN": "邮箱", "en": "Email"}, "required": true, "maps_to": "email",
             "placeholder": {"en": "you@company.com"}},
            {"key": "phone", "type": "phone", "label": {"zh-CN": "手机", "en": "Mobile"}, "maps_to": "phone"},
            {"key": "company", "type": "text", "label": {"zh-CN": "公司", "en": "Company"}, "maps_to": "company"},
            {"key": "seats", "type": "number", "label": {"zh-CN": "席位数", "en": "Seats"}},
            {"key": "plan", "type": "select", "label": {"zh-CN": "版本", "en": "Plan"}, "maps_to": "fields.plan",
             "options": [{"value": "pro", "label": {"zh-CN": "专业版", "en": "Pro"}}, {"value": "team", "label": {"en": "Team"}}]},
            {"key": "topics", "type": "checkbox", "label": {"zh-CN": "感兴趣的内容", "en": "Topics"},
             "options": [{"value": "crm"}, {"value": "email"}]},
            {"key": "date", "type": "date", "label": {"en": "Preferred date"}},
            {"key": "notes", "type": "textarea", "label": {"zh-CN": "备注", "en": "Notes"}},
            {"key": "campaign", "type": "hidden", "default": "spring-2026"},
            {"key": "email_consent", "type": "consent", "channel": "email", "required": true,
             "text": {"zh-CN": "我同意接收 Rapport 的营销邮件。", "en": "I agree to receive marketing email from Rapport."}}
        ],
        "submit_label": {"zh-CN": "立即预约", "en": "Book now"},
        "after_submit": {"message": {"zh-CN": "谢谢！我们会尽快联系您。", "en": "Thank you! We will be in touch."}}
    })
}

async fn plan_field(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/v1/fields",
            json!({"key": "plan", "label": "版本", "type": "single_select", "options": ["pro", "team"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn create_form(app: &TestApp, definition: Value) -> Value {
    let (status, form) = app.post("/api/v1/forms", json!({"name": "Demo request", "definition": definition})).await;
    assert_eq!(status, StatusCode::CREATED, "{form}");
    form
}

async fn demo_form(app: &TestApp) -> Value {
    plan_field(app).await;
    create_form(app, demo_definition()).await
}

/// A client that does not follow redirects, so that a `303` can be seen.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn post_form(app: &TestApp, id: &str, pairs: &[(&str, &str)], lang: &str) -> reqwest::Response {
    let body: String =
        pairs.iter().map(|(key, value)| format!("{}={}", encode(key), encode(value))).collect::<Vec<_>>().join("&");
    browser()
        .post(format!("{}/f/{id}", app.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT_LANGUAGE, lang)
        .header(USER_AGENT, "FormsTest/1.0")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The token rendered into the hosted page.
async fn page_token(app: &TestApp, id: &str) -> String {
    let html = app.client.get(format!("{}/f/{id}", app.base)).send().await.unwrap().text().await.unwrap();
    let start = html.find(r#"name="_token" value=""#).unwrap() + r#"name="_token" value=""#.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn valid_answers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", "李 雷".to_owned()),
        ("email", "Li.Lei@Example.CN".to_owned()),
        ("phone", "138 0013 8000".to_owned()),
        ("company", "示例科技".to_owned()),
        ("seats", "25".to_owned()),
        ("plan", "pro".to_owned()),
        ("topics", "crm".to_owned()),
        ("topics", "email".to_owned()),
        ("date", "2026-12-01".to_owned()),
        ("notes", "<script>alert(1)</script>".to_owned()),
        ("campaign", "spring-2026".to_owned()),
        ("email_consent", "true".to_owned()),
        ("_hp", String::new()),
        ("_token", token.to_owned()),
    ]
}

fn pairs<'a>(answers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    answers.iter().map(|(key, value)| (*key, value.as_str())).collect()
}

async fn contact_by_email(app: &TestApp, email: &str) -> Option<Value> {
    let (status, found) = app.get(&format!("/api/v1/contacts?email={email}")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    found["items"].as_array().unwrap().first().cloned()
}

async fn timeline(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, timeline) = app.get(&format!("/api/v1/contacts/{id}/timeline?limit=200")).await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    timeline["items"].as_array().unwrap().clone()
}

// ----- The API -----

async fn definitions_are_checked_and_bad_ones_write_nothing(app: &TestApp) {
    plan_field(app).await;
    let bad = json!({
        "fields": [
            {"key": "email", "type": "text", "label": {"en": "Email"}, "maps_to": "email"},
            {"key": "email", "type": "email", "label": {"en": "Email again"}},
            {"key": "size", "type": "select", "label": {"en": "Size"}},
            {"key": "budget", "type": "number", "label": {"en": "Budget"}, "maps_to": "fields.budget"},
            {"key": "plan", "type": "checkbox", "label": {"en": "Plan"}, "maps_to": "fields.plan", "options": [{"value": "pro"}]},
            {"key": "where", "type": "text", "label": {"en": "Where"}, "maps_to": "address"},
            {"key": "ok", "type": "consent", "label": {"en": "OK"}},
            {"key": "Bad Key", "type": "colour", "label": {}}
        ],
        "after_submit": {"redirect": "javascript:alert(1)"},
        "allowed_origins": ["example.com"],
        "default_language": "fr"
    });
    let (status, error) = app.post("/api/v1/forms", json!({"name": "Bad", "definition": bad})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["code"], "validation_failed");
    let fields: Vec<String> = error["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| format!("{}: {}", field["field"].as_str().unwrap(), field["message"].as_str().unwrap()))
        .collect();
    let expected = [
        "definition.default_language: must be zh-CN or en",
        "definition.fields[0].maps_to: only an email (or hidden) field can map to email",
        "definition.fields[1].key: duplicate key \"email\"",
        "definition.fields[2].options: a select field needs options",
        "definition.fields[3].maps_to: no contact custom field has the key \"budget\"; create it first",
        "definition.fields[4].maps_to: a checkbox field cannot fill the single_select custom field \"plan\"",
        "definition.fields[5].maps_to: unknown contact field \"address\": use email, phone, name, first_name, last_name, title, company, city, province, country or fields.KEY",
        "definition.fields[6].channel: a consent field needs its channel",
        "definition.fields[6].text: a consent field needs the text shown beside its box",
        "definition.fields[7].key: must be a key of lower-case letters, digits and underscores, starting with a letter",
        "definition.fields[7].type: must be text, email, phone, number, select, radio, checkbox, date, textarea, hidden or consent",
        "definition.fields[7].label: needs a text in zh-CN, en or both",
        "definition.fields: a form must map a field to email or phone, so that a submission identifies the person",
        "definition.after_submit.redirect: must be an absolute http or https URL",
        "definition.allowed_origins[0]: must be an origin such as https://www.example.com",
    ];
    assert_eq!(fields, expected, "{error}");

    let (status, error) =
        app.post("/api/v1/forms", json!({"name": "x", "definition": {"fields": [], "colour": 1}})).await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("validation_failed")), "{error}");
    assert!(error["error"]["details"]["fields"][0]["field"].as_str().unwrap().starts_with("definition"), "{error}");
    let (status, error) =
        app.post("/api/v1/forms", json!({"name": "x", "definition": demo_definition(), "source_id": "999"})).await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("unknown_source")), "{error}");

    let (_, forms) = app.get("/api/v1/forms").await;
    assert_eq!(forms["items"], json!([]), "nothing was written");
    let (_, sources) = app.get("/api/v1/sources").await;
    assert_eq!(sources["items"], json!([]), "not even the forms source");
}

async fn forms_lifecycle(app: &TestApp) {
    let form = demo_form(app).await;
    let id = form["id"].as_str().unwrap();
    assert_eq!(
        (&form["name"], &form["status"], &form["submission_count"]),
        (&json!("Demo request"), &json!("active"), &json!(0))
    );
    assert_eq!(form["definition"], demo_definition());
    assert_eq!(form["hosted_url"], format!("{}/f/{id}", app.base));
    assert_eq!(
        form["embed"],
        format!("<div id=\"rapport-form-{id}\"></div>\n<script src=\"{}/f/{id}/embed.js\" async></script>", app.base)
    );
    let (_, source) = app.get(&format!("/api/v1/sources/{}", form["source_id"].as_str().unwrap())).await;
    assert_eq!(source["name"], "Hosted forms");
    let second =
        create_form(app, json!({"fields": [{"key": "phone", "type": "phone", "label": "手机", "maps_to": "phone"}]}))
            .await;
    assert_eq!(second["source_id"], form["source_id"], "forms share their source");
    assert_eq!(second["definition"]["fields"][0]["label"], json!({"zh-CN": "手机"}), "a plain label is Chinese… ");

    let (status, listed) = app.get("/api/v1/forms").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let (status, fetched) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &form));

    let (status, renamed) = app.patch(&format!("/api/v1/forms/{id}"), json!({"name": "Demo 2026"})).await;
    assert_eq!(
        (status, &renamed["name"], &renamed["definition"]),
        (StatusCode::OK, &json!("Demo 2026"), &form["definition"])
    );
    let (status, error) = app
        .patch(
            &format!("/api/v1/forms/{id}"),
            json!({"definition": {"fields": [{"key": "x", "type": "text", "label": "X"}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (_, unchanged) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(unchanged["definition"], form["definition"], "a rejected patch changes nothing");

    let viewer = app.key_in(app.workspace, rapport_domain::Role::Viewer).await;
    let (status, _) = app.call_as(&viewer, reqwest::Method::GET, &format!("/api/v1/forms/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = app.call_as(&viewer, reqwest::Method::DELETE, &format!("/api/v1/forms/{id}"), None).await;
    assert_eq!((status, &error["error"]["code"]), (StatusCode::FORBIDDEN, &json!("forbidden")));
    let (_, other_token) = app.other_workspace("other").await;
    let (status, _) = app.call_as(&other_token, reqwest::Method::GET, &format!("/api/v1/forms/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another workspace's form");

    let (status, archived) = app.delete(&format!("/api/v1/forms/{id}"), None).await;
    assert_eq!((status, &archived["status"]), (StatusCode::OK, &json!("archived")));
    let page = app.client.get(format!("{}/f/{id}?lang=en", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("This form is no longer accepting answers."));
    let response = post_form(app, id, &[("email", "a@b.cn")], "zh-CN").await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("此表单已停止收集。"));
    let (status, reopened) = app.patch(&format!("/api/v1/forms/{id}"), json!({"status": "active"})).await;
    assert_eq!((status, &reopened["status"]), (StatusCode::OK, &json!("active")));
    let missing = app.client.get(format!("{}/f/987654", app.base)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let (_, document) = app.get("/api/v1/openapi.json").await;
    for path in ["/api/v1/forms", "/api/v1/forms/{id}", "/api/v1/contacts/{id}/consents"] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
}

// ----- The hosted page -----

async fn hosted_page_renders_escaped_in_both_languages(app: &TestApp) {
    plan_field(app).await;
    let mut definition = demo_definition();
    definition["title"]["en"] = json!("Book <b>a demo</b> & \"more\"");
    let form = create_form(app, definition).await;
    let id = form["id"].as_str().unwrap();

    let response = app.client.get(format!("{}/f/{id}?campaign=autumn", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    for expected in [
        r#"<html lang="zh-CN">"#,
        r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#,
        "<h1>预约演示</h1>",
        r#"<label for="rapport-1-email">邮箱 <span class="rapport-form-required" aria-hidden="true">*</span></label>"#,
        r#"type="email" id="rapport-1-email" name="email" value="" maxlength="1000" autocomplete="email" inputmode="email" placeholder="you@company.com" required aria-describedby="rapport-1-email-error">"#,
        r#"<option value="pro">专业版</option>"#,
        r#"<option value="team">Team</option>"#,
        r#"<input type="hidden" name="campaign" value="autumn">"#,
        "我同意接收 Rapport 的营销邮件。",
        r#"<button type="submit" class="rapport-form-submit">立即预约</button>"#,
        r#"name="_hp""#,
        r#"<a href="/f/1?lang=en&amp;campaign=autumn" hreflang="en" lang="en">English</a>"#,
        "/rapport.js",
    ] {
        let expected = expected.replace("rapport-1-", &format!("rapport-{id}-")).replace("/f/1?", &format!("/f/{id}?"));
        assert!(html.contains(&expected), "{expected} in\n{html}");
    }
    let english = app
        .client
        .get(format!("{}/f/{id}", app.base))
        .header(ACCEPT_LANGUAGE, "en-US,en;q=0.9,zh;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(english.contains(r#"<html lang="en">"#));
    assert!(english.contains("<h1>Book &lt;b&gt;a demo&lt;/b&gt; &amp; &quot;more&quot;</h1>"), "{english}");
    assert!(english.contains(">Book now</button>"));
    assert!(!english.contains("<b>a demo"), "nothing from a definition is markup");
    let chinese =
        app.client.get(format!("{}/f/{id}?lang=zh-CN", app.base)).header(ACCEPT_LANGUAGE, "en").send().await.unwrap();
    assert!(chinese.text().await.unwrap().contains("<h1>预约演示</h1>"), "?lang wins over the browser");

    let script = app
        .client
        .get(format!("{}/f/{id}/embed.js?lang=en", app.base))
        .header("origin", "https://www.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["access-control-allow-origin"], "*");
    let script = script.text().await.unwrap();
    assert!(script.contains(&format!(r#""formId":"{id}""#)) && script.contains("Book now"), "{script}");
}

// ----- Submissions -----

async fn urlencoded_submission_creates_the_contact_event_and_consent(app: &TestApp) {
    let form = demo_form(app).await;
    let id = form["id"].as_str().unwrap();
    let token = page_token(app, id).await;
    let answers = valid_answers(&token);
    let response = post_form(app, id, &pairs(&answers), "en").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(
        html.contains(r#"<div class="rapport-form-done" role="status">Thank you! We will be in touch.</div>"#),
        "{html}"
    );

    let contact = contact_by_email(app, "li.lei@example.cn").await.expect("the contact");
    assert_eq!(
        (
            &contact["first_name"],
            &contact["last_name"],
            &contact["phone"],
            &contact["company_name"],
            &contact["fields"]
        ),
        (&json!("李"), &json!("雷"), &json!("13800138000"), &json!("示例科技"), &json!({"plan": "pro"}))
    );
    let id_of_contact = contact["id"].as_str().unwrap();
    let items = timeline(app, id_of_contact).await;
    let kinds: Vec<String> = items
        .iter()
        .map(|item| format!("{} {}", item["kind"].as_str().unwrap(), item["data"]["type"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(kinds, ["consent ", "event form_submitted"]);
    let event = &items[1]["data"];
    assert_eq!(
        event["properties"],
        json!({
            "form_id": id,
            "form_name": "Demo request",
            "language": "en",
            "answers": {
                "name": "李 雷", "email": "li.lei@example.cn", "phone": "13800138000", "company": "示例科技",
                "seats": 25, "plan": "pro", "topics": ["crm", "email"], "date": "2026-12-01",
                "notes": "<script>alert(1)</script>", "campaign": "spring-2026", "email_consent": true
            }
        })
    );
    assert_eq!(event["context"]["userAgent"], "FormsTest/1.0");
    assert_eq!(event["context"]["ip"], "127.0.0.1");
    assert_eq!(event["source"], form["source_id"]);

    let (status, consents) = app.get(&format!("/api/v1/contacts/{id_of_contact}/consents")).await;
    assert_eq!(status, StatusCode::OK, "{consents}");
    let current = &consents["current"][0];
    assert_eq!(
        (
            &current["channel"],
            &current["granted"],
            &current["text"],
            &current["ip"],
            &current["user_agent"],
            &current["form_id"]
        ),
        (
            &json!("email"),
            &json!(true),
            &json!("I agree to receive marketing email from Rapport."),
            &json!("127.0.0.1"),
            &json!("FormsTest/1.0"),
            &json!(id)
        )
    );
    assert!(current["message_id"].as_str().unwrap().starts_with(&format!("form:{id}:")));
    assert!(current["recorded_at"].is_string());
    let (_, form) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(form["submission_count"], 1);

    // A second submission updates the same contact, and a redirect form answers 303.
    let (status, _) = app
        .patch(
            &format!("/api/v1/forms/{id}"),
            json!({"definition": {"fields": [
                {"key": "email", "type": "email", "label": "邮箱", "maps_to": "email", "required": true},
                {"key": "city", "type": "text", "label": "城市", "maps_to": "city"}
            ], "after_submit": {"redirect": "https://example.com/thanks?from=form"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // On the hosted page the tracker runs on Rapport's origin: its cookie names the visitor.
    let response = browser()
        .post(format!("{}/f/{id}", app.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", "theme=dark; rapport_anonymous_id=anon-hosted-7")
        .body("email=li.lei%40example.cn&city=%E4%B8%8A%E6%B5%B7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "https://example.com/thanks?from=form");
    let updated = contact_by_email(app, "li.lei@example.cn").await.unwrap();
    assert_eq!(
        (&updated["id"], &updated["city"], &updated["first_name"]),
        (&contact["id"], &json!("上海"), &json!("李"))
    );
    assert!(
        updated["identities"].as_array().unwrap().iter().any(|identity| identity["value"] == "anon-hosted-7"),
        "{updated}"
    );
    assert_eq!(app.contact_count().await, 1);
}

async fn validation_errors_in_both_languages_store_nothing(app: &TestApp) {
    let form = demo_form(app).await;
    let id = form["id"].as_str().unwrap();
    let token = page_token(app, id).await;
    let mut answers = valid_answers(&token);
    for (key, value) in &mut answers {
        match *key {
            "email" => *value = "not-an-email".to_owned(),
            "seats" => *value = "many".to_owned(),
            "plan" => *value = "gold".to_owned(),
            "date" => *value = "2026-13-40".to_owned(),
            "email_consent" | "name" => *value = String::new(),
            "company" => *value = "<img src=x onerror=alert(1)>".to_owned(),
            _ => {}
        }
    }
    let response = post_form(app, id, &pairs(&answers), "zh-CN,zh;q=0.9").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    for expected in [
        "提交未成功，请检查标出的内容。",
        "此项为必填项。",
        "请输入有效的邮箱地址。",
        "请输入数字。",
        "请从给出的选项中选择。",
        "请输入有效的日期（YYYY-MM-DD）。",
        "请勾选此项以继续。",
        r#"value="not-an-email""#,
        r#"value="&lt;img src=x onerror=alert(1)&gt;""#,
        r#"aria-invalid="true""#,
        &format!(r#"name="_token" value="{token}""#),
    ] {
        assert!(html.contains(expected), "{expected} in\n{html}");
    }
    assert!(!html.contains("<img src=x"), "answers are escaped when shown again");

    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .json(&json!({"answers": {"email": "nope", "name": "Li", "email_consent": true}, "lang": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "validation_failed");
    assert_eq!(error["error"]["message"], "answers.email: Please enter a valid email address.");
    assert_eq!(
        error["error"]["details"]["fields"],
        json!([{
            "field": "answers.email", "key": "email", "message": "Please enter a valid email address.",
            "messages": {"zh-CN": "请输入有效的邮箱地址。", "en": "Please enter a valid email address."}
        }])
    );
    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .json(&json!({"answers": {"name": "Li", "email_consent": true}, "lang": "zh-CN"}))
        .send()
        .await
        .unwrap();
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["message"], "answers.email: 此项为必填项。", "{error}");
    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .json(&json!({"answers": {}, "colour": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    assert_eq!(app.contact_count().await, 0, "nothing was stored");
    let (_, form) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(form["submission_count"], 0);
}

async fn json_submission_joins_the_anonymous_history_and_redirects(app: &TestApp) {
    let (_, source) = app.post("/api/v1/sources", json!({"name": "官网", "kind": "website"})).await;
    let key = source["write_key"].as_str().unwrap();
    let page = json!({"type": "page", "anonymousId": "anon-42", "messageId": "p-1",
        "properties": {"url": "https://www.example.com/pricing", "path": "/pricing"}});
    let response =
        app.client.post(format!("{}/v1/page", app.base)).basic_auth(key, Some("")).json(&page).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    plan_field(app).await;
    let mut definition = demo_definition();
    definition["after_submit"] = json!({"redirect": "https://www.example.com/thanks"});
    definition["allowed_origins"] = json!(["https://www.example.com"]);
    let form = create_form(app, definition).await;
    let id = form["id"].as_str().unwrap();
    let body = json!({
        "answers": {"name": "Wang Fang", "email": "wang@example.com", "email_consent": true, "topics": ["crm"], "seats": 3},
        "lang": "en", "anonymous_id": "anon-42", "page_url": "https://www.example.com/pricing",
        "referrer": "https://www.baidu.com/"
    });
    let foreign = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .header("origin", "https://evil.example.net")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let own = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .header("origin", &app.base)
        .json(&json!({"answers": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::UNPROCESSABLE_ENTITY, "the hosted page's own origin always may post");
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/f/{id}", app.base))
        .header("origin", "https://www.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .header("origin", "https://www.example.com")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({"ok": true, "redirect": "https://www.example.com/thanks"}));

    let contact = contact_by_email(app, "wang@example.com").await.unwrap();
    assert_eq!((&contact["first_name"], &contact["last_name"]), (&json!("Wang"), &json!("Fang")));
    assert!(
        contact["identities"].as_array().unwrap().iter().any(|identity| identity["value"] == "anon-42"),
        "{contact}"
    );
    let items = timeline(app, contact["id"].as_str().unwrap()).await;
    let events: Vec<&str> = items
        .iter()
        .filter(|item| item["kind"] == "event")
        .map(|item| item["data"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["form_submitted", "page_viewed"], "the anonymous page view joined the contact");
    let submitted = &items.iter().find(|item| item["data"]["type"] == "form_submitted").unwrap()["data"]["properties"];
    assert_eq!(
        (&submitted["page_url"], &submitted["referrer"]),
        (&json!("https://www.example.com/pricing"), &json!("https://www.baidu.com/"))
    );
    assert_eq!(app.contact_count().await, 1);
}

async fn double_submission_is_stored_once(app: &TestApp) {
    let form = demo_form(app).await;
    let id = form["id"].as_str().unwrap();
    let token = page_token(app, id).await;
    let answers = valid_answers(&token);
    for _ in 0..2 {
        let response = post_form(app, id, &pairs(&answers), "zh-CN").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.text().await.unwrap().contains("谢谢！我们会尽快联系您。"));
    }
    let contact = contact_by_email(app, "li.lei@example.cn").await.unwrap();
    let items = timeline(app, contact["id"].as_str().unwrap()).await;
    assert_eq!(items.len(), 2, "one event and one consent: {items:?}");
    let (_, form) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(form["submission_count"], 1);

    // A new rendering is a new submission.
    let again = valid_answers(&page_token(app, id).await);
    assert_eq!(post_form(app, id, &pairs(&again), "zh-CN").await.status(), StatusCode::OK);
    let (_, form) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(form["submission_count"], 2);
}

async fn honeypot_stores_nothing(app: &TestApp) {
    let form = demo_form(app).await;
    let id = form["id"].as_str().unwrap();
    let mut answers = valid_answers(&page_token(app, id).await);
    for (key, value) in &mut answers {
        if *key == "_hp" {
            *value = "https://spam.example".to_owned();
        }
    }
    let response = post_form(app, id, &pairs(&answers), "en").await;
    assert_eq!(response.status(), StatusCode::OK, "answered like a success");
    assert!(response.text().await.unwrap().contains("Thank you! We will be in touch."));
    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .json(&json!({"answers": {"email": "bot@spam.example", "name": "Bot", "email_consent": true}, "hp": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.contact_count().await, 0);
    let (_, form) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(form["submission_count"], 0);
}

async fn minimum_fill_time_drops_fast_submissions(app: &TestApp) {
    plan_field(app).await;
    let mut definition = demo_definition();
    definition["min_fill_seconds"] = json!(60);
    let form = create_form(app, definition).await;
    let id = form["id"].as_str().unwrap();

    // Sent at once after the page was shown: answered like a success, stored nowhere.
    let answers = valid_answers(&page_token(app, id).await);
    let response = post_form(app, id, &pairs(&answers), "en").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("Thank you! We will be in touch."));
    assert_eq!(app.contact_count().await, 0);

    // Without a token whose time can be verified: the page comes back, with a fresh token, asking to submit again.
    let answers = valid_answers("1700000000000.0123456789abcdef0123456789abcdef.00000000000000000000000000000000");
    let response = post_form(app, id, &pairs(&answers), "en").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.unwrap();
    assert!(html.contains("This page has expired. Please submit again."), "{html}");
    assert!(!html.contains("0123456789abcdef0123456789abcdef"), "a new token replaces the unverifiable one");
    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .json(&json!({"answers": {"email": "li@example.cn", "name": "Li", "email_consent": true}, "lang": "zh-CN"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "form_expired");
    assert_eq!(error["error"]["message"], "answers: 页面已过期，请重新提交。");
    assert!(error["error"]["details"]["token"].is_string(), "{error}");
    assert_eq!(app.contact_count().await, 0);
    let (_, form) = app.get(&format!("/api/v1/forms/{id}")).await;
    assert_eq!(form["submission_count"], 0);
}

async fn rate_limit_answers_429(app: &TestApp) {
    let form = create_form(
        app,
        json!({"fields": [{"key": "email", "type": "email", "label": "邮箱", "maps_to": "email", "required": true}]}),
    )
    .await;
    let id = form["id"].as_str().unwrap();
    // The default allows a burst of 10 per address; invalid submissions count too.
    for attempt in 0..10 {
        let response = post_form(app, id, &[("email", "")], "en").await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "attempt {attempt}");
    }
    let response = post_form(app, id, &[("email", "late@example.com")], "en").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry_after), "{retry_after}");
    let html = response.text().await.unwrap();
    assert!(html.contains("提交过于频繁") && html.contains("Too many submissions"), "{html}");
    let response = app
        .client
        .post(format!("{}/f/{id}", app.base))
        .json(&json!({"answers": {"email": "a@b.cn"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(RETRY_AFTER));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
    assert_eq!(app.contact_count().await, 0);
}

//! CSV imports and exports as API jobs, through the real server and its job runner, on SQLite and PostgreSQL:
//! upload, poll the progress, read the result and the error report, download the export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{OWNER_TOKEN, TestApp};
use rapport_domain::Role;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

api_tests!(
    import_job_reports_every_row,
    dry_run_job_previews_and_writes_nothing,
    bad_uploads_are_refused_and_queue_nothing,
    export_job_streams_every_contact,
    cancelling_jobs,
);

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "the fixture must be representable in GBK");
    bytes.into_owned()
}

fn csv_part(bytes: Vec<u8>, name: &str) -> Part {
    Part::bytes(bytes).file_name(name.to_owned()).mime_str("text/csv").unwrap()
}

async fn upload(app: &TestApp, token: &str, form: Form) -> (StatusCode, Value, Option<String>) {
    let response = app
        .client
        .post(format!("{}/api/v1/imports", app.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response.headers().get("location").map(|value| value.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap(), location)
}

/// Polls the job the way a client does until it has finished.
async fn finished(app: &TestApp, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = app.get(path).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn download(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = app.client.get(format!("{}{path}", app.base)).bearer_auth(OWNER_TOKEN).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

/// A GBK file from Excel with Chinese headers, a bad email, a duplicate and an explicit mapping: the valid rows
/// land, every bad one is reported with its row and column, in the result and in the CSV error report.
async fn import_job_reports_every_row(app: &TestApp) {
    let (status, _) = app.post("/api/v1/fields", json!({"key": "budget", "label": "预算", "type": "number"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let text = "邮箱,姓名,公司,预算,客户来源\r\n\
                li.lei@example.cn,李雷,上海某某科技有限公司,\"1,200\",展会\r\n\
                not-an-email,韩梅梅,北京某某软件有限公司,800,官网\r\n\
                LI.LEI@example.cn,李雷,上海某某科技有限公司,1300,展会\r\n\
                wang@example.cn,王芳,深圳某某制造,abc,广告\r\n";
    let mappings = ["邮箱=email", "姓名=first_name", "公司=company_name", "预算=fields.budget", "客户来源=source"];
    let mut form = Form::new().part("file", csv_part(gbk(text), "客户.csv")).text("dry_run", "false");
    for mapping in mappings {
        form = form.text("map", mapping);
    }
    let (status, job, location) = upload(app, OWNER_TOKEN, form).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "import_contacts");
    assert!(["queued", "running", "succeeded"].contains(&job["status"].as_str().unwrap()), "{job}");
    assert_eq!(
        job["params"],
        json!({"file_name": "客户.csv", "mappings": mappings, "encoding": null,
        "dry_run": false, "bytes": gbk(text).len()})
    );
    let path = format!("/api/v1/imports/{}", job["id"].as_str().unwrap());
    assert_eq!(location.as_deref(), Some(path.as_str()));

    let job = finished(app, &path).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["encoding"], "gb18030", "{job}");
    assert_eq!((result["rows"].as_u64(), result["created"].as_u64()), (Some(4), Some(1)), "{job}");
    assert_eq!((result["updated"].as_u64(), result["failed"].as_u64()), (Some(1), Some(2)), "{job}");
    assert_eq!(result["error_count"], 2);
    assert_eq!(result["columns"][4], json!({"column": "客户来源", "field": "source"}));
    let errors: Vec<(u64, &str)> = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| (error["row"].as_u64().unwrap(), error["column"].as_str().unwrap()))
        .collect();
    assert_eq!(errors, [(3, "邮箱"), (5, "预算")], "{job}");
    assert_eq!(job["progress"]["total_bytes"].as_u64(), Some(gbk(text).len() as u64), "{job}");
    assert_eq!(job["links"]["errors"], format!("{path}/errors"));

    let (status, headers, report) = download(app, &format!("{path}/errors")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let report = String::from_utf8(report).unwrap();
    let mut lines = report.trim_start_matches('\u{feff}').lines();
    assert_eq!(lines.next(), Some("row,line,column,value,reason"));
    assert!(lines.next().unwrap().starts_with("3,3,邮箱,not-an-email,"), "{report}");
    assert!(lines.next().unwrap().starts_with("5,5,预算,abc,"), "{report}");

    let (_, li) = app.get("/api/v1/contacts?email=li.lei@example.cn").await;
    let li = &li["items"][0];
    assert_eq!((li["first_name"].as_str(), li["source"].as_str()), (Some("李雷"), Some("展会")), "{li}");
    assert_eq!(li["fields"]["budget"], 1300);
    let (_, listed) = app.get("/api/v1/imports").await;
    assert_eq!(listed["items"][0]["id"], job["id"]);
}

async fn dry_run_job_previews_and_writes_nothing(app: &TestApp) {
    let text = "\u{feff}email,first_name,stage\nada@example.com,Ada,mql\nbad,Bob,raw\n,,\n";
    let form = Form::new().part("file", csv_part(text.as_bytes().to_vec(), "people.csv")).text("dry_run", "true");
    let (status, job, _) = upload(app, OWNER_TOKEN, form).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = finished(app, &format!("/api/v1/imports/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(
        (result["valid"].as_u64(), result["failed"].as_u64(), result["empty"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(result["created"], 0);
    let preview = result["preview"].as_array().unwrap();
    assert_eq!(preview.len(), 3, "{job}");
    assert_eq!(preview[0]["outcome"], "valid");
    assert!(preview[0]["values"].as_array().unwrap().contains(&json!({"field": "email", "value": "ada@example.com"})));
    assert_eq!(
        (preview[1]["outcome"].as_str(), preview[1]["errors"][0]["column"].as_str()),
        (Some("invalid"), Some("email"))
    );
    assert_eq!(preview[2]["outcome"], "empty");
    assert_eq!(app.store.count_contacts(app.workspace).await.unwrap(), 0);
}

/// Problems found before the job is queued are a 400 with a stable code, and leave no job behind; a viewer may
/// not import at all.
async fn bad_uploads_are_refused_and_queue_nothing(app: &TestApp) {
    let file = || csv_part(b"email,name\nada@example.com,Ada\n".to_vec(), "a.csv");
    let cases: [(Form, &str); 7] = [
        (Form::new().text("dry_run", "true"), "missing_file"),
        (Form::new().part("file", file()).text("map", "Email=email"), "invalid_mapping"),
        (Form::new().part("file", file()).text("map", "email=nope"), "invalid_mapping"),
        (Form::new().part("file", file()).text("encoding", "klingon"), "unknown_encoding"),
        (Form::new().part("file", csv_part(Vec::new(), "empty.csv")), "empty_file"),
        (Form::new().part("file", file()).text("dry_run", "maybe"), "validation_failed"),
        (Form::new().part("file", file()).text("sheet", "1"), "validation_failed"),
    ];
    for (form, code) in cases {
        let (status, body, _) = upload(app, OWNER_TOKEN, form).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let response = app
        .client
        .post(format!("{}/api/v1/imports", app.base))
        .bearer_auth(OWNER_TOKEN)
        .json(&json!({"file": "email\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let viewer = app.key_in(app.workspace, Role::Viewer).await;
    let (status, _, _) = upload(app, &viewer, Form::new().part("file", file())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, listed) = app.get("/api/v1/imports").await;
    assert_eq!(listed["items"], json!([]), "{listed}");
    assert_eq!(app.store.count_contacts(app.workspace).await.unwrap(), 0);
}

async fn export_job_streams_every_contact(app: &TestApp) {
    let contacts: Vec<Value> =
        (0..1_500).map(|n| json!({"email": format!("user{n}@example.com"), "first_name": "张三"})).collect();
    for chunk in contacts.chunks(1_000) {
        let (status, body) = app.post("/api/v1/contacts/batch", json!({"contacts": chunk})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, job) = app.post("/api/v1/exports", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let path = format!("/api/v1/exports/{}", job["id"].as_str().unwrap());
    let job = finished(app, &path).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["rows"], 1_500);
    assert_eq!(job["progress"], json!({"written": 1_500, "total": 1_500}));

    let (status, headers, file) = download(app, job["links"]["file"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"contacts-{}.csv\"", job["id"].as_str().unwrap())
    );
    assert_eq!(job["result"]["bytes"].as_u64(), Some(file.len() as u64));
    assert!(file.starts_with(b"\xEF\xBB\xBF"));
    let mut reader = csv::Reader::from_reader(&file[3..]);
    assert_eq!(&reader.headers().unwrap()[1], "email");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1_500);
    assert!(rows.iter().all(|row| &row[4] == "张三"));

    let (status, body) = app.post("/api/v1/exports", json!({"segment": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Cancelling a finished job is a conflict; jobs of one kind are not found under the other; another workspace
/// sees none of them.
async fn cancelling_jobs(app: &TestApp) {
    let (_, job) = app.post("/api/v1/exports", json!({})).await;
    let path = format!("/api/v1/exports/{}", job["id"].as_str().unwrap());
    let job = finished(app, &path).await;
    let (status, body) = app.delete(&path, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("job_finished")), "{body}");
    let (status, _) = app.get(&format!("/api/v1/imports/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/exports/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, other) = app.other_workspace("other").await;
    let (status, _) = app.call_as(&other, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.call_as(&other, reqwest::Method::GET, "/api/v1/exports", None).await;
    assert_eq!((status, body["items"].clone()), (StatusCode::OK, json!([])));
}

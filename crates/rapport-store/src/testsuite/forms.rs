//! Hosted forms and consent: form records, and submissions applied through the tracking pipeline — identity
//! resolution like identify, the `form_submitted` event, consent with its proof, the form's count — all or nothing,
//! once per message id.

use std::sync::Arc;

use rapport_domain::{ContactChanges, ContactId, FormId, Identity, IdentityKind, Patch, SourceId, WorkspaceId};
use serde_json::{Value, json};

use super::{at, by_email, code, contact, describe_contact, json_object, snapshot, text, timeline, workspace};
use crate::{
    ConsentChannel, FormStatus, FormSubmission, FormUpdate, MergeReason, NewConsent, NewForm, NewSource, PageRequest,
    SourceKind, Store, TrackingMessage, TrackingOp, TrackingOutcome, Visitor,
};

async fn source(store: &dyn Store, ws: WorkspaceId) -> SourceId {
    let source = NewSource {
        name: text("Hosted forms"),
        kind: SourceKind::Website,
        write_key: format!("wk_forms_{ws}"),
        auto_create_fields: false,
        honor_dnt: false,
    };
    store.create_source(ws, source).await.unwrap().id
}

fn new_form(name: &str, source_id: SourceId) -> NewForm {
    NewForm { name: text(name), definition: json!({ "fields": [{ "key": "email", "type": "email" }] }), source_id }
}

fn consent(channel: ConsentChannel, text: &str) -> NewConsent {
    NewConsent {
        channel,
        granted: true,
        recorded_at: at(50),
        ip: Some("203.0.113.9".to_owned()),
        user_agent: Some("Mozilla/5.0".to_owned()),
        text: text.to_owned(),
    }
}

fn submission(
    message_id: &str,
    source: SourceId,
    form: FormId,
    anonymous_id: Option<&str>,
    changes: ContactChanges,
    consents: Vec<NewConsent>,
) -> TrackingMessage {
    TrackingMessage {
        message_id: message_id.to_owned(),
        source,
        visitor: Visitor { user_id: None, anonymous_id: anonymous_id.map(str::to_owned) },
        op: TrackingOp::FormSubmission(Box::new(FormSubmission {
            form_id: form,
            changes,
            properties: json_object(json!({
                "form_id": form.to_string(),
                "form_name": "Demo",
                "answers": { "email": "li@client.cn", "seats": 25 },
                "page_url": "https://acme.cn/demo",
            })),
            context: json_object(json!({ "ip": "203.0.113.9", "userAgent": "Mozilla/5.0" })),
            occurred_at: at(50),
            received_at: at(50),
            consents,
        })),
    }
}

fn page_view(message_id: &str, source: SourceId, anonymous_id: &str, seconds: i64) -> TrackingMessage {
    let page = json!({ "path": "/pricing", "url": "https://acme.cn/pricing" });
    TrackingMessage {
        message_id: message_id.to_owned(),
        source,
        visitor: Visitor { user_id: None, anonymous_id: Some(anonymous_id.to_owned()) },
        op: TrackingOp::Event {
            event_type: "page_viewed".to_owned(),
            properties: json_object(page.clone()),
            context: json_object(json!({ "page": page })),
            occurred_at: at(seconds),
            received_at: at(seconds),
        },
    }
}

fn outcome_line(outcome: &TrackingOutcome) -> String {
    match outcome {
        TrackingOutcome::Applied { contact_id } => format!("applied {contact_id}"),
        TrackingOutcome::Duplicate => "duplicate".to_owned(),
        TrackingOutcome::Rejected { code, .. } => format!("rejected {code}"),
    }
}

async fn ingest(store: &dyn Store, ws: WorkspaceId, messages: Vec<TrackingMessage>) -> Vec<String> {
    store.ingest_tracking(ws, messages).await.unwrap().iter().map(outcome_line).collect()
}

async fn consents(store: &dyn Store, ws: WorkspaceId, id: ContactId) -> Vec<String> {
    store
        .contact_consents(ws, id)
        .await
        .unwrap()
        .iter()
        .map(|consent| {
            format!(
                "{} {} {:?} ip={} ua={} form={} message={}",
                consent.channel.as_str(),
                consent.granted,
                consent.text,
                consent.ip.as_deref().unwrap_or("-"),
                consent.user_agent.as_deref().unwrap_or("-"),
                consent.form_id.map_or("-".to_owned(), |id| id.to_string()),
                consent.message_id.as_deref().unwrap_or("-"),
            )
        })
        .collect()
}

pub async fn forms_crud(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let web = source(store, ws).await;
    let foreign = source(store, other).await;

    let form = store.create_form(ws, new_form("预约演示", web)).await.unwrap();
    assert_eq!((form.name.as_str(), form.status, form.submission_count), ("预约演示", FormStatus::Active, 0));
    assert_eq!(form.definition, json!({ "fields": [{ "key": "email", "type": "email" }] }));
    assert_eq!(form.source_id, web);
    assert_eq!(store.get_form(ws, form.id).await.unwrap(), form);
    assert_eq!(store.form_by_id(form.id).await.unwrap().as_ref(), Some(&form));
    assert_eq!(code(store.create_form(ws, new_form("x", foreign)).await), "invalid unknown_source source_id");
    assert_eq!(code(store.get_form(other, form.id).await), "not_found form", "another workspace's form");
    assert_eq!(store.form_by_id(FormId::new(form.id.get() + 100)).await.unwrap(), None);

    let second = store.create_form(ws, new_form("Webinar", web)).await.unwrap();
    let names: Vec<String> = store.list_forms(ws).await.unwrap().into_iter().map(|form| form.name).collect();
    assert_eq!(names, ["预约演示", "Webinar"]);
    assert!(store.list_forms(other).await.unwrap().is_empty());

    let update = FormUpdate {
        name: Some(text("Webinar 2026")),
        definition: Some(json!({ "fields": [] })),
        status: Some(FormStatus::Archived),
    };
    let updated = store.update_form(ws, second.id, update).await.unwrap();
    assert_eq!(
        (updated.name.as_str(), &updated.definition, updated.status),
        ("Webinar 2026", &json!({ "fields": [] }), FormStatus::Archived)
    );
    assert!(updated.updated_at >= second.updated_at);
    let renamed = store.update_form(ws, second.id, FormUpdate { name: Some(text("W")), ..FormUpdate::default() });
    assert_eq!(renamed.await.unwrap().definition, json!({ "fields": [] }), "absent parts stay");
    assert_eq!(code(store.update_form(other, second.id, FormUpdate::default()).await), "not_found form");
}

pub async fn form_submission_joins_the_anonymous_history(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    let form = store.create_form(ws, new_form("Demo", web)).await.unwrap();

    let outcomes =
        ingest(store, ws, vec![page_view("m-1", web, "anon-9", 0), page_view("m-2", web, "anon-9", 10)]).await;
    let visitor = store
        .find_contact(ws, &Identity::parse(IdentityKind::AnonymousId, "anon-9").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(outcomes, [format!("applied {visitor}"), format!("applied {visitor}")]);

    let changes = ContactChanges {
        system: rapport_domain::SystemFieldsPatch { first_name: Patch::Set(text("李雷")), ..Default::default() },
        ..by_email("li@client.cn")
    };
    let sent = submission(
        "form:1:a",
        web,
        form.id,
        Some("anon-9"),
        changes,
        vec![consent(ConsentChannel::Email, "我同意接收邮件")],
    );
    assert_eq!(ingest(store, ws, vec![sent.clone()]).await, [format!("applied {visitor}")]);
    assert_eq!(ingest(store, ws, vec![sent]).await, ["duplicate"], "a double submission is stored once");

    assert_eq!(
        describe_contact(store, ws, visitor).await,
        "email=li@client.cn first_name=李雷 stage=raw identities=[email:li@client.cn,anonymous_id:anon-9]"
    );
    assert_eq!(
        timeline(store, ws, visitor).await,
        ["consent", "event form_submitted", "event page_viewed", "event page_viewed"]
    );
    let page = store.contact_timeline(ws, visitor, PageRequest { after: None, limit: 10 }).await.unwrap();
    let event = &page.items[1].data;
    assert_eq!(
        (&event["properties"], &event["source"]),
        (
            &json!({
                "form_id": form.id.to_string(),
                "form_name": "Demo",
                "answers": { "email": "li@client.cn", "seats": 25 },
                "page_url": "https://acme.cn/demo",
            }),
            &Value::from(web.to_string())
        )
    );
    assert_eq!(page.items[0].data["channel"], "email");
    assert_eq!(page.items[0].data["text"], "我同意接收邮件");
    assert_eq!(
        consents(store, ws, visitor).await,
        [r#"email true "我同意接收邮件" ip=203.0.113.9 ua=Mozilla/5.0 form=1 message=form:1:a"#
            .replace("form=1", &format!("form={}", form.id))]
    );
    assert_eq!(store.get_form(ws, form.id).await.unwrap().submission_count, 1);
}

pub async fn form_submission_without_visitor_ids_merges_by_email(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    let form = store.create_form(ws, new_form("Demo", web)).await.unwrap();
    let known = contact(store, ws, "li@client.cn").await;

    // No tracker on the page: the email alone finds the contact.
    let first = submission("form:1:a", web, form.id, None, by_email("li@client.cn"), vec![]);
    let second = submission("form:1:b", web, form.id, None, by_email("wang@client.cn"), vec![]);
    let outcomes = ingest(store, ws, vec![first, second]).await;
    let wang = store.find_contact(ws, &Identity::email(&super::email("wang@client.cn"))).await.unwrap().unwrap().id;
    assert_eq!(outcomes, [format!("applied {known}"), format!("applied {wang}")]);
    assert_eq!(store.count_contacts(ws).await.unwrap(), 2, "two people, two contacts");

    // An anonymous visitor who submits a known email: the visitor's contact merges into (or with) the known one.
    ingest(store, ws, vec![page_view("m-1", web, "anon-1", 0)]).await;
    let visitor = store
        .find_contact(ws, &Identity::parse(IdentityKind::AnonymousId, "anon-1").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let merged = submission(
        "form:1:c",
        web,
        form.id,
        Some("anon-1"),
        by_email("li@client.cn"),
        vec![consent(ConsentChannel::Sms, "短信")],
    );
    let outcomes = ingest(store, ws, vec![merged]).await;
    assert_eq!(outcomes, [format!("applied {visitor}")]);
    assert_eq!(store.merged_into(ws, known).await.unwrap(), Some(visitor));
    assert_eq!(
        timeline(store, ws, visitor).await,
        [
            "consent".to_owned(),
            format!("merged {known} identify"),
            "event form_submitted".to_owned(),
            "event form_submitted".to_owned(),
            "event page_viewed".to_owned(),
        ]
    );
    assert_eq!(store.get_form(ws, form.id).await.unwrap().submission_count, 3);

    // Consent records follow merges and go with erasure.
    let other = contact(store, ws, "zhao@client.cn").await;
    store.merge_contacts(ws, other, visitor, MergeReason::Api, crate::Actor::System).await.unwrap();
    assert_eq!(consents(store, ws, other).await.len(), 1);
    store.delete_contact(ws, other).await.unwrap();
    assert_eq!(code(store.contact_consents(ws, other).await), "not_found contact");
}

pub async fn form_submission_to_an_archived_form_writes_nothing(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    let form = store.create_form(ws, new_form("Demo", web)).await.unwrap();
    store
        .update_form(ws, form.id, FormUpdate { status: Some(FormStatus::Archived), ..FormUpdate::default() })
        .await
        .unwrap();
    let before = snapshot(store, ws).await;

    let sent = submission(
        "form:1:a",
        web,
        form.id,
        Some("anon-1"),
        by_email("li@client.cn"),
        vec![consent(ConsentChannel::Email, "x")],
    );
    assert_eq!(ingest(store, ws, vec![sent.clone()]).await, ["rejected unknown_form"]);
    let missing = submission("form:1:b", web, FormId::new(form.id.get() + 100), None, by_email("li@client.cn"), vec![]);
    assert_eq!(ingest(store, ws, vec![missing]).await, ["rejected unknown_form"]);
    assert_eq!(snapshot(store, ws).await, before);
    assert_eq!(store.get_form(ws, form.id).await.unwrap().submission_count, 0);

    // The rejected message id was not taken: once the form is reopened, the same submission goes through.
    store
        .update_form(ws, form.id, FormUpdate { status: Some(FormStatus::Active), ..FormUpdate::default() })
        .await
        .unwrap();
    let outcomes = ingest(store, ws, vec![sent]).await;
    assert!(outcomes[0].starts_with("applied"), "{outcomes:?}");
}

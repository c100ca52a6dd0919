//! Capture: tracking sources and their write keys, and tracking messages resolved to contacts (identify, alias,
//! group, events), idempotent on their message ids.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_domain::{
    ContactChanges, ContactId, Identity, IdentityKind, Patch, SourceId, SystemFieldsPatch, TagKind, WorkspaceId,
};
use serde_json::{Value, json};

use super::{
    at, by_email, code, describe_contact, json_object, path, phone, slug, snapshot, text, timeline, upsert, workspace,
};
use crate::{
    CompanyChanges, ContactRef, EventOutcome, ListKind, NewEvent, NewListEntry, NewSource, NewTag, PageRequest,
    SourceKind, SourceUpdate, Store, TrackingMessage, TrackingOp, TrackingOutcome, Visitor,
};

// ----- Helpers -----

fn new_source(name: &str, write_key: &str) -> NewSource {
    NewSource {
        name: text(name),
        kind: SourceKind::Website,
        write_key: write_key.to_owned(),
        auto_create_fields: false,
        honor_dnt: true,
    }
}

async fn source(store: &dyn Store, ws: WorkspaceId) -> SourceId {
    store.create_source(ws, new_source("官网", &format!("wk_{ws}"))).await.unwrap().id
}

fn anonymous(id: &str) -> Visitor {
    Visitor { user_id: None, anonymous_id: Some(id.to_owned()) }
}

fn known(user_id: &str) -> Visitor {
    Visitor { user_id: Some(user_id.to_owned()), anonymous_id: None }
}

fn both(user_id: &str, anonymous_id: &str) -> Visitor {
    Visitor { user_id: Some(user_id.to_owned()), anonymous_id: Some(anonymous_id.to_owned()) }
}

fn message(message_id: &str, source: SourceId, visitor: Visitor, op: TrackingOp) -> TrackingMessage {
    TrackingMessage { message_id: message_id.to_owned(), source, visitor, op }
}

/// A `track` call with a few properties, sent from a browser.
fn track(
    message_id: &str,
    source: SourceId,
    visitor: Visitor,
    event: &str,
    occurred_at: DateTime<Utc>,
) -> TrackingMessage {
    let op = TrackingOp::Event {
        event_type: event.to_owned(),
        properties: json_object(json!({ "plan": "pro", "seats": 25 })),
        context: json_object(json!({
            "ip": "203.0.113.7",
            "library": { "name": "analytics.js", "version": "5.2.0" },
            "page": { "path": "/pricing", "title": "价格", "url": "https://acme.cn/pricing" },
        })),
        occurred_at,
        received_at: at(100),
    };
    message(message_id, source, visitor, op)
}

/// A `page` call as the tracking API maps it: the page's fields are properties and also the context's page.
fn page_view(message_id: &str, source: SourceId, visitor: Visitor, occurred_at: DateTime<Utc>) -> TrackingMessage {
    let page = json!({ "path": "/", "referrer": "https://www.baidu.com/", "title": "首页", "url": "https://acme.cn/" });
    let op = TrackingOp::Event {
        event_type: "page_viewed".to_owned(),
        properties: json_object(page.clone()),
        context: json_object(json!({ "ip": "203.0.113.7", "locale": "zh-CN", "page": page })),
        occurred_at,
        received_at: at(100),
    };
    message(message_id, source, visitor, op)
}

fn identify(message_id: &str, source: SourceId, visitor: Visitor, changes: ContactChanges) -> TrackingMessage {
    message(message_id, source, visitor, TrackingOp::Identify { changes })
}

fn group(
    message_id: &str,
    source: SourceId,
    visitor: Visitor,
    group_id: &str,
    company: CompanyChanges,
) -> TrackingMessage {
    message(message_id, source, visitor, TrackingOp::Group { group_id: group_id.to_owned(), company })
}

fn alias(message_id: &str, source: SourceId, visitor: Visitor, previous_id: &str) -> TrackingMessage {
    message(message_id, source, visitor, TrackingOp::Alias { previous_id: previous_id.to_owned() })
}

fn first_name(name: &str) -> ContactChanges {
    ContactChanges {
        system: SystemFieldsPatch { first_name: Patch::Set(text(name)), ..SystemFieldsPatch::default() },
        ..ContactChanges::default()
    }
}

/// One line per outcome: `applied 7`, `duplicate`, `rejected unknown_stage`.
async fn ingest(store: &dyn Store, ws: WorkspaceId, messages: Vec<TrackingMessage>) -> Vec<String> {
    let count = messages.len();
    let outcomes = store.ingest_tracking(ws, messages).await.unwrap();
    assert_eq!(outcomes.len(), count);
    outcomes
        .iter()
        .map(|outcome| match outcome {
            TrackingOutcome::Applied { contact_id } => format!("applied {contact_id}"),
            TrackingOutcome::Duplicate => "duplicate".to_owned(),
            TrackingOutcome::Rejected { code, .. } => format!("rejected {code}"),
        })
        .collect()
}

async fn owner_of(store: &dyn Store, ws: WorkspaceId, kind: IdentityKind, value: &str) -> Option<ContactId> {
    let identity = Identity::parse(kind, value).unwrap();
    store.find_contact(ws, &identity).await.unwrap().map(|contact| contact.id)
}

async fn anonymous_contact(store: &dyn Store, ws: WorkspaceId, anonymous_id: &str) -> ContactId {
    owner_of(store, ws, IdentityKind::AnonymousId, anonymous_id).await.expect("the visitor has a contact")
}

// ----- Cases -----

pub async fn sources(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;

    let site = store.create_source(ws, new_source("官网", "wk_site")).await.unwrap();
    assert_eq!(
        (site.workspace_id, site.name.as_str(), site.kind, site.write_key.as_str()),
        (ws, "官网", SourceKind::Website, "wk_site")
    );
    assert_eq!((site.auto_create_fields, site.honor_dnt, site.revoked_at), (false, true, None));
    let app =
        NewSource { kind: SourceKind::App, auto_create_fields: true, honor_dnt: false, ..new_source("App", "wk_app") };
    let app = store.create_source(ws, app).await.unwrap();
    assert_eq!((app.kind, app.auto_create_fields, app.honor_dnt), (SourceKind::App, true, false));
    assert_eq!(
        code(store.create_source(other, new_source("Copy", "wk_site")).await),
        "conflict write_key_exists",
        "write keys are unique across workspaces"
    );
    let ids = |sources: Vec<crate::Source>| sources.iter().map(|source| source.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_sources(ws).await.unwrap()), [site.id, app.id]);
    assert_eq!(ids(store.list_sources(other).await.unwrap()), []);
    assert_eq!(store.get_source(ws, site.id).await.unwrap(), site);
    assert_eq!(code(store.get_source(other, site.id).await), "not_found source");
    assert_eq!(code(store.get_source(ws, SourceId::new(999_999)).await), "not_found source");

    let rename = SourceUpdate { name: Some(text("Website")), honor_dnt: Some(false), ..SourceUpdate::default() };
    assert_eq!(code(store.update_source(other, site.id, rename.clone()).await), "not_found source");
    let renamed = store.update_source(ws, site.id, rename).await.unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.auto_create_fields, renamed.honor_dnt, renamed.write_key.as_str()),
        ("Website", false, false, "wk_site")
    );
    assert_eq!(store.source_by_write_key("wk_site").await.unwrap(), Some(renamed.clone()));
    assert_eq!(store.source_by_write_key("wk_nobody").await.unwrap(), None);

    let rotated = store.rotate_source_key(ws, site.id, "wk_site_2").await.unwrap();
    assert_eq!((rotated.id, rotated.write_key.as_str()), (site.id, "wk_site_2"));
    assert_eq!(store.source_by_write_key("wk_site").await.unwrap(), None, "the old key stops at once");
    assert_eq!(store.source_by_write_key("wk_site_2").await.unwrap().map(|source| source.id), Some(site.id));
    assert_eq!(code(store.rotate_source_key(ws, site.id, "wk_app").await), "conflict write_key_exists");
    assert_eq!(code(store.rotate_source_key(other, site.id, "wk_site_3").await), "not_found source");

    assert_eq!(code(store.revoke_source(other, app.id, at(10)).await), "not_found source");
    let revoked = store.revoke_source(ws, app.id, at(10)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let again = store.revoke_source(ws, app.id, at(20)).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(10)), "the first revocation time is kept");
    assert_eq!(store.source_by_write_key("wk_app").await.unwrap(), None);
    let listed = store.list_sources(ws).await.unwrap();
    assert_eq!(
        listed.iter().map(|source| (source.name.as_str(), source.revoked_at)).collect::<Vec<_>>(),
        [("Website", None), ("App", Some(at(10)))],
        "revoked sources are still listed"
    );
}

pub async fn ingest_anonymous_history_joins_the_identified_contact(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;

    let browsing = vec![
        page_view("m-1", web, anonymous("anon-1"), at(0)),
        track("m-2", web, anonymous("anon-1"), "Whitepaper Downloaded", at(10)),
    ];
    let outcomes = ingest(store, ws, browsing).await;
    let visitor = anonymous_contact(store, ws, "anon-1").await;
    assert_eq!(outcomes, [format!("applied {visitor}"), format!("applied {visitor}")]);
    assert_eq!(describe_contact(store, ws, visitor).await, "stage=raw identities=[anonymous_id:anon-1]");

    let changes = ContactChanges {
        email: Patch::Set(super::email("li@client.cn")),
        stage: Some(slug("mql")),
        add_tags: vec![path("来源/官网")],
        ..first_name("Li")
    };
    let outcomes = ingest(store, ws, vec![identify("m-3", web, both("u-1", "anon-1"), changes)]).await;
    assert_eq!(outcomes, [format!("applied {visitor}")], "the visitor becomes the identified contact");
    let outcomes = ingest(store, ws, vec![track("m-4", web, known("u-1"), "Demo Requested", at(30))]).await;
    assert_eq!(outcomes, [format!("applied {visitor}")]);
    assert_eq!(
        describe_contact(store, ws, visitor).await,
        "email=li@client.cn user_id=u-1 first_name=Li stage=mql tags=[来源/官网] \
         identities=[email:li@client.cn,user_id:u-1,anonymous_id:anon-1]"
    );
    assert_eq!(
        timeline(store, ws, visitor).await,
        [
            "tag_added 来源/官网",
            "stage_changed raw->mql",
            "event Demo Requested",
            "event Whitepaper Downloaded",
            "event page_viewed"
        ]
    );
    assert_eq!(store.count_contacts(ws).await.unwrap(), 1);

    let page = store.contact_timeline(ws, visitor, PageRequest { after: None, limit: 100 }).await.unwrap();
    let events: Vec<&Value> =
        page.items.iter().filter(|entry| entry.kind == "event").map(|entry| &entry.data).collect();
    let home = json!({ "path": "/", "referrer": "https://www.baidu.com/", "title": "首页", "url": "https://acme.cn/" });
    assert_eq!(
        events[2],
        &json!({
            "id": events[2]["id"],
            "type": "page_viewed",
            "properties": home,
            "context": { "ip": "203.0.113.7", "locale": "zh-CN", "page": home },
            "source": web.to_string(),
            "message_id": "m-1",
            "received_at": "2025-06-15T15:08:20Z",
        })
    );
    assert_eq!(
        (&events[1]["properties"], &events[1]["context"]),
        (
            &json!({ "plan": "pro", "seats": 25 }),
            &json!({
                "ip": "203.0.113.7",
                "library": { "name": "analytics.js", "version": "5.2.0" },
                "page": { "path": "/pricing", "title": "价格", "url": "https://acme.cn/pricing" },
            })
        )
    );
    assert_eq!(page.items[2].at, at(30));
}

pub async fn ingest_identify_merges_other_owners(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    let by_mail = upsert(store, ws, by_email("li@client.cn")).await.unwrap().id;
    let by_phone =
        upsert(store, ws, ContactChanges { phone: Patch::Set(phone("13800000001")), ..ContactChanges::default() })
            .await
            .unwrap()
            .id;

    ingest(store, ws, vec![track("m-1", web, anonymous("anon-1"), "Pricing Viewed", at(0))]).await;
    let visitor = anonymous_contact(store, ws, "anon-1").await;
    let changes = ContactChanges {
        email: Patch::Set(super::email("li@client.cn")),
        phone: Patch::Set(phone("13800000001")),
        ..first_name("Li")
    };
    let outcomes = ingest(store, ws, vec![identify("m-2", web, anonymous("anon-1"), changes)]).await;
    assert_eq!(outcomes, [format!("applied {visitor}")], "the visitor's contact survives");
    assert_eq!(
        describe_contact(store, ws, visitor).await,
        "email=li@client.cn phone=13800000001 first_name=Li stage=raw \
         identities=[email:li@client.cn,phone:13800000001,anonymous_id:anon-1]"
    );
    assert_eq!(code(store.get_contact(ws, by_mail).await), "not_found contact");
    assert_eq!(store.merged_into(ws, by_mail).await.unwrap(), Some(visitor));
    assert_eq!(store.merged_into(ws, by_phone).await.unwrap(), Some(visitor));
    assert_eq!(
        timeline(store, ws, visitor).await,
        [format!("merged {by_phone} identify"), format!("merged {by_mail} identify"), "event Pricing Viewed".into()]
    );
    let page = store.contact_timeline(ws, visitor, PageRequest { after: None, limit: 1 }).await.unwrap();
    let web_actor = format!("source:{web}");
    assert_eq!(
        page.items[0].data,
        json!({ "absorbed_id": by_phone.to_string(), "reason": "identify", "actor": web_actor })
    );

    // A new visitor who identifies with a known email is that contact: nothing is created, nothing merged.
    let outcomes = ingest(store, ws, vec![identify("m-3", web, anonymous("anon-2"), by_email("li@client.cn"))]).await;
    assert_eq!(outcomes, [format!("applied {visitor}")]);
    assert_eq!(store.count_contacts(ws).await.unwrap(), 1);
    assert_eq!(owner_of(store, ws, IdentityKind::AnonymousId, "anon-2").await, Some(visitor));
    assert_eq!(timeline(store, ws, visitor).await.len(), 3);

    // A visitor whose anonymous id and user id belong to different contacts is one person: the user's survives.
    ingest(store, ws, vec![track("m-4", web, anonymous("anon-3"), "Signed Up", at(10))]).await;
    let device = anonymous_contact(store, ws, "anon-3").await;
    ingest(store, ws, vec![identify("m-5", web, known("u-9"), by_email("li@client.cn"))]).await;
    let outcomes = ingest(store, ws, vec![track("m-6", web, both("u-9", "anon-3"), "Logged In", at(20))]).await;
    assert_eq!(outcomes, [format!("applied {visitor}")]);
    assert_eq!(store.merged_into(ws, device).await.unwrap(), Some(visitor));
    assert_eq!(
        timeline(store, ws, visitor).await,
        [
            format!("merged {device} identify"),
            format!("merged {by_phone} identify"),
            format!("merged {by_mail} identify"),
            "event Logged In".into(),
            "event Signed Up".into(),
            "event Pricing Viewed".into(),
        ]
    );
}

pub async fn ingest_alias(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;

    // Only the previous id is known: its contact gains the user id.
    ingest(store, ws, vec![track("m-1", web, anonymous("anon-1"), "Visited", at(0))]).await;
    let browser = anonymous_contact(store, ws, "anon-1").await;
    let outcomes = ingest(store, ws, vec![alias("m-2", web, known("u-1"), "anon-1")]).await;
    assert_eq!(outcomes, [format!("applied {browser}")]);
    assert_eq!(
        describe_contact(store, ws, browser).await,
        "user_id=u-1 stage=raw identities=[user_id:u-1,anonymous_id:anon-1]"
    );

    // Only the user is known: nothing changes.
    ingest(store, ws, vec![identify("m-3", web, known("u-2"), by_email("wang@client.cn"))]).await;
    let wang = owner_of(store, ws, IdentityKind::UserId, "u-2").await.unwrap();
    let before = describe_contact(store, ws, wang).await;
    assert_eq!(before, "email=wang@client.cn user_id=u-2 stage=raw identities=[email:wang@client.cn,user_id:u-2]");
    let outcomes = ingest(store, ws, vec![alias("m-4", web, known("u-2"), "never-seen")]).await;
    assert_eq!(outcomes, [format!("applied {wang}")]);
    assert_eq!(describe_contact(store, ws, wang).await, before);

    // Both are known: the previous id's contact (found by its user id) is merged into the user's.
    let outcomes = ingest(store, ws, vec![alias("m-5", web, known("u-2"), "u-1")]).await;
    assert_eq!(outcomes, [format!("applied {wang}")]);
    assert_eq!(store.merged_into(ws, browser).await.unwrap(), Some(wang));
    assert_eq!(
        describe_contact(store, ws, wang).await,
        "email=wang@client.cn user_id=u-2 stage=raw \
         identities=[email:wang@client.cn,user_id:u-1,user_id:u-2,anonymous_id:anon-1]"
    );
    assert_eq!(timeline(store, ws, wang).await, [format!("merged {browser} alias"), "event Visited".into()]);

    // Neither is known: a contact with the user id is created.
    let outcomes = ingest(store, ws, vec![alias("m-6", web, known("u-3"), "ghost")]).await;
    let created = owner_of(store, ws, IdentityKind::UserId, "u-3").await.unwrap();
    assert_eq!(outcomes, [format!("applied {created}")]);
    assert_eq!(describe_contact(store, ws, created).await, "user_id=u-3 stage=raw identities=[user_id:u-3]");

    let outcomes = ingest(store, ws, vec![alias("m-7", web, anonymous("anon-9"), "u-3")]).await;
    assert_eq!(outcomes, ["rejected invalid_message"], "an alias names the user id");
    assert_eq!(store.count_contacts(ws).await.unwrap(), 2);
}

pub async fn ingest_group(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    let client = CompanyChanges {
        name: Some(text("Client Ltd")),
        domain: Patch::Set("client.cn".to_owned()),
        ..CompanyChanges::default()
    };
    let client = store.create_company(ws, client).await.unwrap();
    let describe_company = |company: &crate::Company| {
        format!(
            "{} domain={} industry={} contacts={}",
            company.name,
            company.domain.as_deref().unwrap_or("-"),
            company.industry.as_deref().unwrap_or("-"),
            company.contact_count
        )
    };

    // No company has the group id yet: the one with the domain is adopted.
    let traits = CompanyChanges {
        domain: Patch::Set("client.cn".to_owned()),
        industry: Patch::Set(text("制造业")),
        ..CompanyChanges::default()
    };
    let outcomes = ingest(store, ws, vec![group("m-1", web, known("u-1"), "grp-1", traits)]).await;
    let li = owner_of(store, ws, IdentityKind::UserId, "u-1").await.unwrap();
    assert_eq!(outcomes, [format!("applied {li}")]);
    assert_eq!(store.get_contact(ws, li).await.unwrap().company_id, Some(client.id));
    let adopted = store.get_company(ws, client.id).await.unwrap();
    assert_eq!(describe_company(&adopted), "Client Ltd domain=client.cn industry=制造业 contacts=1");

    // Now the group id finds it.
    let renamed = CompanyChanges { name: Some(text("Client Group")), ..CompanyChanges::default() };
    ingest(store, ws, vec![group("m-2", web, known("u-2"), "grp-1", renamed)]).await;
    let wang = owner_of(store, ws, IdentityKind::UserId, "u-2").await.unwrap();
    assert_eq!(store.get_contact(ws, wang).await.unwrap().company_id, Some(client.id));
    let updated = store.get_company(ws, client.id).await.unwrap();
    assert_eq!(describe_company(&updated), "Client Group domain=client.cn industry=制造业 contacts=2");

    // A new group without a name is named after its id.
    let outcomes = ingest(store, ws, vec![group("m-3", web, known("u-1"), "grp-2", CompanyChanges::default())]).await;
    assert_eq!(outcomes, [format!("applied {li}")]);
    let moved = store.get_contact(ws, li).await.unwrap().company_id.unwrap();
    assert_ne!(moved, client.id);
    assert_eq!(describe_company(&store.get_company(ws, moved).await.unwrap()), "grp-2 domain=- industry=- contacts=1");

    // The domain belongs to another group's company: rejected, and the new visitor is not created either.
    let taken = CompanyChanges { domain: Patch::Set("client.cn".to_owned()), ..CompanyChanges::default() };
    let outcomes = ingest(store, ws, vec![group("m-4", web, known("u-3"), "grp-3", taken)]).await;
    assert_eq!(outcomes, ["rejected company_exists"]);
    assert_eq!(owner_of(store, ws, IdentityKind::UserId, "u-3").await, None);
    let companies = store.list_companies(ws, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert_eq!(companies.items.len(), 2);
}

pub async fn ingest_is_idempotent(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    let messages = || {
        vec![
            track("m-1", web, anonymous("a-1"), "Clicked", at(0)),
            identify("m-2", web, anonymous("a-1"), first_name("Li")),
            track("m-1", web, anonymous("a-1"), "Clicked", at(0)),
            identify("m-2", web, anonymous("a-1"), first_name("Lee")),
            group("m-3", web, anonymous("a-1"), "grp-1", CompanyChanges::default()),
            alias("m-4", web, both("u-1", "a-1"), "a-1"),
            group("m-3", web, anonymous("a-1"), "grp-2", CompanyChanges::default()),
            alias("m-4", web, known("u-2"), "a-1"),
            track("m-2", web, anonymous("a-1"), "Clicked again", at(10)),
        ]
    };
    let outcomes = ingest(store, ws, messages()).await;
    let li = anonymous_contact(store, ws, "a-1").await;
    let applied = format!("applied {li}");
    let duplicate = "duplicate".to_owned();
    assert_eq!(
        outcomes,
        [&applied, &applied, &duplicate, &duplicate, &applied, &applied, &duplicate, &duplicate, &duplicate]
            .map(String::clone),
        "repeats within one call, whatever their kind"
    );
    let state = snapshot(store, ws).await;
    assert_eq!(ingest(store, ws, messages()).await, vec![duplicate.clone(); 9], "and across calls");
    assert_eq!(snapshot(store, ws).await, state);
    assert_eq!(
        describe_contact(store, ws, li).await,
        format!(
            "user_id=u-1 first_name=Li company={} stage=raw identities=[user_id:u-1,anonymous_id:a-1]",
            store.get_contact(ws, li).await.unwrap().company_id.unwrap()
        )
    );
    assert_eq!(timeline(store, ws, li).await, ["event Clicked"]);

    let newcomer = ingest(store, ws, vec![track("m-1", web, anonymous("a-new"), "Clicked", at(0))]).await;
    assert_eq!(newcomer, [duplicate]);
    assert_eq!(owner_of(store, ws, IdentityKind::AnonymousId, "a-new").await, None, "a duplicate creates nobody");

    let rest = NewEvent {
        contact: ContactRef::Id(li),
        event_type: "Clicked".to_owned(),
        properties: serde_json::Map::new(),
        context: serde_json::Map::new(),
        occurred_at: at(0),
        received_at: at(0),
        source: None,
        message_id: Some("m-4".to_owned()),
    };
    assert_eq!(
        store.insert_events(ws, vec![rest]).await.unwrap(),
        [EventOutcome::Duplicate],
        "the REST API's events share the message ids"
    );

    let other = workspace(store, "other").await;
    let elsewhere = source(store, other).await;
    let outcomes = ingest(store, other, vec![track("m-1", elsewhere, anonymous("a-1"), "Clicked", at(0))]).await;
    let theirs = anonymous_contact(store, other, "a-1").await;
    assert_eq!(outcomes, [format!("applied {theirs}")], "message ids are per workspace");
    assert_ne!(theirs, li);
}

pub async fn ingest_rejects_unknown_references(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let web = source(store, ws).await;
    store.create_tag(ws, NewTag { path: path("热门"), kind: TagKind::Dynamic }).await.unwrap();
    let nurture = || ContactChanges { stage: Some(slug("nurture")), ..first_name("Li") };
    let outcomes = ingest(
        store,
        ws,
        vec![
            identify("m-1", web, anonymous("a-1"), nurture()),
            track("m-2", web, anonymous("a-1"), "Clicked", at(0)),
            identify(
                "m-3",
                web,
                anonymous("a-1"),
                ContactChanges { status: Patch::Set(slug("bogus")), ..first_name("X") },
            ),
            identify("m-4", web, anonymous("a-2"), ContactChanges { add_tags: vec![path("热门")], ..first_name("Y") }),
            identify(
                "m-5",
                web,
                anonymous("a-1"),
                ContactChanges { add_tags: vec![path("官网")], ..first_name("Lei") },
            ),
        ],
    )
    .await;
    let li = anonymous_contact(store, ws, "a-1").await;
    assert_eq!(
        outcomes,
        [
            "rejected unknown_stage".to_owned(),
            format!("applied {li}"),
            "rejected unknown_status".to_owned(),
            "rejected dynamic_tag".to_owned(),
            format!("applied {li}"),
        ]
    );
    assert_eq!(
        describe_contact(store, ws, li).await,
        "first_name=Lei stage=raw tags=[官网] identities=[anonymous_id:a-1]"
    );
    assert_eq!(owner_of(store, ws, IdentityKind::AnonymousId, "a-2").await, None, "a rejected message creates nobody");
    assert_eq!(timeline(store, ws, li).await, ["tag_added 官网", "event Clicked"]);

    // A rejected message id was not used up: once the stage exists, the same message applies.
    let entry = NewListEntry { key: slug("nurture"), label: text("Nurture"), position: None };
    store.create_entry(ws, ListKind::Stages, entry).await.unwrap();
    assert_eq!(
        ingest(store, ws, vec![identify("m-1", web, anonymous("a-1"), nurture())]).await,
        [format!("applied {li}")]
    );
    assert_eq!(
        describe_contact(store, ws, li).await,
        "first_name=Li stage=nurture tags=[官网] identities=[anonymous_id:a-1]"
    );
}

//! Companies and contacts: upserts matched by identity, reference checks, listing, updates and their history.

use std::collections::HashSet;
use std::sync::Arc;

use rapport_domain::{CompanyId, ContactChanges, ContactId, Identity, IdentityKind, Patch, SystemFieldsPatch, UserId};
use serde_json::json;

use super::{
    ACTOR, by_email, code, contact, describe, describe_contact, email, phone, slug, snapshot, text, timeline, upsert,
    user, workspace,
};
use crate::{Actor, CompanyChanges, PageRequest, Store, UpsertOutcome};

fn by_user_id(raw: &str) -> ContactChanges {
    ContactChanges { user_id: Patch::Set(raw.to_owned()), ..ContactChanges::default() }
}

fn by_phone(raw: &str) -> ContactChanges {
    ContactChanges { phone: Patch::Set(phone(raw)), ..ContactChanges::default() }
}

fn named(first_name: &str) -> SystemFieldsPatch {
    SystemFieldsPatch { first_name: Patch::Set(text(first_name)), ..SystemFieldsPatch::default() }
}

pub async fn companies(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let company = |name: &str, domain: Option<&str>| CompanyChanges {
        name: Some(text(name)),
        domain: domain.map_or(Patch::Absent, |domain| Patch::Set(domain.to_owned())),
        ..CompanyChanges::default()
    };
    assert_eq!(code(store.create_company(ws, CompanyChanges::default()).await), "invalid missing_field name");
    let client = CompanyChanges {
        industry: Patch::Set(text("制造业")),
        fields: vec![("tier".to_owned(), json!("A")), ("score".to_owned(), json!(80))],
        ..company("Client Ltd", Some("client.cn"))
    };
    let client = store.create_company(ws, client).await.unwrap();
    assert_eq!(
        (client.name.as_str(), client.domain.as_deref(), client.industry.as_deref(), client.size.as_deref()),
        ("Client Ltd", Some("client.cn"), Some("制造业"), None)
    );
    assert_eq!(code(store.create_company(ws, company("Copy", Some("client.cn"))).await), "conflict company_exists");
    let other = store.create_company(ws, company("Other", Some("other.cn"))).await.unwrap();
    let no_domain = store.create_company(ws, company("No domain", None)).await.unwrap();
    store.create_company(ws, company("No domain either", None)).await.unwrap();

    assert_eq!(store.company_by_domain(ws, "client.cn").await.unwrap().map(|company| company.id), Some(client.id));
    assert_eq!(store.company_by_domain(ws, "nobody.cn").await.unwrap(), None);
    let taken = CompanyChanges { domain: Patch::Set("client.cn".into()), ..CompanyChanges::default() };
    assert_eq!(code(store.update_company(ws, other.id, taken.clone()).await), "conflict company_exists");
    let update = CompanyChanges {
        size: Patch::Set(text("100-500")),
        industry: Patch::Clear,
        fields: vec![("tier".to_owned(), json!(null)), ("region".to_owned(), json!("华东"))],
        ..taken
    };
    let updated = store.update_company(ws, client.id, update).await.unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.domain.as_deref(), updated.industry.as_deref(), updated.size.as_deref()),
        ("Client Ltd", Some("client.cn"), None, Some("100-500"))
    );
    assert_eq!(serde_json::Value::Object(updated.fields.clone()), json!({ "score": 80, "region": "华东" }));

    let first = store.list_companies(ws, PageRequest { after: None, limit: 3 }).await.unwrap();
    assert_eq!(first.items.iter().map(|company| company.id).collect::<Vec<_>>(), [client.id, other.id, no_domain.id]);
    assert_eq!(first.next, Some(no_domain.id));
    let rest = store.list_companies(ws, PageRequest { after: first.next, limit: 3 }).await.unwrap();
    assert_eq!((rest.items.len(), rest.next), (1, None));

    let id = upsert(store, ws, ContactChanges { company_id: Patch::Set(client.id), ..by_email("li@client.cn") })
        .await
        .unwrap()
        .id;
    assert_eq!(store.get_company(ws, client.id).await.unwrap().contact_count, 1);
    store.delete_company(ws, client.id).await.unwrap();
    assert_eq!(code(store.get_company(ws, client.id).await), "not_found company");
    assert_eq!(code(store.delete_company(ws, client.id).await), "not_found company");
    assert_eq!(describe_contact(store, ws, id).await, "email=li@client.cn stage=raw identities=[email:li@client.cn]");
}

pub async fn upsert_creates_then_updates(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let created =
        upsert(store, ws, ContactChanges { system: named("Li"), ..by_email("Li.Lei@Client.CN") }).await.unwrap();
    assert!(created.created);
    let contact = store.get_contact(ws, created.id).await.unwrap();
    assert_eq!(contact.created_at, contact.updated_at);
    assert_eq!(
        describe(&contact),
        "email=li.lei@client.cn first_name=Li stage=raw identities=[email:li.lei@client.cn]"
    );

    let system = SystemFieldsPatch {
        first_name: Patch::Clear,
        last_name: Patch::Set(text("Lei")),
        title: Patch::Set(text("采购经理")),
        city: Patch::Set(text("上海")),
        country: Patch::Set(text("CN")),
        source: Patch::Set(text("展会")),
        ..SystemFieldsPatch::default()
    };
    let again = upsert(store, ws, ContactChanges { system, ..by_email("li.lei@client.cn") }).await.unwrap();
    assert_eq!(again, UpsertOutcome { id: created.id, created: false });
    let updated = store.get_contact(ws, created.id).await.unwrap();
    assert_eq!(
        describe(&updated),
        "email=li.lei@client.cn last_name=Lei title=采购经理 city=上海 country=CN source=展会 stage=raw identities=[email:li.lei@client.cn]"
    );
    assert!(updated.updated_at >= contact.updated_at);
    assert_eq!(updated.created_at, contact.created_at);

    let anonymous =
        upsert(store, ws, ContactChanges { system: named("Nobody"), ..ContactChanges::default() }).await.unwrap();
    let anonymous_again =
        upsert(store, ws, ContactChanges { system: named("Nobody"), ..ContactChanges::default() }).await.unwrap();
    assert!(
        anonymous.created && anonymous_again.created && anonymous.id != anonymous_again.id,
        "no identity, no match"
    );
    assert_eq!(describe_contact(store, ws, anonymous.id).await, "first_name=Nobody stage=raw identities=[]");

    let owner = user(store, ws, "wang@acme.cn").await;
    let company = store
        .create_company(ws, CompanyChanges { name: Some(text("Client")), ..CompanyChanges::default() })
        .await
        .unwrap();
    let placed = ContactChanges {
        stage: Some(slug("sql")),
        status: Patch::Set(slug("contacted")),
        owner_id: Patch::Set(owner),
        company_id: Patch::Set(company.id),
        ..by_email("zhao@client.cn")
    };
    let placed = upsert(store, ws, placed).await.unwrap().id;
    assert_eq!(
        describe_contact(store, ws, placed).await,
        format!(
            "email=zhao@client.cn owner={owner} company={} stage=sql status=contacted identities=[email:zhao@client.cn]",
            company.id
        )
    );
    assert_eq!(timeline(store, ws, placed).await, Vec::<String>::new(), "creating a contact records no change");
    let unowned = ContactChanges {
        owner_id: Patch::Clear,
        company_id: Patch::Clear,
        status: Patch::Clear,
        ..by_email("zhao@client.cn")
    };
    upsert(store, ws, unowned).await.unwrap();
    assert_eq!(
        describe_contact(store, ws, placed).await,
        "email=zhao@client.cn stage=sql identities=[email:zhao@client.cn]"
    );
}

pub async fn upsert_fields(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let fields = vec![
        ("budget".to_owned(), json!(5000)),
        ("channel".to_owned(), json!("展会")),
        ("empty".to_owned(), json!(null)),
    ];
    let id = upsert(store, ws, ContactChanges { fields, ..by_email("li@client.cn") }).await.unwrap().id;
    assert_eq!(
        store.get_contact(ws, id).await.unwrap().fields,
        super::json_object(json!({ "budget": 5000, "channel": "展会" }))
    );
    let fields = vec![
        ("budget".to_owned(), json!(null)),
        ("tags_seen".to_owned(), json!(["a", "b"])),
        ("channel".to_owned(), json!("官网")),
    ];
    upsert(store, ws, ContactChanges { fields, ..by_email("li@client.cn") }).await.unwrap();
    assert_eq!(
        store.get_contact(ws, id).await.unwrap().fields,
        super::json_object(json!({ "channel": "官网", "tags_seen": ["a", "b"] }))
    );
    upsert(
        store,
        ws,
        ContactChanges { fields: vec![("tags_seen".to_owned(), json!(["c"]))], ..by_email("li@client.cn") },
    )
    .await
    .unwrap();
    assert_eq!(
        store.get_contact(ws, id).await.unwrap().fields,
        super::json_object(json!({ "channel": "官网", "tags_seen": ["c"] })),
        "a multi-select value is replaced, not merged"
    );
}

pub async fn upsert_identity_precedence(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let by_uid = upsert(store, ws, by_user_id("u-1")).await.unwrap().id;
    let by_mail = contact(store, ws, "b@client.cn").await;

    let outcome = upsert(store, ws, ContactChanges { email: Patch::Set(email("new@client.cn")), ..by_user_id("u-1") })
        .await
        .unwrap();
    assert_eq!(outcome, UpsertOutcome { id: by_uid, created: false });
    assert_eq!(
        describe_contact(store, ws, by_uid).await,
        "email=new@client.cn user_id=u-1 stage=raw identities=[email:new@client.cn,user_id:u-1]"
    );
    let outcome =
        upsert(store, ws, ContactChanges { phone: Patch::Set(phone("+86 138 0000 0001")), ..by_email("b@client.cn") })
            .await
            .unwrap();
    assert_eq!(outcome, UpsertOutcome { id: by_mail, created: false });
    let found = store.find_contact(ws, &Identity::phone(&phone("+8613800000001"))).await.unwrap();
    assert_eq!(found.map(|contact| contact.id), Some(by_mail));

    let before = snapshot(store, ws).await;
    let both = ContactChanges { email: Patch::Set(email("b@client.cn")), ..by_user_id("u-1") };
    assert_eq!(code(upsert(store, ws, both).await), "conflict identity_conflict");
    let both = ContactChanges { phone: Patch::Set(phone("+8613800000001")), ..by_email("new@client.cn") };
    assert_eq!(code(upsert(store, ws, both).await), "conflict identity_conflict");
    assert_eq!(snapshot(store, ws).await, before);

    let phone_first = upsert(store, ws, by_phone("+8613800000001")).await.unwrap();
    assert_eq!(phone_first, UpsertOutcome { id: by_mail, created: false });
}

pub async fn upsert_batch_sees_earlier_items(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let batch = vec![
        ContactChanges { system: named("Li"), ..by_email("li@client.cn") },
        ContactChanges { phone: Patch::Set(phone("13800000001")), ..by_email("li@client.cn") },
        ContactChanges {
            system: SystemFieldsPatch { title: Patch::Set(text("CTO")), ..SystemFieldsPatch::default() },
            ..by_phone("13800000001")
        },
        by_email("wang@client.cn"),
    ];
    let outcomes = store.upsert_contacts(ws, batch, ACTOR).await.unwrap();
    let li = outcomes[0].id;
    assert_eq!(
        outcomes,
        [
            UpsertOutcome { id: li, created: true },
            UpsertOutcome { id: li, created: false },
            UpsertOutcome { id: li, created: false },
            UpsertOutcome { id: outcomes[3].id, created: true },
        ]
    );
    assert_ne!(outcomes[3].id, li);
    assert_eq!(
        describe_contact(store, ws, li).await,
        "email=li@client.cn phone=13800000001 first_name=Li title=CTO stage=raw identities=[email:li@client.cn,phone:13800000001]"
    );
    assert_eq!(store.count_contacts(ws).await.unwrap(), 2);
}

pub async fn upsert_identity_conflict_writes_nothing(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    contact(store, ws, "li@client.cn").await;
    upsert(store, ws, by_phone("13800000001")).await.unwrap();
    let before = snapshot(store, ws).await;

    let batch = vec![
        ContactChanges { add_tags: vec![super::path("新客户")], ..by_email("new@client.cn") },
        ContactChanges { system: named("Changed"), ..by_email("li@client.cn") },
        ContactChanges { phone: Patch::Set(phone("13800000001")), ..by_email("li@client.cn") },
    ];
    assert_eq!(code(store.upsert_contacts(ws, batch, ACTOR).await), "conflict identity_conflict");
    assert_eq!(snapshot(store, ws).await, before);
    assert_eq!(store.find_contact(ws, &Identity::email(&email("new@client.cn"))).await.unwrap(), None);
    assert_eq!(store.count_contacts(ws).await.unwrap(), 2);
}

pub async fn upsert_unknown_references_write_nothing(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let foreign_user = user(store, other, "wang@other.cn").await;
    let foreign_company = store
        .create_company(other, CompanyChanges { name: Some(text("Other")), ..CompanyChanges::default() })
        .await
        .unwrap()
        .id;
    contact(store, ws, "li@client.cn").await;
    let before = snapshot(store, ws).await;

    let cases = [
        (ContactChanges { stage: Some(slug("won")), ..by_email("li@client.cn") }, "unknown_stage", "stage"),
        (ContactChanges { status: Patch::Set(slug("lost")), ..by_email("li@client.cn") }, "unknown_status", "status"),
        (
            ContactChanges { owner_id: Patch::Set(foreign_user), ..by_email("li@client.cn") },
            "unknown_owner",
            "owner_id",
        ),
        (
            ContactChanges { owner_id: Patch::Set(UserId::new(999_999)), ..by_email("n@client.cn") },
            "unknown_owner",
            "owner_id",
        ),
        (
            ContactChanges { company_id: Patch::Set(foreign_company), ..by_email("n@client.cn") },
            "unknown_company",
            "company_id",
        ),
        (
            ContactChanges { company_id: Patch::Set(CompanyId::new(999_999)), ..by_email("n@client.cn") },
            "unknown_company",
            "company_id",
        ),
    ];
    for (bad, error, field) in cases {
        assert_eq!(code(upsert(store, ws, bad.clone()).await), format!("invalid {error} {field}"));
        let batch =
            vec![by_email("new@client.cn"), ContactChanges { system: named("Li"), ..by_email("li@client.cn") }, bad];
        assert_eq!(code(store.upsert_contacts(ws, batch, ACTOR).await), format!("invalid {error} contacts[2].{field}"));
        assert_eq!(snapshot(store, ws).await, before, "{error}");
    }
}

pub async fn contact_identity_columns(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let id = upsert(store, ws, ContactChanges { user_id: Patch::Set("u-1".into()), ..by_email("old@client.cn") })
        .await
        .unwrap()
        .id;
    let changes = ContactChanges { email: Patch::Set(email("new@client.cn")), ..ContactChanges::default() };
    store.update_contact(ws, id, changes, ACTOR).await.unwrap();
    assert_eq!(
        describe_contact(store, ws, id).await,
        "email=new@client.cn user_id=u-1 stage=raw identities=[email:new@client.cn,email:old@client.cn,user_id:u-1]"
    );
    for identity in [Identity::email(&email("old@client.cn")), Identity::email(&email("new@client.cn"))] {
        let found = store.find_contact(ws, &identity).await.unwrap();
        assert_eq!(found.map(|contact| contact.id), Some(id), "{identity:?}");
    }

    let cleared = ContactChanges { email: Patch::Clear, user_id: Patch::Clear, ..ContactChanges::default() };
    let cleared = store.update_contact(ws, id, cleared, ACTOR).await.unwrap();
    assert_eq!(describe(&cleared), "stage=raw identities=[email:new@client.cn,email:old@client.cn,user_id:u-1]");
    let by_old =
        upsert(store, ws, ContactChanges { system: named("Back"), ..by_email("old@client.cn") }).await.unwrap();
    assert_eq!(by_old, UpsertOutcome { id, created: false }, "a cleared email still identifies the person");
    let found = store.find_contact(ws, &Identity::from_stored(IdentityKind::UserId, "u-1".into())).await.unwrap();
    assert_eq!(found.map(|contact| contact.id), Some(id));

    let other = contact(store, ws, "other@client.cn").await;
    let taken = ContactChanges { email: Patch::Set(email("old@client.cn")), ..ContactChanges::default() };
    assert_eq!(code(store.update_contact(ws, other, taken, ACTOR).await), "conflict identity_conflict");
}

pub async fn list_contacts_paging(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    // The first twelve share one call and so, on most backends, one `updated_at`: paging must not lose or repeat
    // contacts that tie on it.
    let batch = (0..12).map(|index| by_email(&format!("c{index:02}@client.cn"))).collect();
    let mut created: Vec<ContactId> =
        store.upsert_contacts(ws, batch, ACTOR).await.unwrap().into_iter().map(|outcome| outcome.id).collect();
    for index in 12..25 {
        created.push(contact(store, ws, &format!("c{index:02}@client.cn")).await);
    }
    let newest_first: Vec<ContactId> = created.iter().rev().copied().collect();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = Vec::new();
    loop {
        let page = store.list_contacts(ws, PageRequest { after, limit: 10 }).await.unwrap();
        pages.push(page.items.len());
        seen.extend(page.items.iter().map(|contact| contact.id));
        if let (Some(next), Some(last)) = (page.next, page.items.last()) {
            assert_eq!((next.id, next.updated_at), (last.id, last.updated_at));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, [10, 10, 5]);
    assert_eq!(seen, newest_first);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);

    let page = store.list_contacts(ws, PageRequest { after: None, limit: 25 }).await.unwrap();
    assert_eq!((page.items.len(), page.next), (25, None), "no next page when nothing follows");
    assert_eq!(page.items[0].identities, [Identity::email(&email("c24@client.cn"))]);

    store
        .update_contact(ws, created[3], ContactChanges { system: named("Touched"), ..ContactChanges::default() }, ACTOR)
        .await
        .unwrap();
    let page = store.list_contacts(ws, PageRequest { after: None, limit: 2 }).await.unwrap();
    assert_eq!(page.items.iter().map(|contact| contact.id).collect::<Vec<_>>(), [created[3], created[24]]);
    assert_eq!(store.count_contacts(ws).await.unwrap(), 25);
}

pub async fn update_contact_records_history(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let wang = user(store, ws, "wang@acme.cn").await;
    let actor = Actor::User(wang);
    let id = contact(store, ws, "li@client.cn").await;

    let qualify = ContactChanges {
        stage: Some(slug("mql")),
        status: Patch::Set(slug("contacted")),
        reason: Some("downloaded the white paper".into()),
        ..ContactChanges::default()
    };
    let updated = store.update_contact(ws, id, qualify, actor).await.unwrap();
    assert_eq!(describe(&updated), "email=li@client.cn stage=mql status=contacted identities=[email:li@client.cn]");
    let page = store.contact_timeline(ws, id, PageRequest { after: None, limit: 10 }).await.unwrap();
    let data: Vec<_> = page.items.iter().map(|entry| (entry.kind.as_str(), entry.data.clone())).collect();
    let stage_data =
        json!({ "from": "raw", "to": "mql", "actor": format!("user:{wang}"), "reason": "downloaded the white paper" });
    let status_data = json!({ "from": null, "to": "contacted", "actor": format!("user:{wang}"), "reason": "downloaded the white paper" });
    assert_eq!(data.len(), 2);
    assert!(data.contains(&("stage_changed", stage_data)), "{data:?}");
    assert!(data.contains(&("status_changed", status_data)), "{data:?}");

    let same =
        ContactChanges { stage: Some(slug("mql")), status: Patch::Set(slug("contacted")), ..ContactChanges::default() };
    store.update_contact(ws, id, same, actor).await.unwrap();
    assert_eq!(timeline(store, ws, id).await.len(), 2, "unchanged stage and status record nothing");

    store
        .update_contact(ws, id, ContactChanges { status: Patch::Clear, ..ContactChanges::default() }, ACTOR)
        .await
        .unwrap();
    let upserted = ContactChanges { stage: Some(slug("customer")), ..by_email("li@client.cn") };
    upsert(store, ws, upserted).await.unwrap();
    let lines = timeline(store, ws, id).await;
    assert_eq!(&lines[..2], ["stage_changed mql->customer", "status_changed contacted->-"]);
    let page = store.contact_timeline(ws, id, PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(page.items[0].data, json!({ "from": "mql", "to": "customer", "actor": "system", "reason": null }));

    let before = snapshot(store, ws).await;
    let unknown = ContactChanges { stage: Some(slug("won")), system: named("X"), ..ContactChanges::default() };
    assert_eq!(code(store.update_contact(ws, id, unknown, actor).await), "invalid unknown_stage stage");
    let unknown = ContactChanges { status: Patch::Set(slug("lost")), ..ContactChanges::default() };
    assert_eq!(code(store.update_contact(ws, id, unknown, actor).await), "invalid unknown_status status");
    assert_eq!(snapshot(store, ws).await, before);
    assert_eq!(
        code(store.update_contact(ws, ContactId::new(999_999), ContactChanges::default(), actor).await),
        "not_found contact"
    );
}

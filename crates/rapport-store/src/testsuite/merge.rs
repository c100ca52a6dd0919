//! Merging contacts: which values survive, what moves, the `merged` record, and where an absorbed id leads.

use std::sync::Arc;

use rapport_domain::{ContactChanges, ContactId, Identity, Patch, SourceId, SystemFieldsPatch, WorkspaceId};
use serde_json::json;

use super::{
    ACTOR, at, by_email, code, describe, describe_contact, path, phone, slug, snapshot, text, timeline, upsert, user,
    workspace,
};
use crate::{
    Actor, CompanyChanges, ContactRef, EventOutcome, MergeReason, NewEvent, PageRequest, Store, TrackingMessage,
    TrackingOp, TrackingOutcome, Visitor,
};

fn system(first_name: Option<&str>, title: Option<&str>, city: Option<&str>) -> SystemFieldsPatch {
    let set = |value: Option<&str>| value.map_or(Patch::Absent, |value| Patch::Set(text(value)));
    SystemFieldsPatch {
        first_name: set(first_name),
        title: set(title),
        city: set(city),
        ..SystemFieldsPatch::default()
    }
}

async fn company(store: &dyn Store, ws: WorkspaceId, name: &str) -> rapport_domain::CompanyId {
    let changes = CompanyChanges { name: Some(text(name)), ..CompanyChanges::default() };
    store.create_company(ws, changes).await.unwrap().id
}

fn event(contact: ContactId, event_type: &str, seconds: i64, message_id: &str) -> NewEvent {
    NewEvent {
        contact: ContactRef::Id(contact),
        event_type: event_type.to_owned(),
        properties: serde_json::Map::new(),
        context: serde_json::Map::new(),
        occurred_at: at(seconds),
        received_at: at(seconds),
        source: None,
        message_id: Some(message_id.to_owned()),
    }
}

async fn merge(
    store: &dyn Store,
    ws: WorkspaceId,
    survivor: ContactId,
    absorbed: ContactId,
) -> rapport_domain::Contact {
    store.merge_contacts(ws, survivor, absorbed, MergeReason::Api, ACTOR).await.unwrap()
}

pub async fn merge_keeps_recent_values(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let wang = user(store, ws, "wang@acme.cn").await;
    let one = company(store, ws, "One").await;
    let two = company(store, ws, "Two").await;

    let survivor = ContactChanges {
        system: SystemFieldsPatch {
            last_name: Patch::Set(text("Lei")),
            ..system(Some("Li"), Some("Engineer"), Some("北京"))
        },
        owner_id: Patch::Set(wang),
        company_id: Patch::Set(one),
        stage: Some(slug("mql")),
        status: Patch::Set(slug("contacted")),
        fields: vec![
            ("budget".to_owned(), json!(100)),
            ("region".to_owned(), json!("华北")),
            ("tier".to_owned(), json!("A")),
        ],
        ..by_email("li@client.cn")
    };
    let survivor = store.get_contact(ws, upsert(store, ws, survivor).await.unwrap().id).await.unwrap();
    // Created, and so updated, later: its non-empty values win.
    let absorbed = ContactChanges {
        phone: Patch::Set(phone("13800000002")),
        system: system(Some("Lee"), None, Some("上海")),
        company_id: Patch::Set(two),
        fields: vec![
            ("budget".to_owned(), json!(200)),
            ("region".to_owned(), json!("")),
            ("extra".to_owned(), json!(["x"])),
        ],
        ..by_email("lee@client.cn")
    };
    let absorbed = upsert(store, ws, absorbed).await.unwrap().id;

    let merged = merge(store, ws, survivor.id, absorbed).await;
    assert_eq!(merged.id, survivor.id);
    assert_eq!(
        describe(&merged),
        format!(
            "email=lee@client.cn phone=13800000002 first_name=Lee last_name=Lei title=Engineer city=上海 \
             owner={wang} company={two} fields={{\"budget\":200,\"extra\":[\"x\"],\"region\":\"华北\",\"tier\":\"A\"}} \
             stage=mql status=contacted identities=[email:lee@client.cn,email:li@client.cn,phone:13800000002]"
        )
    );
    assert_eq!(merged.created_at, survivor.created_at, "the earlier creation is kept");
    assert!(merged.updated_at > survivor.updated_at);
    assert_eq!(store.get_contact(ws, survivor.id).await.unwrap(), merged);

    // The survivor can be the more recent one: then its values win, and the absorbed contact's earlier creation
    // time is kept.
    let older = ContactChanges { system: system(Some("Old"), Some("CEO"), None), ..by_email("old@client.cn") };
    let older = upsert(store, ws, older).await.unwrap().id;
    let older_created = store.get_contact(ws, older).await.unwrap().created_at;
    let newer = ContactChanges { system: system(Some("New"), None, None), ..by_email("new@client.cn") };
    let newer = upsert(store, ws, newer).await.unwrap().id;
    let moved = ContactChanges { system: system(None, None, Some("深圳")), ..ContactChanges::default() };
    store.update_contact(ws, older, moved, ACTOR).await.unwrap();
    let merged = merge(store, ws, newer, older).await;
    assert_eq!(
        describe(&merged),
        "email=old@client.cn first_name=Old title=CEO city=深圳 stage=raw \
         identities=[email:new@client.cn,email:old@client.cn]"
    );
    assert_eq!(merged.created_at, older_created);
}

pub async fn merge_moves_history(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let survivor = upsert(store, ws, by_email("li@client.cn")).await.unwrap().id;
    let absorbed = ContactChanges {
        phone: Patch::Set(phone("13800000002")),
        user_id: Patch::Set("u-7".to_owned()),
        ..by_email("lee@client.cn")
    };
    let absorbed = upsert(store, ws, absorbed).await.unwrap().id;
    store.add_contact_tags(ws, survivor, &[path("VIP"), path("行业/制造业")], ACTOR).await.unwrap();
    store.add_contact_tags(ws, absorbed, &[path("VIP"), path("渠道/展会")], ACTOR).await.unwrap();
    let stage = ContactChanges { stage: Some(slug("sql")), ..ContactChanges::default() };
    store.update_contact(ws, absorbed, stage, ACTOR).await.unwrap();
    let note = store.add_note(ws, absorbed, "Met at the expo", None, ACTOR).await.unwrap();
    store
        .insert_events(ws, vec![event(absorbed, "visit", 10, "m-absorbed"), event(survivor, "open", 20, "m-survivor")])
        .await
        .unwrap();

    let wang = user(store, ws, "wang@acme.cn").await;
    let merged = store.merge_contacts(ws, survivor, absorbed, MergeReason::Api, Actor::User(wang)).await.unwrap();
    assert_eq!(
        describe(&merged),
        "email=lee@client.cn phone=13800000002 user_id=u-7 stage=sql tags=[VIP,渠道/展会,行业/制造业] \
         identities=[email:lee@client.cn,email:li@client.cn,phone:13800000002,user_id:u-7]"
    );
    assert_eq!(
        timeline(store, ws, survivor).await,
        [
            format!("merged {absorbed} api"),
            "note Met at the expo".into(),
            "stage_changed raw->sql".into(),
            "tag_added 渠道/展会".into(),
            "tag_added VIP".into(),
            "tag_added 行业/制造业".into(),
            "tag_added VIP".into(),
            "event open".into(),
            "event visit".into(),
        ],
        "the absorbed contact's history moves; its tags are not recorded again"
    );
    let first = store.contact_timeline(ws, survivor, PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(
        first.items[0].data,
        json!({ "absorbed_id": absorbed.to_string(), "reason": "api", "actor": format!("user:{wang}") })
    );
    let tags = store.list_tags(ws).await.unwrap();
    assert_eq!(
        tags.iter().map(|tag| format!("{} ({})", tag.path, tag.contact_count)).collect::<Vec<_>>(),
        ["VIP (1)", "渠道 (0)", "渠道/展会 (1)", "行业 (0)", "行业/制造业 (1)"]
    );
    let by_phone = Identity::phone(&phone("13800000002"));
    assert_eq!(store.find_contact(ws, &by_phone).await.unwrap().map(|contact| contact.id), Some(survivor));
    assert_eq!(
        store.insert_events(ws, vec![event(survivor, "visit", 10, "m-absorbed")]).await.unwrap(),
        [EventOutcome::Duplicate],
        "moved events keep their message ids"
    );
    store.delete_note(ws, survivor, note.id).await.unwrap();

    assert_eq!(code(store.get_contact(ws, absorbed).await), "not_found contact");
    assert_eq!(
        code(store.contact_timeline(ws, absorbed, PageRequest { after: None, limit: 10 }).await),
        "not_found contact"
    );
    assert_eq!(store.merged_into(ws, absorbed).await.unwrap(), Some(survivor));
    assert_eq!(store.merged_into(ws, survivor).await.unwrap(), None);
    assert_eq!(store.count_contacts(ws).await.unwrap(), 1);
}

pub async fn merged_into_follows_chains_until_erasure(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let first = upsert(store, ws, by_email("a@client.cn")).await.unwrap().id;
    let second = upsert(store, ws, by_email("b@client.cn")).await.unwrap().id;
    let third = upsert(store, ws, by_email("c@client.cn")).await.unwrap().id;
    store.insert_events(ws, vec![event(first, "visit", 0, "m-a")]).await.unwrap();
    let source = store
        .create_source(
            ws,
            crate::NewSource {
                name: text("官网"),
                kind: crate::SourceKind::Website,
                write_key: "wk_chain".to_owned(),
                auto_create_fields: false,
                honor_dnt: false,
            },
        )
        .await
        .unwrap()
        .id;
    let traits = |message_id: &str| identify_by_email(message_id, source, "a@client.cn");
    let outcomes = store.ingest_tracking(ws, vec![traits("m-identify")]).await.unwrap();
    assert_eq!(outcomes, [TrackingOutcome::Applied { contact_id: first }]);

    merge(store, ws, second, first).await;
    assert_eq!(store.merged_into(ws, first).await.unwrap(), Some(second));
    merge(store, ws, third, second).await;
    assert_eq!(store.merged_into(ws, first).await.unwrap(), Some(third), "chains lead to the last survivor");
    assert_eq!(store.merged_into(ws, second).await.unwrap(), Some(third));
    assert_eq!(
        describe_contact(store, ws, third).await,
        "email=a@client.cn user_id=u-a stage=raw \
         identities=[email:a@client.cn,email:b@client.cn,email:c@client.cn,user_id:u-a]"
    );

    store.delete_contact(ws, third).await.unwrap();
    assert_eq!(store.merged_into(ws, first).await.unwrap(), None, "erasure leaves no pointer to the person");
    assert_eq!(store.merged_into(ws, second).await.unwrap(), None);
    assert_eq!(store.find_contact(ws, &Identity::email(&super::email("a@client.cn"))).await.unwrap(), None);
    let again = upsert(store, ws, by_email("a@client.cn")).await.unwrap().id;
    assert!(![first, second, third].contains(&again), "ids are never handed out twice");
    assert!(
        matches!(
            store.insert_events(ws, vec![event(again, "visit", 0, "m-a")]).await.unwrap()[..],
            [EventOutcome::Stored { .. }]
        ),
        "an erased event's message id is forgotten"
    );
    let outcomes = store.ingest_tracking(ws, vec![traits("m-identify")]).await.unwrap();
    assert_eq!(outcomes, [TrackingOutcome::Applied { contact_id: again }], "so is an erased identify's");
}

pub async fn merge_errors(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let other = workspace(store, "other").await;
    let li = upsert(store, ws, by_email("li@client.cn")).await.unwrap().id;
    let wang = upsert(store, ws, by_email("wang@client.cn")).await.unwrap().id;
    let theirs = upsert(store, other, by_email("zhao@client.cn")).await.unwrap().id;
    let missing = ContactId::new(999_999);
    let before = (snapshot(store, ws).await, snapshot(store, other).await);

    let attempt = |survivor, absorbed| store.merge_contacts(ws, survivor, absorbed, MergeReason::Api, ACTOR);
    assert_eq!(code(attempt(li, li).await), "invalid same_contact absorb");
    assert_eq!(code(attempt(li, missing).await), "not_found contact");
    assert_eq!(code(attempt(missing, li).await), "not_found contact");
    assert_eq!(code(attempt(li, theirs).await), "not_found contact", "another workspace's contact reads as absent");
    assert_eq!(code(attempt(theirs, li).await), "not_found contact");
    assert_eq!(code(store.merge_contacts(other, li, wang, MergeReason::Api, ACTOR).await), "not_found contact");
    assert_eq!((snapshot(store, ws).await, snapshot(store, other).await), before, "a failed merge writes nothing");

    merge(store, ws, li, wang).await;
    assert_eq!(store.merged_into(ws, wang).await.unwrap(), Some(li));
    assert_eq!(store.merged_into(other, wang).await.unwrap(), None, "pointers are per workspace");
    assert_eq!(store.merged_into(ws, missing).await.unwrap(), None);
}

fn identify_by_email(message_id: &str, source: SourceId, email: &str) -> TrackingMessage {
    TrackingMessage {
        message_id: message_id.to_owned(),
        source,
        visitor: Visitor { user_id: Some("u-a".to_owned()), anonymous_id: None },
        op: TrackingOp::Identify { changes: by_email(email) },
    }
}

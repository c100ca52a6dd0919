//! Events, notes, the timeline that merges them with recorded changes, and erasure.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rapport_domain::{ContactChanges, ContactId, Identity, IdentityKind, NoteTemplateId, WorkspaceId};
use serde_json::json;

use super::{
    ACTOR, at, by_email, code, contact, describe_contact, email, json_object, path, slug, text, timeline, upsert, user,
    workspace,
};
use crate::{
    Actor, ContactRef, EventOutcome, ListEntryUpdate, ListKind, NewEvent, NoteTemplateInput, PageRequest, Store,
};

fn event(contact: ContactRef, event_type: &str, occurred_at: DateTime<Utc>, message_id: Option<&str>) -> NewEvent {
    NewEvent {
        contact,
        event_type: event_type.to_owned(),
        properties: json_object(json!({ "path": "/pricing", "title": "价格" })),
        context: json_object(json!({ "ip": "203.0.113.7" })),
        occurred_at,
        received_at: at(0),
        source: Some("web".to_owned()),
        message_id: message_id.map(str::to_owned),
    }
}

fn by_identity(kind: IdentityKind, value: &str) -> ContactRef {
    ContactRef::Identity(Identity::parse(kind, value).unwrap())
}

async fn store_event(store: &dyn Store, ws: WorkspaceId, new_event: NewEvent) -> i64 {
    match store.insert_events(ws, vec![new_event]).await.unwrap()[..] {
        [EventOutcome::Stored { event_id, .. }] => event_id,
        ref other => panic!("not stored: {other:?}"),
    }
}

/// The contact of a stored outcome.
fn stored_contact(outcome: &EventOutcome) -> ContactId {
    match outcome {
        EventOutcome::Stored { contact_id, .. } => *contact_id,
        other => panic!("not stored: {other:?}"),
    }
}

pub async fn timeline_mixes_and_pages(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let id = contact(store, ws, "li@client.cn").await;
    let this = || ContactRef::Id(id);
    // Whole seconds no later than the activities recorded below, which are stamped with the current time.
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();

    store
        .insert_events(
            ws,
            vec![
                event(this(), "e1", now - Duration::hours(2), None),
                event(this(), "e4", now - Duration::hours(3), None),
                event(this(), "e5", now - Duration::hours(3), None),
            ],
        )
        .await
        .unwrap();
    store.add_note(ws, id, "Called back", None, ACTOR).await.unwrap();
    let stage = ContactChanges { stage: Some(slug("mql")), ..ContactChanges::default() };
    store.update_contact(ws, id, stage, ACTOR).await.unwrap();
    let future = store_event(store, ws, event(this(), "e2", now + Duration::hours(1), Some("m-2"))).await;
    store_event(store, ws, event(this(), "e3", now - Duration::hours(1), None)).await;

    let expected =
        ["event e2", "stage_changed raw->mql", "note Called back", "event e3", "event e1", "event e5", "event e4"];
    assert_eq!(timeline(store, ws, id).await, expected);

    let mut paged = Vec::new();
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let page = store.contact_timeline(ws, id, PageRequest { after, limit: 2 }).await.unwrap();
        sizes.push(page.items.len());
        for entry in &page.items {
            assert_eq!(entry.cursor.at, entry.at);
            assert_eq!(entry.cursor.source, if entry.kind == "event" { 1 } else { 0 });
            paged.push(super::describe_entry(&entry.kind, &entry.data));
        }
        match page.next {
            Some(next) => {
                assert_eq!(Some(next), page.items.last().map(|entry| entry.cursor));
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 2, 1]);
    assert_eq!(paged, expected);

    let first = store.contact_timeline(ws, id, PageRequest { after: None, limit: 1 }).await.unwrap();
    let entry = &first.items[0];
    assert_eq!((entry.kind.as_str(), entry.at, entry.cursor.id), ("event", now + Duration::hours(1), future));
    assert_eq!(
        entry.data,
        json!({
            "id": future,
            "type": "e2",
            "properties": { "path": "/pricing", "title": "价格" },
            "context": { "ip": "203.0.113.7" },
            "source": "web",
            "message_id": "m-2",
            "received_at": "2025-06-15T15:06:40Z",
        })
    );
}

pub async fn notes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let wang = user(store, ws, "wang@acme.cn").await;
    let li = contact(store, ws, "li@client.cn").await;
    let other = contact(store, ws, "other@client.cn").await;
    let input = NoteTemplateInput { name: text("Call"), status: None, body: text("Called: ") };
    let template = store.create_note_template(ws, input).await.unwrap();

    let note = store.add_note(ws, li, "Called: 下周演示", Some(template.id), Actor::User(wang)).await.unwrap();
    assert_eq!(
        (note.contact_id, note.body.as_str(), note.author.clone(), note.template_id),
        (li, "Called: 下周演示", format!("user:{wang}"), Some(template.id))
    );
    let plain = store.add_note(ws, li, "Plain", None, ACTOR).await.unwrap();
    assert_eq!((plain.author.as_str(), plain.template_id), ("system", None));

    let page = store.contact_timeline(ws, li, PageRequest { after: None, limit: 10 }).await.unwrap();
    let entries: Vec<_> =
        page.items.iter().map(|entry| (entry.kind.as_str(), entry.cursor.id, entry.data.clone())).collect();
    assert_eq!(
        entries,
        [
            ("note", plain.id, json!({ "id": plain.id, "body": "Plain", "author": "system", "template_id": null })),
            (
                "note",
                note.id,
                json!({ "id": note.id, "body": "Called: 下周演示", "author": format!("user:{wang}"), "template_id": template.id.get() })
            ),
        ]
    );
    assert_eq!(page.items[1].at, note.created_at);

    let missing_template = Some(NoteTemplateId::new(999_999));
    assert_eq!(
        code(store.add_note(ws, li, "x", missing_template, ACTOR).await),
        "invalid unknown_note_template template_id"
    );
    assert_eq!(code(store.add_note(ws, ContactId::new(999_999), "x", None, ACTOR).await), "not_found contact");
    assert_eq!(code(store.delete_note(ws, other, note.id).await), "not_found note");
    store.delete_note(ws, li, note.id).await.unwrap();
    assert_eq!(timeline(store, ws, li).await, ["note Plain"]);
    assert_eq!(code(store.delete_note(ws, li, note.id).await), "not_found note");

    store.add_contact_tags(ws, li, &[path("VIP")], ACTOR).await.unwrap();
    let tag_activity =
        store.contact_timeline(ws, li, PageRequest { after: None, limit: 1 }).await.unwrap().items[0].cursor.id;
    assert_eq!(
        code(store.delete_note(ws, li, tag_activity).await),
        "not_found note",
        "only notes are deleted as notes"
    );
}

pub async fn delete_contact_erases(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let changes =
        ContactChanges { phone: rapport_domain::Patch::Set(super::phone("13800000001")), ..by_email("li@client.cn") };
    let li = upsert(store, ws, changes).await.unwrap().id;
    let wang = contact(store, ws, "wang@client.cn").await;
    store.add_contact_tags(ws, li, &[path("VIP")], ACTOR).await.unwrap();
    store.add_contact_tags(ws, wang, &[path("VIP")], ACTOR).await.unwrap();
    store.add_note(ws, li, "Called", None, ACTOR).await.unwrap();
    store_event(store, ws, event(ContactRef::Id(li), "visit", at(10), Some("m-1"))).await;
    store_event(store, ws, event(ContactRef::Id(wang), "visit", at(10), Some("m-2"))).await;

    store.delete_contact(ws, li).await.unwrap();
    assert_eq!(code(store.get_contact(ws, li).await), "not_found contact");
    assert_eq!(code(store.contact_timeline(ws, li, PageRequest { after: None, limit: 10 }).await), "not_found contact");
    assert_eq!(code(store.delete_contact(ws, li).await), "not_found contact");
    assert_eq!(store.find_contact(ws, &Identity::email(&email("li@client.cn"))).await.unwrap(), None);
    assert_eq!(store.find_contact(ws, &Identity::phone(&super::phone("13800000001"))).await.unwrap(), None);
    let tags = store.list_tags(ws).await.unwrap();
    assert_eq!(tags.iter().map(|tag| (tag.path.as_str(), tag.contact_count)).collect::<Vec<_>>(), [("VIP", 1)]);
    assert_eq!(store.count_contacts(ws).await.unwrap(), 1);
    assert_eq!(timeline(store, ws, wang).await, ["tag_added VIP", "event visit"]);

    let again = upsert(store, ws, by_email("li@client.cn")).await.unwrap();
    assert!(again.created && again.id != li);
    assert_eq!(
        describe_contact(store, ws, again.id).await,
        "email=li@client.cn stage=raw identities=[email:li@client.cn]"
    );
    let replay =
        store.insert_events(ws, vec![event(ContactRef::Id(again.id), "visit", at(10), Some("m-1"))]).await.unwrap();
    assert!(
        matches!(replay[..], [EventOutcome::Stored { .. }]),
        "erased events leave no trace, not even their message id"
    );
}

pub async fn insert_events_outcomes(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let li = contact(store, ws, "li@client.cn").await;
    let li_before = store.get_contact(ws, li).await.unwrap();
    store.update_entry(ws, ListKind::Stages, "mql", ListEntryUpdate { label: None, position: Some(0) }).await.unwrap();

    let events = vec![
        event(by_identity(IdentityKind::Email, "New@Client.cn"), "signup", at(0), None),
        event(by_identity(IdentityKind::Email, "new@client.cn"), "visit", at(10), None),
        event(by_identity(IdentityKind::Email, "li@client.cn"), "visit", at(20), None),
        event(ContactRef::Id(li), "open", at(30), None),
        event(ContactRef::Id(ContactId::new(999_999)), "open", at(40), None),
        event(by_identity(IdentityKind::AnonymousId, "anon-1"), "visit", at(50), None),
    ];
    let outcomes = store.insert_events(ws, events).await.unwrap();
    assert_eq!(outcomes.len(), 6);
    let new = stored_contact(&outcomes[0]);
    let anonymous = stored_contact(&outcomes[5]);
    let contacts: Vec<_> = outcomes.iter().take(4).map(stored_contact).collect();
    assert_eq!(contacts, [new, new, li, li]);
    assert_eq!(outcomes[4], EventOutcome::UnknownContact);
    let mut event_ids: Vec<i64> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            EventOutcome::Stored { event_id, .. } => Some(*event_id),
            _ => None,
        })
        .collect();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 5);

    assert_eq!(
        describe_contact(store, ws, new).await,
        "email=new@client.cn stage=mql identities=[email:new@client.cn]"
    );
    assert_eq!(describe_contact(store, ws, anonymous).await, "stage=mql identities=[anonymous_id:anon-1]");
    assert_eq!(timeline(store, ws, new).await, ["event visit", "event signup"]);
    assert_eq!(timeline(store, ws, li).await, ["event open", "event visit"]);
    assert_eq!(
        store.get_contact(ws, li).await.unwrap().updated_at,
        li_before.updated_at,
        "events do not touch contacts"
    );
    assert_eq!(store.count_contacts(ws).await.unwrap(), 3);
}

pub async fn insert_events_duplicates(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let id = contact(store, ws, "li@client.cn").await;
    let send = |message_id: Option<&str>| event(ContactRef::Id(id), "visit", at(0), message_id);

    let first = store
        .insert_events(ws, vec![send(Some("m-1")), send(Some("m-2")), send(Some("m-1")), send(None), send(None)])
        .await
        .unwrap();
    let kinds = |outcomes: &[EventOutcome]| {
        outcomes
            .iter()
            .map(|outcome| match outcome {
                EventOutcome::Stored { .. } => "stored",
                EventOutcome::Duplicate => "duplicate",
                EventOutcome::UnknownContact => "unknown",
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(&first), ["stored", "stored", "duplicate", "stored", "stored"]);

    let newcomer = event(by_identity(IdentityKind::Email, "new@client.cn"), "visit", at(0), Some("m-1"));
    let second = store.insert_events(ws, vec![send(Some("m-2")), send(Some("m-3")), newcomer]).await.unwrap();
    assert_eq!(kinds(&second), ["duplicate", "stored", "duplicate"]);
    assert_eq!(
        store.find_contact(ws, &Identity::email(&email("new@client.cn"))).await.unwrap(),
        None,
        "a duplicate creates no contact"
    );
    assert_eq!(timeline(store, ws, id).await.len(), 5);

    let other = workspace(store, "other").await;
    let elsewhere = event(by_identity(IdentityKind::Email, "li@client.cn"), "visit", at(0), Some("m-1"));
    assert_eq!(
        kinds(&store.insert_events(other, vec![elsewhere]).await.unwrap()),
        ["stored"],
        "message ids are per workspace"
    );
}

//! What the audience engine relies on, beyond the shared suite's cases: the change feed delivers every committed
//! write once also when transactions commit out of order (which only PostgreSQL has), reads stop between
//! transactions, events merged or erased after they were stored, `scan_events` over several id ranges, and the
//! workspace boundaries of segments, memberships and the contacts that filters read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rapport_domain::{
    BoundedText, ContactChanges, ContactId, EmailAddress, Patch, SegmentId, Slug, SystemFieldsPatch, TagId, TagKind,
    TagPath, WorkspaceId,
};
use rapport_store::{
    Actor, ChangeCursor, ChangeSubject, CompanyChanges, ConsentChannel, ContactRef, EventOutcome, MembershipChanges,
    MergeReason, NewEvent, NewField, NewSegment, NewTag, PageRequest, SegmentUpdate, Store, StoreError, StoreResult,
};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn the_feed_delivers_each_write_once() {
    let (_database, store, ws) = fresh().await;
    let mut cursor = store.change_head().await.unwrap();
    assert_eq!(read(&store, &mut cursor).await, (set(&[]), vec![]), "nothing happened after the head");

    let li = upsert(&store, ws, "li@client.cn", &["vip"]).await;
    assert_eq!(read(&store, &mut cursor).await, (set(&[&contact(li), "schema"]), vec![]), "a contact and its tag");
    assert_eq!(read(&store, &mut cursor).await, (set(&[]), vec![]), "a read starts where the last one ended");

    let changes = ContactChanges {
        system: SystemFieldsPatch { first_name: Patch::Set(text("Li")), ..SystemFieldsPatch::default() },
        ..ContactChanges::default()
    };
    store.update_contact(ws, li, changes, Actor::System).await.unwrap();
    let wang = upsert(&store, ws, "wang@client.cn", &[]).await;
    store.add_contact_tags(ws, wang, &[path("行业/制造业")], Actor::System).await.unwrap();
    assert_eq!(read(&store, &mut cursor).await, (set(&[&contact(li), &contact(wang), "schema"]), vec![]));

    let page = json!({ "url": "https://acme.cn/pricing", "title": "价格", "plan": "pro" });
    let viewed = insert_event(&store, ws, li, "page_view", page.clone()).await;
    let signed_up = insert_event(&store, ws, li, "signed_up", json!({ "plan": "pro", "seats": 5 })).await;
    let (changes, events) = read(&store, &mut cursor).await;
    assert_eq!(changes, set(&[]));
    assert_eq!(
        events,
        [
            format!("{viewed} {li} page_view {page}"),
            format!("{signed_up} {li} signed_up {}", json!({ "plan": "pro", "seats": 5 })),
        ]
    );

    // An event stored before its contact is merged away is read under the survivor; one of an erased contact is
    // gone with it.
    let chen = upsert(&store, ws, "chen@client.cn", &[]).await;
    let moved = insert_event(&store, ws, wang, "signed_up", json!({})).await;
    insert_event(&store, ws, chen, "signed_up", json!({})).await;
    store.merge_contacts(ws, li, wang, MergeReason::Api, Actor::System).await.unwrap();
    store.delete_contact(ws, chen).await.unwrap();
    let (changes, events) = read(&store, &mut cursor).await;
    assert_eq!(changes, set(&[&contact(li), &contact(wang), &contact(chen)]));
    assert_eq!(events, [format!("{moved} {li} signed_up {{}}")]);

    let company = store.create_company(ws, company_changes("Acme")).await.unwrap().id;
    store.update_company(ws, company, company_changes("Acme Ltd")).await.unwrap();
    store.create_field(ws, field("budget")).await.unwrap();
    assert_eq!(read(&store, &mut cursor).await, (set(&[&format!("company {company}"), "schema"]), vec![]));

    store.delete_contact(ws, li).await.unwrap();
    assert_eq!(read(&store, &mut cursor).await, (set(&[&contact(li)]), vec![]));

    // Everything read is pruned; what comes after stays.
    store.prune_changes(cursor).await.unwrap();
    let zhao = upsert(&store, ws, "zhao@client.cn", &[]).await;
    let mut from_start = ChangeCursor::default();
    assert_eq!(read(&store, &mut from_start).await, (set(&[&contact(zhao)]), vec![]));
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_delivered_late() {
    let (database, store, ws) = fresh().await;
    let early = upsert(&store, ws, "early@client.cn", &[]).await;
    let late = upsert(&store, ws, "late@client.cn", &[]).await;
    let mut cursor = store.change_head().await.unwrap();

    let mut first = PgConnection::connect(database.url()).await.unwrap();
    let mut second = PgConnection::connect(database.url()).await.unwrap();
    let rename = "UPDATE contacts SET first_name = 'X' WHERE id = $1";
    sqlx::query("BEGIN").execute(&mut first).await.unwrap();
    sqlx::query(rename).bind(early.get()).execute(&mut first).await.unwrap();
    sqlx::query("BEGIN").execute(&mut second).await.unwrap();
    sqlx::query(rename).bind(late.get()).execute(&mut second).await.unwrap();
    sqlx::query("COMMIT").execute(&mut second).await.unwrap();

    // The later transaction has committed, but the earlier one may still write below it: the feed waits.
    let head_meanwhile = store.change_head().await.unwrap();
    assert_eq!(read(&store, &mut cursor).await, (set(&[]), vec![]));
    sqlx::query("COMMIT").execute(&mut first).await.unwrap();
    assert_eq!(read(&store, &mut cursor).await, (set(&[&contact(early), &contact(late)]), vec![]));
    assert_eq!(read(&store, &mut cursor).await, (set(&[]), vec![]));

    // A head taken while a transaction was open does not pass it either.
    let mut from_head = head_meanwhile;
    assert_eq!(read(&store, &mut from_head).await.0, set(&[&contact(early), &contact(late)]));
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test]
async fn reads_stop_between_transactions() {
    let (_database, store, ws) = fresh().await;
    let mut cursor = store.change_head().await.unwrap();
    // Three calls: one contact, then five at once, then one more.
    let one = upsert(&store, ws, "one@client.cn", &[]).await;
    let items = (0..5).map(|i| by_email(&format!("p{i}@client.cn"))).collect();
    let five: Vec<ContactId> =
        store.upsert_contacts(ws, items, Actor::System).await.unwrap().iter().map(|outcome| outcome.id).collect();
    let last = upsert(&store, ws, "last@client.cn", &[]).await;

    let mut reads = Vec::new();
    loop {
        let batch = store.read_changes(cursor, 2).await.unwrap();
        assert!(batch.next.changes >= cursor.changes);
        if batch.changes.is_empty() {
            break;
        }
        cursor = batch.next;
        reads.push(batch.changes.iter().map(|change| describe_subject(change.subject)).collect::<BTreeSet<_>>());
    }
    let five: Vec<String> = five.into_iter().map(contact).collect();
    let five: Vec<&str> = five.iter().map(String::as_str).collect();
    assert_eq!(reads, [set(&[&contact(one)]), set(&five), set(&[&contact(last)])]);
}

#[tokio::test]
async fn scan_events_leaves_what_the_feed_delivers() {
    let (_database, store, ws) = fresh().await;
    let other = store.create_workspace(&Slug::parse("other").unwrap(), "Other").await.unwrap().id;
    let li = upsert(&store, ws, "li@client.cn", &[]).await;
    let stranger = upsert(&store, other, "li@client.cn", &[]).await;
    let first = insert_event(&store, ws, li, "signed_up", json!({ "n": 1 })).await;
    insert_event(&store, ws, li, "page_view", json!({ "path": "/" })).await;
    insert_event(&store, other, stranger, "signed_up", json!({})).await;
    let second = insert_event(&store, ws, li, "signed_up", json!({ "n": 2 })).await;
    let head = store.change_head().await.unwrap();
    let third = insert_event(&store, ws, li, "signed_up", json!({ "n": 3 })).await;

    let scan = |delivered: ChangeCursor, after: i64, limit: u32| {
        let store = &store;
        async move {
            let types = ["signed_up".to_owned(), "never_seen".to_owned()];
            let facts = store.scan_events(ws, &types, delivered, after, limit).await.unwrap();
            facts.into_iter().map(|fact| (fact.id, fact.properties["n"].clone())).collect::<Vec<_>>()
        }
    };
    assert_eq!(scan(head, 0, 10).await, [(first, json!(1)), (second, json!(2))], "the feed delivers the third");
    assert_eq!(scan(head, 0, 1).await, [(first, json!(1))]);
    assert_eq!(scan(head, first, 10).await, [(second, json!(2))]);

    let mut cursor = head;
    let (_, events) = read(&store, &mut cursor).await;
    assert_eq!(events, [format!("{third} {li} signed_up {}", json!({ "n": 3 }))]);
    let everything = [(first, json!(1)), (second, json!(2)), (third, json!(3))];
    assert_eq!(scan(cursor, 0, 10).await, everything);
    store.prune_changes(cursor).await.unwrap();
    assert_eq!(scan(cursor, 0, 10).await, everything);
}

#[tokio::test]
async fn segments_crud() {
    let (_database, store, ws) = fresh().await;
    let other = store.create_workspace(&Slug::parse("other").unwrap(), "Other").await.unwrap().id;
    let active = store.create_segment(ws, segment("活跃客户", "events.count > 3", None)).await.unwrap();
    assert_eq!((active.version, active.member_count, active.tag_id), (1, 0, None));
    assert_eq!(store.get_segment(ws, active.id).await.unwrap(), active);
    assert_eq!(code(store.create_segment(ws, segment("活跃客户", "x", None)).await), "segment_exists");
    assert_eq!(code(store.get_segment(other, active.id).await), "not_found");

    let manual = store.create_tag(ws, NewTag { path: path("vip"), kind: TagKind::Manual }).await.unwrap().id;
    let dynamic = store.create_tag(ws, NewTag { path: path("高意向"), kind: TagKind::Dynamic }).await.unwrap().id;
    let elsewhere = store.create_tag(other, NewTag { path: path("d"), kind: TagKind::Dynamic }).await.unwrap().id;
    assert_eq!(code(store.create_segment(ws, segment("a", "x", Some(TagId::new(9999)))).await), "unknown_tag:tag_id");
    assert_eq!(code(store.create_segment(ws, segment("a", "x", Some(elsewhere))).await), "unknown_tag:tag_id");
    assert_eq!(code(store.create_segment(ws, segment("a", "x", Some(manual))).await), "not_dynamic_tag:tag_id");
    let intent = store.create_segment(ws, segment("高意向", "score > 50", Some(dynamic))).await.unwrap();
    assert_eq!(intent.tag_id, Some(dynamic));
    assert_eq!(code(store.create_segment(ws, segment("b", "x", Some(dynamic))).await), "tag_has_segment");

    let rename = SegmentUpdate { name: Some(text("高意向")), ..SegmentUpdate::default() };
    assert_eq!(code(store.update_segment(ws, active.id, rename).await), "segment_exists");
    let describe = SegmentUpdate { description: Some("每周".to_owned()), ..SegmentUpdate::default() };
    let described = store.update_segment(ws, active.id, describe).await.unwrap();
    assert_eq!((described.description.as_str(), described.version), ("每周", 1));
    let same_filter = SegmentUpdate { filter: Some("events.count > 3".to_owned()), ..SegmentUpdate::default() };
    assert_eq!(store.update_segment(ws, active.id, same_filter).await.unwrap().version, 1);
    let refilter = SegmentUpdate { filter: Some("events.count > 5".to_owned()), ..SegmentUpdate::default() };
    let refiltered = store.update_segment(ws, active.id, refilter).await.unwrap();
    assert_eq!((refiltered.filter.as_str(), refiltered.version), ("events.count > 5", 2));
    assert_eq!(code(store.update_segment(other, active.id, SegmentUpdate::default()).await), "not_found");

    let theirs = store.create_segment(other, segment("活跃客户", "x", None)).await.unwrap();
    let names = |segments: Vec<rapport_store::Segment>| segments.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(names(store.list_segments(ws).await.unwrap()), [active.id, intent.id]);
    assert_eq!(names(store.all_segments().await.unwrap()), [active.id, intent.id, theirs.id]);

    assert_eq!(code(store.delete_segment(other, active.id).await), "not_found");
    store.delete_segment(ws, active.id).await.unwrap();
    assert_eq!(code(store.get_segment(ws, active.id).await), "not_found");
    assert_eq!(code(store.delete_segment(ws, active.id).await), "not_found");
    // The tag is free for a new definition once the old one is gone.
    store.delete_segment(ws, intent.id).await.unwrap();
    store.create_segment(ws, segment("again", "x", Some(dynamic))).await.unwrap();
}

#[tokio::test]
async fn memberships_are_recorded_once() {
    let (_database, store, ws) = fresh().await;
    let other = store.create_workspace(&Slug::parse("other").unwrap(), "Other").await.unwrap().id;
    let li = upsert(&store, ws, "li@client.cn", &[]).await;
    let wang = upsert(&store, ws, "wang@client.cn", &[]).await;
    let stranger = upsert(&store, other, "zhao@client.cn", &[]).await;
    let active = store.create_segment(ws, segment("活跃客户", "x", None)).await.unwrap().id;
    let dynamic = store.create_tag(ws, NewTag { path: path("高意向"), kind: TagKind::Dynamic }).await.unwrap().id;
    let intent = store.create_segment(ws, segment("高意向", "y", Some(dynamic))).await.unwrap().id;
    let theirs = store.create_segment(other, segment("theirs", "z", None)).await.unwrap().id;

    let entered = vec![(active, li), (intent, li), (active, wang), (active, li)];
    let unknown = vec![(active, stranger), (theirs, li), (SegmentId::new(9999), li), (active, ContactId::new(9999))];
    let changes = MembershipChanges { entered: [entered.clone(), unknown].concat(), exited: vec![] };
    store.apply_memberships(ws, changes, at(0)).await.unwrap();
    store.apply_memberships(ws, MembershipChanges { entered, exited: vec![] }, at(10)).await.unwrap();

    let segment_entered = |id: SegmentId, name: &str| {
        format!("{} segment_entered {}", at(0), json!({ "segment_id": id.get(), "segment": name }))
    };
    let tag_added = format!("{} tag_added {}", at(0), json!({ "tag": "高意向", "actor": "system" }));
    assert_eq!(
        history(&store, ws, li).await,
        [segment_entered(active, "活跃客户"), segment_entered(intent, "高意向"), tag_added.clone()]
    );
    assert_eq!(history(&store, ws, wang).await, [segment_entered(active, "活跃客户")]);
    assert_eq!(store.get_contact(ws, li).await.unwrap().tags, ["高意向"]);
    assert_eq!(store.get_segment(ws, active).await.unwrap().member_count, 2);
    assert_eq!(store.contact_segments(ws, li).await.unwrap(), [active, intent]);
    assert_eq!(code(store.contact_segments(ws, stranger).await), "not_found");

    let first = store.segment_members(ws, active, PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!((first.items.as_slice(), first.next), ([li].as_slice(), Some(li)));
    let rest = store.segment_members(ws, active, PageRequest { after: first.next, limit: 1 }).await.unwrap();
    assert_eq!((rest.items.as_slice(), rest.next), ([wang].as_slice(), None));
    let contacts = store.segment_contacts(ws, active, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert_eq!(contacts.items, [store.get_contact(ws, li).await.unwrap(), store.get_contact(ws, wang).await.unwrap()]);
    assert_eq!(code(store.segment_members(other, active, PageRequest { after: None, limit: 1 }).await), "not_found");
    assert_eq!(code(store.segment_contacts(ws, theirs, PageRequest { after: None, limit: 1 }).await), "not_found");

    let exited = vec![(intent, li), (intent, li), (intent, wang)];
    store.apply_memberships(ws, MembershipChanges { entered: vec![], exited: exited.clone() }, at(20)).await.unwrap();
    store.apply_memberships(ws, MembershipChanges { entered: vec![], exited }, at(30)).await.unwrap();
    let exits = &history(&store, ws, li).await[3..];
    assert_eq!(
        exits,
        [
            format!("{} segment_exited {}", at(20), json!({ "segment_id": intent.get(), "segment": "高意向" })),
            format!("{} tag_removed {}", at(20), json!({ "tag": "高意向", "actor": "system" })),
        ]
    );
    assert!(store.get_contact(ws, li).await.unwrap().tags.is_empty());
    assert_eq!(history(&store, ws, wang).await.len(), 1);
}

#[tokio::test]
async fn members_go_with_their_contact() {
    let (_database, store, ws) = fresh().await;
    let li = upsert(&store, ws, "li@client.cn", &[]).await;
    let wang = upsert(&store, ws, "wang@client.cn", &[]).await;
    let active = store.create_segment(ws, segment("活跃客户", "x", None)).await.unwrap().id;
    let enter = MembershipChanges { entered: vec![(active, li), (active, wang)], exited: vec![] };
    store.apply_memberships(ws, enter, at(0)).await.unwrap();

    store.merge_contacts(ws, li, wang, MergeReason::Api, Actor::System).await.unwrap();
    let members = store.segment_members(ws, active, PageRequest { after: None, limit: 10 }).await.unwrap();
    assert_eq!(members.items, [li]);
    store.delete_contact(ws, li).await.unwrap();
    assert_eq!(store.get_segment(ws, active).await.unwrap().member_count, 0);

    // A change for a contact that is gone is skipped.
    let late = MembershipChanges { entered: vec![(active, li)], exited: vec![(active, wang)] };
    store.apply_memberships(ws, late, at(10)).await.unwrap();
    assert_eq!(store.get_segment(ws, active).await.unwrap().member_count, 0);
}

#[tokio::test]
async fn audience_contacts_carry_consent_and_stage_history() {
    let (database, store, ws) = fresh().await;
    let other = store.create_workspace(&Slug::parse("other").unwrap(), "Other").await.unwrap().id;
    let li = upsert(&store, ws, "li@client.cn", &["vip", "行业/制造业"]).await;
    let wang = upsert(&store, ws, "wang@client.cn", &[]).await;
    let stranger = upsert(&store, other, "zhao@client.cn", &[]).await;
    let zhou = upsert(&store, ws, "zhou@client.cn", &[]).await;
    for stage in ["mql", "customer"] {
        let changes = ContactChanges { stage: Some(Slug::parse(stage).unwrap()), ..ContactChanges::default() };
        store.update_contact(ws, li, changes, Actor::System).await.unwrap();
    }
    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    for (channel, granted, seconds) in [("email", true, 0), ("email", false, 10), ("sms", true, 5)] {
        sqlx::query(
            "INSERT INTO consents (workspace_id, contact_id, channel, granted, recorded_at, text)
             VALUES ($1, $2, $3, $4, $5, '同意')",
        )
        .bind(ws.get())
        .bind(li.get())
        .bind(channel)
        .bind(granted)
        .bind(at(seconds))
        .execute(&mut connection)
        .await
        .unwrap();
    }
    connection.close().await.unwrap();

    let page = store.audience_contacts(ws, None, 2).await.unwrap();
    let full = store.get_contact(ws, li).await.unwrap();
    assert_eq!(page.iter().map(|fact| fact.contact.id).collect::<Vec<_>>(), [li, wang]);
    assert_eq!(page[0].contact, full);
    assert_eq!(page[0].consents, [(ConsentChannel::Email, false), (ConsentChannel::Sms, true)]);
    let stages: Vec<&str> = page[0].stages.iter().map(|(stage, _)| stage.as_str()).collect();
    assert_eq!(stages, ["raw", "mql", "customer"]);
    assert_eq!(page[0].stages[0].1, full.created_at);
    assert!(page[0].stages.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    assert_eq!(page[1].contact, store.get_contact(ws, wang).await.unwrap());
    assert_eq!((page[1].consents.len(), page[1].stages.len()), (0, 1));

    let rest = store.audience_contacts(ws, Some(wang), 10).await.unwrap();
    assert_eq!(rest.iter().map(|fact| fact.contact.id).collect::<Vec<_>>(), [zhou]);
    let by_id = store.audience_contacts_by_id(ws, &[zhou, stranger, li, ContactId::new(9999), li]).await.unwrap();
    let mut ids: Vec<ContactId> = by_id.iter().map(|fact| fact.contact.id).collect();
    ids.sort();
    assert_eq!(ids, [li, zhou]);
    assert_eq!(by_id.iter().find(|fact| fact.contact.id == li), page.first());
}

// ----- Helpers -----

/// The database is dropped last: locals drop in reverse order.
async fn fresh() -> (TestDatabase, PostgresStore, WorkspaceId) {
    let database = TestDatabase::create().await.expect("a test database (is PostgreSQL running?)");
    let store = PostgresStore::connect(database.url()).await.expect("a migrated store");
    let workspace = store.create_workspace(&Slug::parse("acme").unwrap(), "Acme").await.unwrap().id;
    (database, store, workspace)
}

/// One read of the feed from `cursor`, which moves on: the subjects changed and the events, described.
async fn read(store: &PostgresStore, cursor: &mut ChangeCursor) -> (BTreeSet<String>, Vec<String>) {
    let batch = store.read_changes(*cursor, 1000).await.unwrap();
    assert!(batch.next.changes >= cursor.changes, "the feed never moves back");
    *cursor = batch.next;
    let changes = batch.changes.iter().map(|change| describe_subject(change.subject)).collect();
    let events = batch
        .events
        .iter()
        .map(|event| {
            let properties = Value::Object(event.properties.clone());
            format!("{} {} {} {properties}", event.id, event.contact_id, event.event_type)
        })
        .collect();
    (changes, events)
}

fn describe_subject(subject: ChangeSubject) -> String {
    match subject {
        ChangeSubject::Contact(id) => contact(id),
        ChangeSubject::Company(id) => format!("company {id}"),
        ChangeSubject::Schema => "schema".to_owned(),
    }
}

fn contact(id: ContactId) -> String {
    format!("contact {id}")
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// The segment and tag part of a contact's history, oldest first: time, kind and data.
async fn history(store: &PostgresStore, workspace: WorkspaceId, id: ContactId) -> Vec<String> {
    let page = store.contact_timeline(workspace, id, PageRequest { after: None, limit: 100 }).await.unwrap();
    let mut entries: Vec<String> = page
        .items
        .into_iter()
        .filter(|entry| entry.kind.starts_with("segment_") || entry.kind.starts_with("tag_"))
        .map(|entry| format!("{} {} {}", entry.at, entry.kind, entry.data))
        .collect();
    entries.reverse();
    entries
}

async fn upsert(store: &PostgresStore, workspace: WorkspaceId, email: &str, tags: &[&str]) -> ContactId {
    let changes = ContactChanges { add_tags: tags.iter().map(|tag| path(tag)).collect(), ..by_email(email) };
    store.upsert_contacts(workspace, vec![changes], Actor::System).await.unwrap()[0].id
}

async fn insert_event(
    store: &PostgresStore,
    workspace: WorkspaceId,
    contact: ContactId,
    event_type: &str,
    properties: Value,
) -> i64 {
    let Value::Object(properties) = properties else { panic!("properties are an object") };
    let event = NewEvent {
        contact: ContactRef::Id(contact),
        event_type: event_type.to_owned(),
        properties,
        context: Map::new(),
        occurred_at: at(0),
        received_at: at(0),
        source: None,
        message_id: None,
    };
    match store.insert_events(workspace, vec![event]).await.unwrap()[0] {
        EventOutcome::Stored { event_id, .. } => event_id,
        other => panic!("expected a stored event, got {other:?}"),
    }
}

fn by_email(email: &str) -> ContactChanges {
    ContactChanges { email: Patch::Set(EmailAddress::parse(email).unwrap()), ..ContactChanges::default() }
}

fn segment(name: &str, filter: &str, tag_id: Option<TagId>) -> NewSegment {
    NewSegment { name: text(name), description: String::new(), filter: filter.to_owned(), tag_id }
}

fn company_changes(name: &str) -> CompanyChanges {
    CompanyChanges { name: Some(text(name)), ..CompanyChanges::default() }
}

fn field(key: &str) -> NewField {
    NewField {
        entity: rapport_domain::FieldEntity::Contact,
        key: Slug::parse(key).unwrap(),
        label: text(key),
        field_type: rapport_domain::FieldType::Number,
        options: Vec::new(),
        merge_rule: rapport_domain::MergeRule::Latest,
    }
}

fn text(raw: &str) -> BoundedText {
    BoundedText::parse(raw, 200).unwrap()
}

fn path(raw: &str) -> TagPath {
    TagPath::parse(raw).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + seconds, 0).unwrap()
}

/// An error's stable code, with the field for invalid input.
fn code<T: std::fmt::Debug>(result: StoreResult<T>) -> String {
    match result {
        Err(StoreError::NotFound { .. }) => "not_found".to_owned(),
        Err(StoreError::Conflict { code, .. }) => code.to_owned(),
        Err(StoreError::Invalid { code, field, .. }) => format!("{code}:{field}"),
        other => panic!("expected a caller's error, got {other:?}"),
    }
}

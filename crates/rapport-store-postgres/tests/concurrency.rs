//! Concurrent writers of one workspace, which only PostgreSQL has: identity resolution must stay race-free under
//! them (the reason for the workspace's contact lock), message ids must stay unique, and an erasure or a merge must
//! leave nothing behind while events keep arriving (the tables that hang off contacts have no foreign keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_domain::{
    BoundedText, ContactChanges, ContactId, EmailAddress, Identity, IdentityKind, Patch, Slug, SourceId, TagPath,
};
use rapport_store::{
    Actor, ContactRef, EventOutcome, NewEvent, NewSource, SourceKind, Store, TrackingMessage, TrackingOp,
    TrackingOutcome, Visitor,
};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::{Map, json};
use sqlx::Connection;

const WRITERS: usize = 6;
const PEOPLE: usize = 40;
const ROUNDS: usize = 4;

#[tokio::test]
async fn concurrent_writers_resolve_identities_once() {
    let database = TestDatabase::create().await.unwrap();
    let store = Arc::new(PostgresStore::connect(database.url()).await.unwrap());
    let workspace = store.create_workspace(&Slug::parse("acme").unwrap(), "Acme").await.unwrap().id;

    // Every writer upserts the same people by email and sends events naming the same anonymous visitors, each in
    // its own order, and every writer repeats the message ids of the writer before it.
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let mut stored = 0;
            for round in 0..ROUNDS {
                let items =
                    (0..PEOPLE).map(|i| by_email(&format!("p{}@example.cn", (i * 7 + writer + round) % PEOPLE)));
                store.upsert_contacts(workspace, items.collect(), Actor::System).await.unwrap();
                let events = (0..PEOPLE).map(|i| {
                    let visitor = format!("anon-{}", (i * 11 + writer) % PEOPLE);
                    let message_id = format!("{}-{round}-{i}", writer / 2);
                    event(Identity::parse(IdentityKind::AnonymousId, &visitor).unwrap(), message_id)
                });
                let outcomes = store.insert_events(workspace, events.collect()).await.unwrap();
                stored += outcomes.iter().filter(|outcome| matches!(outcome, EventOutcome::Stored { .. })).count();
            }
            stored
        }));
    }
    let mut stored = 0;
    for writer in writers {
        stored += writer.await.unwrap();
    }

    assert_eq!(store.count_contacts(workspace).await.unwrap(), 2 * PEOPLE as u64);
    assert_eq!(stored, WRITERS / 2 * ROUNDS * PEOPLE, "each message id is stored once");
    for i in 0..PEOPLE {
        let email = Identity::email(&EmailAddress::parse(&format!("p{i}@example.cn")).unwrap());
        let contact = store.find_contact(workspace, &email).await.unwrap().expect("the person exists");
        assert_eq!(contact.identities, vec![email]);
    }
}

#[tokio::test]
async fn erasure_leaves_nothing_behind_while_events_arrive() {
    let database = TestDatabase::create().await.unwrap();
    let store = Arc::new(PostgresStore::connect(database.url()).await.unwrap());
    let workspace = store.create_workspace(&Slug::parse("acme").unwrap(), "Acme").await.unwrap().id;
    let items = (0..PEOPLE).map(|i| ContactChanges {
        add_tags: vec![TagPath::parse("行业/制造业").unwrap()],
        ..by_email(&format!("p{i}@example.cn"))
    });
    let outcomes = store.upsert_contacts(workspace, items.collect(), Actor::System).await.unwrap();
    let ids: Vec<ContactId> = outcomes.iter().map(|outcome| outcome.id).collect();

    let ingesting = {
        let (store, ids) = (Arc::clone(&store), ids.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS * 5 {
                let events = ids.iter().enumerate().map(|(i, id)| {
                    let mut event =
                        event(Identity::parse(IdentityKind::AnonymousId, "unused").unwrap(), format!("{round}-{i}"));
                    event.contact = if i % 2 == 0 {
                        ContactRef::Id(*id)
                    } else {
                        ContactRef::Identity(Identity::email(
                            &EmailAddress::parse(&format!("p{i}@example.cn")).unwrap(),
                        ))
                    };
                    event
                });
                store.insert_events(workspace, events.collect()).await.unwrap();
            }
        })
    };
    for id in &ids {
        store.add_note(workspace, *id, "Called back", None, Actor::System).await.unwrap();
        store.delete_contact(workspace, *id).await.unwrap();
    }
    ingesting.await.unwrap();

    let mut connection = sqlx::PgConnection::connect(database.url()).await.unwrap();
    for table in ["contact_identities", "contact_tags", "activities", "events"] {
        let sql = format!(
            "SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = t.contact_id)"
        );
        let orphans: i64 = sqlx::query_scalar(&sql).fetch_one(&mut connection).await.unwrap();
        assert_eq!(orphans, 0, "rows of {table} outlived their contact");
    }
    connection.close().await.unwrap();
}

#[tokio::test]
async fn concurrent_ingestion_merges_and_erasure_leave_nothing_behind() {
    let database = TestDatabase::create().await.unwrap();
    let store = Arc::new(PostgresStore::connect(database.url()).await.unwrap());
    let workspace = store.create_workspace(&Slug::parse("acme").unwrap(), "Acme").await.unwrap().id;
    let source = NewSource {
        name: BoundedText::parse("官网", 100).unwrap(),
        kind: SourceKind::Website,
        write_key: "wk_acme".to_owned(),
        auto_create_fields: false,
        honor_dnt: false,
    };
    let source = store.create_source(workspace, source).await.unwrap().id;

    // Every person browses on two devices and logs in on each, so the devices' contacts merge into the user's;
    // writers share message ids in pairs; REST events name the same people by email; one task erases people.
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let mut applied = 0;
            for round in 0..ROUNDS {
                let messages = (0..PEOPLE).flat_map(|person| {
                    let device = format!("device-{person}-{}", (writer + round) % 2);
                    let anonymous = Visitor { user_id: None, anonymous_id: Some(device.clone()) };
                    let both = Visitor { user_id: Some(format!("u-{person}")), anonymous_id: Some(device) };
                    let id = |kind: &str| format!("{}-{round}-{person}-{kind}", writer / 2);
                    [
                        tracked(&id("page"), source, anonymous),
                        identify(&id("identify"), source, both.clone(), &format!("p{person}@example.cn")),
                        tracked(&id("click"), source, both),
                    ]
                });
                let outcomes = store.ingest_tracking(workspace, messages.collect()).await.unwrap();
                applied += outcomes.iter().filter(|outcome| matches!(outcome, TrackingOutcome::Applied { .. })).count();
                let events = (0..PEOPLE).map(|person| {
                    let email = Identity::email(&EmailAddress::parse(&format!("p{person}@example.cn")).unwrap());
                    event(email, format!("rest-{}-{round}-{person}", writer / 2))
                });
                store.insert_events(workspace, events.collect()).await.unwrap();
            }
            applied
        }));
    }
    let eraser = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for person in (0..PEOPLE).step_by(7) {
                let user_id = Identity::parse(IdentityKind::UserId, &format!("u-{person}")).unwrap();
                if let Some(contact) = store.find_contact(workspace, &user_id).await.unwrap() {
                    store.delete_contact(workspace, contact.id).await.unwrap();
                }
            }
        })
    };
    let mut applied = 0;
    for writer in writers {
        applied += writer.await.unwrap();
    }
    eraser.await.unwrap();
    assert!(applied > 0);

    let mut connection = sqlx::PgConnection::connect(database.url()).await.unwrap();
    for (table, column) in [
        ("contact_identities", "contact_id"),
        ("contact_tags", "contact_id"),
        ("activities", "contact_id"),
        ("events", "contact_id"),
        ("message_ids", "contact_id"),
        ("contact_merges", "survivor_id"),
        ("event_documents", "sole_contact_id"),
    ] {
        let sql = format!(
            "SELECT count(*) FROM {table} t
             WHERE t.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = t.{column})"
        );
        let orphans: i64 = sqlx::query_scalar(&sql).fetch_one(&mut connection).await.unwrap();
        assert_eq!(orphans, 0, "rows of {table} outlived their contact");
    }
    let people_with_two_contacts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT value FROM contact_identities WHERE kind = 'email'
                               GROUP BY value HAVING count(DISTINCT contact_id) > 1) AS split",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(people_with_two_contacts, 0);
    connection.close().await.unwrap();

    // Every person who was not erased is one contact, with both devices.
    for person in (0..PEOPLE).filter(|person| person % 7 != 0) {
        let user_id = Identity::parse(IdentityKind::UserId, &format!("u-{person}")).unwrap();
        let contact = store.find_contact(workspace, &user_id).await.unwrap().expect("the person exists");
        let devices = contact.identities.iter().filter(|identity| identity.kind() == IdentityKind::AnonymousId);
        assert_eq!(devices.count(), 2, "{person}: {:?}", contact.identities);
    }
}

fn tracked(message_id: &str, source: SourceId, visitor: Visitor) -> TrackingMessage {
    let at = DateTime::<Utc>::from_timestamp(1_750_000_000, 0).unwrap();
    let serde_json::Value::Object(context) =
        json!({ "ip": "203.0.113.7", "page": { "path": "/pricing", "url": "https://acme.cn/pricing" } })
    else {
        unreachable!("an object")
    };
    TrackingMessage {
        message_id: message_id.to_owned(),
        source,
        visitor,
        op: TrackingOp::Event {
            event_type: "page_viewed".to_owned(),
            properties: Map::new(),
            context,
            occurred_at: at,
            received_at: at,
        },
    }
}

fn identify(message_id: &str, source: SourceId, visitor: Visitor, email: &str) -> TrackingMessage {
    TrackingMessage {
        message_id: message_id.to_owned(),
        source,
        visitor,
        op: TrackingOp::Identify { changes: by_email(email) },
    }
}

fn by_email(raw: &str) -> ContactChanges {
    ContactChanges { email: Patch::Set(EmailAddress::parse(raw).unwrap()), ..ContactChanges::default() }
}

fn event(identity: Identity, message_id: String) -> NewEvent {
    let at = DateTime::<Utc>::from_timestamp(1_750_000_000, 0).unwrap();
    NewEvent {
        contact: ContactRef::Identity(identity),
        event_type: "page_view".to_owned(),
        properties: Map::new(),
        context: Map::new(),
        occurred_at: at,
        received_at: at,
        source: None,
        message_id: Some(message_id),
    }
}

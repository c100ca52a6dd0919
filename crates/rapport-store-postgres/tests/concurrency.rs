//! Concurrent writers of one workspace, which only PostgreSQL has: identity resolution must stay race-free under
//! them (the reason for the workspace's contact lock), message ids must stay unique, and an erasure must leave
//! nothing behind while events keep arriving (the tables that hang off contacts have no foreign keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_domain::{ContactChanges, ContactId, EmailAddress, Identity, IdentityKind, Patch, Slug, TagPath};
use rapport_store::{Actor, ContactRef, EventOutcome, NewEvent, Store};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::Map;
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

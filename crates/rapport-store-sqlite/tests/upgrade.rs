//! A database written by the first schema opens with everything readable as before: events are re-encoded into the
//! current layout with their ids, and their message ids keep deduplicating.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rapport_domain::{ContactId, WorkspaceId};
use rapport_store::{ContactRef, EventOutcome, NewEvent, PageRequest, Store};
use rapport_store_sqlite::SqliteStore;
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};

const FIRST_SCHEMA: &str = include_str!("../migrations/0001_initial.sql");
const LONG_ID: &str = "campaign-mail-2025-06-15-customer-segment-b-resend-17";

/// 2025-06-15 15:06:40 UTC, in stored microseconds.
const T0: i64 = 1_750_000_000_000_000;

fn old_database(path: &std::path::Path) {
    let connection = Connection::open(path).unwrap();
    connection.execute_batch(FIRST_SCHEMA).unwrap();
    connection.pragma_update(None, "user_version", 1).unwrap();
    connection
        .execute_batch(
            "INSERT INTO workspaces (id, slug, name, created_at) VALUES (1, 'acme', 'Acme', 0);
             INSERT INTO stages (workspace_id, key, label, position) VALUES (1, 'raw', 'Raw lead', 0);
             INSERT INTO contacts (id, workspace_id, email, stage, created_at, updated_at)
                 VALUES (1, 1, 'li@client.cn', 'raw', 0, 0), (2, 1, 'wang@client.cn', 'raw', 0, 0);
             INSERT INTO contact_identities (workspace_id, kind, value, contact_id)
                 VALUES (1, 'email', 'li@client.cn', 1), (1, 'email', 'wang@client.cn', 2);",
        )
        .unwrap();
    let page = json!({ "path": "/", "title": "首页", "url": "https://acme.cn/" });
    let events = [
        (10, 1, "page_viewed", page.clone(), json!({ "ip": "203.0.113.7", "page": page }), Some("web"), Some("m-1")),
        (11, 1, "signup", json!({ "plan": "pro" }), json!({}), None, Some("6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b")),
        (12, 1, "visit", json!({}), json!({ "ip": "203.0.113.7" }), None, Some(LONG_ID)),
        (13, 2, "visit", json!({}), json!({}), None, None),
    ];
    for (id, contact, event_type, properties, context, source, message_id) in events {
        connection
            .execute(
                "INSERT INTO events (id, workspace_id, contact_id, type, properties, context, occurred_at,
                     received_at, source, message_id)
                 VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    contact,
                    event_type,
                    properties.to_string(),
                    context.to_string(),
                    T0 + id * 1_000_000,
                    T0 + id * 1_000_000 + 250_000,
                    source,
                    message_id
                ],
            )
            .unwrap();
    }
}

fn new_event(contact: ContactId, message_id: &str) -> NewEvent {
    NewEvent {
        contact: ContactRef::Id(contact),
        event_type: "visit".to_owned(),
        properties: Map::new(),
        context: Map::new(),
        occurred_at: chrono::Utc::now(),
        received_at: chrono::Utc::now(),
        source: None,
        message_id: Some(message_id.to_owned()),
    }
}

#[tokio::test]
async fn events_of_the_first_schema_survive_the_upgrade() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("rapport.db");
    old_database(&path);

    let store = SqliteStore::open(&path).unwrap();
    let (ws, li, wang) = (WorkspaceId::new(1), ContactId::new(1), ContactId::new(2));
    let page = store.contact_timeline(ws, li, PageRequest { after: None, limit: 10 }).await.unwrap();
    let events: Vec<Value> = page.items.iter().map(|entry| entry.data.clone()).collect();
    let home = json!({ "path": "/", "title": "首页", "url": "https://acme.cn/" });
    assert_eq!(
        events,
        [
            json!({ "id": 12, "type": "visit", "properties": {}, "context": { "ip": "203.0.113.7" }, "source": null,
                    "message_id": null, "received_at": "2025-06-15T15:06:52.250Z" }),
            json!({ "id": 11, "type": "signup", "properties": { "plan": "pro" }, "context": {}, "source": null,
                    "message_id": "6f1c2c1e-9a3b-4b7e-8d2f-0c6a9f1e2d3b", "received_at": "2025-06-15T15:06:51.250Z" }),
            json!({ "id": 10, "type": "page_viewed", "properties": home, "context": { "ip": "203.0.113.7", "page": home },
                    "source": "web", "message_id": "m-1", "received_at": "2025-06-15T15:06:50.250Z" }),
        ]
    );

    let replay = store
        .insert_events(ws, vec![new_event(wang, "m-1"), new_event(wang, LONG_ID), new_event(wang, "m-new")])
        .await
        .unwrap();
    assert_eq!(replay[..2], [EventOutcome::Duplicate, EventOutcome::Duplicate]);
    assert!(matches!(replay[2], EventOutcome::Stored { event_id: 14, .. }), "{replay:?}");

    store.delete_contact(ws, li).await.unwrap();
    let after_erasure = store.insert_events(ws, vec![new_event(wang, LONG_ID)]).await.unwrap();
    assert!(matches!(after_erasure[..], [EventOutcome::Stored { .. }]), "{after_erasure:?}");
    drop(store);

    let connection = Connection::open(&path).unwrap();
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert_eq!(version, i64::try_from(migrations).unwrap(), "every migration is applied");
    let old_table: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'events_v1'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(old_table, 0);
    let documents: i64 = connection.query_row("SELECT count(*) FROM event_documents", [], |row| row.get(0)).unwrap();
    assert_eq!(documents, 0, "erasing the only contact with context documents erases the documents");
}

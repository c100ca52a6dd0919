//! A database written by the first schema upgrades in place: its events keep what the timeline shows and their
//! message ids, and new events continue the ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use rapport_domain::{ContactId, WorkspaceId};
use rapport_store::{ContactRef, EventOutcome, NewEvent, PageRequest, Store};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::{Map, Value, json};
use sqlx::migrate::Migrate;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn events_of_the_first_schema_survive_the_upgrade() {
    let database = TestDatabase::create().await.unwrap();
    let mut connection = PgConnection::connect(database.url()).await.unwrap();
    let migrator = sqlx::migrate!();
    let first = migrator.iter().next().expect("the first migration");
    assert_eq!(first.version, 1);
    connection.ensure_migrations_table().await.unwrap();
    connection.apply(first).await.unwrap();

    // What the first release wrote: a workspace, a contact and two events, one with a message id, a page in its
    // context and a free-text source.
    let workspace: i64 = sqlx::query_scalar(
        "INSERT INTO workspaces (slug, name, created_at) VALUES ('acme', 'Acme', now()) RETURNING id",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    sqlx::query("INSERT INTO list_entries VALUES ($1, 'stage', 'raw', 'Raw lead', 0)")
        .bind(workspace)
        .execute(&mut connection)
        .await
        .unwrap();
    let contact: i64 = sqlx::query_scalar(
        "INSERT INTO contacts (workspace_id, email, stage, created_at, updated_at)
         VALUES ($1, 'li@client.cn', 'raw', now(), now()) RETURNING id",
    )
    .bind(workspace)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    sqlx::query("INSERT INTO contact_identities VALUES ($1, 'email', 'li@client.cn', $2)")
        .bind(workspace)
        .bind(contact)
        .execute(&mut connection)
        .await
        .unwrap();
    let viewed = json!({
        "id": 0,
        "type": "page_view",
        "properties": { "url": "https://acme.cn/", "plan": "pro" },
        "context": { "ip": "203.0.113.7", "page": { "path": "/", "title": "首页" } },
        "source": "web",
        "message_id": "m-1",
        "received_at": "2025-06-15T15:06:45Z",
    });
    let signed_up = json!({
        "id": 0,
        "type": "signed_up",
        "properties": {},
        "context": {},
        "source": null,
        "message_id": null,
        "received_at": "2025-06-15T15:07:00Z",
    });
    let mut ids = Vec::new();
    for (event, occurred_at) in [(&viewed, at(0)), (&signed_up, at(20))] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (workspace_id, contact_id, type, properties, context, occurred_at, received_at,
                 source, message_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, $8, $9) RETURNING id",
        )
        .bind(workspace)
        .bind(contact)
        .bind(event["type"].as_str())
        .bind(&event["properties"])
        .bind(&event["context"])
        .bind(occurred_at)
        .bind(event["received_at"].as_str())
        .bind(event["source"].as_str())
        .bind(event["message_id"].as_str())
        .fetch_one(&mut connection)
        .await
        .unwrap();
        ids.push(id);
    }
    connection.close().await.unwrap();

    let store = PostgresStore::connect(database.url()).await.expect("the upgrade applies");
    let (workspace, contact) = (WorkspaceId::new(workspace), ContactId::new(contact));
    let page = store.contact_timeline(workspace, contact, PageRequest { after: None, limit: 10 }).await.unwrap();
    let data: Vec<Value> = page.items.into_iter().map(|entry| entry.data).collect();
    let with_id = |event: &Value, id: i64| {
        let mut event = event.clone();
        event["id"] = json!(id);
        event
    };
    assert_eq!(data, [with_id(&signed_up, ids[1]), with_id(&viewed, ids[0])]);

    let event = |message_id: &str| NewEvent {
        contact: ContactRef::Id(contact),
        event_type: "page_view".to_owned(),
        properties: Map::new(),
        context: Map::new(),
        occurred_at: at(30),
        received_at: at(30),
        source: None,
        message_id: Some(message_id.to_owned()),
    };
    let outcomes = store.insert_events(workspace, vec![event("m-1"), event("m-2")]).await.unwrap();
    assert_eq!(outcomes[0], EventOutcome::Duplicate, "stored message ids keep deduplicating");
    match outcomes[1] {
        EventOutcome::Stored { event_id, .. } => assert!(event_id > ids[1], "event ids go on where they stopped"),
        other => panic!("expected a stored event, got {other:?}"),
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + seconds, 0).unwrap()
}

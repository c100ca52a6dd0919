#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::Utc;
use rapport_domain::{BoundedText, ContactChanges, ContactId, EmailAddress, Identity, Patch, Slug, TagPath};
use rapport_store::{Actor, ContactRef, NewEvent, PageRequest, Store};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::{Map, json};

fn item(n: usize) -> ContactChanges {
    let mut changes = ContactChanges {
        email: Patch::Set(EmailAddress::parse(&format!("person{n}@example{}.cn", n % 97)).unwrap()),
        ..ContactChanges::default()
    };
    changes.system.first_name = Patch::Set(BoundedText::parse("Li", 100).unwrap());
    changes.system.city = Patch::Set(BoundedText::parse("上海", 100).unwrap());
    changes.fields = vec![("budget".into(), json!(n)), ("plan".into(), json!("pro"))];
    if n % 10 == 0 {
        changes.add_tags = vec![TagPath::parse("行业/制造业").unwrap()];
    }
    changes
}

#[tokio::main]
async fn main() {
    let existing: usize = std::env::var("EXISTING").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let database = TestDatabase::create().await.unwrap();
    let store = PostgresStore::connect(database.url()).await.unwrap();
    let ws = store.create_workspace(&Slug::parse("bench").unwrap(), "Bench").await.unwrap().id;

    let started = Instant::now();
    for batch in 0..existing / 1000 {
        let items = (batch * 1000..(batch + 1) * 1000).map(item).collect();
        store.upsert_contacts(ws, items, Actor::System).await.unwrap();
    }
    let seeded = started.elapsed();
    println!("seeded {existing} in {seeded:?} = {:.0}/s", existing as f64 / seeded.as_secs_f64());

    for (label, offset) in [("new", existing), ("update", 0)] {
        let rounds = 20;
        let started = Instant::now();
        for round in 0..rounds {
            let base = offset + round * 1000 + if label == "new" { 0 } else { 7 };
            let items = (base..base + 1000).map(item).collect();
            store.upsert_contacts(ws, items, Actor::System).await.unwrap();
        }
        let elapsed = started.elapsed();
        println!("upsert 1000 x {rounds} ({label}): {:.0} contacts/s", (rounds * 1000) as f64 / elapsed.as_secs_f64());
    }

    // Events naming existing contacts by email, by id, and with message ids.
    let rounds = 300;
    for mode in ["identity", "id", "identity+message_id", "new identities"] {
        let started = Instant::now();
        for round in 0..rounds {
            let events = (0..100)
                .map(|i| {
                    let n = (round * 100 + i) % existing;
                    let contact = match mode {
                        "id" => ContactRef::Id(ContactId::new(1 + n as i64)),
                        "new identities" => ContactRef::Identity(
                            Identity::parse(rapport_domain::IdentityKind::AnonymousId, &format!("anon-{round}-{i}")).unwrap(),
                        ),
                        _ => ContactRef::Identity(Identity::email(&EmailAddress::parse(&format!("person{n}@example{}.cn", n % 97)).unwrap())),
                    };
                    let mut properties = Map::new();
                    properties.insert("url".into(), json!(format!("https://rapport.example/p/{i}")));
                    properties.insert("title".into(), json!("定价"));
                    NewEvent {
                        contact,
                        event_type: "page_view".into(),
                        properties,
                        context: Map::new(),
                        occurred_at: Utc::now(),
                        received_at: Utc::now(),
                        source: Some("web".into()),
                        message_id: mode.contains("message_id").then(|| format!("m-{round}-{i}")),
                    }
                })
                .collect();
            store.insert_events(ws, events).await.unwrap();
        }
        let elapsed = started.elapsed();
        println!("events 100 x {rounds} ({mode}): {:.0} events/s", (rounds * 100) as f64 / elapsed.as_secs_f64());
    }

    let email = Identity::email(&EmailAddress::parse("person4242@example69.cn").unwrap());
    let started = Instant::now();
    for _ in 0..1000 {
        store.find_contact(ws, &email).await.unwrap().unwrap();
    }
    println!("find_contact: {:?} each", started.elapsed() / 1000);
    let started = Instant::now();
    for _ in 0..200 {
        store.list_contacts(ws, PageRequest { after: None, limit: 50 }).await.unwrap();
    }
    println!("list_contacts first page of 50: {:?} each", started.elapsed() / 200);
    let started = Instant::now();
    let count = store.count_contacts(ws).await.unwrap();
    println!("count_contacts {count}: {:?}", started.elapsed());
    if std::env::var("KEEP").is_ok() {
        println!("database {}", database.url());
        std::mem::forget(database);
    }
}

//! The audience engine on real stores: a table of filters against a fixed cast of contacts and events (one line
//! per case), segments kept current as contacts change, and a randomised check that incremental membership always
//! equals evaluating from scratch. Every test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_domain::filter::parse;
use rapport_domain::{
    BoundedText, ContactChanges, ContactId, EmailAddress, FieldEntity, FieldType, MergeRule, Patch, PhoneNumber,
    SegmentId, Slug, TagPath, WorkspaceId,
};
use rapport_engine::audience::{Audience, AudienceConfig, SegmentStatus};
use rapport_store::{
    Actor, CompanyChanges, ContactRef, MergeReason, NewEvent, NewField, NewSegment, PageRequest, Store,
};
use serde_json::{Value, json};

const OFFSET: i32 = 8 * 3600;
const DAY: i64 = 86_400;

struct Cast {
    store: Arc<dyn Store>,
    ws: WorkspaceId,
    audience: Audience,
    names: HashMap<ContactId, String>,
    now: i64,
    clock: Arc<AtomicI64>,
    stop: tokio::sync::watch::Sender<bool>,
    _guard: Box<dyn std::any::Any + Send>,
}

impl Drop for Cast {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn sqlite() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
    let directory = tempfile::tempdir().unwrap();
    let store = rapport_store_sqlite::SqliteStore::open(&directory.path().join("rapport.db")).unwrap();
    (Arc::new(store), Box::new(directory))
}

async fn postgres() -> (Arc<dyn Store>, Box<dyn std::any::Any + Send>) {
    let database = rapport_store_postgres::testing::TestDatabase::create().await.unwrap();
    let store = rapport_store_postgres::PostgresStore::connect(database.url()).await.unwrap();
    (Arc::new(store), Box::new(database))
}

fn slug(raw: &str) -> Slug {
    Slug::parse(raw).unwrap()
}

fn text(raw: &str) -> BoundedText {
    BoundedText::parse(raw, 1_000).unwrap()
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

/// The local (UTC+8) calendar date `days` from the cast's today, as `YYYY-MM-DD` in `year`.
fn local_date(now: i64, days: i64, year: i32) -> String {
    let date = at(now + OFFSET as i64 + days * DAY).date_naive();
    let date = NaiveDate::from_ymd_opt(year, date.month(), date.day()).unwrap();
    date.format("%Y-%m-%d").to_string()
}

struct Person<'a> {
    name: &'a str,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    city: Option<&'a str>,
    province: Option<&'a str>,
    country: Option<&'a str>,
    stage: &'a str,
    status: Option<&'a str>,
    tags: &'a [&'a str],
    fields: Value,
}

fn changes(person: &Person<'_>) -> ContactChanges {
    let mut changes = ContactChanges::default();
    if let Some(email) = person.email {
        changes.email = Patch::Set(EmailAddress::parse(email).unwrap());
    }
    if let Some(phone) = person.phone {
        changes.phone = Patch::Set(PhoneNumber::parse(phone).unwrap());
    }
    changes.system.first_name = Patch::Set(text(person.name));
    for (target, value) in [
        (&mut changes.system.city, person.city),
        (&mut changes.system.province, person.province),
        (&mut changes.system.country, person.country),
    ] {
        if let Some(value) = value {
            *target = Patch::Set(text(value));
        }
    }
    changes.stage = Some(slug(person.stage));
    if let Some(status) = person.status {
        changes.status = Patch::Set(slug(status));
    }
    changes.add_tags = person.tags.iter().map(|tag| TagPath::parse(tag).unwrap()).collect();
    changes.fields = object(person.fields.clone()).into_iter().collect();
    changes
}

fn event(contact: ContactId, event_type: &str, url: &str, occurred: i64) -> NewEvent {
    NewEvent {
        contact: ContactRef::Id(contact),
        event_type: event_type.to_owned(),
        properties: object(json!({ "url": url })),
        context: serde_json::Map::new(),
        occurred_at: at(occurred),
        received_at: at(occurred),
        source: None,
        message_id: None,
    }
}

/// Four people, a company, and their events relative to a fixed now; the engine runs in UTC+8.
async fn cast((store, guard): (Arc<dyn Store>, Box<dyn std::any::Any + Send>)) -> Cast {
    let ws = store.create_workspace(&slug("acme"), "Acme").await.unwrap().id;
    for (key, label, field_type, options) in [
        ("industry", "行业", FieldType::Text, vec![]),
        ("budget", "预算", FieldType::Number, vec![]),
        ("birthday", "生日", FieldType::Date, vec![]),
        ("vip", "VIP", FieldType::Boolean, vec![]),
        ("interests", "兴趣", FieldType::MultiSelect, vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]),
    ] {
        let field = NewField {
            entity: FieldEntity::Contact,
            key: slug(key),
            label: text(label),
            field_type,
            options,
            merge_rule: MergeRule::Latest,
        };
        store.create_field(ws, field).await.unwrap();
    }
    let now = Utc::now().timestamp();
    let people = [
        Person {
            name: "李",
            email: Some("li@acme.cn"),
            phone: None,
            city: Some("深圳"),
            province: Some("广东"),
            country: Some("中国"),
            stage: "mql",
            status: Some("contacted"),
            tags: &["行业/制造业"],
            fields: json!({ "industry": "制造业", "budget": 5000, "birthday": local_date(now, 0, 1990), "vip": true,
                            "interests": ["a", "b"] }),
        },
        Person {
            name: "王",
            email: Some("wang@qq.com"),
            phone: None,
            city: Some("杭州"),
            province: Some("浙江"),
            country: None,
            stage: "raw",
            status: None,
            tags: &["行业/金融"],
            fields: json!({ "budget": 800, "birthday": local_date(now, 3, 1985), "interests": ["c"] }),
        },
        Person {
            name: "赵",
            email: None,
            phone: Some("+8613800000000"),
            city: None,
            province: None,
            country: None,
            stage: "customer",
            status: None,
            tags: &[],
            fields: json!({ "vip": false }),
        },
        Person {
            name: "Chen",
            email: Some("chen@163.com"),
            phone: None,
            city: None,
            province: None,
            country: Some("China"),
            stage: "sql",
            status: None,
            tags: &["vip"],
            fields: json!({}),
        },
    ];
    let mut names = HashMap::new();
    let mut ids = HashMap::new();
    for person in &people {
        let outcome = store.upsert_contacts(ws, vec![changes(person)], Actor::System).await.unwrap();
        names.insert(outcome[0].id, person.name.to_owned());
        ids.insert(person.name, outcome[0].id);
    }
    let company = store
        .create_company(
            ws,
            CompanyChanges {
                name: Some(text("Acme 制造")),
                industry: Patch::Set(text("制造业")),
                ..CompanyChanges::default()
            },
        )
        .await
        .unwrap();
    let link = ContactChanges { company_id: Patch::Set(company.id), ..ContactChanges::default() };
    store.update_contact(ws, ids["李"], link, Actor::System).await.unwrap();

    // The start of today in UTC+8: an event a minute after it happened "yesterday" in UTC.
    let local_midnight = (now + i64::from(OFFSET)).div_euclid(DAY) * DAY - i64::from(OFFSET);
    let events = vec![
        event(ids["李"], "page_viewed", "https://acme.cn/pricing", now - DAY),
        event(ids["李"], "page_viewed", "https://acme.cn/pricing?plan=pro", now - 5 * DAY),
        event(ids["李"], "page_viewed", "https://acme.cn/pricing", now - 29 * DAY),
        event(ids["李"], "page_viewed", "https://acme.cn/docs", now - 2 * DAY),
        event(ids["李"], "email_opened", "", now - 10 * DAY),
        event(ids["王"], "page_viewed", "https://acme.cn/pricing", now - 31 * DAY),
        event(ids["王"], "page_viewed", "https://acme.cn/pricing", now - 2 * DAY),
        event(ids["王"], "email_opened", "", now - 100 * DAY),
        event(ids["Chen"], "page_viewed", "https://acme.cn/pricing", now - 40 * DAY),
        event(ids["Chen"], "page_viewed", "https://acme.cn/pricing", now - 41 * DAY),
        event(ids["Chen"], "page_viewed", "https://acme.cn/pricing", now - 42 * DAY),
        event(ids["赵"], "signed_up", "", local_midnight + 60),
    ];
    store.insert_events(ws, events).await.unwrap();

    let clock = Arc::new(AtomicI64::new(now));
    let config = AudienceConfig {
        utc_offset: OFFSET,
        poll_interval: Duration::from_millis(5),
        clock: {
            let clock = clock.clone();
            Arc::new(move || clock.load(Ordering::Relaxed))
        },
    };
    let (audience, engine) = Audience::new(store.clone(), config);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(engine.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    for _ in 0..500 {
        if audience.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(audience.is_ready(), "the engine loads");
    Cast { store, ws, audience, names, now, clock, stop, _guard: guard }
}

impl Cast {
    fn id(&self, name: &str) -> ContactId {
        *self.names.iter().find(|(_, candidate)| *candidate == name).unwrap().0
    }

    async fn matching(&self, filter: &str) -> Vec<String> {
        let filter = parse(filter).unwrap_or_else(|error| panic!("{filter}: {error}"));
        let preview = self.audience.preview(self.ws, &filter, 1_000).await.unwrap_or_else(|error| panic!("{error}"));
        let mut names: Vec<String> =
            preview.contacts.iter().map(|id| self.names.get(id).cloned().unwrap_or_else(|| id.to_string())).collect();
        names.sort();
        names
    }

    async fn members(&self, segment: SegmentId) -> Vec<String> {
        let page =
            self.store.segment_members(self.ws, segment, PageRequest { after: None, limit: 1_000 }).await.unwrap();
        let mut names: Vec<String> =
            page.items.iter().map(|id| self.names.get(id).cloned().unwrap_or_else(|| id.to_string())).collect();
        names.sort();
        names
    }

    async fn segment(&self, name: &str, filter: &str) -> SegmentId {
        let canonical = parse(filter).unwrap().to_string();
        let segment = NewSegment { name: text(name), description: String::new(), filter: canonical, tag_id: None };
        let id = self.store.create_segment(self.ws, segment).await.unwrap().id;
        self.ready(id).await;
        id
    }

    async fn ready(&self, id: SegmentId) {
        for _ in 0..500 {
            self.audience.settle().await.unwrap();
            if self.audience.segment(self.ws, id).await.is_some_and(|view| view.status == SegmentStatus::Ready) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("segment {id} was not built");
    }
}

/// Filter in, names of the matching contacts out: one line per case.
const CASES: &[(&str, &[&str])] = &[
    ("stage >= mql", &["Chen", "李", "赵"]),
    ("stage = raw", &["王"]),
    ("stage < sql", &["李", "王"]),
    ("stage != customer", &["Chen", "李", "王"]),
    ("stage_reached(sql)", &["Chen", "赵"]),
    ("tag(\"行业\")", &["李", "王"]),
    ("tag(\"行业/制造业\")", &["李"]),
    ("tag_any(\"行业/金融\", \"vip\")", &["Chen", "王"]),
    ("tag_all(\"行业/制造业\", \"vip\")", &[]),
    ("tag_none(\"行业\")", &["Chen", "赵"]),
    ("email_domain in (\"qq.com\", \"163.com\")", &["Chen", "王"]),
    ("email_domain not in (\"qq.com\", \"163.com\")", &["李", "赵"]),
    ("email is empty", &["赵"]),
    ("email is not empty", &["Chen", "李", "王"]),
    ("first_name = \"chen\"", &["Chen"]),
    ("email starts_with \"LI@\"", &["李"]),
    ("email ends_with \".cn\"", &["李"]),
    ("city contains \"州\"", &["王"]),
    ("email matches \"^[a-z]+@(qq|163)\\\\.com$\"", &["Chen", "王"]),
    ("province in (\"广东\", \"浙江\")", &["李", "王"]),
    ("country != \"中国\"", &["Chen", "王", "赵"]),
    ("not country = \"中国\"", &["Chen", "王", "赵"]),
    ("status = \"contacted\"", &["李"]),
    ("status is empty", &["Chen", "王", "赵"]),
    ("fields.industry = \"制造业\"", &["李"]),
    ("fields.budget > 1000", &["李"]),
    ("fields.budget between 500 and 1000", &["王"]),
    ("fields.budget is empty", &["Chen", "赵"]),
    ("fields.vip = true", &["李"]),
    ("fields.vip = false", &["赵"]),
    ("fields.vip != true", &["Chen", "王", "赵"]),
    ("fields.interests contains_any (\"a\", \"c\")", &["李", "王"]),
    ("fields.interests contains_all (\"a\", \"b\")", &["李"]),
    ("fields.interests in (\"c\")", &["王"]),
    ("fields.birthday anniversary today", &["李"]),
    ("fields.birthday anniversary next 7 days", &["李", "王"]),
    ("fields.birthday < \"1988-01-01\"", &["王"]),
    ("created_at during today", &["Chen", "李", "王", "赵"]),
    ("created_at < yesterday", &[]),
    ("company.industry = \"制造业\"", &["李"]),
    ("company.name contains \"acme\"", &["李"]),
    ("has_identity(\"phone\")", &["赵"]),
    ("has_identity(\"email\")", &["Chen", "李", "王"]),
    ("consent(\"email\") = unknown", &["Chen", "李", "王", "赵"]),
    ("count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3", &["李"]),
    ("count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 1", &["李", "王"]),
    ("count(event \"page_viewed\" where url contains \"/pricing\", last 29 days) >= 3", &[]),
    ("count(event \"page_viewed\" where url contains \"/pricing\", ever) >= 3", &["Chen", "李"]),
    ("count(event \"page_viewed\" where url ends_with \"/docs\", ever) = 1", &["李"]),
    ("count(event \"email_opened\", last 90 days) = 0", &["Chen", "王", "赵"]),
    ("count(event \"email_opened\", last 14 days) >= 1", &["李"]),
    ("last(event \"email_opened\", ever) during last 14 days", &["李"]),
    ("first(event \"page_viewed\", ever) is empty", &["赵"]),
    ("count(event \"signed_up\", last 1 days) = 1", &["赵"]),
    ("stage = raw or stage = customer and fields.vip = false", &["王", "赵"]),
    ("(stage = raw or stage = customer) and fields.vip = false", &["赵"]),
    ("not (stage = raw or tag(\"vip\"))", &["李", "赵"]),
    (
        "stage >= mql and tag(\"行业/制造业\") and email_domain not in (\"qq.com\",\"163.com\") and \
         count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3",
        &["李"],
    ),
];

async fn filter_table(cast: Cast) {
    let mut failures = Vec::new();
    for (filter, expected) in CASES {
        let got = cast.matching(filter).await;
        let expected: Vec<String> = expected.iter().map(|name| (*name).to_owned()).collect();
        let mut expected = expected;
        expected.sort();
        if got != expected {
            failures.push(format!("{filter}\n    expected {expected:?}\n    got      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

/// Saved segments equal their previews, and follow changes in real time with timeline records.
async fn segments_follow_changes(cast: Cast) {
    let hot = cast.segment("hot", "stage >= mql and tag(\"行业\")").await;
    let pricing = cast
        .segment("pricing", "count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3")
        .await;
    let nested = cast.segment("nested", &format!("in_segment(\"{hot}\") or in_segment(\"{pricing}\")")).await;
    assert_eq!(cast.members(hot).await, ["李"]);
    assert_eq!(cast.members(pricing).await, ["李"]);
    assert_eq!(cast.members(nested).await, ["李"]);

    // 王 moves to SQL: enters `hot`, and `nested` through it.
    let wang = cast.id("王");
    let moved = ContactChanges { stage: Some(slug("sql")), ..ContactChanges::default() };
    cast.store.update_contact(cast.ws, wang, moved, Actor::System).await.unwrap();
    cast.audience.settle().await.unwrap();
    assert_eq!(cast.members(hot).await, ["李", "王"]);
    assert_eq!(cast.members(nested).await, ["李", "王"]);
    let timeline = cast.store.contact_timeline(cast.ws, wang, PageRequest { after: None, limit: 50 }).await.unwrap();
    let entered: BTreeSet<i64> = timeline
        .items
        .iter()
        .filter(|entry| entry.kind == "segment_entered")
        .map(|entry| entry.data["segment_id"].as_i64().unwrap())
        .collect();
    assert_eq!(entered, BTreeSet::from([hot.get(), nested.get()]));

    // Two more visits to the pricing page within 30 days.
    let now = cast.now;
    let visits = vec![
        event(wang, "page_viewed", "https://acme.cn/pricing", now - 3 * DAY),
        event(wang, "page_viewed", "https://acme.cn/pricing", now - 60),
    ];
    cast.store.insert_events(cast.ws, visits).await.unwrap();
    cast.audience.settle().await.unwrap();
    assert_eq!(cast.members(pricing).await, ["李", "王"]);

    // 李 loses the industry tag: leaves `hot`, stays in `nested` through `pricing`.
    let li = cast.id("李");
    cast.store
        .remove_contact_tags(cast.ws, li, &[TagPath::parse("行业/制造业").unwrap()], Actor::System)
        .await
        .unwrap();
    cast.audience.settle().await.unwrap();
    assert_eq!(cast.members(hot).await, ["王"]);
    assert_eq!(cast.members(nested).await, ["李", "王"]);
    let timeline = cast.store.contact_timeline(cast.ws, li, PageRequest { after: None, limit: 50 }).await.unwrap();
    let exited: Vec<i64> = timeline
        .items
        .iter()
        .filter(|entry| entry.kind == "segment_exited")
        .map(|entry| entry.data["segment_id"].as_i64().unwrap())
        .collect();
    assert_eq!(exited, [hot.get()]);

    // Thirty days on, 李's oldest visits fall out of the window: the day change alone moves them out.
    cast.clock.fetch_add(28 * DAY, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    cast.audience.settle().await.unwrap();
    for _ in 0..100 {
        if cast.members(pricing).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cast.members(pricing).await, Vec::<String>::new());

    // Erasure takes the contact out of every segment.
    cast.store.delete_contact(cast.ws, wang).await.unwrap();
    cast.audience.settle().await.unwrap();
    assert_eq!(cast.members(hot).await, Vec::<String>::new());
}

/// Random changes, applied in random batches: after each, every segment's stored members equal a fresh
/// evaluation of its filter.
async fn incremental_equals_rebuild(cast: Cast, seed: u64) {
    let filters = [
        "stage >= sql",
        "tag(\"行业\") and not tag(\"vip\")",
        "fields.budget > 1000 or city = \"上海\"",
        "count(event \"page_viewed\" where url contains \"/pricing\", last 7 days) >= 2",
        "count(event \"email_opened\", ever) = 0 and stage < customer",
        "email_domain = \"qq.com\" or has_identity(\"phone\")",
    ];
    let mut segments = Vec::new();
    for (index, filter) in filters.iter().enumerate() {
        segments.push((cast.segment(&format!("s{index}"), filter).await, *filter));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let stages = ["raw", "mql", "sal", "sql", "customer"];
    let tags = ["行业/制造业", "行业/金融", "vip"];
    let cities = ["上海", "北京", "深圳"];
    let mut contacts: Vec<ContactId> = cast.names.keys().copied().collect();
    contacts.sort();
    for round in 0..12 {
        for _ in 0..rng.gen_range(1..8) {
            let pick = contacts[rng.gen_range(0..contacts.len())];
            match rng.gen_range(0..7) {
                0 => {
                    let email =
                        format!("p{}@{}", rng.gen_range(0..1_000_000), ["qq.com", "corp.cn"][rng.gen_range(0..2)]);
                    let mut new = ContactChanges {
                        email: Patch::Set(EmailAddress::parse(&email).unwrap()),
                        stage: Some(slug(stages[rng.gen_range(0..5)])),
                        ..ContactChanges::default()
                    };
                    new.fields = vec![("budget".to_owned(), json!(rng.gen_range(0..3000)))];
                    let outcome = cast.store.upsert_contacts(cast.ws, vec![new], Actor::System).await.unwrap();
                    contacts.push(outcome[0].id);
                }
                1 => {
                    let change =
                        ContactChanges { stage: Some(slug(stages[rng.gen_range(0..5)])), ..ContactChanges::default() };
                    let _ = cast.store.update_contact(cast.ws, pick, change, Actor::System).await;
                }
                2 => {
                    let tag = TagPath::parse(tags[rng.gen_range(0..3)]).unwrap();
                    if rng.gen_bool(0.5) {
                        let _ = cast.store.add_contact_tags(cast.ws, pick, &[tag], Actor::System).await;
                    } else {
                        let _ = cast.store.remove_contact_tags(cast.ws, pick, &[tag], Actor::System).await;
                    }
                }
                3 => {
                    let mut change = ContactChanges::default();
                    change.system.city = Patch::Set(text(cities[rng.gen_range(0..3)]));
                    change.fields = vec![("budget".to_owned(), json!(rng.gen_range(0..3000)))];
                    let _ = cast.store.update_contact(cast.ws, pick, change, Actor::System).await;
                }
                4 | 5 => {
                    let kind = if rng.gen_bool(0.7) { "page_viewed" } else { "email_opened" };
                    let url = if rng.gen_bool(0.6) { "https://acme.cn/pricing" } else { "https://acme.cn/blog" };
                    let when = cast.now - rng.gen_range(0..10) * DAY;
                    let _ = cast.store.insert_events(cast.ws, vec![event(pick, kind, url, when)]).await;
                }
                _ => {
                    let other = contacts[rng.gen_range(0..contacts.len())];
                    if other != pick && rng.gen_bool(0.5) {
                        if cast
                            .store
                            .merge_contacts(cast.ws, pick, other, MergeReason::Api, Actor::System)
                            .await
                            .is_ok()
                        {
                            contacts.retain(|id| *id != other);
                        }
                    } else if contacts.len() > 3 {
                        cast.store.delete_contact(cast.ws, pick).await.unwrap();
                        contacts.retain(|id| *id != pick);
                    }
                }
            }
        }
        cast.audience.settle().await.unwrap();
        for (segment, filter) in &segments {
            let stored = cast.members(*segment).await;
            let fresh = cast.matching(filter).await;
            assert_eq!(stored, fresh, "seed {seed}, round {round}: segment `{filter}` drifted from a rebuild");
        }
    }
}

macro_rules! on_both_stores {
    ($($name:ident => $body:expr;)*) => {
        mod sqlite_store {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let cast = cast(sqlite().await).await;
                ($body)(cast).await;
            })*
        }
        mod postgres_store {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let cast = cast(postgres().await).await;
                ($body)(cast).await;
            })*
        }
    };
}

on_both_stores! {
    filters_select_the_right_contacts => filter_table;
    segments_follow_changes_in_real_time => segments_follow_changes;
    incremental_membership_equals_a_rebuild_seed_1 => |cast| incremental_equals_rebuild(cast, 1);
    incremental_membership_equals_a_rebuild_seed_2 => |cast| incremental_equals_rebuild(cast, 2);
    incremental_membership_equals_a_rebuild_seed_3 => |cast| incremental_equals_rebuild(cast, 3);
}

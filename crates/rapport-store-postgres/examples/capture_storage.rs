//! Store-level figures for tracking ingestion on PostgreSQL: bytes per stored event and events per second.
//!
//! ```text
//! cargo run --release -p rapport-store-postgres --example capture_storage -- [EVENTS] [VISITORS]
//! ```
//!
//! Creates a throwaway database on the server named by `RAPPORT_TEST_POSTGRES_URL` (see `testing.rs`), fills it
//! with EVENTS (default 1,000,000) Segment-like page and track messages from VISITORS (default 50,000) anonymous
//! browsers, in `ingest_tracking` calls of 10,000 messages (the group commit's largest), then measures 20 more
//! calls on the filled database. The messages are those of the SQLite backend's `capture_storage` example, so the
//! two compare. Prints the event storage per event (`pg_total_relation_size` of the events table and of the tables
//! only events use, indexes included), the database's growth per event, and the rates, each beside its target.
//! The figures depend on the disk, the server's settings and on what else the machine runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rapport_domain::{BoundedText, Slug, WorkspaceId};
use rapport_store::{NewSource, SourceKind, Store, TrackingMessage, TrackingOp, TrackingOutcome, Visitor};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection};

const CALL_MESSAGES: usize = 10_000;
const MEASURED_CALLS: usize = 20;
const TARGET_BYTES_PER_EVENT: f64 = 150.0;
const TARGET_EVENTS_PER_SECOND: f64 = 50_000.0;

/// The relations that hold events and nothing else; each is measured with its indexes and TOAST.
const EVENT_STORAGE: [&str; 4] = ["events", "event_documents", "event_names", "message_ids"];

#[tokio::main]
async fn main() {
    let mut arguments = std::env::args().skip(1);
    let events: usize = arguments.next().map_or(1_000_000, |raw| raw.parse().expect("EVENTS is a number"));
    let visitors: usize = arguments.next().map_or(50_000, |raw| raw.parse().expect("VISITORS is a number"));
    let database = TestDatabase::create().await.expect("a test database (is PostgreSQL running?)");
    let store = PostgresStore::connect(database.url()).await.expect("a migrated store");
    let mut connection = PgConnection::connect(database.url()).await.unwrap();

    let workspace = store.create_workspace(&Slug::parse("bench").unwrap(), "Bench").await.unwrap().id;
    let source = NewSource {
        name: BoundedText::parse("官网", 100).unwrap(),
        kind: SourceKind::Website,
        write_key: "wk_bench".to_owned(),
        auto_create_fields: false,
        honor_dnt: false,
    };
    let source = store.create_source(workspace, source).await.unwrap().id;
    let mut generator = Generator::new(visitors, source);
    let empty_size = database_size(&mut connection).await;

    println!("filling: {events} events from {visitors} visitors, {CALL_MESSAGES} messages per call");
    let fill = ingest(&store, workspace, &mut generator, events).await;
    report("fill", &fill);
    sqlx::query("ANALYZE").execute(&mut connection).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut connection).await.unwrap();
    println!("stored events: {stored}");
    let mut event_bytes = 0;
    for relation in EVENT_STORAGE {
        let bytes = relation_sizes(&mut connection, relation).await;
        for (name, size) in &bytes {
            println!("  {name:<32} {:>7.1} bytes/event", *size as f64 / stored as f64);
        }
        event_bytes += bytes.iter().map(|(_, size)| size).sum::<i64>();
    }
    let per_event = event_bytes as f64 / stored as f64;
    println!("event storage: {per_event:.1} bytes/event (target ≤ {TARGET_BYTES_PER_EVENT})");
    let growth = database_size(&mut connection).await - empty_size;
    println!(
        "database growth: {:.1} bytes/event, contacts and identities of the visitors and the WAL-free catalog included",
        growth as f64 / stored as f64
    );

    println!("measuring: {MEASURED_CALLS} calls of {CALL_MESSAGES} messages on the filled database");
    let measured = ingest(&store, workspace, &mut generator, MEASURED_CALLS * CALL_MESSAGES).await;
    report("steady", &measured);
    connection.close().await.unwrap();
    drop(store);
}

struct Run {
    events: usize,
    elapsed: Duration,
    calls: Vec<Duration>,
}

async fn ingest(store: &PostgresStore, workspace: WorkspaceId, generator: &mut Generator, events: usize) -> Run {
    let mut run = Run { events: 0, elapsed: Duration::ZERO, calls: Vec::new() };
    while run.events < events {
        let batch: Vec<TrackingMessage> =
            (0..CALL_MESSAGES.min(events - run.events)).map(|_| generator.message()).collect();
        let count = batch.len();
        let started = Instant::now();
        let outcomes = store.ingest_tracking(workspace, batch).await.expect("the call succeeds");
        let took = started.elapsed();
        assert!(outcomes.iter().all(|outcome| matches!(outcome, TrackingOutcome::Applied { .. })));
        run.events += count;
        run.elapsed += took;
        run.calls.push(took);
    }
    run
}

fn report(phase: &str, run: &Run) {
    let mut calls = run.calls.clone();
    calls.sort();
    let at = |fraction: f64| calls[((calls.len() - 1) as f64 * fraction) as usize].as_secs_f64() * 1_000.0;
    println!(
        "{phase}: {:.0} events/s (target ≥ {TARGET_EVENTS_PER_SECOND}), per call p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        run.events as f64 / run.elapsed.as_secs_f64(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

async fn database_size(connection: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(connection).await.unwrap()
}

/// The table's own size (heap, free space map and visibility map, TOAST) and each of its indexes.
async fn relation_sizes(connection: &mut PgConnection, table: &str) -> Vec<(String, i64)> {
    let mut sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT $1, pg_table_size($1::regclass)
         UNION ALL
         SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index WHERE indrelid = $1::regclass",
    )
    .bind(table)
    .fetch_all(connection)
    .await
    .unwrap();
    sizes.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    sizes
}

/// Page views and track calls as analytics.js sends them, from a fixed set of visitors browsing a site of 200
/// pages. Deterministic, so that runs compare.
struct Generator {
    random: SplitMix,
    source: rapport_domain::SourceId,
    visitors: Vec<VisitorProfile>,
    clock: DateTime<Utc>,
}

struct VisitorProfile {
    anonymous_id: String,
    context: Map<String, Value>,
    page: usize,
}

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0 (compatible; corporate build 2024.06)",
];
const LOCALES: [&str; 4] = ["zh-CN", "en-US", "zh-TW", "ja-JP"];
const REFERRERS: [&str; 4] = ["", "https://www.baidu.com/", "https://www.google.com/", "https://www.bing.com/"];
const TRACK_EVENTS: [&str; 8] = [
    "Button Clicked",
    "Product Viewed",
    "Signed Up",
    "Trial Started",
    "Whitepaper Downloaded",
    "Video Played",
    "Form Submitted",
    "Plan Selected",
];
const SECTIONS: [&str; 5] = ["hero", "pricing", "features", "footer", "nav"];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

impl Generator {
    fn new(visitors: usize, source: rapport_domain::SourceId) -> Generator {
        let mut random = SplitMix(0x5eed);
        let visitors = (0..visitors)
            .map(|_| {
                let anonymous_id = random.uuid();
                let ip = format!(
                    "{}.{}.{}.{}",
                    1 + random.below(222),
                    random.below(256),
                    random.below(256),
                    random.below(256)
                );
                let context = json!({
                    "ip": ip,
                    "library": { "name": "analytics.js", "version": "next-1.70.0" },
                    "locale": LOCALES[random.below(LOCALES.len())],
                    "userAgent": USER_AGENTS[random.below(USER_AGENTS.len())],
                });
                let Value::Object(context) = context else { unreachable!() };
                VisitorProfile { anonymous_id, context, page: random.below(200) }
            })
            .collect();
        Generator { random, source, visitors, clock: DateTime::from_timestamp(1_750_000_000, 0).unwrap() }
    }

    fn message(&mut self) -> TrackingMessage {
        let random = &mut self.random;
        let index = random.below(self.visitors.len());
        let visitor = &mut self.visitors[index];
        self.clock += chrono::Duration::microseconds(random.below(2_000) as i64);
        let page_view = random.below(10) < 7;
        let referrer = if page_view && random.below(3) == 0 {
            REFERRERS[random.below(REFERRERS.len())].to_owned()
        } else {
            page_url(visitor.page)
        };
        if page_view {
            visitor.page = random.below(200);
        }
        let page = visitor.page;
        let search = if random.below(20) == 0 { "?utm_source=newsletter&utm_medium=email" } else { "" };
        let page_properties = json!({
            "path": page_path(page),
            "referrer": referrer,
            "search": search,
            "title": format!("Acme 营销云 – {}", page_title(page)),
            "url": format!("{}{search}", page_url(page)),
        });
        let mut context = visitor.context.clone();
        context.insert("page".to_owned(), page_properties.clone());
        let (event_type, properties) = if page_view {
            ("page_viewed".to_owned(), page_properties)
        } else {
            let event = TRACK_EVENTS[random.below(TRACK_EVENTS.len())];
            let properties = match random.below(3) {
                0 => json!({ "section": SECTIONS[random.below(SECTIONS.len())], "variant": "b" }),
                1 => json!({
                    "product_id": format!("prod_{}", random.below(5_000)),
                    "price": random.below(100_000) as f64 / 100.0,
                    "currency": "CNY",
                }),
                _ => json!({
                    "plan": PLANS[random.below(PLANS.len())],
                    "seats": 1 + random.below(200),
                    "billing": "annual",
                    "trial": random.below(2) == 0,
                }),
            };
            (event.to_owned(), properties)
        };
        let Value::Object(properties) = properties else { unreachable!() };
        let occurred_at = self.clock;
        let received_at = occurred_at + chrono::Duration::milliseconds(50 + random.below(450) as i64);
        TrackingMessage {
            message_id: format!("ajs-next-{:016x}{:016x}", random.next(), random.next()),
            source: self.source,
            visitor: Visitor { user_id: None, anonymous_id: Some(visitor.anonymous_id.clone()) },
            op: TrackingOp::Event { event_type, properties, context, occurred_at, received_at },
        }
    }
}

fn page_path(page: usize) -> String {
    match page {
        0 => "/".to_owned(),
        1..=9 => format!("/product/feature-{page}"),
        10..=59 => format!("/blog/2025/marketing-automation-guide-{page}"),
        _ => format!("/docs/integrations/connector-{page}"),
    }
}

fn page_url(page: usize) -> String {
    format!("https://www.acme-example.cn{}", page_path(page))
}

fn page_title(page: usize) -> String {
    match page {
        0 => "首页".to_owned(),
        1..=9 => format!("产品功能 {page}"),
        10..=59 => format!("营销自动化指南 第 {page} 篇"),
        _ => format!("集成文档 {page}"),
    }
}

/// A small deterministic generator (SplitMix64): good enough for test data, and the same on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn uuid(&mut self) -> String {
        let (high, low) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0x0fff,
            0x8000 | (low >> 48) & 0x3fff,
            low & 0xffff_ffff_ffff
        )
    }
}

//! Store-level figures for tracking ingestion on SQLite: bytes per stored event and events per second.
//!
//! ```text
//! cargo run --release -p rapport-store-sqlite --example capture_storage -- [EVENTS] [VISITORS] [DIRECTORY]
//! ```
//!
//! Fills a fresh database with EVENTS (default 1,000,000) Segment-like page and track messages from VISITORS
//! (default 50,000) anonymous browsers, in `ingest_tracking` calls of 10,000 messages (the group commit's largest),
//! then measures 20 more calls on the filled database. Prints the event storage per event (from `dbstat`: the
//! events table, its index, the message-id and document tables), the whole file's growth per event, and the rates,
//! each beside its target. The figures depend on the disk and on what else the machine runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rapport_domain::{BoundedText, Slug, WorkspaceId};
use rapport_store::{NewSource, SourceKind, Store, TrackingMessage, TrackingOp, TrackingOutcome, Visitor};
use rapport_store_sqlite::SqliteStore;
use rusqlite::Connection;
use serde_json::{Map, Value, json};

const CALL_MESSAGES: usize = 10_000;
const MEASURED_CALLS: usize = 20;
const TARGET_BYTES_PER_EVENT: f64 = 150.0;
const TARGET_EVENTS_PER_SECOND: f64 = 100_000.0;

/// The tables and indexes that hold events and nothing else.
const EVENT_STORAGE: [&str; 8] = [
    "events",
    "events_by_contact",
    "message_ids",
    "event_documents",
    "event_documents_by_hash",
    "event_types",
    "sqlite_autoindex_event_types_1",
    "event_document_refs",
];

#[tokio::main]
async fn main() {
    let mut arguments = std::env::args().skip(1);
    let events: usize = arguments.next().map_or(1_000_000, |raw| raw.parse().expect("EVENTS is a number"));
    let visitors: usize = arguments.next().map_or(50_000, |raw| raw.parse().expect("VISITORS is a number"));
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let directory = arguments.next().map_or_else(|| scratch.path().to_owned(), Into::into);
    let path = directory.join("capture-bench.db");
    let _ = std::fs::remove_file(&path);

    let store = SqliteStore::open(&path).expect("a fresh database");
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
    checkpoint(&path);
    let empty_size = file_size(&path);

    println!("filling: {events} events from {visitors} visitors, {CALL_MESSAGES} messages per call");
    let fill = ingest(&store, workspace, &mut generator, events).await;
    report("fill", &fill);
    checkpoint(&path);
    let stored = count_events(&path);
    let (event_bytes, breakdown) = event_storage(&path);
    let growth = file_size(&path) - empty_size;
    println!("stored events: {stored}");
    for (name, bytes) in &breakdown {
        println!("  {name:<32} {:>7.1} bytes/event", *bytes as f64 / stored as f64);
    }
    let per_event = event_bytes as f64 / stored as f64;
    println!("event storage: {per_event:.1} bytes/event (target ≤ {TARGET_BYTES_PER_EVENT})");
    println!(
        "file growth:   {:.1} bytes/event, contacts and identities of the visitors included",
        growth as f64 / stored as f64
    );

    println!("measuring: {MEASURED_CALLS} calls of {CALL_MESSAGES} messages on the filled database");
    let measured = ingest(&store, workspace, &mut generator, MEASURED_CALLS * CALL_MESSAGES).await;
    report("steady", &measured);
}

struct Run {
    events: usize,
    elapsed: Duration,
    calls: Vec<Duration>,
}

async fn ingest(store: &SqliteStore, workspace: WorkspaceId, generator: &mut Generator, events: usize) -> Run {
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

fn checkpoint(path: &Path) {
    let connection = Connection::open(path).unwrap();
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
}

fn file_size(path: &Path) -> i64 {
    i64::try_from(std::fs::metadata(path).unwrap().len()).unwrap()
}

fn count_events(path: &Path) -> i64 {
    let connection = Connection::open(path).unwrap();
    connection.query_row("SELECT count(*) FROM events", [], |row| row.get(0)).unwrap()
}

/// Bytes of the pages (free space within them included) of each table and index that stores events.
fn event_storage(path: &Path) -> (i64, Vec<(String, i64)>) {
    let connection = Connection::open(path).unwrap();
    let mut statement =
        connection.prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").unwrap();
    let rows: Vec<(String, i64)> =
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect();
    let breakdown: Vec<(String, i64)> =
        rows.into_iter().filter(|(name, _)| EVENT_STORAGE.contains(&name.as_str())).collect();
    (breakdown.iter().map(|(_, bytes)| bytes).sum(), breakdown)
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

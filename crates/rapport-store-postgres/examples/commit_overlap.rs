//! How many small tracking commits per second PostgreSQL takes, with one committer or with several in flight.
//!
//! ```text
//! cargo run --release -p rapport-store-postgres --example commit_overlap -- [SECONDS]
//! ```
//!
//! Single `/v1/track` calls reach the store through the group committer as calls of a few messages, one call at a
//! time; each waits for its commit's WAL flush. This measures `ingest_tracking` with calls of 8 and 16 one-event
//! messages from known visitors, issued by one task (what the committer does today) and by two or four tasks at
//! once (a committer that keeps a few calls in flight), for SECONDS each (default 5), on a throwaway database on
//! the server named by `RAPPORT_TEST_POSTGRES_URL` (see `testing.rs`). Concurrent commits share WAL flushes, so
//! throughput should grow with the calls in flight while each call's latency stays about one flush.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use rapport_domain::{BoundedText, Slug, SourceId, WorkspaceId};
use rapport_store::{NewSource, SourceKind, Store, TrackingMessage, TrackingOp, Visitor};
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;
use serde_json::{Map, Value, json};

const VISITORS: usize = 1_000;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args().nth(1).map_or(5, |raw| raw.parse().expect("SECONDS is a number"));
    let database = TestDatabase::create().await.expect("a test database (is PostgreSQL running?)");
    let store = Arc::new(PostgresStore::connect(database.url()).await.expect("a migrated store"));
    let workspace = store.create_workspace(&Slug::parse("bench").unwrap(), "Bench").await.unwrap().id;
    let source = NewSource {
        name: BoundedText::parse("site", 100).unwrap(),
        kind: SourceKind::Website,
        write_key: "wk_overlap".to_owned(),
        auto_create_fields: false,
        honor_dnt: false,
    };
    let source = store.create_source(workspace, source).await.unwrap().id;
    let sequence = Arc::new(AtomicUsize::new(0));
    // Every visitor is known before measuring, as in the benchmark's second phase.
    let warm_up: Vec<TrackingMessage> = (0..VISITORS).map(|_| message(&sequence, source)).collect();
    store.ingest_tracking(workspace, warm_up).await.unwrap();

    println!("calls in flight × messages per call: commits/s, messages/s, call latency p50 / p99");
    for messages_per_call in [8, 16] {
        for in_flight in [1, 2, 4] {
            let (calls, latencies) =
                run(&store, workspace, source, &sequence, in_flight, messages_per_call, seconds).await;
            let rate = calls as f64 / seconds as f64;
            println!(
                "{in_flight} × {messages_per_call:>2}: {rate:>6.0} commits/s, {:>6.0} messages/s, {:.2} / {:.2} ms",
                rate * messages_per_call as f64,
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            );
        }
    }
    drop(store);
}

async fn run(
    store: &Arc<PostgresStore>,
    workspace: WorkspaceId,
    source: SourceId,
    sequence: &Arc<AtomicUsize>,
    in_flight: usize,
    messages_per_call: usize,
    seconds: u64,
) -> (usize, Vec<Duration>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (store, sequence) = (store.clone(), sequence.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let messages: Vec<TrackingMessage> =
                    (0..messages_per_call).map(|_| message(&sequence, source)).collect();
                let started = Instant::now();
                store.ingest_tracking(workspace, messages).await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    (latencies.len(), latencies)
}

fn message(sequence: &AtomicUsize, source: SourceId) -> TrackingMessage {
    let index = sequence.fetch_add(1, Ordering::Relaxed);
    let Value::Object(properties) = json!({ "button": "demo", "plan": "pro", "position": index % 7 }) else {
        unreachable!()
    };
    let Value::Object(context) = json!({ "ip": "203.0.113.7", "locale": "zh-CN", "library": { "name": "rapport.js" } })
    else {
        unreachable!()
    };
    TrackingMessage {
        message_id: format!("overlap-{index}"),
        source,
        visitor: Visitor { user_id: None, anonymous_id: Some(format!("anon-{}", index % VISITORS)) },
        op: TrackingOp::Event {
            event_type: "Button Clicked".to_owned(),
            properties,
            context: context.into_iter().collect::<Map<String, Value>>(),
            occurred_at: Utc::now(),
            received_at: Utc::now(),
        },
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * fraction) as usize).map_or(0.0, |at| at.as_secs_f64() * 1_000.0)
}

//! `rapport bench segments`: the audience engine on generated data. Loads contacts and events into a fresh store,
//! creates active segments, and prints beside each target: a five-condition segment evaluated from scratch, the
//! time from an event's acknowledgement to its `segment_entered` record while events flow, the engine's memory per
//! contact, and a restart (loading every contact and segment again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_domain::filter::parse;
use rapport_domain::{
    BoundedText, ContactChanges, ContactId, EmailAddress, FieldEntity, FieldType, MergeRule, Patch, SegmentId, Slug,
    TagPath, WorkspaceId,
};
use rapport_engine::audience::{Audience, AudienceConfig, SegmentStatus};
use rapport_store::{Actor, ContactRef, NewEvent, NewField, NewSegment, Store};
use serde_json::json;

use crate::bench_import::peak_resident_mib;
use crate::bootstrap::{DEFAULT_WORKSPACE, bootstrap};
use crate::config::{AdminConfig, Secret, StoreConfig};
use crate::open_store;

pub struct SegmentsBenchConfig {
    /// An empty PostgreSQL database; `None` measures SQLite in a temporary directory.
    pub database_url: Option<Secret>,
    pub contacts: usize,
    pub events: usize,
    pub segments: usize,
    /// Background events per second during the latency measurement.
    pub rate: usize,
    pub samples: usize,
}

const STAGES: [&str; 5] = ["raw", "mql", "sal", "sql", "customer"];
const PROVINCES: [&str; 6] = ["广东", "浙江", "江苏", "上海", "北京", "四川"];
const INDUSTRIES: [&str; 5] = ["制造业", "金融", "零售", "教育", "医疗"];
const DOMAINS: [&str; 5] = ["qq.com", "163.com", "acme.cn", "corp.com.cn", "example.com"];

/// The five-condition segment of the target: two fields, a tag, a stage and an event count in a 30-day window.
pub const FIVE_CONDITIONS: &str = "province = \"广东\" and fields.industry = \"制造业\" and tag(\"行业/制造业\") and \
     stage >= mql and count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= 3";

pub async fn segments(config: SegmentsBenchConfig) -> anyhow::Result<()> {
    if config.contacts == 0 || config.segments == 0 || config.samples == 0 {
        bail!("--contacts, --segments and --samples must be positive");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let store_config = StoreConfig { data_dir: scratch.path().to_owned(), database_url: config.database_url.clone() };
    let store = open_store(&store_config).await?;
    bootstrap(store.as_ref(), &AdminConfig::default()).await?;
    let workspace = store.workspace_by_slug(DEFAULT_WORKSPACE).await?.context("the default workspace is missing")?.id;
    if store.count_contacts(workspace).await? > 0 {
        bail!("the database already holds contacts; point --database-url at an empty database");
    }
    println!(
        "Rapport audience benchmark — {}, {} contacts, {} events, {} active segments",
        store.backend(),
        config.contacts,
        config.events,
        config.segments
    );

    let started = Instant::now();
    let ids = load_contacts(store.as_ref(), workspace, config.contacts).await?;
    println!("loaded contacts     {:>10.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    load_events(store.as_ref(), workspace, &ids, config.events).await?;
    println!("loaded events       {:>10.1} s", started.elapsed().as_secs_f64());

    // Active segments share the behaviour predicate of the five-condition one, as real workspaces reuse a few.
    for index in 0..config.segments {
        let filter = segment_filter(index);
        let canonical = parse(&filter).map_err(|error| anyhow::anyhow!("{filter}: {error}"))?.to_string();
        let segment = NewSegment {
            name: BoundedText::parse(&format!("segment {index}"), 100).context("a segment name")?,
            description: String::new(),
            filter: canonical,
            tag_id: None,
        };
        store.create_segment(workspace, segment).await?;
    }

    // Start: every contact and segment read, aggregates rebuilt from stored events, members written.
    let (audience, stop, engine) = start(store.clone());
    let started = Instant::now();
    wait_ready(&audience).await;
    audience.settle().await?;
    let first_start = started.elapsed();
    println!(
        "first start         {:>10.1} s    (every contact read, {} segments built and their members written)",
        first_start.as_secs_f64(),
        config.segments
    );

    // The five-condition segment evaluated over every contact, from scratch.
    let filter = parse(FIVE_CONDITIONS).map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut runs = Vec::new();
    let mut count = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let preview = audience.preview(workspace, &filter, 10).await.map_err(|error| anyhow::anyhow!("{error}"))?;
        runs.push(started.elapsed());
        count = preview.count;
    }
    runs.sort();
    let median = runs[runs.len() / 2];
    println!(
        "5-condition build   {:>10.1} ms   target < 200 ms   {}   ({count} members of {}, median of 5)",
        median.as_secs_f64() * 1e3,
        verdict(median.as_secs_f64() * 1e3 < 200.0),
        config.contacts
    );

    latency(store.clone(), workspace, &audience, &ids, &config).await?;

    let memory = audience.memory().await;
    let contacts = memory.contacts.max(1) as f64;
    let facts = memory.contact_bytes as f64 / contacts;
    let members = memory.member_bytes as f64 / contacts;
    println!(
        "engine memory       {:>10.0} B/contact  target ≤ 300   {}   (facts {facts:.0} + members of {} segments {members:.0}; \
         behaviour aggregates {:.1} MiB more)",
        facts + members,
        verdict(facts + members <= 300.0),
        memory.segments,
        memory.aggregate_bytes as f64 / 1_048_576.0
    );

    // Restart: the same store, a new engine.
    stop.send_replace(true);
    let _ = engine.await;
    let (audience, stop, engine) = start(store.clone());
    let started = Instant::now();
    wait_ready(&audience).await;
    let restart = started.elapsed();
    println!(
        "restart             {:>10.1} s    target < 20 s    {}",
        restart.as_secs_f64(),
        verdict(restart.as_secs_f64() < 20.0)
    );
    if let Some(peak) = peak_resident_mib() {
        println!("peak memory         {peak:>10.0} MiB");
    }
    stop.send_replace(true);
    let _ = engine.await;
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "✓" } else { "✗" }
}

fn start(store: Arc<dyn Store>) -> (Audience, tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (audience, engine) = Audience::new(store, AudienceConfig::default());
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(engine.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    (audience, stop, task)
}

async fn wait_ready(audience: &Audience) {
    while !audience.is_ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A spread of realistic filters over the generated data; every tenth reuses the five-condition one's behaviour.
fn segment_filter(index: usize) -> String {
    let province = PROVINCES[index % PROVINCES.len()];
    let industry = INDUSTRIES[index % INDUSTRIES.len()];
    let stage = STAGES[index % STAGES.len()];
    match index % 5 {
        0 => format!(
            "province = \"{province}\" and count(event \"page_viewed\" where url contains \"/pricing\", last 30 days) >= {}",
            1 + index % 4
        ),
        1 => format!("stage >= {stage} and tag(\"行业/{industry}\")"),
        2 => format!("fields.industry = \"{industry}\" and email_domain not in (\"qq.com\", \"163.com\")"),
        3 => format!("tag(\"行业\") and fields.budget > {} and stage = {stage}", (index % 10) * 1_000),
        _ => format!("count(event \"email_opened\", last {} days) = 0 and province = \"{province}\"", 30 + index % 60),
    }
}

async fn load_contacts(store: &dyn Store, workspace: WorkspaceId, contacts: usize) -> anyhow::Result<Vec<ContactId>> {
    for (key, label, field_type) in [("industry", "行业", FieldType::Text), ("budget", "预算", FieldType::Number)] {
        let field = NewField {
            entity: FieldEntity::Contact,
            key: Slug::parse(key).context("a field key")?,
            label: BoundedText::parse(label, 100).context("a field label")?,
            field_type,
            options: Vec::new(),
            merge_rule: MergeRule::Latest,
        };
        store.create_field(workspace, field).await?;
    }
    let mut rng = StdRng::seed_from_u64(4);
    let mut ids = Vec::with_capacity(contacts);
    let mut batch = Vec::with_capacity(5_000);
    for index in 0..contacts {
        let domain = DOMAINS[rng.gen_range(0..DOMAINS.len())];
        let industry = INDUSTRIES[rng.gen_range(0..INDUSTRIES.len())];
        let mut changes = ContactChanges {
            email: Patch::Set(EmailAddress::parse(&format!("person{index}@{domain}")).context("an email")?),
            stage: Some(Slug::parse(STAGES[rng.gen_range(0..STAGES.len())]).context("a stage")?),
            add_tags: vec![TagPath::parse(&format!("行业/{industry}")).context("a tag")?],
            ..ContactChanges::default()
        };
        changes.system.province =
            Patch::Set(BoundedText::parse(PROVINCES[rng.gen_range(0..PROVINCES.len())], 100).context("a province")?);
        changes.fields =
            vec![("industry".to_owned(), json!(industry)), ("budget".to_owned(), json!(rng.gen_range(0..10_000)))];
        batch.push(changes);
        if batch.len() == 5_000 || index + 1 == contacts {
            let outcomes = store.upsert_contacts(workspace, std::mem::take(&mut batch), Actor::System).await?;
            ids.extend(outcomes.into_iter().map(|outcome| outcome.id));
        }
    }
    Ok(ids)
}

fn page_view(contact: ContactId, url: &str, at: DateTime<Utc>, kind: &str) -> NewEvent {
    let mut properties = serde_json::Map::new();
    properties.insert("url".to_owned(), json!(url));
    NewEvent {
        contact: ContactRef::Id(contact),
        event_type: kind.to_owned(),
        properties,
        context: serde_json::Map::new(),
        occurred_at: at,
        received_at: at,
        source: None,
        message_id: None,
    }
}

/// Events over the last 90 days: page views (a fifth of them of the pricing page) and email opens.
async fn load_events(
    store: &dyn Store,
    workspace: WorkspaceId,
    ids: &[ContactId],
    events: usize,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let now = Utc::now().timestamp();
    let mut batch = Vec::with_capacity(10_000);
    let mut reported = Instant::now();
    for index in 0..events {
        let contact = ids[rng.gen_range(0..ids.len())];
        let at = DateTime::from_timestamp(now - rng.gen_range(0..90 * 86_400), 0).context("a time")?;
        let event = match rng.gen_range(0..10) {
            0..=1 => page_view(contact, "https://acme.cn/pricing", at, "page_viewed"),
            2..=7 => page_view(contact, "https://acme.cn/blog/post", at, "page_viewed"),
            _ => page_view(contact, "", at, "email_opened"),
        };
        batch.push(event);
        if batch.len() == 10_000 || index + 1 == events {
            store.insert_events(workspace, std::mem::take(&mut batch)).await?;
            if reported.elapsed() > Duration::from_secs(30) {
                reported = Instant::now();
                eprintln!("  … {} of {events} events", index + 1);
            }
        }
    }
    Ok(())
}

/// Sends background events at `rate` per second and, among them, events that make one contact enter a dedicated
/// segment; times each from the store's acknowledgement to the `segment_entered` membership being visible.
async fn latency(
    store: Arc<dyn Store>,
    workspace: WorkspaceId,
    audience: &Audience,
    ids: &[ContactId],
    config: &SegmentsBenchConfig,
) -> anyhow::Result<()> {
    let trigger = parse("count(event \"demo_requested\", ever) >= 1").map_err(|error| anyhow::anyhow!("{error}"))?;
    let segment = NewSegment {
        name: BoundedText::parse("requested a demo", 100).context("a segment name")?,
        description: String::new(),
        filter: trigger.to_string(),
        tag_id: None,
    };
    let segment: SegmentId = store.create_segment(workspace, segment).await?.id;
    loop {
        audience.settle().await?;
        if audience.segment(workspace, segment).await.is_some_and(|view| view.status == SegmentStatus::Ready) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flowing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let background = {
        let store = store.clone();
        let ids = ids.to_vec();
        let flowing = flowing.clone();
        let per_tick = (config.rate / 100).max(1);
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(6);
            let mut ticker = tokio::time::interval(Duration::from_millis(10));
            let mut sent = 0usize;
            while flowing.load(std::sync::atomic::Ordering::Relaxed) {
                ticker.tick().await;
                let now = Utc::now();
                let events: Vec<NewEvent> = (0..per_tick)
                    .map(|_| page_view(ids[rng.gen_range(0..ids.len())], "https://acme.cn/pricing", now, "page_viewed"))
                    .collect();
                if store.insert_events(workspace, events).await.is_ok() {
                    sent += per_tick;
                }
            }
            sent
        })
    };
    let flow_started = Instant::now();
    let mut latencies = Vec::with_capacity(config.samples);
    for sample in 0..config.samples {
        let contact = ids[(sample * 7_919) % ids.len()];
        let event = page_view(contact, "", Utc::now(), "demo_requested");
        store.insert_events(workspace, vec![event]).await?;
        let acknowledged = Instant::now();
        loop {
            if store.contact_segments(workspace, contact).await?.contains(&segment) {
                break;
            }
            if acknowledged.elapsed() > Duration::from_secs(30) {
                bail!("contact {contact} did not enter the segment within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(acknowledged.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flowing.store(false, std::sync::atomic::Ordering::Relaxed);
    let sent = background.await.unwrap_or_default();
    let rate = sent as f64 / flow_started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile).round() as usize];
    let p99 = at(0.99);
    println!(
        "ack → segment_entered p50 {:.1} ms, p99 {:>6.1} ms   target p99 < 100 ms   {}   ({} samples, {rate:.0} background events/s)",
        at(0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        verdict(p99.as_secs_f64() * 1e3 < 100.0),
        latencies.len()
    );
    Ok(())
}

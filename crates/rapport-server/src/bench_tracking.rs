//! `rapport bench tracking`: the Segment-compatible tracking API through the real server on loopback.
//! 1. `/v1/batch` with 100-message batches from concurrent clients, durable before each answer: events/s.
//! 2. Single `/v1/track` calls over keep-alive connections: requests/s and latency percentiles.
//!
//! Then the store's size per stored event.
//!
//! The clients run on a thread of their own, with request bodies generated before the clock starts, so that the
//! CPU they use can be told apart from the server's: both are printed per phase (from `/proc`, on Linux).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use rapport_domain::BoundedText;
use rapport_store::{NewSource, SourceKind};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::bench::percentiles;
use crate::bootstrap::bootstrap;
use crate::config::{AdminConfig, Secret, StoreConfig};
use crate::{Server, open_store};

pub struct TrackingBenchConfig {
    pub database_url: Option<Secret>,
    /// Events sent through `/v1/batch`.
    pub events: usize,
    /// Messages per batch request.
    pub batch: usize,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Single `/v1/track` requests.
    pub requests: usize,
    /// Distinct anonymous visitors the events come from.
    pub visitors: usize,
}

const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
    Chrome/126.0.0.0 Safari/537.36";

/// One realistic message: a page view or a track call from a browser, as a Segment client sends it.
fn message(sequence: usize, visitors: usize) -> String {
    let visitor = sequence.wrapping_mul(2_654_435_761) % visitors;
    let path = ["/", "/pricing", "/docs/getting-started", "/blog/b2b-growth", "/contact"][sequence % 5];
    if sequence % 2 == 0 {
        format!(
            r#"{{"type":"page","anonymousId":"anon-{visitor}","messageId":"bench-{sequence}","name":"Page {path}","properties":{{"url":"https://www.example.com{path}?utm_source=wechat","path":"{path}","title":"示例科技 — B2B","referrer":"https://www.baidu.com/"}},"context":{{"ip":"203.0.113.{ip}","locale":"zh-CN","userAgent":"{USER_AGENT}","library":{{"name":"rapport.js","version":"1.0.0"}},"page":{{"url":"https://www.example.com{path}","path":"{path}"}},"campaign":{{"source":"wechat","name":"spring"}}}},"timestamp":"2026-05-01T08:00:00Z"}}"#,
            ip = visitor % 250
        )
    } else {
        format!(
            r#"{{"type":"track","anonymousId":"anon-{visitor}","messageId":"bench-{sequence}","event":"Button Clicked","properties":{{"button":"demo","plan":"pro","position":{position}}},"context":{{"ip":"203.0.113.{ip}","locale":"zh-CN","userAgent":"{USER_AGENT}","library":{{"name":"rapport.js","version":"1.0.0"}}}},"timestamp":"2026-05-01T08:00:01Z"}}"#,
            position = sequence % 7,
            ip = visitor % 250
        )
    }
}

pub async fn tracking(config: TrackingBenchConfig) -> anyhow::Result<()> {
    if config.batch == 0 || config.concurrency == 0 || config.visitors == 0 {
        bail!("--batch, --concurrency and --visitors must be positive");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let store_config = StoreConfig { data_dir: scratch.path().to_owned(), database_url: config.database_url.clone() };
    let store = open_store(&store_config).await?;
    bootstrap(store.as_ref(), &AdminConfig::default()).await?;
    let workspace = store.workspace_by_slug("default").await?.context("the default workspace is missing")?;
    let write_key = format!("wk_bench_{}", std::process::id());
    let source = NewSource {
        name: BoundedText::parse("bench", 100).map_err(|error| anyhow::anyhow!("{error}"))?,
        kind: SourceKind::Website,
        write_key: write_key.clone(),
        auto_create_fields: false,
        honor_dnt: false,
    };
    store.create_source(workspace.id, source).await?;
    let backend = store.backend();
    let size_before = store.storage_bytes().await?;

    let server = Server::bind(([127, 0, 0, 1], 0).into(), store.clone()).await?;
    let base = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let load = Load {
        events: config.events,
        batch: config.batch,
        concurrency: config.concurrency,
        requests: config.requests,
        visitors: config.visitors,
    };
    let client_thread = std::thread::Builder::new()
        .name("bench-client".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(run(base, write_key, load, backend))
        })
        .context("starting the client thread")?;
    let result = tokio::task::spawn_blocking(move || client_thread.join())
        .await
        .context("waiting for the client thread")?
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))
        .and_then(|result| result);
    let _ = stop.send(());
    serving.await.context("the server task failed")??;
    let events = result?;

    let size_after = store.storage_bytes().await?;
    let per_event = size_after.saturating_sub(size_before) as f64 / events.max(1) as f64;
    println!(
        "on disk             {per_event:>10.0} bytes/event target ≤ 150       ({} events; store grew by {:.1} MB, indexes included)",
        events,
        size_after.saturating_sub(size_before) as f64 / 1e6
    );
    Ok(())
}

/// What the clients send.
#[derive(Clone, Copy)]
struct Load {
    events: usize,
    batch: usize,
    concurrency: usize,
    requests: usize,
    visitors: usize,
}

/// Runs both phases on the current (client) thread and returns how many events were stored.
async fn run(base: String, write_key: String, load: Load, backend: &'static str) -> anyhow::Result<usize> {
    println!(
        "Rapport tracking benchmark — {backend}, {} events in batches of {}, {} clients, {} visitors",
        load.events, load.batch, load.concurrency, load.visitors
    );
    let client = reqwest::Client::builder().pool_max_idle_per_host(load.concurrency * 2).build()?;
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..load.events.div_ceil(load.batch))
            .map(|index| {
                let first = index * load.batch;
                let last = (first + load.batch).min(load.events);
                let messages: Vec<String> = (first..last).map(|sequence| message(sequence, load.visitors)).collect();
                Bytes::from(format!(r#"{{"batch":[{}],"sentAt":"2026-05-01T08:00:02Z"}}"#, messages.join(",")))
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = CpuClock::start();
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..load.concurrency {
        let (client, next, bodies) = (client.clone(), next.clone(), bodies.clone());
        let url = format!("{base}/v1/batch");
        let write_key = write_key.clone();
        clients.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else {
                    return Ok::<(), anyhow::Error>(());
                };
                send_until_taken(&client, &url, &write_key, body.clone()).await?;
            }
        });
    }
    while let Some(joined) = clients.join_next().await {
        joined.context("a client task panicked")??;
    }
    let elapsed = started.elapsed();
    let target = if backend == "sqlite" { "≥ 100,000/s" } else { "≥ 50,000/s" };
    println!(
        "/v1/batch           {:>10.0} events/s    target {target}   ({} events in {:.1} s, durable before each answer)",
        load.events as f64 / elapsed.as_secs_f64(),
        load.events,
        elapsed.as_secs_f64()
    );
    cpu.report(load.events, "event");
    drop(bodies);

    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..load.requests).map(|index| Bytes::from(message(load.events + index * 2 + 1, load.visitors))).collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = CpuClock::start();
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..load.concurrency {
        let (client, next, bodies) = (client.clone(), next.clone(), bodies.clone());
        let url = format!("{base}/v1/track");
        let write_key = write_key.clone();
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else {
                    return Ok::<Vec<Duration>, anyhow::Error>(latencies);
                };
                let sent = Instant::now();
                send_until_taken(&client, &url, &write_key, body.clone()).await?;
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(load.requests);
    while let Some(joined) = clients.join_next().await {
        latencies.extend(joined.context("a client task panicked")??);
    }
    let elapsed = started.elapsed();
    let (p50, p99, max) = percentiles(&mut latencies);
    println!(
        "/v1/track           {:>10.0} requests/s  target ≥ 10,000/s   ({} requests, {} connections)",
        load.requests as f64 / elapsed.as_secs_f64(),
        load.requests,
        load.concurrency
    );
    println!("/v1/track latency   p99 {p99:>7.2} ms            target < 10 ms      (p50 {p50:.2} ms, max {max:.2} ms)");
    cpu.report(load.requests, "request");
    Ok(load.events + load.requests)
}

/// CPU time used by the whole process and by the calling (client) thread since [`CpuClock::start`], read from
/// `/proc` in clock ticks of 10 ms (Linux reports them at 100 per second whatever the kernel's own rate).
struct CpuClock {
    process: Option<u64>,
    client: Option<u64>,
}

impl CpuClock {
    fn start() -> CpuClock {
        CpuClock { process: cpu_ticks("/proc/self/stat"), client: cpu_ticks("/proc/thread-self/stat") }
    }

    /// Prints the server's and the client's CPU time per unit; nothing where `/proc` is not there to tell.
    fn report(&self, units: usize, unit: &str) {
        let (Some(process_before), Some(client_before), Some(process), Some(client)) =
            (self.process, self.client, cpu_ticks("/proc/self/stat"), cpu_ticks("/proc/thread-self/stat"))
        else {
            return;
        };
        let client = client.saturating_sub(client_before);
        let server = process.saturating_sub(process_before).saturating_sub(client);
        let per_unit = |ticks: u64| ticks as f64 * 10_000.0 / units.max(1) as f64;
        println!(
            "  CPU               server {:.1} µs/{unit}, bench client {:.1} µs/{unit} ({:.1} s and {:.1} s)",
            per_unit(server),
            per_unit(client),
            server as f64 / 100.0,
            client as f64 / 100.0
        );
    }
}

/// User plus system time, in ticks, from a `/proc/…/stat` file (fields 14 and 15, after the parenthesised name).
fn cpu_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Sends one request, waiting and retrying when the server says it is busy, as the official clients do.
async fn send_until_taken(client: &reqwest::Client, url: &str, write_key: &str, body: Bytes) -> anyhow::Result<()> {
    loop {
        let response = client
            .post(url)
            .basic_auth(write_key, Some(""))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        if status.as_u16() == 429 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let text = response.text().await?;
        if !status.is_success() || text.contains("\"errors\":[{") {
            bail!("the server answered {status}: {text}");
        }
        return Ok(());
    }
}

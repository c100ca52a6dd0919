//! `rapport bench tracking`: the Segment-compatible tracking API through the real server on loopback.
//! 1. `/v1/batch` with 100-message batches from concurrent clients, durable before each answer: events/s.
//! 2. Single `/v1/track` calls over keep-alive connections: requests/s and latency percentiles.
//! Then the store's size per stored event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
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
    let client = reqwest::Client::builder().pool_max_idle_per_host(config.concurrency * 2).build()?;
    let result = run(&client, &base, &write_key, &config, backend).await;
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

/// Runs both phases and returns how many events were stored.
async fn run(
    client: &reqwest::Client,
    base: &str,
    write_key: &str,
    config: &TrackingBenchConfig,
    backend: &str,
) -> anyhow::Result<usize> {
    println!(
        "Rapport tracking benchmark — {backend}, {} events in batches of {}, {} clients, {} visitors",
        config.events, config.batch, config.concurrency, config.visitors
    );
    let batches = config.events.div_ceil(config.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..config.concurrency {
        let (client, next) = (client.clone(), next.clone());
        let url = format!("{base}/v1/batch");
        let (write_key, batch, visitors, events) = (write_key.to_owned(), config.batch, config.visitors, config.events);
        clients.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                let first = index * batch;
                let last = (first + batch).min(events);
                let messages: Vec<String> = (first..last).map(|sequence| message(sequence, visitors)).collect();
                let body = format!(r#"{{"batch":[{}],"sentAt":"2026-05-01T08:00:02Z"}}"#, messages.join(","));
                send_until_taken(&client, &url, &write_key, body).await?;
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
        config.events as f64 / elapsed.as_secs_f64(),
        config.events,
        elapsed.as_secs_f64()
    );

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..config.concurrency {
        let (client, next) = (client.clone(), next.clone());
        let url = format!("{base}/v1/track");
        let (write_key, requests, visitors, offset) =
            (write_key.to_owned(), config.requests, config.visitors, config.events);
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requests {
                    return Ok::<Vec<Duration>, anyhow::Error>(latencies);
                }
                let body = message(offset + index * 2 + 1, visitors);
                let sent = Instant::now();
                send_until_taken(&client, &url, &write_key, body).await?;
                latencies.push(sent.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(config.requests);
    while let Some(joined) = clients.join_next().await {
        latencies.extend(joined.context("a client task panicked")??);
    }
    let elapsed = started.elapsed();
    let (p50, p99, max) = percentiles(&mut latencies);
    println!(
        "/v1/track           {:>10.0} requests/s  target ≥ 10,000/s   ({} requests, {} connections)",
        config.requests as f64 / elapsed.as_secs_f64(),
        config.requests,
        config.concurrency
    );
    println!("/v1/track latency   p99 {p99:>7.2} ms            target < 10 ms      (p50 {p50:.2} ms, max {max:.2} ms)");
    Ok(config.events + config.requests)
}

/// Sends one request, waiting and retrying when the server says it is busy, as the official clients do.
async fn send_until_taken(client: &reqwest::Client, url: &str, write_key: &str, body: String) -> anyhow::Result<()> {
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

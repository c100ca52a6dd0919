//! `rapport bench …`: measures hot paths through the real server on loopback and prints each figure beside its
//! target. Figures depend on the machine; nothing here fails on a slow one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::bootstrap::bootstrap;
use crate::config::{AdminConfig, Secret, StoreConfig};
use crate::{Server, open_store};

pub struct BenchConfig {
    pub database_url: Option<Secret>,
    pub contacts: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub lookups: usize,
}

const BENCH_TOKEN: &str = "rk_bench_owner_token";
const FIRST_PAGE_RUNS: usize = 200;

/// Loads contacts through `POST /api/v1/contacts/batch`, then times look-ups by email and the first page of the
/// contact list.
pub async fn contacts(config: BenchConfig) -> anyhow::Result<()> {
    if config.batch == 0 || config.batch > 1_000 || config.concurrency == 0 || config.contacts == 0 {
        bail!("--contacts and --concurrency must be positive and --batch between 1 and 1000");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let store_config = StoreConfig { data_dir: scratch.path().to_owned(), database_url: config.database_url.clone() };
    let store = open_store(&store_config).await?;
    let admin = AdminConfig { token: Some(Secret::new(BENCH_TOKEN)), ..AdminConfig::default() };
    bootstrap(store.as_ref(), &admin).await?;
    let backend = store.backend();
    if store
        .workspace_by_slug("default")
        .await?
        .map(|workspace| store.count_contacts(workspace.id))
        .context("the default workspace is missing")?
        .await?
        > 0
    {
        bail!("the database already holds contacts; point --database-url at an empty database");
    }
    let server = Server::bind(([127, 0, 0, 1], 0).into(), store).await?;
    let base = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder().pool_max_idle_per_host(16).build()?;
    let api = Api { client, base };
    let result = run_contacts(&api, &config, backend).await;
    let _ = stop.send(());
    serving.await.context("the server task failed")??;
    result
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(BENCH_TOKEN).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("the server answered {status}: {body}");
        }
        Ok(body)
    }
}

fn contact(index: usize) -> Value {
    let cities = ["上海", "北京", "深圳", "杭州", "Singapore"];
    json!({
        "email": format!("lead{index}@company{}.example.com", index % 5_000),
        "phone": format!("+86138{index:08}"),
        "first_name": format!("名{index}"),
        "last_name": "王",
        "city": cities[index % cities.len()],
        "company_name": format!("Company {}", index % 5_000),
        "source": "import",
        "fields": {"budget": (index % 100) * 1_000},
        "tags": [if index % 2 == 0 { "行业/制造业" } else { "行业/软件" }],
    })
}

async fn run_contacts(api: &Api, config: &BenchConfig, backend: &str) -> anyhow::Result<()> {
    println!("Rapport contacts benchmark — {backend}, {} contacts, batches of {}", config.contacts, config.batch);
    api.send(
        api.client
            .post(format!("{}/api/v1/fields", api.base))
            .json(&json!({"key": "budget", "label": "预算", "type": "number"})),
    )
    .await?;

    let started = Instant::now();
    let batches: Vec<(usize, usize)> = (0..config.contacts)
        .step_by(config.batch)
        .map(|start| (start, (start + config.batch).min(config.contacts)))
        .collect();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let batches = Arc::new(batches);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency {
        let (next, batches) = (next.clone(), batches.clone());
        let (client, base) = (api.client.clone(), api.base.clone());
        workers.spawn(async move {
            let api = Api { client, base };
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(start, end)) = batches.get(index) else {
                    return Ok::<(), anyhow::Error>(());
                };
                let contacts: Vec<Value> = (start..end).map(contact).collect();
                let request =
                    api.client.post(format!("{}/api/v1/contacts/batch", api.base)).json(&json!({"contacts": contacts}));
                api.send(request).await?;
                if index % 100 == 0 {
                    eprint!("\r  loaded {end} contacts");
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.context("a loading task panicked")??;
    }
    eprintln!();
    let elapsed = started.elapsed();
    let rate = config.contacts as f64 / elapsed.as_secs_f64();
    println!(
        "batch upsert        {rate:>10.0} contacts/s   target ≥ 20,000/s   ({} contacts in {:.1} s)",
        config.contacts,
        elapsed.as_secs_f64()
    );

    let mut lookups = Vec::with_capacity(config.lookups);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..config.lookups {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let index = (state % config.contacts as u64) as usize;
        let email = format!("lead{index}@company{}.example.com", index % 5_000);
        let request = api.client.get(format!("{}/api/v1/contacts", api.base)).query(&[("email", email.as_str())]);
        let started = Instant::now();
        let body = api.send(request).await?;
        lookups.push(started.elapsed());
        if body["items"].as_array().map_or(0, Vec::len) != 1 {
            bail!("look-up of {email} did not find exactly one contact: {body}");
        }
    }
    let (p50, p99, max) = percentiles(&mut lookups);
    println!(
        "look-up by email    p99 {:>7.2} ms            target < 2 ms       (p50 {p50:.2} ms, max {max:.2} ms, {} requests)",
        p99, config.lookups
    );

    let mut pages = Vec::with_capacity(FIRST_PAGE_RUNS);
    for _ in 0..FIRST_PAGE_RUNS {
        let request = api.client.get(format!("{}/api/v1/contacts?limit=50", api.base));
        let started = Instant::now();
        let body = api.send(request).await?;
        pages.push(started.elapsed());
        if body["items"].as_array().map_or(0, Vec::len) != 50.min(config.contacts) {
            bail!("the first page did not hold 50 contacts");
        }
    }
    let (p50, p99, max) = percentiles(&mut pages);
    println!(
        "first page (50)     p99 {p99:>7.2} ms            target < 50 ms      (p50 {p50:.2} ms, max {max:.2} ms, {FIRST_PAGE_RUNS} requests)"
    );
    Ok(())
}

/// p50, p99 and max in milliseconds.
pub(crate) fn percentiles(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |fraction: f64| {
        let index = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1_000.0
    };
    (at(0.50), at(0.99), at(1.0))
}

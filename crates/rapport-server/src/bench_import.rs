//! `rapport bench import`: generates a CSV file the way a Chinese sales team exports one (Chinese headers, a custom
//! field, tags, some repeated emails), imports it with `rapport import contacts`' code path into a fresh database,
//! and prints the rate beside the target with the peak resident memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use rapport_domain::{BoundedText, FieldEntity, FieldType, MergeRule, Slug};
use rapport_store::NewField;

use crate::bootstrap::{DEFAULT_WORKSPACE, bootstrap};
use crate::config::{AdminConfig, Secret, StoreConfig};
use crate::import::{ImportOptions, import_contacts};
use crate::open_store;

pub struct ImportBenchConfig {
    /// An empty PostgreSQL database; `None` measures SQLite in a temporary directory.
    pub database_url: Option<Secret>,
    pub rows: usize,
}

/// One row in this many repeats the previous row's email, so the import also exercises updates.
const REPEAT_EVERY: usize = 50;
const TARGET_SECONDS_PER_MILLION: f64 = 60.0;

pub async fn import(config: ImportBenchConfig) -> anyhow::Result<()> {
    if config.rows == 0 {
        bail!("--rows must be positive");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let csv_path = scratch.path().join("contacts.csv");
    let generated = Instant::now();
    write_csv(&csv_path, config.rows)?;
    let file_size = std::fs::metadata(&csv_path).context("reading the CSV size")?.len();

    let store_config = StoreConfig { data_dir: scratch.path().to_owned(), database_url: config.database_url.clone() };
    let store = open_store(&store_config).await?;
    bootstrap(store.as_ref(), &AdminConfig::default()).await?;
    let workspace = store.workspace_by_slug(DEFAULT_WORKSPACE).await?.context("the default workspace is missing")?;
    if store.count_contacts(workspace.id).await? > 0 {
        bail!("the database already holds contacts; point --database-url at an empty database");
    }
    let budget = NewField {
        entity: FieldEntity::Contact,
        key: Slug::parse("budget").context("the field key")?,
        label: BoundedText::parse("预算", 100).context("the field label")?,
        field_type: FieldType::Number,
        options: Vec::new(),
        merge_rule: MergeRule::Latest,
    };
    store.create_field(workspace.id, budget).await?;
    println!(
        "Rapport CSV import benchmark — {}, {} rows ({:.0} MiB, generated in {:.1} s), batches of {}",
        store.backend(),
        config.rows,
        file_size as f64 / 1_048_576.0,
        generated.elapsed().as_secs_f64(),
        crate::import::BATCH_SIZE,
    );
    let before = peak_resident_mib();

    let options = ImportOptions {
        file: csv_path,
        workspace: DEFAULT_WORKSPACE.to_owned(),
        mappings: Vec::new(),
        encoding: None,
        dry_run: false,
        errors_file: None,
        progress: true,
    };
    let summary = import_contacts(store.clone(), &options).await.map_err(|error| anyhow::anyhow!("{error}"))?;
    let expected_updates = (config.rows / REPEAT_EVERY) as u64;
    if summary.failed != 0 || summary.updated != expected_updates {
        bail!(
            "the import did not go as generated: {} failed, {} updated (expected {expected_updates})",
            summary.failed,
            summary.updated
        );
    }
    let seconds = summary.elapsed.as_secs_f64();
    let rate = config.rows as f64 / seconds;
    let target_rate = 1_000_000.0 / TARGET_SECONDS_PER_MILLION;
    println!(
        "csv import          {rate:>10.0} rows/s      target ≥ {target_rate:.0}/s (1,000,000 rows < {TARGET_SECONDS_PER_MILLION:.0} s)   ({} rows in {seconds:.1} s, ≈ {:.1} s per million)",
        config.rows,
        seconds * 1_000_000.0 / config.rows as f64,
    );
    match (before, peak_resident_mib()) {
        (Some(before), Some(after)) => println!(
            "peak memory         {after:>10.0} MiB         flat: independent of the file size   ({before:.0} MiB before the import, file {:.0} MiB)",
            file_size as f64 / 1_048_576.0
        ),
        _ => println!("peak memory         not available on this system (reads /proc/self/status)"),
    }
    Ok(())
}

/// The process's peak resident set (`VmHWM`), in MiB, on Linux.
pub fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

fn write_csv(path: &Path, rows: usize) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let cities = ["上海", "北京", "深圳", "杭州", "Singapore"];
    let stages = ["raw", "mql", "sal", "sql", "customer"];
    writeln!(out, "邮箱,手机,姓名,公司,职位,城市,预算,标签,阶段")?;
    for index in 0..rows {
        let person = if index % REPEAT_EVERY == REPEAT_EVERY - 1 { index - 1 } else { index };
        let tags = if index % 2 == 0 { "行业/制造业，VIP" } else { "行业/软件" };
        writeln!(
            out,
            "lead{person}@company{}.example.com,+86138{person:08},王{person},\"Company {}, Ltd.\",销售总监,{},{},{tags},{}",
            person % 5_000,
            person % 5_000,
            cities[index % cities.len()],
            (index % 100) * 1_000,
            stages[index % stages.len()],
        )?;
    }
    out.flush().context("writing the CSV")?;
    Ok(())
}

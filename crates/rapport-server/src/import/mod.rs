//! `rapport import contacts FILE.csv`: streams a CSV file into the store in batches of 1,000 upserts.
//!
//! A blocking reader thread decodes (UTF-8 or GBK/GB18030, see [`encoding`]), parses and validates rows
//! ([`row`]) while the async side writes the previous batch, so reading and writing overlap and memory stays
//! bounded by two batches in flight. Bad rows are reported (row, column, value, reason) and skipped; good rows
//! are imported.

mod encoding;
mod mapping;
mod report;
mod row;

use std::fmt;
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use csv::StringRecord;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_domain::{ContactChanges, FieldEntity, WorkspaceId};
use rapport_store::{Actor, Store, StoreError};
use tokio::sync::mpsc;

use self::encoding::{DetectedEncoding, encoding_for_label};
use self::mapping::{ColumnMapping, ColumnPlan};
use self::report::{ErrorReport, RowError, describe_error};
use self::row::{CellError, ParsedRow, References, parse_row};

/// Rows per `upsert_contacts` call.
pub const BATCH_SIZE: usize = 1_000;
/// The dry run previews the data rows up to this file row (the header is row 1).
const PREVIEW_LAST_ROW: u64 = 11;
const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub file: PathBuf,
    pub workspace: String,
    /// `COLUMN=FIELD` pairs as given on the command line.
    pub mappings: Vec<String>,
    /// An encoding label that overrides detection (a byte order mark still wins).
    pub encoding: Option<String>,
    pub dry_run: bool,
    /// Where to write every error as CSV (`row,line,column,value,reason`).
    pub errors_file: Option<PathBuf>,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
}

/// What an import did. `rows` counts data rows read: created + updated + failed + empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub failed: u64,
    pub empty: u64,
    /// Rows that passed validation in a dry run (nothing is written, so they are neither created nor updated).
    pub valid: u64,
    pub elapsed: Duration,
}

/// Why an import stopped. `Setup` problems are found before anything is written (exit status 2); `Aborted` means
/// the database or the file failed part-way, after some batches may have been written (exit status 1).
#[derive(Debug)]
pub enum ImportError {
    Setup(anyhow::Error),
    Aborted(anyhow::Error),
}

/// Imports the file into the workspace, printing the column plan and errors to stderr and the summary to stdout.
pub async fn import_contacts(store: Arc<dyn Store>, options: &ImportOptions) -> Result<ImportSummary, ImportError> {
    let started = Instant::now();
    let setup = prepare(store.as_ref(), options).await.map_err(ImportError::Setup)?;
    eprintln!("Reading {} as {}", options.file.display(), setup.encoding.describe());
    eprintln!("{}", describe_plan(&setup.plan));

    let Setup { workspace, plan, references, reader, mut report, progress, .. } = setup;
    let (sender, mut receiver) = mpsc::channel::<Chunk>(2);
    let reader_plan = plan.clone();
    let dry_run = options.dry_run;
    let reading = tokio::task::spawn_blocking(move || read_rows(reader, &reader_plan, &references, dry_run, &sender));

    let mut summary = ImportSummary::default();
    let written: anyhow::Result<()> = async {
        while let Some(chunk) = receiver.recv().await {
            let Chunk { rows, changes, mut errors, failed, empty, previews } = chunk;
            summary.rows += rows.len() as u64 + failed + empty;
            summary.failed += failed;
            summary.empty += empty;
            for preview in previews {
                println!("{preview}");
            }
            if dry_run {
                summary.valid += rows.len() as u64;
            } else if !rows.is_empty() {
                let outcome = write_batch(store.as_ref(), workspace, &plan, rows, changes, &mut errors).await?;
                summary.created += outcome.created;
                summary.updated += outcome.updated;
                summary.failed += outcome.failed;
            }
            errors.sort_by_key(|error| error.row);
            report.add(&errors)?;
            progress.set_message(format!("{} rows, {} failed", summary.rows, summary.failed));
        }
        Ok(())
    }
    .await;
    drop(receiver);
    let read = reading.await.map_err(|error| anyhow!("the CSV reader stopped: {error}")).and_then(|read| read);
    let finished = report.finish();
    progress.finish_and_clear();
    summary.elapsed = started.elapsed();
    println!("{}", summary.line(options));
    written.and(read).and(finished).map_err(ImportError::Aborted)?;
    Ok(summary)
}

impl ImportSummary {
    /// The line printed at the end: `900 created, 98 updated, 2 failed, …`.
    pub fn line(&self, options: &ImportOptions) -> String {
        let seconds = self.elapsed.as_secs_f64();
        if options.dry_run {
            format!(
                "Dry run of {}: {} valid, {} failed, {} empty skipped ({} rows in {seconds:.1} s); nothing was written",
                options.file.display(),
                self.valid,
                self.failed,
                self.empty,
                self.rows
            )
        } else {
            format!(
                "Imported {}: {} created, {} updated, {} failed, {} empty skipped ({} rows in {seconds:.1} s)",
                options.file.display(),
                self.created,
                self.updated,
                self.failed,
                self.empty,
                self.rows
            )
        }
    }
}

impl ImportError {
    /// 2 when nothing could be imported because of the file, the mapping or the workspace; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Setup(_) => 2,
            ImportError::Aborted(_) => 1,
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Setup(error) => write!(f, "{error:#}"),
            ImportError::Aborted(error) => write!(f, "import stopped: {error:#}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// Everything checked before the first row is read.
struct Setup {
    workspace: WorkspaceId,
    encoding: DetectedEncoding,
    plan: ColumnPlan,
    references: References,
    reader: csv::Reader<Box<dyn Read + Send>>,
    report: ErrorReport,
    progress: ProgressBar,
}

async fn prepare(store: &dyn Store, options: &ImportOptions) -> anyhow::Result<Setup> {
    let mappings = options
        .mappings
        .iter()
        .map(|raw| ColumnMapping::parse(raw).map_err(|error| anyhow!(error)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let chosen = match options.encoding.as_deref() {
        None => None,
        Some(label) => Some(encoding_for_label(label).with_context(|| {
            format!("unknown --encoding {label:?}: use utf-8, gbk, gb18030 or another WHATWG label")
        })?),
    };
    let shown = options.file.display();
    let mut file = File::open(&options.file).with_context(|| format!("opening {shown}"))?;
    let length = file.metadata().with_context(|| format!("reading the size of {shown}"))?.len();
    let encoding = encoding::detect(&mut file, chosen).with_context(|| format!("reading {shown}"))?;

    let progress = if options.progress && std::io::stderr().is_terminal() {
        let style =
            ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg} (eta {eta})")
                .context("the progress bar template")?
                .progress_chars("=> ");
        ProgressBar::new(length).with_style(style)
    } else {
        ProgressBar::hidden()
    };
    let source: Box<dyn Read + Send> = Box::new(encoding::utf8_reader(progress.wrap_read(file), encoding));
    let mut reader = csv::ReaderBuilder::new().flexible(true).buffer_capacity(READ_BUFFER).from_reader(source);
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("reading the header row of {shown}"))?
        .iter()
        .map(|header| header.trim().to_owned())
        .collect();
    if headers.iter().all(String::is_empty) {
        anyhow::bail!("{shown} is empty: the first row must name the columns");
    }

    let workspace = store
        .workspace_by_slug(&options.workspace)
        .await
        .context("looking up the workspace")?
        .with_context(|| {
            format!("no workspace {:?} (run `rapport serve` once to create `default`)", options.workspace)
        })?
        .id;
    let definitions =
        store.list_fields(workspace, Some(FieldEntity::Contact)).await.context("loading the custom fields")?;
    let references = References::load(store, workspace).await.context("loading stages, lead statuses and tags")?;
    let plan = ColumnPlan::new(&headers, &mappings, &definitions).map_err(|error| anyhow!(error))?;
    let report = ErrorReport::create(options, progress.clone())?;
    Ok(Setup { workspace, encoding, plan, references, reader, report, progress })
}

fn describe_plan(plan: &ColumnPlan) -> String {
    let mapped: Vec<String> =
        plan.columns.iter().map(|column| format!("{} → {}", column.header, column.target.name())).collect();
    let mut text = format!("Columns: {}", mapped.join(", "));
    if !plan.ignored.is_empty() {
        let ignored: Vec<&str> =
            plan.ignored.iter().map(|header| if header.is_empty() { "(unnamed)" } else { header }).collect();
        text.push_str(&format!("\nIgnored columns: {}", ignored.join(", ")));
    }
    text
}

/// Where a row sits in the file: `row` as a spreadsheet numbers it (the header is row 1), `line` where the record
/// starts in a text editor (they differ when quoted cells hold newlines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowRef {
    row: u64,
    line: u64,
}

/// What the reader hands to the writer: up to a batch of valid rows and the errors found on the way.
#[derive(Debug, Default)]
struct Chunk {
    rows: Vec<RowRef>,
    changes: Vec<ContactChanges>,
    errors: Vec<RowError>,
    /// Rows with at least one error.
    failed: u64,
    empty: u64,
    previews: Vec<String>,
}

impl Chunk {
    fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_SIZE || self.errors.len() >= BATCH_SIZE
    }
}

/// Runs on a blocking thread: reads, parses and checks rows and hands them over a chunk at a time. Stops early when
/// the writer has gone (it failed, and says why).
fn read_rows(
    mut reader: csv::Reader<Box<dyn Read + Send>>,
    plan: &ColumnPlan,
    references: &References,
    dry_run: bool,
    sender: &mpsc::Sender<Chunk>,
) -> anyhow::Result<()> {
    let mut chunk = Chunk::default();
    let mut record = StringRecord::new();
    while let Some((at, parsed)) = next_row(&mut reader, &mut record, plan, references)? {
        if dry_run && at.row <= PREVIEW_LAST_ROW {
            chunk.previews.push(preview(at, &parsed));
        }
        match parsed {
            ParsedRow::Empty => chunk.empty += 1,
            ParsedRow::Valid(changes) => {
                chunk.rows.push(at);
                chunk.changes.push(changes);
            }
            ParsedRow::Invalid(errors) => {
                chunk.failed += 1;
                chunk.errors.extend(errors.into_iter().map(|error| RowError { row: at.row, line: at.line, error }));
            }
        }
        if chunk.is_full() && sender.blocking_send(std::mem::take(&mut chunk)).is_err() {
            return Ok(());
        }
    }
    // A closed channel means the writer failed and reports why.
    let _ = sender.blocking_send(chunk);
    Ok(())
}

/// The next data row, parsed; `None` at the end of the file. A cell that is not UTF-8 fails its row; any other
/// reading error (the disk) stops the import.
fn next_row(
    reader: &mut csv::Reader<Box<dyn Read + Send>>,
    record: &mut StringRecord,
    plan: &ColumnPlan,
    references: &References,
) -> anyhow::Result<Option<(RowRef, ParsedRow)>> {
    match reader.read_record(record) {
        Ok(false) => Ok(None),
        Ok(true) => {
            let parsed = match check_width(record, plan) {
                Some(errors) => ParsedRow::Invalid(errors),
                None => parse_row(record, plan, references),
            };
            Ok(Some((row_ref(record.position()), parsed)))
        }
        Err(error) => match error.kind() {
            csv::ErrorKind::Utf8 { pos, err } => {
                let column = plan
                    .columns
                    .iter()
                    .find(|column| column.index == err.field())
                    .map_or_else(String::new, |column| column.header.clone());
                let reason = "is not valid UTF-8 text (save the file as UTF-8, or name its encoding with --encoding)";
                Ok(Some((row_ref(pos.as_ref()), ParsedRow::Invalid(vec![CellError::new(&column, "", reason)]))))
            }
            _ => Err(error).context("reading the CSV file"),
        },
    }
}

/// The csv crate counts records from 0 with the header as record 0.
fn row_ref(position: Option<&csv::Position>) -> RowRef {
    position.map_or(RowRef { row: 0, line: 0 }, |position| RowRef { row: position.record() + 1, line: position.line() })
}

/// A row with fewer cells than the header, or with non-empty cells beyond it, is most likely a broken quote; it
/// is reported rather than guessed at. Trailing empty cells (Excel writes them) are fine.
fn check_width(record: &StringRecord, plan: &ColumnPlan) -> Option<Vec<CellError>> {
    let extra_values = record.iter().skip(plan.header_count).any(|cell| !cell.trim().is_empty());
    if record.len() < plan.header_count || extra_values {
        let reason = format!(
            "has {} columns but the header has {} (check for an unclosed quote)",
            record.len(),
            plan.header_count
        );
        return Some(vec![CellError::new("", "", reason)]);
    }
    None
}

fn preview(at: RowRef, parsed: &ParsedRow) -> String {
    let mut text = format!("row {}:", at.row);
    match parsed {
        ParsedRow::Empty => text.push_str(" empty, skipped"),
        ParsedRow::Valid(changes) => {
            let lines = row::describe(changes);
            let width = lines.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
            for (name, value) in lines {
                text.push_str(&format!("\n  {name:<width$}  {value}"));
            }
        }
        ParsedRow::Invalid(errors) => {
            text.push_str(" would be skipped");
            for error in errors {
                text.push_str(&format!("\n  {}", describe_error(error)));
            }
        }
    }
    text
}

#[derive(Debug, Default)]
struct BatchOutcome {
    created: u64,
    updated: u64,
    failed: u64,
}

/// Upserts a batch in one call. Validation has run, so a failure is a conflict only the database can see (an
/// email owned by one contact and a phone by another): the batch is then split in halves until the offending rows
/// stand alone, keeping the file's order, so that every other row is imported and only those rows are reported.
async fn write_batch(
    store: &dyn Store,
    workspace: WorkspaceId,
    plan: &ColumnPlan,
    rows: Vec<RowRef>,
    changes: Vec<ContactChanges>,
    errors: &mut Vec<RowError>,
) -> anyhow::Result<BatchOutcome> {
    let mut outcome = BatchOutcome::default();
    let mut pending = vec![(rows, changes)];
    while let Some((rows, changes)) = pending.pop() {
        let retry = (rows.len() > 1).then(|| changes.clone());
        match store.upsert_contacts(workspace, changes, Actor::System).await {
            Ok(upserted) => {
                let created = upserted.iter().filter(|item| item.created).count() as u64;
                outcome.created += created;
                outcome.updated += upserted.len() as u64 - created;
            }
            Err(StoreError::Backend(error)) => {
                return Err(error.context("writing contacts"));
            }
            Err(error) => match retry {
                Some(mut changes) => {
                    let mut rows = rows;
                    let middle = rows.len() / 2;
                    let later = (rows.split_off(middle), changes.split_off(middle));
                    pending.push(later);
                    pending.push((rows, changes));
                }
                None => {
                    outcome.failed += 1;
                    for at in rows {
                        errors.push(RowError { row: at.row, line: at.line, error: store_error(&error, plan) });
                    }
                }
            },
        }
    }
    Ok(outcome)
}

/// A store error of a single-row upsert as a report line, naming the column when the store names a field.
fn store_error(error: &StoreError, plan: &ColumnPlan) -> CellError {
    match error {
        StoreError::Invalid { field, message, .. } => {
            let column = plan
                .columns
                .iter()
                .find(|column| column.target.name() == *field)
                .map_or(field.as_str(), |column| column.header.as_str());
            CellError::new(column, "", message.as_str())
        }
        other => CellError::new("", "", other.to_string()),
    }
}

//! Streams a CSV file of contacts into the store in batches of 1,000 upserts.
//!
//! [`prepare`] checks everything that can be checked before the first row is read — the encoding (UTF-8 or
//! GBK/GB18030, see [`encoding`]), the header and the column mapping ([`mapping`]), the workspace's custom fields
//! and reference data — so that a bad request fails without writing anything. [`run`] then reads, parses and
//! checks rows ([`row`]) on a blocking thread while the async side writes the previous batch, so reading and
//! writing overlap and memory stays bounded by two batches in flight. Bad rows are reported to the caller's
//! [`ImportObserver`] (row, column, value, reason) and skipped; good rows are imported.

pub mod encoding;
pub mod mapping;
pub mod row;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use csv::StringRecord;
use rapport_domain::{ContactChanges, FieldEntity, WorkspaceId};
use rapport_store::{Actor, Store, StoreError};
use thiserror::Error;
use tokio::sync::mpsc;

use self::encoding::{DetectedEncoding, encoding_for_label};
use self::mapping::{ColumnMapping, ColumnPlan};
use self::row::{CellError, ParsedRow, References, parse_row};

/// Rows per `upsert_contacts` call.
pub const BATCH_SIZE: usize = 1_000;
/// A dry run previews the data rows up to this file row (the header is row 1).
pub const PREVIEW_LAST_ROW: u64 = 11;
const READ_BUFFER: usize = 256 * 1024;

/// What to import, as the command line or the API received it.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub file: PathBuf,
    pub workspace: WorkspaceId,
    /// `COLUMN=FIELD` pairs.
    pub mappings: Vec<String>,
    /// An encoding label that overrides detection (a byte order mark still wins).
    pub encoding: Option<String>,
}

/// Why an import cannot start. Nothing has been written.
#[derive(Debug, Error)]
pub enum SetupError {
    /// The file, the mapping or the encoding label is wrong; `code` is stable, the message says what to fix.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The store or the disk failed.
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

impl SetupError {
    fn invalid(code: &'static str, message: impl Into<String>) -> SetupError {
        SetupError::Invalid { code, message: message.into() }
    }
}

/// What an import did. `rows` counts data rows read: created + updated + failed + empty (+ valid in a dry run).
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
    /// The observer stopped the import before the end of the file; the rows counted were handled.
    pub stopped: bool,
}

/// One error of one row; a row with several bad cells has several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The row as a spreadsheet numbers it (the header is row 1).
    pub row: u64,
    /// Where the record starts in a text editor (differs from `row` when quoted cells hold newlines).
    pub line: u64,
    pub error: CellError,
}

/// A dry run's view of one of the first rows: what would land, or why it would be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowPreview {
    pub row: u64,
    pub outcome: PreviewOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewOutcome {
    Empty,
    /// `(field, value)` pairs as they would be stored.
    Valid(Vec<(String, String)>),
    Invalid(Vec<CellError>),
}

/// Where an import stands after a batch.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress<'a> {
    /// Bytes of the file read so far (the reader runs up to two batches ahead of the writes).
    pub bytes_read: u64,
    pub total_bytes: u64,
    pub summary: &'a ImportSummary,
}

/// Whether an import goes on after a progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// How a caller sees an import happen. The command line prints; a background job records into the store.
#[async_trait]
pub trait ImportObserver: Send {
    /// A dry run's preview of the first rows, in file order.
    fn preview(&mut self, preview: &RowPreview) -> anyhow::Result<()>;
    /// Errors of skipped rows, in file order within one call.
    fn errors(&mut self, errors: &[RowError]) -> anyhow::Result<()>;
    /// Called after each batch; [`Flow::Stop`] ends the import there.
    async fn progress(&mut self, progress: ImportProgress<'_>) -> anyhow::Result<Flow>;
}

/// An import checked and ready to run: the file is open past its header.
pub struct PreparedImport {
    workspace: WorkspaceId,
    encoding: DetectedEncoding,
    plan: ColumnPlan,
    references: References,
    reader: csv::Reader<Box<dyn Read + Send>>,
    /// Added to the csv crate's line numbers (see [`prepare`]).
    line_offset: u64,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
}

impl PreparedImport {
    /// `UTF-8 (byte order mark)`, `GB18030 (not valid UTF-8)`, …
    pub fn encoding_description(&self) -> String {
        self.encoding.describe()
    }

    pub fn encoding_name(&self) -> &'static str {
        self.encoding.encoding.name()
    }

    /// `(header, field)` of every imported column, in file order.
    pub fn columns(&self) -> Vec<(String, String)> {
        self.plan.columns.iter().map(|column| (column.header.clone(), column.target.name())).collect()
    }

    /// Headers of the columns that are not imported (an unnamed column is an empty string).
    pub fn ignored(&self) -> &[String] {
        &self.plan.ignored
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// `Columns: 邮箱 → email, …` and the ignored columns, for people.
    pub fn plan_description(&self) -> String {
        let mapped: Vec<String> =
            self.columns().into_iter().map(|(header, field)| format!("{header} → {field}")).collect();
        let mut text = format!("Columns: {}", mapped.join(", "));
        if !self.plan.ignored.is_empty() {
            let ignored: Vec<&str> =
                self.plan.ignored.iter().map(|header| if header.is_empty() { "(unnamed)" } else { header }).collect();
            text.push_str(&format!("\nIgnored columns: {}", ignored.join(", ")));
        }
        text
    }
}

/// Opens the file and checks the encoding label, the header, the mapping and the workspace's fields.
pub async fn prepare(store: &dyn Store, request: &ImportRequest) -> Result<PreparedImport, SetupError> {
    let mappings = request
        .mappings
        .iter()
        .map(|raw| ColumnMapping::parse(raw).map_err(|error| SetupError::invalid("invalid_mapping", error)))
        .collect::<Result<Vec<_>, _>>()?;
    let chosen = match request.encoding.as_deref() {
        None => None,
        Some(label) => Some(encoding_for_label(label).ok_or_else(|| {
            let message = format!("unknown encoding {label:?}: use utf-8, gbk, gb18030 or another WHATWG label");
            SetupError::invalid("unknown_encoding", message)
        })?),
    };
    // Detection may read a pure ASCII file to its end: that is blocking work, kept off the async threads.
    let path = request.file.clone();
    let opened = tokio::task::spawn_blocking(move || open(&path, chosen))
        .await
        .map_err(|error| anyhow!("the file reader stopped: {error}"))??;
    let OpenedFile { encoding, reader, headers, line_offset, bytes_read, total_bytes } = opened;

    let workspace = request.workspace;
    let definitions =
        store.list_fields(workspace, Some(FieldEntity::Contact)).await.context("loading the custom fields")?;
    let references = References::load(store, workspace).await.context("loading stages, lead statuses and tags")?;
    let plan = ColumnPlan::new(&headers, &mappings, &definitions)
        .map_err(|error| SetupError::invalid("invalid_mapping", error))?;
    Ok(PreparedImport { workspace, encoding, plan, references, reader, line_offset, bytes_read, total_bytes })
}

/// The file opened past its header row.
struct OpenedFile {
    encoding: DetectedEncoding,
    reader: csv::Reader<Box<dyn Read + Send>>,
    headers: Vec<String>,
    line_offset: u64,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
}

fn open(path: &Path, chosen: Option<&'static encoding_rs::Encoding>) -> Result<OpenedFile, SetupError> {
    let shown = path.display();
    let mut file = File::open(path).with_context(|| format!("opening {shown}"))?;
    let total_bytes = file.metadata().with_context(|| format!("reading the size of {shown}"))?.len();
    let encoding = encoding::detect(&mut file, chosen).with_context(|| format!("reading {shown}"))?;

    let bytes_read = Arc::new(AtomicU64::new(0));
    let counted = CountingReader { inner: file, count: bytes_read.clone() };
    let source: Box<dyn Read + Send> = Box::new(encoding::utf8_reader(counted, encoding));
    let mut reader = csv::ReaderBuilder::new().flexible(true).buffer_capacity(READ_BUFFER).from_reader(source);
    let headers: Vec<String> = match reader.headers() {
        Ok(headers) => headers.iter().map(|header| header.trim().to_owned()).collect(),
        Err(error) if matches!(error.kind(), csv::ErrorKind::Io(_)) => {
            return Err(anyhow!(error).context(format!("reading the header row of {shown}")).into());
        }
        Err(error) => {
            let message =
                format!("the header row cannot be read: {error} (save the file as UTF-8, or name its encoding)");
            return Err(SetupError::invalid("unreadable_header", message));
        }
    };
    if headers.iter().all(String::is_empty) {
        return Err(SetupError::invalid("empty_file", "the file is empty: the first row must name the columns"));
    }
    // With CRLF line ends the csv crate places a record's start on the line feed that ends the previous line, one
    // line early; after a CRLF header the reader is still on line 1.
    let line_offset = u64::from(reader.position().line() < 2);
    Ok(OpenedFile { encoding, reader, headers, line_offset, bytes_read, total_bytes })
}

/// Imports the prepared file (or, in a dry run, only checks every row and previews the first ones).
///
/// An error means the store or the file failed part-way: batches before it may have been written, and the
/// observer has seen their counts.
pub async fn run(
    store: Arc<dyn Store>,
    prepared: PreparedImport,
    dry_run: bool,
    observer: &mut dyn ImportObserver,
) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    let PreparedImport { workspace, plan, references, reader, line_offset, bytes_read, total_bytes, .. } = prepared;
    let (sender, mut receiver) = mpsc::channel::<Chunk>(2);
    let reader_plan = plan.clone();
    let reading = tokio::task::spawn_blocking(move || {
        read_rows(reader, &reader_plan, &references, line_offset, dry_run, &sender)
    });

    let mut summary = ImportSummary::default();
    let written: anyhow::Result<()> = async {
        while let Some(chunk) = receiver.recv().await {
            let Chunk { rows, changes, mut errors, failed, empty, previews } = chunk;
            summary.rows += rows.len() as u64 + failed + empty;
            summary.failed += failed;
            summary.empty += empty;
            for preview in &previews {
                observer.preview(preview)?;
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
            observer.errors(&errors)?;
            summary.elapsed = started.elapsed();
            let progress =
                ImportProgress { bytes_read: bytes_read.load(Ordering::Relaxed), total_bytes, summary: &summary };
            if observer.progress(progress).await? == Flow::Stop {
                summary.stopped = true;
                break;
            }
        }
        Ok(())
    }
    .await;
    drop(receiver);
    let read = reading.await.map_err(|error| anyhow!("the CSV reader stopped: {error}")).and_then(|read| read);
    summary.elapsed = started.elapsed();
    written.and(read)?;
    Ok(summary)
}

impl RowPreview {
    /// `row 2:` followed by one `field  value` line per value, or why the row would be skipped.
    pub fn describe(&self) -> String {
        let mut text = format!("row {}:", self.row);
        match &self.outcome {
            PreviewOutcome::Empty => text.push_str(" empty, skipped"),
            PreviewOutcome::Valid(lines) => {
                let width = lines.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
                for (name, value) in lines {
                    text.push_str(&format!("\n  {name:<width$}  {value}"));
                }
            }
            PreviewOutcome::Invalid(errors) => {
                text.push_str(" would be skipped");
                for error in errors {
                    text.push_str(&format!("\n  {}", describe_error(error)));
                }
            }
        }
        text
    }
}

/// `column 邮箱: is not a valid email address ("x")`, or just the reason when the whole row is meant.
pub fn describe_error(error: &CellError) -> String {
    let mut text = if error.column.is_empty() {
        error.reason.clone()
    } else {
        format!("column {}: {}", error.column, error.reason)
    };
    if !error.value.is_empty() {
        text.push_str(&format!(" ({:?})", error.value));
    }
    text
}

/// Counts the bytes read from the file, for progress.
struct CountingReader {
    inner: File,
    count: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Where a row sits in the file.
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
    previews: Vec<RowPreview>,
}

impl Chunk {
    fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_SIZE || self.errors.len() >= BATCH_SIZE
    }
}

/// Runs on a blocking thread: reads, parses and checks rows and hands them over a chunk at a time. Stops early when
/// the writer has gone (it failed or was stopped, and says so).
fn read_rows(
    mut reader: csv::Reader<Box<dyn Read + Send>>,
    plan: &ColumnPlan,
    references: &References,
    line_offset: u64,
    dry_run: bool,
    sender: &mpsc::Sender<Chunk>,
) -> anyhow::Result<()> {
    let mut chunk = Chunk::default();
    let mut record = StringRecord::new();
    while let Some((mut at, parsed)) = next_row(&mut reader, &mut record, plan, references)? {
        at.line += line_offset;
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
    // A closed channel means the writer failed or stopped, and reports why.
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

fn preview(at: RowRef, parsed: &ParsedRow) -> RowPreview {
    let outcome = match parsed {
        ParsedRow::Empty => PreviewOutcome::Empty,
        ParsedRow::Valid(changes) => PreviewOutcome::Valid(row::describe(changes)),
        ParsedRow::Invalid(errors) => PreviewOutcome::Invalid(errors.clone()),
    };
    RowPreview { row: at.row, outcome }
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

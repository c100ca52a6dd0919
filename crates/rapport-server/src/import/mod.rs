//! `rapport import contacts FILE.csv`: the command line around [`rapport_csv::import`]. It resolves the workspace,
//! prints the encoding and the column plan, draws a progress bar, prints the dry run's preview and every error
//! (also into `--errors FILE`), and ends with a summary line.

mod report;

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};
pub use rapport_csv::import::{BATCH_SIZE, ImportSummary};
use rapport_csv::import::{
    Flow, ImportObserver, ImportProgress, ImportRequest, RowError, RowPreview, SetupError, prepare, run,
};
use rapport_store::Store;

use self::report::ErrorReport;

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

/// Why an import stopped. `Setup` problems are found before anything is written (exit status 2); `Aborted` means
/// the database or the file failed part-way, after some batches may have been written (exit status 1).
#[derive(Debug)]
pub enum ImportError {
    Setup(anyhow::Error),
    Aborted(anyhow::Error),
}

/// Imports the file into the workspace, printing the column plan and errors to stderr and the summary to stdout.
pub async fn import_contacts(store: Arc<dyn Store>, options: &ImportOptions) -> Result<ImportSummary, ImportError> {
    let workspace = store
        .workspace_by_slug(&options.workspace)
        .await
        .context("looking up the workspace")
        .map_err(ImportError::Setup)?
        .with_context(|| format!("no workspace {:?} (run `rapport serve` once to create `default`)", options.workspace))
        .map_err(ImportError::Setup)?
        .id;
    let request = ImportRequest {
        file: options.file.clone(),
        workspace,
        mappings: options.mappings.clone(),
        encoding: options.encoding.clone(),
    };
    let prepared = prepare(store.as_ref(), &request).await.map_err(|error| match error {
        SetupError::Invalid { message, .. } => {
            ImportError::Setup(anyhow::anyhow!("{}: {}", options.file.display(), cli_wording(&message)))
        }
        SetupError::Backend(error) => ImportError::Setup(error),
    })?;
    eprintln!("Reading {} as {}", options.file.display(), prepared.encoding_description());
    eprintln!("{}", prepared.plan_description());

    let progress = if options.progress && std::io::stderr().is_terminal() {
        let style =
            ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg} (eta {eta})")
                .context("the progress bar template")
                .map_err(ImportError::Setup)?
                .progress_chars("=> ");
        ProgressBar::new(prepared.total_bytes()).with_style(style)
    } else {
        ProgressBar::hidden()
    };
    let report = ErrorReport::create(options.errors_file.as_deref(), progress.clone()).map_err(ImportError::Setup)?;
    let mut observer = Terminal { report, progress: progress.clone() };
    let outcome = run(store, prepared, options.dry_run, &mut observer).await;
    let finished = observer.report.finish();
    progress.finish_and_clear();
    let summary = outcome.and_then(|summary| finished.map(|()| summary)).map_err(ImportError::Aborted)?;
    println!("{}", line(&summary, options));
    Ok(summary)
}

/// The messages of [`SetupError::Invalid`] speak of "the encoding"; on the command line that is `--encoding`.
fn cli_wording(message: &str) -> String {
    message.replace("unknown encoding", "unknown --encoding").replace("name its encoding)", "name it with --encoding)")
}

/// The line printed at the end: `900 created, 98 updated, 2 failed, …`.
pub fn line(summary: &ImportSummary, options: &ImportOptions) -> String {
    let seconds = summary.elapsed.as_secs_f64();
    if options.dry_run {
        format!(
            "Dry run of {}: {} valid, {} failed, {} empty skipped ({} rows in {seconds:.1} s); nothing was written",
            options.file.display(),
            summary.valid,
            summary.failed,
            summary.empty,
            summary.rows
        )
    } else {
        format!(
            "Imported {}: {} created, {} updated, {} failed, {} empty skipped ({} rows in {seconds:.1} s)",
            options.file.display(),
            summary.created,
            summary.updated,
            summary.failed,
            summary.empty,
            summary.rows
        )
    }
}

/// Shows the import on the terminal.
struct Terminal {
    report: ErrorReport,
    progress: ProgressBar,
}

#[async_trait]
impl ImportObserver for Terminal {
    fn preview(&mut self, preview: &RowPreview) -> anyhow::Result<()> {
        let text = preview.describe();
        self.progress.suspend(|| println!("{text}"));
        Ok(())
    }

    fn errors(&mut self, errors: &[RowError]) -> anyhow::Result<()> {
        self.report.add(errors)
    }

    async fn progress(&mut self, progress: ImportProgress<'_>) -> anyhow::Result<Flow> {
        self.progress.set_position(progress.bytes_read);
        self.progress.set_message(format!("{} rows, {} failed", progress.summary.rows, progress.summary.failed));
        Ok(Flow::Continue)
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

//! The error report: every failed row's errors on stderr and, with `--errors FILE`, in a CSV file that opens in
//! Excel.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use indicatif::ProgressBar;

use super::ImportOptions;
use super::row::CellError;

/// With `--errors FILE`, only this many errors are also printed.
const ERRORS_SHOWN_WITH_FILE: usize = 10;
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// One error of one row; a row with several bad cells has several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub line: u64,
    pub error: CellError,
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

/// Errors go to stderr (all of them, or the first few when they also go to a file) and to the `--errors` file.
pub struct ErrorReport {
    file: Option<csv::Writer<BufWriter<File>>>,
    path: Option<PathBuf>,
    shown: usize,
    total: usize,
    progress: ProgressBar,
}

impl ErrorReport {
    pub fn create(options: &ImportOptions, progress: ProgressBar) -> anyhow::Result<ErrorReport> {
        let file = match &options.errors_file {
            None => None,
            Some(path) => {
                let file =
                    File::create(path).with_context(|| format!("creating the error report {}", path.display()))?;
                let mut file = BufWriter::new(file);
                file.write_all(BYTE_ORDER_MARK).context("writing the error report")?;
                let mut writer = csv::Writer::from_writer(file);
                writer
                    .write_record(["row", "line", "column", "value", "reason"])
                    .context("writing the error report")?;
                Some(writer)
            }
        };
        Ok(ErrorReport { file, path: options.errors_file.clone(), shown: 0, total: 0, progress })
    }

    pub fn add(&mut self, errors: &[RowError]) -> anyhow::Result<()> {
        for error in errors {
            self.total += 1;
            if let Some(file) = &mut self.file {
                file.write_record([
                    error.row.to_string().as_str(),
                    error.line.to_string().as_str(),
                    error.error.column.as_str(),
                    error.error.value.as_str(),
                    error.error.reason.as_str(),
                ])
                .context("writing the error report")?;
            }
            if self.file.is_none() || self.shown < ERRORS_SHOWN_WITH_FILE {
                self.shown += 1;
                let line = format!("row {}: {}", error.row, describe_error(&error.error));
                self.progress.suspend(|| eprintln!("{line}"));
            }
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        if let Some(mut file) = self.file {
            file.flush().context("writing the error report")?;
        }
        if let Some(path) = &self.path {
            if self.total > self.shown {
                eprintln!("… {} more errors in {}", self.total - self.shown, path.display());
            } else {
                eprintln!("{} errors written to {}", self.total, path.display());
            }
        }
        Ok(())
    }
}

//! The error report: every failed row's errors on stderr and, with `--errors FILE`, in a CSV file that opens in
//! Excel.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;

use rapport_csv::import::{RowError, describe_error};

/// With `--errors FILE`, only this many errors are also printed.
const ERRORS_SHOWN_WITH_FILE: usize = 10;
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Errors go to stderr (all of them, or the first few when they also go to a file) and to the `--errors` file.
pub struct ErrorReport {
    file: Option<csv::Writer<BufWriter<File>>>,
    path: Option<PathBuf>,
    shown: usize,
    total: usize,
    progress: ProgressBar,
}

impl ErrorReport {
    pub fn create(errors_file: Option<&Path>, progress: ProgressBar) -> anyhow::Result<ErrorReport> {
        let file = match errors_file {
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
        Ok(ErrorReport { file, path: errors_file.map(Path::to_path_buf), shown: 0, total: 0, progress })
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

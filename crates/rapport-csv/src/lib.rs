//! Contacts in and out as CSV files: the import pipeline (encoding detection, column mapping, row checks, batched
//! upserts, a per-row error report) and the streaming export. The command line (`rapport import`, `rapport
//! export`) and the API's background jobs both drive these; each presents progress and errors its own way.
//!
//! Architecture invariant: this crate knows files and the [`rapport_store::Store`] trait, never HTTP or a terminal.

#![forbid(unsafe_code)]

pub mod export;
pub mod import;

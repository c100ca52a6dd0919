//! The SQLite backend of [`rapport_store::Store`], on rusqlite.
//!
//! One writer connection behind a mutex and a few reader connections, all in WAL mode, so that reads never wait
//! for a write. Every call runs on tokio's blocking pool; every writing call is one `BEGIN IMMEDIATE` transaction,
//! so a call that returns `Err` has written nothing.
//!
//! Where things are: `connection.rs` opens, configures and migrates; `store.rs` maps the trait onto the area
//! modules (`access.rs` for workspaces, users and API keys, `schema.rs` for fields, stages, statuses and note
//! templates, `tags.rs`, `companies.rs`, `contacts.rs`, `history.rs` for activities, notes and the timeline,
//! `sources.rs` for tracking sources, `forms.rs` for hosted forms and consent, `tracking.rs` for tracking ingestion,
//! `merge.rs` for merging contacts, `jobs.rs` for the background job queue);
//! `events.rs` is how events are stored (with `message_ids.rs` for message-id deduplication); `memo.rs` is what the
//! writer remembers between transactions; `upgrade.rs` re-encodes data for migrations; `sql.rs` holds the
//! conversions between rows and records.

#![forbid(unsafe_code)]

mod access;
mod audience;
mod companies;
mod connection;
mod contacts;
mod events;
mod forms;
mod history;
mod jobs;
mod memo;
mod merge;
mod message_ids;
mod schema;
mod sources;
mod sql;
mod store;
mod tags;
mod tracking;
mod upgrade;

pub use connection::SqliteStore;

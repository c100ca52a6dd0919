//! The PostgreSQL backend of [`rapport_store::Store`], on sqlx.
//!
//! Every writing call is one transaction on a pooled connection, so a call that returns `Err` has written nothing.
//! Queries are runtime strings (the build needs no database); the migrations in `migrations/` are embedded and run
//! by [`PostgresStore::connect`].
//!
//! Batch writes are set-based: `upsert_contacts`, `insert_events` and `ingest_tracking` resolve every identity of a
//! call with one query, plan the changes in memory and write each table with one statement over `UNNEST`ed arrays,
//! so a call costs a dozen round trips however many items it carries. Lookups of a batch's keys are written as
//! `UNNEST(keys) CROSS JOIN LATERAL (… OFFSET 0)`, which plans as one index probe per key whatever the statistics
//! say: to the planner a workspace filter looks selective, but for a large tenant it is the whole table, and a hash
//! join over it costs more than the rest of the call.
//!
//! Where things are: `connection.rs` opens and migrates, and holds the workspace locks; `store.rs` maps the trait
//! onto the area modules: `access.rs` for workspaces, users and API keys, `schema.rs` for fields, stages, statuses
//! and note templates, `tags.rs`, `companies.rs`, `contacts.rs` for reads and single-contact writes, `batch.rs`
//! (with `batch/plan.rs` and `batch/rows.rs`) for the contact write planner shared by upserts, updates, events and
//! identify calls, `history.rs` for activities, notes and the timeline, `events.rs` for how events are stored and
//! read back (with `events/interning.rs` for the names and documents they share, and `message_ids.rs` for the
//! message-id hash and compact form), `sources.rs` for tracking sources, `forms.rs` for hosted forms and consent,
//! `tracking.rs` for the tracking API's calls, `merge.rs` for merging contacts, `jobs.rs` for the background job
//! queue, and `audience.rs` for segments and their members (with `audience/contacts.rs` for the contacts the audience
//! engine indexes and `audience/feed.rs` for the change feed it follows). `sql.rs` holds the conversions between rows
//! and records.
//!
//! Architecture invariant: every transaction that writes contact rows, identities, tag links or activities, or
//! deletes a contact, holds the workspace's contact lock; event ingestion holds the erasure lock shared, and
//! everything that deletes contacts (erasure and merges) holds it exclusively (see [`connection::WorkspaceLock`]).
//! Identity resolution relies on the first to never race, and the tables that carry no foreign key (all those that
//! hang off contacts) rely on both for their integrity.

#![forbid(unsafe_code)]

mod access;
mod audience;
mod batch;
mod companies;
mod connection;
mod contacts;
mod events;
mod forms;
mod history;
mod jobs;
mod merge;
mod message_ids;
mod schema;
mod sources;
mod sql;
mod store;
mod tags;
mod tracking;

#[cfg(feature = "testing")]
pub mod testing;

pub use connection::PostgresStore;

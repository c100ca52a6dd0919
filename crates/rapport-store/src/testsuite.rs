//! The one storage test suite, run against every backend so that they cannot drift apart.
//!
//! A backend's `tests/store_suite.rs` provides a function that makes a fresh, empty database and returns a guard
//! implementing [`TestStore`]; dropping the guard cleans the database up. Then
//!
//! ```text
//! rapport_store::store_tests!(fresh);
//! ```
//!
//! expands to one `#[tokio::test]` per case (the backend's tests need `tokio` with `macros` and `rt`). Each case is
//! a plain `async fn(Arc<dyn Store>)` below; adding one means writing it in the area's module, re-exporting it here
//! and naming it in the macro. The helpers at the end keep cases short: `code` turns an error into its stable
//! code, `describe` a contact into one line, `timeline` a history into lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod audience;
mod capture;
mod contacts;
mod forms;
mod history;
mod isolation;
mod jobs;
mod merge;
mod schema;

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rapport_domain::{
    BoundedText, Contact, ContactChanges, ContactId, EmailAddress, Patch, PhoneNumber, Slug, TagPath, UserId,
    WorkspaceId,
};
use serde_json::{Map, Value};

pub use access::{api_keys, delete_user_unowns_contacts, users, workspace_defaults};
pub use audience::{
    audience_contacts_carry_consent_and_stage_history, change_feed_follows_every_write, memberships_are_recorded_once,
    scan_events_stops_where_the_feed_starts, segments_crud, tag_activity_counts_by_day,
};
pub use capture::{
    ingest_alias, ingest_anonymous_history_joins_the_identified_contact, ingest_group,
    ingest_identify_merges_other_owners, ingest_is_idempotent, ingest_rejects_unknown_references, sources,
};
pub use contacts::{
    companies, contact_identity_columns, list_contacts_paging, update_contact_records_history,
    upsert_batch_sees_earlier_items, upsert_creates_then_updates, upsert_fields,
    upsert_identity_conflict_writes_nothing, upsert_identity_precedence, upsert_unknown_references_write_nothing,
};
pub use forms::{
    form_submission_joins_the_anonymous_history, form_submission_to_an_archived_form_writes_nothing,
    form_submission_without_visitor_ids_merges_by_email, forms_crud,
};
pub use history::{
    delete_contact_erases, insert_events_duplicates, insert_events_outcomes, notes, timeline_mixes_and_pages,
};
pub use isolation::tenant_isolation;
pub use jobs::{
    cancel_job_by_status, claim_takes_the_oldest_queued_job, concurrent_claims_take_each_job_once,
    fail_interrupted_jobs_fails_running_ones, finish_requires_a_running_job, job_failure_records_the_error,
    job_lifecycle, jobs_are_isolated_by_workspace, list_jobs_newest_first,
};
pub use merge::{
    merge_errors, merge_keeps_recent_values, merge_moves_history, merged_into_follows_chains_until_erasure,
};
pub use schema::{
    contact_tags, delete_field_removes_values, fields, list_entries, list_entry_guards, note_templates,
    tag_delete_rules, tag_rename_and_move, tags_with_parents,
};

use crate::{Actor, NewUser, PageRequest, Store, StoreError, StoreResult, UpsertOutcome};

/// A fresh database for one test. Dropping it removes the database.
pub trait TestStore: Send + Sync {
    fn store(&self) -> Arc<dyn Store>;
}

impl TestStore for Box<dyn TestStore> {
    fn store(&self) -> Arc<dyn Store> {
        self.as_ref().store()
    }
}

/// Expands to one `#[tokio::test]` per case of the suite, each on a database made by `$fresh().await`.
#[macro_export]
macro_rules! store_tests {
    ($fresh:path) => {
        $crate::store_tests!(@cases $fresh;
            workspace_defaults,
            users,
            delete_user_unowns_contacts,
            api_keys,
            tenant_isolation,
            fields,
            delete_field_removes_values,
            tags_with_parents,
            tag_rename_and_move,
            tag_delete_rules,
            contact_tags,
            list_entries,
            list_entry_guards,
            note_templates,
            companies,
            upsert_creates_then_updates,
            upsert_fields,
            upsert_identity_precedence,
            upsert_batch_sees_earlier_items,
            upsert_identity_conflict_writes_nothing,
            upsert_unknown_references_write_nothing,
            contact_identity_columns,
            list_contacts_paging,
            update_contact_records_history,
            timeline_mixes_and_pages,
            notes,
            delete_contact_erases,
            insert_events_outcomes,
            insert_events_duplicates,
            sources,
            ingest_anonymous_history_joins_the_identified_contact,
            ingest_identify_merges_other_owners,
            ingest_alias,
            ingest_group,
            ingest_is_idempotent,
            ingest_rejects_unknown_references,
            merge_keeps_recent_values,
            merge_moves_history,
            merged_into_follows_chains_until_erasure,
            merge_errors,
            job_lifecycle,
            job_failure_records_the_error,
            list_jobs_newest_first,
            claim_takes_the_oldest_queued_job,
            concurrent_claims_take_each_job_once,
            cancel_job_by_status,
            finish_requires_a_running_job,
            fail_interrupted_jobs_fails_running_ones,
            jobs_are_isolated_by_workspace,
            forms_crud,
            form_submission_joins_the_anonymous_history,
            form_submission_without_visitor_ids_merges_by_email,
            form_submission_to_an_archived_form_writes_nothing,
            segments_crud,
            memberships_are_recorded_once,
            change_feed_follows_every_write,
            scan_events_stops_where_the_feed_starts,
            audience_contacts_carry_consent_and_stage_history,
            tag_activity_counts_by_day,
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let database = $fresh().await;
            $crate::testsuite::$case($crate::testsuite::TestStore::store(&database)).await;
        }
    )*};
}

// ----- Helpers shared by the cases -----

const ACTOR: Actor = Actor::System;

/// The stable part of an error, as clients see it: `conflict identity_conflict`, `invalid unknown_stage stage`,
/// `not_found contact`. Panics on success and on backend errors, which no case expects.
fn code<T: Debug>(result: StoreResult<T>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(StoreError::NotFound { entity }) => format!("not_found {entity}"),
        Err(StoreError::Conflict { code, .. }) => format!("conflict {code}"),
        Err(StoreError::Invalid { code, field, .. }) => format!("invalid {code} {field}"),
        Err(StoreError::Backend(error)) => panic!("backend error: {error:#}"),
    }
}

async fn workspace(store: &dyn Store, slug: &str) -> WorkspaceId {
    store.create_workspace(&self::slug(slug), slug).await.unwrap().id
}

fn slug(raw: &str) -> Slug {
    Slug::parse(raw).unwrap()
}

fn text(raw: &str) -> BoundedText {
    BoundedText::parse(raw, 1_000).unwrap()
}

fn path(raw: &str) -> TagPath {
    TagPath::parse(raw).unwrap()
}

fn email(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).unwrap()
}

fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).unwrap()
}

/// Changes that identify a contact by email and set nothing else.
fn by_email(raw: &str) -> ContactChanges {
    ContactChanges { email: Patch::Set(email(raw)), ..ContactChanges::default() }
}

fn json_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A fixed instant, `seconds` after 2025-06-15 15:06:40 UTC, whole seconds so that every backend keeps it exactly.
fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + seconds, 0).unwrap()
}

async fn upsert(store: &dyn Store, workspace: WorkspaceId, changes: ContactChanges) -> StoreResult<UpsertOutcome> {
    let mut outcomes = store.upsert_contacts(workspace, vec![changes], ACTOR).await?;
    assert_eq!(outcomes.len(), 1);
    Ok(outcomes.remove(0))
}

/// Creates a contact with this email and returns its id.
async fn contact(store: &dyn Store, workspace: WorkspaceId, email: &str) -> ContactId {
    let outcome = upsert(store, workspace, by_email(email)).await.unwrap();
    assert!(outcome.created, "{email} existed already");
    outcome.id
}

async fn user(store: &dyn Store, workspace: WorkspaceId, email: &str) -> UserId {
    let user = NewUser {
        email: self::email(email),
        name: text("Wang Fang"),
        role: rapport_domain::Role::SalesRep,
        password_hash: "$argon2id$test".to_owned(),
    };
    store.create_user(workspace, user).await.unwrap().id
}

/// One line per contact with what is set: `email=li@example.cn stage=raw tags=[a] identities=[email:li@example.cn]`.
fn describe(contact: &Contact) -> String {
    let mut parts = Vec::new();
    let optional = [
        ("email", &contact.email),
        ("phone", &contact.phone),
        ("user_id", &contact.user_id),
        ("first_name", &contact.first_name),
        ("last_name", &contact.last_name),
        ("title", &contact.title),
        ("company_name", &contact.company_name),
        ("city", &contact.city),
        ("province", &contact.province),
        ("country", &contact.country),
        ("source", &contact.source),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            parts.push(format!("{name}={value}"));
        }
    }
    if let Some(owner) = contact.owner_id {
        parts.push(format!("owner={owner}"));
    }
    if let Some(company) = contact.company_id {
        parts.push(format!("company={company}"));
    }
    if !contact.fields.is_empty() {
        parts.push(format!("fields={}", Value::Object(contact.fields.clone())));
    }
    parts.push(format!("stage={}", contact.stage));
    if let Some(status) = &contact.status {
        parts.push(format!("status={status}"));
    }
    if !contact.tags.is_empty() {
        parts.push(format!("tags=[{}]", contact.tags.join(",")));
    }
    let identities: Vec<String> =
        contact.identities.iter().map(|identity| format!("{}:{}", identity.kind(), identity.value())).collect();
    parts.push(format!("identities=[{}]", identities.join(",")));
    parts.join(" ")
}

async fn describe_contact(store: &dyn Store, workspace: WorkspaceId, id: ContactId) -> String {
    describe(&store.get_contact(workspace, id).await.unwrap())
}

/// The history of a contact, newest first, one line per entry: `event page_view`, `stage_changed raw->mql`,
/// `status_changed -->contacted`, `tag_added 行业/制造业`, `note Called back`, `merged 42 identify`.
async fn timeline(store: &dyn Store, workspace: WorkspaceId, id: ContactId) -> Vec<String> {
    let page = store.contact_timeline(workspace, id, PageRequest { after: None, limit: 1_000 }).await.unwrap();
    assert_eq!(page.next, None);
    page.items.iter().map(|entry| describe_entry(&entry.kind, &entry.data)).collect()
}

fn describe_entry(kind: &str, data: &Value) -> String {
    let text = |key: &str| data[key].as_str().unwrap_or("-").to_owned();
    match kind {
        "event" => format!("event {}", text("type")),
        "stage_changed" | "status_changed" => format!("{kind} {}->{}", text("from"), text("to")),
        "tag_added" | "tag_removed" => format!("{kind} {}", text("tag")),
        "note" => format!("note {}", text("body")),
        "merged" => format!("merged {} {}", text("absorbed_id"), text("reason")),
        "segment_entered" | "segment_exited" => format!("{kind} {}", text("segment")),
        other => other.to_owned(),
    }
}

/// Everything a failed call must leave untouched: each contact, its history, and the tag library with its counts.
async fn snapshot(store: &dyn Store, workspace: WorkspaceId) -> Vec<String> {
    let mut lines = Vec::new();
    let page = store.list_contacts(workspace, PageRequest { after: None, limit: 1_000 }).await.unwrap();
    for contact in &page.items {
        lines.push(describe(contact));
        lines.extend(timeline(store, workspace, contact.id).await);
    }
    for tag in store.list_tags(workspace).await.unwrap() {
        lines.push(format!("tag {} ({})", tag.path, tag.contact_count));
    }
    lines.push(format!("count {}", store.count_contacts(workspace).await.unwrap()));
    lines
}

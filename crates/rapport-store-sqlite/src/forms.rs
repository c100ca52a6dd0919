//! Hosted forms and consent records. A submission itself is written by `tracking.rs`, as one tracking message, so
//! that it resolves the visitor exactly like `identify` does; [`record_submission`] is its form-specific part.

use anyhow::Context;
use rapport_domain::{ContactId, FormId, SourceId, WorkspaceId};
use rapport_store::{
    Consent, ConsentChannel, Form, FormStatus, FormUpdate, NewConsent, NewForm, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::json;

use crate::contacts::ChangeContext;
use crate::history::record_activity;
use crate::sql::{json_at, micros, now_micros, parsed_at, time_at};

const FORM_COLUMNS: &str =
    "id, workspace_id, name, definition, source_id, status, submission_count, created_at, updated_at";

pub(crate) fn create_form(tx: &Transaction<'_>, workspace: WorkspaceId, form: NewForm) -> StoreResult<Form> {
    let source: Option<i64> = tx
        .query_row(
            "SELECT id FROM sources WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.get(), form.source_id.get()],
            |row| row.get(0),
        )
        .optional()
        .context("checking a form's source")?;
    if source.is_none() {
        return Err(StoreError::invalid("unknown_source", "source_id", "no such source in this workspace"));
    }
    let now = now_micros();
    tx.execute(
        "INSERT INTO forms (workspace_id, name, definition, source_id, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            workspace.get(),
            form.name.as_str(),
            form.definition.to_string(),
            form.source_id.get(),
            FormStatus::Active.as_str(),
            now
        ],
    )
    .context("inserting a form")?;
    get_form(tx, workspace, FormId::new(tx.last_insert_rowid()))
}

pub(crate) fn list_forms(conn: &Connection, workspace: WorkspaceId) -> StoreResult<Vec<Form>> {
    let sql = format!("SELECT {FORM_COLUMNS} FROM forms WHERE workspace_id = ?1 ORDER BY id");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_forms")?;
    let rows = statement.query_map([workspace.get()], form_from_row).context("listing forms")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading forms")?)
}

pub(crate) fn get_form(conn: &Connection, workspace: WorkspaceId, id: FormId) -> StoreResult<Form> {
    let sql = format!("SELECT {FORM_COLUMNS} FROM forms WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_form")?;
    let form =
        statement.query_row(params![workspace.get(), id.get()], form_from_row).optional().context("reading a form")?;
    form.ok_or(StoreError::not_found("form"))
}

pub(crate) fn form_by_id(conn: &Connection, id: FormId) -> StoreResult<Option<Form>> {
    let sql = format!("SELECT {FORM_COLUMNS} FROM forms WHERE id = ?1");
    let mut statement = conn.prepare_cached(&sql).context("preparing form_by_id")?;
    Ok(statement.query_row([id.get()], form_from_row).optional().context("reading a form")?)
}

pub(crate) fn update_form(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: FormId,
    update: FormUpdate,
) -> StoreResult<Form> {
    let updated = tx
        .execute(
            "UPDATE forms SET name = coalesce(?3, name), definition = coalesce(?4, definition),
                 status = coalesce(?5, status), updated_at = ?6
             WHERE workspace_id = ?1 AND id = ?2",
            params![
                workspace.get(),
                id.get(),
                update.name.as_ref().map(|name| name.as_str()),
                update.definition.as_ref().map(|definition| definition.to_string()),
                update.status.map(FormStatus::as_str),
                now_micros(),
            ],
        )
        .context("updating a form")?;
    if updated == 0 {
        return Err(StoreError::not_found("form"));
    }
    get_form(tx, workspace, id)
}

pub(crate) fn contact_consents(
    conn: &Connection,
    workspace: WorkspaceId,
    contact: ContactId,
) -> StoreResult<Vec<Consent>> {
    crate::contacts::check_contact_exists(conn, workspace, contact)?;
    let mut statement = conn
        .prepare_cached(
            "SELECT contact_id, channel, granted, recorded_at, ip, user_agent, text, form_id, message_id
             FROM consents WHERE workspace_id = ?1 AND contact_id = ?2 ORDER BY recorded_at DESC, id DESC",
        )
        .context("preparing contact_consents")?;
    let rows = statement
        .query_map(params![workspace.get(), contact.get()], |row| {
            Ok(Consent {
                contact_id: ContactId::new(row.get(0)?),
                channel: parsed_at(row, 1, ConsentChannel::parse)?,
                granted: row.get(2)?,
                recorded_at: time_at(row, 3)?,
                ip: row.get(4)?,
                user_agent: row.get(5)?,
                text: row.get(6)?,
                form_id: row.get::<_, Option<i64>>(7)?.map(FormId::new),
                message_id: row.get(8)?,
            })
        })
        .context("reading consents")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading consents")?)
}

/// Counts a submission on its form; invalid `unknown_form` when the form is gone or archived. Runs first, so that a
/// rejected submission has written nothing when its savepoint is rolled back.
pub(crate) fn count_submission(tx: &Transaction<'_>, workspace: WorkspaceId, form: FormId) -> StoreResult<()> {
    let mut count = tx
        .prepare_cached(
            "UPDATE forms SET submission_count = submission_count + 1
             WHERE workspace_id = ?1 AND id = ?2 AND status = 'active'",
        )
        .context("preparing a submission count")?;
    if count.execute(params![workspace.get(), form.get()]).context("counting a submission")? == 0 {
        return Err(StoreError::invalid("unknown_form", "form_id", "no such active form in this workspace"));
    }
    Ok(())
}

/// Records the consents given on a submission, each in `consents` and as a `consent` activity on the timeline
/// (at the time of writing, like every activity).
pub(crate) fn record_consents(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    contact: ContactId,
    form: FormId,
    message_id: &str,
    consents: &[NewConsent],
) -> StoreResult<()> {
    let workspace = context.workspace;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO consents (workspace_id, contact_id, channel, granted, recorded_at, ip, user_agent, text,
                 form_id, message_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .context("preparing a consent insert")?;
    for consent in consents {
        let at = micros(consent.recorded_at);
        insert
            .execute(params![
                workspace.get(),
                contact.get(),
                consent.channel.as_str(),
                consent.granted,
                at,
                consent.ip,
                consent.user_agent,
                consent.text,
                form.get(),
                message_id,
            ])
            .context("recording a consent")?;
        let data = json!({
            "channel": consent.channel.as_str(),
            "granted": consent.granted,
            "text": consent.text,
            "ip": consent.ip,
            "user_agent": consent.user_agent,
            "form_id": form.to_string(),
        });
        record_activity(tx, workspace, contact, "consent", context.now, &context.actor, &data)?;
    }
    Ok(())
}

fn form_from_row(row: &Row<'_>) -> rusqlite::Result<Form> {
    Ok(Form {
        id: FormId::new(row.get(0)?),
        workspace_id: WorkspaceId::new(row.get(1)?),
        name: row.get(2)?,
        definition: json_at(row, 3)?,
        source_id: SourceId::new(row.get(4)?),
        status: parsed_at(row, 5, FormStatus::parse)?,
        submission_count: u64::try_from(row.get::<_, i64>(6)?).unwrap_or_default(),
        created_at: time_at(row, 7)?,
        updated_at: time_at(row, 8)?,
    })
}

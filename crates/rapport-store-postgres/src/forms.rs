//! Hosted forms and consent records. A submission itself is written by `tracking.rs`, as one tracking message, so
//! that it resolves the visitor exactly like `identify` does; [`count_submission`] and [`record_consents`] are its
//! form-specific parts.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{ContactId, FormId, SourceId, WorkspaceId};
use rapport_store::{
    Consent, ConsentChannel, Form, FormStatus, FormUpdate, NewConsent, NewForm, StoreError, StoreResult,
};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::connection::PostgresStore;
use crate::contacts::check_contact_exists;
use crate::history::{Activity, insert_activities};

const FORM_COLUMNS: &str =
    "id, workspace_id, name, definition, source_id, status, submission_count, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct FormRow {
    id: i64,
    workspace_id: i64,
    name: String,
    definition: Value,
    source_id: i64,
    status: String,
    submission_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl FormRow {
    fn into_record(self) -> anyhow::Result<Form> {
        Ok(Form {
            id: FormId::new(self.id),
            workspace_id: WorkspaceId::new(self.workspace_id),
            name: self.name,
            definition: self.definition,
            source_id: SourceId::new(self.source_id),
            status: FormStatus::parse(&self.status)
                .with_context(|| format!("unknown stored form status {:?}", self.status))?,
            submission_count: u64::try_from(self.submission_count).unwrap_or_default(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ConsentRow {
    contact_id: i64,
    channel: String,
    granted: bool,
    recorded_at: DateTime<Utc>,
    ip: Option<String>,
    user_agent: Option<String>,
    text: String,
    form_id: Option<i64>,
    message_id: Option<String>,
}

impl PostgresStore {
    pub(crate) async fn create_form(&self, workspace: WorkspaceId, form: NewForm) -> StoreResult<Form> {
        let sql = format!(
            "INSERT INTO forms (workspace_id, name, definition, source_id, status, created_at, updated_at)
             SELECT $1, $2, $3, id, 'active', now(), now() FROM sources WHERE workspace_id = $1 AND id = $4
             RETURNING {FORM_COLUMNS}"
        );
        let row: Option<FormRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(form.name.as_str())
            .bind(&form.definition)
            .bind(form.source_id.get())
            .fetch_optional(&self.pool)
            .await
            .context("inserting a form")?;
        let row =
            row.ok_or_else(|| StoreError::invalid("unknown_source", "source_id", "no such source in this workspace"))?;
        Ok(row.into_record()?)
    }

    pub(crate) async fn list_forms(&self, workspace: WorkspaceId) -> StoreResult<Vec<Form>> {
        let sql = format!("SELECT {FORM_COLUMNS} FROM forms WHERE workspace_id = $1 ORDER BY id");
        let rows: Vec<FormRow> =
            sqlx::query_as(&sql).bind(workspace.get()).fetch_all(&self.pool).await.context("listing forms")?;
        Ok(rows.into_iter().map(FormRow::into_record).collect::<anyhow::Result<_>>()?)
    }

    pub(crate) async fn get_form(&self, workspace: WorkspaceId, id: FormId) -> StoreResult<Form> {
        let sql = format!("SELECT {FORM_COLUMNS} FROM forms WHERE workspace_id = $1 AND id = $2");
        let row: Option<FormRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a form")?;
        Ok(row.ok_or(StoreError::not_found("form"))?.into_record()?)
    }

    pub(crate) async fn form_by_id(&self, id: FormId) -> StoreResult<Option<Form>> {
        let sql = format!("SELECT {FORM_COLUMNS} FROM forms WHERE id = $1");
        let row: Option<FormRow> =
            sqlx::query_as(&sql).bind(id.get()).fetch_optional(&self.pool).await.context("reading a form")?;
        Ok(row.map(FormRow::into_record).transpose()?)
    }

    pub(crate) async fn update_form(
        &self,
        workspace: WorkspaceId,
        id: FormId,
        update: FormUpdate,
    ) -> StoreResult<Form> {
        let sql = format!(
            "UPDATE forms SET name = coalesce($3, name), definition = coalesce($4, definition),
                 status = coalesce($5, status), updated_at = now()
             WHERE workspace_id = $1 AND id = $2 RETURNING {FORM_COLUMNS}"
        );
        let row: Option<FormRow> = sqlx::query_as(&sql)
            .bind(workspace.get())
            .bind(id.get())
            .bind(update.name.as_ref().map(|name| name.as_str()))
            .bind(update.definition.as_ref())
            .bind(update.status.map(FormStatus::as_str))
            .fetch_optional(&self.pool)
            .await
            .context("updating a form")?;
        Ok(row.ok_or(StoreError::not_found("form"))?.into_record()?)
    }

    pub(crate) async fn contact_consents(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> StoreResult<Vec<Consent>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        check_contact_exists(&mut connection, workspace, contact).await?;
        let rows: Vec<ConsentRow> = sqlx::query_as(
            "SELECT contact_id, channel, granted, recorded_at, ip, user_agent, text, form_id, message_id
             FROM consents WHERE workspace_id = $1 AND contact_id = $2 ORDER BY recorded_at DESC, id DESC",
        )
        .bind(workspace.get())
        .bind(contact.get())
        .fetch_all(&mut *connection)
        .await
        .context("reading consents")?;
        rows.into_iter()
            .map(|row| {
                Ok(Consent {
                    contact_id: ContactId::new(row.contact_id),
                    channel: ConsentChannel::parse(&row.channel)
                        .with_context(|| format!("unknown stored consent channel {:?}", row.channel))?,
                    granted: row.granted,
                    recorded_at: row.recorded_at,
                    ip: row.ip,
                    user_agent: row.user_agent,
                    text: row.text,
                    form_id: row.form_id.map(FormId::new),
                    message_id: row.message_id,
                })
            })
            .collect()
    }
}

/// Counts a submission on its form; invalid `unknown_form` when the form is gone or archived.
pub(crate) async fn count_submission(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    form: FormId,
) -> StoreResult<()> {
    let counted = sqlx::query(
        "UPDATE forms SET submission_count = submission_count + 1
         WHERE workspace_id = $1 AND id = $2 AND status = 'active'",
    )
    .bind(workspace.get())
    .bind(form.get())
    .execute(connection)
    .await
    .context("counting a submission")?;
    if counted.rows_affected() == 0 {
        return Err(StoreError::invalid("unknown_form", "form_id", "no such active form in this workspace"));
    }
    Ok(())
}

/// Records the consents given on a submission, each in `consents` and as a `consent` activity on the timeline. The
/// caller holds the workspace's contact lock.
pub(crate) async fn record_consents(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    contact: i64,
    form: FormId,
    message_id: &str,
    actor: &str,
    consents: &[NewConsent],
) -> StoreResult<()> {
    if consents.is_empty() {
        return Ok(());
    }
    let mut channels = Vec::with_capacity(consents.len());
    let mut granted = Vec::with_capacity(consents.len());
    let mut recorded_at = Vec::with_capacity(consents.len());
    let mut ips = Vec::with_capacity(consents.len());
    let mut user_agents = Vec::with_capacity(consents.len());
    let mut texts = Vec::with_capacity(consents.len());
    let mut activities = Vec::with_capacity(consents.len());
    for consent in consents {
        channels.push(consent.channel.as_str());
        granted.push(consent.granted);
        recorded_at.push(consent.recorded_at);
        ips.push(consent.ip.clone());
        user_agents.push(consent.user_agent.clone());
        texts.push(consent.text.clone());
        activities.push(Activity {
            contact_id: contact,
            kind: "consent",
            actor: actor.to_owned(),
            data: json!({
                "channel": consent.channel.as_str(),
                "granted": consent.granted,
                "text": consent.text,
                "ip": consent.ip,
                "user_agent": consent.user_agent,
                "form_id": form.to_string(),
            }),
        });
    }
    sqlx::query(
        "INSERT INTO consents (workspace_id, contact_id, channel, granted, recorded_at, ip, user_agent, text, form_id,
             message_id)
         SELECT $1, $2, channel, granted, recorded_at, ip, user_agent, text, $3, $4
         FROM UNNEST($5::text[], $6::boolean[], $7::timestamptz[], $8::text[], $9::text[], $10::text[])
             AS c (channel, granted, recorded_at, ip, user_agent, text)",
    )
    .bind(workspace.get())
    .bind(contact)
    .bind(form.get())
    .bind(message_id)
    .bind(&channels)
    .bind(&granted)
    .bind(&recorded_at)
    .bind(&ips)
    .bind(&user_agents)
    .bind(&texts)
    .execute(&mut *connection)
    .await
    .context("recording consents")?;
    insert_activities(connection, workspace, activities).await
}

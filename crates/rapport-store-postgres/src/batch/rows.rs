//! Contact rows: the columns a change may write, and the statements that read and write them as arrays.

use anyhow::Context;
use rapport_domain::{
    BoundedText, CompanyId, ContactChanges, EmailAddress, Identity, Patch, PhoneNumber, UserId, WorkspaceId,
};
use rapport_store::{StoreError, StoreResult};
use serde_json::{Map, Value};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres};

use crate::companies::merge_fields;
use crate::sql::unique_conflict;

/// Every column of a contact that a change may write.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ContactState {
    pub(super) id: i64,
    pub(super) email: Option<String>,
    pub(super) phone: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) title: Option<String>,
    pub(super) company_name: Option<String>,
    pub(super) city: Option<String>,
    pub(super) province: Option<String>,
    pub(super) country: Option<String>,
    pub(super) source: Option<String>,
    pub(super) owner_id: Option<i64>,
    pub(super) company_id: Option<i64>,
    pub(super) fields: Json<Map<String, Value>>,
    pub(super) stage: String,
    pub(super) status: Option<String>,
}

impl ContactState {
    /// A contact that is yet to be inserted; its id is assigned when the plan is written.
    pub(super) fn new(stage: String) -> ContactState {
        ContactState {
            id: 0,
            email: None,
            phone: None,
            user_id: None,
            first_name: None,
            last_name: None,
            title: None,
            company_name: None,
            city: None,
            province: None,
            country: None,
            source: None,
            owner_id: None,
            company_id: None,
            fields: Json(Map::new()),
            stage,
            status: None,
        }
    }

    /// Applies the columns of `changes`, taking them out; stage, status, identities and tags are the planner's.
    pub(super) fn apply_columns(&mut self, changes: &mut ContactChanges) {
        fn set<T>(column: &mut Option<String>, patch: Patch<T>, text: fn(T) -> String) {
            let current = column.take();
            *column = patch.map(text).apply_to(current);
        }
        use std::mem::take;
        set(&mut self.email, take(&mut changes.email), EmailAddress::into_string);
        set(&mut self.phone, take(&mut changes.phone), PhoneNumber::into_string);
        set(&mut self.user_id, take(&mut changes.user_id), |user_id| user_id);
        let system = take(&mut changes.system);
        set(&mut self.first_name, system.first_name, BoundedText::into_string);
        set(&mut self.last_name, system.last_name, BoundedText::into_string);
        set(&mut self.title, system.title, BoundedText::into_string);
        set(&mut self.company_name, system.company_name, BoundedText::into_string);
        set(&mut self.city, system.city, BoundedText::into_string);
        set(&mut self.province, system.province, BoundedText::into_string);
        set(&mut self.country, system.country, BoundedText::into_string);
        set(&mut self.source, system.source, BoundedText::into_string);
        self.owner_id = take(&mut changes.owner_id).map(UserId::get).apply_to(self.owner_id);
        self.company_id = take(&mut changes.company_id).map(CompanyId::get).apply_to(self.company_id);
        merge_fields(&mut self.fields.0, take(&mut changes.fields));
    }
}

/// Reads the rows without row locks: every writer of contact rows holds the contact lock, which this call holds
/// too, so nothing can change them before they are written back.
pub(super) async fn load_states(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    ids: &[i64],
) -> StoreResult<Vec<ContactState>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as(
        "SELECT c.* FROM UNNEST($2::bigint[]) AS wanted (id)
         CROSS JOIN LATERAL (
             SELECT id, email, phone, user_id, first_name, last_name, title, company_name, city, province, country,
                 source, owner_id, company_id, fields, stage, status
             FROM contacts WHERE id = wanted.id AND workspace_id = $1 OFFSET 0
         ) AS c",
    )
    .bind(workspace.get())
    .bind(ids)
    .fetch_all(connection)
    .await
    .context("reading the contacts to change")?;
    Ok(rows)
}

/// Contact rows as parallel arrays, the shape `UNNEST` takes.
#[derive(Default)]
pub(super) struct ContactColumns {
    pub(super) id: Vec<i64>,
    email: Vec<Option<String>>,
    phone: Vec<Option<String>>,
    user_id: Vec<Option<String>>,
    first_name: Vec<Option<String>>,
    last_name: Vec<Option<String>>,
    title: Vec<Option<String>>,
    company_name: Vec<Option<String>>,
    city: Vec<Option<String>>,
    province: Vec<Option<String>>,
    country: Vec<Option<String>>,
    source: Vec<Option<String>>,
    owner_id: Vec<Option<i64>>,
    company_id: Vec<Option<i64>>,
    fields: Vec<Value>,
    stage: Vec<String>,
    status: Vec<Option<String>>,
}

/// The `UNNEST` of [`ContactColumns`] bound from `$2` on, aliased `u`.
macro_rules! unnest_contacts {
    () => {
        "UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
             $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::jsonb[],
             $17::text[], $18::text[])
         AS u (id, email, phone, user_id, first_name, last_name, title, company_name, city, province, country,
             source, owner_id, company_id, fields, stage, status)"
    };
}

impl ContactColumns {
    pub(super) fn push(&mut self, state: &ContactState) {
        self.id.push(state.id);
        self.email.push(state.email.clone());
        self.phone.push(state.phone.clone());
        self.user_id.push(state.user_id.clone());
        self.first_name.push(state.first_name.clone());
        self.last_name.push(state.last_name.clone());
        self.title.push(state.title.clone());
        self.company_name.push(state.company_name.clone());
        self.city.push(state.city.clone());
        self.province.push(state.province.clone());
        self.country.push(state.country.clone());
        self.source.push(state.source.clone());
        self.owner_id.push(state.owner_id);
        self.company_id.push(state.company_id);
        self.fields.push(Value::Object(state.fields.0.clone()));
        self.stage.push(state.stage.clone());
        self.status.push(state.status.clone());
    }

    fn bind<'q>(&'q self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(&self.id)
            .bind(&self.email)
            .bind(&self.phone)
            .bind(&self.user_id)
            .bind(&self.first_name)
            .bind(&self.last_name)
            .bind(&self.title)
            .bind(&self.company_name)
            .bind(&self.city)
            .bind(&self.province)
            .bind(&self.country)
            .bind(&self.source)
            .bind(&self.owner_id)
            .bind(&self.company_id)
            .bind(&self.fields)
            .bind(&self.stage)
            .bind(&self.status)
    }
}

pub(super) async fn insert_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    columns: &ContactColumns,
) -> StoreResult<()> {
    let query = sqlx::query(concat!(
        "INSERT INTO contacts (id, workspace_id, email, phone, user_id, first_name, last_name, title, company_name,
             city, province, country, source, owner_id, company_id, fields, stage, status, created_at, updated_at)
         SELECT u.id, $1, u.email, u.phone, u.user_id, u.first_name, u.last_name, u.title, u.company_name, u.city,
             u.province, u.country, u.source, u.owner_id, u.company_id, u.fields, u.stage, u.status, now(), now()
         FROM ",
        unnest_contacts!()
    ))
    .bind(workspace.get());
    columns.bind(query).execute(connection).await.context("inserting contacts")?;
    Ok(())
}

/// Writes whole rows back; every updated contact's `updated_at` becomes the transaction's time. The rows are found
/// by their `ctid`, looked up per id in the same statement, which makes the plan a nested loop over the batch
/// whatever the statistics say (a join on `id` invites a hash join over the whole table). This is sound because
/// the contact lock keeps every other writer away from these rows.
pub(super) async fn update_contacts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    columns: &ContactColumns,
) -> StoreResult<()> {
    let query = sqlx::query(concat!(
        "UPDATE contacts c SET email = u.email, phone = u.phone, user_id = u.user_id, first_name = u.first_name,
             last_name = u.last_name, title = u.title, company_name = u.company_name, city = u.city,
             province = u.province, country = u.country, source = u.source, owner_id = u.owner_id,
             company_id = u.company_id, fields = u.fields, stage = u.stage, status = u.status, updated_at = now()
         FROM (SELECT u.*, target.ctid AS target FROM ",
        unnest_contacts!(),
        " CROSS JOIN LATERAL (SELECT ctid FROM contacts WHERE id = u.id AND workspace_id = $1 OFFSET 0) AS target
         ) AS u WHERE c.ctid = u.target"
    ))
    .bind(workspace.get());
    columns.bind(query).execute(connection).await.context("updating contacts")?;
    Ok(())
}

/// New identity rows as parallel arrays.
#[derive(Default)]
pub(super) struct IdentityColumns {
    kinds: Vec<&'static str>,
    values: Vec<String>,
    contact_ids: Vec<i64>,
}

impl IdentityColumns {
    pub(super) fn push(&mut self, identity: &Identity, contact: i64) {
        self.kinds.push(identity.kind().as_str());
        self.values.push(identity.value().to_owned());
        self.contact_ids.push(contact);
    }

    /// The contact lock makes a clash impossible; should one happen anyway it still reads as the caller's conflict.
    pub(super) async fn insert(&self, connection: &mut PgConnection, workspace: WorkspaceId) -> StoreResult<()> {
        if self.kinds.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO contact_identities (workspace_id, kind, value, contact_id)
             SELECT $1, kind, value, contact_id FROM UNNEST($2::text[], $3::text[], $4::bigint[])
                 AS i (kind, value, contact_id)",
        )
        .bind(workspace.get())
        .bind(&self.kinds)
        .bind(&self.values)
        .bind(&self.contact_ids)
        .execute(connection)
        .await
        .map_err(|error| {
            let conflict = || StoreError::conflict("identity_conflict", "an identity belongs to another contact");
            unique_conflict(error, "contact_identities_pkey", conflict, "inserting identities")
        })?;
        Ok(())
    }
}

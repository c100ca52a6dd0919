//! Contacts as filters see them, read a page at a time for the audience engine's index: each query covers the
//! whole page, so loading a million contacts at start-up costs a few queries per thousand.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{ContactId, WorkspaceId};
use rapport_store::{AudienceContact, ConsentChannel, StoreResult};
use sqlx::PgConnection;

use crate::connection::PostgresStore;
use crate::sql::ContactRow;

impl PostgresStore {
    pub(crate) async fn audience_contacts(
        &self,
        workspace: WorkspaceId,
        after: Option<ContactId>,
        limit: u32,
    ) -> StoreResult<Vec<AudienceContact>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        let rows: Vec<ContactRow> = sqlx::query_as(AUDIENCE_PAGE)
            .bind(workspace.get())
            .bind(after.map_or(0, ContactId::get))
            .bind(i64::from(limit))
            .fetch_all(&mut *connection)
            .await
            .context("reading a page of contacts")?;
        with_audience_facts(&mut connection, workspace, rows).await
    }

    pub(crate) async fn audience_contacts_by_id(
        &self,
        workspace: WorkspaceId,
        ids: &[ContactId],
    ) -> StoreResult<Vec<AudienceContact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        let mut ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: Vec<ContactRow> = sqlx::query_as(AUDIENCE_BY_ID)
            .bind(workspace.get())
            .bind(&ids)
            .fetch_all(&mut *connection)
            .await
            .context("reading contacts by id")?;
        with_audience_facts(&mut connection, workspace, rows).await
    }
}

/// Full contacts (the columns of [`ContactRow`], as `select_contacts!` reads them) from the contacts `page` that
/// `$page` selects, with their tags and identities read for the whole page at once: `$children` bounds the
/// `contact_id` of the tag links and identities read, so that each is one index range or probe per page rather
/// than one per contact.
macro_rules! audience_contacts_sql {
    ($page:literal, $children:literal) => {
        concat!(
            "WITH page AS MATERIALIZED (",
            $page,
            "), bounds AS (SELECT min(id) AS low, max(id) AS high FROM page)
             SELECT c.id, c.workspace_id, c.email, c.phone, c.user_id, c.first_name, c.last_name, c.title,
                 c.company_name, c.city, c.province, c.country, c.source, c.owner_id, c.company_id, c.fields, c.stage,
                 c.status, c.created_at, c.updated_at,
                 coalesce(tags.paths, '{}') AS tags,
                 coalesce(identities.identity_kinds, '{}') AS identity_kinds,
                 coalesce(identities.identity_values, '{}') AS identity_values
             FROM page c
             LEFT JOIN (
                 SELECT child.contact_id, array_agg(t.path ORDER BY t.path) AS paths
                 FROM contact_tags child JOIN tags t ON t.id = child.tag_id
                 WHERE ",
            $children,
            " GROUP BY child.contact_id
             ) AS tags ON tags.contact_id = c.id
             LEFT JOIN (
                 SELECT child.contact_id, array_agg(child.kind ORDER BY child.kind, child.value) AS identity_kinds,
                     array_agg(child.value ORDER BY child.kind, child.value) AS identity_values
                 FROM contact_identities child
                 WHERE ",
            $children,
            " GROUP BY child.contact_id
             ) AS identities ON identities.contact_id = c.id
             ORDER BY c.id"
        )
    };
}

/// `$1` workspace, `$2` the id to start after, `$3` the page size.
const AUDIENCE_PAGE: &str = audience_contacts_sql!(
    "SELECT * FROM contacts WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    "child.contact_id BETWEEN (SELECT low FROM bounds) AND (SELECT high FROM bounds)"
);

/// `$1` workspace, `$2` the ids.
const AUDIENCE_BY_ID: &str = audience_contacts_sql!(
    "SELECT * FROM contacts WHERE workspace_id = $1 AND id = ANY($2)",
    "child.contact_id = ANY($2)"
);

#[derive(sqlx::FromRow)]
struct StageChangeRow {
    contact_id: i64,
    from_stage: Option<String>,
    to_stage: Option<String>,
    at: DateTime<Utc>,
}

/// Adds the current consent states and the stage histories to contacts, with one query each.
async fn with_audience_facts(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    rows: Vec<ContactRow>,
) -> StoreResult<Vec<AudienceContact>> {
    let mut facts: Vec<AudienceContact> = rows
        .into_iter()
        .map(|row| {
            let contact = row.into_record()?;
            let stages = vec![(contact.stage.clone(), contact.created_at)];
            Ok(AudienceContact { contact, consents: Vec::new(), stages })
        })
        .collect::<anyhow::Result<_>>()?;
    if facts.is_empty() {
        return Ok(facts);
    }
    let ids: Vec<i64> = facts.iter().map(|fact| fact.contact.id.get()).collect();
    let position: HashMap<i64, usize> = ids.iter().enumerate().map(|(index, id)| (*id, index)).collect();

    // Consent rows are never updated: the newest per channel is the current state.
    let consents: Vec<(i64, String, bool)> = sqlx::query_as(
        "SELECT DISTINCT ON (contact_id, channel) contact_id, channel, granted FROM consents
         WHERE workspace_id = $1 AND contact_id = ANY($2)
         ORDER BY contact_id, channel, recorded_at DESC, id DESC",
    )
    .bind(workspace.get())
    .bind(&ids)
    .fetch_all(&mut *connection)
    .await
    .context("reading consent states")?;
    for (id, channel, granted) in consents {
        let channel =
            ConsentChannel::parse(&channel).with_context(|| format!("unknown stored consent channel {channel:?}"))?;
        if let Some(&index) = position.get(&id) {
            facts[index].consents.push((channel, granted));
        }
    }

    // A contact starts in the stage its first change left (or, never changed, the one it is in), at its creation.
    let changes: Vec<StageChangeRow> = sqlx::query_as(
        "SELECT contact_id, data->>'from' AS from_stage, data->>'to' AS to_stage, at FROM activities
         WHERE workspace_id = $1 AND contact_id = ANY($2) AND kind = 'stage_changed'
         ORDER BY contact_id, at, id",
    )
    .bind(workspace.get())
    .bind(&ids)
    .fetch_all(&mut *connection)
    .await
    .context("reading stage histories")?;
    let mut started = vec![false; facts.len()];
    for change in changes {
        let (Some(&index), Some(to)) = (position.get(&change.contact_id), change.to_stage) else { continue };
        let stages = &mut facts[index].stages;
        if !std::mem::replace(&mut started[index], true) {
            if let (Some(first), Some(from)) = (stages.first_mut(), change.from_stage) {
                first.0 = from;
            }
        }
        stages.push((to, change.at));
    }
    Ok(facts)
}

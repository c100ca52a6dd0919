//! What the audience engine reads and writes: segments and their members here, contacts with everything a filter
//! asks about them in `audience/contacts.rs`, and the change feed the engine follows in `audience/feed.rs`.
//!
//! Member rows hang off contacts without a foreign key, like identities and tag links: erasure and merges delete a
//! contact's rows, and [`PostgresStore::apply_memberships`] writes them under the workspace's contact lock, skipping
//! contacts that are gone. It also locks the rows of the segments it writes (`FOR KEY SHARE`), which keeps
//! `delete_segment` from deleting a segment whose members are being written, and the tag of a dynamic tag's
//! segment from being deleted (`segments.tag_id` references it).

mod contacts;
mod feed;

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use rapport_domain::{ContactId, SegmentId, TagId, TagKind, WorkspaceId};
use rapport_store::{
    MembershipChanges, NewSegment, Page, PageRequest, Segment, SegmentUpdate, StoreError, StoreResult, TagDay,
};
use serde_json::json;
use sqlx::PgConnection;

use crate::connection::{LockMode, PostgresStore, WorkspaceLock, commit};
use crate::contacts::check_contact_exists;
use crate::events::existing_contacts;
use crate::history::{Activity, insert_activities_at};
use crate::sql::{
    ContactRow, SEGMENT_COLUMNS, SegmentRow, fetch_limit, page, select_contacts, stored_tag_kind,
    violated_unique_constraint,
};

/// Who membership changes are recorded as.
const ENGINE_ACTOR: &str = "system";

impl PostgresStore {
    // ----- Segments -----

    pub(crate) async fn create_segment(&self, workspace: WorkspaceId, segment: NewSegment) -> StoreResult<Segment> {
        let mut tx = self.begin().await?;
        if let Some(tag) = segment.tag_id {
            let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM tags WHERE workspace_id = $1 AND id = $2")
                .bind(workspace.get())
                .bind(tag.get())
                .fetch_optional(&mut *tx)
                .await
                .context("reading a segment's tag")?;
            let Some(kind) = kind else {
                return Err(StoreError::invalid("unknown_tag", "tag_id", format!("there is no tag {tag}")));
            };
            if stored_tag_kind(&kind)? != TagKind::Dynamic {
                let message = format!("the tag {tag} is a manual tag; only a dynamic tag is defined by a filter");
                return Err(StoreError::invalid("not_dynamic_tag", "tag_id", message));
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO segments (workspace_id, name, description, filter, tag_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, now(), now()) RETURNING id",
        )
        .bind(workspace.get())
        .bind(segment.name.as_str())
        .bind(&segment.description)
        .bind(&segment.filter)
        .bind(segment.tag_id.map(|tag| tag.get()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| segment_write_error(error, segment.name.as_str(), "inserting a segment"))?;
        let created = get_segment(&mut tx, workspace, SegmentId::new(id)).await?;
        commit(tx).await?;
        Ok(created)
    }

    pub(crate) async fn list_segments(&self, workspace: WorkspaceId) -> StoreResult<Vec<Segment>> {
        let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments s WHERE s.workspace_id = $1 ORDER BY s.id");
        let rows: Vec<SegmentRow> =
            sqlx::query_as(&sql).bind(workspace.get()).fetch_all(&self.pool).await.context("listing segments")?;
        Ok(rows.into_iter().map(SegmentRow::into_record).collect())
    }

    pub(crate) async fn get_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<Segment> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        get_segment(&mut connection, workspace, id).await
    }

    pub(crate) async fn update_segment(
        &self,
        workspace: WorkspaceId,
        id: SegmentId,
        update: SegmentUpdate,
    ) -> StoreResult<Segment> {
        let mut tx = self.begin().await?;
        let filter: Option<String> =
            sqlx::query_scalar("SELECT filter FROM segments WHERE workspace_id = $1 AND id = $2 FOR UPDATE")
                .bind(workspace.get())
                .bind(id.get())
                .fetch_optional(&mut *tx)
                .await
                .context("reading a segment")?;
        let filter = filter.ok_or(StoreError::not_found("segment"))?;
        let filter_changed = update.filter.as_ref().is_some_and(|new_filter| *new_filter != filter);
        let name = update.name.as_ref().map(|name| name.as_str());
        sqlx::query(
            "UPDATE segments SET name = coalesce($3, name), description = coalesce($4, description),
                 filter = coalesce($5, filter), version = version + $6, updated_at = now()
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace.get())
        .bind(id.get())
        .bind(name)
        .bind(update.description.as_deref())
        .bind(update.filter.as_deref())
        .bind(i64::from(filter_changed))
        .execute(&mut *tx)
        .await
        .map_err(|error| segment_write_error(error, name.unwrap_or_default(), "updating a segment"))?;
        let updated = get_segment(&mut tx, workspace, id).await?;
        commit(tx).await?;
        Ok(updated)
    }

    /// One statement, so it needs no transaction: the definition and its member rows go together.
    pub(crate) async fn delete_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<()> {
        let deleted: i64 = sqlx::query_scalar(
            "WITH deleted AS (DELETE FROM segments WHERE workspace_id = $1 AND id = $2 RETURNING id),
                 members AS (DELETE FROM segment_members WHERE segment_id IN (SELECT id FROM deleted))
             SELECT count(*) FROM deleted",
        )
        .bind(workspace.get())
        .bind(id.get())
        .fetch_one(&self.pool)
        .await
        .context("deleting a segment")?;
        if deleted == 0 {
            return Err(StoreError::not_found("segment"));
        }
        Ok(())
    }

    pub(crate) async fn all_segments(&self) -> StoreResult<Vec<Segment>> {
        let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments s ORDER BY s.id");
        let rows: Vec<SegmentRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await.context("listing segments")?;
        Ok(rows.into_iter().map(SegmentRow::into_record).collect())
    }

    // ----- Members -----

    pub(crate) async fn segment_members(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        request: PageRequest<ContactId>,
    ) -> StoreResult<Page<ContactId, ContactId>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        check_segment_exists(&mut connection, workspace, segment).await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT contact_id FROM segment_members WHERE segment_id = $1 AND contact_id > $2
             ORDER BY contact_id LIMIT $3",
        )
        .bind(segment.get())
        .bind(request.after.map_or(0, ContactId::get))
        .bind(fetch_limit(request.limit))
        .fetch_all(&mut *connection)
        .await
        .context("listing segment members")?;
        Ok(page(ids.into_iter().map(ContactId::new).collect(), request.limit, |id| *id))
    }

    pub(crate) async fn segment_contacts(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        request: PageRequest<ContactId>,
    ) -> StoreResult<Page<rapport_domain::Contact, ContactId>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        check_segment_exists(&mut connection, workspace, segment).await?;
        let rows: Vec<ContactRow> = sqlx::query_as(concat!(
            select_contacts!(),
            "JOIN segment_members m ON m.contact_id = c.id
             WHERE m.segment_id = $1 AND c.workspace_id = $2 AND m.contact_id > $3
             ORDER BY m.contact_id LIMIT $4"
        ))
        .bind(segment.get())
        .bind(workspace.get())
        .bind(request.after.map_or(0, ContactId::get))
        .bind(fetch_limit(request.limit))
        .fetch_all(&mut *connection)
        .await
        .context("listing segment contacts")?;
        let contacts = rows.into_iter().map(ContactRow::into_record).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(page(contacts, request.limit, |contact| contact.id))
    }

    pub(crate) async fn contact_segments(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> StoreResult<Vec<SegmentId>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        check_contact_exists(&mut connection, workspace, contact).await?;
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT segment_id FROM segment_members WHERE contact_id = $1 ORDER BY segment_id")
                .bind(contact.get())
                .fetch_all(&mut *connection)
                .await
                .context("listing a contact's segments")?;
        Ok(ids.into_iter().map(SegmentId::new).collect())
    }

    /// Writes member rows and dynamic tag links with a statement each, and records what actually changed, in the
    /// order of the changes: each entered pair's `segment_entered` (and `tag_added`), then each exited pair's
    /// `segment_exited` (and `tag_removed`). Pairs of segments of another workspace or gone, and of contacts gone,
    /// are dropped first.
    pub(crate) async fn apply_memberships(
        &self,
        workspace: WorkspaceId,
        changes: MembershipChanges,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_locked(workspace, &[(WorkspaceLock::Contacts, LockMode::Exclusive)]).await?;
        let pairs = changes.entered.iter().chain(&changes.exited);
        let segments = lock_segments(&mut tx, workspace, pairs.clone().map(|(segment, _)| segment.get())).await?;
        let mut contact_ids: Vec<i64> = pairs.map(|(_, contact)| contact.get()).collect();
        contact_ids.sort_unstable();
        contact_ids.dedup();
        let contacts = existing_contacts(&mut tx, workspace, &contact_ids).await?;
        let known = |(segment, contact): &(SegmentId, ContactId)| {
            segments.contains_key(&segment.get()) && contacts.contains(&contact.get())
        };
        let entered: Vec<(i64, i64)> =
            changes.entered.iter().filter(|pair| known(pair)).map(|(s, c)| (s.get(), c.get())).collect();
        let exited: Vec<(i64, i64)> =
            changes.exited.iter().filter(|pair| known(pair)).map(|(s, c)| (s.get(), c.get())).collect();

        let mut activities = Vec::new();
        if !entered.is_empty() {
            let mut added = add_members(&mut tx, &entered, at).await?;
            let links = tag_links(&entered, &added, &segments);
            let mut linked = link_tags(&mut tx, &links, at).await?;
            for pair in &entered {
                if added.remove(pair) {
                    record(&mut activities, pair, &segments, &mut linked, "segment_entered", "tag_added");
                }
            }
        }
        if !exited.is_empty() {
            let mut removed = remove_members(&mut tx, &exited).await?;
            let links = tag_links(&exited, &removed, &segments);
            let mut unlinked = unlink_tags(&mut tx, &links).await?;
            for pair in &exited {
                if removed.remove(pair) {
                    record(&mut activities, pair, &segments, &mut unlinked, "segment_exited", "tag_removed");
                }
            }
        }
        insert_activities_at(&mut tx, workspace, activities, Some(at)).await?;
        commit(tx).await
    }
}

// ----- Segments -----

async fn get_segment(connection: &mut PgConnection, workspace: WorkspaceId, id: SegmentId) -> StoreResult<Segment> {
    let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments s WHERE s.workspace_id = $1 AND s.id = $2");
    let row: Option<SegmentRow> = sqlx::query_as(&sql)
        .bind(workspace.get())
        .bind(id.get())
        .fetch_optional(connection)
        .await
        .context("reading a segment")?;
    Ok(row.ok_or(StoreError::not_found("segment"))?.into_record())
}

async fn check_segment_exists(connection: &mut PgConnection, workspace: WorkspaceId, id: SegmentId) -> StoreResult<()> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM segments WHERE workspace_id = $1 AND id = $2)")
        .bind(workspace.get())
        .bind(id.get())
        .fetch_one(connection)
        .await
        .context("checking a segment")?;
    if exists { Ok(()) } else { Err(StoreError::not_found("segment")) }
}

/// A taken name is conflict `segment_exists`, a dynamic tag that has a definition already `tag_has_segment`.
fn segment_write_error(error: sqlx::Error, name: &str, context: &'static str) -> StoreError {
    match violated_unique_constraint(&error) {
        Some("segments_name_key") => {
            StoreError::conflict("segment_exists", format!("the segment {name} exists already"))
        }
        Some("segments_tag_id_key") => StoreError::conflict("tag_has_segment", "the tag has a definition already"),
        _ => StoreError::Backend(anyhow::Error::new(error).context(context)),
    }
}

// ----- Memberships -----

/// What recording a membership change needs to know of its segment.
struct SegmentLabel {
    name: String,
    /// The dynamic tag the segment defines, with its path.
    tag: Option<(i64, String)>,
}

/// The workspace's segments among `ids`, locked against deletion until the transaction ends.
async fn lock_segments(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    ids: impl Iterator<Item = i64>,
) -> StoreResult<HashMap<i64, SegmentLabel>> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: Vec<(i64, String, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT s.id, s.name, s.tag_id, t.path FROM segments s LEFT JOIN tags t ON t.id = s.tag_id
         WHERE s.workspace_id = $1 AND s.id = ANY($2) ORDER BY s.id FOR KEY SHARE OF s",
    )
    .bind(workspace.get())
    .bind(&ids)
    .fetch_all(connection)
    .await
    .context("locking segments")?;
    Ok(rows.into_iter().map(|(id, name, tag_id, path)| (id, SegmentLabel { name, tag: tag_id.zip(path) })).collect())
}

/// Inserts the member rows that do not exist; returns the `(segment, contact)` pairs inserted.
async fn add_members(
    connection: &mut PgConnection,
    pairs: &[(i64, i64)],
    at: DateTime<Utc>,
) -> StoreResult<HashSet<(i64, i64)>> {
    let (segments, contacts): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
    let added: Vec<(i64, i64)> = sqlx::query_as(
        "INSERT INTO segment_members (segment_id, contact_id, since)
         SELECT segment_id, contact_id, $3 FROM UNNEST($1::bigint[], $2::bigint[]) AS m (segment_id, contact_id)
         ON CONFLICT DO NOTHING RETURNING segment_id, contact_id",
    )
    .bind(&segments)
    .bind(&contacts)
    .bind(at)
    .fetch_all(connection)
    .await
    .context("adding segment members")?;
    Ok(added.into_iter().collect())
}

/// Deletes the member rows that exist; returns the `(segment, contact)` pairs deleted.
async fn remove_members(connection: &mut PgConnection, pairs: &[(i64, i64)]) -> StoreResult<HashSet<(i64, i64)>> {
    let (segments, contacts): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
    let removed: Vec<(i64, i64)> = sqlx::query_as(
        "DELETE FROM segment_members m USING UNNEST($1::bigint[], $2::bigint[]) AS x (segment_id, contact_id)
         WHERE m.segment_id = x.segment_id AND m.contact_id = x.contact_id
         RETURNING m.segment_id, m.contact_id",
    )
    .bind(&segments)
    .bind(&contacts)
    .fetch_all(connection)
    .await
    .context("removing segment members")?;
    Ok(removed.into_iter().collect())
}

/// The `(contact, tag)` links that follow from the member rows that changed, for segments that define a tag.
fn tag_links(
    pairs: &[(i64, i64)],
    changed: &HashSet<(i64, i64)>,
    segments: &HashMap<i64, SegmentLabel>,
) -> Vec<(i64, i64)> {
    pairs
        .iter()
        .filter(|pair| changed.contains(pair))
        .filter_map(|(segment, contact)| {
            let (tag, _) = segments.get(segment)?.tag.as_ref()?;
            Some((*contact, *tag))
        })
        .collect()
}

/// Links dynamic tags the way `add_contact_tags` links manual ones; returns the `(contact, tag)` links added.
async fn link_tags(
    connection: &mut PgConnection,
    links: &[(i64, i64)],
    at: DateTime<Utc>,
) -> StoreResult<HashSet<(i64, i64)>> {
    if links.is_empty() {
        return Ok(HashSet::new());
    }
    let (contacts, tags): (Vec<i64>, Vec<i64>) = links.iter().copied().unzip();
    let linked: Vec<(i64, i64)> = sqlx::query_as(
        "INSERT INTO contact_tags (contact_id, tag_id, added_at)
         SELECT contact_id, tag_id, $3 FROM UNNEST($1::bigint[], $2::bigint[]) AS l (contact_id, tag_id)
         ON CONFLICT DO NOTHING RETURNING contact_id, tag_id",
    )
    .bind(&contacts)
    .bind(&tags)
    .bind(at)
    .fetch_all(connection)
    .await
    .context("linking dynamic tags")?;
    Ok(linked.into_iter().collect())
}

/// Unlinks dynamic tags; returns the `(contact, tag)` links removed.
async fn unlink_tags(connection: &mut PgConnection, links: &[(i64, i64)]) -> StoreResult<HashSet<(i64, i64)>> {
    if links.is_empty() {
        return Ok(HashSet::new());
    }
    let (contacts, tags): (Vec<i64>, Vec<i64>) = links.iter().copied().unzip();
    let unlinked: Vec<(i64, i64)> = sqlx::query_as(
        "DELETE FROM contact_tags ct USING UNNEST($1::bigint[], $2::bigint[]) AS l (contact_id, tag_id)
         WHERE ct.contact_id = l.contact_id AND ct.tag_id = l.tag_id
         RETURNING ct.contact_id, ct.tag_id",
    )
    .bind(&contacts)
    .bind(&tags)
    .fetch_all(connection)
    .await
    .context("unlinking dynamic tags")?;
    Ok(unlinked.into_iter().collect())
}

/// Records a membership change of `pair`, and the change of its segment's tag link if that changed too (taken out
/// of `links`, so that a pair repeated in the changes is recorded once).
fn record(
    activities: &mut Vec<Activity>,
    (segment, contact): &(i64, i64),
    segments: &HashMap<i64, SegmentLabel>,
    links: &mut HashSet<(i64, i64)>,
    kind: &'static str,
    tag_kind: &'static str,
) {
    let Some(label) = segments.get(segment) else { return };
    let data = json!({ "segment_id": segment, "segment": label.name });
    activities.push(Activity { contact_id: *contact, kind, actor: ENGINE_ACTOR.to_owned(), data });
    if let Some((tag, path)) = &label.tag {
        if links.remove(&(*contact, *tag)) {
            let data = json!({ "tag": path, "actor": ENGINE_ACTOR });
            activities.push(Activity { contact_id: *contact, kind: tag_kind, actor: ENGINE_ACTOR.to_owned(), data });
        }
    }
}

impl PostgresStore {
    pub(crate) async fn tag_activity(
        &self,
        workspace: WorkspaceId,
        tag: TagId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<TagDay>> {
        let path: Option<String> = sqlx::query_scalar("SELECT path FROM tags WHERE workspace_id = $1 AND id = $2")
            .bind(workspace.get())
            .bind(tag.get())
            .fetch_optional(&self.pool)
            .await
            .context("reading a tag")?;
        let path = path.ok_or(StoreError::not_found("tag"))?;
        let rows: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(
            "SELECT (at AT TIME ZONE 'UTC')::date AS day,
                    count(*) FILTER (WHERE kind = 'tag_added'), count(*) FILTER (WHERE kind = 'tag_removed')
             FROM activities
             WHERE workspace_id = $1 AND kind IN ('tag_added', 'tag_removed')
               AND at >= $2::date::timestamp AT TIME ZONE 'UTC' AND at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
               AND data->>'tag' = $4
             GROUP BY day ORDER BY day",
        )
        .bind(workspace.get())
        .bind(from)
        .bind(to)
        .bind(&path)
        .fetch_all(&self.pool)
        .await
        .context("reading tag activity")?;
        Ok(rows
            .into_iter()
            .map(|(day, added, removed)| TagDay {
                day,
                added: u64::try_from(added).unwrap_or_default(),
                removed: u64::try_from(removed).unwrap_or_default(),
            })
            .collect())
    }
}

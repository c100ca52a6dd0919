//! Contacts: reads and keyset listing, upserts and updates (planned in `batch.rs`), erasure.

use anyhow::Context;
use rapport_domain::{Contact, ContactChanges, ContactId, Identity, WorkspaceId};
use rapport_store::{Actor, ContactCursor, Page, PageRequest, StoreError, StoreResult, UpsertOutcome};
use sqlx::PgConnection;

use crate::batch::{Target, contact_write_locks, write_contacts, write_locked_contacts};
use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::sql::{ContactRow, fetch_limit, page, select_contacts};

impl PostgresStore {
    pub(crate) async fn upsert_contacts(
        &self,
        workspace: WorkspaceId,
        items: Vec<ContactChanges>,
        actor: Actor,
    ) -> StoreResult<Vec<UpsertOutcome>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let batch = items.len() > 1;
        let items: Vec<(Target, ContactChanges)> = items.into_iter().map(|changes| (Target::Match, changes)).collect();
        let mut tx = self.begin_locked(workspace, &contact_write_locks(&items)).await?;
        let outcomes = write_locked_contacts(&mut tx, workspace, items, &actor.to_string(), batch).await?;
        commit(tx).await?;
        Ok(outcomes)
    }

    pub(crate) async fn update_contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        changes: ContactChanges,
        actor: Actor,
    ) -> StoreResult<Contact> {
        let mut tx = self.begin().await?;
        write_contacts(&mut tx, workspace, vec![(Target::Contact(id), changes)], &actor.to_string(), false).await?;
        let contact = get_contact(&mut tx, workspace, id).await?;
        commit(tx).await?;
        Ok(contact)
    }

    pub(crate) async fn get_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Contact> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        get_contact(&mut connection, workspace, id).await
    }

    pub(crate) async fn find_contact(
        &self,
        workspace: WorkspaceId,
        identity: &Identity,
    ) -> StoreResult<Option<Contact>> {
        let row: Option<ContactRow> = sqlx::query_as(concat!(
            select_contacts!(),
            "WHERE c.id = (SELECT contact_id FROM contact_identities
                           WHERE workspace_id = $1 AND kind = $2 AND value = $3)"
        ))
        .bind(workspace.get())
        .bind(identity.kind().as_str())
        .bind(identity.value())
        .fetch_optional(&self.pool)
        .await
        .context("finding a contact")?;
        Ok(row.map(ContactRow::into_record).transpose()?)
    }

    /// Newest change first. A backward scan of the `(workspace_id, updated_at, id)` index serves every page, the
    /// first included, without sorting.
    pub(crate) async fn list_contacts(
        &self,
        workspace: WorkspaceId,
        request: PageRequest<ContactCursor>,
    ) -> StoreResult<Page<Contact, ContactCursor>> {
        let query = match &request.after {
            None => sqlx::query_as(concat!(
                select_contacts!(),
                "WHERE c.workspace_id = $1 ORDER BY c.updated_at DESC, c.id DESC LIMIT $2"
            ))
            .bind(workspace.get())
            .bind(fetch_limit(request.limit)),
            Some(after) => sqlx::query_as(concat!(
                select_contacts!(),
                "WHERE c.workspace_id = $1 AND (c.updated_at, c.id) < ($3, $4)
                 ORDER BY c.updated_at DESC, c.id DESC LIMIT $2"
            ))
            .bind(workspace.get())
            .bind(fetch_limit(request.limit))
            .bind(after.updated_at)
            .bind(after.id.get()),
        };
        let rows: Vec<ContactRow> = query.fetch_all(&self.pool).await.context("listing contacts")?;
        let contacts = rows.into_iter().map(ContactRow::into_record).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(page(contacts, request.limit, |contact| ContactCursor { updated_at: contact.updated_at, id: contact.id }))
    }

    /// Erases the person with everything that hangs off it: identities, tag links, activities, events, the event
    /// documents only its events used, its consent records, the message ids of its tracking messages (so that they
    /// could be sent again), the pointers of contacts merged into it, and its segment memberships. No table has a
    /// foreign key to contacts (see the migrations): the erasure lock keeps event ingestion out and the contact lock
    /// every other writer.
    pub(crate) async fn delete_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Erasure).await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        let deleted: i64 = sqlx::query_scalar(
            "WITH contact AS (DELETE FROM contacts WHERE workspace_id = $1 AND id = $2 RETURNING id),
                 identities AS (DELETE FROM contact_identities WHERE contact_id IN (SELECT id FROM contact)),
                 tags AS (DELETE FROM contact_tags WHERE contact_id IN (SELECT id FROM contact)),
                 activities AS (DELETE FROM activities WHERE contact_id IN (SELECT id FROM contact)),
                 events AS (DELETE FROM events WHERE contact_id IN (SELECT id FROM contact)),
                 documents AS (DELETE FROM event_documents WHERE sole_contact_id IN (SELECT id FROM contact)),
                 message_ids AS (DELETE FROM message_ids WHERE contact_id IN (SELECT id FROM contact)),
                 consents AS (DELETE FROM consents WHERE contact_id IN (SELECT id FROM contact)),
                 pointers AS (DELETE FROM contact_merges WHERE survivor_id IN (SELECT id FROM contact)),
                 members AS (DELETE FROM segment_members WHERE contact_id IN (SELECT id FROM contact))
             SELECT count(*) FROM contact",
        )
        .bind(workspace.get())
        .bind(id.get())
        .fetch_one(&mut *tx)
        .await
        .context("deleting a contact")?;
        if deleted == 0 {
            return Err(StoreError::not_found("contact"));
        }
        commit(tx).await
    }

    pub(crate) async fn count_contacts(&self, workspace: WorkspaceId) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE workspace_id = $1")
            .bind(workspace.get())
            .fetch_one(&self.pool)
            .await
            .context("counting contacts")?;
        Ok(crate::sql::count(count))
    }
}

pub(crate) async fn get_contact(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    id: ContactId,
) -> StoreResult<Contact> {
    let row: Option<ContactRow> =
        sqlx::query_as(concat!(select_contacts!(), "WHERE c.workspace_id = $1 AND c.id = $2"))
            .bind(workspace.get())
            .bind(id.get())
            .fetch_optional(connection)
            .await
            .context("reading a contact")?;
    Ok(row.ok_or(StoreError::not_found("contact"))?.into_record()?)
}

pub(crate) async fn check_contact_exists(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    id: ContactId,
) -> StoreResult<()> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contacts WHERE workspace_id = $1 AND id = $2)")
        .bind(workspace.get())
        .bind(id.get())
        .fetch_one(connection)
        .await
        .context("checking a contact")?;
    if exists { Ok(()) } else { Err(StoreError::not_found("contact")) }
}

/// Marks the contact as changed now, for changes (like tags) that live outside its row.
pub(crate) async fn touch_contact(connection: &mut PgConnection, id: ContactId) -> StoreResult<()> {
    sqlx::query("UPDATE contacts SET updated_at = now() WHERE id = $1")
        .bind(id.get())
        .execute(connection)
        .await
        .context("touching a contact")?;
    Ok(())
}

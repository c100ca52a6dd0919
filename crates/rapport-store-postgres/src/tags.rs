//! The tag library and the tags on contacts. A tag's `path` is stored whole (`行业/制造业`) so that lookups by path
//! are one index probe; renaming or moving a tag rewrites the paths of its subtree in one statement.

use std::collections::HashMap;

use anyhow::Context;
use rapport_domain::{ContactId, MAX_TAG_DEPTH, Patch, TagId, TagKind, TagPath, WorkspaceId};
use rapport_store::{Actor, NewTag, StoreError, StoreResult, Tag, TagUpdate};
use serde_json::json;
use sqlx::PgConnection;

use crate::connection::{PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::contacts::{check_contact_exists, touch_contact};
use crate::history::{Activity, insert_activities};
use crate::sql::{TAG_COLUMNS, TagRow, stored_tag_kind, unique_conflict};

impl PostgresStore {
    pub(crate) async fn list_tags(&self, workspace: WorkspaceId) -> StoreResult<Vec<Tag>> {
        let sql = format!("SELECT {TAG_COLUMNS} FROM tags t WHERE t.workspace_id = $1 ORDER BY t.path");
        let rows: Vec<TagRow> =
            sqlx::query_as(&sql).bind(workspace.get()).fetch_all(&self.pool).await.context("listing tags")?;
        Ok(rows.into_iter().map(TagRow::into_record).collect::<anyhow::Result<_>>()?)
    }

    pub(crate) async fn get_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<Tag> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        get_tag(&mut connection, workspace, id).await
    }

    pub(crate) async fn create_tag(&self, workspace: WorkspaceId, tag: NewTag) -> StoreResult<Tag> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::TagLibrary).await?;
        let mut library = TagLibrary::load(&mut tx, workspace, std::slice::from_ref(&tag.path)).await?;
        let path = tag.path.to_string();
        if library.find(&path).is_some() {
            return Err(StoreError::conflict("tag_exists", format!("the tag {path} exists already")));
        }
        library.create_missing(&mut tx, workspace, std::slice::from_ref(&tag.path), tag.kind).await?;
        let (id, _) = library.find(&path).context("the new tag is in the library")?;
        let created = get_tag(&mut tx, workspace, id).await?;
        commit(tx).await?;
        Ok(created)
    }

    pub(crate) async fn update_tag(&self, workspace: WorkspaceId, id: TagId, update: TagUpdate) -> StoreResult<Tag> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::TagLibrary).await?;
        let tag = get_tag(&mut tx, workspace, id).await?;
        let name = match update.name {
            None => tag.name.clone(),
            Some(raw) => match TagPath::parse_segment(&raw) {
                Ok(name) if !name.contains('/') => name,
                Ok(_) => {
                    return Err(StoreError::invalid("invalid_tag_name", "name", "a tag name must not contain /"));
                }
                Err(error) => {
                    return Err(StoreError::invalid("invalid_tag_name", "name", error.to_string()));
                }
            },
        };
        let subtree_prefix = format!("{}/", tag.path);
        let parent = match update.parent_id {
            Patch::Absent => match tag.parent_id {
                Some(parent) => Some(get_tag(&mut tx, workspace, parent).await?),
                None => None,
            },
            Patch::Clear => None,
            Patch::Set(parent_id) => {
                let parent = match get_tag(&mut tx, workspace, parent_id).await {
                    Err(StoreError::NotFound { .. }) => {
                        let message = format!("there is no tag {parent_id}");
                        return Err(StoreError::invalid("unknown_tag", "parent_id", message));
                    }
                    other => other?,
                };
                if parent.id == tag.id || parent.path.starts_with(&subtree_prefix) {
                    return Err(StoreError::invalid("tag_cycle", "parent_id", "a tag cannot move under itself"));
                }
                Some(parent)
            }
        };
        let new_path = match &parent {
            Some(parent) => format!("{}/{name}", parent.path),
            None => name.clone(),
        };
        if new_path == tag.path {
            return Ok(tag);
        }
        let height = subtree_depth(&mut tx, workspace, &tag.path).await? - depth(&tag.path);
        if depth(&new_path) + height > MAX_TAG_DEPTH {
            let message = format!("the tag and its subtree would go past {MAX_TAG_DEPTH} levels");
            return Err(StoreError::invalid("tag_too_deep", "parent_id", message));
        }
        let taken: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tags WHERE workspace_id = $1 AND path = $2)")
                .bind(workspace.get())
                .bind(&new_path)
                .fetch_one(&mut *tx)
                .await
                .context("checking the new tag path")?;
        if taken {
            return Err(StoreError::conflict("tag_exists", format!("the tag {new_path} exists already")));
        }
        sqlx::query(
            "UPDATE tags SET
                 name = CASE WHEN id = $2 THEN $3 ELSE name END,
                 parent_id = CASE WHEN id = $2 THEN $4 ELSE parent_id END,
                 path = $5 || substr(path, length($6) + 1)
             WHERE workspace_id = $1 AND (path = $6 OR starts_with(path, $6 || '/'))",
        )
        .bind(workspace.get())
        .bind(id.get())
        .bind(&name)
        .bind(parent.map(|parent| parent.id.get()))
        .bind(&new_path)
        .bind(&tag.path)
        .execute(&mut *tx)
        .await
        .map_err(|error| {
            let exists = || StoreError::conflict("tag_exists", format!("the tag {new_path} exists already"));
            unique_conflict(error, "tags_path_key", exists, "moving a tag subtree")
        })?;
        let updated = get_tag(&mut tx, workspace, id).await?;
        commit(tx).await?;
        Ok(updated)
    }

    pub(crate) async fn delete_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::TagLibrary).await?;
        let tag = get_tag(&mut tx, workspace, id).await?;
        let has_children: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tags WHERE parent_id = $1)")
            .bind(id.get())
            .fetch_one(&mut *tx)
            .await
            .context("checking for child tags")?;
        if has_children {
            return Err(StoreError::conflict("tag_has_children", format!("the tag {} has tags below it", tag.path)));
        }
        if tag.contact_count > 0 {
            let message = format!("{} contacts carry the tag {}", tag.contact_count, tag.path);
            return Err(StoreError::conflict("tag_in_use", message));
        }
        // A dynamic tag's definition goes with it.
        sqlx::query("DELETE FROM segments WHERE tag_id = $1")
            .bind(id.get())
            .execute(&mut *tx)
            .await
            .context("deleting a tag's definition")?;
        sqlx::query("DELETE FROM tags WHERE id = $1")
            .bind(id.get())
            .execute(&mut *tx)
            .await
            .context("deleting a tag")?;
        commit(tx).await
    }

    /// Links the tags in request order, creating missing ones; each new link is a `tag_added` activity and any
    /// change touches the contact.
    pub(crate) async fn add_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        paths: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        check_contact_exists(&mut tx, workspace, contact).await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::TagLibrary).await?;
        let mut library = TagLibrary::load(&mut tx, workspace, paths).await?;
        for path in paths {
            library.check_manual(&path.to_string(), "tags")?;
        }
        library.create_missing(&mut tx, workspace, paths, TagKind::Manual).await?;
        let mut tag_ids = Vec::with_capacity(paths.len());
        for path in paths {
            let (id, _) = library.find(&path.to_string()).context("every requested tag is in the library")?;
            tag_ids.push(id.get());
        }
        let linked: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO contact_tags (contact_id, tag_id, added_at)
             SELECT $1, tag_id, now() FROM UNNEST($2::bigint[]) AS t (tag_id)
             ON CONFLICT DO NOTHING RETURNING tag_id",
        )
        .bind(contact.get())
        .bind(&tag_ids)
        .fetch_all(&mut *tx)
        .await
        .context("linking tags")?;
        let actor = actor.to_string();
        let activities = linked_in_request_order(paths, &tag_ids, &linked, contact, "tag_added", &actor);
        if !activities.is_empty() {
            insert_activities(&mut tx, workspace, activities).await?;
            touch_contact(&mut tx, contact).await?;
        }
        commit(tx).await
    }

    /// Unlinks the tags; unknown paths and tags the contact lacks are skipped. Each removed link is a
    /// `tag_removed` activity and any change touches the contact.
    pub(crate) async fn remove_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        paths: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        lock_workspace(&mut tx, workspace, WorkspaceLock::Contacts).await?;
        check_contact_exists(&mut tx, workspace, contact).await?;
        let library = TagLibrary::load(&mut tx, workspace, paths).await?;
        let mut known_paths = Vec::with_capacity(paths.len());
        let mut tag_ids = Vec::with_capacity(paths.len());
        for path in paths {
            let text = path.to_string();
            if let Some((id, _)) = library.check_manual(&text, "tags")? {
                known_paths.push(path.clone());
                tag_ids.push(id.get());
            }
        }
        let unlinked: Vec<i64> =
            sqlx::query_scalar("DELETE FROM contact_tags WHERE contact_id = $1 AND tag_id = ANY($2) RETURNING tag_id")
                .bind(contact.get())
                .bind(&tag_ids)
                .fetch_all(&mut *tx)
                .await
                .context("unlinking tags")?;
        let actor = actor.to_string();
        let activities = linked_in_request_order(&known_paths, &tag_ids, &unlinked, contact, "tag_removed", &actor);
        if !activities.is_empty() {
            insert_activities(&mut tx, workspace, activities).await?;
            touch_contact(&mut tx, contact).await?;
        }
        commit(tx).await
    }
}

/// One activity per tag whose link changed, in the order of the request; a path repeated in the request counts
/// once.
fn linked_in_request_order(
    paths: &[TagPath],
    tag_ids: &[i64],
    changed: &[i64],
    contact: ContactId,
    kind: &'static str,
    actor: &str,
) -> Vec<Activity> {
    let mut pending: Vec<i64> = changed.to_vec();
    let mut activities = Vec::with_capacity(changed.len());
    for (path, tag_id) in paths.iter().zip(tag_ids) {
        if let Some(position) = pending.iter().position(|id| id == tag_id) {
            pending.swap_remove(position);
            let data = json!({ "tag": path.to_string(), "actor": actor });
            activities.push(Activity { contact_id: contact.get(), kind, actor: actor.to_owned(), data });
        }
    }
    activities
}

pub(crate) fn dynamic_tag_error(field: &str, path: &str) -> StoreError {
    StoreError::invalid("dynamic_tag", field, format!("{path} is a dynamic tag, applied by its rule only"))
}

/// The part of a workspace's tag library that one call works with: the tags at the requested paths and every
/// group above them, read with one query, plus the tags the call creates.
pub(crate) struct TagLibrary {
    known: HashMap<String, (TagId, TagKind)>,
}

impl TagLibrary {
    pub(crate) async fn load(
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        paths: &[TagPath],
    ) -> StoreResult<TagLibrary> {
        let mut wanted: Vec<String> =
            paths.iter().flat_map(TagPath::prefixes).map(|prefix| prefix.to_string()).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut known = HashMap::with_capacity(wanted.len());
        if wanted.is_empty() {
            return Ok(TagLibrary { known });
        }
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, path, kind FROM tags WHERE workspace_id = $1 AND path = ANY($2)")
                .bind(workspace.get())
                .bind(&wanted)
                .fetch_all(connection)
                .await
                .context("looking up tags")?;
        for (id, path, kind) in rows {
            known.insert(path, (TagId::new(id), stored_tag_kind(&kind)?));
        }
        Ok(TagLibrary { known })
    }

    pub(crate) fn find(&self, path: &str) -> Option<(TagId, TagKind)> {
        self.known.get(path).copied()
    }

    /// The tag at `path` if it exists; invalid `dynamic_tag` (on `field`) when it is dynamic, since only its rule
    /// may apply or remove it.
    pub(crate) fn check_manual(&self, path: &str, field: &str) -> StoreResult<Option<(TagId, TagKind)>> {
        match self.find(path) {
            Some((_, TagKind::Dynamic)) => Err(dynamic_tag_error(field, path)),
            found => Ok(found),
        }
    }

    /// Creates the tags at `paths` that do not exist, with the missing groups above them as manual tags; the tags
    /// at `paths` themselves get `kind`. Ids are assigned in the order the paths and their levels are given. The
    /// caller holds the tag library lock and loaded the library with (at least) these paths.
    pub(crate) async fn create_missing<'a>(
        &mut self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        paths: impl IntoIterator<Item = &'a TagPath>,
        kind: TagKind,
    ) -> StoreResult<()> {
        let mut missing: Vec<(TagPath, TagKind)> = Vec::new();
        for path in paths {
            let prefixes = path.prefixes();
            let levels = prefixes.len();
            for (level, prefix) in prefixes.into_iter().enumerate() {
                let text = prefix.to_string();
                if self.known.contains_key(&text) || missing.iter().any(|(scheduled, _)| *scheduled == prefix) {
                    continue;
                }
                missing.push((prefix, if level + 1 == levels { kind } else { TagKind::Manual }));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let ids = allocate_ids(connection, "tags_id_seq", missing.len()).await?;
        let mut parent_ids: Vec<Option<i64>> = Vec::with_capacity(missing.len());
        let mut names = Vec::with_capacity(missing.len());
        let mut texts = Vec::with_capacity(missing.len());
        let mut kinds = Vec::with_capacity(missing.len());
        for ((path, tag_kind), id) in missing.iter().zip(&ids) {
            let parent = match path.parent() {
                Some(parent) => {
                    let (parent_id, _) = self.find(&parent.to_string()).context("a tag's group is created first")?;
                    Some(parent_id.get())
                }
                None => None,
            };
            let text = path.to_string();
            self.known.insert(text.clone(), (TagId::new(*id), *tag_kind));
            parent_ids.push(parent);
            names.push(path.name().to_owned());
            texts.push(text);
            kinds.push(tag_kind.as_str());
        }
        sqlx::query(
            "INSERT INTO tags (id, workspace_id, parent_id, name, path, kind, created_at)
             SELECT id, $1, parent_id, name, path, kind, now()
             FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                  AS t (id, parent_id, name, path, kind)",
        )
        .bind(workspace.get())
        .bind(&ids)
        .bind(&parent_ids)
        .bind(&names)
        .bind(&texts)
        .bind(&kinds)
        .execute(connection)
        .await
        .context("creating tags")?;
        Ok(())
    }
}

/// Takes `count` ids from `sequence`, in order, so that rows can be linked before they are inserted.
pub(crate) async fn allocate_ids(connection: &mut PgConnection, sequence: &str, count: usize) -> StoreResult<Vec<i64>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let count = i64::try_from(count).context("too many ids at once")?;
    let ids = sqlx::query_scalar("SELECT nextval($1::regclass) FROM generate_series(1, $2)")
        .bind(sequence)
        .bind(count)
        .fetch_all(connection)
        .await
        .with_context(|| format!("allocating ids from {sequence}"))?;
    Ok(ids)
}

pub(crate) async fn get_tag(connection: &mut PgConnection, workspace: WorkspaceId, id: TagId) -> StoreResult<Tag> {
    let sql = format!("SELECT {TAG_COLUMNS} FROM tags t WHERE t.workspace_id = $1 AND t.id = $2");
    let row: Option<TagRow> = sqlx::query_as(&sql)
        .bind(workspace.get())
        .bind(id.get())
        .fetch_optional(connection)
        .await
        .context("reading a tag")?;
    Ok(row.ok_or(StoreError::not_found("tag"))?.into_record()?)
}

/// The depth of the deepest tag in the subtree rooted at `path`.
async fn subtree_depth(connection: &mut PgConnection, workspace: WorkspaceId, path: &str) -> StoreResult<usize> {
    let slashes: i32 = sqlx::query_scalar(
        "SELECT coalesce(max(length(path) - length(replace(path, '/', ''))), 0) FROM tags
         WHERE workspace_id = $1 AND (path = $2 OR starts_with(path, $2 || '/'))",
    )
    .bind(workspace.get())
    .bind(path)
    .fetch_one(connection)
    .await
    .context("measuring a tag subtree")?;
    Ok(usize::try_from(slashes).unwrap_or(0) + 1)
}

fn depth(path: &str) -> usize {
    path.split('/').count()
}

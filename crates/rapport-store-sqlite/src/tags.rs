//! The tag library and the tags on contacts. A tag's `path` is stored whole (`行业/制造业`) so that lookups by path
//! are one index probe; renaming or moving a tag rewrites the paths of its subtree in one statement.

use std::collections::HashMap;

use anyhow::Context;
use rapport_domain::{ContactId, MAX_TAG_DEPTH, Patch, TagId, TagKind, TagPath, WorkspaceId};
use rapport_store::{Actor, NewTag, StoreError, StoreResult, Tag, TagUpdate};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::json;

use crate::contacts::{ChangeContext, check_contact_exists, touch_contact};
use crate::history::record_activity;
use crate::sql::{now_micros, parsed_at, time_at};

const TAG_COLUMNS: &str = "id, parent_id, name, path, kind, created_at,
    (SELECT count(*) FROM contact_tags WHERE contact_tags.tag_id = tags.id)";

pub(crate) fn list_tags(conn: &Connection, workspace: WorkspaceId) -> StoreResult<Vec<Tag>> {
    let sql = format!("SELECT {TAG_COLUMNS} FROM tags WHERE workspace_id = ?1 ORDER BY path");
    let mut statement = conn.prepare_cached(&sql).context("preparing list_tags")?;
    let rows = statement.query_map([workspace.get()], tag_from_row).context("listing tags")?;
    Ok(rows.collect::<rusqlite::Result<_>>().context("reading tags")?)
}

pub(crate) fn get_tag(conn: &Connection, workspace: WorkspaceId, id: TagId) -> StoreResult<Tag> {
    let sql = format!("SELECT {TAG_COLUMNS} FROM tags WHERE workspace_id = ?1 AND id = ?2");
    let mut statement = conn.prepare_cached(&sql).context("preparing get_tag")?;
    let tag =
        statement.query_row(params![workspace.get(), id.get()], tag_from_row).optional().context("reading a tag")?;
    tag.ok_or(StoreError::not_found("tag"))
}

pub(crate) fn create_tag(tx: &Transaction<'_>, workspace: WorkspaceId, tag: NewTag) -> StoreResult<Tag> {
    let path = tag.path.to_string();
    if find_by_path(tx, workspace, &path)?.is_some() {
        return Err(StoreError::conflict("tag_exists", format!("the tag {path} exists already")));
    }
    let (id, _) = insert_with_groups(tx, workspace, &tag.path, tag.kind, now_micros())?;
    get_tag(tx, workspace, id)
}

pub(crate) fn update_tag(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    id: TagId,
    update: TagUpdate,
) -> StoreResult<Tag> {
    let tag = get_tag(tx, workspace, id)?;
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
        Patch::Absent => tag.parent_id.map(|parent| get_tag(tx, workspace, parent)).transpose()?,
        Patch::Clear => None,
        Patch::Set(parent_id) => {
            let parent = match get_tag(tx, workspace, parent_id) {
                Err(StoreError::NotFound { .. }) => {
                    return Err(StoreError::invalid(
                        "unknown_tag",
                        "parent_id",
                        format!("there is no tag {parent_id}"),
                    ));
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
    let height = subtree_depth(tx, workspace, &tag.path)? - depth(&tag.path);
    if depth(&new_path) + height > MAX_TAG_DEPTH {
        let message = format!("the tag and its subtree would go past {MAX_TAG_DEPTH} levels");
        return Err(StoreError::invalid("tag_too_deep", "parent_id", message));
    }
    if find_by_path(tx, workspace, &new_path)?.is_some() {
        return Err(StoreError::conflict("tag_exists", format!("the tag {new_path} exists already")));
    }
    tx.execute(
        "UPDATE tags SET
             name = CASE WHEN id = ?2 THEN ?3 ELSE name END,
             parent_id = CASE WHEN id = ?2 THEN ?4 ELSE parent_id END,
             path = ?5 || substr(path, length(?6) + 1)
         WHERE workspace_id = ?1 AND (path = ?6 OR substr(path, 1, length(?6) + 1) = ?6 || '/')",
        params![workspace.get(), id.get(), name, parent.map(|parent| parent.id.get()), new_path, tag.path],
    )
    .context("moving a tag subtree")?;
    get_tag(tx, workspace, id)
}

pub(crate) fn delete_tag(tx: &Transaction<'_>, workspace: WorkspaceId, id: TagId) -> StoreResult<()> {
    let tag = get_tag(tx, workspace, id)?;
    let has_children: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM tags WHERE parent_id = ?1)", [id.get()], |row| row.get(0))
        .context("checking for child tags")?;
    if has_children {
        return Err(StoreError::conflict("tag_has_children", format!("the tag {} has tags below it", tag.path)));
    }
    if tag.contact_count > 0 {
        return Err(StoreError::conflict(
            "tag_in_use",
            format!("{} contacts carry the tag {}", tag.contact_count, tag.path),
        ));
    }
    // A dynamic tag's definition goes with it.
    tx.execute("DELETE FROM segments WHERE tag_id = ?1", [id.get()]).context("deleting a tag's definition")?;
    tx.execute("DELETE FROM tags WHERE id = ?1", [id.get()]).context("deleting a tag")?;
    Ok(())
}

/// Tags looked up or created during one call, so that a batch touching the same tags probes the library once.
#[derive(Default)]
pub(crate) struct TagResolver {
    known: HashMap<String, (TagId, TagKind)>,
}

impl TagResolver {
    /// The tag at `path`, if it exists.
    pub(crate) fn find(
        &mut self,
        conn: &Connection,
        workspace: WorkspaceId,
        path: &str,
    ) -> StoreResult<Option<(TagId, TagKind)>> {
        if let Some(found) = self.known.get(path) {
            return Ok(Some(*found));
        }
        let found = find_by_path(conn, workspace, path)?;
        if let Some(found) = found {
            self.known.insert(path.to_owned(), found);
        }
        Ok(found)
    }

    /// The manual tag at `path`, created with its groups when missing. Invalid `dynamic_tag` (on `field`) when the
    /// path names a dynamic tag, which only its rule may apply.
    pub(crate) fn manual(
        &mut self,
        tx: &Transaction<'_>,
        workspace: WorkspaceId,
        path: &TagPath,
        field: &str,
        now: i64,
    ) -> StoreResult<TagId> {
        let text = path.to_string();
        let (id, kind) = match self.find(tx, workspace, &text)? {
            Some(found) => found,
            None => {
                let created = insert_with_groups(tx, workspace, path, TagKind::Manual, now)?;
                self.known.insert(text.clone(), created);
                created
            }
        };
        if kind == TagKind::Dynamic {
            return Err(dynamic_tag_error(field, &text));
        }
        Ok(id)
    }
}

/// Links manual tags to a contact, recording a `tag_added` activity for each link that is new. Returns whether
/// anything changed.
pub(crate) fn link_tags(
    tx: &Transaction<'_>,
    context: &ChangeContext,
    contact: ContactId,
    paths: &[TagPath],
    field: &str,
    resolver: &mut TagResolver,
) -> StoreResult<bool> {
    let (workspace, actor, now) = (context.workspace, context.actor.as_str(), context.now);
    let mut changed = false;
    for path in paths {
        let tag = resolver.manual(tx, workspace, path, field, now)?;
        let mut link = tx
            .prepare_cached("INSERT OR IGNORE INTO contact_tags (contact_id, tag_id, added_at) VALUES (?1, ?2, ?3)")
            .context("preparing a tag link")?;
        if link.execute(params![contact.get(), tag.get(), now]).context("linking a tag")? == 1 {
            let data = json!({ "tag": path.to_string(), "actor": actor });
            record_activity(tx, workspace, contact, "tag_added", now, actor, &data)?;
            changed = true;
        }
    }
    Ok(changed)
}

pub(crate) fn add_contact_tags(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    contact: ContactId,
    paths: &[TagPath],
    actor: Actor,
) -> StoreResult<()> {
    check_contact_exists(tx, workspace, contact)?;
    let context = ChangeContext::new(workspace, actor);
    if link_tags(tx, &context, contact, paths, "tags", &mut TagResolver::default())? {
        touch_contact(tx, contact, context.now)?;
    }
    Ok(())
}

pub(crate) fn remove_contact_tags(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    contact: ContactId,
    paths: &[TagPath],
    actor: Actor,
) -> StoreResult<()> {
    check_contact_exists(tx, workspace, contact)?;
    let now = now_micros();
    let actor = actor.to_string();
    let mut changed = false;
    for path in paths {
        let text = path.to_string();
        let Some((tag, kind)) = find_by_path(tx, workspace, &text)? else {
            continue;
        };
        if kind == TagKind::Dynamic {
            return Err(dynamic_tag_error("tags", &text));
        }
        let mut unlink = tx
            .prepare_cached("DELETE FROM contact_tags WHERE contact_id = ?1 AND tag_id = ?2")
            .context("preparing a tag unlink")?;
        if unlink.execute(params![contact.get(), tag.get()]).context("unlinking a tag")? == 1 {
            let data = json!({ "tag": text, "actor": actor });
            record_activity(tx, workspace, contact, "tag_removed", now, &actor, &data)?;
            changed = true;
        }
    }
    if changed {
        touch_contact(tx, contact, now)?;
    }
    Ok(())
}

fn dynamic_tag_error(field: &str, path: &str) -> StoreError {
    StoreError::invalid("dynamic_tag", field, format!("{path} is a dynamic tag, applied by its rule only"))
}

fn find_by_path(conn: &Connection, workspace: WorkspaceId, path: &str) -> StoreResult<Option<(TagId, TagKind)>> {
    let mut statement = conn
        .prepare_cached("SELECT id, kind FROM tags WHERE workspace_id = ?1 AND path = ?2")
        .context("preparing a tag lookup")?;
    let found = statement
        .query_row(params![workspace.get(), path], |row| {
            Ok((TagId::new(row.get(0)?), parsed_at(row, 1, TagKind::parse)?))
        })
        .optional()
        .context("looking up a tag")?;
    Ok(found)
}

/// Inserts the tag at `path`, creating the missing groups above it as manual tags.
fn insert_with_groups(
    tx: &Transaction<'_>,
    workspace: WorkspaceId,
    path: &TagPath,
    kind: TagKind,
    now: i64,
) -> StoreResult<(TagId, TagKind)> {
    let mut parent: Option<TagId> = None;
    let mut last = None;
    let prefixes = path.prefixes();
    for (level, prefix) in prefixes.iter().enumerate() {
        let text = prefix.to_string();
        let level_kind = if level + 1 == prefixes.len() { kind } else { TagKind::Manual };
        let found = match find_by_path(tx, workspace, &text)? {
            Some(found) => found,
            None => {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO tags (workspace_id, parent_id, name, path, kind, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .context("preparing a tag insert")?;
                insert
                    .execute(params![
                        workspace.get(),
                        parent.map(TagId::get),
                        prefix.name(),
                        text,
                        level_kind.as_str(),
                        now
                    ])
                    .context("inserting a tag")?;
                (TagId::new(tx.last_insert_rowid()), level_kind)
            }
        };
        parent = Some(found.0);
        last = Some(found);
    }
    last.context("a tag path has at least one level").map_err(StoreError::from)
}

/// The depth of the deepest tag in the subtree rooted at `path`.
fn subtree_depth(conn: &Connection, workspace: WorkspaceId, path: &str) -> StoreResult<usize> {
    let slashes: i64 = conn
        .query_row(
            "SELECT coalesce(max(length(path) - length(replace(path, '/', ''))), 0) FROM tags
             WHERE workspace_id = ?1 AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
            params![workspace.get(), path],
            |row| row.get(0),
        )
        .context("measuring a tag subtree")?;
    Ok(usize::try_from(slashes).unwrap_or(0) + 1)
}

fn depth(path: &str) -> usize {
    path.split('/').count()
}

fn tag_from_row(row: &Row<'_>) -> rusqlite::Result<Tag> {
    Ok(Tag {
        id: TagId::new(row.get(0)?),
        parent_id: row.get::<_, Option<i64>>(1)?.map(TagId::new),
        name: row.get(2)?,
        path: row.get(3)?,
        kind: parsed_at(row, 4, TagKind::parse)?,
        created_at: time_at(row, 5)?,
        contact_count: row.get::<_, i64>(6)?.try_into().unwrap_or(0),
    })
}

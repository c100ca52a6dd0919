//! The in-memory picture of the contacts one call touches: the items are applied to it in order, and then it is
//! written with one statement per table.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use rapport_domain::{ContactChanges, ContactId, Identity, Patch, Slug, TagKind, TagPath, WorkspaceId};
use rapport_store::{StoreError, StoreResult, UpsertOutcome};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::rows::{ContactColumns, ContactState, IdentityColumns, insert_contacts, update_contacts};
use super::{References, Target};
use crate::history::{Activity, insert_activities};
use crate::tags::{TagLibrary, allocate_ids};

/// One contact the call touches.
struct Planned {
    state: ContactState,
    /// Inserted by this call.
    new: bool,
    /// An existing row that needs writing back.
    changed: bool,
    /// The paths of the call's tags that the contact carries.
    tags: HashSet<String>,
}

/// The in-memory picture of the contacts one call touches, and what it will write. Contacts are addressed by slot
/// (their index in `contacts`) because new ones have no id until the plan is written.
pub(super) struct Plan {
    actor: String,
    batch: bool,
    contacts: Vec<Planned>,
    slot_by_id: HashMap<i64, usize>,
    identity_owners: HashMap<Identity, usize>,
    new_identities: Vec<(Identity, usize)>,
    new_links: Vec<(usize, TagPath)>,
    activities: Vec<(usize, &'static str, Value)>,
    outcomes: Vec<(usize, bool)>,
}

impl Plan {
    pub(super) fn new(actor: &str, batch: bool, rows: Vec<ContactState>, owners: HashMap<Identity, i64>) -> Plan {
        let mut slot_by_id = HashMap::with_capacity(rows.len());
        let contacts: Vec<Planned> = rows
            .into_iter()
            .enumerate()
            .map(|(slot, state)| {
                slot_by_id.insert(state.id, slot);
                Planned { state, new: false, changed: false, tags: HashSet::new() }
            })
            .collect();
        let identity_owners = owners
            .into_iter()
            .filter_map(|(identity, owner)| slot_by_id.get(&owner).map(|slot| (identity, *slot)))
            .collect();
        Plan {
            actor: actor.to_owned(),
            batch,
            contacts,
            slot_by_id,
            identity_owners,
            new_identities: Vec::new(),
            new_links: Vec::new(),
            activities: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Reads which of the call's tags the loaded contacts already carry.
    pub(super) async fn load_tag_links(
        &mut self,
        connection: &mut PgConnection,
        paths: &[TagPath],
        library: &TagLibrary,
    ) -> StoreResult<()> {
        let mut tag_paths: HashMap<i64, String> = HashMap::new();
        for path in paths {
            let text = path.to_string();
            if let Some((id, _)) = library.find(&text) {
                tag_paths.insert(id.get(), text);
            }
        }
        if tag_paths.is_empty() || self.contacts.is_empty() {
            return Ok(());
        }
        let contact_ids: Vec<i64> = self.slot_by_id.keys().copied().collect();
        let tag_ids: Vec<i64> = tag_paths.keys().copied().collect();
        let links: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT wanted.id, ct.tag_id FROM UNNEST($1::bigint[]) AS wanted (id)
             CROSS JOIN LATERAL (
                 SELECT tag_id FROM contact_tags WHERE contact_id = wanted.id AND tag_id = ANY($2) OFFSET 0
             ) AS ct",
        )
        .bind(&contact_ids)
        .bind(&tag_ids)
        .fetch_all(connection)
        .await
        .context("reading the contacts' tags")?;
        for (contact, tag) in links {
            if let (Some(slot), Some(path)) = (self.slot_by_id.get(&contact), tag_paths.get(&tag)) {
                self.contacts[*slot].tags.insert(path.clone());
            }
        }
        Ok(())
    }

    fn field(&self, index: usize, name: &str) -> String {
        if self.batch { format!("contacts[{index}].{name}") } else { name.to_owned() }
    }

    pub(super) fn apply(
        &mut self,
        index: usize,
        target: Target,
        mut changes: ContactChanges,
        references: &References,
        library: &TagLibrary,
    ) -> StoreResult<()> {
        let field = |name: &str| self.field(index, name);
        let identities = changes.match_identities();
        let matched = match target {
            Target::Match => {
                let mut matched = None;
                for identity in &identities {
                    let Some(&owner) = self.identity_owners.get(identity) else {
                        continue;
                    };
                    match matched {
                        None => matched = Some(owner),
                        Some(selected) if selected != owner => {
                            return Err(identity_conflict(identity, &field));
                        }
                        Some(_) => {}
                    }
                }
                matched
            }
            Target::Contact(id) => {
                let slot = *self.slot_by_id.get(&id.get()).ok_or(StoreError::not_found("contact"))?;
                for identity in &identities {
                    if self.identity_owners.get(identity).is_some_and(|owner| *owner != slot) {
                        return Err(identity_conflict(identity, &field));
                    }
                }
                Some(slot)
            }
        };
        references.check(&changes, &field)?;
        let tags_field = field("tags");

        let slot = match matched {
            Some(slot) => {
                self.record_list_changes(slot, &changes);
                let planned = &mut self.contacts[slot];
                planned.state.apply_columns(&mut changes);
                if let Some(stage) = &changes.stage {
                    planned.state.stage = stage.as_str().to_owned();
                }
                planned.state.status =
                    changes.status.clone().map(Slug::into_string).apply_to(planned.state.status.take());
                planned.changed |= !planned.new;
                slot
            }
            None => {
                let stage = match &changes.stage {
                    Some(stage) => stage.as_str(),
                    None => references.first_stage()?,
                };
                let mut state = ContactState::new(stage.to_owned());
                state.apply_columns(&mut changes);
                state.status = changes.status.clone().map(Slug::into_string).apply_to(None);
                self.contacts.push(Planned { state, new: true, changed: false, tags: HashSet::new() });
                self.contacts.len() - 1
            }
        };
        for identity in identities {
            if !self.identity_owners.contains_key(&identity) {
                self.identity_owners.insert(identity.clone(), slot);
                self.new_identities.push((identity, slot));
            }
        }
        for path in changes.add_tags {
            let text = path.to_string();
            library.check_manual(&text, &tags_field)?;
            if self.contacts[slot].tags.insert(text.clone()) {
                let data = json!({ "tag": text, "actor": self.actor });
                self.activities.push((slot, "tag_added", data));
                self.new_links.push((slot, path));
            }
        }
        self.outcomes.push((slot, matched.is_none()));
        Ok(())
    }

    /// Records `stage_changed` and `status_changed` when the changes move an existing contact.
    fn record_list_changes(&mut self, slot: usize, changes: &ContactChanges) {
        let state = &self.contacts[slot].state;
        let reason = changes.reason.as_deref();
        let mut recorded = Vec::new();
        if let Some(stage) = changes.stage.as_ref().filter(|stage| stage.as_str() != state.stage) {
            let data = json!({ "from": state.stage, "to": stage.as_str(), "actor": self.actor, "reason": reason });
            recorded.push((slot, "stage_changed", data));
        }
        let new_status = match &changes.status {
            Patch::Absent => None,
            Patch::Clear => Some(None),
            Patch::Set(status) => Some(Some(status.as_str())),
        };
        if let Some(new_status) = new_status.filter(|new_status| *new_status != state.status.as_deref()) {
            let data = json!({ "from": state.status, "to": new_status, "actor": self.actor, "reason": reason });
            recorded.push((slot, "status_changed", data));
        }
        self.activities.extend(recorded);
    }

    pub(super) async fn write(
        mut self,
        connection: &mut PgConnection,
        workspace: WorkspaceId,
        library: &mut TagLibrary,
    ) -> StoreResult<Vec<UpsertOutcome>> {
        let new_slots: Vec<usize> = (0..self.contacts.len()).filter(|slot| self.contacts[*slot].new).collect();
        let ids = allocate_ids(connection, "contacts_id_seq", new_slots.len()).await?;
        for (slot, id) in new_slots.iter().zip(ids) {
            self.contacts[*slot].state.id = id;
        }

        let mut inserted = ContactColumns::default();
        let mut updated = ContactColumns::default();
        for planned in &self.contacts {
            if planned.new {
                inserted.push(&planned.state);
            } else if planned.changed {
                updated.push(&planned.state);
            }
        }
        if !inserted.id.is_empty() {
            insert_contacts(connection, workspace, &inserted).await?;
        }
        if !updated.id.is_empty() {
            update_contacts(connection, workspace, &updated).await?;
        }

        let mut identities = IdentityColumns::default();
        for (identity, slot) in &self.new_identities {
            identities.push(identity, self.contacts[*slot].state.id);
        }
        identities.insert(connection, workspace).await?;

        if !self.new_links.is_empty() {
            library
                .create_missing(connection, workspace, self.new_links.iter().map(|(_, path)| path), TagKind::Manual)
                .await?;
            let mut contact_ids = Vec::with_capacity(self.new_links.len());
            let mut tag_ids = Vec::with_capacity(self.new_links.len());
            for (slot, path) in &self.new_links {
                let (tag, _) = library.find(&path.to_string()).context("every linked tag is in the library")?;
                contact_ids.push(self.contacts[*slot].state.id);
                tag_ids.push(tag.get());
            }
            sqlx::query(
                "INSERT INTO contact_tags (contact_id, tag_id, added_at)
                 SELECT contact_id, tag_id, now() FROM UNNEST($1::bigint[], $2::bigint[]) AS l (contact_id, tag_id)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&contact_ids)
            .bind(&tag_ids)
            .execute(&mut *connection)
            .await
            .context("linking tags")?;
        }

        let activities: Vec<Activity> = self
            .activities
            .into_iter()
            .map(|(slot, kind, data)| Activity {
                contact_id: self.contacts[slot].state.id,
                kind,
                actor: self.actor.clone(),
                data,
            })
            .collect();
        insert_activities(connection, workspace, activities).await?;

        Ok(self
            .outcomes
            .into_iter()
            .map(|(slot, created)| UpsertOutcome { id: ContactId::new(self.contacts[slot].state.id), created })
            .collect())
    }
}

fn identity_conflict(identity: &Identity, field: &dyn Fn(&str) -> String) -> StoreError {
    let message = format!("{} {} belongs to another contact", field(identity.kind().as_str()), identity.value());
    StoreError::conflict("identity_conflict", message)
}

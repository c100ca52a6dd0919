//! The tracking API's writes: one call applies a group commit's messages in order, resolving each visitor to a
//! contact, merging contacts that turn out to be one person, and storing events through `events.rs`.
//!
//! This is the capture hot path, and events are nearly all of it, so events are applied to an in-memory picture
//! and written together at the end: every identity the call names is resolved with one query up front, contacts
//! for new visitors are created in bulk, and all events go in with one insert. Other messages (identify, group,
//! alias) are rare; each is written as it comes, after the pending contacts, inside a savepoint, so that a message
//! rejected half-way (an unknown stage, a taken domain) changes nothing while the rest of the call applies. The
//! in-memory picture records what such a message changed and takes it back on a rejection.
//!
//! Locks: a call that may merge (any message other than an event, or a visitor with both a user id and an
//! anonymous id, whose ids may belong to two contacts) takes the erasure lock exclusively and the contact lock up
//! front. Other calls hold the erasure lock shared, like `insert_events`, and take the contact lock only when they
//! create contacts for new visitors, resolving those visitors again once they hold it.
//!
//! Changes made by tracking are recorded with the actor `source:<source id>`.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use rapport_domain::{ContactChanges, ContactId, FormId, Identity, IdentityKind, SourceId, WorkspaceId};
use rapport_store::{
    CompanyChanges, FORM_SUBMITTED_EVENT, MergeReason, NewConsent, StoreError, StoreResult, TrackingMessage,
    TrackingOp, TrackingOutcome, Visitor,
};
use sqlx::{PgConnection, PgPool};

use crate::batch::{Target, resolve_identities, write_contacts};
use crate::companies::group_company;
use crate::connection::{LockMode, PostgresStore, WorkspaceLock, commit, lock_workspace};
use crate::events::{
    EventIds, EventPayload, EventPlacement, EventWrite, PreparedEvents, SharedIds, stored_message_hashes, write_events,
};
use crate::forms::{count_submission, record_consents};
use crate::merge::{MERGE_LOCKS, merge_into, stage_order};
use crate::message_ids::message_hash;
use crate::sql::stored_identity_kind;
use crate::tags::allocate_ids;

impl PostgresStore {
    pub(crate) async fn ingest_tracking(
        &self,
        workspace: WorkspaceId,
        messages: Vec<TrackingMessage>,
    ) -> StoreResult<Vec<TrackingOutcome>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let may_merge = messages.iter().any(|message| {
            !matches!(message.op, TrackingOp::Event { .. })
                || (message.visitor.user_id.is_some() && message.visitor.anonymous_id.is_some())
        });
        let mut tx = if may_merge {
            self.begin_locked(workspace, &MERGE_LOCKS).await?
        } else {
            self.begin_locked(workspace, &[(WorkspaceLock::Erasure, LockMode::Shared)]).await?
        };
        let outcomes = Ingest::run(&mut tx, workspace, messages, may_merge, &self.pool, &self.shared_ids).await?;
        commit(tx).await?;
        Ok(outcomes)
    }
}

/// A visitor's ids parsed into identities; at least one is present, except for a form submission, which identifies
/// by its answers.
struct VisitorIds {
    user_id: Option<Identity>,
    anonymous_id: Option<Identity>,
}

impl VisitorIds {
    fn parse(visitor: &Visitor, anonymous_allowed: bool) -> Result<VisitorIds, String> {
        let parse = |kind: IdentityKind, raw: &Option<String>, name: &str| {
            raw.as_deref().map(|raw| Identity::parse(kind, raw)).transpose().map_err(|error| format!("{name} {error}"))
        };
        let ids = VisitorIds {
            user_id: parse(IdentityKind::UserId, &visitor.user_id, "userId")?,
            anonymous_id: parse(IdentityKind::AnonymousId, &visitor.anonymous_id, "anonymousId")?,
        };
        if ids.user_id.is_none() && ids.anonymous_id.is_none() && !anonymous_allowed {
            return Err("a message needs a userId or an anonymousId".to_owned());
        }
        Ok(ids)
    }

    fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.user_id.iter().chain(&self.anonymous_id)
    }
}

/// What a message other than an event changed in the in-memory picture, taken back when it is rejected.
enum Undo {
    Owner(Identity, Option<i64>),
    Redirect(i64),
}

/// Contact writes that wait for the next flush: they are written in bulk before anything reads the database.
#[derive(Default)]
struct Pending {
    /// New contacts for visitors seen for the first time: id and `user_id` column.
    contacts: Vec<(i64, Option<String>)>,
    identities: Vec<(Identity, i64)>,
    /// Contacts that gained a visitor identity: their `updated_at` moves, and a user id fills an empty `user_id`.
    touched: HashMap<i64, Option<String>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.identities.is_empty() && self.touched.is_empty()
    }
}

/// One call's state.
struct Ingest<'c> {
    connection: &'c mut PgConnection,
    workspace: WorkspaceId,
    /// Stage keys in list order; new contacts start in the first. Read when first needed: calls that only store
    /// events of known visitors never need them.
    stages: Option<Vec<String>>,
    /// The owner of every identity the call names, kept current as the call changes them. An owner that was
    /// merged away leads to its survivor through `redirects`.
    owners: HashMap<Identity, i64>,
    redirects: HashMap<i64, i64>,
    pending: Pending,
    /// Contact ids taken from the sequence up front for new visitors.
    spare_ids: Vec<i64>,
    /// Events to write at the end, with the index of their message.
    events: Vec<(usize, EventPlacement)>,
    /// Message ids of applied messages other than events, with their contact.
    claims: Vec<(i64, i64)>,
    /// Message hashes this call has applied.
    claimed: HashSet<i64>,
    /// Set while a message other than an event is being applied.
    undo: Option<Vec<Undo>>,
}

impl<'c> Ingest<'c> {
    async fn run(
        connection: &'c mut PgConnection,
        workspace: WorkspaceId,
        messages: Vec<TrackingMessage>,
        contacts_locked: bool,
        pool: &PgPool,
        shared_ids: &SharedIds,
    ) -> StoreResult<Vec<TrackingOutcome>> {
        // Events are split, and their documents serialised and hashed, on a blocking thread while the database
        // resolves the call's identities and message ids.
        let mut payloads = Vec::new();
        let mut work = Vec::with_capacity(messages.len());
        for TrackingMessage { message_id, source, visitor, op } in messages {
            let change = match op {
                TrackingOp::Event { event_type, properties, context, occurred_at, received_at } => {
                    payloads.push(EventPayload {
                        event_type,
                        properties,
                        context,
                        occurred_at,
                        received_at,
                        source_name: None,
                    });
                    Change::Event(payloads.len() - 1)
                }
                TrackingOp::Identify { changes } => Change::Identify(Box::new(changes)),
                TrackingOp::Group { group_id, company } => Change::Group(group_id, company),
                TrackingOp::Alias { previous_id } => Change::Alias(previous_id),
                TrackingOp::FormSubmission(submission) => {
                    let submission = *submission;
                    payloads.push(EventPayload {
                        event_type: FORM_SUBMITTED_EVENT.to_owned(),
                        properties: submission.properties,
                        context: submission.context,
                        occurred_at: submission.occurred_at,
                        received_at: submission.received_at,
                        source_name: None,
                    });
                    Change::FormSubmission(Box::new(Submission {
                        form_id: submission.form_id,
                        changes: submission.changes,
                        payload: payloads.len() - 1,
                        consents: submission.consents,
                    }))
                }
            };
            let hash = message_hash(workspace, &message_id);
            let anonymous_allowed = matches!(change, Change::FormSubmission(_));
            let visitor = VisitorIds::parse(&visitor, anonymous_allowed);
            work.push(Message { message_id, hash, source, visitor, change });
        }
        let prepared = tokio::task::spawn_blocking(move || PreparedEvents::prepare(payloads));

        // The documents are looked up on a second connection, when one is free at once, while this one resolves the
        // visitors: the look-up reads only, and what it finds cannot go away before this call commits, since erasure
        // and merges wait for the erasure lock that this call holds.
        let documents = async {
            let mut prepared = prepared.await.context("preparing the events")?;
            if let Some(mut side) = pool.try_acquire() {
                prepared.look_up_documents(&mut side, workspace, shared_ids).await?;
            }
            Ok::<_, StoreError>(prepared)
        };
        let visitors = async {
            let mut named: Vec<Identity> = Vec::new();
            for message in &work {
                if let Ok(visitor) = &message.visitor {
                    named.extend(visitor.identities().cloned());
                }
                match &message.change {
                    Change::Identify(changes) => named.extend(changes.match_identities()),
                    Change::FormSubmission(submission) => named.extend(submission.changes.match_identities()),
                    Change::Alias(previous_id) => named.extend(previous_identities(previous_id).into_iter().flatten()),
                    Change::Event(_) | Change::Group(..) => {}
                }
            }
            named.sort_unstable();
            named.dedup();
            let hashes: Vec<i64> = work.iter().map(|message| message.hash).collect();
            let (mut owners, mut stored) = resolve_with_message_ids(connection, workspace, &named, &hashes).await?;

            // Contacts for new visitors need the contact lock; the visitors are resolved again once it is held, since
            // another call may have created them meanwhile.
            let unknown: Vec<Identity> =
                named.iter().filter(|identity| !owners.contains_key(*identity)).cloned().collect();
            if !contacts_locked && !unknown.is_empty() {
                lock_workspace(connection, workspace, WorkspaceLock::Contacts).await?;
                owners.extend(resolve_identities(connection, workspace, &unknown).await?);
            }
            let mut new_visitors: HashSet<Vec<&Identity>> = HashSet::new();
            for message in &work {
                if let Ok(visitor) = &message.visitor {
                    let has_ids = visitor.identities().next().is_some();
                    if has_ids && !visitor.identities().any(|identity| owners.contains_key(identity)) {
                        new_visitors.insert(visitor.identities().collect());
                    }
                }
            }
            let spare_ids = allocate_ids(connection, "contacts_id_seq", new_visitors.len()).await?;
            // Every message id was looked up among those of earlier non-event messages. Among stored events only where
            // a duplicate could otherwise have an effect: an event of a visitor whose ids all lead to one known
            // contact changes nothing but the events table, whose insert finds a stored message id by itself.
            let settled = |message: &Message| match (&message.change, &message.visitor) {
                (Change::Event(_), Ok(visitor)) => {
                    let mut contacts = visitor.identities().map(|identity| owners.get(identity));
                    let first = contacts.next().flatten();
                    first.is_some() && contacts.all(|contact| contact == first)
                }
                _ => false,
            };
            let unsettled: Vec<i64> =
                work.iter().filter(|message| !settled(message)).map(|message| message.hash).collect();
            stored.extend(stored_message_hashes(connection, &unsettled, &vec![true; unsettled.len()]).await?);

            Ok::<_, StoreError>((owners, spare_ids, stored))
        };
        let (visitors, documents) = tokio::join!(visitors, documents);
        let (owners, spare_ids, stored) = visitors?;
        let prepared = documents?;

        let mut ingest = Ingest {
            connection,
            workspace,
            stages: None,
            owners,
            redirects: HashMap::new(),
            pending: Pending::default(),
            spare_ids,
            events: Vec::new(),
            claims: Vec::new(),
            claimed: HashSet::new(),
            undo: None,
        };
        let mut outcomes = Vec::with_capacity(work.len());
        for (index, message) in work.into_iter().enumerate() {
            if stored.contains(&message.hash) || ingest.claimed.contains(&message.hash) {
                outcomes.push(TrackingOutcome::Duplicate);
                continue;
            }
            let outcome = match &message.visitor {
                Ok(_) => ingest.apply(index, message).await?,
                Err(reason) => TrackingOutcome::Rejected { code: "invalid_message", message: reason.clone() },
            };
            outcomes.push(outcome);
        }
        ingest.finish(prepared, &mut outcomes, shared_ids).await?;
        Ok(outcomes)
    }

    async fn apply(&mut self, index: usize, message: Message) -> StoreResult<TrackingOutcome> {
        let Message { message_id, hash, source, visitor, change } = message;
        let visitor = visitor.map_err(|reason| anyhow::anyhow!("an invalid visitor was applied: {reason}"))?;
        let actor = format!("source:{source}");
        if let Change::Event(payload) = change {
            let contact_id = self.visitor_contact(&visitor, &actor).await?;
            self.claimed.insert(hash);
            let placement =
                EventPlacement { payload, contact_id, source_id: Some(source), message_id: Some((hash, message_id)) };
            self.events.push((index, placement));
            return Ok(TrackingOutcome::Applied { contact_id: ContactId::new(contact_id) });
        }
        self.flush().await?;
        savepoint(self.connection, "SAVEPOINT tracking_message").await?;
        self.undo = Some(Vec::new());
        let applied = match change {
            Change::Identify(changes) => self.identify(&visitor, &actor, *changes).await,
            Change::Group(group_id, company) => self.group(&visitor, &actor, &group_id, company).await,
            Change::Alias(previous_id) => self.alias(&visitor, &actor, &previous_id).await,
            Change::FormSubmission(submission) => {
                self.submit_form(index, &visitor, &actor, source, &message_id, *submission).await
            }
            Change::Event(_) => unreachable!("events return above"),
        };
        let applied = match applied {
            Ok(contact) => self.flush().await.map(|()| contact),
            Err(error) => Err(error),
        };
        let rejection = match applied {
            Ok(contact_id) => {
                savepoint(self.connection, "RELEASE SAVEPOINT tracking_message").await?;
                self.undo = None;
                self.claimed.insert(hash);
                self.claims.push((hash, contact_id));
                return Ok(TrackingOutcome::Applied { contact_id: ContactId::new(contact_id) });
            }
            Err(StoreError::Invalid { code, field, message }) => (code, format!("{field}: {message}")),
            Err(StoreError::Conflict { code, message }) => (code, message),
            Err(other) => return Err(other),
        };
        savepoint(self.connection, "ROLLBACK TO SAVEPOINT tracking_message").await?;
        savepoint(self.connection, "RELEASE SAVEPOINT tracking_message").await?;
        self.pending = Pending::default();
        for undo in self.undo.take().unwrap_or_default().into_iter().rev() {
            match undo {
                Undo::Owner(identity, Some(owner)) => {
                    self.owners.insert(identity, owner);
                }
                Undo::Owner(identity, None) => {
                    self.owners.remove(&identity);
                }
                Undo::Redirect(absorbed) => {
                    self.redirects.remove(&absorbed);
                }
            }
        }
        let (code, message) = rejection;
        Ok(TrackingOutcome::Rejected { code, message })
    }

    /// Applies traits to the visitor's contact. When the visitor is unknown, the contact that owns one of the
    /// changes' identities (user id, email, phone, in that order) is theirs; when none does, the changes create
    /// one. Other owners of those identities are merged into it.
    async fn identify(&mut self, visitor: &VisitorIds, actor: &str, changes: ContactChanges) -> StoreResult<i64> {
        let mut contact = self.find_visitor(visitor, actor).await?;
        let mut adopted = false;
        let identities = changes.match_identities();
        for identity in &identities {
            let Some(owner) = self.owner(identity) else { continue };
            match contact {
                None => {
                    contact = Some(owner);
                    adopted = true;
                }
                Some(contact) if contact != owner => self.merge(contact, owner, MergeReason::Identify, actor).await?,
                Some(_) => {}
            }
        }
        self.flush().await?;
        let target = contact.map_or(Target::Match, |contact| Target::Contact(ContactId::new(contact)));
        let outcomes = write_contacts(self.connection, self.workspace, vec![(target, changes)], actor, false).await?;
        let id = outcomes.first().context("an outcome for the identify")?.id.get();
        for identity in identities {
            self.set_owner(identity, id);
        }
        if adopted || contact.is_none() {
            for identity in visitor.identities() {
                if self.owner(identity).is_none() {
                    self.add_identity(identity, id);
                }
            }
        }
        Ok(id)
    }

    /// Counts the submission on its form (rejected when the form is gone), identifies the visitor by the answers,
    /// records the consents, and places the `form_submitted` event, which is written with the call's other events.
    async fn submit_form(
        &mut self,
        index: usize,
        visitor: &VisitorIds,
        actor: &str,
        source: SourceId,
        message_id: &str,
        submission: Submission,
    ) -> StoreResult<i64> {
        let Submission { form_id, changes, payload, consents } = submission;
        count_submission(self.connection, self.workspace, form_id).await?;
        let contact_id = self.identify(visitor, actor, changes).await?;
        self.flush().await?;
        record_consents(self.connection, self.workspace, contact_id, form_id, message_id, actor, &consents).await?;
        // The submission's message id is recorded for the contact with the other messages' ids, so the event
        // carries none (the event insert would otherwise find it taken).
        self.events.push((index, EventPlacement { payload, contact_id, source_id: Some(source), message_id: None }));
        Ok(contact_id)
    }

    async fn group(
        &mut self,
        visitor: &VisitorIds,
        actor: &str,
        group_id: &str,
        company: CompanyChanges,
    ) -> StoreResult<i64> {
        if group_id.trim().is_empty() {
            return Err(StoreError::invalid("invalid_message", "group_id", "a group call needs a group id"));
        }
        let contact = self.visitor_contact(visitor, actor).await?;
        self.flush().await?;
        let company = group_company(self.connection, self.workspace, group_id, company).await?;
        sqlx::query(
            "UPDATE contacts SET company_id = $2, updated_at = now() WHERE id = $1 AND company_id IS DISTINCT FROM $2",
        )
        .bind(contact)
        .bind(company.get())
        .execute(&mut *self.connection)
        .await
        .context("linking a contact to its group")?;
        Ok(contact)
    }

    /// The contact known by `previous_id` (as a user id, else as an anonymous id) and the visitor's are one: the
    /// former is merged into the latter. When only the former exists, it gains the visitor's ids; when neither
    /// does, a contact is created for the visitor. When only the visitor's exists, nothing changes.
    async fn alias(&mut self, visitor: &VisitorIds, actor: &str, previous_id: &str) -> StoreResult<i64> {
        if visitor.user_id.is_none() {
            return Err(StoreError::invalid("invalid_message", "user_id", "an alias call needs a user id"));
        }
        let mut previous = None;
        for identity in previous_identities(previous_id) {
            let identity =
                identity.map_err(|error| StoreError::invalid("invalid_message", "previous_id", error.to_string()))?;
            if let Some(owner) = self.owner(&identity) {
                previous = Some(owner);
                break;
            }
        }
        let current = self.find_visitor(visitor, actor).await?;
        // Resolving the visitor may have merged the previous id's contact away.
        let previous = previous.map(|previous| self.follow(previous));
        Ok(match (current, previous) {
            (Some(current), Some(previous)) if current != previous => {
                self.merge(current, previous, MergeReason::Alias, actor).await?;
                current
            }
            (Some(current), _) => current,
            (None, Some(previous)) => {
                for identity in visitor.identities() {
                    self.add_identity(identity, previous);
                }
                previous
            }
            (None, None) => self.create_visitor(visitor).await?,
        })
    }

    /// The visitor's contact, created when the visitor is new.
    async fn visitor_contact(&mut self, visitor: &VisitorIds, actor: &str) -> StoreResult<i64> {
        match self.find_visitor(visitor, actor).await? {
            Some(id) => Ok(id),
            None => self.create_visitor(visitor).await,
        }
    }

    /// The contact of the visitor's user id, else of its anonymous id. When both are known and belong to different
    /// contacts, the anonymous one is merged into the user id's; the identity of the two that is not known yet is
    /// added to the contact found.
    async fn find_visitor(&mut self, visitor: &VisitorIds, actor: &str) -> StoreResult<Option<i64>> {
        let by_user_id = visitor.user_id.as_ref().and_then(|identity| self.owner(identity));
        let by_anonymous_id = visitor.anonymous_id.as_ref().and_then(|identity| self.owner(identity));
        let id = match (by_user_id, by_anonymous_id) {
            (Some(user), Some(anonymous)) if user != anonymous => {
                self.merge(user, anonymous, MergeReason::Identify, actor).await?;
                user
            }
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => return Ok(None),
        };
        if let (Some(user_id), None) = (&visitor.user_id, by_user_id) {
            self.add_identity(user_id, id);
        }
        if let (Some(anonymous_id), None) = (&visitor.anonymous_id, by_anonymous_id) {
            self.add_identity(anonymous_id, id);
        }
        Ok(Some(id))
    }

    /// A contact for a visitor seen for the first time, in the first stage, with the visitor's identities.
    async fn create_visitor(&mut self, visitor: &VisitorIds) -> StoreResult<i64> {
        let id = match self.spare_ids.pop() {
            Some(id) => id,
            None => {
                self.spare_ids = allocate_ids(self.connection, "contacts_id_seq", 16).await?;
                self.spare_ids.pop().context("allocated contact ids")?
            }
        };
        let user_id = visitor.user_id.as_ref().map(|identity| identity.value().to_owned());
        self.pending.contacts.push((id, user_id));
        for identity in visitor.identities() {
            self.set_owner(identity.clone(), id);
            self.pending.identities.push((identity.clone(), id));
        }
        Ok(id)
    }

    /// Gives a contact an identity nobody owns; a user id also fills the contact's `user_id` when that is empty.
    fn add_identity(&mut self, identity: &Identity, contact: i64) {
        self.set_owner(identity.clone(), contact);
        self.pending.identities.push((identity.clone(), contact));
        let fill = self.pending.touched.entry(contact).or_default();
        if identity.kind() == IdentityKind::UserId && fill.is_none() {
            *fill = Some(identity.value().to_owned());
        }
    }

    async fn merge(&mut self, survivor: i64, absorbed: i64, reason: MergeReason, actor: &str) -> StoreResult<()> {
        self.flush().await?;
        let (survivor, absorbed) = (ContactId::new(survivor), ContactId::new(absorbed));
        self.load_stages().await?;
        let stages = self.stages.as_deref().unwrap_or_default();
        merge_into(self.connection, self.workspace, survivor, absorbed, reason, actor, stages).await?;
        self.redirects.insert(absorbed.get(), survivor.get());
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Redirect(absorbed.get()));
        }
        Ok(())
    }

    async fn load_stages(&mut self) -> StoreResult<()> {
        if self.stages.is_none() {
            self.stages = Some(stage_order(self.connection, self.workspace).await?);
        }
        Ok(())
    }

    fn owner(&self, identity: &Identity) -> Option<i64> {
        self.owners.get(identity).map(|owner| self.follow(*owner))
    }

    /// Where a contact went through the merges of this call.
    fn follow(&self, mut contact: i64) -> i64 {
        while let Some(survivor) = self.redirects.get(&contact) {
            contact = *survivor;
        }
        contact
    }

    fn set_owner(&mut self, identity: Identity, contact: i64) {
        let previous = self.owners.insert(identity.clone(), contact);
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Owner(identity, previous));
        }
    }

    /// Writes the pending contacts, identities and touches.
    async fn flush(&mut self) -> StoreResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let workspace = self.workspace.get();
        if !pending.contacts.is_empty() {
            self.load_stages().await?;
            let first_stage = self.stages.iter().flatten().next().context("the workspace has no stage")?;
            // In id order: spare ids are handed out from the end of their list, and rows inserted in descending key
            // order split the pages of the id and update-time indexes in half instead of filling them.
            let mut contacts = pending.contacts;
            contacts.sort_unstable_by_key(|(id, _)| *id);
            let (ids, user_ids): (Vec<i64>, Vec<Option<String>>) = contacts.into_iter().unzip();
            sqlx::query(
                "INSERT INTO contacts (id, workspace_id, user_id, stage, created_at, updated_at)
                 SELECT id, $1, user_id, $2, now(), now() FROM UNNEST($3::bigint[], $4::text[]) AS new (id, user_id)",
            )
            .bind(workspace)
            .bind(first_stage)
            .bind(&ids)
            .bind(&user_ids)
            .execute(&mut *self.connection)
            .await
            .context("creating contacts for new visitors")?;
        }
        if !pending.identities.is_empty() {
            let mut kinds = Vec::with_capacity(pending.identities.len());
            let mut values = Vec::with_capacity(pending.identities.len());
            let mut contacts = Vec::with_capacity(pending.identities.len());
            for (identity, contact) in &pending.identities {
                kinds.push(identity.kind().as_str());
                values.push(identity.value());
                contacts.push(self.follow(*contact));
            }
            sqlx::query(
                "INSERT INTO contact_identities (workspace_id, kind, value, contact_id)
                 SELECT $1, kind, value, contact_id FROM UNNEST($2::text[], $3::text[], $4::bigint[])
                     AS i (kind, value, contact_id)",
            )
            .bind(workspace)
            .bind(&kinds)
            .bind(&values)
            .bind(&contacts)
            .execute(&mut *self.connection)
            .await
            .context("adding visitor identities")?;
        }
        if !pending.touched.is_empty() {
            let (ids, user_ids): (Vec<i64>, Vec<Option<String>>) =
                pending.touched.into_iter().map(|(id, user_id)| (self.follow(id), user_id)).unzip();
            // Rows found by ctid, looked up per id, for the reason `update_contacts` in batch/rows.rs gives.
            sqlx::query(
                "UPDATE contacts c SET user_id = coalesce(c.user_id, t.user_id), updated_at = now()
                 FROM (SELECT t.user_id, target.ctid AS target FROM UNNEST($2::bigint[], $3::text[]) AS t (id, user_id)
                       CROSS JOIN LATERAL (
                           SELECT ctid FROM contacts WHERE id = t.id AND workspace_id = $1 OFFSET 0
                       ) AS target) AS t
                 WHERE c.ctid = t.target",
            )
            .bind(workspace)
            .bind(&ids)
            .bind(&user_ids)
            .execute(&mut *self.connection)
            .await
            .context("touching contacts that gained identities")?;
        }
        Ok(())
    }

    /// Writes what is still pending, the events and the message ids of the other messages. An event whose message
    /// id a concurrent call stored first becomes a duplicate.
    async fn finish(
        mut self,
        mut prepared: PreparedEvents,
        outcomes: &mut [TrackingOutcome],
        shared_ids: &SharedIds,
    ) -> StoreResult<()> {
        self.flush().await?;
        if !self.claims.is_empty() {
            let (hashes, contacts): (Vec<i64>, Vec<i64>) =
                self.claims.iter().map(|(hash, contact)| (*hash, self.follow(*contact))).unzip();
            sqlx::query(
                "INSERT INTO message_ids (message_hash, contact_id)
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            )
            .bind(&hashes)
            .bind(&contacts)
            .execute(&mut *self.connection)
            .await
            .context("recording message ids")?;
        }
        prepared.follow_merges(|contact| self.follow(contact));
        let mut indexes = Vec::with_capacity(self.events.len());
        let mut placements = Vec::with_capacity(self.events.len());
        for (index, mut placement) in std::mem::take(&mut self.events) {
            placement.contact_id = self.follow(placement.contact_id);
            indexes.push(index);
            placements.push(placement);
        }
        let written =
            write_events(self.connection, self.workspace, prepared, placements, EventIds::Omit, shared_ids).await?;
        for (index, written) in indexes.into_iter().zip(written) {
            if written == EventWrite::Duplicate {
                outcomes[index] = TrackingOutcome::Duplicate;
            }
        }
        Ok(())
    }
}

/// A message as the call applies it.
struct Message {
    message_id: String,
    hash: i64,
    source: SourceId,
    visitor: Result<VisitorIds, String>,
    change: Change,
}

/// What a message does.
enum Change {
    /// An event, by its index among the call's event payloads.
    Event(usize),
    /// Boxed: changes are large and identify calls rare.
    Identify(Box<ContactChanges>),
    Group(String, CompanyChanges),
    Alias(String),
    /// Boxed like identify calls; its event's payload is among the call's event payloads.
    FormSubmission(Box<Submission>),
}

/// A form submission as the call applies it.
struct Submission {
    form_id: FormId,
    changes: ContactChanges,
    payload: usize,
    consents: Vec<NewConsent>,
}

/// The contacts that own `identities`, as [`resolve_identities`] finds them, and the hashes among `hashes` that
/// messages other than events have stored (the `message_ids` table), with one round trip.
async fn resolve_with_message_ids(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    identities: &[Identity],
    hashes: &[i64],
) -> StoreResult<(HashMap<Identity, i64>, HashSet<i64>)> {
    let kinds: Vec<&str> = identities.iter().map(|identity| identity.kind().as_str()).collect();
    let values: Vec<&str> = identities.iter().map(Identity::value).collect();
    let rows: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT wanted.kind, wanted.value, i.contact_id
         FROM UNNEST($2::text[], $3::text[]) AS wanted (kind, value)
         CROSS JOIN LATERAL (
             SELECT contact_id FROM contact_identities
             WHERE workspace_id = $1 AND kind = wanted.kind AND value = wanted.value OFFSET 0
         ) AS i
         UNION ALL
         SELECT NULL, NULL, wanted.hash FROM UNNEST($4::bigint[]) AS wanted (hash)
         WHERE EXISTS (SELECT 1 FROM message_ids WHERE message_hash = wanted.hash)",
    )
    .bind(workspace.get())
    .bind(&kinds)
    .bind(&values)
    .bind(hashes)
    .fetch_all(connection)
    .await
    .context("resolving identities and probing message ids")?;
    let mut owners = HashMap::with_capacity(rows.len());
    let mut stored = HashSet::new();
    for row in rows {
        match row {
            (Some(kind), Some(value), contact) => {
                owners.insert(Identity::from_stored(stored_identity_kind(&kind)?, value), contact);
            }
            (_, _, hash) => {
                stored.insert(hash);
            }
        }
    }
    Ok((owners, stored))
}

/// The identities an alias's previous id may be, in the order they are tried.
fn previous_identities(previous_id: &str) -> [Result<Identity, rapport_domain::IdentityError>; 2] {
    [Identity::parse(IdentityKind::UserId, previous_id), Identity::parse(IdentityKind::AnonymousId, previous_id)]
}

async fn savepoint(connection: &mut PgConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::query(sql).execute(connection).await.with_context(|| format!("running {sql}"))?;
    Ok(())
}

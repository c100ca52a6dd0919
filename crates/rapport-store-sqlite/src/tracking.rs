//! The tracking API's writes: one call applies a group commit's messages in order, resolving each visitor to a
//! contact, merging contacts that turn out to be one person, and storing events through `events.rs`.
//!
//! This is the capture hot path. Events go straight through: a message id claim, a visitor looked up once per call
//! (then remembered), one insert. Other messages (identify, group, alias) each run in a savepoint, so that a message
//! rejected half-way (a dynamic tag, a taken domain) changes nothing while the rest of the call applies; every
//! memory of the call that a rollback could make stale is forgotten then.
//!
//! Changes made by tracking are recorded with the actor `source:<source id>`.

use std::collections::HashMap;

use anyhow::Context;
use rapport_domain::{ContactChanges, ContactId, Identity, IdentityKind, SourceId, TagKind, WorkspaceId};
use rapport_store::{
    CompanyChanges, FORM_SUBMITTED_EVENT, FormSubmission, MergeReason, StoreError, StoreResult, TrackingMessage,
    TrackingOp, TrackingOutcome, Visitor,
};
use rusqlite::{Transaction, params};

use crate::companies::group_company;
use crate::contacts::{ChangeContext, References, add_identity, apply_changes, check_references, identity_owner};
use crate::events::{EventDocuments, EventRow, EventWriter, message_hash_seen};
use crate::forms::{count_submission, record_consents};
use crate::memo::WriterMemo;
use crate::merge::merge_into;
use crate::message_ids::message_hash;
use crate::sql::{micros, now_micros};
use crate::tags::TagResolver;

/// What can be worked out about a message without the database: the hash of its id, its visitor's identities and,
/// for an event, its JSON serialized and hashed. [`prepare_tracking`] does it before the writer connection is taken,
/// so that this work for one commit runs while the previous one writes.
pub(crate) struct PreparedMessage {
    message_hash: i64,
    identities: Result<VisitorIdentities, TrackingOutcome>,
    documents: Option<EventDocuments>,
}

impl PreparedMessage {
    /// The event documents, which [`prepare_tracking`] builds for every event and form submission whose visitor
    /// parsed — the only messages that ask for them.
    fn documents(&self) -> StoreResult<&EventDocuments> {
        Ok(self.documents.as_ref().context("a message's event documents were not prepared")?)
    }
}

pub(crate) fn prepare_tracking(messages: &[TrackingMessage]) -> StoreResult<Vec<PreparedMessage>> {
    messages
        .iter()
        .map(|message| {
            // A form submission identifies by its answers, so it needs no visitor id.
            let anonymous_allowed = matches!(message.op, TrackingOp::FormSubmission(_));
            let identities = parse_visitor(&message.visitor, anonymous_allowed);
            let documents = match &message.op {
                TrackingOp::Event { properties, context, .. } if identities.is_ok() => {
                    Some(EventDocuments::new(properties, context)?)
                }
                TrackingOp::FormSubmission(submission) if identities.is_ok() => {
                    Some(EventDocuments::new(&submission.properties, &submission.context)?)
                }
                _ => None,
            };
            Ok(PreparedMessage { message_hash: message_hash(&message.message_id), identities, documents })
        })
        .collect()
}

/// Applies the messages in order; `prepared` is [`prepare_tracking`]'s answer for them.
pub(crate) fn ingest_tracking(
    tx: &Transaction<'_>,
    memo: &mut WriterMemo,
    workspace: WorkspaceId,
    messages: &[TrackingMessage],
    prepared: &[PreparedMessage],
) -> StoreResult<Vec<TrackingOutcome>> {
    let mut ingest = Ingest {
        tx,
        memo,
        workspace,
        now: now_micros(),
        references: References::load(tx, workspace)?,
        events: EventWriter::new(workspace),
        visitors: HashMap::new(),
    };
    let mut outcomes = Vec::with_capacity(messages.len());
    for (message, prepared) in messages.iter().zip(prepared) {
        outcomes.push(ingest.apply(message, prepared)?);
    }
    ingest.events.finish(tx)?;
    Ok(outcomes)
}

/// A visitor's raw ids, as the key under which the call remembers its contact.
type VisitorKey<'m> = (Option<&'m str>, Option<&'m str>);

/// A visitor's ids parsed into identities.
struct VisitorIdentities {
    user_id: Option<Identity>,
    anonymous_id: Option<Identity>,
}

/// One call's state: the reference data and the contacts of visitors seen so far.
struct Ingest<'a, 'conn, 'm> {
    tx: &'a Transaction<'conn>,
    memo: &'a mut WriterMemo,
    workspace: WorkspaceId,
    now: i64,
    references: References,
    events: EventWriter,
    visitors: HashMap<VisitorKey<'m>, ContactId>,
}

impl<'m> Ingest<'_, '_, 'm> {
    fn apply(&mut self, message: &'m TrackingMessage, prepared: &PreparedMessage) -> StoreResult<TrackingOutcome> {
        let TrackingMessage { message_id: _, source, visitor, op } = message;
        let source = *source;
        let hash = prepared.message_hash;
        let identities = match &prepared.identities {
            Ok(identities) => identities,
            Err(rejection) => {
                let seen = message_hash_seen(self.tx, self.workspace, hash)?;
                return Ok(if seen { TrackingOutcome::Duplicate } else { rejection.clone() });
            }
        };
        let key = (visitor.user_id.as_deref(), visitor.anonymous_id.as_deref());
        match op {
            TrackingOp::Event { event_type, occurred_at, received_at, .. } => {
                if !self.events.claim_message_hash(self.tx, hash, None)? {
                    return Ok(TrackingOutcome::Duplicate);
                }
                let contact = self.contact_of(key, identities, source)?;
                let documents = prepared.documents()?;
                let event = EventRow {
                    id: None,
                    contact,
                    event_type,
                    documents,
                    occurred_at: micros(*occurred_at),
                    received_at: micros(*received_at),
                    source: None,
                    source_id: Some(source),
                    message_id: Some(&message.message_id),
                };
                self.events.insert(self.tx, self.memo, event)?;
                Ok(TrackingOutcome::Applied { contact_id: contact })
            }
            TrackingOp::Identify { changes } => {
                self.change(hash, |ingest| ingest.identify(key, identities, source, changes.clone()))
            }
            TrackingOp::Group { group_id, company } => {
                self.change(hash, |ingest| ingest.group(key, identities, source, group_id, company.clone()))
            }
            TrackingOp::Alias { previous_id } => {
                self.change(hash, |ingest| ingest.alias(key, identities, source, previous_id))
            }
            TrackingOp::FormSubmission(submission) => {
                let message_id = &message.message_id;
                let documents = prepared.documents()?;
                self.change(hash, |ingest| {
                    ingest.submit_form(key, identities, source, message_id, submission, documents)
                })
            }
        }
    }

    /// Counts the submission on its form (rejected when the form is gone), identifies the visitor by the answers,
    /// then records the `form_submitted` event and the consents. Everything that can reject comes before the event,
    /// whose document references are counted in memory.
    fn submit_form(
        &mut self,
        key: VisitorKey<'m>,
        identities: &VisitorIdentities,
        source: SourceId,
        message_id: &str,
        submission: &FormSubmission,
        documents: &EventDocuments,
    ) -> StoreResult<ContactId> {
        count_submission(self.tx, self.workspace, submission.form_id)?;
        let contact = self.identify(key, identities, source, submission.changes.clone())?;
        let event = EventRow {
            id: None,
            contact,
            event_type: FORM_SUBMITTED_EVENT,
            documents,
            occurred_at: micros(submission.occurred_at),
            received_at: micros(submission.received_at),
            source: None,
            source_id: Some(source),
            // The submission's message id is claimed for the contact by `change`.
            message_id: None,
        };
        self.events.insert(self.tx, self.memo, event)?;
        let context = self.change_context(source);
        record_consents(self.tx, &context, contact, submission.form_id, message_id, &submission.consents)?;
        Ok(contact)
    }

    /// Applies a message other than an event: skipped when its id was seen, run in a savepoint so that a rejection
    /// (an invalid reference, a conflict) rolls its writes back and becomes its outcome; any other error fails the
    /// call. The message id is recorded with the contact, so that erasing the contact forgets it.
    fn change(
        &mut self,
        hash: i64,
        work: impl FnOnce(&mut Self) -> StoreResult<ContactId>,
    ) -> StoreResult<TrackingOutcome> {
        if message_hash_seen(self.tx, self.workspace, hash)? {
            return Ok(TrackingOutcome::Duplicate);
        }
        self.tx.execute_batch("SAVEPOINT tracking_message").context("starting a savepoint")?;
        let (code, message) = match work(self) {
            Ok(contact_id) => {
                self.events.claim_message_hash(self.tx, hash, Some(contact_id))?;
                self.tx.execute_batch("RELEASE tracking_message").context("releasing a savepoint")?;
                return Ok(TrackingOutcome::Applied { contact_id });
            }
            Err(StoreError::Invalid { code, field, message }) => (code, format!("{field}: {message}")),
            Err(StoreError::Conflict { code, message }) => (code, message),
            Err(other) => return Err(other),
        };
        self.tx
            .execute_batch("ROLLBACK TO tracking_message; RELEASE tracking_message")
            .context("rolling a savepoint back")?;
        // Contacts and tags created or merged away inside the savepoint are gone again.
        self.visitors.clear();
        self.references.tags = TagResolver::default();
        self.memo.rolled_back();
        Ok(TrackingOutcome::Rejected { code, message })
    }

    /// Applies traits to the visitor's contact. When the visitor is unknown, the contact that owns one of the
    /// changes' identities (user id, email, phone, in that order) is theirs; when none does, the changes create one.
    /// Other owners of those identities are merged into it.
    fn identify(
        &mut self,
        key: VisitorKey<'m>,
        identities: &VisitorIdentities,
        source: SourceId,
        changes: ContactChanges,
    ) -> StoreResult<ContactId> {
        let field = |name: &str| name.to_owned();
        check_references(self.tx, self.workspace, &mut self.references, &changes, &field)?;
        for path in &changes.add_tags {
            let text = path.to_string();
            if let Some((_, TagKind::Dynamic)) = self.references.tags.find(self.tx, self.workspace, &text)? {
                let message = format!("{text} is a dynamic tag, applied by its rule only");
                return Err(StoreError::invalid("dynamic_tag", "tags", message));
            }
        }
        let context = self.change_context(source);
        let mut contact = self.find_visitor(&key, identities, source)?;
        let mut adopted = false;
        for identity in changes.match_identities() {
            let Some(owner) = identity_owner(self.tx, self.workspace, &identity)? else { continue };
            match contact {
                None => {
                    contact = Some(owner);
                    adopted = true;
                }
                Some(contact) if contact != owner => self.merge(&context, contact, owner, MergeReason::Identify)?,
                Some(_) => {}
            }
        }
        let found = contact.is_some();
        let id = apply_changes(self.tx, &context, &mut self.references, contact, changes, &field)?;
        if adopted || !found {
            self.add_visitor_identities(id, identities, None, None)?;
        }
        if key.0.is_some() || key.1.is_some() {
            self.visitors.insert(key, id);
        }
        Ok(id)
    }

    fn group(
        &mut self,
        key: VisitorKey<'m>,
        identities: &VisitorIdentities,
        source: SourceId,
        group_id: &str,
        company: CompanyChanges,
    ) -> StoreResult<ContactId> {
        if group_id.trim().is_empty() {
            return Err(StoreError::invalid("invalid_message", "group_id", "a group call needs a group id"));
        }
        let contact = self.contact_of(key, identities, source)?;
        let company = group_company(self.tx, self.workspace, group_id, company)?;
        let mut link = self
            .tx
            .prepare_cached(
                "UPDATE contacts SET company_id = ?2, updated_at = ?3 WHERE id = ?1 AND company_id IS NOT ?2",
            )
            .context("preparing a company link")?;
        link.execute(params![contact.get(), company.get(), self.now]).context("linking a company")?;
        Ok(contact)
    }

    /// The contact known by `previous_id` (as a user id, else as an anonymous id) and the visitor's are one: the
    /// former is merged into the latter. When only the former exists, it gains the visitor's ids; when neither
    /// does, a contact is created for the visitor. When only the visitor's exists, nothing changes.
    fn alias(
        &mut self,
        key: VisitorKey<'m>,
        identities: &VisitorIdentities,
        source: SourceId,
        previous_id: &str,
    ) -> StoreResult<ContactId> {
        if identities.user_id.is_none() {
            return Err(StoreError::invalid("invalid_message", "user_id", "an alias call needs a user id"));
        }
        let previous = self.previous_owner(previous_id)?;
        let context = self.change_context(source);
        let id = match (self.find_visitor(&key, identities, source)?, previous) {
            (Some(current), Some(previous)) if current != previous => {
                self.merge(&context, current, previous, MergeReason::Alias)?;
                current
            }
            (Some(current), _) => current,
            (None, Some(previous)) => {
                self.add_visitor_identities(previous, identities, None, None)?;
                previous
            }
            (None, None) => self.create_visitor(identities)?,
        };
        self.visitors.insert(key, id);
        Ok(id)
    }

    /// The visitor's contact, created when the visitor is new. Remembered for the rest of the call.
    fn contact_of(
        &mut self,
        key: VisitorKey<'m>,
        identities: &VisitorIdentities,
        source: SourceId,
    ) -> StoreResult<ContactId> {
        if let Some(id) = self.visitors.get(&key) {
            return Ok(*id);
        }
        let id = match self.find_visitor(&key, identities, source)? {
            Some(id) => id,
            None => self.create_visitor(identities)?,
        };
        self.visitors.insert(key, id);
        Ok(id)
    }

    /// The contact of the visitor's user id, else of its anonymous id. When both are known and belong to different
    /// contacts, the anonymous one is merged into the user id's; the identity of the two that is not known yet is
    /// added to the contact found.
    fn find_visitor(
        &mut self,
        key: &VisitorKey<'m>,
        identities: &VisitorIdentities,
        source: SourceId,
    ) -> StoreResult<Option<ContactId>> {
        if identities.user_id.is_none() && identities.anonymous_id.is_none() {
            return Ok(None);
        }
        if let Some(id) = self.visitors.get(key) {
            return Ok(Some(*id));
        }
        let by_user_id = self.owner(identities.user_id.as_ref())?;
        let by_anonymous_id = self.owner(identities.anonymous_id.as_ref())?;
        let id = match (by_user_id, by_anonymous_id) {
            (Some(user), Some(anonymous)) if user != anonymous => {
                let context = self.change_context(source);
                self.merge(&context, user, anonymous, MergeReason::Identify)?;
                user
            }
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => return Ok(None),
        };
        self.add_visitor_identities(id, identities, by_user_id, by_anonymous_id)?;
        Ok(Some(id))
    }

    /// Gives the contact the visitor's identities it lacks (`*_owner` are the known owners, `None` when unknown);
    /// a user id also fills the contact's `user_id` when that is empty.
    fn add_visitor_identities(
        &mut self,
        id: ContactId,
        identities: &VisitorIdentities,
        user_id_owner: Option<ContactId>,
        anonymous_id_owner: Option<ContactId>,
    ) -> StoreResult<()> {
        let mut changed = false;
        if let (Some(user_id), None) = (&identities.user_id, user_id_owner) {
            self.add_identity(id, user_id)?;
            let mut fill = self
                .tx
                .prepare_cached("UPDATE contacts SET user_id = coalesce(user_id, ?2) WHERE id = ?1")
                .context("preparing a user id fill")?;
            fill.execute(params![id.get(), user_id.value()]).context("filling a user id")?;
            changed = true;
        }
        if let (Some(anonymous_id), None) = (&identities.anonymous_id, anonymous_id_owner) {
            self.add_identity(id, anonymous_id)?;
            changed = true;
        }
        if changed {
            let mut touch = self
                .tx
                .prepare_cached("UPDATE contacts SET updated_at = ?2 WHERE id = ?1")
                .context("preparing a contact touch")?;
            touch.execute(params![id.get(), self.now]).context("touching a contact")?;
        }
        Ok(())
    }

    /// A contact for a visitor seen for the first time, in the first stage, with the visitor's identities.
    fn create_visitor(&mut self, identities: &VisitorIdentities) -> StoreResult<ContactId> {
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO contacts (workspace_id, user_id, stage, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            )
            .context("preparing a visitor contact")?;
        insert
            .execute(params![
                self.workspace.get(),
                identities.user_id.as_ref().map(Identity::value),
                self.references.first_stage()?,
                self.now
            ])
            .context("creating a visitor contact")?;
        let id = ContactId::new(self.tx.last_insert_rowid());
        for identity in [&identities.user_id, &identities.anonymous_id].into_iter().flatten() {
            self.add_identity(id, identity)?;
        }
        Ok(id)
    }

    /// The contact that has the identity, from the writer's memo when it knows.
    fn owner(&mut self, identity: Option<&Identity>) -> StoreResult<Option<ContactId>> {
        let Some(identity) = identity else { return Ok(None) };
        let key = (self.workspace, identity.kind(), identity.value().to_owned());
        if let Some(contact) = self.memo.identity(&key) {
            return Ok(Some(contact));
        }
        let owner = identity_owner(self.tx, self.workspace, identity)?;
        if let Some(contact) = owner {
            self.memo.identities.learn(key, contact);
        }
        Ok(owner)
    }

    fn add_identity(&mut self, contact: ContactId, identity: &Identity) -> StoreResult<()> {
        add_identity(self.tx, self.workspace, contact, identity)?;
        self.memo.identities.learn((self.workspace, identity.kind(), identity.value().to_owned()), contact);
        Ok(())
    }

    fn previous_owner(&self, previous_id: &str) -> StoreResult<Option<ContactId>> {
        for kind in [IdentityKind::UserId, IdentityKind::AnonymousId] {
            let identity = Identity::parse(kind, previous_id)
                .map_err(|error| StoreError::invalid("invalid_message", "previous_id", error.to_string()))?;
            if let Some(owner) = identity_owner(self.tx, self.workspace, &identity)? {
                return Ok(Some(owner));
            }
        }
        Ok(None)
    }

    /// Merges, then forgets the visitors' contacts: the absorbed one may be among them.
    fn merge(
        &mut self,
        context: &ChangeContext,
        survivor: ContactId,
        absorbed: ContactId,
        reason: MergeReason,
    ) -> StoreResult<()> {
        merge_into(self.tx, context, &self.references, survivor, absorbed, reason)?;
        self.memo.contact_absorbed(absorbed);
        self.visitors.clear();
        Ok(())
    }

    fn change_context(&self, source: SourceId) -> ChangeContext {
        ChangeContext { workspace: self.workspace, actor: format!("source:{source}"), now: self.now }
    }
}

fn parse_visitor(visitor: &Visitor, anonymous_allowed: bool) -> Result<VisitorIdentities, TrackingOutcome> {
    let parse = |kind: IdentityKind, raw: &Option<String>, name: &str| {
        raw.as_deref()
            .map(|raw| Identity::parse(kind, raw))
            .transpose()
            .map_err(|error| TrackingOutcome::Rejected { code: "invalid_message", message: format!("{name} {error}") })
    };
    let identities = VisitorIdentities {
        user_id: parse(IdentityKind::UserId, &visitor.user_id, "userId")?,
        anonymous_id: parse(IdentityKind::AnonymousId, &visitor.anonymous_id, "anonymousId")?,
    };
    if identities.user_id.is_none() && identities.anonymous_id.is_none() && !anonymous_allowed {
        return Err(TrackingOutcome::Rejected {
            code: "invalid_message",
            message: "a message needs a userId or an anonymousId".to_owned(),
        });
    }
    Ok(identities)
}

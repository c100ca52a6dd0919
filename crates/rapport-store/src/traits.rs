//! The storage trait. One trait, grouped by area, so that the server holds a single `Arc<dyn Store>` picked once
//! from the database URL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rapport_domain::{
    ApiKeyId, CompanyId, ContactChanges, ContactId, FieldDefinition, FieldEntity, FieldId, FormId, Identity, JobId,
    NoteTemplateId, SegmentId, Slug, SourceId, TagId, TagPath, UserId, WorkspaceId,
};
use serde_json::Value;

use crate::audience::*;
use crate::error::StoreResult;
use crate::job::{Job, JobEnd, JobKind, NewJob};
use crate::records::*;

/// Everything Rapport persists. Every method acts inside one workspace; a record of another workspace reads as not
/// found. A method that returns `Err` has written nothing (each call is one transaction).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's name for logs and benchmarks: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    // ----- Workspaces -----

    /// Creates a workspace with the default lifecycle stages (`raw`, `mql`, `sal`, `sql`, `customer`, labelled
    /// Raw lead, MQL, SAL, SQL, Customer) and lead statuses (`not_reached`, `reached_no_intent`, `unqualified`,
    /// `contacted`). Conflict `workspace_exists` when the slug is taken.
    async fn create_workspace(&self, slug: &Slug, name: &str) -> StoreResult<Workspace>;
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>>;
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>>;

    // ----- Users -----

    /// Conflict `user_exists` when the email is taken in this workspace.
    async fn create_user(&self, workspace: WorkspaceId, user: NewUser) -> StoreResult<User>;
    async fn get_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<User>;
    async fn user_by_email(&self, workspace: WorkspaceId, email: &str) -> StoreResult<Option<User>>;
    /// Users ordered by id.
    async fn list_users(&self, workspace: WorkspaceId, page: PageRequest<UserId>) -> StoreResult<Page<User, UserId>>;
    async fn update_user(&self, workspace: WorkspaceId, id: UserId, update: UserUpdate) -> StoreResult<User>;
    /// Contacts owned by the user become unowned.
    async fn delete_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<()>;

    // ----- API keys -----

    /// Conflict `api_key_exists` when the same token hash is already stored.
    async fn create_api_key(&self, workspace: WorkspaceId, key: NewApiKey) -> StoreResult<ApiKey>;
    /// The unrevoked key with this token hash, in any workspace.
    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()>;
    async fn list_api_keys(&self, workspace: WorkspaceId) -> StoreResult<Vec<ApiKey>>;
    async fn get_api_key(&self, workspace: WorkspaceId, id: ApiKeyId) -> StoreResult<ApiKey>;
    /// Revoking twice is not an error; the first revocation time is kept.
    async fn revoke_api_key(&self, workspace: WorkspaceId, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey>;

    // ----- Custom fields -----

    /// Conflict `field_exists` when the key is taken for that entity.
    async fn create_field(&self, workspace: WorkspaceId, field: NewField) -> StoreResult<FieldDefinition>;
    /// Definitions ordered by id; `None` lists both entities.
    async fn list_fields(
        &self,
        workspace: WorkspaceId,
        entity: Option<FieldEntity>,
    ) -> StoreResult<Vec<FieldDefinition>>;
    async fn get_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<FieldDefinition>;
    async fn update_field(
        &self,
        workspace: WorkspaceId,
        id: FieldId,
        update: FieldUpdate,
    ) -> StoreResult<FieldDefinition>;
    /// Deletes the definition and removes its values from every contact or company.
    async fn delete_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<()>;

    // ----- Tags -----

    /// The whole library ordered by path, with per-tag contact counts.
    async fn list_tags(&self, workspace: WorkspaceId) -> StoreResult<Vec<Tag>>;
    async fn get_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<Tag>;
    /// Creates the tag and any missing groups above it (as manual tags). Conflict `tag_exists` when the path exists.
    async fn create_tag(&self, workspace: WorkspaceId, tag: NewTag) -> StoreResult<Tag>;
    /// Renames or moves a tag with its subtree. Conflict `tag_exists` when the new path is taken; invalid
    /// `tag_too_deep` when the subtree would go past four levels; invalid `tag_cycle` when moved under itself.
    async fn update_tag(&self, workspace: WorkspaceId, id: TagId, update: TagUpdate) -> StoreResult<Tag>;
    /// Only a leaf that no contact carries can be deleted: conflict `tag_has_children` or `tag_in_use` otherwise.
    /// A dynamic tag's definition (its segment) is deleted with it.
    async fn delete_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<()>;
    /// Adds manual tags to a contact, creating missing ones; tags it already has are left alone. Records
    /// `tag_added` activities. Invalid `dynamic_tag` when a path names a dynamic tag.
    async fn add_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        tags: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()>;
    /// Removes manual tags; unknown paths and tags the contact lacks are ignored. Records `tag_removed`.
    /// Invalid `dynamic_tag` when a path names a dynamic tag.
    async fn remove_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        tags: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()>;

    // ----- Stages and lead statuses -----

    async fn list_entries(&self, workspace: WorkspaceId, list: ListKind) -> StoreResult<Vec<ListEntry>>;
    /// Conflict `stage_exists` / `status_exists` when the key is taken. Positions are renumbered 0..n.
    async fn create_entry(&self, workspace: WorkspaceId, list: ListKind, entry: NewListEntry)
    -> StoreResult<ListEntry>;
    async fn update_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        key: &str,
        update: ListEntryUpdate,
    ) -> StoreResult<ListEntry>;
    /// Conflict `stage_in_use` / `status_in_use` while a contact is in it; a workspace keeps at least one stage
    /// (conflict `last_stage`).
    async fn delete_entry(&self, workspace: WorkspaceId, list: ListKind, key: &str) -> StoreResult<()>;

    // ----- Note templates -----

    async fn list_note_templates(&self, workspace: WorkspaceId) -> StoreResult<Vec<NoteTemplate>>;
    async fn get_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<NoteTemplate>;
    /// Invalid `unknown_status` when the status key does not exist.
    async fn create_note_template(&self, workspace: WorkspaceId, input: NoteTemplateInput)
    -> StoreResult<NoteTemplate>;
    async fn update_note_template(
        &self,
        workspace: WorkspaceId,
        id: NoteTemplateId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate>;
    async fn delete_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<()>;

    // ----- Companies -----

    /// Invalid `missing_field` (field `name`) without a name; conflict `company_exists` when the domain is taken.
    async fn create_company(&self, workspace: WorkspaceId, changes: CompanyChanges) -> StoreResult<Company>;
    async fn get_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<Company>;
    async fn company_by_domain(&self, workspace: WorkspaceId, domain: &str) -> StoreResult<Option<Company>>;
    /// Companies ordered by id.
    async fn list_companies(
        &self,
        workspace: WorkspaceId,
        page: PageRequest<CompanyId>,
    ) -> StoreResult<Page<Company, CompanyId>>;
    async fn update_company(
        &self,
        workspace: WorkspaceId,
        id: CompanyId,
        changes: CompanyChanges,
    ) -> StoreResult<Company>;
    /// Its contacts lose the link; they are not deleted.
    async fn delete_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<()>;

    // ----- Contacts -----

    /// Upserts many contacts in one transaction, in order. Each is matched by its identities in precedence order
    /// (user id, email, phone): the first identity owned by a contact selects it; a later item in the same batch
    /// sees the earlier ones. New contacts start in the workspace's first stage unless a stage is given.
    /// Identities of the changes that belong to a different contact than the matched one fail the whole call with
    /// conflict `identity_conflict`. References are checked: invalid `unknown_stage`, `unknown_status`,
    /// `unknown_owner`, `unknown_company`, `dynamic_tag` (field named `contacts[i].…` for batches of more than one,
    /// or just the field for one). An item without any identity creates a new contact.
    async fn upsert_contacts(
        &self,
        workspace: WorkspaceId,
        items: Vec<ContactChanges>,
        actor: Actor,
    ) -> StoreResult<Vec<UpsertOutcome>>;
    async fn get_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<rapport_domain::Contact>;
    async fn find_contact(
        &self,
        workspace: WorkspaceId,
        identity: &Identity,
    ) -> StoreResult<Option<rapport_domain::Contact>>;
    async fn list_contacts(
        &self,
        workspace: WorkspaceId,
        page: PageRequest<ContactCursor>,
    ) -> StoreResult<Page<rapport_domain::Contact, ContactCursor>>;
    /// Applies changes to one contact with the same checks as an upsert (identities now owned by another contact
    /// give `identity_conflict`). A stage or status that differs from the current one is recorded in the history.
    async fn update_contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        changes: ContactChanges,
        actor: Actor,
    ) -> StoreResult<rapport_domain::Contact>;
    /// Erases the person: the contact, identities, tags, activities, events and consent records.
    async fn delete_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<()>;
    async fn count_contacts(&self, workspace: WorkspaceId) -> StoreResult<u64>;

    /// Events, stage and status changes, tag changes and notes, newest first.
    async fn contact_timeline(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        page: PageRequest<TimelineCursor>,
    ) -> StoreResult<Page<TimelineEntry, TimelineCursor>>;

    // ----- Notes -----

    /// Invalid `unknown_note_template` when the template does not exist.
    async fn add_note(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        body: &str,
        template: Option<NoteTemplateId>,
        actor: Actor,
    ) -> StoreResult<Note>;
    async fn delete_note(&self, workspace: WorkspaceId, contact: ContactId, note: i64) -> StoreResult<()>;

    // ----- Events -----

    /// Appends events in one transaction and returns one outcome per event, in order. An event's contact is
    /// found by id (outcome `UnknownContact` when it does not exist) or by identity (created, in the workspace's
    /// first stage, when no contact has it). A message id already stored in the workspace, or repeated earlier in
    /// the same call, makes that event a `Duplicate`. Events do not change the contact's `updated_at`.
    async fn insert_events(&self, workspace: WorkspaceId, events: Vec<NewEvent>) -> StoreResult<Vec<EventOutcome>>;

    // ----- Sources -----

    /// Conflict `write_key_exists` when the key is taken (keys are random, so only on a collision).
    async fn create_source(&self, workspace: WorkspaceId, source: NewSource) -> StoreResult<Source>;
    /// Every source of the workspace, revoked ones included, ordered by id.
    async fn list_sources(&self, workspace: WorkspaceId) -> StoreResult<Vec<Source>>;
    async fn get_source(&self, workspace: WorkspaceId, id: SourceId) -> StoreResult<Source>;
    async fn update_source(&self, workspace: WorkspaceId, id: SourceId, update: SourceUpdate) -> StoreResult<Source>;
    /// Replaces the write key; the old one stops working at once.
    async fn rotate_source_key(&self, workspace: WorkspaceId, id: SourceId, write_key: &str) -> StoreResult<Source>;
    /// Revoking twice keeps the first time.
    async fn revoke_source(&self, workspace: WorkspaceId, id: SourceId, at: DateTime<Utc>) -> StoreResult<Source>;
    /// The unrevoked source with this write key, in any workspace. Called on every tracking request: keep it to
    /// one indexed look-up.
    async fn source_by_write_key(&self, write_key: &str) -> StoreResult<Option<Source>>;

    // ----- Tracking and identity resolution -----

    /// Applies tracking messages in order, in one transaction, and returns one outcome per message. This is the
    /// hot path of capture: it runs once per group commit with up to thousands of messages.
    ///
    /// - Every message kind is idempotent on `message_id` within the workspace: a message id seen before (earlier
    ///   in this call included) makes the message a `Duplicate` and changes nothing.
    /// - The visitor resolves to a contact by its user id (identity kind `user_id`), else its anonymous id (kind
    ///   `anonymous_id`); when neither is known, a contact is created with both identities (in the first stage).
    ///   When both are known and belong to different contacts, the anonymous one is merged into the user id's
    ///   contact (reason `identify`). A missing identity of the two is added to the resolved contact — so an
    ///   anonymous visitor who identifies becomes that known contact, with all its earlier events.
    /// - `Identify` applies the changes like an upsert's update (stage and status changes recorded, tags added).
    ///   An email, phone or user id in the changes that belongs to another contact merges that contact into the
    ///   resolved one (reason `identify`) instead of failing. Unknown references are `Rejected` with the same codes
    ///   as upserts (`unknown_stage`, …) and change nothing for that message.
    /// - `Event` appends an event (its `source` is the message's source id) to the resolved contact.
    /// - `Group` creates or updates the company whose external id is `group_id` (a company found by the changes'
    ///   domain is adopted instead when no company has that external id yet; a new company without a name is named
    ///   after the group id) and links the contact to it.
    /// - `Alias` merges the contact known by `previous_id` (as a user id, else as an anonymous id) into the contact
    ///   of the visitor's user id (reason `alias`); when only the former exists, it gains the user id; when neither
    ///   exists, a contact with the user id is created.
    /// - `FormSubmission` needs no visitor id (the answers carry an email or phone). It applies the changes exactly
    ///   like `Identify`, then appends a `form_submitted` event, records each consent (in `consents`, and as a
    ///   `consent` activity on the timeline) with the form id and message id, and counts the submission on the
    ///   form — all or nothing. Rejected `unknown_form` when the form does not exist in the workspace or is
    ///   archived.
    async fn ingest_tracking(
        &self,
        workspace: WorkspaceId,
        messages: Vec<TrackingMessage>,
    ) -> StoreResult<Vec<TrackingOutcome>>;

    /// Merges `absorbed` into `survivor` as one change:
    /// - identities, events, notes, history and consent records move to the survivor; manual tags are united
    ///   (dynamic tags are not copied: the engine decides them for the survivor);
    /// - each field (system and custom) takes the most recently updated contact's non-empty value, except custom
    ///   fields whose definition says `keep_oldest_on_merge`, which keep the earlier created contact's non-empty
    ///   value; an empty value never overwrites a non-empty one;
    /// - the stage is the further of the two (by position), the earlier `created_at` is kept;
    /// - a `merged` activity on the survivor records `{"absorbed_id", "reason", "actor"}`;
    /// - the absorbed id keeps pointing at the survivor (see `merged_into`), also through later merges.
    /// Invalid `same_contact` when both ids are the same; not found when either does not exist.
    async fn merge_contacts(
        &self,
        workspace: WorkspaceId,
        survivor: ContactId,
        absorbed: ContactId,
        reason: MergeReason,
        actor: Actor,
    ) -> StoreResult<rapport_domain::Contact>;

    // ----- Background jobs -----

    /// Queues a job in the workspace.
    async fn create_job(&self, workspace: WorkspaceId, job: NewJob) -> StoreResult<Job>;
    async fn get_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job>;
    /// The workspace's jobs of one kind, newest first (`after` is the last id of the previous page).
    async fn list_jobs(
        &self,
        workspace: WorkspaceId,
        kind: JobKind,
        page: PageRequest<JobId>,
    ) -> StoreResult<Page<Job, JobId>>;
    /// Takes the oldest queued job of any workspace: it becomes `Running` with `started_at` set. Two runners never
    /// claim the same job.
    async fn claim_job(&self) -> StoreResult<Option<Job>>;
    /// Stores a running job's progress document and answers whether a cancellation was requested. Not found when
    /// the job is not running.
    async fn report_job_progress(&self, id: JobId, progress: Value) -> StoreResult<bool>;
    /// Ends a running job (not found when it is not running) and sets `finished_at`. Invalid `invalid_job_status`
    /// when `end.status` is not a finished one.
    async fn finish_job(&self, id: JobId, end: JobEnd) -> StoreResult<Job>;
    /// A queued job is cancelled at once (with `finished_at`); a running one is asked to stop
    /// (`cancel_requested`). Conflict `job_finished` when it has already finished.
    async fn cancel_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job>;
    /// Fails every `Running` job with error code `interrupted` (called at start, when no job can be running) and
    /// returns how many there were.
    async fn fail_interrupted_jobs(&self) -> StoreResult<u64>;

    /// The store's size on disk in bytes, indexes included (for operators and the storage benchmarks).
    async fn storage_bytes(&self) -> StoreResult<u64>;

    // ----- Forms and consent -----

    /// Invalid `unknown_source` (field `source_id`) when the source does not exist in the workspace.
    async fn create_form(&self, workspace: WorkspaceId, form: NewForm) -> StoreResult<Form>;
    /// Every form of the workspace, archived ones included, ordered by id.
    async fn list_forms(&self, workspace: WorkspaceId) -> StoreResult<Vec<Form>>;
    async fn get_form(&self, workspace: WorkspaceId, id: FormId) -> StoreResult<Form>;
    /// The form with this id in any workspace, for its public page. Called on every view: one indexed look-up.
    async fn form_by_id(&self, id: FormId) -> StoreResult<Option<Form>>;
    async fn update_form(&self, workspace: WorkspaceId, id: FormId, update: FormUpdate) -> StoreResult<Form>;
    /// The contact's consent records, newest first (the first per channel is the current state).
    async fn contact_consents(&self, workspace: WorkspaceId, contact: ContactId) -> StoreResult<Vec<Consent>>;

    // ----- Segments and the audience engine -----

    /// Conflict `segment_exists` when the name is taken. With a `tag_id`: invalid `unknown_tag` when the tag does
    /// not exist, `not_dynamic_tag` when it is a manual tag; conflict `tag_has_segment` when the tag already has a
    /// definition. Records a schema change.
    async fn create_segment(&self, workspace: WorkspaceId, segment: NewSegment) -> StoreResult<Segment>;
    /// Segments and dynamic tag definitions, ordered by id, with their member counts.
    async fn list_segments(&self, workspace: WorkspaceId) -> StoreResult<Vec<Segment>>;
    async fn get_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<Segment>;
    /// A changed filter bumps `version`. Conflict `segment_exists` when the new name is taken. Records a schema
    /// change.
    async fn update_segment(
        &self,
        workspace: WorkspaceId,
        id: SegmentId,
        update: SegmentUpdate,
    ) -> StoreResult<Segment>;
    /// Deletes the definition and its member rows (without timeline records: the segment is gone). Records a
    /// schema change.
    async fn delete_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<()>;
    /// The segments of every workspace, ordered by id, for the engine's start.
    async fn all_segments(&self) -> StoreResult<Vec<Segment>>;
    /// Member ids in ascending order after `page.after`.
    async fn segment_members(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        page: PageRequest<ContactId>,
    ) -> StoreResult<Page<ContactId, ContactId>>;
    /// Member contacts in ascending id order after `page.after`.
    async fn segment_contacts(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        page: PageRequest<ContactId>,
    ) -> StoreResult<Page<rapport_domain::Contact, ContactId>>;
    /// The segments the contact is a member of, ordered by id (not found when the contact does not exist).
    async fn contact_segments(&self, workspace: WorkspaceId, contact: ContactId) -> StoreResult<Vec<SegmentId>>;
    /// Writes membership changes in one transaction, with a `segment_entered` / `segment_exited` timeline record
    /// (`data.segment_id`, `data.segment`) for each; for a dynamic tag's segment it also adds or removes the tag
    /// (with `tag_added` / `tag_removed`, actor `system`). Entering a segment the contact is already in, leaving
    /// one it is not in, and changes of contacts or segments that no longer exist are skipped without a record.
    async fn apply_memberships(
        &self,
        workspace: WorkspaceId,
        changes: MembershipChanges,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// How often the tag was added to and removed from contacts per UTC day from `from` to `to` (inclusive), read
    /// from the `tag_added` / `tag_removed` timeline records under the tag's current path; days with neither are
    /// left out. Not found when the tag does not exist.
    async fn tag_activity(
        &self,
        workspace: WorkspaceId,
        tag: TagId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> StoreResult<Vec<TagDay>>;

    /// The change feed's position now: reading after it returns what commits from now on.
    async fn change_head(&self) -> StoreResult<ChangeCursor>;
    /// Changes and events committed after `after`, at most about `limit` of each, and the position to read on
    /// from. Every committed write of a contact, its identities, tags or consent, every company change, schema
    /// change and stored event appears, once committed, in exactly one read that starts where the previous ended.
    async fn read_changes(&self, after: ChangeCursor, limit: u32) -> StoreResult<ChangeBatch>;
    /// Drops what the feed holds before `before` (read and applied by the engine).
    async fn prune_changes(&self, before: ChangeCursor) -> StoreResult<()>;
    /// Contacts in ascending id order after `after`, with what filters ask about them, for building the engine's
    /// index.
    async fn audience_contacts(
        &self,
        workspace: WorkspaceId,
        after: Option<ContactId>,
        limit: u32,
    ) -> StoreResult<Vec<AudienceContact>>;
    /// The given contacts that exist, in any order.
    async fn audience_contacts_by_id(
        &self,
        workspace: WorkspaceId,
        ids: &[ContactId],
    ) -> StoreResult<Vec<AudienceContact>>;
    /// Events of the given types in ascending id order after `after`, restricted to those the change feed has
    /// delivered up to `delivered` (an event the feed will deliver later is left out, so that a reader who scans
    /// history and then follows the feed sees every event once).
    async fn scan_events(
        &self,
        workspace: WorkspaceId,
        event_types: &[String],
        delivered: ChangeCursor,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<EventFact>>;

    /// The contact an absorbed id now belongs to (following chains of merges), or `None` when the id was never
    /// merged away.
    async fn merged_into(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Option<ContactId>>;
}

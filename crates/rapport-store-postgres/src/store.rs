//! [`Store`] for [`PostgresStore`]: each method runs, inside a span, the inherent method of the same name that an
//! area module defines (inherent methods take precedence over trait methods, so these calls never recurse).

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rapport_domain::{
    ApiKeyId, CompanyId, Contact, ContactChanges, ContactId, FieldDefinition, FieldEntity, FieldId, FormId, Identity,
    JobId, NoteTemplateId, SegmentId, Slug, SourceId, TagId, TagPath, UserId, WorkspaceId,
};
use rapport_store::{
    Actor, ApiKey, AudienceContact, ChangeBatch, ChangeCursor, Company, CompanyChanges, Consent, ContactCursor,
    EventFact, EventOutcome, FieldUpdate, Form, FormUpdate, Job, JobEnd, JobKind, ListEntry, ListEntryUpdate, ListKind,
    MembershipChanges, MergeReason, NewApiKey, NewEvent, NewField, NewForm, NewJob, NewListEntry, NewSegment,
    NewSource, NewTag, NewUser, Note, NoteTemplate, NoteTemplateInput, Page, PageRequest, Segment, SegmentUpdate,
    Source, SourceUpdate, Store, StoreResult, Tag, TagDay, TagUpdate, TimelineCursor, TimelineEntry, TrackingMessage,
    TrackingOutcome, UpsertOutcome, User, UserUpdate, Workspace,
};
use serde_json::Value;
use tracing::instrument;

use crate::connection::PostgresStore;

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    // ----- Workspaces -----
    #[instrument(level = "debug", skip_all)]
    async fn create_workspace(&self, slug: &Slug, name: &str) -> StoreResult<Workspace> {
        self.create_workspace(slug, name).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        self.workspace_by_slug(slug).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.list_workspaces().await
    }

    // ----- Users -----
    #[instrument(level = "debug", skip_all)]
    async fn create_user(&self, workspace: WorkspaceId, user: NewUser) -> StoreResult<User> {
        self.create_user(workspace, user).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<User> {
        self.get_user(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn user_by_email(&self, workspace: WorkspaceId, email: &str) -> StoreResult<Option<User>> {
        self.user_by_email(workspace, email).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_users(&self, workspace: WorkspaceId, page: PageRequest<UserId>) -> StoreResult<Page<User, UserId>> {
        self.list_users(workspace, page).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_user(&self, workspace: WorkspaceId, id: UserId, update: UserUpdate) -> StoreResult<User> {
        self.update_user(workspace, id, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<()> {
        self.delete_user(workspace, id).await
    }

    // ----- API keys -----
    #[instrument(level = "debug", skip_all)]
    async fn create_api_key(&self, workspace: WorkspaceId, key: NewApiKey) -> StoreResult<ApiKey> {
        self.create_api_key(workspace, key).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.api_key_by_hash(token_hash).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()> {
        self.touch_api_key(id, at).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_api_keys(&self, workspace: WorkspaceId) -> StoreResult<Vec<ApiKey>> {
        self.list_api_keys(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_api_key(&self, workspace: WorkspaceId, id: ApiKeyId) -> StoreResult<ApiKey> {
        self.get_api_key(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn revoke_api_key(&self, workspace: WorkspaceId, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey> {
        self.revoke_api_key(workspace, id, at).await
    }

    // ----- Custom fields -----
    #[instrument(level = "debug", skip_all)]
    async fn create_field(&self, workspace: WorkspaceId, field: NewField) -> StoreResult<FieldDefinition> {
        self.create_field(workspace, field).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_fields(
        &self,
        workspace: WorkspaceId,
        entity: Option<FieldEntity>,
    ) -> StoreResult<Vec<FieldDefinition>> {
        self.list_fields(workspace, entity).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<FieldDefinition> {
        self.get_field(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_field(
        &self,
        workspace: WorkspaceId,
        id: FieldId,
        update: FieldUpdate,
    ) -> StoreResult<FieldDefinition> {
        self.update_field(workspace, id, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<()> {
        self.delete_field(workspace, id).await
    }

    // ----- Tags -----
    #[instrument(level = "debug", skip_all)]
    async fn list_tags(&self, workspace: WorkspaceId) -> StoreResult<Vec<Tag>> {
        self.list_tags(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<Tag> {
        self.get_tag(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn create_tag(&self, workspace: WorkspaceId, tag: NewTag) -> StoreResult<Tag> {
        self.create_tag(workspace, tag).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_tag(&self, workspace: WorkspaceId, id: TagId, update: TagUpdate) -> StoreResult<Tag> {
        self.update_tag(workspace, id, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<()> {
        self.delete_tag(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn add_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        tags: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()> {
        self.add_contact_tags(workspace, contact, tags, actor).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn remove_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        tags: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()> {
        self.remove_contact_tags(workspace, contact, tags, actor).await
    }

    // ----- Stages and lead statuses -----
    #[instrument(level = "debug", skip_all)]
    async fn list_entries(&self, workspace: WorkspaceId, list: ListKind) -> StoreResult<Vec<ListEntry>> {
        self.list_entries(workspace, list).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn create_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        entry: NewListEntry,
    ) -> StoreResult<ListEntry> {
        self.create_entry(workspace, list, entry).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        key: &str,
        update: ListEntryUpdate,
    ) -> StoreResult<ListEntry> {
        self.update_entry(workspace, list, key, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_entry(&self, workspace: WorkspaceId, list: ListKind, key: &str) -> StoreResult<()> {
        self.delete_entry(workspace, list, key).await
    }

    // ----- Note templates -----
    #[instrument(level = "debug", skip_all)]
    async fn list_note_templates(&self, workspace: WorkspaceId) -> StoreResult<Vec<NoteTemplate>> {
        self.list_note_templates(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<NoteTemplate> {
        self.get_note_template(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn create_note_template(
        &self,
        workspace: WorkspaceId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate> {
        self.create_note_template(workspace, input).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_note_template(
        &self,
        workspace: WorkspaceId,
        id: NoteTemplateId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate> {
        self.update_note_template(workspace, id, input).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<()> {
        self.delete_note_template(workspace, id).await
    }

    // ----- Companies -----
    #[instrument(level = "debug", skip_all)]
    async fn create_company(&self, workspace: WorkspaceId, changes: CompanyChanges) -> StoreResult<Company> {
        self.create_company(workspace, changes).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<Company> {
        self.get_company(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn company_by_domain(&self, workspace: WorkspaceId, domain: &str) -> StoreResult<Option<Company>> {
        self.company_by_domain(workspace, domain).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_companies(
        &self,
        workspace: WorkspaceId,
        page: PageRequest<CompanyId>,
    ) -> StoreResult<Page<Company, CompanyId>> {
        self.list_companies(workspace, page).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_company(
        &self,
        workspace: WorkspaceId,
        id: CompanyId,
        changes: CompanyChanges,
    ) -> StoreResult<Company> {
        self.update_company(workspace, id, changes).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<()> {
        self.delete_company(workspace, id).await
    }

    // ----- Contacts -----
    #[instrument(level = "debug", skip_all)]
    async fn upsert_contacts(
        &self,
        workspace: WorkspaceId,
        items: Vec<ContactChanges>,
        actor: Actor,
    ) -> StoreResult<Vec<UpsertOutcome>> {
        self.upsert_contacts(workspace, items, actor).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Contact> {
        self.get_contact(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn find_contact(&self, workspace: WorkspaceId, identity: &Identity) -> StoreResult<Option<Contact>> {
        self.find_contact(workspace, identity).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_contacts(
        &self,
        workspace: WorkspaceId,
        page: PageRequest<ContactCursor>,
    ) -> StoreResult<Page<Contact, ContactCursor>> {
        self.list_contacts(workspace, page).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        changes: ContactChanges,
        actor: Actor,
    ) -> StoreResult<Contact> {
        self.update_contact(workspace, id, changes, actor).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<()> {
        self.delete_contact(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn count_contacts(&self, workspace: WorkspaceId) -> StoreResult<u64> {
        self.count_contacts(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn contact_timeline(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        page: PageRequest<TimelineCursor>,
    ) -> StoreResult<Page<TimelineEntry, TimelineCursor>> {
        self.contact_timeline(workspace, id, page).await
    }

    // ----- Notes -----
    #[instrument(level = "debug", skip_all)]
    async fn add_note(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        body: &str,
        template: Option<NoteTemplateId>,
        actor: Actor,
    ) -> StoreResult<Note> {
        self.add_note(workspace, contact, body, template, actor).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_note(&self, workspace: WorkspaceId, contact: ContactId, note: i64) -> StoreResult<()> {
        self.delete_note(workspace, contact, note).await
    }

    // ----- Events -----
    #[instrument(level = "debug", skip_all)]
    async fn insert_events(&self, workspace: WorkspaceId, events: Vec<NewEvent>) -> StoreResult<Vec<EventOutcome>> {
        self.insert_events(workspace, events).await
    }

    // ----- Sources -----
    #[instrument(level = "debug", skip_all)]
    async fn create_source(&self, workspace: WorkspaceId, source: NewSource) -> StoreResult<Source> {
        self.create_source(workspace, source).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_sources(&self, workspace: WorkspaceId) -> StoreResult<Vec<Source>> {
        self.list_sources(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_source(&self, workspace: WorkspaceId, id: SourceId) -> StoreResult<Source> {
        self.get_source(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_source(&self, workspace: WorkspaceId, id: SourceId, update: SourceUpdate) -> StoreResult<Source> {
        self.update_source(workspace, id, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn rotate_source_key(&self, workspace: WorkspaceId, id: SourceId, write_key: &str) -> StoreResult<Source> {
        self.rotate_source_key(workspace, id, write_key).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn revoke_source(&self, workspace: WorkspaceId, id: SourceId, at: DateTime<Utc>) -> StoreResult<Source> {
        self.revoke_source(workspace, id, at).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn source_by_write_key(&self, write_key: &str) -> StoreResult<Option<Source>> {
        self.source_by_write_key(write_key).await
    }

    // ----- Tracking and identity resolution -----
    #[instrument(level = "debug", skip_all, fields(messages = messages.len()))]
    async fn ingest_tracking(
        &self,
        workspace: WorkspaceId,
        messages: Vec<TrackingMessage>,
    ) -> StoreResult<Vec<TrackingOutcome>> {
        self.ingest_tracking(workspace, messages).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn merge_contacts(
        &self,
        workspace: WorkspaceId,
        survivor: ContactId,
        absorbed: ContactId,
        reason: MergeReason,
        actor: Actor,
    ) -> StoreResult<Contact> {
        self.merge_contacts(workspace, survivor, absorbed, reason, actor).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn merged_into(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Option<ContactId>> {
        self.merged_into(workspace, id).await
    }

    // ----- Background jobs -----
    #[instrument(level = "debug", skip_all)]
    async fn create_job(&self, workspace: WorkspaceId, job: NewJob) -> StoreResult<Job> {
        self.create_job(workspace, job).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
        self.get_job(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_jobs(
        &self,
        workspace: WorkspaceId,
        kind: JobKind,
        page: PageRequest<JobId>,
    ) -> StoreResult<Page<Job, JobId>> {
        self.list_jobs(workspace, kind, page).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn claim_job(&self) -> StoreResult<Option<Job>> {
        self.claim_job().await
    }

    #[instrument(level = "debug", skip_all)]
    async fn report_job_progress(&self, id: JobId, progress: Value) -> StoreResult<bool> {
        self.report_job_progress(id, progress).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn finish_job(&self, id: JobId, end: JobEnd) -> StoreResult<Job> {
        self.finish_job(id, end).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn cancel_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
        self.cancel_job(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn fail_interrupted_jobs(&self) -> StoreResult<u64> {
        self.fail_interrupted_jobs().await
    }

    // ----- Forms and consent -----
    #[instrument(level = "debug", skip_all)]
    async fn create_form(&self, workspace: WorkspaceId, form: NewForm) -> StoreResult<Form> {
        self.create_form(workspace, form).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_forms(&self, workspace: WorkspaceId) -> StoreResult<Vec<Form>> {
        self.list_forms(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_form(&self, workspace: WorkspaceId, id: FormId) -> StoreResult<Form> {
        self.get_form(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn form_by_id(&self, id: FormId) -> StoreResult<Option<Form>> {
        self.form_by_id(id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_form(&self, workspace: WorkspaceId, id: FormId, update: FormUpdate) -> StoreResult<Form> {
        self.update_form(workspace, id, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn contact_consents(&self, workspace: WorkspaceId, contact: ContactId) -> StoreResult<Vec<Consent>> {
        self.contact_consents(workspace, contact).await
    }

    // ----- Segments and the audience engine -----
    #[instrument(level = "debug", skip_all)]
    async fn create_segment(&self, workspace: WorkspaceId, segment: NewSegment) -> StoreResult<Segment> {
        self.create_segment(workspace, segment).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn list_segments(&self, workspace: WorkspaceId) -> StoreResult<Vec<Segment>> {
        self.list_segments(workspace).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn get_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<Segment> {
        self.get_segment(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn update_segment(
        &self,
        workspace: WorkspaceId,
        id: SegmentId,
        update: SegmentUpdate,
    ) -> StoreResult<Segment> {
        self.update_segment(workspace, id, update).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn delete_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<()> {
        self.delete_segment(workspace, id).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn all_segments(&self) -> StoreResult<Vec<Segment>> {
        self.all_segments().await
    }

    #[instrument(level = "debug", skip_all)]
    async fn segment_members(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        page: PageRequest<ContactId>,
    ) -> StoreResult<Page<ContactId, ContactId>> {
        self.segment_members(workspace, segment, page).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn segment_contacts(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        page: PageRequest<ContactId>,
    ) -> StoreResult<Page<Contact, ContactId>> {
        self.segment_contacts(workspace, segment, page).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn contact_segments(&self, workspace: WorkspaceId, contact: ContactId) -> StoreResult<Vec<SegmentId>> {
        self.contact_segments(workspace, contact).await
    }

    #[instrument(level = "debug", skip_all, fields(entered = changes.entered.len(), exited = changes.exited.len()))]
    async fn apply_memberships(
        &self,
        workspace: WorkspaceId,
        changes: MembershipChanges,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.apply_memberships(workspace, changes, at).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn tag_activity(
        &self,
        workspace: WorkspaceId,
        tag: TagId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> StoreResult<Vec<TagDay>> {
        self.tag_activity(workspace, tag, from, to).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn change_head(&self) -> StoreResult<ChangeCursor> {
        self.change_head().await
    }

    #[instrument(level = "debug", skip_all)]
    async fn read_changes(&self, after: ChangeCursor, limit: u32) -> StoreResult<ChangeBatch> {
        self.read_changes(after, limit).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn prune_changes(&self, before: ChangeCursor) -> StoreResult<()> {
        self.prune_changes(before).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn audience_contacts(
        &self,
        workspace: WorkspaceId,
        after: Option<ContactId>,
        limit: u32,
    ) -> StoreResult<Vec<AudienceContact>> {
        self.audience_contacts(workspace, after, limit).await
    }

    #[instrument(level = "debug", skip_all, fields(contacts = ids.len()))]
    async fn audience_contacts_by_id(
        &self,
        workspace: WorkspaceId,
        ids: &[ContactId],
    ) -> StoreResult<Vec<AudienceContact>> {
        self.audience_contacts_by_id(workspace, ids).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn scan_events(
        &self,
        workspace: WorkspaceId,
        event_types: &[String],
        delivered: ChangeCursor,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<EventFact>> {
        self.scan_events(workspace, event_types, delivered, after, limit).await
    }

    #[instrument(level = "debug", skip_all)]
    async fn storage_bytes(&self) -> StoreResult<u64> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&self.pool)
            .await
            .context("reading the database size")?;
        Ok(u64::try_from(bytes).unwrap_or_default())
    }
}

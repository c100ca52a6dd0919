//! [`Store`] for [`SqliteStore`]: each method moves its arguments onto the blocking pool and runs the area module's
//! function in a read snapshot or in one write transaction.

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

use crate::connection::SqliteStore;
use crate::{
    access, audience, companies, contacts, events, forms, history, jobs, merge, schema, sources, tags, tracking,
};

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    // ----- Workspaces -----

    async fn create_workspace(&self, slug: &Slug, name: &str) -> StoreResult<Workspace> {
        let (slug, name) = (slug.clone(), name.to_owned());
        self.write(move |tx| access::create_workspace(tx, &slug, &name)).await
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        let slug = slug.to_owned();
        self.read(move |conn| access::workspace_by_slug(conn, &slug)).await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.read(|conn| access::list_workspaces(conn)).await
    }

    // ----- Users -----

    async fn create_user(&self, workspace: WorkspaceId, user: NewUser) -> StoreResult<User> {
        self.write(move |tx| access::create_user(tx, workspace, user)).await
    }

    async fn get_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<User> {
        self.read(move |conn| access::get_user(conn, workspace, id)).await
    }

    async fn user_by_email(&self, workspace: WorkspaceId, email: &str) -> StoreResult<Option<User>> {
        let email = email.to_owned();
        self.read(move |conn| access::user_by_email(conn, workspace, &email)).await
    }

    async fn list_users(&self, workspace: WorkspaceId, page: PageRequest<UserId>) -> StoreResult<Page<User, UserId>> {
        self.read(move |conn| access::list_users(conn, workspace, page)).await
    }

    async fn update_user(&self, workspace: WorkspaceId, id: UserId, update: UserUpdate) -> StoreResult<User> {
        self.write(move |tx| access::update_user(tx, workspace, id, update)).await
    }

    async fn delete_user(&self, workspace: WorkspaceId, id: UserId) -> StoreResult<()> {
        self.write(move |tx| access::delete_user(tx, workspace, id)).await
    }

    // ----- API keys -----

    async fn create_api_key(&self, workspace: WorkspaceId, key: NewApiKey) -> StoreResult<ApiKey> {
        self.write(move |tx| access::create_api_key(tx, workspace, key)).await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| access::api_key_by_hash(conn, &token_hash)).await
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(move |tx| access::touch_api_key(tx, id, at)).await
    }

    async fn list_api_keys(&self, workspace: WorkspaceId) -> StoreResult<Vec<ApiKey>> {
        self.read(move |conn| access::list_api_keys(conn, workspace)).await
    }

    async fn get_api_key(&self, workspace: WorkspaceId, id: ApiKeyId) -> StoreResult<ApiKey> {
        self.read(move |conn| access::get_api_key(conn, workspace, id)).await
    }

    async fn revoke_api_key(&self, workspace: WorkspaceId, id: ApiKeyId, at: DateTime<Utc>) -> StoreResult<ApiKey> {
        self.write(move |tx| access::revoke_api_key(tx, workspace, id, at)).await
    }

    // ----- Custom fields -----

    async fn create_field(&self, workspace: WorkspaceId, field: NewField) -> StoreResult<FieldDefinition> {
        self.write(move |tx| schema::create_field(tx, workspace, field)).await
    }

    async fn list_fields(
        &self,
        workspace: WorkspaceId,
        entity: Option<FieldEntity>,
    ) -> StoreResult<Vec<FieldDefinition>> {
        self.read(move |conn| schema::list_fields(conn, workspace, entity)).await
    }

    async fn get_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<FieldDefinition> {
        self.read(move |conn| schema::get_field(conn, workspace, id)).await
    }

    async fn update_field(
        &self,
        workspace: WorkspaceId,
        id: FieldId,
        update: FieldUpdate,
    ) -> StoreResult<FieldDefinition> {
        self.write(move |tx| schema::update_field(tx, workspace, id, update)).await
    }

    async fn delete_field(&self, workspace: WorkspaceId, id: FieldId) -> StoreResult<()> {
        self.write(move |tx| schema::delete_field(tx, workspace, id)).await
    }

    // ----- Tags -----

    async fn list_tags(&self, workspace: WorkspaceId) -> StoreResult<Vec<Tag>> {
        self.read(move |conn| tags::list_tags(conn, workspace)).await
    }

    async fn get_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<Tag> {
        self.read(move |conn| tags::get_tag(conn, workspace, id)).await
    }

    async fn create_tag(&self, workspace: WorkspaceId, tag: NewTag) -> StoreResult<Tag> {
        self.write(move |tx| tags::create_tag(tx, workspace, tag)).await
    }

    async fn update_tag(&self, workspace: WorkspaceId, id: TagId, update: TagUpdate) -> StoreResult<Tag> {
        self.write(move |tx| tags::update_tag(tx, workspace, id, update)).await
    }

    async fn delete_tag(&self, workspace: WorkspaceId, id: TagId) -> StoreResult<()> {
        self.write(move |tx| tags::delete_tag(tx, workspace, id)).await
    }

    async fn add_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        paths: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()> {
        let paths = paths.to_vec();
        self.write(move |tx| tags::add_contact_tags(tx, workspace, contact, &paths, actor)).await
    }

    async fn remove_contact_tags(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        paths: &[TagPath],
        actor: Actor,
    ) -> StoreResult<()> {
        let paths = paths.to_vec();
        self.write(move |tx| tags::remove_contact_tags(tx, workspace, contact, &paths, actor)).await
    }

    // ----- Stages and lead statuses -----

    async fn list_entries(&self, workspace: WorkspaceId, list: ListKind) -> StoreResult<Vec<ListEntry>> {
        self.read(move |conn| schema::list_entries(conn, workspace, list)).await
    }

    async fn create_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        entry: NewListEntry,
    ) -> StoreResult<ListEntry> {
        self.write(move |tx| schema::create_entry(tx, workspace, list, entry)).await
    }

    async fn update_entry(
        &self,
        workspace: WorkspaceId,
        list: ListKind,
        key: &str,
        update: ListEntryUpdate,
    ) -> StoreResult<ListEntry> {
        let key = key.to_owned();
        self.write(move |tx| schema::update_entry(tx, workspace, list, &key, update)).await
    }

    async fn delete_entry(&self, workspace: WorkspaceId, list: ListKind, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |tx| schema::delete_entry(tx, workspace, list, &key)).await
    }

    // ----- Note templates -----

    async fn list_note_templates(&self, workspace: WorkspaceId) -> StoreResult<Vec<NoteTemplate>> {
        self.read(move |conn| schema::list_note_templates(conn, workspace)).await
    }

    async fn get_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<NoteTemplate> {
        self.read(move |conn| schema::get_note_template(conn, workspace, id)).await
    }

    async fn create_note_template(
        &self,
        workspace: WorkspaceId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate> {
        self.write(move |tx| schema::create_note_template(tx, workspace, input)).await
    }

    async fn update_note_template(
        &self,
        workspace: WorkspaceId,
        id: NoteTemplateId,
        input: NoteTemplateInput,
    ) -> StoreResult<NoteTemplate> {
        self.write(move |tx| schema::update_note_template(tx, workspace, id, input)).await
    }

    async fn delete_note_template(&self, workspace: WorkspaceId, id: NoteTemplateId) -> StoreResult<()> {
        self.write(move |tx| schema::delete_note_template(tx, workspace, id)).await
    }

    // ----- Companies -----

    async fn create_company(&self, workspace: WorkspaceId, changes: CompanyChanges) -> StoreResult<Company> {
        self.write(move |tx| companies::create_company(tx, workspace, changes)).await
    }

    async fn get_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<Company> {
        self.read(move |conn| companies::get_company(conn, workspace, id)).await
    }

    async fn company_by_domain(&self, workspace: WorkspaceId, domain: &str) -> StoreResult<Option<Company>> {
        let domain = domain.to_owned();
        self.read(move |conn| companies::company_by_domain(conn, workspace, &domain)).await
    }

    async fn list_companies(
        &self,
        workspace: WorkspaceId,
        page: PageRequest<CompanyId>,
    ) -> StoreResult<Page<Company, CompanyId>> {
        self.read(move |conn| companies::list_companies(conn, workspace, page)).await
    }

    async fn update_company(
        &self,
        workspace: WorkspaceId,
        id: CompanyId,
        changes: CompanyChanges,
    ) -> StoreResult<Company> {
        self.write(move |tx| companies::update_company(tx, workspace, id, changes)).await
    }

    async fn delete_company(&self, workspace: WorkspaceId, id: CompanyId) -> StoreResult<()> {
        self.write(move |tx| companies::delete_company(tx, workspace, id)).await
    }

    // ----- Contacts -----

    async fn upsert_contacts(
        &self,
        workspace: WorkspaceId,
        items: Vec<ContactChanges>,
        actor: Actor,
    ) -> StoreResult<Vec<UpsertOutcome>> {
        self.write(move |tx| contacts::upsert_contacts(tx, workspace, items, actor)).await
    }

    async fn get_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Contact> {
        self.read(move |conn| contacts::get_contact(conn, workspace, id)).await
    }

    async fn find_contact(&self, workspace: WorkspaceId, identity: &Identity) -> StoreResult<Option<Contact>> {
        let identity = identity.clone();
        self.read(move |conn| contacts::find_contact(conn, workspace, &identity)).await
    }

    async fn list_contacts(
        &self,
        workspace: WorkspaceId,
        page: PageRequest<ContactCursor>,
    ) -> StoreResult<Page<Contact, ContactCursor>> {
        self.read(move |conn| contacts::list_contacts(conn, workspace, page)).await
    }

    async fn update_contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        changes: ContactChanges,
        actor: Actor,
    ) -> StoreResult<Contact> {
        self.write(move |tx| contacts::update_contact(tx, workspace, id, changes, actor)).await
    }

    async fn delete_contact(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<()> {
        self.write_remembering(move |tx, memo| contacts::delete_contact(tx, memo, workspace, id)).await
    }

    async fn count_contacts(&self, workspace: WorkspaceId) -> StoreResult<u64> {
        self.read(move |conn| contacts::count_contacts(conn, workspace)).await
    }

    async fn contact_timeline(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
        page: PageRequest<TimelineCursor>,
    ) -> StoreResult<Page<TimelineEntry, TimelineCursor>> {
        self.read(move |conn| history::contact_timeline(conn, workspace, id, page)).await
    }

    // ----- Notes -----

    async fn add_note(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        body: &str,
        template: Option<NoteTemplateId>,
        actor: Actor,
    ) -> StoreResult<Note> {
        let body = body.to_owned();
        self.write(move |tx| history::add_note(tx, workspace, contact, &body, template, actor)).await
    }

    async fn delete_note(&self, workspace: WorkspaceId, contact: ContactId, note: i64) -> StoreResult<()> {
        self.write(move |tx| history::delete_note(tx, workspace, contact, note)).await
    }

    // ----- Events -----

    async fn insert_events(&self, workspace: WorkspaceId, events: Vec<NewEvent>) -> StoreResult<Vec<EventOutcome>> {
        // The events are handed back and dropped here, on the caller's task: freeing thousands of JSON trees on the
        // writer's thread would hold up the next write.
        let (outcomes, _events) = self
            .write_remembering(move |tx, memo| Ok((events::insert_events(tx, memo, workspace, &events)?, events)))
            .await?;
        Ok(outcomes)
    }

    // ----- Sources -----

    async fn create_source(&self, workspace: WorkspaceId, source: NewSource) -> StoreResult<Source> {
        self.write(move |tx| sources::create_source(tx, workspace, source)).await
    }

    async fn list_sources(&self, workspace: WorkspaceId) -> StoreResult<Vec<Source>> {
        self.read(move |conn| sources::list_sources(conn, workspace)).await
    }

    async fn get_source(&self, workspace: WorkspaceId, id: SourceId) -> StoreResult<Source> {
        self.read(move |conn| sources::get_source(conn, workspace, id)).await
    }

    async fn update_source(&self, workspace: WorkspaceId, id: SourceId, update: SourceUpdate) -> StoreResult<Source> {
        self.write(move |tx| sources::update_source(tx, workspace, id, update)).await
    }

    async fn rotate_source_key(&self, workspace: WorkspaceId, id: SourceId, write_key: &str) -> StoreResult<Source> {
        let write_key = write_key.to_owned();
        self.write(move |tx| sources::rotate_source_key(tx, workspace, id, &write_key)).await
    }

    async fn revoke_source(&self, workspace: WorkspaceId, id: SourceId, at: DateTime<Utc>) -> StoreResult<Source> {
        self.write(move |tx| sources::revoke_source(tx, workspace, id, at)).await
    }

    async fn source_by_write_key(&self, write_key: &str) -> StoreResult<Option<Source>> {
        let write_key = write_key.to_owned();
        self.read(move |conn| sources::source_by_write_key(conn, &write_key)).await
    }

    // ----- Tracking and identity resolution -----

    async fn ingest_tracking(
        &self,
        workspace: WorkspaceId,
        messages: Vec<TrackingMessage>,
    ) -> StoreResult<Vec<TrackingOutcome>> {
        // As for events: the messages (and what was prepared from them) are dropped here, not on the writer's thread.
        let (outcomes, _messages) = self
            .prepare_then_write(
                move || {
                    let prepared = tracking::prepare_tracking(&messages)?;
                    Ok((messages, prepared))
                },
                move |tx, memo, (messages, prepared)| {
                    Ok((tracking::ingest_tracking(tx, memo, workspace, &messages, &prepared)?, (messages, prepared)))
                },
            )
            .await?;
        Ok(outcomes)
    }

    async fn merge_contacts(
        &self,
        workspace: WorkspaceId,
        survivor: ContactId,
        absorbed: ContactId,
        reason: MergeReason,
        actor: Actor,
    ) -> StoreResult<Contact> {
        self.write_remembering(move |tx, memo| {
            merge::merge_contacts(tx, memo, workspace, survivor, absorbed, reason, actor)
        })
        .await
    }

    async fn merged_into(&self, workspace: WorkspaceId, id: ContactId) -> StoreResult<Option<ContactId>> {
        self.read(move |conn| merge::merged_into(conn, workspace, id)).await
    }

    // ----- Background jobs -----

    async fn create_job(&self, workspace: WorkspaceId, job: NewJob) -> StoreResult<Job> {
        self.write(move |tx| jobs::create_job(tx, workspace, job)).await
    }

    async fn get_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
        self.read(move |conn| jobs::get_job(conn, workspace, id)).await
    }

    async fn list_jobs(
        &self,
        workspace: WorkspaceId,
        kind: JobKind,
        page: PageRequest<JobId>,
    ) -> StoreResult<Page<Job, JobId>> {
        self.read(move |conn| jobs::list_jobs(conn, workspace, kind, page)).await
    }

    async fn claim_job(&self) -> StoreResult<Option<Job>> {
        self.write(jobs::claim_job).await
    }

    async fn report_job_progress(&self, id: JobId, progress: Value) -> StoreResult<bool> {
        self.write(move |tx| jobs::report_job_progress(tx, id, &progress)).await
    }

    async fn finish_job(&self, id: JobId, end: JobEnd) -> StoreResult<Job> {
        self.write(move |tx| jobs::finish_job(tx, id, end)).await
    }

    async fn cancel_job(&self, workspace: WorkspaceId, id: JobId) -> StoreResult<Job> {
        self.write(move |tx| jobs::cancel_job(tx, workspace, id)).await
    }

    async fn fail_interrupted_jobs(&self) -> StoreResult<u64> {
        self.write(jobs::fail_interrupted_jobs).await
    }

    // ----- Forms and consent -----

    async fn create_form(&self, workspace: WorkspaceId, form: NewForm) -> StoreResult<Form> {
        self.write(move |tx| forms::create_form(tx, workspace, form)).await
    }

    async fn list_forms(&self, workspace: WorkspaceId) -> StoreResult<Vec<Form>> {
        self.read(move |conn| forms::list_forms(conn, workspace)).await
    }

    async fn get_form(&self, workspace: WorkspaceId, id: FormId) -> StoreResult<Form> {
        self.read(move |conn| forms::get_form(conn, workspace, id)).await
    }

    async fn form_by_id(&self, id: FormId) -> StoreResult<Option<Form>> {
        self.read(move |conn| forms::form_by_id(conn, id)).await
    }

    async fn update_form(&self, workspace: WorkspaceId, id: FormId, update: FormUpdate) -> StoreResult<Form> {
        self.write(move |tx| forms::update_form(tx, workspace, id, update)).await
    }

    async fn contact_consents(&self, workspace: WorkspaceId, contact: ContactId) -> StoreResult<Vec<Consent>> {
        self.read(move |conn| forms::contact_consents(conn, workspace, contact)).await
    }

    // ----- Segments and the audience engine -----

    async fn create_segment(&self, workspace: WorkspaceId, segment: NewSegment) -> StoreResult<Segment> {
        self.write(move |tx| audience::create_segment(tx, workspace, segment)).await
    }

    async fn list_segments(&self, workspace: WorkspaceId) -> StoreResult<Vec<Segment>> {
        self.read(move |conn| audience::list_segments(conn, workspace)).await
    }

    async fn get_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<Segment> {
        self.read(move |conn| audience::get_segment(conn, workspace, id)).await
    }

    async fn update_segment(
        &self,
        workspace: WorkspaceId,
        id: SegmentId,
        update: SegmentUpdate,
    ) -> StoreResult<Segment> {
        self.write(move |tx| audience::update_segment(tx, workspace, id, update)).await
    }

    async fn delete_segment(&self, workspace: WorkspaceId, id: SegmentId) -> StoreResult<()> {
        self.write(move |tx| audience::delete_segment(tx, workspace, id)).await
    }

    async fn all_segments(&self) -> StoreResult<Vec<Segment>> {
        self.read(|conn| audience::all_segments(conn)).await
    }

    async fn segment_members(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        page: PageRequest<ContactId>,
    ) -> StoreResult<Page<ContactId, ContactId>> {
        self.read(move |conn| audience::segment_members(conn, workspace, segment, page)).await
    }

    async fn segment_contacts(
        &self,
        workspace: WorkspaceId,
        segment: SegmentId,
        page: PageRequest<ContactId>,
    ) -> StoreResult<Page<Contact, ContactId>> {
        self.read(move |conn| audience::segment_contacts(conn, workspace, segment, page)).await
    }

    async fn contact_segments(&self, workspace: WorkspaceId, contact: ContactId) -> StoreResult<Vec<SegmentId>> {
        self.read(move |conn| audience::contact_segments(conn, workspace, contact)).await
    }

    async fn apply_memberships(
        &self,
        workspace: WorkspaceId,
        changes: MembershipChanges,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.write(move |tx| audience::apply_memberships(tx, workspace, changes, at)).await
    }

    async fn tag_activity(
        &self,
        workspace: WorkspaceId,
        tag: TagId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> StoreResult<Vec<TagDay>> {
        self.read(move |conn| audience::tag_activity(conn, workspace, tag, from, to)).await
    }

    async fn change_head(&self) -> StoreResult<ChangeCursor> {
        self.read(|conn| audience::change_head(conn)).await
    }

    async fn read_changes(&self, after: ChangeCursor, limit: u32) -> StoreResult<ChangeBatch> {
        self.read(move |conn| audience::read_changes(conn, after, limit)).await
    }

    async fn prune_changes(&self, before: ChangeCursor) -> StoreResult<()> {
        self.write(move |tx| audience::prune_changes(tx, before)).await
    }

    async fn audience_contacts(
        &self,
        workspace: WorkspaceId,
        after: Option<ContactId>,
        limit: u32,
    ) -> StoreResult<Vec<AudienceContact>> {
        self.read(move |conn| audience::audience_contacts(conn, workspace, after, limit)).await
    }

    async fn audience_contacts_by_id(
        &self,
        workspace: WorkspaceId,
        ids: &[ContactId],
    ) -> StoreResult<Vec<AudienceContact>> {
        let ids = ids.to_vec();
        self.read(move |conn| audience::audience_contacts_by_id(conn, workspace, &ids)).await
    }

    async fn scan_events(
        &self,
        workspace: WorkspaceId,
        event_types: &[String],
        delivered: ChangeCursor,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<EventFact>> {
        let event_types = event_types.to_vec();
        self.read(move |conn| audience::scan_events(conn, workspace, &event_types, delivered, after, limit)).await
    }

    /// Pages in use times the page size: the database as this connection sees it, committed WAL frames included.
    async fn storage_bytes(&self) -> StoreResult<u64> {
        self.read(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0)).map_err(anyhow::Error::from)?;
            let size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0)).map_err(anyhow::Error::from)?;
            Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or_default())
        })
        .await
    }
}

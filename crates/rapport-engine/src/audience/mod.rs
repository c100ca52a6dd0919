//! The audience engine: every segment and dynamic tag kept current within moments of the change that affects it.
//!
//! The engine holds each workspace's contacts in memory as compact facts ([`facts`]), compiles every segment's
//! filter against the workspace's schema ([`compile`]), and keeps a behaviour aggregate (events per day, first and
//! last time) per contact for each distinct event predicate the filters use. It follows the store's change feed:
//! a changed contact is read again and re-evaluated, a new event updates the aggregates it matches, a schema change
//! recompiles. Membership changes are written with their timeline records in one store call per batch, and only
//! then become visible in memory. Conditions that move with the calendar (relative dates, "last N days" windows)
//! are re-evaluated when the day changes in the engine's time zone.
//!
//! Start-up reads every contact once and rebuilds behaviour aggregates from stored events, then compares each
//! segment with its stored members and records the differences, so changes made while the server was down are
//! recorded too.

mod compile;
mod facts;
mod members;
mod schema;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use rapport_domain::filter::{Condition, Filter};
use rapport_domain::{CompanyId, ContactId, SegmentId, TagId, WorkspaceId};
use rapport_store::{
    ChangeCursor, ChangeSubject, EventFact, MembershipChanges, PageRequest, Segment, Store, StoreError, StoreResult,
};
use tokio::sync::{RwLock, watch};

use compile::{Aggregate, Compiled, Compiler, EventMatcher, PredicateKeys, World};
pub use compile::{FilterProblem, Today};
use facts::{ContactFacts, ContactTable};
use members::Members;
use schema::{CompanyFacts, Schema, load_companies};

/// How the engine runs.
#[derive(Clone)]
pub struct AudienceConfig {
    /// The time zone days are counted in ("last 30 days", "today"), as seconds east of UTC.
    pub utc_offset: i32,
    /// How often the change feed is read when idle.
    pub poll_interval: Duration,
    /// The current time in seconds since the epoch; tests move it.
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Default for AudienceConfig {
    fn default() -> AudienceConfig {
        AudienceConfig {
            utc_offset: 0,
            poll_interval: Duration::from_millis(10),
            clock: Arc::new(|| Utc::now().timestamp()),
        }
    }
}

impl std::fmt::Debug for AudienceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudienceConfig")
            .field("utc_offset", &self.utc_offset)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// Where a segment's build stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Evaluated over every contact; `done` of `total` membership changes are written.
    Building { done: u64, total: u64 },
    /// Current: members change as contacts do.
    Ready,
    /// The stored filter no longer fits the workspace (a field or stage it names was deleted).
    Invalid { message: String },
}

/// A segment as the engine sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentView {
    pub status: SegmentStatus,
    pub count: u64,
    pub version: i64,
}

/// An unsaved filter's audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub count: u64,
    /// The first members by id.
    pub contacts: Vec<ContactId>,
}

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error(transparent)]
    Problem(FilterProblem),
    /// The engine is still reading the store after a start.
    #[error("the audience engine is still loading; try again in a moment")]
    Loading,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine's memory, as [`Audience::memory`] reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    pub contacts: usize,
    /// Contacts' facts and the map holding them.
    pub contact_bytes: usize,
    pub segments: usize,
    /// Every segment's member bitset.
    pub member_bytes: usize,
    /// Behaviour aggregates.
    pub aggregate_bytes: usize,
}

/// The handle the API uses: checks and previews filters, and reports segments' state.
#[derive(Clone)]
pub struct Audience {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: AudienceConfig,
    workspaces: RwLock<HashMap<WorkspaceId, WorkspaceState>>,
    ready: AtomicBool,
    /// The feed position everything up to which is applied.
    applied: watch::Sender<ChangeCursor>,
}

/// The engine's loop. Run it beside the server.
pub struct AudienceEngine {
    inner: Arc<Inner>,
}

struct SegmentRuntime {
    record: Segment,
    compiled: Option<Compiled>,
    status: SegmentStatus,
}

struct WorkspaceState {
    schema: Schema,
    companies: HashMap<CompanyId, CompanyFacts>,
    contacts: ContactTable,
    predicates: PredicateKeys,
    matchers: Vec<Option<EventMatcher>>,
    aggregates: Vec<HashMap<ContactId, Aggregate>>,
    /// Segments in dependency order: a segment comes after those its filter names.
    segments: Vec<SegmentRuntime>,
    members: HashMap<SegmentId, Members>,
}

impl Audience {
    pub fn new(store: Arc<dyn Store>, config: AudienceConfig) -> (Audience, AudienceEngine) {
        let (applied, _) = watch::channel(ChangeCursor::default());
        let inner = Arc::new(Inner {
            store,
            config,
            workspaces: RwLock::new(HashMap::new()),
            ready: AtomicBool::new(false),
            applied,
        });
        (Audience { inner: inner.clone() }, AudienceEngine { inner })
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    fn today(&self) -> Today {
        Today::at((self.inner.config.clock)(), self.inner.config.utc_offset)
    }

    /// Checks a filter against the workspace as it is now: fields, stages, tags and segments it names exist,
    /// operators suit the fields' types, and (for segment `this`) no segment would contain itself.
    pub async fn check(
        &self,
        workspace: WorkspaceId,
        filter: &Filter,
        this: Option<SegmentId>,
    ) -> Result<(), AudienceError> {
        self.check_for(workspace, filter, this, None).await
    }

    /// Checks the rule of the dynamic tag `tag` like [`Audience::check`], and that the rule does not depend on the
    /// tag itself, directly or through other segments and dynamic tags.
    pub async fn check_tag_rule(
        &self,
        workspace: WorkspaceId,
        filter: &Filter,
        tag: TagId,
    ) -> Result<(), AudienceError> {
        self.check_for(workspace, filter, None, Some(tag)).await
    }

    async fn check_for(
        &self,
        workspace: WorkspaceId,
        filter: &Filter,
        this: Option<SegmentId>,
        tag: Option<TagId>,
    ) -> Result<(), AudienceError> {
        let store = self.inner.store.as_ref();
        let workspaces = self.inner.workspaces.read().await;
        let loaded = workspaces.get(&workspace);
        let fresh_schema;
        let (schema, records) = match loaded {
            Some(state) => (&state.schema, state.segments.iter().map(|runtime| runtime.record.clone()).collect()),
            None => {
                fresh_schema = Schema::load(store, workspace).await?;
                (&fresh_schema, store.list_segments(workspace).await?)
            }
        };
        let mut tags = tag_segments(&records);
        // A dynamic tag's rule is the segment it is, or will be.
        let this = match tag {
            Some(tag) => Some(*tags.entry(tag).or_insert(SegmentId::new(0))),
            None => this,
        };
        let graph: HashMap<SegmentId, Vec<SegmentId>> = records
            .iter()
            .filter(|record| Some(record.id) != this)
            .map(|record| (record.id, dependencies(&record.filter, schema, &tags)))
            .collect();
        let mut predicates = PredicateKeys::default();
        let mut compiler =
            Compiler { schema, predicates: &mut predicates, segments: &graph, this, tag_segments: &tags };
        compiler.compile(filter).map(|_| ()).map_err(AudienceError::Problem)
    }

    /// Evaluates an unsaved filter over every contact of the workspace.
    pub async fn preview(
        &self,
        workspace: WorkspaceId,
        filter: &Filter,
        limit: usize,
    ) -> Result<Preview, AudienceError> {
        if !self.is_ready() {
            return Err(AudienceError::Loading);
        }
        let today = self.today();
        let workspaces = self.inner.workspaces.read().await;
        let Some(state) = workspaces.get(&workspace) else { return Err(AudienceError::Loading) };
        let mut predicates = PredicateKeys { keys: state.predicates.keys.clone() };
        let graph = segment_graph(state, None);
        let tags = state.tag_segments();
        let mut compiler = Compiler {
            schema: &state.schema,
            predicates: &mut predicates,
            segments: &graph,
            this: None,
            tag_segments: &tags,
        };
        let (compiled, matchers) = compiler.compile(filter).map_err(AudienceError::Problem)?;
        // Predicates no segment uses yet are counted from stored history for this preview.
        let mut extra: Vec<HashMap<ContactId, Aggregate>> = Vec::new();
        extra.resize_with(predicates.keys.len().saturating_sub(state.aggregates.len()), HashMap::new);
        let delivered = *self.inner.applied.borrow();
        for spec in matchers {
            let Some(target) = spec.index.checked_sub(state.aggregates.len()).and_then(|index| extra.get_mut(index))
            else {
                continue;
            };
            scan_history(self.inner.store.as_ref(), workspace, &spec.matcher, delivered, today, target).await?;
        }
        let world = state.world(today, None, &extra);
        let mut matching: Vec<ContactId> =
            state.contacts.values().filter(|facts| compiled.root.eval(facts, &world)).map(|facts| facts.id).collect();
        let count = u64::try_from(matching.len()).unwrap_or(u64::MAX);
        matching.sort_unstable();
        matching.truncate(limit);
        Ok(Preview { count, contacts: matching })
    }

    /// The state of a segment in memory, `None` when the engine does not (yet) know it.
    pub async fn segment(&self, workspace: WorkspaceId, id: SegmentId) -> Option<SegmentView> {
        let workspaces = self.inner.workspaces.read().await;
        let state = workspaces.get(&workspace)?;
        let runtime = state.segments.iter().find(|runtime| runtime.record.id == id)?;
        let count = state.members.get(&id).map_or(0, |members| u64::try_from(members.len()).unwrap_or(u64::MAX));
        Some(SegmentView { status: runtime.status.clone(), count, version: runtime.record.version })
    }

    /// Waits until everything committed before this call has been applied (for tests and benchmarks).
    pub async fn settle(&self) -> StoreResult<()> {
        let head = self.inner.store.change_head().await?;
        let mut applied = self.inner.applied.subscribe();
        let _ = applied.wait_for(|cursor| cursor.changes >= head.changes && cursor.events >= head.events).await;
        Ok(())
    }

    /// What the engine holds in memory, in bytes.
    pub async fn memory(&self) -> MemoryUse {
        let workspaces = self.inner.workspaces.read().await;
        let mut memory = MemoryUse::default();
        for state in workspaces.values() {
            memory.contacts += state.contacts.len();
            // A map entry: key, value and one control byte, at the map's capacity.
            memory.contact_bytes += state.contacts.bytes();
            for aggregates in &state.aggregates {
                memory.aggregate_bytes += aggregates.capacity() * (size_of::<ContactId>() + size_of::<Aggregate>() + 1);
                memory.aggregate_bytes +=
                    aggregates.values().map(|aggregate| aggregate.days.capacity() * 8).sum::<usize>();
            }
            memory.segments += state.members.len();
            memory.member_bytes += state.members.values().map(Members::bytes).sum::<usize>();
        }
        memory
    }
}

/// The segments a stored filter depends on: those it names with `in_segment`, and the definitions of dynamic tags
/// it tests (a tag group counts with every tag under it).
fn dependencies(filter: &str, schema: &Schema, tag_segments: &HashMap<TagId, SegmentId>) -> Vec<SegmentId> {
    let Ok(filter) = rapport_domain::filter::parse(filter) else { return Vec::new() };
    let mut found = Vec::new();
    for condition in filter.conditions() {
        match condition {
            Condition::InSegment { segment } => found.extend(segment.parse().ok().map(SegmentId::new)),
            Condition::Tag { paths, .. } => {
                for path in paths {
                    found.extend(schema.tag_subtree(path).iter().filter_map(|tag| tag_segments.get(tag).copied()));
                }
            }
            _ => {}
        }
    }
    found
}

/// Dynamic tags' segments by tag.
fn tag_segments(records: &[Segment]) -> HashMap<TagId, SegmentId> {
    records.iter().filter_map(|record| record.tag_id.map(|tag| (tag, record.id))).collect()
}

/// Each segment with the segments its filter names, leaving out `except` (the one being redefined).
fn segment_graph(state: &WorkspaceState, except: Option<SegmentId>) -> HashMap<SegmentId, Vec<SegmentId>> {
    let tags = state.tag_segments();
    state
        .segments
        .iter()
        .map(|runtime| {
            let names = if Some(runtime.record.id) == except {
                Vec::new()
            } else {
                runtime.compiled.as_ref().map_or_else(
                    || dependencies(&runtime.record.filter, &state.schema, &tags),
                    |compiled| compiled.segments.clone(),
                )
            };
            (runtime.record.id, names)
        })
        .collect()
}

impl WorkspaceState {
    fn world<'a>(
        &'a self,
        today: Today,
        pending: Option<&'a HashMap<(SegmentId, ContactId), bool>>,
        extra: &'a [HashMap<ContactId, Aggregate>],
    ) -> World<'a> {
        World {
            schema: &self.schema,
            companies: &self.companies,
            members: &self.members,
            pending,
            aggregates: &self.aggregates,
            extra,
            today,
        }
    }

    fn tag_segments(&self) -> HashMap<TagId, SegmentId> {
        self.segments.iter().filter_map(|runtime| runtime.record.tag_id.map(|tag| (tag, runtime.record.id))).collect()
    }
}

/// Adds the stored events the feed delivered up to `delivered` that match to the aggregates.
async fn scan_history(
    store: &dyn Store,
    workspace: WorkspaceId,
    matcher: &EventMatcher,
    delivered: ChangeCursor,
    today: Today,
    aggregates: &mut HashMap<ContactId, Aggregate>,
) -> StoreResult<()> {
    let types = [matcher.event.clone()];
    let mut after = 0;
    loop {
        let events = store.scan_events(workspace, &types, delivered, after, 5_000).await?;
        let Some(last) = events.last() else { return Ok(()) };
        after = last.id;
        for event in &events {
            if matcher.matches(&event.event_type, &event.properties, &today) {
                aggregates.entry(event.contact_id).or_default().add(event.occurred_at.timestamp(), today.offset);
            }
        }
    }
}

impl AudienceEngine {
    /// Loads every workspace, then follows the change feed until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut cursor = loop {
            match self.load_all().await {
                Ok(cursor) => break cursor,
                Err(error) => {
                    tracing::error!(error = %error, "loading the audience engine; retrying");
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        self.inner.ready.store(true, Ordering::Release);
        self.inner.applied.send_replace(cursor);
        let mut day = self.today().day;
        let mut last_prune = std::time::Instant::now();
        loop {
            let mut busy = false;
            match self.tick(cursor).await {
                Ok((next, more)) => {
                    cursor = next;
                    busy = more;
                    self.inner.applied.send_replace(cursor);
                }
                Err(error) => tracing::error!(error = %error, "applying changes to segments"),
            }
            let today = self.today();
            if today.day != day {
                day = today.day;
                if let Err(error) = self.new_day().await {
                    tracing::error!(error = %error, "re-evaluating segments for a new day");
                }
            }
            if last_prune.elapsed() > Duration::from_secs(5) {
                last_prune = std::time::Instant::now();
                if let Err(error) = self.inner.store.prune_changes(cursor).await {
                    tracing::warn!(error = %error, "pruning the change feed");
                }
            }
            let pause = if busy { Duration::ZERO } else { self.inner.config.poll_interval };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn today(&self) -> Today {
        Today::at((self.inner.config.clock)(), self.inner.config.utc_offset)
    }

    async fn load_all(&self) -> StoreResult<ChangeCursor> {
        let store = self.inner.store.as_ref();
        let head = store.change_head().await?;
        let mut workspaces = self.inner.workspaces.write().await;
        workspaces.clear();
        for workspace in store.list_workspaces().await? {
            let state = self.load_workspace(workspace.id, head).await?;
            workspaces.insert(workspace.id, state);
        }
        Ok(head)
    }

    /// Reads a workspace whole and brings its stored memberships in line with its filters.
    async fn load_workspace(&self, workspace: WorkspaceId, delivered: ChangeCursor) -> StoreResult<WorkspaceState> {
        let store = self.inner.store.as_ref();
        let schema = Schema::load(store, workspace).await?;
        let companies = load_companies(store, workspace, &schema).await?;
        let mut contacts = ContactTable::default();
        let mut after = None;
        loop {
            let page = store.audience_contacts(workspace, after, 2_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.contact.id);
            for contact in &page {
                contacts.insert(ContactFacts::new(contact, &schema));
            }
        }
        contacts.shrink();
        let mut state = WorkspaceState {
            schema,
            companies,
            contacts,
            predicates: PredicateKeys::default(),
            matchers: Vec::new(),
            aggregates: Vec::new(),
            segments: Vec::new(),
            members: HashMap::new(),
        };
        let segments = store.list_segments(workspace).await?;
        for segment in &segments {
            let mut members = Members::default();
            let mut after = None;
            loop {
                let page = store.segment_members(workspace, segment.id, PageRequest { after, limit: 10_000 }).await?;
                for id in page.items {
                    members.insert(id);
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            state.members.insert(segment.id, members);
        }
        self.sync_segments(workspace, &mut state, segments, delivered, true).await?;
        Ok(state)
    }

    /// Makes the workspace's segments those of `records`: compiles new and changed ones, builds them over every
    /// contact and writes the differences; drops deleted ones. With `rebuild`, every segment is re-evaluated.
    async fn sync_segments(
        &self,
        workspace: WorkspaceId,
        state: &mut WorkspaceState,
        records: Vec<Segment>,
        delivered: ChangeCursor,
        rebuild: bool,
    ) -> StoreResult<()> {
        let today = self.today();
        let previous: HashMap<SegmentId, SegmentRuntime> =
            state.segments.drain(..).map(|runtime| (runtime.record.id, runtime)).collect();
        let kept: HashSet<SegmentId> = records.iter().map(|record| record.id).collect();
        state.members.retain(|id, _| kept.contains(id));
        // Recompile everything against the current schema (cheap), in dependency order.
        let tags = tag_segments(&records);
        let graph: HashMap<SegmentId, Vec<SegmentId>> =
            records.iter().map(|record| (record.id, dependencies(&record.filter, &state.schema, &tags))).collect();
        let ordered = dependency_order(records, &graph);
        let mut predicates = PredicateKeys::default();
        let mut matchers: Vec<Option<EventMatcher>> = Vec::new();
        let mut to_build = Vec::new();
        for record in ordered {
            let old = previous.get(&record.id);
            let changed =
                rebuild || old.is_none_or(|old| old.record.version != record.version || old.compiled.is_none());
            let compiled = match rapport_domain::filter::parse(&record.filter) {
                Ok(filter) => {
                    let mut compiler = Compiler {
                        schema: &state.schema,
                        predicates: &mut predicates,
                        segments: &graph,
                        this: Some(record.id),
                        tag_segments: &tags,
                    };
                    compiler.compile(&filter).map_err(|problem| problem.message)
                }
                Err(error) => Err(error.to_string()),
            };
            let runtime = match compiled {
                Ok((compiled, specs)) => {
                    for spec in specs {
                        if matchers.len() <= spec.index {
                            matchers.resize_with(spec.index + 1, || None);
                        }
                        if matchers[spec.index].is_none() {
                            matchers[spec.index] = Some(spec.matcher);
                        }
                    }
                    let status = match old {
                        Some(old) if !changed => old.status.clone(),
                        _ => SegmentStatus::Building { done: 0, total: 0 },
                    };
                    if changed || status != SegmentStatus::Ready {
                        to_build.push(record.id);
                    }
                    SegmentRuntime { record, compiled: Some(compiled), status }
                }
                Err(message) => {
                    tracing::warn!(segment = %record.id, %message, "a stored segment filter no longer compiles");
                    SegmentRuntime { record, compiled: None, status: SegmentStatus::Invalid { message } }
                }
            };
            state.members.entry(runtime.record.id).or_default();
            state.segments.push(runtime);
        }
        // Aggregates: keep those whose predicate is still used, build new ones from history.
        let mut old_aggregates: HashMap<String, HashMap<ContactId, Aggregate>> =
            state.predicates.keys.drain(..).zip(state.aggregates.drain(..)).collect();
        let mut aggregates = Vec::with_capacity(predicates.keys.len());
        for (index, key) in predicates.keys.iter().enumerate() {
            match old_aggregates.remove(key) {
                Some(existing) => aggregates.push(existing),
                None => {
                    let mut built = HashMap::new();
                    if let Some(Some(matcher)) = matchers.get(index) {
                        scan_history(self.inner.store.as_ref(), workspace, matcher, delivered, today, &mut built)
                            .await?;
                    }
                    aggregates.push(built);
                }
            }
        }
        state.predicates = predicates;
        state.matchers = matchers;
        state.aggregates = aggregates;

        for id in to_build {
            self.build(workspace, state, id, today).await?;
        }
        Ok(())
    }

    /// Evaluates one segment over every contact and writes the differences from its members, reporting progress.
    async fn build(
        &self,
        workspace: WorkspaceId,
        state: &mut WorkspaceState,
        id: SegmentId,
        today: Today,
    ) -> StoreResult<()> {
        let Some(position) = state.segments.iter().position(|runtime| runtime.record.id == id) else { return Ok(()) };
        let matching: Members = {
            let Some(compiled) = state.segments[position].compiled.as_ref() else { return Ok(()) };
            let world = state.world(today, None, &[]);
            let mut matching = Members::default();
            for facts in state.contacts.values() {
                if compiled.root.eval(facts, &world) {
                    matching.insert(facts.id);
                }
            }
            matching
        };
        let current = state.members.get(&id).cloned().unwrap_or_default();
        let entered = matching.difference(&current);
        let exited = current.difference(&matching);
        let total = u64::try_from(entered.len() + exited.len()).unwrap_or(u64::MAX);
        let mut done = 0u64;
        state.segments[position].status = SegmentStatus::Building { done, total };
        let at = Utc::now();
        let changes: Vec<(bool, ContactId)> =
            entered.into_iter().map(|id| (true, id)).chain(exited.into_iter().map(|id| (false, id))).collect();
        for chunk in changes.chunks(5_000) {
            let mut batch = MembershipChanges::default();
            for (entering, contact) in chunk {
                if *entering {
                    batch.entered.push((id, *contact));
                } else {
                    batch.exited.push((id, *contact));
                }
            }
            self.inner.store.apply_memberships(workspace, batch, at).await?;
            let members = state.members.entry(id).or_default();
            for (entering, contact) in chunk {
                if *entering {
                    members.insert(*contact);
                } else {
                    members.remove(*contact);
                }
            }
            done += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            state.segments[position].status = SegmentStatus::Building { done, total };
        }
        state.segments[position].status = SegmentStatus::Ready;
        Ok(())
    }

    /// Reads one batch of the feed and applies it. Returns the next position and whether more may be waiting.
    async fn tick(&self, cursor: ChangeCursor) -> StoreResult<(ChangeCursor, bool)> {
        const LIMIT: u32 = 5_000;
        let store = self.inner.store.as_ref();
        let batch = store.read_changes(cursor, LIMIT).await?;
        // Read again at once after anything: a store may return less than the limit while more is waiting.
        let busy = !(batch.changes.is_empty() && batch.events.is_empty());
        if !busy {
            return Ok((batch.next, false));
        }
        let mut by_workspace: HashMap<WorkspaceId, (Vec<ChangeSubject>, Vec<EventFact>)> = HashMap::new();
        for change in batch.changes {
            by_workspace.entry(change.workspace_id).or_default().0.push(change.subject);
        }
        for event in batch.events {
            by_workspace.entry(event.workspace_id).or_default().1.push(event);
        }
        let mut workspaces = self.inner.workspaces.write().await;
        for (workspace, (subjects, events)) in by_workspace {
            if !workspaces.contains_key(&workspace) {
                // A workspace created since the start.
                let state = self.load_workspace(workspace, batch.next).await?;
                workspaces.insert(workspace, state);
                continue;
            }
            let Some(state) = workspaces.get_mut(&workspace) else { continue };
            if let Err(error) = self.apply(workspace, state, subjects, events, cursor, batch.next).await {
                // Memory may now differ from the store: read the workspace again.
                tracing::warn!(error = %error, %workspace, "re-reading a workspace after a failed update");
                let state = self.load_workspace(workspace, batch.next).await?;
                workspaces.insert(workspace, state);
            }
        }
        Ok((batch.next, busy))
    }

    async fn apply(
        &self,
        workspace: WorkspaceId,
        state: &mut WorkspaceState,
        subjects: Vec<ChangeSubject>,
        events: Vec<EventFact>,
        before: ChangeCursor,
        next: ChangeCursor,
    ) -> StoreResult<()> {
        let store = self.inner.store.as_ref();
        let today = self.today();
        let mut contacts: Vec<ContactId> = Vec::new();
        let mut companies: Vec<CompanyId> = Vec::new();
        let mut schema_changed = false;
        for subject in subjects {
            match subject {
                ChangeSubject::Contact(id) => contacts.push(id),
                ChangeSubject::Company(id) => companies.push(id),
                ChangeSubject::Schema => schema_changed = true,
            }
        }
        if schema_changed {
            let schema = Schema::load(store, workspace).await?;
            let layout_changed = schema.contact_fields != state.schema.contact_fields
                || schema.stages != state.schema.stages
                || schema.statuses != state.schema.statuses;
            let tags_moved = state.schema.tags.iter().any(|(path, id)| schema.tags.get(path) != Some(id));
            if layout_changed {
                // Everything is read again, this batch's events included.
                *state = self.load_workspace(workspace, next).await?;
                return Ok(());
            }
            state.schema = schema;
            let records = store.list_segments(workspace).await?;
            // New predicates count history up to where this batch starts; its own events follow below.
            self.sync_segments(workspace, state, records, before, tags_moved).await?;
        }
        contacts.sort_unstable();
        contacts.dedup();
        let mut dirty: HashSet<ContactId> = contacts.iter().copied().collect();
        if !contacts.is_empty() {
            let fresh = store.audience_contacts_by_id(workspace, &contacts).await?;
            let present: HashSet<ContactId> = fresh.iter().map(|contact| contact.contact.id).collect();
            // Contacts that are gone: merged into another (whose aggregates absorb theirs) or erased.
            for id in contacts.iter().filter(|id| !present.contains(id)) {
                state.contacts.remove(id);
                let survivor = store.merged_into(workspace, *id).await?;
                for aggregates in &mut state.aggregates {
                    if let Some(aggregate) = aggregates.remove(id)
                        && let Some(survivor) = survivor
                    {
                        aggregates.entry(survivor).or_default().absorb(aggregate);
                    }
                }
                if let Some(survivor) = survivor {
                    dirty.insert(survivor);
                }
                for members in state.members.values_mut() {
                    members.remove(*id);
                }
                dirty.remove(id);
            }
            for contact in &fresh {
                state.contacts.insert(ContactFacts::new(contact, &state.schema));
            }
        }
        if !companies.is_empty() {
            for id in &companies {
                match store.get_company(workspace, *id).await {
                    Ok(company) => {
                        state.companies.insert(*id, CompanyFacts::new(&company, &state.schema));
                    }
                    Err(StoreError::NotFound { .. }) => {
                        state.companies.remove(id);
                    }
                    Err(error) => return Err(error),
                }
            }
            let changed: HashSet<CompanyId> = companies.into_iter().collect();
            let read_by_filters = state
                .segments
                .iter()
                .any(|runtime| runtime.compiled.as_ref().is_some_and(|compiled| compiled.uses_company));
            if read_by_filters {
                dirty.extend(
                    state
                        .contacts
                        .values()
                        .filter(|facts| facts.company().is_some_and(|company| changed.contains(&company)))
                        .map(|facts| facts.id),
                );
            }
        }
        // Contacts whose only change is new events need only the segments that read those events.
        let mut by_events: HashMap<ContactId, Vec<usize>> = HashMap::new();
        for event in &events {
            for (index, matcher) in state.matchers.iter().enumerate() {
                let Some(matcher) = matcher else { continue };
                if matcher.matches(&event.event_type, &event.properties, &today) {
                    state.aggregates[index]
                        .entry(event.contact_id)
                        .or_default()
                        .add(event.occurred_at.timestamp(), today.offset);
                    if !dirty.contains(&event.contact_id) {
                        by_events.entry(event.contact_id).or_default().push(index);
                    }
                }
            }
        }
        self.reevaluate(workspace, state, &dirty, &by_events, today).await
    }

    /// Re-evaluates contacts against every ready segment, in dependency order, and writes what changed.
    async fn reevaluate(
        &self,
        workspace: WorkspaceId,
        state: &mut WorkspaceState,
        dirty: &HashSet<ContactId>,
        by_events: &HashMap<ContactId, Vec<usize>>,
        today: Today,
    ) -> StoreResult<()> {
        if dirty.is_empty() && by_events.is_empty() {
            return Ok(());
        }
        let mut changes = MembershipChanges::default();
        // Membership as it will be, decided segment by segment, so that in_segment sees the segments before it.
        let mut pending: HashMap<(SegmentId, ContactId), bool> = HashMap::new();
        for runtime in &state.segments {
            let Some(compiled) = &runtime.compiled else { continue };
            if runtime.status != SegmentStatus::Ready {
                continue;
            }
            let id = runtime.record.id;
            let current = state.members.get(&id);
            // A segment that reads other segments may change with them, whatever changed the contact.
            let reads_events = |predicates: &Vec<usize>| {
                !compiled.segments.is_empty() || predicates.iter().any(|index| compiled.predicates.contains(index))
            };
            let touched = by_events.iter().filter(|(_, predicates)| reads_events(predicates)).map(|(id, _)| id);
            for contact in dirty.iter().chain(touched) {
                let Some(facts) = state.contacts.get(contact) else { continue };
                let world = state.world(today, Some(&pending), &[]);
                let matches = compiled.root.eval(facts, &world);
                let was = current.is_some_and(|members| members.contains(*contact));
                if matches != was {
                    pending.insert((id, *contact), matches);
                    if matches {
                        changes.entered.push((id, *contact));
                    } else {
                        changes.exited.push((id, *contact));
                    }
                }
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.inner.store.apply_memberships(workspace, changes, Utc::now()).await?;
        for ((segment, contact), member) in pending {
            let members = state.members.entry(segment).or_default();
            if member {
                members.insert(contact);
            } else {
                members.remove(contact);
            }
        }
        Ok(())
    }

    /// At midnight, conditions on relative dates and windows may flip for any contact: re-evaluate those segments.
    async fn new_day(&self) -> StoreResult<()> {
        let today = self.today();
        let mut workspaces = self.inner.workspaces.write().await;
        for (workspace, state) in workspaces.iter_mut() {
            let ids: Vec<SegmentId> = state
                .segments
                .iter()
                .filter(|runtime| runtime.compiled.as_ref().is_some_and(|compiled| compiled.uses_today))
                .map(|runtime| runtime.record.id)
                .collect();
            for id in ids {
                self.build(*workspace, state, id, today).await?;
            }
        }
        Ok(())
    }
}

/// Orders segments so that each comes after the segments its filter names (cycles, which checks prevent, keep
/// their stored order).
fn dependency_order(records: Vec<Segment>, graph: &HashMap<SegmentId, Vec<SegmentId>>) -> Vec<Segment> {
    fn visit(
        id: SegmentId,
        graph: &HashMap<SegmentId, Vec<SegmentId>>,
        by_id: &mut HashMap<SegmentId, Segment>,
        visiting: &mut HashSet<SegmentId>,
        ordered: &mut Vec<Segment>,
    ) {
        if !visiting.insert(id) {
            return;
        }
        for dependency in graph.get(&id).into_iter().flatten() {
            visit(*dependency, graph, by_id, visiting, ordered);
        }
        if let Some(record) = by_id.remove(&id) {
            ordered.push(record);
        }
    }
    let ids: Vec<SegmentId> = records.iter().map(|record| record.id).collect();
    let mut by_id: HashMap<SegmentId, Segment> = records.into_iter().map(|record| (record.id, record)).collect();
    let mut ordered = Vec::with_capacity(ids.len());
    let mut visiting = HashSet::new();
    for id in ids {
        visit(id, graph, &mut by_id, &mut visiting, &mut ordered);
    }
    ordered
}

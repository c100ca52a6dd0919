//! Segments, memberships and the change feed: what the audience engine relies on the store for.

use std::collections::HashSet;
use std::sync::Arc;

use rapport_domain::{CompanyId, ContactChanges, ContactId, FieldEntity, Patch, SegmentId, TagKind, WorkspaceId};
use serde_json::json;

use super::{ACTOR, at, by_email, code, contact, json_object, path, slug, text, timeline, upsert, workspace};
use crate::{
    ChangeBatch, ChangeCursor, ChangeSubject, CompanyChanges, ContactRef, EventOutcome, MembershipChanges, NewEvent,
    NewField, NewSegment, NewTag, PageRequest, SegmentUpdate, Store,
};

fn new_segment(name: &str, filter: &str) -> NewSegment {
    NewSegment { name: text(name), description: String::new(), filter: filter.to_owned(), tag_id: None }
}

fn page_view(contact: ContactId, url: &str, seconds: i64) -> NewEvent {
    NewEvent {
        contact: ContactRef::Id(contact),
        event_type: "page_viewed".to_owned(),
        properties: json_object(json!({ "url": url })),
        context: json_object(json!({ "ip": "203.0.113.7" })),
        occurred_at: at(seconds),
        received_at: at(seconds),
        source: None,
        message_id: None,
    }
}

/// Reads the feed until it is empty, gathering everything it returned.
async fn drain(store: &dyn Store, cursor: &mut ChangeCursor) -> ChangeBatch {
    let mut all = ChangeBatch::default();
    loop {
        let batch = store.read_changes(*cursor, 1_000).await.unwrap();
        *cursor = batch.next;
        if batch.changes.is_empty() && batch.events.is_empty() {
            all.next = *cursor;
            return all;
        }
        all.changes.extend(batch.changes);
        all.events.extend(batch.events);
    }
}

fn subjects(batch: &ChangeBatch, ws: WorkspaceId) -> HashSet<ChangeSubject> {
    batch.changes.iter().filter(|change| change.workspace_id == ws).map(|change| change.subject).collect()
}

pub async fn segments_crud(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let hot = store.create_segment(ws, new_segment("Hot leads", "stage >= mql")).await.unwrap();
    assert_eq!(
        (hot.name.as_str(), hot.filter.as_str(), hot.version, hot.member_count),
        ("Hot leads", "stage >= mql", 1, 0)
    );
    assert_eq!(
        code(store.create_segment(ws, new_segment("Hot leads", "stage = sql")).await),
        "conflict segment_exists"
    );
    let cold = store.create_segment(ws, new_segment("Cold", "stage = raw")).await.unwrap();
    let names: Vec<String> = store.list_segments(ws).await.unwrap().into_iter().map(|segment| segment.name).collect();
    assert_eq!(names, ["Hot leads", "Cold"]);

    let renamed = store
        .update_segment(ws, hot.id, SegmentUpdate { name: Some(text("热门线索")), ..SegmentUpdate::default() })
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.version), ("热门线索", 1), "a rename keeps the version");
    let same = SegmentUpdate { filter: Some("stage >= mql".to_owned()), ..SegmentUpdate::default() };
    assert_eq!(store.update_segment(ws, hot.id, same).await.unwrap().version, 1, "the same filter keeps the version");
    let edited = SegmentUpdate { filter: Some("stage >= sql".to_owned()), ..SegmentUpdate::default() };
    assert_eq!(store.update_segment(ws, hot.id, edited).await.unwrap().version, 2);
    let taken = SegmentUpdate { name: Some(text("Cold")), ..SegmentUpdate::default() };
    assert_eq!(code(store.update_segment(ws, hot.id, taken).await), "conflict segment_exists");

    store.delete_segment(ws, cold.id).await.unwrap();
    assert_eq!(code(store.get_segment(ws, cold.id).await), "not_found segment");
    assert_eq!(code(store.delete_segment(ws, cold.id).await), "not_found segment");
    let other = workspace(store, "other").await;
    assert_eq!(code(store.get_segment(other, hot.id).await), "not_found segment");
    assert_eq!(store.all_segments().await.unwrap().len(), 1);

    // A dynamic tag's definition.
    let manual = store.create_tag(ws, NewTag { path: path("手动"), kind: TagKind::Manual }).await.unwrap();
    let dynamic = store.create_tag(ws, NewTag { path: path("自动/活跃"), kind: TagKind::Dynamic }).await.unwrap();
    let with_tag = |name: &str, tag| NewSegment { tag_id: Some(tag), ..new_segment(name, "stage = raw") };
    assert_eq!(code(store.create_segment(ws, with_tag("a", manual.id)).await), "invalid not_dynamic_tag tag_id");
    let unknown = rapport_domain::TagId::new(999_999);
    assert_eq!(code(store.create_segment(ws, with_tag("b", unknown)).await), "invalid unknown_tag tag_id");
    let definition = store.create_segment(ws, with_tag("c", dynamic.id)).await.unwrap();
    assert_eq!(definition.tag_id, Some(dynamic.id));
    assert_eq!(code(store.create_segment(ws, with_tag("d", dynamic.id)).await), "conflict tag_has_segment");
}

pub async fn memberships_are_recorded_once(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let li = contact(store, ws, "li@client.cn").await;
    let wang = contact(store, ws, "wang@client.cn").await;
    let segment = store.create_segment(ws, new_segment("VIP", "tag(\"vip\")")).await.unwrap();
    let enter = MembershipChanges { entered: vec![(segment.id, li), (segment.id, wang)], exited: vec![] };
    store.apply_memberships(ws, enter.clone(), at(10)).await.unwrap();
    store.apply_memberships(ws, enter, at(11)).await.unwrap();
    assert_eq!(store.get_segment(ws, segment.id).await.unwrap().member_count, 2);
    assert_eq!(store.contact_segments(ws, li).await.unwrap(), [segment.id]);
    assert_eq!(timeline(store, ws, li).await.iter().filter(|line| *line == "segment_entered VIP").count(), 1);

    let first = store.segment_members(ws, segment.id, PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!((first.items.clone(), first.next), (vec![li], Some(li)));
    let second = store.segment_members(ws, segment.id, PageRequest { after: first.next, limit: 1 }).await.unwrap();
    assert_eq!((second.items, second.next), (vec![wang], None));
    let contacts = store.segment_contacts(ws, segment.id, PageRequest { after: None, limit: 10 }).await.unwrap();
    let emails: Vec<_> = contacts.items.iter().map(|contact| contact.email.clone().unwrap_or_default()).collect();
    assert_eq!(emails, ["li@client.cn", "wang@client.cn"]);

    let exit = MembershipChanges { entered: vec![], exited: vec![(segment.id, li)] };
    store.apply_memberships(ws, exit.clone(), at(20)).await.unwrap();
    store.apply_memberships(ws, exit, at(21)).await.unwrap();
    assert_eq!(store.contact_segments(ws, li).await.unwrap(), Vec::<SegmentId>::new());
    let history = timeline(store, ws, li).await;
    assert_eq!(
        history.iter().filter(|line| line.starts_with("segment_")).collect::<Vec<_>>(),
        ["segment_exited VIP", "segment_entered VIP"]
    );
    let entry = store.contact_timeline(ws, li, PageRequest { after: None, limit: 1 }).await.unwrap().items.remove(0);
    assert_eq!((entry.kind.as_str(), &entry.data["segment_id"]), ("segment_exited", &json!(segment.id.get())));

    // Erasing a contact takes its memberships with it; changes for contacts or segments that are gone are skipped.
    store.delete_contact(ws, wang).await.unwrap();
    assert_eq!(store.get_segment(ws, segment.id).await.unwrap().member_count, 0);
    let stale = MembershipChanges { entered: vec![(segment.id, wang), (SegmentId::new(999_999), li)], exited: vec![] };
    store.apply_memberships(ws, stale, at(30)).await.unwrap();
    assert_eq!(store.get_segment(ws, segment.id).await.unwrap().member_count, 0);
    assert_eq!(code(store.contact_segments(ws, wang).await), "not_found contact");

    // A dynamic tag's members carry the tag.
    let tag = store.create_tag(ws, NewTag { path: path("自动/活跃"), kind: TagKind::Dynamic }).await.unwrap();
    let active = NewSegment { tag_id: Some(tag.id), ..new_segment("Active", "count(event \"x\", ever) > 0") };
    let active = store.create_segment(ws, active).await.unwrap();
    let enter = MembershipChanges { entered: vec![(active.id, li)], exited: vec![] };
    store.apply_memberships(ws, enter, at(40)).await.unwrap();
    assert_eq!(store.get_contact(ws, li).await.unwrap().tags, ["自动/活跃"]);
    assert_eq!(timeline(store, ws, li).await[..2], ["tag_added 自动/活跃", "segment_entered Active"]);
    let exit = MembershipChanges { entered: vec![], exited: vec![(active.id, li)] };
    store.apply_memberships(ws, exit, at(50)).await.unwrap();
    assert!(store.get_contact(ws, li).await.unwrap().tags.is_empty());
    assert_eq!(timeline(store, ws, li).await[..2], ["tag_removed 自动/活跃", "segment_exited Active"]);
}

pub async fn change_feed_follows_every_write(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let mut cursor = store.change_head().await.unwrap();
    let li = contact(store, ws, "li@client.cn").await;
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Contact(li)));
    assert!(drain(store, &mut cursor).await.changes.is_empty(), "a change is read once");

    // Events arrive with their workspace, type and properties.
    let outcomes =
        store.insert_events(ws, vec![page_view(li, "/pricing", 5), page_view(li, "/docs", 6)]).await.unwrap();
    let ids: Vec<i64> = outcomes
        .iter()
        .map(|outcome| match outcome {
            EventOutcome::Stored { event_id, .. } => *event_id,
            other => panic!("not stored: {other:?}"),
        })
        .collect();
    let batch = drain(store, &mut cursor).await;
    let events: Vec<_> = batch.events.iter().map(|event| (event.id, event.workspace_id, event.contact_id)).collect();
    assert_eq!(events, [(ids[0], ws, li), (ids[1], ws, li)]);
    assert_eq!(batch.events[0].event_type, "page_viewed");
    assert_eq!(batch.events[0].properties["url"], json!("/pricing"));
    assert_eq!(batch.events[0].occurred_at, at(5));
    assert!(drain(store, &mut cursor).await.events.is_empty(), "an event is read once");

    // Tags, field values, companies and the schema.
    store.add_contact_tags(ws, li, &[path("vip")], ACTOR).await.unwrap();
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Contact(li)));
    let changes = ContactChanges { stage: Some(slug("mql")), ..by_email("li@client.cn") };
    upsert(store, ws, changes).await.unwrap();
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Contact(li)));
    let company = store
        .create_company(ws, CompanyChanges { name: Some(text("Acme 制造")), ..CompanyChanges::default() })
        .await
        .unwrap();
    drain(store, &mut cursor).await;
    let renamed = CompanyChanges { name: Some(text("Acme 集团")), ..CompanyChanges::default() };
    store.update_company(ws, company.id, renamed).await.unwrap();
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Company(company.id)));
    let field = NewField {
        entity: FieldEntity::Contact,
        key: slug("industry"),
        label: text("行业"),
        field_type: rapport_domain::FieldType::Text,
        options: vec![],
        merge_rule: rapport_domain::MergeRule::Latest,
    };
    store.create_field(ws, field).await.unwrap();
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Schema));
    store.create_segment(ws, new_segment("VIP", "tag(\"vip\")")).await.unwrap();
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Schema));

    // Merges and erasure name the contacts that went away.
    let wang = contact(store, ws, "wang@client.cn").await;
    let zhao = contact(store, ws, "zhao@client.cn").await;
    drain(store, &mut cursor).await;
    store.merge_contacts(ws, wang, zhao, crate::MergeReason::Api, ACTOR).await.unwrap();
    let merged = subjects(&drain(store, &mut cursor).await, ws);
    assert!(merged.contains(&ChangeSubject::Contact(wang)) && merged.contains(&ChangeSubject::Contact(zhao)));
    store.delete_contact(ws, wang).await.unwrap();
    assert!(subjects(&drain(store, &mut cursor).await, ws).contains(&ChangeSubject::Contact(wang)));

    // Pruning what was read changes nothing for the reader.
    store.prune_changes(cursor).await.unwrap();
    assert!(drain(store, &mut cursor).await.changes.is_empty());
    let company_changes = CompanyChanges { industry: Patch::Set(text("制造业")), ..CompanyChanges::default() };
    store.update_company(ws, company.id, company_changes).await.unwrap();
    let batch = drain(store, &mut cursor).await;
    assert_eq!(subjects(&batch, ws), HashSet::from([ChangeSubject::Company(company.id)]));
    let _: CompanyId = company.id;

    // Erasing the contact with the newest events does not let a later event slip past the reader.
    let zhou = contact(store, ws, "zhou@client.cn").await;
    store.insert_events(ws, vec![page_view(zhou, "/erased", 7)]).await.unwrap();
    drain(store, &mut cursor).await;
    store.delete_contact(ws, zhou).await.unwrap();
    store.insert_events(ws, vec![page_view(li, "/after-erasure", 8)]).await.unwrap();
    let batch = drain(store, &mut cursor).await;
    let urls: Vec<_> = batch.events.iter().map(|event| event.properties["url"].clone()).collect();
    assert_eq!(urls, [json!("/after-erasure")]);
}

pub async fn scan_events_stops_where_the_feed_starts(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let li = contact(store, ws, "li@client.cn").await;
    store.insert_events(ws, vec![page_view(li, "/a", 1), page_view(li, "/b", 2)]).await.unwrap();
    let mut other = page_view(li, "/c", 3);
    other.event_type = "email_opened".to_owned();
    store.insert_events(ws, vec![other]).await.unwrap();
    let mut cursor = store.change_head().await.unwrap();
    store.insert_events(ws, vec![page_view(li, "/later", 4)]).await.unwrap();

    let types = ["page_viewed".to_owned()];
    let first = store.scan_events(ws, &types, cursor, 0, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let rest = store.scan_events(ws, &types, cursor, first[0].id, 10).await.unwrap();
    let urls: Vec<_> = first.iter().chain(&rest).map(|event| event.properties["url"].clone()).collect();
    assert_eq!(urls, [json!("/a"), json!("/b")], "the later event is the feed's to deliver");
    let delivered = drain(store, &mut cursor).await;
    let urls: Vec<_> = delivered.events.iter().map(|event| event.properties["url"].clone()).collect();
    assert_eq!(urls, [json!("/later")]);
    let after = store.scan_events(ws, &types, cursor, 0, 10).await.unwrap();
    assert_eq!(after.len(), 3, "once delivered, history includes it");
    let other_ws = workspace(store, "other").await;
    assert!(store.scan_events(other_ws, &types, cursor, 0, 10).await.unwrap().is_empty());
}

pub async fn audience_contacts_carry_consent_and_stage_history(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let li = contact(store, ws, "li@client.cn").await;
    let wang = contact(store, ws, "wang@client.cn").await;
    let changes = ContactChanges { stage: Some(slug("mql")), ..by_email("li@client.cn") };
    upsert(store, ws, changes).await.unwrap();
    let changes = ContactChanges { stage: Some(slug("sql")), ..by_email("li@client.cn") };
    upsert(store, ws, changes).await.unwrap();

    let all = store.audience_contacts(ws, None, 10).await.unwrap();
    assert_eq!(all.iter().map(|fact| fact.contact.id).collect::<Vec<_>>(), [li, wang]);
    let stages: Vec<&str> = all[0].stages.iter().map(|(stage, _)| stage.as_str()).collect();
    assert_eq!(stages, ["raw", "mql", "sql"]);
    assert_eq!(all[1].stages.iter().map(|(stage, _)| stage.as_str()).collect::<Vec<_>>(), ["raw"]);
    assert!(all[0].consents.is_empty());
    let after = store.audience_contacts(ws, Some(li), 10).await.unwrap();
    assert_eq!(after.iter().map(|fact| fact.contact.id).collect::<Vec<_>>(), [wang]);
    let by_id = store.audience_contacts_by_id(ws, &[wang, ContactId::new(999_999)]).await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].contact, store.get_contact(ws, wang).await.unwrap());
    let other = workspace(store, "other").await;
    assert!(store.audience_contacts_by_id(other, &[wang]).await.unwrap().is_empty());
}

pub async fn tag_activity_counts_by_day(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let li = contact(store, ws, "li@client.cn").await;
    let wang = contact(store, ws, "wang@client.cn").await;
    let vip = [path("客户/vip")];
    store.add_contact_tags(ws, li, &vip, ACTOR).await.unwrap();
    store.add_contact_tags(ws, wang, &vip, ACTOR).await.unwrap();
    store.remove_contact_tags(ws, li, &vip, ACTOR).await.unwrap();
    let tag = store.list_tags(ws).await.unwrap().into_iter().find(|tag| tag.path == "客户/vip").unwrap();
    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let days = store.tag_activity(ws, tag.id, yesterday, tomorrow).await.unwrap();
    assert_eq!(days, [crate::TagDay { day: today, added: 2, removed: 1 }]);
    assert!(store.tag_activity(ws, tag.id, tomorrow, tomorrow).await.unwrap().is_empty());
    let group = store.list_tags(ws).await.unwrap().into_iter().find(|tag| tag.path == "客户").unwrap();
    assert!(store.tag_activity(ws, group.id, yesterday, tomorrow).await.unwrap().is_empty(), "only the tag itself");
    let other = workspace(store, "other").await;
    assert_eq!(code(store.tag_activity(other, tag.id, yesterday, tomorrow).await), "not_found tag");
}

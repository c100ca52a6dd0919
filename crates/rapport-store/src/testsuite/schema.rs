//! The workspace's schema: custom fields, the tag library and tags on contacts, stages, lead statuses, note
//! templates.

use std::sync::Arc;

use rapport_domain::{ContactChanges, FieldEntity, FieldType, MergeRule, Patch, TagId, TagKind, WorkspaceId};
use serde_json::json;

use super::{
    ACTOR, by_email, code, contact, describe_contact, path, slug, snapshot, text, timeline, upsert, workspace,
};
use crate::{
    CompanyChanges, FieldUpdate, ListEntryUpdate, ListKind, NewField, NewListEntry, NewTag, NoteTemplateInput, Store,
    TagUpdate,
};

fn new_field(entity: FieldEntity, key: &str, field_type: FieldType, options: &[&str]) -> NewField {
    NewField {
        entity,
        key: slug(key),
        label: text(&key.replace('_', " ")),
        field_type,
        options: options.iter().map(|option| (*option).to_owned()).collect(),
        merge_rule: MergeRule::Latest,
    }
}

pub async fn fields(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let budget =
        store.create_field(ws, new_field(FieldEntity::Contact, "budget", FieldType::Number, &[])).await.unwrap();
    assert_eq!(
        (budget.key.as_str(), budget.label.as_str(), budget.field_type),
        ("budget", "budget", FieldType::Number)
    );
    let channel = store
        .create_field(ws, new_field(FieldEntity::Contact, "channel", FieldType::SingleSelect, &["展会", "官网"]))
        .await
        .unwrap();
    assert_eq!(channel.options, ["展会", "官网"]);
    let company_budget =
        store.create_field(ws, new_field(FieldEntity::Company, "budget", FieldType::Number, &[])).await.unwrap();
    let duplicate = new_field(FieldEntity::Contact, "budget", FieldType::Text, &[]);
    assert_eq!(code(store.create_field(ws, duplicate).await), "conflict field_exists");

    let keys = |fields: Vec<rapport_domain::FieldDefinition>| {
        fields.into_iter().map(|field| format!("{}.{}", field.entity.as_str(), field.key)).collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.list_fields(ws, None).await.unwrap()),
        ["contact.budget", "contact.channel", "company.budget"]
    );
    assert_eq!(keys(store.list_fields(ws, Some(FieldEntity::Company)).await.unwrap()), ["company.budget"]);

    let update = FieldUpdate {
        label: Some(text("Lead channel")),
        options: Some(vec!["官网".into(), "微信".into()]),
        merge_rule: None,
    };
    let updated = store.update_field(ws, channel.id, update).await.unwrap();
    assert_eq!((updated.label.as_str(), updated.options.clone()), ("Lead channel", vec!["官网".into(), "微信".into()]));
    assert_eq!((updated.key.as_str(), updated.field_type), ("channel", FieldType::SingleSelect));
    assert_eq!(store.get_field(ws, channel.id).await.unwrap(), updated);
    let relabel = FieldUpdate { label: Some(text("Company budget")), options: None, merge_rule: None };
    assert_eq!(store.update_field(ws, company_budget.id, relabel).await.unwrap().label, "Company budget");

    store.delete_field(ws, budget.id).await.unwrap();
    assert_eq!(code(store.get_field(ws, budget.id).await), "not_found field");
    assert_eq!(code(store.delete_field(ws, budget.id).await), "not_found field");
    assert_eq!(keys(store.list_fields(ws, None).await.unwrap()), ["contact.channel", "company.budget"]);
}

pub async fn delete_field_removes_values(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let budget =
        store.create_field(ws, new_field(FieldEntity::Contact, "budget", FieldType::Number, &[])).await.unwrap();
    store.create_field(ws, new_field(FieldEntity::Contact, "city_tier", FieldType::Text, &[])).await.unwrap();
    store.create_field(ws, new_field(FieldEntity::Company, "budget", FieldType::Number, &[])).await.unwrap();
    let fields = vec![("budget".to_owned(), json!(5000)), ("city_tier".to_owned(), json!("一线"))];
    let id = upsert(store, ws, ContactChanges { fields, ..by_email("li@client.cn") }).await.unwrap().id;
    let company = CompanyChanges {
        name: Some(text("Client Ltd")),
        fields: vec![("budget".to_owned(), json!(100))],
        ..CompanyChanges::default()
    };
    let company = store.create_company(ws, company).await.unwrap();

    store.delete_field(ws, budget.id).await.unwrap();
    assert_eq!(
        describe_contact(store, ws, id).await,
        r#"email=li@client.cn fields={"city_tier":"一线"} stage=raw identities=[email:li@client.cn]"#
    );
    let company = store.get_company(ws, company.id).await.unwrap();
    assert_eq!(
        serde_json::Value::Object(company.fields).to_string(),
        r#"{"budget":100}"#,
        "companies keep their own field"
    );
}

/// The library as `path (kind, count)` lines, in the store's order: by path, comparing code points (so 行 before 评,
/// as a binary collation orders UTF-8; PostgreSQL needs `COLLATE "C"` for this).
async fn library(store: &dyn Store, ws: WorkspaceId) -> Vec<String> {
    let tags = store.list_tags(ws).await.unwrap();
    tags.iter().map(|tag| format!("{} ({}, {})", tag.path, tag.kind.as_str(), tag.contact_count)).collect()
}

async fn tag_id(store: &dyn Store, ws: WorkspaceId, tag_path: &str) -> TagId {
    let tags = store.list_tags(ws).await.unwrap();
    tags.into_iter().find(|tag| tag.path == tag_path).unwrap_or_else(|| panic!("no tag {tag_path}")).id
}

async fn create_tag(store: &dyn Store, ws: WorkspaceId, tag_path: &str) -> TagId {
    store.create_tag(ws, NewTag { path: path(tag_path), kind: TagKind::Manual }).await.unwrap().id
}

pub async fn tags_with_parents(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let car = store.create_tag(ws, NewTag { path: path("行业/制造业/汽车"), kind: TagKind::Manual }).await.unwrap();
    assert_eq!((car.name.as_str(), car.path.as_str(), car.contact_count), ("汽车", "行业/制造业/汽车", 0));
    let manufacturing = store.get_tag(ws, car.parent_id.unwrap()).await.unwrap();
    assert_eq!(manufacturing.path, "行业/制造业");
    let industry = store.get_tag(ws, manufacturing.parent_id.unwrap()).await.unwrap();
    assert_eq!((industry.path.as_str(), industry.parent_id), ("行业", None));

    let hot =
        store.create_tag(ws, NewTag { path: path("行业/制造业/汽车/新能源"), kind: TagKind::Dynamic }).await.unwrap();
    assert_eq!((hot.parent_id, hot.kind), (Some(car.id), TagKind::Dynamic));
    assert_eq!(
        code(store.create_tag(ws, NewTag { path: path("行业/制造业"), kind: TagKind::Manual }).await),
        "conflict tag_exists"
    );
    create_tag(store, ws, "VIP").await;
    assert_eq!(
        library(store, ws).await,
        [
            "VIP (manual, 0)",
            "行业 (manual, 0)",
            "行业/制造业 (manual, 0)",
            "行业/制造业/汽车 (manual, 0)",
            "行业/制造业/汽车/新能源 (dynamic, 0)"
        ]
    );
}

pub async fn tag_rename_and_move(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let id = contact(store, ws, "li@client.cn").await;
    store.add_contact_tags(ws, id, &[path("a/b/c"), path("a/b")], ACTOR).await.unwrap();
    create_tag(store, ws, "z").await;
    create_tag(store, ws, "p/q/r").await;
    let b = tag_id(store, ws, "a/b").await;
    let c = tag_id(store, ws, "a/b/c").await;

    let renamed =
        store.update_tag(ws, b, TagUpdate { name: Some("x".into()), parent_id: Patch::Absent }).await.unwrap();
    assert_eq!((renamed.name.as_str(), renamed.path.as_str(), renamed.contact_count), ("x", "a/x", 1));
    assert_eq!(store.get_tag(ws, c).await.unwrap().path, "a/x/c");

    let z = tag_id(store, ws, "z").await;
    let moved = store.update_tag(ws, b, TagUpdate { name: None, parent_id: Patch::Set(z) }).await.unwrap();
    assert_eq!((moved.path.as_str(), moved.parent_id), ("z/x", Some(z)));
    assert_eq!(
        library(store, ws).await,
        [
            "a (manual, 0)",
            "p (manual, 0)",
            "p/q (manual, 0)",
            "p/q/r (manual, 0)",
            "z (manual, 0)",
            "z/x (manual, 1)",
            "z/x/c (manual, 1)"
        ]
    );
    assert_eq!(
        describe_contact(store, ws, id).await,
        "email=li@client.cn stage=raw tags=[z/x,z/x/c] identities=[email:li@client.cn]"
    );

    let top = store.update_tag(ws, b, TagUpdate { name: None, parent_id: Patch::Clear }).await.unwrap();
    assert_eq!((top.path.as_str(), top.parent_id), ("x", None));
    assert_eq!(store.get_tag(ws, c).await.unwrap().path, "x/c");

    let before = library(store, ws).await;
    let under_child = TagUpdate { name: None, parent_id: Patch::Set(c) };
    assert_eq!(code(store.update_tag(ws, b, under_child).await), "invalid tag_cycle parent_id");
    let under_itself = TagUpdate { name: None, parent_id: Patch::Set(b) };
    assert_eq!(code(store.update_tag(ws, b, under_itself).await), "invalid tag_cycle parent_id");
    let r = tag_id(store, ws, "p/q/r").await;
    let too_deep = TagUpdate { name: None, parent_id: Patch::Set(r) };
    assert_eq!(code(store.update_tag(ws, b, too_deep).await), "invalid tag_too_deep parent_id");
    let taken = TagUpdate { name: Some("z".into()), parent_id: Patch::Absent };
    assert_eq!(code(store.update_tag(ws, b, taken).await), "conflict tag_exists");
    assert_eq!(library(store, ws).await, before, "a refused update changes nothing");

    let q = tag_id(store, ws, "p/q").await;
    let deepest = store.update_tag(ws, b, TagUpdate { name: None, parent_id: Patch::Set(q) }).await.unwrap();
    assert_eq!(deepest.path, "p/q/x");
    assert_eq!(store.get_tag(ws, c).await.unwrap().path, "p/q/x/c");
    assert_eq!(
        describe_contact(store, ws, id).await,
        "email=li@client.cn stage=raw tags=[p/q/x,p/q/x/c] identities=[email:li@client.cn]"
    );
}

pub async fn tag_delete_rules(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let id = contact(store, ws, "li@client.cn").await;
    store.add_contact_tags(ws, id, &[path("行业/制造业")], ACTOR).await.unwrap();
    let group = tag_id(store, ws, "行业").await;
    let leaf = tag_id(store, ws, "行业/制造业").await;

    assert_eq!(code(store.delete_tag(ws, group).await), "conflict tag_has_children");
    assert_eq!(code(store.delete_tag(ws, leaf).await), "conflict tag_in_use");
    store.remove_contact_tags(ws, id, &[path("行业/制造业")], ACTOR).await.unwrap();
    store.delete_tag(ws, leaf).await.unwrap();
    assert_eq!(code(store.get_tag(ws, leaf).await), "not_found tag");
    store.delete_tag(ws, group).await.unwrap();
    assert_eq!(library(store, ws).await, Vec::<String>::new());
    assert_eq!(code(store.delete_tag(ws, group).await), "not_found tag");
}

pub async fn contact_tags(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let li = contact(store, ws, "li@client.cn").await;
    let wang = contact(store, ws, "wang@client.cn").await;
    store.create_tag(ws, NewTag { path: path("评分/高意向"), kind: TagKind::Dynamic }).await.unwrap();

    store.add_contact_tags(ws, li, &[path("行业/制造业"), path("VIP")], ACTOR).await.unwrap();
    store.add_contact_tags(ws, li, &[path("VIP")], ACTOR).await.unwrap();
    store.add_contact_tags(ws, wang, &[path("VIP")], ACTOR).await.unwrap();
    assert_eq!(
        library(store, ws).await,
        [
            "VIP (manual, 2)",
            "行业 (manual, 0)",
            "行业/制造业 (manual, 1)",
            "评分 (manual, 0)",
            "评分/高意向 (dynamic, 0)"
        ]
    );
    assert_eq!(
        describe_contact(store, ws, li).await,
        "email=li@client.cn stage=raw tags=[VIP,行业/制造业] identities=[email:li@client.cn]"
    );

    store.remove_contact_tags(ws, li, &[path("VIP"), path("unknown/tag"), path("行业")], ACTOR).await.unwrap();
    assert_eq!(timeline(store, ws, li).await, ["tag_removed VIP", "tag_added VIP", "tag_added 行业/制造业"]);
    let entry = store.contact_timeline(ws, li, crate::PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(entry.items[0].data, json!({ "tag": "VIP", "actor": "system" }));

    let before = snapshot(store, ws).await;
    let dynamic = [path("新标签"), path("评分/高意向")];
    assert_eq!(code(store.add_contact_tags(ws, li, &dynamic, ACTOR).await), "invalid dynamic_tag tags");
    assert_eq!(code(store.remove_contact_tags(ws, li, &dynamic, ACTOR).await), "invalid dynamic_tag tags");
    let changes = ContactChanges { add_tags: vec![path("评分/高意向")], ..by_email("li@client.cn") };
    assert_eq!(code(upsert(store, ws, changes).await), "invalid dynamic_tag tags");
    assert_eq!(snapshot(store, ws).await, before, "refused tag changes write nothing, not even new tags");

    let missing = rapport_domain::ContactId::new(999_999);
    assert_eq!(code(store.add_contact_tags(ws, missing, &[path("VIP")], ACTOR).await), "not_found contact");
}

async fn keys(store: &dyn Store, ws: WorkspaceId, list: ListKind) -> Vec<String> {
    let entries = store.list_entries(ws, list).await.unwrap();
    entries.into_iter().map(|entry| format!("{}:{}", entry.position, entry.key)).collect()
}

fn new_entry(key: &str, position: Option<i64>) -> NewListEntry {
    NewListEntry { key: slug(key), label: text(&key.to_uppercase()), position }
}

pub async fn list_entries(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let stages = ListKind::Stages;
    let created = store.create_entry(ws, stages, new_entry("nurture", Some(1))).await.unwrap();
    assert_eq!((created.key.as_str(), created.label.as_str(), created.position), ("nurture", "NURTURE", 1));
    store.create_entry(ws, stages, new_entry("churned", None)).await.unwrap();
    assert_eq!(
        keys(store, ws, stages).await,
        ["0:raw", "1:nurture", "2:mql", "3:sal", "4:sql", "5:customer", "6:churned"]
    );
    assert_eq!(code(store.create_entry(ws, stages, new_entry("mql", None)).await), "conflict stage_exists");

    let moved = store
        .update_entry(ws, stages, "churned", ListEntryUpdate { label: Some(text("Lost")), position: Some(0) })
        .await
        .unwrap();
    assert_eq!((moved.label.as_str(), moved.position), ("Lost", 0));
    assert_eq!(
        keys(store, ws, stages).await,
        ["0:churned", "1:raw", "2:nurture", "3:mql", "4:sal", "5:sql", "6:customer"]
    );
    store.update_entry(ws, stages, "churned", ListEntryUpdate { label: None, position: Some(99) }).await.unwrap();
    store.delete_entry(ws, stages, "nurture").await.unwrap();
    assert_eq!(keys(store, ws, stages).await, ["0:raw", "1:mql", "2:sal", "3:sql", "4:customer", "5:churned"]);
    assert_eq!(code(store.update_entry(ws, stages, "nurture", ListEntryUpdate::default()).await), "not_found stage");
    assert_eq!(code(store.delete_entry(ws, stages, "nurture").await), "not_found stage");

    let statuses = ListKind::LeadStatuses;
    store.create_entry(ws, statuses, new_entry("meeting_booked", Some(0))).await.unwrap();
    assert_eq!(code(store.create_entry(ws, statuses, new_entry("contacted", None)).await), "conflict status_exists");
    store.delete_entry(ws, statuses, "unqualified").await.unwrap();
    assert_eq!(
        keys(store, ws, statuses).await,
        ["0:meeting_booked", "1:not_reached", "2:reached_no_intent", "3:contacted"]
    );
    assert_eq!(code(store.delete_entry(ws, statuses, "unqualified").await), "not_found lead status");

    let id = contact(store, ws, "li@client.cn").await;
    assert_eq!(store.get_contact(ws, id).await.unwrap().stage, "raw", "new contacts start in the first stage");
    store.update_entry(ws, stages, "mql", ListEntryUpdate { label: None, position: Some(0) }).await.unwrap();
    let id = contact(store, ws, "wang@client.cn").await;
    assert_eq!(store.get_contact(ws, id).await.unwrap().stage, "mql", "the first stage follows the order");
}

pub async fn list_entry_guards(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let changes =
        ContactChanges { stage: Some(slug("sal")), status: Patch::Set(slug("contacted")), ..by_email("li@client.cn") };
    upsert(store, ws, changes).await.unwrap();
    assert_eq!(code(store.delete_entry(ws, ListKind::Stages, "sal").await), "conflict stage_in_use");
    assert_eq!(code(store.delete_entry(ws, ListKind::LeadStatuses, "contacted").await), "conflict status_in_use");

    let empty = workspace(store, "empty").await;
    for key in ["raw", "mql", "sal", "sql"] {
        store.delete_entry(empty, ListKind::Stages, key).await.unwrap();
    }
    assert_eq!(code(store.delete_entry(empty, ListKind::Stages, "customer").await), "conflict last_stage");
    assert_eq!(keys(store, empty, ListKind::Stages).await, ["0:customer"]);
    for key in ["not_reached", "reached_no_intent", "unqualified", "contacted"] {
        store.delete_entry(empty, ListKind::LeadStatuses, key).await.unwrap();
    }
    assert_eq!(keys(store, empty, ListKind::LeadStatuses).await, Vec::<String>::new(), "statuses may all go");
}

pub async fn note_templates(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let input = |name: &str, status: Option<&str>| NoteTemplateInput {
        name: text(name),
        status: status.map(slug),
        body: text(&format!("{name}: 客户反馈")),
    };
    let call = store.create_note_template(ws, input("Call", Some("contacted"))).await.unwrap();
    assert_eq!(
        (call.name.as_str(), call.status.as_deref(), call.body.as_str()),
        ("Call", Some("contacted"), "Call: 客户反馈")
    );
    let any = store.create_note_template(ws, input("Any", None)).await.unwrap();
    assert_eq!(any.status, None);
    assert_eq!(code(store.create_note_template(ws, input("Bad", Some("nope"))).await), "invalid unknown_status status");

    let updated = store.update_note_template(ws, call.id, input("Call back", Some("not_reached"))).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.status.as_deref()), ("Call back", Some("not_reached")));
    assert_eq!(
        code(store.update_note_template(ws, call.id, input("Bad", Some("nope"))).await),
        "invalid unknown_status status"
    );
    assert_eq!(store.get_note_template(ws, call.id).await.unwrap(), updated);
    let names: Vec<_> =
        store.list_note_templates(ws).await.unwrap().into_iter().map(|template| template.name).collect();
    assert_eq!(names, ["Call back", "Any"]);

    store.delete_note_template(ws, any.id).await.unwrap();
    assert_eq!(code(store.get_note_template(ws, any.id).await), "not_found note template");
    assert_eq!(code(store.delete_note_template(ws, any.id).await), "not_found note template");
}

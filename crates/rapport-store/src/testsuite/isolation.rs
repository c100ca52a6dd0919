//! Tenant isolation: whatever workspace A holds reads as absent from workspace B, and B can neither change nor
//! delete it.

use std::sync::Arc;

use rapport_domain::{ContactChanges, FieldEntity, FieldType, Identity, MergeRule, Patch, Role, TagKind};
use serde_json::json;

use super::{ACTOR, at, by_email, code, email, path, slug, snapshot, text, upsert, user, workspace};
use crate::{
    CompanyChanges, ContactRef, EventOutcome, FieldUpdate, ListEntryUpdate, ListKind, NewApiKey, NewEvent, NewField,
    NewListEntry, NewTag, NoteTemplateInput, PageRequest, Store, TagUpdate, UserUpdate,
};

pub async fn tenant_isolation(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let a = workspace(store, "alpha").await;
    let b = workspace(store, "beta").await;

    // Workspace A gets one of everything.
    let a_user = user(store, a, "wang@alpha.cn").await;
    let key = NewApiKey { name: text("Key"), role: Role::Admin, prefix: "rk_a".into(), token_hash: "hash-a".into() };
    let a_key = store.create_api_key(a, key).await.unwrap().id;
    let field = NewField {
        entity: FieldEntity::Contact,
        key: slug("budget"),
        label: text("Budget"),
        field_type: FieldType::Number,
        options: Vec::new(),
        merge_rule: MergeRule::Latest,
    };
    let a_field = store.create_field(a, field).await.unwrap().id;
    let a_tag = store.create_tag(a, NewTag { path: path("VIP"), kind: TagKind::Manual }).await.unwrap().id;
    let entry = NewListEntry { key: slug("alpha_only"), label: text("Alpha only"), position: None };
    store.create_entry(a, ListKind::Stages, entry).await.unwrap();
    let template = NoteTemplateInput { name: text("Call"), status: None, body: text("Called") };
    let a_template = store.create_note_template(a, template.clone()).await.unwrap().id;
    let company = CompanyChanges {
        name: Some(text("Client")),
        domain: Patch::Set("client.cn".into()),
        ..CompanyChanges::default()
    };
    let a_company = store.create_company(a, company.clone()).await.unwrap().id;
    let a_contact = upsert(
        store,
        a,
        ContactChanges {
            owner_id: Patch::Set(a_user),
            company_id: Patch::Set(a_company),
            fields: vec![("budget".into(), json!(100))],
            ..by_email("li@client.cn")
        },
    )
    .await
    .unwrap()
    .id;
    store.add_contact_tags(a, a_contact, &[path("VIP")], ACTOR).await.unwrap();
    let a_note = store.add_note(a, a_contact, "Called", None, ACTOR).await.unwrap().id;
    let a_event = NewEvent {
        contact: ContactRef::Id(a_contact),
        event_type: "visit".into(),
        properties: Default::default(),
        context: Default::default(),
        occurred_at: at(0),
        received_at: at(0),
        source: None,
        message_id: Some("m-1".into()),
    };
    store.insert_events(a, vec![a_event.clone()]).await.unwrap();
    let a_before = snapshot(store, a).await;

    // Users and keys.
    assert_eq!(code(store.get_user(b, a_user).await), "not_found user");
    assert_eq!(store.user_by_email(b, "wang@alpha.cn").await.unwrap(), None);
    assert_eq!(store.list_users(b, PageRequest { after: None, limit: 10 }).await.unwrap().items, []);
    assert_eq!(
        code(store.update_user(b, a_user, UserUpdate { role: Some(Role::Owner), ..UserUpdate::default() }).await),
        "not_found user"
    );
    assert_eq!(code(store.delete_user(b, a_user).await), "not_found user");
    assert_eq!(code(store.get_api_key(b, a_key).await), "not_found api key");
    assert_eq!(store.list_api_keys(b).await.unwrap(), []);
    assert_eq!(code(store.revoke_api_key(b, a_key, at(0)).await), "not_found api key");
    assert_eq!(store.api_key_by_hash("hash-a").await.unwrap().map(|key| key.workspace_id), Some(a));

    // Schema.
    assert_eq!(code(store.get_field(b, a_field).await), "not_found field");
    assert_eq!(store.list_fields(b, None).await.unwrap(), []);
    assert_eq!(
        code(
            store
                .update_field(b, a_field, FieldUpdate { label: Some(text("X")), options: None, merge_rule: None })
                .await
        ),
        "not_found field"
    );
    assert_eq!(code(store.delete_field(b, a_field).await), "not_found field");
    assert_eq!(code(store.get_tag(b, a_tag).await), "not_found tag");
    assert_eq!(store.list_tags(b).await.unwrap(), []);
    assert_eq!(
        code(store.update_tag(b, a_tag, TagUpdate { name: Some("X".into()), parent_id: Patch::Absent }).await),
        "not_found tag"
    );
    assert_eq!(code(store.delete_tag(b, a_tag).await), "not_found tag");
    let b_tag = store.create_tag(b, NewTag { path: path("Group"), kind: TagKind::Manual }).await.unwrap().id;
    let foreign_parent = TagUpdate { name: None, parent_id: Patch::Set(a_tag) };
    assert_eq!(code(store.update_tag(b, b_tag, foreign_parent).await), "invalid unknown_tag parent_id");
    assert_eq!(
        code(store.update_entry(b, ListKind::Stages, "alpha_only", ListEntryUpdate::default()).await),
        "not_found stage"
    );
    assert_eq!(code(store.delete_entry(b, ListKind::Stages, "alpha_only").await), "not_found stage");
    assert_eq!(store.list_entries(b, ListKind::Stages).await.unwrap().len(), 5);
    assert_eq!(code(store.get_note_template(b, a_template).await), "not_found note template");
    assert_eq!(store.list_note_templates(b).await.unwrap(), []);
    assert_eq!(code(store.update_note_template(b, a_template, template).await), "not_found note template");
    assert_eq!(code(store.delete_note_template(b, a_template).await), "not_found note template");

    // Companies.
    assert_eq!(code(store.get_company(b, a_company).await), "not_found company");
    assert_eq!(store.company_by_domain(b, "client.cn").await.unwrap(), None);
    assert_eq!(store.list_companies(b, PageRequest { after: None, limit: 10 }).await.unwrap().items, []);
    assert_eq!(code(store.update_company(b, a_company, CompanyChanges::default()).await), "not_found company");
    assert_eq!(code(store.delete_company(b, a_company).await), "not_found company");
    let b_company = store.create_company(b, company).await.unwrap();
    assert_eq!(
        (b_company.domain.as_deref(), b_company.contact_count),
        (Some("client.cn"), 0),
        "domains are per workspace"
    );

    // Contacts and their history.
    let li = Identity::email(&email("li@client.cn"));
    assert_eq!(code(store.get_contact(b, a_contact).await), "not_found contact");
    assert_eq!(store.find_contact(b, &li).await.unwrap(), None);
    assert_eq!(store.list_contacts(b, PageRequest { after: None, limit: 10 }).await.unwrap().items, []);
    assert_eq!(store.count_contacts(b).await.unwrap(), 0);
    assert_eq!(code(store.update_contact(b, a_contact, by_email("x@client.cn"), ACTOR).await), "not_found contact");
    assert_eq!(code(store.delete_contact(b, a_contact).await), "not_found contact");
    assert_eq!(
        code(store.contact_timeline(b, a_contact, PageRequest { after: None, limit: 10 }).await),
        "not_found contact"
    );
    assert_eq!(code(store.add_contact_tags(b, a_contact, &[path("VIP")], ACTOR).await), "not_found contact");
    assert_eq!(code(store.remove_contact_tags(b, a_contact, &[path("VIP")], ACTOR).await), "not_found contact");
    assert_eq!(code(store.add_note(b, a_contact, "Hi", None, ACTOR).await), "not_found contact");
    assert_eq!(code(store.delete_note(b, a_contact, a_note).await), "not_found note");
    assert_eq!(
        code(store.add_note(b, b_contact_for(store, b).await, "Hi", Some(a_template), ACTOR).await),
        "invalid unknown_note_template template_id"
    );
    let foreign_owner = ContactChanges { owner_id: Patch::Set(a_user), ..by_email("li@client.cn") };
    assert_eq!(code(upsert(store, b, foreign_owner).await), "invalid unknown_owner owner_id");
    let foreign_company = ContactChanges { company_id: Patch::Set(a_company), ..by_email("li@client.cn") };
    assert_eq!(code(upsert(store, b, foreign_company).await), "invalid unknown_company company_id");
    let foreign_stage = ContactChanges { stage: Some(slug("alpha_only")), ..by_email("li@client.cn") };
    assert_eq!(code(upsert(store, b, foreign_stage).await), "invalid unknown_stage stage");

    // The same identities and message ids are free in B and name B's own records.
    let b_li = upsert(store, b, by_email("li@client.cn")).await.unwrap();
    assert!(b_li.created && b_li.id != a_contact);
    let outcomes = store.insert_events(b, vec![a_event.clone()]).await.unwrap();
    assert_eq!(outcomes, [EventOutcome::UnknownContact], "A's contact id is unknown in B");
    let by_identity = NewEvent { contact: ContactRef::Identity(li.clone()), ..a_event };
    let outcomes = store.insert_events(b, vec![by_identity]).await.unwrap();
    assert!(matches!(outcomes[..], [EventOutcome::Stored { contact_id, .. }] if contact_id == b_li.id), "{outcomes:?}");
    assert_eq!(store.find_contact(a, &li).await.unwrap().map(|contact| contact.id), Some(a_contact));

    assert_eq!(snapshot(store, a).await, a_before, "nothing done in B touched A");
    assert_eq!(store.get_user(a, a_user).await.unwrap().role, Role::SalesRep);
    assert_eq!(store.get_field(a, a_field).await.unwrap().label, "Budget");
}

/// A contact of workspace B, for calls that need one.
async fn b_contact_for(store: &dyn Store, b: rapport_domain::WorkspaceId) -> rapport_domain::ContactId {
    upsert(store, b, by_email("someone@beta.cn")).await.unwrap().id
}

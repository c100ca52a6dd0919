//! Workspaces, users and API keys.

use std::sync::Arc;

use rapport_domain::{Patch, Role, UserId};

use super::{at, by_email, code, describe_contact, slug, text, upsert, user, workspace};
use crate::{ListKind, NewApiKey, PageRequest, Store, UserUpdate};

pub async fn workspace_defaults(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let acme = store.create_workspace(&slug("acme"), "Acme 中国").await.unwrap();
    assert_eq!((acme.slug.as_str(), acme.name.as_str()), ("acme", "Acme 中国"));
    assert_eq!(code(store.create_workspace(&slug("acme"), "Again").await), "conflict workspace_exists");
    let other = workspace(store, "other").await;

    assert_eq!(store.workspace_by_slug("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(store.workspace_by_slug("nobody").await.unwrap(), None);
    let slugs: Vec<_> =
        store.list_workspaces().await.unwrap().into_iter().map(|w| (w.id, w.slug.into_string())).collect();
    assert_eq!(slugs, [(acme.id, "acme".to_owned()), (other, "other".to_owned())]);

    let stages: Vec<_> = store
        .list_entries(acme.id, ListKind::Stages)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| format!("{}:{}:{}", entry.position, entry.key, entry.label))
        .collect();
    assert_eq!(stages, ["0:raw:Raw lead", "1:mql:MQL", "2:sal:SAL", "3:sql:SQL", "4:customer:Customer"]);
    let statuses: Vec<_> = store
        .list_entries(acme.id, ListKind::LeadStatuses)
        .await
        .unwrap()
        .into_iter()
        .map(|entry| format!("{}:{}", entry.position, entry.key))
        .collect();
    assert_eq!(statuses, ["0:not_reached", "1:reached_no_intent", "2:unqualified", "3:contacted"]);
}

pub async fn users(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let wang = user(store, ws, "wang@acme.cn").await;
    let li = user(store, ws, "li@acme.cn").await;
    let zhao = user(store, ws, "zhao@acme.cn").await;

    let fetched = store.get_user(ws, wang).await.unwrap();
    assert_eq!(
        (fetched.email.as_str(), fetched.name.as_str(), fetched.role),
        ("wang@acme.cn", "Wang Fang", Role::SalesRep)
    );
    assert_eq!(store.user_by_email(ws, "li@acme.cn").await.unwrap().map(|user| user.id), Some(li));
    assert_eq!(store.user_by_email(ws, "nobody@acme.cn").await.unwrap(), None);
    let duplicate = crate::NewUser {
        email: super::email("wang@acme.cn"),
        name: text("Another Wang"),
        role: Role::Viewer,
        password_hash: "x".into(),
    };
    assert_eq!(code(store.create_user(ws, duplicate).await), "conflict user_exists");

    let first = store.list_users(ws, PageRequest { after: None, limit: 2 }).await.unwrap();
    assert_eq!(first.items.iter().map(|user| user.id).collect::<Vec<_>>(), [wang, li]);
    assert_eq!(first.next, Some(li));
    let second = store.list_users(ws, PageRequest { after: first.next, limit: 2 }).await.unwrap();
    assert_eq!(second.items.iter().map(|user| user.id).collect::<Vec<_>>(), [zhao]);
    assert_eq!(second.next, None);

    let update = UserUpdate { name: Some(text("Wang Fang 王芳")), role: Some(Role::Admin), password_hash: None };
    let updated = store.update_user(ws, wang, update).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.role), ("Wang Fang 王芳", Role::Admin));
    assert_eq!(updated.password_hash, "$argon2id$test");
    assert_eq!(updated.email, "wang@acme.cn");
    assert_eq!(store.get_user(ws, wang).await.unwrap(), updated);

    store.delete_user(ws, li).await.unwrap();
    assert_eq!(code(store.get_user(ws, li).await), "not_found user");
    assert_eq!(code(store.delete_user(ws, li).await), "not_found user");
    assert_eq!(code(store.update_user(ws, UserId::new(999_999), UserUpdate::default()).await), "not_found user");
}

pub async fn delete_user_unowns_contacts(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let owner = user(store, ws, "wang@acme.cn").await;
    let changes = rapport_domain::ContactChanges { owner_id: Patch::Set(owner), ..by_email("li@client.cn") };
    let id = upsert(store, ws, changes).await.unwrap().id;
    assert_eq!(
        describe_contact(store, ws, id).await,
        format!("email=li@client.cn owner={owner} stage=raw identities=[email:li@client.cn]")
    );

    store.delete_user(ws, owner).await.unwrap();
    assert_eq!(describe_contact(store, ws, id).await, "email=li@client.cn stage=raw identities=[email:li@client.cn]");
}

pub async fn api_keys(store: Arc<dyn Store>) {
    let store = store.as_ref();
    let ws = workspace(store, "acme").await;
    let new_key = |name: &str, hash: &str| NewApiKey {
        name: text(name),
        role: Role::Marketer,
        prefix: "rk_live_ab".to_owned(),
        token_hash: hash.to_owned(),
    };
    let crm = store.create_api_key(ws, new_key("CRM sync", "hash-1")).await.unwrap();
    assert_eq!((crm.name.as_str(), crm.role, crm.prefix.as_str()), ("CRM sync", Role::Marketer, "rk_live_ab"));
    assert_eq!((crm.last_used_at, crm.revoked_at), (None, None));
    let site = store.create_api_key(ws, new_key("Website", "hash-2")).await.unwrap();
    assert_eq!(code(store.create_api_key(ws, new_key("Copy", "hash-1")).await), "conflict api_key_exists");

    assert_eq!(store.api_key_by_hash("hash-1").await.unwrap(), Some(crm.clone()));
    assert_eq!(store.api_key_by_hash("hash-unknown").await.unwrap(), None);

    store.touch_api_key(crm.id, at(60)).await.unwrap();
    assert_eq!(store.get_api_key(ws, crm.id).await.unwrap().last_used_at, Some(at(60)));
    store.touch_api_key(crm.id, at(120)).await.unwrap();
    assert_eq!(store.api_key_by_hash("hash-1").await.unwrap().and_then(|key| key.last_used_at), Some(at(120)));

    let revoked = store.revoke_api_key(ws, site.id, at(200)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(200)));
    let again = store.revoke_api_key(ws, site.id, at(300)).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(200)), "the first revocation time is kept");
    assert_eq!(store.api_key_by_hash("hash-2").await.unwrap(), None, "revoked keys do not authenticate");

    let listed: Vec<_> =
        store.list_api_keys(ws).await.unwrap().into_iter().map(|key| (key.name, key.revoked_at.is_some())).collect();
    assert_eq!(listed, [("CRM sync".to_owned(), false), ("Website".to_owned(), true)]);
    assert_eq!(code(store.get_api_key(ws, rapport_domain::ApiKeyId::new(999_999)).await), "not_found api key");
}

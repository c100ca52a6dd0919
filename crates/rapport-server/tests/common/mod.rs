//! Starts the real server on port 0 over a fresh database, the way `rapport serve` does.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use rapport_domain::{BoundedText, Role, Slug, WorkspaceId};
use rapport_engine::IngestConfig;
use rapport_http::auth::mint_token;
use rapport_server::Server;
use rapport_server::bootstrap::bootstrap;
use rapport_server::config::{AdminConfig, Secret, StoreConfig};
use rapport_store::{NewApiKey, Store};
use rapport_store_postgres::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const OWNER_TOKEN: &str = "rk_test_owner_token_0123456789";

/// Keeps the database alive while the test runs.
enum DatabaseGuard {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub workspace: WorkspaceId,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<anyhow::Result<()>>>,
    _database: DatabaseGuard,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        TestApp::sqlite_with(IngestConfig::default()).await
    }

    /// SQLite with a chosen ingestion configuration, e.g. a queue too small to take anything.
    pub async fn sqlite_with(ingest: IngestConfig) -> TestApp {
        let directory = tempfile::tempdir().unwrap();
        let config = StoreConfig { data_dir: directory.path().to_owned(), database_url: None };
        TestApp::start(config, DatabaseGuard::Sqlite(directory), ingest).await
    }

    pub async fn postgres() -> TestApp {
        let database = TestDatabase::create().await.unwrap();
        let config =
            StoreConfig { data_dir: std::env::temp_dir(), database_url: Some(Secret::new(database.url().to_owned())) };
        TestApp::start(config, DatabaseGuard::Postgres(database), IngestConfig::default()).await
    }

    async fn start(config: StoreConfig, database: DatabaseGuard, ingest: IngestConfig) -> TestApp {
        let store = rapport_server::open_store(&config).await.unwrap();
        let admin = AdminConfig {
            token: Some(Secret::new(OWNER_TOKEN)),
            email: Some("owner@example.com".into()),
            password: Some(Secret::new("correct horse battery")),
        };
        bootstrap(store.as_ref(), &admin).await.unwrap();
        let workspace = store.workspace_by_slug("default").await.unwrap().unwrap().id;
        let server = Server::bind_with(([127, 0, 0, 1], 0).into(), store.clone(), ingest).await.unwrap();
        let base = format!("http://{}", server.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            store,
            client: reqwest::Client::new(),
            workspace,
            stop: Some(stop),
            serving: Some(serving),
            _database: database,
        }
    }

    /// Sends a request with the given token and returns status and JSON body (`null` when empty).
    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call_as(OWNER_TOKEN, Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(OWNER_TOKEN, Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call_as(OWNER_TOKEN, Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(OWNER_TOKEN, Method::DELETE, path, body).await
    }

    /// A second workspace with an owner key, for isolation tests.
    pub async fn other_workspace(&self, slug: &str) -> (WorkspaceId, String) {
        let workspace = self.store.create_workspace(&Slug::parse(slug).unwrap(), slug).await.unwrap();
        let token = self.key_in(workspace.id, Role::Owner).await;
        (workspace.id, token)
    }

    /// A fresh API key with the given role.
    pub async fn key_in(&self, workspace: WorkspaceId, role: Role) -> String {
        let minted = mint_token();
        let key = NewApiKey {
            name: BoundedText::parse("test key", 100).unwrap(),
            role,
            prefix: minted.prefix,
            token_hash: minted.hash,
        };
        self.store.create_api_key(workspace, key).await.unwrap();
        minted.token
    }

    pub async fn contact_count(&self) -> u64 {
        self.store.count_contacts(self.workspace).await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.abort();
        }
    }
}

/// The end-to-end tests need packages that `.ci/run` installs (the official Segment clients in `tests/clients`,
/// Chromium and `tests/browser`); without `RAPPORT_E2E=1` they say so and pass without running, so that
/// `cargo test` works on a machine without them.
pub fn e2e_enabled(test: &str) -> bool {
    let enabled = std::env::var("RAPPORT_E2E").is_ok_and(|value| value == "1");
    if !enabled {
        eprintln!("{test}: skipped; set RAPPORT_E2E=1 after the installs in .ci/run");
    }
    enabled
}

/// Generates one test per backend for each named case: `sqlite::case` and `postgres::case`.
#[macro_export]
macro_rules! api_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(&$crate::common::TestApp::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(&$crate::common::TestApp::postgres().await).await;
            })*
        }
    };
}

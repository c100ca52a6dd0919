//! The shared storage suite on PostgreSQL, each test on its own throwaway database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rapport_store::Store;
use rapport_store::testsuite::TestStore;
use rapport_store_postgres::PostgresStore;
use rapport_store_postgres::testing::TestDatabase;

/// Fields drop in order: the store's pool goes first, then the database it was connected to.
struct PostgresTestStore {
    store: Arc<PostgresStore>,
    _database: TestDatabase,
}

impl TestStore for PostgresTestStore {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

async fn fresh() -> PostgresTestStore {
    let database = TestDatabase::create().await.expect("a test database (is PostgreSQL running?)");
    let store = PostgresStore::connect(database.url()).await.expect("a migrated store");
    PostgresTestStore { store: Arc::new(store), _database: database }
}

rapport_store::store_tests!(fresh);

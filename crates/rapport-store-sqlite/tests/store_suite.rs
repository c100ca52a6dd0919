//! The shared storage suite on SQLite, each test on its own database file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rapport_store::Store;
use rapport_store::testsuite::TestStore;
use rapport_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// Holds the directory so that the database file lives exactly as long as the test.
struct SqliteTestStore {
    store: Arc<SqliteStore>,
    _directory: TempDir,
}

impl TestStore for SqliteTestStore {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

async fn fresh() -> SqliteTestStore {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&directory.path().join("rapport.db")).expect("a fresh database");
    SqliteTestStore { store: Arc::new(store), _directory: directory }
}

rapport_store::store_tests!(fresh);

//! Opens the store named by the configuration. The backend is picked once here; everything after sees only
//! `Arc<dyn Store>`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use rapport_store::Store;
use rapport_store_postgres::PostgresStore;
use rapport_store_sqlite::SqliteStore;

use crate::config::StoreConfig;

const SQLITE_FILE: &str = "rapport.db";

pub async fn open_store(config: &StoreConfig) -> anyhow::Result<Arc<dyn Store>> {
    match config.database_url.as_ref().map(|url| url.expose()) {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PostgresStore::connect(url).await.context("connecting to PostgreSQL")?;
            Ok(Arc::new(store))
        }
        Some(url) => {
            let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
                bail!("the database URL must start with postgres://, postgresql:// or sqlite://");
            };
            open_sqlite(PathBuf::from(path)).await
        }
        None => {
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
            open_sqlite(config.data_dir.join(SQLITE_FILE)).await
        }
    }
}

async fn open_sqlite(path: PathBuf) -> anyhow::Result<Arc<dyn Store>> {
    let shown = path.display().to_string();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .context("opening SQLite")?
        .with_context(|| format!("opening the SQLite database {shown}"))?;
    Ok(Arc::new(store))
}

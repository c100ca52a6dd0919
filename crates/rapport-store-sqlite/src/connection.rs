//! Opening the database: connections, their settings, the migrations, and running work on them off the async
//! executor.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use rapport_store::StoreResult;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::memo::WriterMemo;
use crate::upgrade::upgrade_events_v1;

/// A schema change: a script, and for changes that re-encode data, a step in Rust run after it in the same
/// transaction.
struct Migration {
    script: &'static str,
    then: Option<fn(&Transaction<'_>) -> StoreResult<()>>,
}

/// Applied in order; the database's `user_version` is the number of migrations it has.
const MIGRATIONS: &[Migration] = &[
    Migration { script: include_str!("../migrations/0001_initial.sql"), then: None },
    Migration { script: include_str!("../migrations/0002_capture.sql"), then: Some(upgrade_events_v1) },
    Migration { script: include_str!("../migrations/0003_forms.sql"), then: None },
    Migration { script: include_str!("../migrations/0004_jobs.sql"), then: None },
    Migration { script: include_str!("../migrations/0005_audience.sql"), then: None },
];

const READER_CONNECTIONS: usize = 4;

/// 64 MiB of 4 KiB pages.
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// Large enough to keep the statements of every hot path prepared on each connection.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// The writer's page cache, in KiB (SQLite's negative `cache_size`): the indexes that every event insert touches
/// at random places (by contact, by message id) should stay in memory. Readers keep the default of `open_connection`.
const WRITER_CACHE_KIB: i64 = 256 * 1024;

/// A Rapport database in one SQLite file. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    connections: Arc<Connections>,
}

struct Connections {
    writer: Mutex<Writer>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file if needed, and brings its schema up to date.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let mut writer = open_connection(path, false).context("opening the writer connection")?;
        writer.pragma_update(None, "journal_mode", "WAL").context("switching to WAL mode")?;
        // Event ingestion dirties index pages all over the file. Checkpointing every 64 MiB of WAL instead of every
        // 4 MiB writes a page that changed in many commits back to the database once, not once per commit; the
        // WAL file is cut back to that size after each checkpoint.
        writer.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        writer.pragma_update(None, "journal_size_limit", WAL_CHECKPOINT_PAGES * 4096)?;
        writer.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        migrate(&mut writer).with_context(|| format!("migrating {}", path.display()))?;
        let readers = (0..READER_CONNECTIONS)
            .map(|_| open_connection(path, true).map(Mutex::new))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("opening the reader connections")?;
        let connections = Connections {
            writer: Mutex::new(Writer { connection: writer, memo: WriterMemo::default() }),
            readers,
            next_reader: AtomicUsize::new(0),
        };
        Ok(SqliteStore { connections: Arc::new(connections) })
    }

    /// Runs `work` in one read transaction on a reader connection, so that it sees a single snapshot.
    pub(crate) async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let connections = Arc::clone(&self.connections);
        tokio::task::spawn_blocking(move || {
            let mut connection = connections.reader();
            let transaction = connection.transaction().context("starting a read transaction")?;
            work(&transaction)
        })
        .await
        .context("the store's blocking task failed")?
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction on the writer connection, committed only when it succeeds.
    pub(crate) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.write_remembering(move |transaction, _| work(transaction)).await
    }

    /// Like [`SqliteStore::write`], with the writer's memo: what `work` teaches it is kept only if the transaction
    /// commits.
    pub(crate) async fn write_remembering<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut WriterMemo) -> StoreResult<T> + Send + 'static,
    {
        self.prepare_then_write(|| Ok(()), move |transaction, memo, ()| work(transaction, memo)).await
    }

    /// Runs `prepare` on a blocking thread without holding the writer, then `work` with its result as
    /// [`SqliteStore::write_remembering`] does. While one call writes, the next one can prepare on the other core.
    pub(crate) async fn prepare_then_write<P, I, T, F>(&self, prepare: P, work: F) -> StoreResult<T>
    where
        P: FnOnce() -> StoreResult<I> + Send + 'static,
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut WriterMemo, I) -> StoreResult<T> + Send + 'static,
    {
        let connections = Arc::clone(&self.connections);
        tokio::task::spawn_blocking(move || {
            let prepared = prepare()?;
            let mut writer = lock(&connections.writer);
            let Writer { connection, memo } = &mut *writer;
            memo.check_current(connection)?;
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("starting a write transaction")?;
            let committed = work(&transaction, memo, prepared)
                .and_then(|value| transaction.commit().context("committing").map(|()| value).map_err(Into::into));
            match committed {
                Ok(_) => memo.committed(),
                Err(_) => memo.rolled_back(),
            }
            committed
        })
        .await
        .context("the store's blocking task failed")?
    }
}

/// The one connection that writes, and what it remembers between transactions.
struct Writer {
    connection: Connection,
    memo: WriterMemo,
}

impl Connections {
    /// A free reader if there is one, otherwise the next in turn (waiting for it).
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let count = self.readers.len();
        for offset in 0..count {
            if let Ok(guard) = self.readers[(start + offset) % count].try_lock() {
                return guard;
            }
        }
        lock(&self.readers[start % count])
    }
}

/// A panic while a connection was held has already rolled its transaction back (the `Transaction` guard does that
/// on drop), so the connection itself is fine to use again. The writer's memo may have learnt something from the
/// rolled back work, so a poisoned writer starts with a fresh memo.
fn lock<T: Recover>(guarded: &Mutex<T>) -> MutexGuard<'_, T> {
    guarded.lock().unwrap_or_else(|poisoned| {
        let mut guard = poisoned.into_inner();
        guard.recover();
        guard
    })
}

trait Recover {
    fn recover(&mut self) {}
}

impl Recover for Connection {}

impl Recover for Writer {
    fn recover(&mut self) {
        self.memo = WriterMemo::default();
    }
}

fn open_connection(path: &Path, read_only: bool) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).with_context(|| format!("opening {}", path.display()))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // FULL: a write that was acknowledged survives a power cut, not only a crash of the process.
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.pragma_update(None, "busy_timeout", 5000)?;
    connection.pragma_update(None, "cache_size", -32_768)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    if read_only {
        connection.pragma_update(None, "query_only", "ON")?;
    }
    Ok(connection)
}

/// Applies the migrations the database lacks, each in its own transaction together with the new `user_version`.
/// Foreign keys are not enforced meanwhile, so that a migration can rebuild a table the way SQLite documents it
/// (create the new table, copy, drop the old one, rename) without the drop cascading into other tables; each
/// migration must leave no dangling reference behind, which `foreign_key_check` verifies before its commit.
fn migrate(connection: &mut Connection) -> anyhow::Result<()> {
    connection.pragma_update(None, "foreign_keys", "OFF")?;
    let migrated = apply_migrations(connection);
    connection.pragma_update(None, "foreign_keys", "ON")?;
    migrated
}

fn apply_migrations(connection: &mut Connection) -> anyhow::Result<()> {
    loop {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let applied = usize::try_from(version).context("negative user_version")?;
        if applied > MIGRATIONS.len() {
            bail!("the database has schema version {applied}, newer than this build knows ({})", MIGRATIONS.len());
        }
        let Some(migration) = MIGRATIONS.get(applied) else {
            return Ok(());
        };
        transaction.execute_batch(migration.script).with_context(|| format!("applying migration {}", applied + 1))?;
        if let Some(step) = migration.then {
            step(&transaction)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("re-encoding data for migration {}", applied + 1))?;
        }
        let dangling: Option<String> = transaction
            .query_row("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1", [], |row| row.get(0))
            .optional()?;
        if let Some(table) = dangling {
            bail!("migration {} left dangling references in {table}", applied + 1);
        }
        transaction.pragma_update(None, "user_version", applied + 1)?;
        transaction.commit()?;
    }
}

//! Opening the database: the pool, the migrations, transactions and the workspace locks.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rapport_domain::WorkspaceId;
use rapport_store::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::events::SharedIds;

/// Enough connections to keep both cores of a small server busy while some requests wait on locks or the network;
/// more would only add contention inside PostgreSQL.
const MAX_CONNECTIONS: u32 = 12;

/// A Rapport database on a PostgreSQL server. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    pub(crate) shared_ids: Arc<SharedIds>,
}

/// Transaction-scoped advisory locks on one workspace. The first key of PostgreSQL's two-key advisory lock names
/// the lock, the second is the workspace id.
///
/// Lock order: `Erasure`, then `Contacts`, then the others.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WorkspaceLock {
    /// Held by every transaction that writes contact rows, identities, tag links or activities: upserts,
    /// updates, tag changes, notes, erasure, events that create contacts, and the deletions of users, companies
    /// and fields that rewrite contact rows. Identity resolution reads the owners of a batch's identities and then
    /// inserts the missing ones; holding this lock makes that read-then-write race-free. It also stands in for the
    /// foreign keys that contacts, identities, tag links and activities do not have, and keeps those writers from
    /// deadlocking on each other's row locks.
    Contacts = 1,
    /// Held by every transaction that creates, renames, moves or deletes tags, so that a path computed from the
    /// library stays valid until the transaction commits.
    TagLibrary = 2,
    /// Held while the stage or lead status list of the workspace is reordered, so that concurrent edits do not
    /// renumber from stale positions.
    Lists = 3,
    /// Held shared by event ingestion from the moment it looks its contacts up, and exclusively by everything that
    /// deletes contacts: `delete_contact` and merges (`merge_contacts`, and tracking calls that may merge), so that
    /// no event is written for a contact that is being erased or merged away. It stands in for the foreign key that
    /// events do not have, while letting ingestion calls run side by side.
    Erasure = 4,
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<PostgresStore> {
        let options: PgConnectOptions = url.parse().context("parsing the PostgreSQL URL")?;
        // JIT compiles a query whose estimated cost is high. Every query here touches a handful of rows, so a high
        // estimate means stale statistics (a freshly loaded table, or autovacuum turned off), and compiling costs
        // tens of milliseconds on top of a sub-millisecond query.
        let options = options.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            // A ping before every acquire would add a round trip to every call; a connection that broke is
            // noticed by the query that uses it, and the pool replaces it.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::migrate!().run(&pool).await.context("migrating the PostgreSQL database")?;
        Ok(PostgresStore { pool, shared_ids: Arc::default() })
    }

    pub(crate) async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await.context("starting a transaction")?)
    }

    /// Starts a transaction that holds `locks` on `workspace`, in lock order, with one round trip: the locks are
    /// taken by the same message as `BEGIN`. For the hot paths, where a round trip is a measurable share of a call.
    pub(crate) async fn begin_locked(
        &self,
        workspace: WorkspaceId,
        locks: &[(WorkspaceLock, LockMode)],
    ) -> StoreResult<Transaction<'static, Postgres>> {
        let key = lock_key(workspace)?;
        // Numbers only, so the statement can be built as text; the simple query protocol takes no parameters.
        let mut statement = String::from("BEGIN");
        for (lock, mode) in locks {
            let function = match mode {
                LockMode::Shared => "pg_advisory_xact_lock_shared",
                LockMode::Exclusive => "pg_advisory_xact_lock",
            };
            statement.push_str(&format!("; SELECT {function}({}, {key})", *lock as i32));
        }
        Ok(self
            .pool
            .begin_with(statement)
            .await
            .with_context(|| format!("starting a transaction holding {locks:?}"))?)
    }
}

/// How [`PostgresStore::begin_locked`] takes a lock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LockMode {
    Shared,
    Exclusive,
}

fn lock_key(workspace: WorkspaceId) -> StoreResult<i32> {
    Ok(i32::try_from(workspace.get()).context("the workspace id exceeds the advisory lock key range")?)
}

/// Takes `lock` on `workspace` until the transaction ends.
pub(crate) async fn lock_workspace(
    connection: &mut PgConnection,
    workspace: WorkspaceId,
    lock: WorkspaceLock,
) -> StoreResult<()> {
    let key = lock_key(workspace)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(lock as i32)
        .bind(key)
        .execute(connection)
        .await
        .with_context(|| format!("taking the {lock:?} lock"))?;
    Ok(())
}

/// Commits, turning a failure into a backend error.
pub(crate) async fn commit(transaction: Transaction<'static, Postgres>) -> StoreResult<()> {
    Ok(transaction.commit().await.context("committing")?)
}

//! The change feed: change rows and event batches (written by the triggers of `0006_audience.sql`), read by
//! transaction id up to a horizon below which every transaction has ended.
//!
//! Transactions commit in another order than they take ids, so "rows after the last one read" would miss the rows
//! of a transaction that commits after a later one was read. Every row carries the id of the transaction that wrote
//! it instead, and a read stops at a horizon: the oldest transaction id that may still be running in this database.
//! Everything below it has committed or aborted, so a read sees all the rows it will ever have there, and the next
//! read starts at the horizon. A [`ChangeCursor`] holds a horizon (as the integer value of an `xid8`) in both
//! fields; its `events` half has no meaning of its own here.
//!
//! The horizon is not `pg_snapshot_xmin(pg_current_snapshot())`, which counts the transactions of every database
//! on the server: a long write elsewhere (another application's, or `CREATE DATABASE`) would hold the feed back.
//! Only writers of this database are counted, those connected (`pg_stat_activity`) and those prepared for a
//! two-phase commit. That is sound because a transaction gets its id before it writes a row and keeps it visible to
//! others until its commit is visible (see [`HORIZON`]).

use anyhow::Context;
use chrono::{DateTime, Utc};
use rapport_domain::{CompanyId, ContactId, WorkspaceId};
use rapport_store::{Change, ChangeBatch, ChangeCursor, ChangeSubject, EventFact, StoreResult};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::connection::{PostgresStore, commit};
use crate::sql::json_object;

/// The feed's horizon, as a 64-bit transaction id: the snapshot's `xmax` (every id below it had been handed out
/// when the statement started) lowered to the oldest transaction of this database still running, whose 32-bit id
/// is widened by its distance below `xmax` (ids at or above `xmax` started later and are left out). A transaction
/// below the result had ended when its backend was looked at, after the statement's snapshot was taken, so a
/// later statement sees its rows; the caller reads with later statements. Autovacuum's transactions (an `ANALYZE`
/// takes an id) write no rows of the feed and are not waited for.
const HORIZON: &str = "
    WITH snapshot AS MATERIALIZED (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax),
    running AS (
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
        WHERE datname = current_database() AND backend_xid IS NOT NULL AND backend_type <> 'autovacuum worker'
        UNION ALL
        SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE database = current_database()
    ),
    behind AS (SELECT ((s.xmax & 4294967295) - r.xid + 4294967296) % 4294967296 AS distance FROM snapshot s, running r)
    SELECT s.xmax - coalesce((SELECT max(distance) FROM behind WHERE distance < 2147483648), 0) FROM snapshot s";

/// The first transaction id in `[$1, $2)` whose change rows are not to be read now, with `$3` the limit: the id of
/// the row past the limit, unless the rows before it are all its transaction's, in which case the transaction
/// after it (so that a transaction is read whole, and one larger than the limit alone). No row when everything up
/// to `$2` fits, NULL when the transaction past the limit is the last one.
const CHANGES_CUT: &str = "
    WITH over AS (
        SELECT xid FROM changes WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8 ORDER BY xid OFFSET $3 LIMIT 1
    )
    SELECT (CASE
        WHEN EXISTS (SELECT 1 FROM changes c WHERE c.xid >= $1::text::xid8 AND c.xid < over.xid) THEN over.xid
        ELSE (SELECT min(c.xid) FROM changes c WHERE c.xid > over.xid AND c.xid < $2::text::xid8)
    END)::text::bigint FROM over";

/// [`CHANGES_CUT`] for events: each batch weighs its number of events.
const EVENTS_CUT: &str = "
    WITH over AS (
        SELECT xid FROM (
            SELECT xid, sum(cardinality(ids)) OVER (ORDER BY xid ROWS UNBOUNDED PRECEDING) AS upto
            FROM event_batches WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8 ORDER BY xid
        ) AS batches WHERE upto > $3 LIMIT 1
    )
    SELECT (CASE
        WHEN EXISTS (SELECT 1 FROM event_batches b WHERE b.xid >= $1::text::xid8 AND b.xid < over.xid) THEN over.xid
        ELSE (SELECT min(b.xid) FROM event_batches b WHERE b.xid > over.xid AND b.xid < $2::text::xid8)
    END)::text::bigint FROM over";

/// The columns of an [`EventFact`] from `events e` joined with `event_names t` and `event_documents p` (the
/// interned page properties), as the timeline rebuilds the properties.
const EVENT_FACT_COLUMNS: &str = "e.id, t.workspace_id, e.contact_id, t.name AS event_type, e.occurred_at,
    CASE WHEN e.page_id = 0 THEN e.properties::jsonb ELSE e.properties::jsonb || p.body END AS properties";

/// `scan_events` reads ranges of this many ids at first, doubling while they hold too few of the wanted events, up
/// to [`MAX_SCAN_WINDOW`]: the ranges of a busy workspace stay short, and a quiet one's history is still crossed in
/// few steps.
const SCAN_WINDOW: i64 = 1 << 16;
const MAX_SCAN_WINDOW: i64 = 1 << 22;

#[derive(sqlx::FromRow)]
struct EventFactRow {
    id: i64,
    workspace_id: i64,
    contact_id: i64,
    event_type: String,
    occurred_at: DateTime<Utc>,
    properties: Value,
}

impl EventFactRow {
    fn into_record(self) -> anyhow::Result<EventFact> {
        Ok(EventFact {
            id: self.id,
            workspace_id: WorkspaceId::new(self.workspace_id),
            contact_id: ContactId::new(self.contact_id),
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            properties: json_object(self.properties, "event properties")?,
        })
    }
}

impl PostgresStore {
    pub(crate) async fn change_head(&self) -> StoreResult<ChangeCursor> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        let horizon = horizon(&mut connection).await?;
        Ok(ChangeCursor { changes: horizon, events: horizon })
    }

    /// Reads with a few statements after the one that fixes the horizon: what lies below it no longer changes
    /// (only `prune_changes` deletes there, and only what has been read).
    pub(crate) async fn read_changes(&self, after: ChangeCursor, limit: u32) -> StoreResult<ChangeBatch> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        let horizon = horizon(&mut connection).await?;
        if horizon <= after.changes {
            return Ok(ChangeBatch { changes: Vec::new(), events: Vec::new(), next: after });
        }
        let limit = i64::from(limit.max(1));
        let mut next = horizon;
        for cut in [CHANGES_CUT, EVENTS_CUT] {
            let cut: Option<Option<i64>> = sqlx::query_scalar(cut)
                .bind(after.changes)
                .bind(horizon)
                .bind(limit)
                .fetch_optional(&mut *connection)
                .await
                .context("sizing a read of the change feed")?;
            if let Some(Some(cut)) = cut {
                next = next.min(cut);
            }
        }

        let rows: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT workspace_id, contact_id, company_id FROM changes
             WHERE xid >= $1::text::xid8 AND xid < $2::text::xid8
             GROUP BY workspace_id, contact_id, company_id
             ORDER BY min(xid), workspace_id, contact_id, company_id",
        )
        .bind(after.changes)
        .bind(next)
        .fetch_all(&mut *connection)
        .await
        .context("reading changes")?;
        let changes = rows
            .into_iter()
            .map(|(workspace_id, contact_id, company_id)| Change {
                workspace_id: WorkspaceId::new(workspace_id),
                subject: match (contact_id, company_id) {
                    (Some(contact), _) => ChangeSubject::Contact(ContactId::new(contact)),
                    (None, Some(company)) => ChangeSubject::Company(CompanyId::new(company)),
                    (None, None) => ChangeSubject::Schema,
                },
            })
            .collect();

        // Each event is found through `events_by_contact`, under its contact's current id: the survivor's when the
        // contact was merged away since (pointers are kept flat). An erased contact's events are gone.
        let sql = format!(
            "SELECT {EVENT_FACT_COLUMNS}
             FROM event_batches b
             CROSS JOIN LATERAL UNNEST(b.ids, b.contact_ids, b.occurred_at) AS stored (id, contact_id, occurred_at)
             CROSS JOIN LATERAL (
                 SELECT * FROM events
                 WHERE contact_id = coalesce(
                         (SELECT survivor_id FROM contact_merges WHERE absorbed_id = stored.contact_id),
                         stored.contact_id)
                     AND occurred_at = stored.occurred_at AND id = stored.id
                 OFFSET 0
             ) AS e
             JOIN event_names t ON t.id = e.type_id
             LEFT JOIN event_documents p ON p.id = e.page_id
             WHERE b.xid >= $1::text::xid8 AND b.xid < $2::text::xid8
             ORDER BY e.id"
        );
        let rows: Vec<EventFactRow> = sqlx::query_as(&sql)
            .bind(after.changes)
            .bind(next)
            .fetch_all(&mut *connection)
            .await
            .context("reading the events of the change feed")?;
        let events = rows.into_iter().map(EventFactRow::into_record).collect::<anyhow::Result<_>>()?;
        Ok(ChangeBatch { changes, events, next: ChangeCursor { changes: next, events: next } })
    }

    pub(crate) async fn prune_changes(&self, before: ChangeCursor) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM changes WHERE xid < $1::text::xid8")
            .bind(before.changes)
            .execute(&mut *tx)
            .await
            .context("pruning changes")?;
        sqlx::query("DELETE FROM event_batches WHERE xid < $1::text::xid8")
            .bind(before.changes)
            .execute(&mut *tx)
            .await
            .context("pruning event batches")?;
        commit(tx).await
    }

    /// Walks the event ids after `after` in ranges (see [`SCAN_WINDOW`]) until `limit` events are found or the ids
    /// handed out so far are passed. The workspace's events are those of its event types, whose ids are its own.
    /// Each range is one statement that leaves out the events of batches at or above `delivered`, which the feed
    /// delivers; those below it are all visible by then.
    pub(crate) async fn scan_events(
        &self,
        workspace: WorkspaceId,
        event_types: &[String],
        delivered: ChangeCursor,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<EventFact>> {
        let mut connection = self.pool.acquire().await.context("acquiring a connection")?;
        let type_ids: Vec<i32> = sqlx::query_scalar(
            "SELECT id FROM event_names WHERE workspace_id = $1 AND kind = 'type' AND name = ANY($2)",
        )
        .bind(workspace.get())
        .bind(event_types)
        .fetch_all(&mut *connection)
        .await
        .context("looking up event types")?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if type_ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        summarize_event_ranges(&mut connection).await;
        let last: i64 = sqlx::query_scalar("SELECT last_value FROM events_id_seq")
            .fetch_one(&mut *connection)
            .await
            .context("reading the last event id")?;
        let sql = format!(
            "WITH undelivered AS MATERIALIZED (
                 SELECT id FROM (SELECT unnest(ids) AS id FROM event_batches WHERE xid >= $3::text::xid8) AS b
                 WHERE id > $1 AND id <= $2
             )
             SELECT {EVENT_FACT_COLUMNS}
             FROM events e
             JOIN event_names t ON t.id = e.type_id
             LEFT JOIN event_documents p ON p.id = e.page_id
             WHERE e.id > $1 AND e.id <= $2 AND e.type_id = ANY($4)
                 AND NOT EXISTS (SELECT 1 FROM undelivered u WHERE u.id = e.id)
             ORDER BY e.id LIMIT $5"
        );
        let mut facts = Vec::new();
        let mut from = after;
        let mut window = SCAN_WINDOW;
        while facts.len() < limit && from < last {
            let to = from.saturating_add(window).min(last);
            let remaining = i64::try_from(limit - facts.len()).unwrap_or(i64::MAX);
            let rows: Vec<EventFactRow> = sqlx::query_as(&sql)
                .bind(from)
                .bind(to)
                .bind(delivered.changes)
                .bind(&type_ids)
                .bind(remaining)
                .fetch_all(&mut *connection)
                .await
                .context("scanning events")?;
            for row in rows {
                facts.push(row.into_record()?);
            }
            from = to;
            window = (window * 2).min(MAX_SCAN_WINDOW);
        }
        Ok(facts)
    }
}

async fn horizon(connection: &mut PgConnection) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(HORIZON).fetch_one(connection).await.context("reading the change feed's horizon")?)
}

/// Summarises the block ranges of `events_by_id` that are new since the last summary, so that `scan_events` skips
/// them rather than reading them for every range it asks for. Autovacuum does this too when it runs, but a scan
/// cannot wait for it. Best effort: the summary waits for no lock (autovacuum or a `VACUUM` holds the one it needs),
/// and a failure only makes the scan slower.
async fn summarize_event_ranges(connection: &mut PgConnection) {
    let summarized: Result<(), sqlx::Error> = async {
        let mut tx = connection.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '50ms'").execute(&mut *tx).await?;
        sqlx::query("SELECT brin_summarize_new_values('events_by_id'::regclass)").execute(&mut *tx).await?;
        tx.commit().await
    }
    .await;
    if let Err(error) = summarized {
        tracing::debug!("the event id ranges were left unsummarised: {error}");
    }
}

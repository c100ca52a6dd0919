-- Per-field merge rules, and background jobs (CSV imports and exports started through the API).

ALTER TABLE field_definitions ADD COLUMN merge_rule TEXT NOT NULL DEFAULT 'latest';

-- A job's parameters, progress and result are JSON documents that only the job runner and the API read. The
-- runner claims the oldest queued job of any workspace; a job left running by a stopped server is failed at the
-- next start (see `fail_interrupted_jobs`).
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces (id),
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    params            TEXT NOT NULL,
    progress          TEXT NOT NULL DEFAULT '{}',
    result            TEXT,
    error_code        TEXT,
    error_message     TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    updated_at        INTEGER NOT NULL
);

CREATE INDEX jobs_by_workspace ON jobs (workspace_id, kind, id);
-- Not a partial index: SQLite uses one only when the query repeats its WHERE term, and `status = 'queued'` does
-- not repeat `status IN ('queued', 'running')`. Jobs are few, so indexing the finished ones costs little.
CREATE INDEX jobs_by_status ON jobs (status, id);

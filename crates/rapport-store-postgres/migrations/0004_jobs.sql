-- Per-field merge rules, and background jobs (CSV imports and exports started through the API).

ALTER TABLE field_definitions ADD COLUMN merge_rule TEXT NOT NULL DEFAULT 'latest';

-- A job's parameters, progress and result are JSON documents that only the job runner and the API read. The
-- runner claims the oldest queued job of any workspace with `FOR UPDATE SKIP LOCKED`; a job left running by a
-- stopped server is failed at the next start (see `fail_interrupted_jobs`).
CREATE TABLE jobs (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id      BIGINT NOT NULL REFERENCES workspaces (id),
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL,
    params            JSONB NOT NULL,
    progress          JSONB NOT NULL DEFAULT '{}',
    result            JSONB,
    error_code        TEXT,
    error_message     TEXT,
    cancel_requested  BOOLEAN NOT NULL DEFAULT false,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX jobs_by_workspace ON jobs (workspace_id, kind, id);
CREATE INDEX jobs_unfinished ON jobs (status, id) WHERE status IN ('queued', 'running');

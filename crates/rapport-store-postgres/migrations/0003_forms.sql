-- Hosted forms, and consent recorded with its proof.

CREATE TABLE forms (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id      BIGINT NOT NULL REFERENCES workspaces (id),
    name              TEXT NOT NULL,
    -- The definition as the API checked it (a JSON document the store does not interpret).
    definition        JSONB NOT NULL,
    source_id         BIGINT NOT NULL REFERENCES sources (id),
    status            TEXT NOT NULL,
    submission_count  BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX forms_by_workspace ON forms (workspace_id, id);

-- One row per consent given or refused, never updated: the newest row per channel is the contact's current state,
-- the older ones its history. The proof is the time, the address and browser, and the very text shown. Like the
-- other rows hanging off contacts, no foreign key: writers hold the workspace's contact lock, erasure deletes them
-- and merges move them.
CREATE TABLE consents (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id  BIGINT NOT NULL,
    contact_id    BIGINT NOT NULL,
    channel       TEXT NOT NULL,
    granted       BOOLEAN NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    text          TEXT NOT NULL,
    form_id       BIGINT,
    message_id    TEXT
);

CREATE INDEX consents_by_contact ON consents (contact_id, recorded_at);

-- Hosted forms, and consent recorded with its proof.

CREATE TABLE forms (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id      INTEGER NOT NULL REFERENCES workspaces (id),
    name              TEXT NOT NULL,
    -- The definition as the API checked it (a JSON document the store does not interpret).
    definition        TEXT NOT NULL,
    source_id         INTEGER NOT NULL REFERENCES sources (id),
    status            TEXT NOT NULL,
    submission_count  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE INDEX forms_by_workspace ON forms (workspace_id, id);

-- One row per consent given or refused, never updated: the newest row per channel is the contact's current state,
-- the older ones its history. The proof is the time, the address and browser, and the very text shown.
CREATE TABLE consents (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    channel       TEXT NOT NULL,
    granted       INTEGER NOT NULL,
    recorded_at   INTEGER NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    text          TEXT NOT NULL,
    form_id       INTEGER,
    message_id    TEXT
);

CREATE INDEX consents_by_contact ON consents (contact_id, recorded_at);

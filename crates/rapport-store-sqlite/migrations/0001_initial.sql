-- The initial schema. Times are INTEGER microseconds since the Unix epoch; JSON documents are TEXT.
-- Every table is keyed by workspace, and every lookup the store makes on a large table has an index.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces (id),
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id, id);

CREATE TABLE field_definitions (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    entity        TEXT NOT NULL,
    key           TEXT NOT NULL,
    label         TEXT NOT NULL,
    type          TEXT NOT NULL,
    options       TEXT NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, entity, key)
);

CREATE TABLE tags (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    parent_id     INTEGER REFERENCES tags (id),
    name          TEXT NOT NULL,
    path          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, path)
);

CREATE INDEX tags_by_parent ON tags (parent_id);

CREATE TABLE stages (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    key           TEXT NOT NULL,
    label         TEXT NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) WITHOUT ROWID;

CREATE TABLE lead_statuses (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    key           TEXT NOT NULL,
    label         TEXT NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) WITHOUT ROWID;

CREATE TABLE note_templates (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    status        TEXT,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE INDEX note_templates_by_workspace ON note_templates (workspace_id, id);

CREATE TABLE companies (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    domain        TEXT,
    industry      TEXT,
    size          TEXT,
    fields        TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, domain)
);

CREATE INDEX companies_by_workspace ON companies (workspace_id, id);

-- The primary email, phone and user id are copies of identities, kept for display; lookups go through
-- contact_identities. Owner and company are cleared by their deletion.
CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    email         TEXT,
    phone         TEXT,
    user_id       TEXT,
    first_name    TEXT,
    last_name     TEXT,
    title         TEXT,
    company_name  TEXT,
    city          TEXT,
    province      TEXT,
    country       TEXT,
    source        TEXT,
    owner_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    company_id    INTEGER REFERENCES companies (id) ON DELETE SET NULL,
    fields        TEXT NOT NULL DEFAULT '{}',
    stage         TEXT NOT NULL,
    status        TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE INDEX contacts_by_update ON contacts (workspace_id, updated_at DESC, id DESC);
-- Partial: most contacts have neither, and these only serve the deletion of a user or company and the counts.
CREATE INDEX contacts_by_owner ON contacts (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX contacts_by_company ON contacts (company_id) WHERE company_id IS NOT NULL;

CREATE TABLE contact_identities (
    workspace_id  INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, kind, value)
) WITHOUT ROWID;

CREATE INDEX contact_identities_by_contact ON contact_identities (contact_id);

CREATE TABLE contact_tags (
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id),
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (contact_id, tag_id)
) WITHOUT ROWID;

CREATE INDEX contact_tags_by_tag ON contact_tags (tag_id);

-- The contact's history besides events: stage and status changes, tag changes, notes.
CREATE TABLE activities (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    data          TEXT NOT NULL
);

-- Index entries end with the rowid, so this also orders by (at, id) as the timeline needs.
CREATE INDEX activities_by_contact ON activities (contact_id, at);

-- Kept lean: this is the table that grows fastest. No foreign key on contact_id, because the insert path has
-- checked the contact already and a second probe per event is measurable; deleting a contact deletes its events
-- explicitly.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    contact_id    INTEGER NOT NULL,
    type          TEXT NOT NULL,
    properties    TEXT NOT NULL,
    context       TEXT NOT NULL,
    occurred_at   INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    source        TEXT,
    message_id    TEXT
);

CREATE INDEX events_by_contact ON events (contact_id, occurred_at);
CREATE UNIQUE INDEX events_by_message_id ON events (workspace_id, message_id) WHERE message_id IS NOT NULL;

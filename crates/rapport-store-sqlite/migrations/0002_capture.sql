-- Capture: tracking sources, companies known by a group id, merges of contacts, and a leaner event layout with
-- message ids deduplicated for every kind of tracking message. Runs with foreign key enforcement off (see
-- connection.rs), as SQLite's procedure for rebuilding a table requires; the events are re-encoded into the new
-- layout by a Rust step right after this script, in the same transaction.

CREATE TABLE sources (
    id                  INTEGER PRIMARY KEY,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces (id),
    name                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    write_key           TEXT NOT NULL UNIQUE,
    auto_create_fields  INTEGER NOT NULL,
    honor_dnt           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    revoked_at          INTEGER
);

CREATE INDEX sources_by_workspace ON sources (workspace_id, id);

ALTER TABLE companies ADD COLUMN external_id TEXT;

CREATE UNIQUE INDEX companies_by_external_id ON companies (workspace_id, external_id) WHERE external_id IS NOT NULL;

-- Contact ids are never handed out twice (AUTOINCREMENT): an absorbed or erased id must not come back as somebody
-- else, since merged_into and API clients keep referring to it.
CREATE TABLE contacts_autoincrement (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
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

INSERT INTO contacts_autoincrement SELECT * FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_autoincrement RENAME TO contacts;

CREATE INDEX contacts_by_update ON contacts (workspace_id, updated_at DESC, id DESC);
CREATE INDEX contacts_by_owner ON contacts (owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX contacts_by_company ON contacts (company_id) WHERE company_id IS NOT NULL;

-- Where merged contacts went. Chains are kept flat: when a survivor is absorbed in turn, the pointers to it are
-- moved to the new survivor, so merged_into is one look-up.
CREATE TABLE contact_merges (
    absorbed_id   INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    survivor_id   INTEGER NOT NULL
);

CREATE INDEX contact_merges_by_survivor ON contact_merges (survivor_id);

-- Every message id a workspace has stored, as a 64-bit hash (see message_ids.rs for the collision trade-off).
-- contact_id is set only for messages that stored no event (identify, group, alias), so that erasing a contact
-- finds them; an event's own row says which message id it claimed.
CREATE TABLE message_ids (
    workspace_id  INTEGER NOT NULL,
    hash          INTEGER NOT NULL,
    contact_id    INTEGER,
    PRIMARY KEY (workspace_id, hash)
) WITHOUT ROWID;

CREATE INDEX message_ids_by_contact ON message_ids (contact_id) WHERE contact_id IS NOT NULL;

CREATE TABLE event_types (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    name          TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);

-- JSON objects that many events share, by reference (see events.rs).
CREATE TABLE event_documents (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    hash          INTEGER NOT NULL,
    body          TEXT NOT NULL
);

CREATE INDEX event_documents_by_hash ON event_documents (workspace_id, hash);

-- How many events refer to each document, so that erasure can drop the documents nobody else uses. A table of its
-- own, so that counting rewrites small rows rather than the pages holding the bodies.
CREATE TABLE event_document_refs (
    document_id  INTEGER PRIMARY KEY,
    refs         INTEGER NOT NULL
);

DROP INDEX events_by_contact;
DROP INDEX events_by_message_id;
ALTER TABLE events RENAME TO events_v1;

-- Kept lean: this is the table that grows fastest (see events.rs). No foreign keys, because the insert path has
-- checked the contact already and a probe per event is measurable; erasing a contact deletes its events
-- explicitly. message_id has BLOB affinity so that its text, blob and integer forms are stored as they are given.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL,
    contact_id       INTEGER NOT NULL,
    type_id          INTEGER NOT NULL,
    occurred_at      INTEGER NOT NULL,
    received_delay   INTEGER NOT NULL,
    properties       TEXT,
    page_id          INTEGER,
    context_id       INTEGER,
    context_page_id  INTEGER,
    source           TEXT,
    source_id        INTEGER,
    message_id       BLOB
);

-- A contact's events, found block by block: entries lead with the block of 65,536 consecutive event ids they
-- belong to (id >> 16), so that the inserts of a commit all land in the newest block's few hundred pages. Keyed by
-- contact alone, they would land all over an index as large as the table, and every commit would rewrite most of
-- its pages. Readers visit one block after the other (see events.rs); entries end with the rowid, so within a
-- block they are in (occurred_at, id) order as the timeline needs.
CREATE INDEX events_by_contact ON events (id >> 16, contact_id, occurred_at);

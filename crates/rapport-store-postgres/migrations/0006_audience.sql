-- Segments, their members, and the change feed that keeps them current.

-- A segment is a saved filter (its canonical text form). With tag_id set it is the definition of a dynamic tag.
CREATE TABLE segments (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id  BIGINT NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    filter        TEXT NOT NULL,
    tag_id        BIGINT CONSTRAINT segments_tag_id_key UNIQUE REFERENCES tags (id),
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT segments_name_key UNIQUE (workspace_id, name)
);

-- Like the other rows that hang off contacts, members carry no foreign keys (see 0001_initial.sql): the engine
-- writes them by the hundred thousand when it builds a segment. Erasure and merges delete a contact's rows under the
-- contact lock, which `apply_memberships` holds too; `delete_segment` deletes a segment's rows, and
-- `apply_memberships` locks the rows of the segments it writes (`FOR KEY SHARE`) so that none is deleted under it.
CREATE TABLE segment_members (
    segment_id  BIGINT NOT NULL,
    contact_id  BIGINT NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    CONSTRAINT segment_members_pkey PRIMARY KEY (segment_id, contact_id)
);

CREATE INDEX segment_members_by_contact ON segment_members (contact_id);

-- Filters ask when a contact entered a stage; stage changes are a small share of the activities.
CREATE INDEX activities_stage_changes ON activities (contact_id, at, id) WHERE kind = 'stage_changed';

-- ----- The change feed -----
--
-- Triggers append a row for every write that can change what a filter says about a contact, so that no writer (the
-- server, an import run from the command line) can forget to:
--   contact_id set: the contact, its identities, tags or consent changed, or it was created, merged or erased;
--   company_id set: the company changed or was deleted;
--   both NULL: the workspace's schema (fields, tags, stages, statuses, segments) changed.
-- Stored events are listed by `event_batches`: the events each statement inserted.
--
-- A row carries the id of the transaction that wrote it. Transactions commit in another order than they take ids
-- and sequence values, so "rows after the last one read" would miss a row whose transaction commits after a later
-- one was read. Instead a reader reads up to a horizon below which every transaction of this database has ended
-- (see `audience/feed.rs`), so that the rows there are visible and no more can come. The feed's position is that
-- horizon, and a read returns the rows with `position <= xid < horizon`.
--
-- The triggers are statement-level with transition tables: a bulk upsert writes a thousand contacts with one
-- statement, and one trigger call per statement costs a fraction of one per row.

CREATE TABLE changes (
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    workspace_id  BIGINT NOT NULL,
    contact_id    BIGINT,
    company_id    BIGINT
);

CREATE INDEX changes_by_xid ON changes (xid);

-- Each row lists the events one statement stored, with their contacts and times: a reader finds each event through
-- `events_by_contact`, the contact's current id being the stored one or, once it was merged away, its survivor's
-- (see `contact_merges`). That costs the same whatever state `events_by_id` below is in (a read of the newest
-- events by id would scan every block range that has not been summarised yet).
CREATE TABLE event_batches (
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ids          BIGINT[] NOT NULL,
    contact_ids  BIGINT[] NOT NULL,
    occurred_at  TIMESTAMPTZ[] NOT NULL
);

CREATE INDEX event_batches_by_xid ON event_batches (xid);

-- `scan_events` walks a workspace's history in ranges of ids. Events are appended and seldom move (only merges
-- rewrite them), so their ids follow the physical order, and a block range index finds a range of ids for a few
-- bytes per megabyte of events, where a B-tree would cost about 20 bytes an event. A range is only skipped once it
-- is summarised: autovacuum does that when `autosummarize` is on and autovacuum runs, and `scan_events` summarises
-- what is new before it scans.
CREATE INDEX events_by_id ON events USING brin (id) WITH (pages_per_range = 32, autosummarize = on);

CREATE FUNCTION feed_contacts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (workspace_id, contact_id) SELECT workspace_id, id FROM old_rows;
    ELSE
        INSERT INTO changes (workspace_id, contact_id) SELECT workspace_id, id FROM new_rows;
    END IF;
    RETURN NULL;
END
$$;

-- For contact_identities and consents, which carry their contact and workspace.
CREATE FUNCTION feed_contact_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (workspace_id, contact_id) SELECT DISTINCT workspace_id, contact_id FROM old_rows;
    ELSE
        INSERT INTO changes (workspace_id, contact_id) SELECT DISTINCT workspace_id, contact_id FROM new_rows;
    END IF;
    RETURN NULL;
END
$$;

-- Tag links carry no workspace; their tag does.
CREATE FUNCTION feed_contact_tags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (workspace_id, contact_id)
        SELECT DISTINCT t.workspace_id, l.contact_id FROM old_rows l JOIN tags t ON t.id = l.tag_id;
    ELSE
        INSERT INTO changes (workspace_id, contact_id)
        SELECT DISTINCT t.workspace_id, l.contact_id FROM new_rows l JOIN tags t ON t.id = l.tag_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION feed_companies_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (workspace_id, company_id) SELECT workspace_id, id FROM old_rows;
    ELSE
        INSERT INTO changes (workspace_id, company_id) SELECT workspace_id, id FROM new_rows;
    END IF;
    RETURN NULL;
END
$$;

-- For the tables of a workspace's schema, which all carry their workspace.
CREATE FUNCTION feed_schema_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (workspace_id) SELECT DISTINCT workspace_id FROM old_rows;
    ELSE
        INSERT INTO changes (workspace_id) SELECT DISTINCT workspace_id FROM new_rows;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION feed_events_stored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_batches (ids, contact_ids, occurred_at)
    SELECT array_agg(id), array_agg(contact_id), array_agg(occurred_at) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER feed_contacts_inserted AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contacts_changed();
CREATE TRIGGER feed_contacts_updated AFTER UPDATE ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contacts_changed();
CREATE TRIGGER feed_contacts_deleted AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contacts_changed();

CREATE TRIGGER feed_identities_inserted AFTER INSERT ON contact_identities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contact_rows_changed();
CREATE TRIGGER feed_identities_deleted AFTER DELETE ON contact_identities
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contact_rows_changed();

CREATE TRIGGER feed_consents_inserted AFTER INSERT ON consents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contact_rows_changed();

CREATE TRIGGER feed_contact_tags_inserted AFTER INSERT ON contact_tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contact_tags_changed();
CREATE TRIGGER feed_contact_tags_deleted AFTER DELETE ON contact_tags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_contact_tags_changed();

CREATE TRIGGER feed_companies_updated AFTER UPDATE ON companies
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_companies_changed();
CREATE TRIGGER feed_companies_deleted AFTER DELETE ON companies
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_companies_changed();

CREATE TRIGGER feed_fields_inserted AFTER INSERT ON field_definitions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_fields_updated AFTER UPDATE ON field_definitions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_fields_deleted AFTER DELETE ON field_definitions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();

CREATE TRIGGER feed_tags_inserted AFTER INSERT ON tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_tags_updated AFTER UPDATE ON tags
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_tags_deleted AFTER DELETE ON tags
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();

-- Stages and lead statuses.
CREATE TRIGGER feed_list_entries_inserted AFTER INSERT ON list_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_list_entries_updated AFTER UPDATE ON list_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_list_entries_deleted AFTER DELETE ON list_entries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();

CREATE TRIGGER feed_segments_inserted AFTER INSERT ON segments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_segments_updated AFTER UPDATE ON segments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();
CREATE TRIGGER feed_segments_deleted AFTER DELETE ON segments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_schema_changed();

CREATE TRIGGER feed_events_inserted AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION feed_events_stored();

-- Tag statistics count tag_added / tag_removed records by day.
CREATE INDEX activities_by_kind ON activities (workspace_id, kind, at) WHERE kind IN ('tag_added', 'tag_removed');

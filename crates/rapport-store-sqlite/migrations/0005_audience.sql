-- Segments, their members, and the change feed that keeps them current.

-- A segment is a saved filter (its canonical text form). With tag_id set it is the definition of a dynamic tag.
CREATE TABLE segments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces (id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    filter        TEXT NOT NULL,
    tag_id        INTEGER UNIQUE REFERENCES tags (id),
    version       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE segment_members (
    segment_id    INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    since         INTEGER NOT NULL,
    PRIMARY KEY (segment_id, contact_id)
) WITHOUT ROWID;

CREATE INDEX segment_members_by_contact ON segment_members (contact_id);

-- Tag statistics count tag_added / tag_removed records by day.
CREATE INDEX activities_by_kind ON activities (workspace_id, kind, at) WHERE kind IN ('tag_added', 'tag_removed');

-- The change feed. Triggers append a row for every committed write that can change what a filter says about a
-- contact, so that no writer (the server, an import run from the command line) can forget to. The audience engine
-- reads rows after its position and deletes what it has applied. Events are not listed here: their ids already
-- grow in commit order (one writer), so the engine follows the events table itself (erasure keeps the highest id
-- taken, see `erase_events`).
--   contact_id set: the contact, its identities, tags or consent changed, or it was created, merged or erased;
--   company_id set: the company changed or was deleted;
--   both NULL: the workspace's schema (fields, tags, stages, statuses, segments) changed.
-- AUTOINCREMENT, because the engine deletes what it has read: a reused seq would fall behind its position.
CREATE TABLE changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id  INTEGER NOT NULL,
    contact_id    INTEGER,
    company_id    INTEGER
);

CREATE TRIGGER contacts_changed_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO changes (workspace_id, contact_id) VALUES (NEW.workspace_id, NEW.id);
END;
CREATE TRIGGER contacts_changed_update AFTER UPDATE ON contacts BEGIN
    INSERT INTO changes (workspace_id, contact_id) VALUES (NEW.workspace_id, NEW.id);
END;
CREATE TRIGGER contacts_changed_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO changes (workspace_id, contact_id) VALUES (OLD.workspace_id, OLD.id);
END;

CREATE TRIGGER contact_identities_changed_insert AFTER INSERT ON contact_identities BEGIN
    INSERT INTO changes (workspace_id, contact_id) VALUES (NEW.workspace_id, NEW.contact_id);
END;
CREATE TRIGGER contact_identities_changed_delete AFTER DELETE ON contact_identities BEGIN
    INSERT INTO changes (workspace_id, contact_id) VALUES (OLD.workspace_id, OLD.contact_id);
END;

CREATE TRIGGER contact_tags_changed_insert AFTER INSERT ON contact_tags BEGIN
    INSERT INTO changes (workspace_id, contact_id)
    SELECT workspace_id, NEW.contact_id FROM tags WHERE id = NEW.tag_id;
END;
CREATE TRIGGER contact_tags_changed_delete AFTER DELETE ON contact_tags BEGIN
    INSERT INTO changes (workspace_id, contact_id)
    SELECT workspace_id, OLD.contact_id FROM tags WHERE id = OLD.tag_id;
END;

CREATE TRIGGER consents_changed AFTER INSERT ON consents BEGIN
    INSERT INTO changes (workspace_id, contact_id) VALUES (NEW.workspace_id, NEW.contact_id);
END;

CREATE TRIGGER companies_changed_update AFTER UPDATE ON companies BEGIN
    INSERT INTO changes (workspace_id, company_id) VALUES (NEW.workspace_id, NEW.id);
END;
CREATE TRIGGER companies_changed_delete AFTER DELETE ON companies BEGIN
    INSERT INTO changes (workspace_id, company_id) VALUES (OLD.workspace_id, OLD.id);
END;

CREATE TRIGGER field_definitions_changed_insert AFTER INSERT ON field_definitions BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER field_definitions_changed_update AFTER UPDATE ON field_definitions BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER field_definitions_changed_delete AFTER DELETE ON field_definitions BEGIN
    INSERT INTO changes (workspace_id) VALUES (OLD.workspace_id);
END;

CREATE TRIGGER tags_changed_insert AFTER INSERT ON tags BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER tags_changed_update AFTER UPDATE ON tags BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER tags_changed_delete AFTER DELETE ON tags BEGIN
    INSERT INTO changes (workspace_id) VALUES (OLD.workspace_id);
END;

CREATE TRIGGER stages_changed_insert AFTER INSERT ON stages BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER stages_changed_update AFTER UPDATE ON stages BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER stages_changed_delete AFTER DELETE ON stages BEGIN
    INSERT INTO changes (workspace_id) VALUES (OLD.workspace_id);
END;

CREATE TRIGGER lead_statuses_changed_insert AFTER INSERT ON lead_statuses BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER lead_statuses_changed_update AFTER UPDATE ON lead_statuses BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER lead_statuses_changed_delete AFTER DELETE ON lead_statuses BEGIN
    INSERT INTO changes (workspace_id) VALUES (OLD.workspace_id);
END;

CREATE TRIGGER segments_changed_insert AFTER INSERT ON segments BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER segments_changed_update AFTER UPDATE ON segments BEGIN
    INSERT INTO changes (workspace_id) VALUES (NEW.workspace_id);
END;
CREATE TRIGGER segments_changed_delete AFTER DELETE ON segments BEGIN
    INSERT INTO changes (workspace_id) VALUES (OLD.workspace_id);
END;

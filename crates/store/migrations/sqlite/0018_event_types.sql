-- Event types, seeded from the catalog file at start and changed through the API. Every node
-- reads them through a cache keyed by the single row of event_types_version: a change bumps
-- the version in the same transaction, and a node reloads when the version it holds is old.
-- A type that events or settings still name is deactivated (active false), never deleted.
CREATE TABLE event_types (
    key                  TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    category             TEXT NOT NULL,
    default_severity     TEXT NOT NULL,
    title_template       TEXT NOT NULL,
    description_template TEXT NOT NULL,
    on_by_default        INTEGER NOT NULL DEFAULT 1,
    active               INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE event_types_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO event_types_version (id, version) VALUES (1, 0);

-- "Is this type still in use?" is asked by DELETE; without this it would read every event.
CREATE INDEX events_event_type ON events(event_type);

-- Event sets (named groups of event types, per partner), templates (integration profiles:
-- ticket fields per connection), integration rules (event set + template; one per connection
-- may be the default), and what a mapping adds: its own event set and template, a contract,
-- and the re-fire policy. Keep in step with ../postgres/0006_profiles.sql.

CREATE TABLE event_sets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    event_types TEXT NOT NULL DEFAULT '[]',   -- JSON array of catalog keys
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (partner_id, name)
);

CREATE TABLE ticket_templates (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    fields        TEXT NOT NULL DEFAULT '{}',  -- JSON: TicketDefaults
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (connection_id, name)
);

CREATE TABLE integration_rules (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    event_set_id  INTEGER REFERENCES event_sets(id),
    template_id   INTEGER REFERENCES ticket_templates(id),
    is_default    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (connection_id, name)
);
CREATE UNIQUE INDEX integration_rules_one_default ON integration_rules(connection_id) WHERE is_default = 1;

ALTER TABLE mappings ADD COLUMN event_set_id INTEGER REFERENCES event_sets(id);
ALTER TABLE mappings ADD COLUMN template_id INTEGER REFERENCES ticket_templates(id);
ALTER TABLE mappings ADD COLUMN contract_id TEXT;
ALTER TABLE mappings ADD COLUMN refire TEXT NOT NULL DEFAULT 'new_ticket';
ALTER TABLE mappings ADD COLUMN reopen_within_secs INTEGER;

ALTER TABLE event_rules ADD COLUMN template_id INTEGER REFERENCES ticket_templates(id);

-- The re-fire policy looks up a group's last closed ticket.
CREATE INDEX ticket_groups_key ON ticket_groups(connection_id, group_key, id);

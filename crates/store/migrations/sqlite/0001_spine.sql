-- PSA Bridge schema, SQLite dialect. Keep in step with ../postgres/0001_spine.sql.
-- Times are milliseconds since the Unix epoch (UTC) in both dialects, so that the same SQL
-- compares them the same way; booleans are 0/1 here and BOOLEAN in PostgreSQL.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE partners (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    default_connection_id INTEGER,
    created_at            INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,
    partner_id   TEXT REFERENCES partners(id) ON DELETE CASCADE, -- NULL: vendor-wide
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE clients (
    partner_id TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (partner_id, id)
);

CREATE TABLE connections (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id        TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    name              TEXT NOT NULL,
    enabled           INTEGER NOT NULL DEFAULT 1,
    grouping_mode     TEXT NOT NULL DEFAULT 'user',
    settings          TEXT NOT NULL DEFAULT '{}',   -- JSON: non-secret connection settings
    sealed_secrets    TEXT NOT NULL DEFAULT '{}',   -- JSON: field -> sealed value
    catch_all_company TEXT,
    catch_all_contact TEXT,
    defaults          TEXT NOT NULL DEFAULT '{}',   -- JSON: TicketDefaults
    lists             TEXT,                         -- JSON: PSA lists cache
    lists_loaded_at   INTEGER,
    webhook_id        TEXT,
    webhook_guid      TEXT,
    webhook_secret    TEXT,                         -- sealed
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX connections_partner ON connections(partner_id);

CREATE TABLE event_rules (
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    event_type    TEXT NOT NULL,
    create_ticket INTEGER NOT NULL,
    fields        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (connection_id, event_type)
);

CREATE TABLE mappings (
    connection_id      INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    partner_id         TEXT NOT NULL,
    client_id          TEXT NOT NULL,
    company_id         TEXT NOT NULL,
    default_contact_id TEXT,
    create_tickets     INTEGER NOT NULL DEFAULT 1,
    mapped_at          INTEGER NOT NULL,
    PRIMARY KEY (connection_id, client_id),
    FOREIGN KEY (partner_id, client_id) REFERENCES clients(partner_id, id) ON DELETE CASCADE
);
CREATE INDEX mappings_client ON mappings(partner_id, client_id);

-- Accepted events. The row itself is the first outbox: routed_at IS NULL means "not yet routed".
CREATE TABLE events (
    pk          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    action      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    occurred_at INTEGER,
    user_email  TEXT,
    user_name   TEXT,
    title       TEXT,
    details     TEXT,
    data        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    routed_at   INTEGER,
    skip_reason TEXT,
    UNIQUE (partner_id, event_id)
);
CREATE INDEX events_unrouted ON events(pk) WHERE routed_at IS NULL;

-- One delivery per (event, connection): the delivery state machine.
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_pk         INTEGER NOT NULL REFERENCES events(pk) ON DELETE CASCADE,
    partner_id       TEXT NOT NULL,
    connection_id    INTEGER NOT NULL,
    channel          TEXT NOT NULL DEFAULT 'psa',
    group_key        TEXT NOT NULL,
    route            TEXT NOT NULL,          -- JSON: company, contacts, fields
    state            TEXT NOT NULL,          -- pending | in_flight | retrying | delivered | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    create_sent_at   INTEGER,                   -- a create was sent and its outcome is not known
    note_sent_at     INTEGER,                   -- a note was sent and its outcome is not known
    psa_action       TEXT,                   -- created | noted | none
    ticket_id        TEXT,
    ticket_number    TEXT,
    contact_id       TEXT,
    contact_source   TEXT,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX deliveries_event ON deliveries(event_pk);
CREATE INDEX deliveries_active ON deliveries(next_attempt_at, id) WHERE state IN ('pending', 'retrying', 'in_flight');
CREATE INDEX deliveries_group_active ON deliveries(connection_id, group_key, id) WHERE state IN ('pending', 'retrying', 'in_flight');
CREATE INDEX deliveries_partner_state ON deliveries(partner_id, state, id);

CREATE TABLE delivery_attempts (
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,     -- created | noted | none | retry | dead
    psa_calls   INTEGER NOT NULL,
    summary     TEXT,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- The product's truth about groups: at most one open ticket per (connection, group key).
CREATE TABLE ticket_groups (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id     INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    group_key         TEXT NOT NULL,
    ticket_id         TEXT NOT NULL,
    ticket_number     TEXT,
    state             TEXT NOT NULL,      -- open | closed
    opened_at         INTEGER NOT NULL,
    confirmed_open_at INTEGER NOT NULL,
    closed_at         INTEGER,
    notes             INTEGER NOT NULL DEFAULT 0,
    last_note_at      INTEGER
);
CREATE UNIQUE INDEX ticket_groups_one_open ON ticket_groups(connection_id, group_key) WHERE state = 'open';
CREATE INDEX ticket_groups_ticket ON ticket_groups(connection_id, ticket_id);
CREATE INDEX ticket_groups_open_checked ON ticket_groups(connection_id, confirmed_open_at) WHERE state = 'open';

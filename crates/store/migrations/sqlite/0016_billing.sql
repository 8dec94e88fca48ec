-- Usage reported by the vendor (users, devices per client), and the high-water mark of each
-- client, metric and billing period, which is what the MSP bills.

-- A partner's billing calendar: periods are months in this IANA zone, starting on this day.
ALTER TABLE partners ADD COLUMN billing_time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE partners ADD COLUMN billing_anchor_day INTEGER NOT NULL DEFAULT 1;

-- Every report as received; (partner, id) makes a resend idempotent.
CREATE TABLE usage_reports (
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    metric      TEXT NOT NULL,
    units       INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    period_key  TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (partner_id, id)
);

-- The highest count of each period, raised in the transaction that stores the report.
CREATE TABLE usage_high_water (
    partner_id   TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    metric       TEXT NOT NULL,
    period_key   TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    period_end   INTEGER NOT NULL,
    units        INTEGER NOT NULL,
    reports      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    -- The start is part of the key: after a change of calendar, a month can hold two periods.
    PRIMARY KEY (partner_id, period_key, period_start, client_id, metric)
);

-- The contract service a connection bills usage as: its name in the PSA's catalogue (found by
-- name, or created when allowed), the metric it counts, and the default unit cost and price
-- (decimal text, so no rounding on either engine).
CREATE TABLE billing_services (
    connection_id     INTEGER PRIMARY KEY REFERENCES connections(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    metric            TEXT NOT NULL,
    unit_cost         TEXT NOT NULL,
    unit_price        TEXT NOT NULL,
    create_if_missing INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL
);

-- Billing per mapping: on or off, whether the service may be added to the mapping's contract,
-- and the client's own cost and price.
ALTER TABLE mappings ADD COLUMN billing_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mappings ADD COLUMN billing_add_service INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mappings ADD COLUMN billing_unit_cost TEXT;
ALTER TABLE mappings ADD COLUMN billing_unit_price TEXT;

-- When each partner's nightly sync is next due; a node runs it by moving this forward in the
-- same statement that checks it, so several nodes run it once.
ALTER TABLE partners ADD COLUMN billing_sync_hour INTEGER NOT NULL DEFAULT 2;
ALTER TABLE partners ADD COLUMN billing_next_sync_at INTEGER;

-- Every sync, and per client what it wrote or why it skipped.
CREATE TABLE billing_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id  TEXT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    started_by  TEXT NOT NULL,   -- api, cli, schedule
    dry_run     INTEGER NOT NULL DEFAULT 0,
    period_key  TEXT NOT NULL,
    status      TEXT NOT NULL,   -- running, finished, failed
    error       TEXT,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX billing_runs_partner ON billing_runs (partner_id, id);

CREATE TABLE billing_run_lines (
    run_id        INTEGER NOT NULL REFERENCES billing_runs(id) ON DELETE CASCADE,
    connection_id INTEGER NOT NULL,
    client_id     TEXT NOT NULL,
    metric        TEXT NOT NULL,
    outcome       TEXT NOT NULL, -- added, updated, unchanged, skipped, failed (and would_* when dry)
    reason        TEXT,
    units_before  INTEGER,
    units_after   INTEGER,
    cost_before   TEXT,
    cost_after    TEXT,
    message       TEXT,
    PRIMARY KEY (run_id, connection_id, client_id, metric)
);
